package keycloaktest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Origins of the demo realm's public client: "+" stands for the origins of
// its redirect URIs, http://127.0.0.1:8000 and http://localhost:8000.
const (
	allowedOrigin = "http://127.0.0.1:8000"
	otherPort     = "http://127.0.0.1:9000"
	evilOrigin    = "http://evil.example"
)

// corsRequest sends a request carrying an Origin header (none when origin
// is ""); form, when not nil, is the form-encoded body. header holds extra
// "Name: value" lines.
func corsRequest(t testing.TB, method, u, origin string, form url.Values, header ...string) response {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return do(t, req)
}

// checkCORS checks the CORS headers of an actual (not pre-flight) answer:
// Access-Control-Allow-Origin is wantOrigin (none when ""), with
// credentials, and exposeMethods adds Access-Control-Expose-Headers.
func checkCORS(t testing.TB, resp response, wantOrigin string, exposeMethods bool) {
	t.Helper()
	h := resp.header
	if got := h.Get("Access-Control-Allow-Origin"); got != wantOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q (status %d, body %s)", got, wantOrigin, resp.status, resp.body)
	}
	wantCreds, wantExpose := "", ""
	if wantOrigin != "" {
		wantCreds = "true"
		if exposeMethods {
			wantExpose = "Access-Control-Allow-Methods"
		}
	}
	if got := h.Get("Access-Control-Allow-Credentials"); got != wantCreds {
		t.Errorf("Access-Control-Allow-Credentials %q, want %q", got, wantCreds)
	}
	if got := h.Get("Access-Control-Expose-Headers"); got != wantExpose {
		t.Errorf("Access-Control-Expose-Headers %q, want %q", got, wantExpose)
	}
	if got := h.Get("Access-Control-Allow-Methods"); got != "" {
		t.Errorf("Access-Control-Allow-Methods %q on an actual request", got)
	}
}

// corsServer is the demo realm plus public clients allowing any origin and
// none.
func corsServer(t testing.TB, mutate func(*RealmConfig)) *Server {
	return browserServer(t, nil, func(c *RealmConfig) {
		c.Clients = append(c.Clients,
			ClientConfig{ClientID: "anywhere", Public: true, DirectAccessGrants: true, WebOrigins: []string{"*"}},
			ClientConfig{ClientID: "closed", Public: true, DirectAccessGrants: true, RedirectURIs: []string{allowedOrigin + "/*"}},
		)
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestCORSTokenEndpoint: the token endpoint lets the authenticated client's
// web origins read its answers (errors included), and nobody else; errors
// raised before the client is authenticated carry no CORS headers.
func TestCORSTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	password := func(clientID string, extra ...string) url.Values {
		f := url.Values{"grant_type": {"password"}, "client_id": {clientID}, "username": {"alice"}, "password": {"alice"}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	cases := []struct {
		name       string
		origin     string
		form       url.Values
		wantStatus int
		wantOrigin string
	}{
		{"allowed origin", allowedOrigin, password(DemoPublicClientID), 200, allowedOrigin},
		{"other redirect origin", "http://localhost:8000", password(DemoPublicClientID), 200, "http://localhost:8000"},
		{"same host, other port", otherPort, password(DemoPublicClientID), 200, ""},
		{"foreign origin", evilOrigin, password(DemoPublicClientID), 200, ""},
		{"null origin", "null", password(DemoPublicClientID), 200, ""},
		{"no origin", "", password(DemoPublicClientID), 200, ""},
		{"web origin *", evilOrigin, password("anywhere"), 200, evilOrigin},
		{"no web origins", allowedOrigin, password("closed"), 200, ""},
		{"grant error readable", allowedOrigin, password(DemoPublicClientID, "password", "wrong"), 400, allowedOrigin},
		{"grant error, foreign origin", evilOrigin, password(DemoPublicClientID, "password", "wrong"), 400, ""},
		{"client authentication fails", allowedOrigin, password(DemoClientID, "client_secret", "wrong"), 401, ""},
		{"unknown client", allowedOrigin, password("ghost"), 401, ""},
		{"missing grant_type", allowedOrigin, url.Values{"client_id": {DemoPublicClientID}}, 400, ""},
		{"unsupported grant_type", allowedOrigin, url.Values{"client_id": {DemoPublicClientID}, "grant_type": {"magic"}}, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := corsRequest(t, http.MethodPost, tokenURL(s, "demo"), tc.origin, tc.form)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			checkCORS(t, resp, tc.wantOrigin, true)
		})
	}
}

// TestCORSDisabledRealm: "Realm not enabled" may be read by any origin.
func TestCORSDisabledRealm(t *testing.T) {
	t.Parallel()
	s := corsServer(t, func(c *RealmConfig) { c.Disabled = true })
	form := url.Values{"grant_type": {"password"}, "client_id": {DemoPublicClientID}, "username": {"alice"}, "password": {"alice"}}
	oidc := s.Issuer("demo") + "/protocol/openid-connect"
	for _, u := range []string{oidc + "/token", oidc + "/revoke", oidc + "/userinfo"} {
		resp := corsRequest(t, http.MethodPost, u, evilOrigin, form)
		if resp.status != http.StatusForbidden {
			t.Fatalf("%s: status %d: %s", u, resp.status, resp.body)
		}
		checkCORS(t, resp, evilOrigin, true)
	}
}

// TestCORSPreflight: the endpoints browser clients call answer pre-flight
// requests for any origin with their methods, credentials and the
// Authorization header; the others (browser pages) do not take part in
// CORS.
func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	realm := s.Issuer("demo")
	oidc := realm + "/protocol/openid-connect"
	cases := []struct {
		path, origin string
		wantMethods  string // "" for no CORS answer
	}{
		{oidc + "/token", allowedOrigin, "POST, OPTIONS"},
		{oidc + "/token", evilOrigin, "POST, OPTIONS"},
		{oidc + "/token", "", ""},
		{oidc + "/revoke", allowedOrigin, "POST, OPTIONS"},
		{oidc + "/userinfo", allowedOrigin, "GET, HEAD, OPTIONS"},
		{oidc + "/certs", evilOrigin, "GET"},
		{realm + "/.well-known/openid-configuration", evilOrigin, "GET"},
		{realm + "/account", allowedOrigin, "GET, POST, DELETE, PUT, HEAD, OPTIONS"},
		{oidc + "/auth", allowedOrigin, ""},
		{oidc + "/logout", allowedOrigin, ""},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, realm)+" "+tc.origin, func(t *testing.T) {
			t.Parallel()
			resp := corsRequest(t, http.MethodOptions, tc.path, tc.origin, nil,
				"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: authorization")
			if resp.status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			h := resp.header
			if !strings.HasSuffix(h.Get("Allow"), "OPTIONS") {
				t.Errorf("Allow %q", h.Get("Allow"))
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      tc.origin,
				"Access-Control-Allow-Methods":     tc.wantMethods,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Headers":     corsAllowHeaders,
				"Access-Control-Max-Age":           "3600",
			}
			if tc.wantMethods == "" {
				want = map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""}
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
			if tc.wantMethods != "" && !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Error("Authorization is not an allowed header")
			}
		})
	}
}

