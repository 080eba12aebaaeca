package keycloaktest

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBrowserLoginCodeFlow(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	r := s.Realm("demo")
	b := newBrowser(t)

	page := b.get(authURL(s, "demo", authParams("login_hint", "alice")))
	if page.status != http.StatusOK || !hasForm(page.body, "kc-form-login") {
		t.Fatalf("login page: %d\n%s", page.status, page.body)
	}
	if v := inputValue(page.body, "username"); v != "alice" {
		t.Errorf("login_hint not prefilled: %q", v)
	}
	action := formAction(t, page.body, "kc-form-login")
	au, _ := url.Parse(action)
	if au.Path != "/realms/demo/login-actions/authenticate" {
		t.Errorf("form action path %q", au.Path)
	}
	for _, p := range []string{"session_code", "execution", "client_id", "tab_id"} {
		if au.Query().Get(p) == "" {
			t.Errorf("form action lacks %s: %s", p, action)
		}
	}
	for _, want := range []string{`id="username" name="username"`, `id="password" name="password"`, `name="login" id="kc-login"`} {
		if !strings.Contains(string(page.body), want) {
			t.Errorf("login page lacks %s", want)
		}
	}

	resp := b.post(action, url.Values{"username": {"alice"}, "password": {"alice"}})
	loc := redirectTo(t, resp)
	if !strings.HasPrefix(loc.String(), testRedirect+"?") {
		t.Fatalf("redirect %s", loc)
	}
	q := loc.Query()
	if q.Get("state") != "st-1" || q.Get("iss") != s.Issuer("demo") || q.Get("session_state") == "" {
		t.Errorf("redirect params %v", q)
	}
	// SSO cookies, scoped to the realm.
	var identity *http.Cookie
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		if c.Name == cookieIdentity {
			identity = c
		}
		if c.Name == cookieIdentity || c.Name == cookieSession {
			if c.Path != "/realms/demo/" {
				t.Errorf("%s path %q", c.Name, c.Path)
			}
		}
	}
	if identity == nil || !identity.HttpOnly {
		t.Errorf("KEYCLOAK_IDENTITY missing or not HttpOnly: %+v", identity)
	}
	if got := b.cookie(s.Issuer("demo")+"/", cookieSession); got != sessionCookieValue(q.Get("session_state")) {
		t.Errorf("KEYCLOAK_SESSION %q", got)
	}

	body := mustExchange(t, s, "demo", q.Get("code"))
	if body["session_state"] != q.Get("session_state") {
		t.Errorf("session_state %v vs %v", body["session_state"], q.Get("session_state"))
	}
	id := verifyWithJWKS(t, s, "demo", body["id_token"].(string))
	access := verifyWithJWKS(t, s, "demo", body["access_token"].(string))
	aliceID, _ := r.UserID("alice")
	for k, v := range map[string]any{"nonce": "n-1", "acr": "1", "sid": q.Get("session_state"), "sub": aliceID, "aud": DemoClientID, "typ": "ID"} {
		if id[k] != v {
			t.Errorf("id token %s = %v, want %v", k, id[k], v)
		}
	}
	if id["at_hash"] != atHash(body["access_token"].(string)) || id["auth_time"] == nil {
		t.Errorf("at_hash/auth_time: %v %v", id["at_hash"], id["auth_time"])
	}
	if _, ok := access["nonce"]; ok {
		t.Error("nonce in the access token")
	}
	if access["acr"] != "1" {
		t.Errorf("access acr %v", access["acr"])
	}
	// The refresh token works and keeps the acr.
	ref := postForm(t, tokenURL(s, "demo"), refreshForm(body["refresh_token"].(string)), DemoClientID+":"+DemoClientSecret)
	if ref.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", ref.status, ref.body)
	}
	if c := decode(t, ref.json(t)["access_token"].(string)).claims; c["acr"] != "1" || c["sid"] != q.Get("session_state") {
		t.Errorf("refreshed claims %v", c)
	}
}

