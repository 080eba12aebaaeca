package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/cloakroom/cloakroom"
)

// maxUserinfoBytes bounds the userinfo answer, like every other document
// read from the provider.
const maxUserinfoBytes = 1 << 20

// fetchUserinfo gets the userinfo claims with the access token and checks
// that they are about the ID token's subject (OIDC Core 5.3.4: the sub
// must be verified to match, else the answer must not be used). Failures
// to get an answer are *cloakroom.ProviderError (503); an answer about
// someone else is a plain error (the login is refused).
func (h *Handler) fetchUserinfo(ctx context.Context, meta *cloakroom.Metadata, accessToken, wantSub string) (*cloakroom.Claims, error) {
	endpoint := meta.UserinfoEndpoint
	fail := func(status int, err error) (*cloakroom.Claims, error) {
		return nil, &cloakroom.ProviderError{Op: "userinfo", URL: endpoint, StatusCode: status, Err: err}
	}
	if endpoint == "" {
		return fail(0, errors.New("the discovery document has no userinfo_endpoint, but login.Config.FetchUserinfo is on"))
	}
	ctx, cancel := context.WithTimeout(ctx, h.provider.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fail(0, err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := h.provider.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is reported by ProviderError
		}
		return fail(0, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserinfoBytes+1))
	switch {
	case err != nil:
		return fail(resp.StatusCode, fmt.Errorf("reading response: %w", err))
	case len(body) > maxUserinfoBytes:
		return fail(resp.StatusCode, fmt.Errorf("response larger than %d bytes", maxUserinfoBytes))
	case resp.StatusCode != http.StatusOK:
		return fail(resp.StatusCode, fmt.Errorf("unexpected status %s", resp.Status))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/jwt" {
		return fail(resp.StatusCode, errors.New("signed userinfo (application/jwt) is not supported; turn off signed userinfo for this client"))
	}
	// The strict claims decoder: duplicated members or invalid UTF-8 are
	// refused, as in tokens.
	info, err := cloakroom.ParseClaims(body)
	if err != nil {
		return fail(resp.StatusCode, fmt.Errorf("userinfo answer: %w", err))
	}
	switch sub := info.Subject(); {
	case sub == "":
		return nil, errors.New("userinfo: the answer has no sub")
	case sub != wantSub:
		return nil, fmt.Errorf("userinfo: sub %q is not the ID token's sub %q (OIDC Core 5.3.4); the answer is about another user", sub, wantSub)
	}
	return info, nil
}

// tokenMembers are never taken from userinfo: they describe a token or an
// authentication, which only a verified ID token may state.
var tokenMembers = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"auth_time": true, "nonce": true, "acr": true, "amr": true, "azp": true, "sid": true,
	"at_hash": true, "c_hash": true, "s_hash": true, "typ": true, "events": true, "cnf": true,
}

// addProfileMembers returns the ID claims (JSON) with the userinfo
// members they lack added (profile attributes such as email or
// preferred_username, which OIDC Core 5.4 lets a provider return only at
// userinfo when it issues an access token), and the members added (a JSON
// object, nil if none), which the session keeps (UserinfoClaims) to add
// them again after a refresh. Members describing the token or the
// authentication are never taken from userinfo.
func addProfileMembers(idClaims, userinfo []byte) (merged, added json.RawMessage) {
	var id, info map[string]json.RawMessage
	if json.Unmarshal(idClaims, &id) != nil || json.Unmarshal(userinfo, &info) != nil {
		return idClaims, nil
	}
	extra := map[string]json.RawMessage{}
	for k, v := range info {
		if _, ok := id[k]; !ok && !tokenMembers[k] {
			id[k], extra[k] = v, v
		}
	}
	if len(extra) == 0 {
		return idClaims, nil
	}
	m, err1 := json.Marshal(id)
	a, err2 := json.Marshal(extra)
	if err1 != nil || err2 != nil {
		return idClaims, nil
	}
	return m, a
}