// TestCORSUserinfo: userinfo answers may be read by the web origins of the
// client the token was issued to; errors found before that client is known
// by any origin.
func TestCORSUserinfo(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "client_id": {DemoPublicClientID},
		"username": {"alice"}, "password": {"alice"}, "scope": {"openid"}})
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", resp.status, resp.body)
	}
	tok := resp.json(t)["access_token"].(string)
	userinfo := s.Issuer("demo") + "/protocol/openid-connect/userinfo"
	cases := []struct {
		name, origin, token string
		wantStatus          int
		wantOrigin          string
	}{
		{"allowed origin", allowedOrigin, tok, 200, allowedOrigin},
		{"foreign origin", evilOrigin, tok, 200, ""},
		{"no origin", "", tok, 200, ""},
		{"bad token, any origin", evilOrigin, "garbage", 401, evilOrigin},
		// Keycloak 26.7 refuses a missing token with 401 (conformance:
		// userinfo/no-token.status).
		{"no token, any origin", evilOrigin, "", 401, evilOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var header []string
			if tc.token != "" {
				header = append(header, "Authorization: bearer "+tc.token)
			}
			resp := corsRequest(t, http.MethodGet, userinfo, tc.origin, nil, header...)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if resp.status != http.StatusOK {
				// A refusal's reason is in WWW-Authenticate, which Keycloak
				// 26.7 exposes to the origin along with the usual header.
				if got := resp.header.Get("Access-Control-Expose-Headers"); got != "Access-Control-Allow-Methods, WWW-Authenticate" {
					t.Errorf("Access-Control-Expose-Headers %q", got)
				}
				resp.header.Set("Access-Control-Expose-Headers", "Access-Control-Allow-Methods")
			}
			checkCORS(t, resp, tc.wantOrigin, true)
		})
	}
}