func TestBrowserLoginFailures(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) {
		c.Users = append(c.Users, UserConfig{Username: "dora", Password: "dora", Email: "dora@example.com", Disabled: true})
	})
	cases := []struct {
		name, user, pass, msg string
	}{
		{"wrong password", "alice", "nope", msgInvalidUser},
		{"unknown user", "nobody", "x", msgInvalidUser},
		{"disabled user", "dora", "dora", msgAccountDisabled},
		{"disabled user, wrong password", "dora", "x", msgInvalidUser},
		{"service account", "service-account-cloakroom", "", msgInvalidUser},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t)
			page := b.get(authURL(s, "demo", authParams()))
			resp := b.post(formAction(t, page.body, "kc-form-login"), url.Values{"username": {tc.user}, "password": {tc.pass}})
			if resp.status != http.StatusOK || !hasForm(resp.body, "kc-form-login") {
				t.Fatalf("want the form again, got %d\n%s", resp.status, resp.body)
			}
			pageHas(t, resp, tc.msg)
			if v := inputValue(resp.body, "username"); v != tc.user {
				t.Errorf("username not kept: %q", v)
			}
			// The next attempt works from the new page.
			if tc.user == "alice" {
				ok := b.post(formAction(t, resp.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
				codeOf(t, s, "demo", redirectTo(t, ok))
			}
		})
	}

	t.Run("login by email", func(t *testing.T) {
		t.Parallel()
		u := newBrowser(t).login(s, "demo", authParams(), "bob@example.com", "bob")
		codeOf(t, s, "demo", u)
	})
	t.Run("stale form", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t)
		page := b.get(authURL(s, "demo", authParams()))
		action := formAction(t, page.body, "kc-form-login")
		first := b.post(action, url.Values{"username": {"alice"}, "password": {"wrong"}})
		// The first page's session code is used up: the current form again.
		again := b.post(action, url.Values{"username": {"alice"}, "password": {"alice"}})
		if again.status != http.StatusOK || !hasForm(again.body, "kc-form-login") || formAction(t, again.body, "kc-form-login") == formAction(t, first.body, "kc-form-login") {
			t.Fatalf("stale submit: %d\n%s", again.status, again.body)
		}
	})
	t.Run("no cookies", func(t *testing.T) {
		t.Parallel()
		page := get(t, authURL(s, "demo", authParams()))
		resp := postForm(t, formAction(t, page.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
		if resp.status != http.StatusBadRequest {
			t.Fatalf("%d", resp.status)
		}
		pageHas(t, resp, msgCookieNotFound)
	})
}

func TestSSOAndPrompt(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := browserServer(t, clock, nil)
	b := newBrowser(t)
	first := b.login(s, "demo", authParams(), "alice", "alice")
	sid := first.Query().Get("session_state")

	// A second request skips the form: acr "0" for an SSO login.
	second := redirectTo(t, b.get(authURL(s, "demo", authParams("nonce", "n-2", "state", "st-2"))))
	if second.Query().Get("session_state") != sid || second.Query().Get("state") != "st-2" {
		t.Errorf("SSO redirect %s", second)
	}
	id := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", second))["id_token"].(string)).claims
	if id["acr"] != "0" || id["nonce"] != "n-2" {
		t.Errorf("SSO login id token: acr %v nonce %v", id["acr"], id["nonce"])
	}

	// prompt=none with a session: a code straight away.
	none := redirectTo(t, b.get(authURL(s, "demo", authParams("prompt", "none"))))
	codeOf(t, s, "demo", none)

	// Another client joins the same SSO session.
	pub := redirectTo(t, b.get(authURL(s, "demo", authParams("client_id", DemoPublicClientID))))
	if pub.Query().Get("session_state") != sid {
		t.Errorf("public client got another session: %s", pub)
	}

	// prompt=login shows the form although the session is live, and the
	// session stays the same.
	forced := b.get(authURL(s, "demo", authParams("prompt", "login")))
	if !hasForm(forced.body, "kc-form-login") {
		t.Fatalf("prompt=login: %d\n%s", forced.status, forced.body)
	}
	clock.Advance(10 * time.Second)
	again := redirectTo(t, b.post(formAction(t, forced.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}}))
	if again.Query().Get("session_state") != sid {
		t.Errorf("re-authentication changed the session")
	}
	tok := mustExchange(t, s, "demo", codeOf(t, s, "demo", again))
	if c := decode(t, tok["id_token"].(string)).claims; c["acr"] != "1" || c["auth_time"].(float64) != float64(clock.Now().Unix()) {
		t.Errorf("after prompt=login: acr %v auth_time %v", c["acr"], c["auth_time"])
	}

	// max_age older than the last authentication forces the form.
	clock.Advance(30 * time.Second)
	if p := b.get(authURL(s, "demo", authParams("max_age", "20"))); !hasForm(p.body, "kc-form-login") {
		t.Errorf("max_age: %d", p.status)
	}
	if u := redirectTo(t, b.get(authURL(s, "demo", authParams("max_age", "20", "prompt", "none")))); u.Query().Get("error") != "login_required" {
		t.Errorf("max_age with prompt=none: %s", u)
	}

	// prompt=none without a session.
	fresh := newBrowser(t)
	u := redirectTo(t, fresh.get(authURL(s, "demo", authParams("prompt", "none"))))
	q := u.Query()
	if q.Get("error") != "login_required" || q.Get("state") != "st-1" || q.Get("iss") != s.Issuer("demo") || q.Get("code") != "" {
		t.Errorf("prompt=none without session: %s", u)
	}

	// kc_idp_hint and ui_locales are accepted; the login page shows.
	if p := fresh.get(authURL(s, "demo", authParams("kc_idp_hint", "github", "ui_locales", "de en"))); !hasForm(p.body, "kc-form-login") {
		t.Errorf("kc_idp_hint: %d", p.status)
	}
}

