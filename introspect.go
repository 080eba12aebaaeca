package cloakroom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// ClientCredentials authenticate a confidential client to the provider
// (client_secret_basic).
type ClientCredentials struct {
	ClientID     string
	ClientSecret string
}

// String hides the secret, so credentials can be logged or printed safely.
func (c ClientCredentials) String() string {
	return fmt.Sprintf("{ClientID:%s ClientSecret:[redacted]}", c.ClientID)
}

// Introspection is an RFC 7662 introspection answer.
type Introspection struct {
	Active    bool
	Subject   string
	ClientID  string
	Username  string
	TokenType string
	Scope     string
	Expiry    time.Time
	// Raw holds every member of the answer.
	Raw map[string]any

	// body is the answer as received, for Verifier.Lightweight's claims.
	body []byte
}

// Introspect asks the provider whether token is still active (RFC 7662), so
// that tokens revoked by logout, user disablement or session removal are
// refused before their exp. Keycloak requires a confidential client.
//
// Errors wrap ErrUnavailable: the provider could not be reached, answered
// with an error (including refusing the client's credentials), or answered
// garbage. Callers must then fail closed.
func (r *Realm) Introspect(ctx context.Context, token string, creds ClientCredentials) (*Introspection, error) {
	meta, err := r.Discover(ctx)
	if err != nil {
		return nil, err
	}
	endpoint := meta.IntrospectionEndpoint
	if endpoint == "" {
		return nil, &ProviderError{Op: "introspection", URL: r.issuer, Err: errors.New("the provider's discovery document has no introspection_endpoint")}
	}
	fail := func(status int, err error) (*Introspection, error) {
		return nil, &ProviderError{Op: "introspection", URL: endpoint, StatusCode: status, Err: err}
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fail(0, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(creds.ClientID), url.QueryEscape(creds.ClientSecret))
	resp, err := r.client.Do(req)
	if err != nil {
		return fail(0, scrubURLError(err))
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, maxResponseBytes)
	if err != nil {
		return fail(resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(resp.StatusCode, fmt.Errorf("the provider refused client %q: check the introspection client id and secret, and that the client is confidential%s", creds.ClientID, bodySnippet(body)))
	case resp.StatusCode != http.StatusOK:
		return fail(resp.StatusCode, fmt.Errorf("unexpected status %s%s", resp.Status, bodySnippet(body)))
	}
	return parseIntrospection(body, endpoint, resp.StatusCode)
}

func parseIntrospection(body []byte, endpoint string, status int) (*Introspection, error) {
	var doc struct {
		Active    *bool        `json:"active"`
		Subject   string       `json:"sub"`
		ClientID  string       `json:"client_id"`
		Username  string       `json:"username"`
		TokenType string       `json:"token_type"`
		Scope     string       `json:"scope"`
		Expiry    *numericDate `json:"exp"`
	}
	if err := jsonv2.Unmarshal(body, &doc); err != nil {
		return nil, &ProviderError{Op: "introspection", URL: endpoint, StatusCode: status, Err: fmt.Errorf("answer is not a valid introspection response: %s", jsonErrorText(err))}
	}
	if doc.Active == nil {
		return nil, &ProviderError{Op: "introspection", URL: endpoint, StatusCode: status, Err: errors.New(`answer has no boolean "active" member`)}
	}
	in := &Introspection{
		Active: *doc.Active, Subject: doc.Subject, ClientID: doc.ClientID, Username: doc.Username,
		TokenType: doc.TokenType, Scope: doc.Scope, Expiry: doc.Expiry.time(),
		body: body,
	}
	_ = json.Unmarshal(body, &in.Raw)
	return in, nil
}
