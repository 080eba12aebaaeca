package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for session and expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestPasswordGrantResponse(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}, "scope": {"openid"}}
	resp := postForm(t, tokenURL(s, "demo"), form, DemoClientID+":"+DemoClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if cc := resp.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	body := resp.json(t)
	want := map[string]any{"expires_in": 300.0, "refresh_expires_in": 1800.0, "token_type": "Bearer",
		"not-before-policy": 0.0, "scope": "openid email profile"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token", "session_state"} {
		if s, _ := body[k].(string); s == "" {
			t.Errorf("%s missing", k)
		}
	}
	if sid := decode(t, body["access_token"].(string)).claims["sid"]; sid != body["session_state"] {
		t.Errorf("sid %v != session_state %v", sid, body["session_state"])
	}

	noOpenID := passwordLogin(t, s, "alice", "alice", "")
	if _, ok := noOpenID["id_token"]; ok {
		t.Error("id_token issued without scope openid")
	}
	if noOpenID["scope"] != "email profile" {
		t.Errorf("scope %v", noOpenID["scope"])
	}
}

func TestAccessTokenShape(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	tok := passwordLogin(t, s, "alice", "alice", "openid")["access_token"].(string)
	d := decode(t, tok)
	if d.header["alg"] != "RS256" || d.header["typ"] != "JWT" || d.header["kid"] != r.ActiveKeyID() {
		t.Errorf("header %v", d.header)
	}
	c := verifyWithJWKS(t, s, "demo", tok)
	aliceID, _ := r.UserID("alice")
	want := map[string]any{
		"iss": s.Issuer("demo"), "sub": aliceID, "typ": "Bearer", "azp": "cloakroom", "acr": "1",
		"scope": "openid email profile", "email": "alice@example.com", "email_verified": true,
		"name": "Alice Liddell", "preferred_username": "alice", "given_name": "Alice", "family_name": "Liddell",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"exp", "iat", "jti", "sid"} {
		if _, ok := c[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	// A direct grant records no authentication time: Keycloak 26.7's
	// password-grant tokens have no auth_time (conformance:
	// password/alice-openid.access_token.claims).
	for _, k := range []string{"nbf", "nonce", "session_state", "client_id", "auth_time"} {
		if _, ok := c[k]; ok {
			t.Errorf("%s present in a Keycloak 26 access token", k)
		}
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 300 {
		t.Errorf("lifetime %v", exp-iat)
	}
	// Keycloak 26.2+ prefixes the jti with the token's context: online
	// session, regular token, password ("ro") grant.
	if jti, _ := c["jti"].(string); !strings.HasPrefix(jti, "onrtro:") {
		t.Errorf("jti %q", jti)
	}
	if got := aud(c); !slices.Equal(got, []string{"cloakroom", "account"}) {
		t.Errorf("aud %v", got)
	}
	roles := c["realm_access"].(map[string]any)["roles"].([]any)
	for _, want := range []string{"admin", "user", "offline_access", "uma_authorization", "default-roles-demo"} {
		if !slices.Contains(roles, any(want)) {
			t.Errorf("realm role %s missing from %v", want, roles)
		}
	}
	account := c["resource_access"].(map[string]any)["account"].(map[string]any)["roles"].([]any)
	if !slices.Contains(account, any("manage-account")) || !slices.Contains(account, any("view-profile")) {
		t.Errorf("account roles %v", account)
	}
	if origins := c["allowed-origins"].([]any); !slices.Contains(origins, any("http://localhost:8000")) {
		t.Errorf("allowed-origins %v", origins)
	}

	// Without an audience mapper Keycloak's aud is just "account", a string.
	form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}, "client_id": {DemoPublicClientID}}
	pub := postForm(t, tokenURL(s, "demo"), form).json(t)
	if a := decode(t, pub["access_token"].(string)).claims["aud"]; a != "account" {
		t.Errorf("public client aud = %v, want \"account\"", a)
	}
}

func TestAudienceResolveExcludesIssuingClient(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm("s")
	cfg.Clients = append(cfg.Clients, ClientConfig{ClientID: "api", Secret: "x", Roles: []string{"reader"}, DirectAccessGrants: true})
	cfg.Users[0].ClientRoles = map[string][]string{"api": {"reader"}}
	s := NewServer(t, WithRealm(cfg))
	r := s.Realm("demo")
	c := decode(t, r.MustToken(t, "alice", "cloakroom")).claims
	if got := aud(c); !slices.Equal(got, []string{"cloakroom", "account", "api"}) {
		t.Errorf("aud for cloakroom = %v", got)
	}
	c = decode(t, r.MustToken(t, "alice", "api")).claims
	if got := aud(c); !slices.Equal(got, []string{"account"}) {
		t.Errorf("aud for api = %v (the issuing client is not its own audience)", got)
	}
	if ra := c["resource_access"].(map[string]any)["api"]; ra == nil {
		t.Error("resource_access.api missing")
	}
}

func TestIDTokenShape(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	// The password grant ignores a nonce parameter: Keycloak takes a nonce
	// only from an authorization request (observed on Keycloak 26.7.3).
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}, "scope": {"openid"}, "nonce": {"n-0S6"}}
	body := postForm(t, tokenURL(s, "demo"), form, DemoClientID+":"+DemoClientSecret).json(t)
	id := body["id_token"].(string)
	d := decode(t, id)
	if d.header["typ"] != "JWT" || d.header["alg"] != "RS256" {
		t.Errorf("header %v", d.header)
	}
	c := verifyWithJWKS(t, s, "demo", id)
	sum := sha256.Sum256([]byte(body["access_token"].(string)))
	wantHash := base64.RawURLEncoding.EncodeToString(sum[:16])
	want := map[string]any{"typ": "ID", "aud": "cloakroom", "azp": "cloakroom", "at_hash": wantHash,
		"sid": body["session_state"], "acr": "1", "preferred_username": "alice"}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"nonce", "auth_time"} {
		if _, ok := c[k]; ok {
			t.Errorf("%s in a password-grant ID token", k)
		}
	}
	if _, ok := decode(t, body["access_token"].(string)).claims["nonce"]; ok {
		t.Error("nonce in access token")
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(cfg.Users,
		UserConfig{Username: "carol", Password: "carol", Disabled: true},
		UserConfig{Username: "dave", Password: "dave", RequiredActions: []string{"UPDATE_PASSWORD"}},
		UserConfig{Username: "nopass"},
	)
	cfg.Clients = append(cfg.Clients,
		ClientConfig{ClientID: "web-only", Secret: "w", StandardFlow: true},
		ClientConfig{ClientID: "off", Secret: "o", Disabled: true, DirectAccessGrants: true},
	)
	s := NewServer(t, WithRealm(cfg))
	basic := DemoClientID + ":" + DemoClientSecret
	pw := func(user, pass string) url.Values {
		return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	}
	tests := []struct {
		name   string
		form   url.Values
		basic  string
		status int
		code   string
		desc   string
	}{
		{"missing grant_type", url.Values{}, basic, 400, "invalid_request", "Missing form parameter: grant_type"},
		{"unsupported grant", url.Values{"grant_type": {"urn:x"}}, basic, 400, "unsupported_grant_type", "Unsupported grant_type"},
		// Keycloak 26.7: a known client with a wrong or missing secret is
		// unauthorized_client, a client it cannot identify invalid_client,
		// both 401 (conformance: token-errors/wrong-secret, no-secret,
		// no-client, unknown-client).
		{"wrong secret", pw("alice", "alice"), DemoClientID + ":nope", 401, "unauthorized_client", "Invalid client or Invalid client credentials"},
		{"unknown client", pw("alice", "alice"), "ghost:x", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"disabled client", pw("alice", "alice"), "off:o", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"missing client", pw("alice", "alice"), "", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"confidential without secret", withForm(pw("alice", "alice"), "client_id", DemoClientID), "", 401, "unauthorized_client", "Invalid client or Invalid client credentials"},
		// A missing username is 401 invalid_request, an empty one a wrong
		// one (conformance: token-errors/no-username; observed on 26.7.3).
		{"missing username", url.Values{"grant_type": {"password"}, "password": {"alice"}}, basic, 401, "invalid_request", "Missing parameter: username"},
		{"empty username", pw("", "alice"), basic, 400, "invalid_grant", "Invalid user credentials"},
		// The password is checked before the account (observed on 26.7.3).
		{"disabled user, wrong password", pw("carol", "nope"), basic, 400, "invalid_grant", "Invalid user credentials"},
		// The scope is checked before the user (observed on 26.7.3).
		{"invalid scope and wrong password", withForm(pw("alice", "nope"), "scope", "nope"), basic, 400, "invalid_scope", "Invalid scopes: nope"},
		{"wrong password", pw("alice", "bob"), basic, 400, "invalid_grant", "Invalid user credentials"},
		{"unknown user", pw("mallory", "x"), basic, 400, "invalid_grant", "Invalid user credentials"},
		{"user without password", pw("nopass", ""), basic, 400, "invalid_grant", "Invalid user credentials"},
		{"service account user", pw("service-account-cloakroom", ""), basic, 400, "invalid_grant", "Invalid user credentials"},
		{"disabled user", pw("carol", "carol"), basic, 400, "invalid_grant", "Account disabled"},
		{"required action", pw("dave", "dave"), basic, 400, "invalid_grant", "Account is not fully set up"},
		{"direct grants off", pw("alice", "alice"), "web-only:w", 400, "unauthorized_client", "Client not allowed for direct access grants"},
		{"invalid scope", withForm(pw("alice", "alice"), "scope", "openid admin"), basic, 400, "invalid_scope", "Invalid scopes: openid admin"},
		// 401, not 400 (conformance: token-errors/public-client-credentials,
		// client-credentials/no-service-account).
		{"client_credentials public", withForm(url.Values{"grant_type": {"client_credentials"}}, "client_id", DemoPublicClientID), "", 401, "unauthorized_client", "Public client not allowed to retrieve service account"},
		{"client_credentials no service account", url.Values{"grant_type": {"client_credentials"}}, "web-only:w", 401, "unauthorized_client", "Client not enabled to retrieve service account"},
		{"refresh without token", url.Values{"grant_type": {"refresh_token"}}, basic, 400, "invalid_request", "No refresh token"},
		{"refresh garbage", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"not.a.jwt"}}, basic, 400, "invalid_grant", "Invalid refresh token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var resp response
			if tc.basic != "" {
				resp = postForm(t, tokenURL(s, "demo"), tc.form, tc.basic)
			} else {
				resp = postForm(t, tokenURL(s, "demo"), tc.form)
			}
			if resp.status != tc.status {
				t.Errorf("status %d, want %d (%s)", resp.status, tc.status, resp.body)
			}
			// Keycloak sends no challenge with its 401s (conformance:
			// token-errors/*.www-authenticate).
			if h := resp.header.Get("WWW-Authenticate"); h != "" {
				t.Errorf("WWW-Authenticate %q", h)
			}
			b := resp.json(t)
			if b["error"] != tc.code || b["error_description"] != tc.desc {
				t.Errorf("body %s, want %s / %s", resp.body, tc.code, tc.desc)
			}
		})
	}
}

