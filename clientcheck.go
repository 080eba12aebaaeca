package cloakroom

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// clientRefusal classifies an error answer of the token endpoint to a
// request authenticated as clientID. When the answer means that the
// provider refuses the client itself, not the grant, it returns a
// *ProviderError (Op "token") whose Setting names what to fix and which
// wraps ErrMisconfigured; otherwise nil.
//
// Keycloak 26 answers an unknown or disabled client with 401
// invalid_client and a known client with a wrong secret with 401
// unauthorized_client ("Invalid client or Invalid client credentials").
// Other providers answer invalid_client for both (RFC 6749 §5.2).
func (r *Realm) clientRefusal(tokenURL, clientID string, status int, code, desc string) *ProviderError {
	keycloak := r.Name() != ""
	said := code
	if said == "" {
		said = fmt.Sprintf("HTTP %d", status)
	}
	if desc != "" {
		said += fmt.Sprintf(" %q", desc)
	}
	pe := &ProviderError{Op: "token", URL: tokenURL, StatusCode: status}
	switch {
	case code == "invalid_client" && keycloak:
		pe.Setting = "client_id"
		pe.Err = fmt.Errorf("Keycloak has no enabled client %q in realm %q (it answers %s): use the Client ID shown in the realm's Clients list, and check that the client is enabled", clientID, r.Name(), said)
	case code == "invalid_client":
		pe.Setting = "client_id"
		pe.Err = fmt.Errorf("the provider does not accept client %q with the configured secret (it answers %s): check the client id, then the secret", clientID, said)
	case status == http.StatusUnauthorized && keycloak:
		pe.Setting = "client_secret"
		pe.Err = fmt.Errorf("Keycloak refuses the secret of client %q (it answers %s): copy it again from the client's Credentials tab", clientID, said)
	case status == http.StatusUnauthorized:
		pe.Setting = "client_secret"
		pe.Err = fmt.Errorf("the provider refuses the credentials of client %q (it answers %s): check the secret", clientID, said)
	default:
		return nil
	}
	return pe
}

// CheckClient proves the client credentials at the token endpoint without
// side effects on the provider: it presents them with an authorization
// code that cannot exist. A provider that accepts the client answers
// invalid_grant about the code (Keycloak 26.7.3: 400 "Code not valid");
// one that refuses the client answers 401, invalid_client or (Keycloak,
// wrong secret) unauthorized_client, whatever the client's grants: unlike
// a client_credentials grant, this works for clients without a service
// account (Keycloak answers those 401 unauthorized_client "Client not
// enabled to retrieve service account" even with the right secret).
// Keycloak records the attempt as one CODE_TO_TOKEN_ERROR event
// (error invalid_code).
//
// It returns nil when the credentials were accepted, a *ProviderError
// wrapping ErrMisconfigured (see clientRefusal) when they were refused,
// and another error (wrapping ErrUnavailable) when the provider could not
// be asked or its answer proves nothing.
func (r *Realm) CheckClient(ctx context.Context, creds ClientCredentials, redirectURI string) error {
	meta, err := r.Discover(ctx)
	if err != nil {
		return err
	}
	if meta.TokenEndpoint == "" {
		return &ProviderError{Op: "token", URL: r.DiscoveryURL(), Err: errors.New("the discovery document announces no token_endpoint")}
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	form := url.Values{
		"grant_type": {"authorization_code"},
		"code":       {"cloakroom-credentials-check-" + hex.EncodeToString(nonce[:])},
	}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return &ProviderError{Op: "token", URL: meta.TokenEndpoint, Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(creds.ClientID), url.QueryEscape(creds.ClientSecret))
	resp, err := r.client.Do(req)
	if err != nil {
		return &ProviderError{Op: "token", URL: meta.TokenEndpoint, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 64<<10)
	if err != nil {
		return &ProviderError{Op: "token", URL: meta.TokenEndpoint, StatusCode: resp.StatusCode, Err: err}
	}
	var answer struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &answer)
	if pe := r.clientRefusal(meta.TokenEndpoint, creds.ClientID, resp.StatusCode, answer.Error, answer.Description); pe != nil {
		return pe
	}
	if answer.Error == "invalid_grant" || resp.StatusCode == http.StatusOK {
		return nil
	}
	return &ProviderError{Op: "token", URL: meta.TokenEndpoint, StatusCode: resp.StatusCode,
		Err: fmt.Errorf("the answer to a credentials check proves nothing (want invalid_grant about the code)%s", bodySnippet([]byte(answer.Error+" "+answer.Description)))}
}