func TestPKCE(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) {
		c.Clients = append(c.Clients, ClientConfig{ClientID: "spa", Public: true, StandardFlow: true,
			RedirectURIs: []string{testRedirect}, Attributes: map[string]string{"pkce.code.challenge.method": "S256"}})
	})
	verifier := strings.Repeat("v", 43) + "-._~abc"
	cases := []struct {
		name             string
		challenge        string
		method           string
		sendVerifier     string
		wantStatus       int
		wantDesc         string
		omitVerifierForm bool
	}{
		{"S256", s256(verifier), "S256", verifier, 200, "", false},
		{"plain", verifier, "plain", verifier, 200, "", false},
		{"no method means plain", verifier, "", verifier, 200, "", false},
		{"verifier missing", s256(verifier), "S256", "", 400, "PKCE code verifier not specified", true},
		{"verifier wrong", s256(verifier), "S256", strings.Repeat("w", 43), 400, "PKCE verification failed: Code mismatch", false},
		{"verifier too short", s256(verifier), "S256", "short", 400, "PKCE verification failed: Invalid code verifier", false},
		{"no challenge, verifier sent", "", "", verifier, 400, "PKCE code verifier specified but challenge not present in authorization", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newBrowser(t).login(s, "demo", authParams("code_challenge", tc.challenge, "code_challenge_method", tc.method), "alice", "alice")
			var extra []string
			if !tc.omitVerifierForm {
				extra = []string{"code_verifier", tc.sendVerifier}
			}
			resp := exchange(t, s, "demo", codeOf(t, s, "demo", u), extra...)
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.wantStatus, resp.body)
			}
			if tc.wantDesc != "" {
				if b := resp.json(t); b["error"] != "invalid_grant" || b["error_description"] != tc.wantDesc {
					t.Errorf("got %v", b)
				}
			}
		})
	}

	authErrors := []struct {
		name, client, challenge, method, desc string
	}{
		{"bad method", DemoClientID, s256(verifier), "S512", "Invalid parameter: unsupported code challenge method"},
		{"short challenge", DemoClientID, "abc", "S256", "Invalid parameter: code_challenge"},
		{"method without challenge", DemoClientID, "", "S256", "Missing parameter: code_challenge"},
		{"enforced: missing", "spa", "", "", "Missing parameter: code_challenge_method"},
		{"enforced: plain", "spa", verifier, "plain", "Invalid parameter: code challenge method is not configured one"},
	}
	for _, tc := range authErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := redirectTo(t, newBrowser(t).get(authURL(s, "demo", authParams("client_id", tc.client, "code_challenge", tc.challenge, "code_challenge_method", tc.method))))
			if q := u.Query(); q.Get("error") != "invalid_request" || q.Get("error_description") != tc.desc || q.Get("state") != "st-1" || q.Get("iss") == "" {
				t.Errorf("got %s", u)
			}
		})
	}

	t.Run("enforced: S256 works for the public client", func(t *testing.T) {
		t.Parallel()
		u := newBrowser(t).login(s, "demo", authParams("client_id", "spa", "code_challenge", s256(verifier), "code_challenge_method", "S256"), "bob", "bob")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, s, "demo", u)}, "redirect_uri": {testRedirect},
			"client_id": {"spa"}, "code_verifier": {verifier}}
		if resp := postForm(t, tokenURL(s, "demo"), form); resp.status != http.StatusOK {
			t.Fatalf("%d %s", resp.status, resp.body)
		}
	})
}