func withForm(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for key, vals := range v {
		out[key] = slices.Clone(vals)
	}
	out.Set(k, val)
	return out
}

func TestClientAuthentication(t *testing.T) {
	t.Parallel()
	const odd = "s3cr:t/+ &%=é"
	cfg := DemoRealm(odd)
	s := NewServer(t, WithRealm(cfg))
	pw := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}}

	// client_secret_basic: id and secret are form-urlencoded inside Basic.
	if resp := postForm(t, tokenURL(s, "demo"), pw, DemoClientID+":"+odd); resp.status != 200 {
		t.Errorf("basic: %d %s", resp.status, resp.body)
	}
	// A secret that was not URL-encoded before Basic is a different secret.
	raw := postFormRawBasic(t, tokenURL(s, "demo"), pw, DemoClientID, odd)
	if raw.status != 401 {
		t.Errorf("raw basic with unencoded special characters: %d", raw.status)
	}
	// client_secret_post.
	post := withForm(withForm(pw, "client_id", DemoClientID), "client_secret", odd)
	if resp := postForm(t, tokenURL(s, "demo"), post); resp.status != 200 {
		t.Errorf("post: %d %s", resp.status, resp.body)
	}
	// Basic and a different form client_id: the form wins, as in Keycloak
	// 26.7 (observed on 26.7.3: the public client is authenticated).
	if resp := postForm(t, tokenURL(s, "demo"), withForm(pw, "client_id", DemoPublicClientID), DemoClientID+":"+odd); resp.status != 200 {
		t.Errorf("mismatched ids: %d %s", resp.status, resp.body)
	}
	// The form's secret wins over the Basic one.
	if resp := postForm(t, tokenURL(s, "demo"), withForm(pw, "client_secret", odd), DemoClientID+":wrong"); resp.status != 200 {
		t.Errorf("form secret over a wrong Basic secret: %d %s", resp.status, resp.body)
	}
	if resp := postForm(t, tokenURL(s, "demo"), withForm(pw, "client_secret", "wrong"), DemoClientID+":"+odd); resp.status != 401 {
		t.Errorf("wrong form secret over a right Basic secret: %d", resp.status)
	}
	// An unreadable Basic header is ignored when the form names the client.
	garbled := postFormHeader(t, tokenURL(s, "demo"), withForm(withForm(pw, "client_id", DemoClientID), "client_secret", odd), "Basic !!!")
	if garbled.status != 200 {
		t.Errorf("garbled Basic with form credentials: %d %s", garbled.status, garbled.body)
	}
	if garbled := postFormHeader(t, tokenURL(s, "demo"), pw, "Basic !!!"); garbled.status != 401 || garbled.json(t)["error"] != "invalid_client" {
		t.Errorf("garbled Basic alone: %d %s", garbled.status, garbled.body)
	}
	// Public client: client_id only.
	if resp := postForm(t, tokenURL(s, "demo"), withForm(pw, "client_id", DemoPublicClientID)); resp.status != 200 {
		t.Errorf("public: %d %s", resp.status, resp.body)
	}
}