// TestCORSRevoke: like the token endpoint, the authenticated client's web
// origins may read revocation answers.
func TestCORSRevoke(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	revoke := s.Issuer("demo") + "/protocol/openid-connect/revoke"
	for _, tc := range []struct{ origin, want string }{{allowedOrigin, allowedOrigin}, {evilOrigin, ""}} {
		resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "client_id": {DemoPublicClientID},
			"username": {"alice"}, "password": {"alice"}})
		refresh := resp.json(t)["refresh_token"].(string)
		resp = corsRequest(t, http.MethodPost, revoke, tc.origin, url.Values{"client_id": {DemoPublicClientID}, "token": {refresh}})
		if resp.status != http.StatusOK {
			t.Fatalf("revoke: %d %s", resp.status, resp.body)
		}
		checkCORS(t, resp, tc.want, true)
	}
}

// TestCORSDiscoveryAndCerts: discovery and JWKS may be read by any origin.
func TestCORSDiscoveryAndCerts(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	for _, u := range []string{s.Issuer("demo") + "/.well-known/openid-configuration", s.Issuer("demo") + "/protocol/openid-connect/certs"} {
		for _, origin := range []string{evilOrigin, ""} {
			resp := corsRequest(t, http.MethodGet, u, origin, nil)
			if resp.status != http.StatusOK {
				t.Fatalf("%s: %d", u, resp.status)
			}
			checkCORS(t, resp, origin, false)
		}
	}
}

// TestAccountProfile: the Account REST API's GET {realm}/account, which
// keycloak-js loadUserProfile() calls.
func TestAccountProfile(t *testing.T) {
	t.Parallel()
	s := corsServer(t, nil)
	kc := s.Realm("demo")
	resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "client_id": {DemoPublicClientID},
		"username": {"alice"}, "password": {"alice"}})
	tok := resp.json(t)["access_token"].(string)
	service := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"client_credentials"}}, DemoClientID+":"+DemoClientSecret).json(t)["access_token"].(string)
	account := s.Issuer("demo") + "/account"
	const acceptJSON = "Accept: application/json"
	cases := []struct {
		name       string
		origin     string
		header     []string
		wantStatus int
		wantOrigin string
	}{
		{"profile", allowedOrigin, []string{acceptJSON, "Authorization: bearer " + tok}, 200, allowedOrigin},
		{"profile, foreign origin", evilOrigin, []string{acceptJSON, "Authorization: Bearer " + tok}, 200, ""},
		{"JSON body type", "", []string{"Content-Type: application/json", "Authorization: Bearer " + tok}, 200, ""},
		{"Accept list", "", []string{"Accept: text/html, application/json;q=0.9", "Authorization: Bearer " + tok}, 200, ""},
		{"account console", "", []string{"Accept: text/html", "Authorization: Bearer " + tok}, 404, ""},
		{"no token", allowedOrigin, []string{acceptJSON}, 401, ""},
		{"garbage token", allowedOrigin, []string{acceptJSON, "Authorization: Bearer x.y.z"}, 401, ""},
		{"expired", "", []string{acceptJSON, "Authorization: Bearer " + kc.MustToken(t, "alice", DemoPublicClientID, WithExpired())}, 401, ""},
		{"ID token", "", []string{acceptJSON, "Authorization: Bearer " + kc.MustToken(t, "alice", DemoPublicClientID, WithKind(IDToken))}, 401, ""},
		{"audience without account", "", []string{acceptJSON, "Authorization: Bearer " + kc.MustToken(t, "alice", DemoPublicClientID, WithAudience("other"))}, 401, ""},
		{"service account", "", []string{acceptJSON, "Authorization: Bearer " + service}, 401, ""},
		{"no account role", "", []string{acceptJSON, "Authorization: Bearer " + kc.MustToken(t, "alice", DemoPublicClientID,
			WithClaim("resource_access", map[string]any{"account": map[string]any{"roles": []string{"manage-account-links"}}}))}, 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := corsRequest(t, http.MethodGet, account, tc.origin, nil, tc.header...)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			checkCORS(t, resp, tc.wantOrigin, false)
			if resp.status != http.StatusOK {
				return
			}
			p := resp.json(t)
			id, _ := kc.UserID("alice")
			want := map[string]any{"id": id, "username": "alice", "firstName": "Alice", "lastName": "Liddell",
				"email": "alice@example.com", "emailVerified": true}
			for k, v := range want {
				if p[k] != v {
					t.Errorf("%s = %v, want %v", k, p[k], v)
				}
			}
			// Keycloak 26.7.3 adds the user profile's metadata for the user
			// unless the query says userProfileMetadata=false.
			meta, _ := p["userProfileMetadata"].(map[string]any)
			if attrs, _ := meta["attributes"].([]any); len(attrs) != 4 {
				t.Errorf("userProfileMetadata = %v", p["userProfileMetadata"])
			}
			if len(p) != len(want)+1 {
				t.Errorf("profile has extra members: %v", p)
			}
		})
	}
}