func TestCodeRules(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := browserServer(t, clock, nil)
	basic := DemoClientID + ":" + DemoClientSecret

	t.Run("replay detaches the client session", func(t *testing.T) {
		u := newBrowser(t).login(s, "demo", authParams(), "alice", "alice")
		code := codeOf(t, s, "demo", u)
		first := mustExchange(t, s, "demo", code)
		replay := exchange(t, s, "demo", code)
		if b := replay.json(t); replay.status != 400 || b["error"] != "invalid_grant" || b["error_description"] != "Code not valid" {
			t.Fatalf("replay: %d %v", replay.status, b)
		}
		ref := postForm(t, tokenURL(s, "demo"), refreshForm(first["refresh_token"].(string)), basic)
		if ref.status != 400 || ref.json(t)["error"] != "invalid_grant" {
			t.Errorf("refresh after replay: %d %s", ref.status, ref.body)
		}
	})
	t.Run("redirect_uri must be identical", func(t *testing.T) {
		u := newBrowser(t).login(s, "demo", authParams(), "alice", "alice")
		resp := exchange(t, s, "demo", codeOf(t, s, "demo", u), "redirect_uri", testRedirect+"?iss=x")
		if b := resp.json(t); b["error_description"] != "Incorrect redirect_uri" {
			t.Errorf("%v", b)
		}
	})
	t.Run("other client", func(t *testing.T) {
		u := newBrowser(t).login(s, "demo", authParams(), "alice", "alice")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, s, "demo", u)}, "redirect_uri": {testRedirect}, "client_id": {DemoPublicClientID}}
		if b := postForm(t, tokenURL(s, "demo"), form).json(t); b["error"] != "invalid_grant" {
			t.Errorf("%v", b)
		}
	})
	t.Run("unknown and missing code", func(t *testing.T) {
		if b := exchange(t, s, "demo", "nope").json(t); b["error_description"] != "Code not valid" {
			t.Errorf("%v", b)
		}
		if b := exchange(t, s, "demo", "").json(t); b["error"] != "invalid_request" {
			t.Errorf("%v", b)
		}
	})
	t.Run("expired", func(t *testing.T) {
		u := newBrowser(t).login(s, "demo", authParams(), "bob", "bob")
		code := codeOf(t, s, "demo", u)
		clock.Advance(61 * time.Second)
		if b := exchange(t, s, "demo", code).json(t); b["error"] != "invalid_grant" || b["error_description"] != "Code not valid" {
			t.Errorf("%v", b)
		}
	})
	t.Run("session ended before exchange", func(t *testing.T) {
		u := newBrowser(t).login(s, "demo", authParams(), "bob", "bob")
		s.Realm("demo").EndSession(u.Query().Get("session_state"))
		if b := exchange(t, s, "demo", codeOf(t, s, "demo", u)).json(t); b["error_description"] != "Session not active" {
			t.Errorf("%v", b)
		}
	})
	t.Run("refresh rotation after the code flow", func(t *testing.T) {
		rs := browserServer(t, nil, func(c *RealmConfig) { c.RevokeRefreshToken = true })
		u := newBrowser(t).login(rs, "demo", authParams(), "alice", "alice")
		rt := mustExchange(t, rs, "demo", codeOf(t, rs, "demo", u))["refresh_token"].(string)
		if resp := postForm(t, tokenURL(rs, "demo"), refreshForm(rt), basic); resp.status != 200 {
			t.Fatalf("first refresh: %s", resp.body)
		}
		if b := postForm(t, tokenURL(rs, "demo"), refreshForm(rt), basic).json(t); b["error_description"] != "Maximum allowed refresh token reuse exceeded" {
			t.Errorf("replayed refresh token: %v", b)
		}
	})
}