// postFormHeader posts a form with the given Authorization header.
func postFormHeader(t *testing.T, u string, form url.Values, authorization string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, stringsReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", authorization)
	return do(t, req)
}

func postFormRawBasic(t *testing.T, u string, form url.Values, id, secret string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, stringsReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return do(t, req)
}

func TestClientCredentialsGrant(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Clients[0].ServiceAccountRealmRoles = []string{"admin"}
	s := NewServer(t, WithRealm(cfg))
	resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"client_credentials"}}, DemoClientID+":"+DemoClientSecret)
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	body := resp.json(t)
	for _, k := range []string{"refresh_token", "session_state", "id_token"} {
		if _, ok := body[k]; ok {
			t.Errorf("%s in a client_credentials response", k)
		}
	}
	if body["refresh_expires_in"] != 0.0 {
		t.Errorf("refresh_expires_in %v", body["refresh_expires_in"])
	}
	c := verifyWithJWKS(t, s, "demo", body["access_token"].(string))
	saID, ok := s.Realm("demo").UserID("service-account-cloakroom")
	if !ok {
		t.Fatal("service account user missing")
	}
	want := map[string]any{"sub": saID, "typ": "Bearer", "azp": "cloakroom", "client_id": "cloakroom",
		"clientHost": "127.0.0.1", "clientAddress": "127.0.0.1", "preferred_username": "service-account-cloakroom",
		"scope": "email profile"}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	if _, ok := c["sid"]; ok {
		t.Error("sid in a service-account token")
	}
	if roles := c["realm_access"].(map[string]any)["roles"].([]any); !slices.Contains(roles, any("admin")) {
		t.Errorf("service account roles %v", roles)
	}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

func TestRefreshGrant(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := NewServer(t, WithDemoRealm(), WithClock(clock.Now))
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	login := passwordLogin(t, s, "alice", "alice", "openid")
	rt := login["refresh_token"].(string)

	resp := postForm(t, tokenURL(s, "demo"), refreshForm(rt), basic)
	if resp.status != 200 {
		t.Fatalf("refresh: %d %s", resp.status, resp.body)
	}
	body := resp.json(t)
	if body["session_state"] != login["session_state"] || body["id_token"] == nil || body["refresh_token"] == nil {
		t.Errorf("refresh response %v", body)
	}
	// Without rotation the old refresh token keeps working.
	if resp := postForm(t, tokenURL(s, "demo"), refreshForm(rt), basic); resp.status != 200 {
		t.Errorf("reuse without rotation: %d %s", resp.status, resp.body)
	}
	// Narrowing the scope narrows the access token's scope only: Keycloak
	// 26.7 still issues the ID token of an openid login and keeps the
	// refresh token's scope (observed on Keycloak 26.7.3).
	narrowed := postForm(t, tokenURL(s, "demo"), withForm(refreshForm(rt), "scope", "profile"), basic).json(t)
	if _, ok := narrowed["id_token"]; !ok || narrowed["scope"] != "email profile" {
		t.Errorf("narrowing to profile: id_token %v, scope %v", ok, narrowed["scope"])
	}
	if got, want := decode(t, narrowed["refresh_token"].(string)).claims["scope"], decode(t, rt).claims["scope"]; got != want {
		t.Errorf("refresh token scope after narrowing %v, want %v", got, want)
	}
	// A scope the client has but the login was not granted is dropped; one
	// the client does not have is invalid_scope (observed on 26.7.3).
	if resp := postForm(t, tokenURL(s, "demo"), withForm(refreshForm(rt), "scope", "phone"), basic); resp.status != 200 || resp.json(t)["scope"] != "email profile" {
		t.Errorf("widening scope: %d %s", resp.status, resp.body)
	}
	if resp := postForm(t, tokenURL(s, "demo"), withForm(refreshForm(rt), "scope", "nope"), basic); resp.json(t)["error"] != "invalid_scope" {
		t.Errorf("unknown scope: %s", resp.body)
	}

	rd := decode(t, rt)
	if rd.header["alg"] != "HS512" || rd.claims["typ"] != "Refresh" || rd.claims["aud"] != s.Issuer("demo") {
		t.Errorf("refresh token %v %v", rd.header, rd.claims)
	}
	// Keycloak 26.7's refresh token lists every granted client scope, keeps
	// the access token's aud as aud_x and names its provider (conformance:
	// password/alice-openid.refresh_token.value.scope, .claims.prov;
	// password/alice-public.refresh_token.claims.aud_x).
	if rd.claims["scope"] != "openid acr basic email profile roles service_account web-origins" || rd.claims["prov"] != "default" {
		t.Errorf("refresh token scope %v, prov %v", rd.claims["scope"], rd.claims["prov"])
	}
	if got := aud(map[string]any{"aud": rd.claims["aud_x"]}); !slices.Equal(got, aud(decode(t, login["access_token"].(string)).claims)) {
		t.Errorf("aud_x %v", rd.claims["aud_x"])
	}
	set := fetchJWKS(t, s, "demo")
	if len(set.Key(rd.header["kid"].(string))) != 0 {
		t.Error("the refresh-token HMAC key is published")
	}

	errDesc := func(form url.Values, basic string) string {
		t.Helper()
		resp := postForm(t, tokenURL(s, "demo"), form, basic)
		if resp.status == 200 {
			return ""
		}
		return resp.json(t)["error_description"].(string)
	}
	other := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {DemoPublicClientID}}
	if d := errDesc(other, ""); d != "Invalid refresh token. Token client and authorized client don't match" {
		t.Errorf("other client: %q", d)
	}
	if d := errDesc(refreshForm(login["access_token"].(string)), basic); d != "Invalid refresh token" {
		t.Errorf("access token as refresh token: %q", d)
	}
	minted := r.MustToken(t, "alice", DemoClientID, WithKind(RefreshToken), WithExpired())
	if d := errDesc(refreshForm(minted), basic); d != "Token is not active" {
		t.Errorf("expired: %q", d)
	}

	if err := r.SetUserEnabled("alice", false); err != nil {
		t.Fatal(err)
	}
	if d := errDesc(refreshForm(rt), basic); d != "User disabled" {
		t.Errorf("disabled user: %q", d)
	}
	if err := r.SetUserEnabled("alice", true); err != nil {
		t.Fatal(err)
	}
	r.EndSession(login["session_state"].(string))
	if d := errDesc(refreshForm(rt), basic); d != "Session not active" {
		t.Errorf("ended session: %q", d)
	}

	// Idle timeout: a fresh session dies after 1800s without refresh.
	rt2 := passwordLogin(t, s, "bob", "bob", "")["refresh_token"].(string)
	clock.Advance(1801 * time.Second)
	if d := errDesc(refreshForm(rt2), basic); d != "Token is not active" && d != "Session not active" {
		t.Errorf("idle: %q", d)
	}
}