func TestAuthRequestErrors(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) {
		c.Clients = append(c.Clients,
			ClientConfig{ClientID: "off", Public: true, Disabled: true, StandardFlow: true, RedirectURIs: []string{testRedirect}},
			ClientConfig{ClientID: "nostd", Public: true, RedirectURIs: []string{testRedirect}},
			ClientConfig{ClientID: "single", Public: true, StandardFlow: true, RedirectURIs: []string{"http://127.0.0.1:9000/only"}})
	})
	pages := []struct {
		name   string
		params url.Values
		msg    string
	}{
		{"unknown client", authParams("client_id", "ghost"), msgClientNotFound},
		{"missing client", authParams("client_id", ""), "Missing parameters: client_id"},
		{"disabled client", authParams("client_id", "off"), msgClientDisabled},
		{"redirect mismatch", authParams("redirect_uri", "http://evil.example/cb"), "Invalid parameter: redirect_uri"},
		{"redirect prefix trick", authParams("redirect_uri", "http://127.0.0.1:8000.evil.example/cb"), "Invalid parameter: redirect_uri"},
		{"redirect userinfo", authParams("redirect_uri", "http://user@127.0.0.1:8000/cb"), "Invalid parameter: redirect_uri"},
		{"redirect dot-dot", authParams("redirect_uri", "http://127.0.0.1:8000/a/../b"), "Invalid parameter: redirect_uri"},
		{"redirect with code", authParams("redirect_uri", testRedirect+"?code=x"), "Invalid parameter: redirect_uri"},
		{"redirect with fragment", authParams("redirect_uri", testRedirect+"#x"), "Invalid parameter: redirect_uri"},
		{"missing redirect", authParams("redirect_uri", ""), "Invalid parameter: redirect_uri"},
		{"registration off", authParams("prompt", "create"), msgRegistrationDisabled},
		{"essential acr unknown", authParams("claims", `{"id_token":{"acr":{"essential":true,"values":["gold"]}}}`), "Invalid parameter: claims"},
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := newBrowser(t).get(authURL(s, "demo", tc.params))
			if resp.status != http.StatusBadRequest {
				t.Fatalf("status %d, want an error page\n%s", resp.status, resp.body)
			}
			pageHas(t, resp, tc.msg)
			if !strings.Contains(resp.header.Get("Content-Type"), "text/html") {
				t.Errorf("content type %q", resp.header.Get("Content-Type"))
			}
		})
	}

	redirects := []struct {
		name       string
		params     url.Values
		code, desc string
		fragment   bool
	}{
		{"token response type", authParams("response_type", "token"), "unsupported_response_type", "", true},
		{"unknown response type", authParams("response_type", "magic"), "unsupported_response_type", "", true},
		{"missing response type", authParams("response_type", ""), "invalid_request", "Missing parameter: response_type", false},
		{"standard flow off", authParams("client_id", "nostd"), "unauthorized_client", "", false},
		{"invalid scope", authParams("scope", "openid admin"), "invalid_scope", "Invalid scopes: openid admin", false},
		{"response_mode jwt", authParams("response_mode", "jwt"), "invalid_request", "Invalid parameter: response_mode", false},
		{"bad prompt", authParams("prompt", "none login"), "invalid_request", "Invalid parameter: prompt", false},
		{"bad max_age", authParams("max_age", "-1"), "invalid_request", "Invalid parameter: max_age", false},
		{"request object", authParams("request", "eyJ"), "request_not_supported", "", false},
	}
	for _, tc := range redirects {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := redirectTo(t, newBrowser(t).get(authURL(s, "demo", tc.params)))
			q := u.Query()
			if tc.fragment {
				q, _ = url.ParseQuery(u.Fragment)
			}
			if q.Get("error") != tc.code || (tc.desc != "" && q.Get("error_description") != tc.desc) {
				t.Errorf("got %s", u)
			}
			if q.Get("state") != "st-1" || q.Get("iss") != s.Issuer("demo") {
				t.Errorf("state/iss missing: %s", u)
			}
		})
	}

	t.Run("default redirect of a single-URI client", func(t *testing.T) {
		t.Parallel()
		u := newBrowser(t).login(s, "demo", authParams("client_id", "single", "redirect_uri", ""), "alice", "alice")
		if !strings.HasPrefix(u.String(), "http://127.0.0.1:9000/only?") {
			t.Fatalf("%s", u)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, s, "demo", u)}, "client_id": {"single"}}
		if resp := postForm(t, tokenURL(s, "demo"), form); resp.status != 200 {
			t.Errorf("exchange without redirect_uri: %s", resp.body)
		}
	})
	t.Run("POST to the auth endpoint", func(t *testing.T) {
		t.Parallel()
		resp := newBrowser(t).post(s.Issuer("demo")+"/protocol/openid-connect/auth", authParams())
		if !hasForm(resp.body, "kc-form-login") {
			t.Errorf("%d %s", resp.status, resp.body)
		}
	})
	t.Run("query string kept", func(t *testing.T) {
		t.Parallel()
		u := newBrowser(t).login(s, "demo", authParams("redirect_uri", testRedirect+"?app=1"), "alice", "alice")
		if u.Query().Get("app") != "1" || u.Query().Get("code") == "" {
			t.Errorf("%s", u)
		}
	})
}