func TestRefreshSessionMax(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := DemoRealm(DemoClientSecret)
	cfg.SSOSessionIdle = time.Hour
	cfg.SSOSessionMax = 90 * time.Minute
	s := NewServer(t, WithRealm(cfg), WithClock(clock.Now))
	basic := DemoClientID + ":" + DemoClientSecret
	rt := passwordLogin(t, s, "bob", "bob", "")["refresh_token"].(string)
	clock.Advance(50 * time.Minute)
	body := postForm(t, tokenURL(s, "demo"), refreshForm(rt), basic).json(t)
	// The new refresh token is capped by the session max: 40 minutes left.
	if body["refresh_expires_in"] != 2400.0 {
		t.Errorf("refresh_expires_in %v, want 2400", body["refresh_expires_in"])
	}
	clock.Advance(41 * time.Minute)
	resp := postForm(t, tokenURL(s, "demo"), refreshForm(body["refresh_token"].(string)), basic)
	if resp.status != 400 {
		t.Errorf("after session max: %d %s", resp.status, resp.body)
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	basic := DemoClientID + ":" + DemoClientSecret
	refresh := func(t *testing.T, s *Server, rt string) (map[string]any, string) {
		t.Helper()
		resp := postForm(t, tokenURL(s, "demo"), refreshForm(rt), basic)
		b := resp.json(t)
		if resp.status != 200 {
			return nil, b["error_description"].(string)
		}
		return b, ""
	}
	t.Run("reuse", func(t *testing.T) {
		t.Parallel()
		cfg := DemoRealm(DemoClientSecret)
		cfg.RevokeRefreshToken = true
		s := NewServer(t, WithRealm(cfg))
		rt1 := passwordLogin(t, s, "alice", "alice", "")["refresh_token"].(string)
		b, e := refresh(t, s, rt1)
		if e != "" {
			t.Fatalf("first use: %s", e)
		}
		if _, e := refresh(t, s, rt1); e != "Maximum allowed refresh token reuse exceeded" {
			t.Errorf("reuse: %q", e)
		}
		// The client session is detached now, even for the new token.
		if _, e := refresh(t, s, b["refresh_token"].(string)); e != "Session doesn't have required client" {
			t.Errorf("after detach: %q", e)
		}
	})
	t.Run("stale", func(t *testing.T) {
		t.Parallel()
		cfg := DemoRealm(DemoClientSecret)
		cfg.RevokeRefreshToken = true
		s := NewServer(t, WithRealm(cfg))
		rt1 := passwordLogin(t, s, "alice", "alice", "")["refresh_token"].(string)
		b2, _ := refresh(t, s, rt1)
		_, e := refresh(t, s, b2["refresh_token"].(string))
		if e != "" {
			t.Fatalf("second refresh: %s", e)
		}
		if _, e := refresh(t, s, rt1); e != "Stale token" {
			t.Errorf("superseded token: %q", e)
		}
	})
	t.Run("max reuse 1", func(t *testing.T) {
		t.Parallel()
		cfg := DemoRealm(DemoClientSecret)
		cfg.RevokeRefreshToken = true
		cfg.RefreshTokenMaxReuse = 1
		s := NewServer(t, WithRealm(cfg))
		rt1 := passwordLogin(t, s, "alice", "alice", "")["refresh_token"].(string)
		for i := range 2 {
			if _, e := refresh(t, s, rt1); e != "" {
				t.Fatalf("use %d: %s", i+1, e)
			}
		}
		if _, e := refresh(t, s, rt1); e != "Maximum allowed refresh token reuse exceeded" {
			t.Errorf("third use: %q", e)
		}
	})
}

func TestOfflineAccess(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	body := passwordLogin(t, s, "alice", "alice", "openid offline_access")
	rd := decode(t, body["refresh_token"].(string))
	if rd.claims["typ"] != "Offline" {
		t.Errorf("typ %v", rd.claims["typ"])
	}
	if body["scope"] != "openid email offline_access profile" {
		t.Errorf("scope %v", body["scope"])
	}
	// Offline tokens carry no exp and refresh_expires_in is 0; the access
	// token's jti says "offline" (observed on Keycloak 26.7.3).
	if _, ok := rd.claims["exp"]; ok || body["refresh_expires_in"] != 0.0 {
		t.Errorf("offline token exp %v, refresh_expires_in %v", rd.claims["exp"], body["refresh_expires_in"])
	}
	if jti, _ := decode(t, body["access_token"].(string)).claims["jti"].(string); !strings.HasPrefix(jti, "ofrtro:") {
		t.Errorf("jti %q", jti)
	}
	if resp := postForm(t, tokenURL(s, "demo"), refreshForm(body["refresh_token"].(string)), DemoClientID+":"+DemoClientSecret); resp.status != 200 {
		t.Errorf("offline refresh: %d %s", resp.status, resp.body)
	}
}

// TestClientAccessTokenLifespan: the client attribute access.token.lifespan
// overrides the realm's lifespan for that client's access and ID tokens
// (and expires_in); unset, zero or malformed, the realm's applies.
func TestClientAccessTokenLifespan(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) {
		for _, lc := range []struct{ id, lifespan string }{{"short", "60"}, {"zero", "0"}, {"bad", "soon"}} {
			c.Clients = append(c.Clients, ClientConfig{ClientID: lc.id, Public: true, DirectAccessGrants: true,
				Attributes: map[string]string{clientAccessTokenLifespan: lc.lifespan}})
		}
	})
	for _, tc := range []struct {
		client string
		want   float64
	}{{"short", 60}, {"zero", 300}, {"bad", 300}, {DemoPublicClientID, 300}} {
		resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "client_id": {tc.client},
			"username": {"alice"}, "password": {"alice"}, "scope": {"openid"}})
		if resp.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.client, resp.status, resp.body)
		}
		body := resp.json(t)
		if body["expires_in"] != tc.want {
			t.Errorf("%s: expires_in %v, want %v", tc.client, body["expires_in"], tc.want)
		}
		for _, kind := range []string{"access_token", "id_token"} {
			c := decode(t, body[kind].(string)).claims
			if life := c["exp"].(float64) - c["iat"].(float64); life != tc.want {
				t.Errorf("%s: %s lives %vs, want %vs", tc.client, kind, life, tc.want)
			}
		}
	}
}