func TestResponseModes(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	t.Run("fragment", func(t *testing.T) {
		t.Parallel()
		u := newBrowser(t).login(s, "demo", authParams("response_mode", "fragment"), "alice", "alice")
		if u.RawQuery != "" {
			t.Errorf("query in fragment mode: %s", u)
		}
		q, _ := url.ParseQuery(u.Fragment)
		if q.Get("code") == "" || q.Get("state") != "st-1" || q.Get("iss") != s.Issuer("demo") {
			t.Errorf("fragment %q", u.Fragment)
		}
		mustExchange(t, s, "demo", q.Get("code"))
	})
	t.Run("form_post", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t)
		page := b.get(authURL(s, "demo", authParams("response_mode", "form_post")))
		resp := b.post(formAction(t, page.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
		if resp.status != 200 || !strings.Contains(string(resp.body), `<form method="post" action="`+testRedirect+`">`) {
			t.Fatalf("form_post page: %d\n%s", resp.status, resp.body)
		}
		fields := map[string]string{}
		for _, name := range []string{"code", "state", "iss", "session_state"} {
			fields[name] = hiddenValue(string(resp.body), name)
		}
		if fields["code"] == "" || fields["state"] != "st-1" || fields["iss"] != s.Issuer("demo") {
			t.Errorf("hidden fields %v", fields)
		}
		mustExchange(t, s, "demo", fields["code"])
	})
	t.Run("form_post error", func(t *testing.T) {
		t.Parallel()
		resp := newBrowser(t).get(authURL(s, "demo", authParams("response_mode", "form_post", "prompt", "none")))
		if hiddenValue(string(resp.body), "error") != "login_required" {
			t.Errorf("%s", resp.body)
		}
	})
}