// TestOfflineAccessNeedsRole: offline tokens need the offline_access realm
// role (here missing: no default roles); Keycloak answers 400 not_allowed
// from the password grant (conformance: password/alice-offline) and from
// the code exchange.
func TestOfflineAccessNeedsRole(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(cfg.Users,
		UserConfig{Username: "erin", Password: "erin", NoDefaultRoles: true},
		UserConfig{Username: "fred", Password: "fred", NoDefaultRoles: true, RealmRoles: []string{"offline_access"}})
	s := NewServer(t, WithRealm(cfg))
	form := func(user string) url.Values {
		return url.Values{"grant_type": {"password"}, "username": {user}, "password": {user}, "scope": {"openid offline_access"}}
	}
	resp := postForm(t, tokenURL(s, "demo"), form("erin"), DemoClientID+":"+DemoClientSecret)
	if b := resp.json(t); resp.status != 400 || b["error"] != "not_allowed" || b["error_description"] != "Offline tokens not allowed for the user or client" {
		t.Errorf("erin: %d %s", resp.status, resp.body)
	}
	if ids := s.Realm("demo").SessionIDs("erin"); len(ids) != 0 {
		t.Errorf("sessions after a refused offline login: %v", ids)
	}
	if resp := postForm(t, tokenURL(s, "demo"), form("fred"), DemoClientID+":"+DemoClientSecret); resp.status != 200 {
		t.Errorf("fred holds offline_access: %d %s", resp.status, resp.body)
	}
	// Without offline_access in the scope, erin logs in.
	if resp := postForm(t, tokenURL(s, "demo"), withForm(form("erin"), "scope", "openid"), DemoClientID+":"+DemoClientSecret); resp.status != 200 {
		t.Errorf("erin online: %d %s", resp.status, resp.body)
	}
}

// TestDirectGrantByEmail: the password grant accepts the email as
// username, as Keycloak's default "login with email" does (observed on
// Keycloak 26.7.3).
func TestDirectGrantByEmail(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"alice"}},
		DemoClientID+":"+DemoClientSecret)
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if u := decode(t, resp.json(t)["access_token"].(string)).claims["preferred_username"]; u != "alice" {
		t.Errorf("preferred_username %v", u)
	}
}