// hiddenValue reads a hidden input of the form_post page.
func hiddenValue(page, name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestTwoTabs(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	b := newBrowser(t)
	tab1 := b.get(authURL(s, "demo", authParams("state", "tab-1")))
	tab2 := b.get(authURL(s, "demo", authParams("state", "tab-2", "client_id", DemoPublicClientID)))
	a1, a2 := formAction(t, tab1.body, "kc-form-login"), formAction(t, tab2.body, "kc-form-login")
	if a1 == a2 {
		t.Fatal("two tabs share a form action")
	}
	u2 := redirectTo(t, b.post(a2, url.Values{"username": {"alice"}, "password": {"alice"}}))
	u1 := redirectTo(t, b.post(a1, url.Values{"username": {"alice"}, "password": {"alice"}}))
	if u1.Query().Get("state") != "tab-1" || u2.Query().Get("state") != "tab-2" {
		t.Errorf("states %s %s", u1, u2)
	}
	if u1.Query().Get("session_state") != u2.Query().Get("session_state") {
		t.Errorf("tabs of one browser got two sessions")
	}
	mustExchange(t, s, "demo", codeOf(t, s, "demo", u1))
	if got := len(s.Realm("demo").SessionIDs("alice")); got != 1 {
		t.Errorf("%d sessions", got)
	}

	// prompt=login re-authenticates the session's user: the username is
	// fixed.
	tab3 := b.get(authURL(s, "demo", authParams("prompt", "login")))
	pageHas(t, tab3, msgReauthenticate)
	if !strings.Contains(string(tab3.body), `value="alice" type="text" readonly`) {
		t.Errorf("re-authentication page does not fix the username:\n%s", tab3.body)
	}

	// Another user logging in, in a tab opened before the browser logged
	// in, is refused.
	other := newBrowser(t)
	early := other.get(authURL(s, "demo", authParams()))
	other.login(s, "demo", authParams(), "alice", "alice")
	resp := other.post(formAction(t, early.body, "kc-form-login"), url.Values{"username": {"bob"}, "password": {"bob"}})
	if resp.status != http.StatusBadRequest {
		t.Fatalf("different user: %d %s", resp.status, resp.body)
	}
	pageHas(t, resp, "You are already authenticated as different user 'alice' in this session. Please sign out first.")
}

func TestBasePathCookies(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm(), WithBasePath("/auth"))
	b := newBrowser(t)
	page := b.get(authURL(s, "demo", authParams()))
	if !strings.Contains(formAction(t, page.body, "kc-form-login"), "/auth/realms/demo/login-actions/authenticate?") {
		t.Errorf("action %s", formAction(t, page.body, "kc-form-login"))
	}
	resp := b.post(formAction(t, page.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		if c.Path != "/auth/realms/demo/" {
			t.Errorf("cookie %s path %q", c.Name, c.Path)
		}
	}
	codeOf(t, s, "demo", redirectTo(t, resp))
	// The SSO cookie is sent back under the base path.
	codeOf(t, s, "demo", redirectTo(t, b.get(authURL(s, "demo", authParams()))))
}
