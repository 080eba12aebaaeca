package login_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// TestFullFlow: login → protected page → refresh after expiry → logout, and
// the Keycloak session is gone too (the next login shows the password form).
func TestFullFlow(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)

	landed := b.login(a, "/private?tab=2", "alice", "alice")
	aliceID, _ := p.kc.UserID("alice")
	if landed.status != 200 || !strings.HasPrefix(landed.body, "private page of alice ("+aliceID+")") || !strings.Contains(landed.body, "greeting=hello Alice") {
		t.Fatalf("after login: %d %s %q", landed.status, landed.url, landed.body)
	}
	if landed.url != a.srv.URL+"/private?tab=2" {
		t.Fatalf("landed on %s, want the page asked for", landed.url)
	}
	cookie := b.cookie(a.srv.URL, "cloakroom")
	if cookie == nil || cookie.Value == "" {
		t.Fatal("no session cookie")
	}
	token1 := b.get(a.srv.URL + "/token").body

	// Past the access token's expiry the middleware refreshes it.
	p.clock.Advance(6 * time.Minute)
	if pg := b.get(a.srv.URL + "/private"); pg.status != 200 || !strings.Contains(pg.body, "alice") {
		t.Fatalf("after expiry: %d %q", pg.status, pg.body)
	}
	token2 := b.get(a.srv.URL + "/token").body
	if token1 == token2 || token2 == "" {
		t.Fatal("the access token was not refreshed")
	}

	// Logout ends the local session and, through Keycloak's end-session
	// endpoint, the Keycloak session.
	out := b.logout(a)
	if out.status != 200 || out.body != "home of nobody" {
		t.Fatalf("after logout: %d %s %q (hops %v)", out.status, out.url, out.body, b.hops)
	}
	if !strings.Contains(strings.Join(b.hops, " "), "/protocol/openid-connect/logout") {
		t.Fatalf("logout did not go through Keycloak: %v", b.hops)
	}
	if len(p.kc.SessionIDs("alice")) != 0 {
		t.Fatal("the Keycloak session survived the logout")
	}
	if pg := b.get(a.srv.URL + "/private"); !strings.Contains(pg.body, `id="kc-form-login"`) {
		t.Fatalf("after logout the next visit should ask for the password, got %d %s", pg.status, pg.url)
	}
	if len(a.events.logins) != 1 || len(a.events.logouts) != 1 {
		t.Fatalf("hooks: logins %v, logouts %v", a.events.logins, a.events.logouts)
	}
}

func TestSSOSecondLoginSkipsForm(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a1 := newApp(t, p, appOptions{})
	a2 := newApp(t, p, appOptions{clientID: "other-app"})
	b := newBrowser(t)
	b.login(a1, "/private", "bob", "bob")
	// Another application of the realm: Keycloak's SSO cookie logs in at once.
	if pg := b.get(a2.srv.URL + "/private"); pg.status != 200 || !strings.Contains(pg.body, "private page of bob") {
		t.Fatalf("SSO login: %d %s", pg.status, pg.url)
	}
}

func TestRolesAndJSONClients(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})

	bob := newBrowser(t)
	bob.login(a, "/private", "bob", "bob")
	if pg := bob.get(a.srv.URL + "/admin"); pg.status != 403 {
		t.Fatalf("bob on /admin: %d", pg.status)
	}
	alice := newBrowser(t)
	alice.login(a, "/private", "alice", "alice")
	if pg := alice.get(a.srv.URL + "/admin"); pg.status != 200 || pg.body != "admin page" {
		t.Fatalf("alice on /admin: %d %q", pg.status, pg.body)
	}
	// A script without a session gets 401 JSON, not a redirect.
	anon := newBrowser(t)
	pg := anon.do(http.MethodGet, a.srv.URL+"/private", nil, http.Header{"Accept": {"application/json"}})
	if pg.status != 401 || !strings.Contains(pg.body, `"code":"not_authenticated"`) || !strings.Contains(pg.body, `"login_url":"/auth/login?return_to=%2Fprivate"`) {
		t.Fatalf("JSON client: %d %q", pg.status, pg.body)
	}
}

func TestParallelTabs(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	// Two tabs start a login before either finishes.
	tab1 := b.get(a.srv.URL + "/private?tab=1")
	tab2 := b.get(a.srv.URL + "/private?tab=2")
	land2 := b.submit(tab2, "kc-form-login", url.Values{"username": {"alice"}, "password": {"alice"}})
	land1 := b.submit(tab1, "kc-form-login", url.Values{"username": {"alice"}, "password": {"alice"}})
	if land1.url != a.srv.URL+"/private?tab=1" || land2.url != a.srv.URL+"/private?tab=2" || land1.status != 200 || land2.status != 200 {
		t.Fatalf("tab1 %d %s, tab2 %d %s", land1.status, land1.url, land2.status, land2.url)
	}
}

func TestStepUp(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "carol", "carol")
	// The password login is acr "1"; /gold needs the second factor.
	pg := b.get(a.srv.URL + "/gold")
	if !strings.Contains(pg.body, `id="kc-otp-login-form"`) {
		t.Fatalf("step-up did not ask for the OTP: %d %s %.200s", pg.status, pg.url, pg.body)
	}
	code, err := keycloaktest.TOTPCode("JBSWY3DPEHPK3PXP", p.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	pg = b.submit(pg, "kc-otp-login-form", url.Values{"otp": {code}})
	if pg.status != 200 || pg.body != "gold page acr=gold" {
		t.Fatalf("after OTP: %d %s %q", pg.status, pg.url, pg.body)
	}
	// Scripts are told a step-up is required.
	anon := newBrowser(t)
	anon.login(a, "/private", "bob", "bob")
	js := anon.do(http.MethodGet, a.srv.URL+"/gold", nil, http.Header{"Accept": {"application/json"}})
	if js.status != 401 || !strings.Contains(js.body, "step_up_required") {
		t.Fatalf("JSON step-up: %d %q", js.status, js.body)
	}
}

func TestAfterLoginCanReject(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{config: func(c *login.Config) {
		c.AfterLogin = func(ctx context.Context, e *login.LoginEvent) error {
			if e.IDClaims.Username() == "bob" {
				return errors.Join(login.ErrLoginRejected, errors.New("bob is suspended here"))
			}
			return nil
		}
	}})
	b := newBrowser(t)
	pg := b.login(a, "/private", "bob", "bob")
	if pg.status != 403 || !strings.Contains(pg.body, "bob is suspended here") {
		t.Fatalf("rejected login: %d %q", pg.status, pg.body)
	}
	if c := b.cookie(a.srv.URL, "cloakroom"); c != nil {
		t.Fatal("a rejected login got a session cookie")
	}
}

func TestRefreshFailures(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")

	// Keycloak unreachable while the access token has expired: 503, and the
	// session survives for when Keycloak is back.
	p.clock.Advance(6 * time.Minute)
	p.srv.SetFault(keycloaktest.Fault{Refuse: true})
	pg := b.get(a.srv.URL + "/private")
	if pg.status != 503 {
		t.Fatalf("refresh with Keycloak down: %d %q", pg.status, pg.body)
	}
	js := b.do(http.MethodGet, a.srv.URL+"/private", nil, http.Header{"Accept": {"application/json"}})
	if js.status != 503 || !strings.Contains(js.body, "idp_unavailable") {
		t.Fatalf("JSON refresh with Keycloak down: %d %q", js.status, js.body)
	}
	p.srv.ClearFault()
	if pg := b.get(a.srv.URL + "/private"); pg.status != 200 {
		t.Fatalf("after Keycloak is back: %d %q", pg.status, pg.body)
	}

	// The Keycloak session ends (admin logout): the refresh gets
	// invalid_grant and the user must log in again.
	for _, sid := range p.kc.SessionIDs("alice") {
		p.kc.EndSession(sid)
	}
	p.clock.Advance(6 * time.Minute)
	if pg := b.get(a.srv.URL + "/private"); !strings.Contains(pg.body, `id="kc-form-login"`) {
		t.Fatalf("after invalid_grant: %d %s", pg.status, pg.url)
	}
}

// TestRefreshWithWrongClientSecret: Keycloak 26 answers a refresh sent
// with a wrong client secret 401 unauthorized_client (observed on 26.7.3,
// conformance token-errors/wrong-secret). That is the application's
// misconfiguration, not the end of the user's session: the user gets 500
// "sign-in is misconfigured" (not 503: waiting does not help) and keeps
// the session, which works again once the secret is right.
func TestRefreshWithWrongClientSecret(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	store := session.NewMemoryStore()
	good := newApp(t, p, appOptions{store: store})
	bad := newApp(t, p, appOptions{store: store, noClient: true, config: func(c *login.Config) { c.ClientSecret = "not-the-secret" }})
	b := newBrowser(t)
	b.login(good, "/private", "alice", "alice")
	p.clock.Advance(6 * time.Minute)
	if pg := b.get(bad.srv.URL + "/private"); pg.status != http.StatusInternalServerError || !strings.Contains(pg.body, "misconfigured") {
		t.Fatalf("refresh with a wrong client secret: %d %s", pg.status, pg.url)
	}
	if pg := b.get(good.srv.URL + "/private"); pg.status != http.StatusOK || !strings.Contains(pg.body, "private page of alice") {
		t.Fatalf("the session did not survive the refused refresh: %d %s", pg.status, pg.url)
	}
}

// TestConcurrentRefreshWithRotation: with refresh-token rotation on, many
// requests of one session on two instances refresh at the same time; the
// user must stay logged in (one refresh token spent once).
func TestConcurrentRefreshWithRotation(t *testing.T) {
	t.Parallel()
	p := newIDP(t, func(c *keycloaktest.RealmConfig) { c.RevokeRefreshToken = true })
	store := session.NewMemoryStore()
	a1 := newApp(t, p, appOptions{store: store})
	a2 := newApp(t, p, appOptions{store: store, noClient: true})
	b := newBrowser(t)
	b.login(a1, "/private", "alice", "alice")
	cookie := b.cookie(a1.srv.URL, "cloakroom")

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for round := range 3 {
		p.clock.Advance(6 * time.Minute)
		var wg sync.WaitGroup
		statuses := make(chan int, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := a1.srv.URL
				if i%2 == 1 {
					target = a2.srv.URL
				}
				req, _ := http.NewRequest("GET", target+"/private", nil)
				req.AddCookie(cookie)
				resp, err := noFollow.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.HasPrefix(string(body), "private page of alice") {
					statuses <- -resp.StatusCode
					return
				}
				statuses <- resp.StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != 200 {
				t.Fatalf("round %d: a request got %d: the user was logged out by a refresh race", round, s)
			}
		}
	}
}

func TestSessionFixation(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	// An attacker plants a well-formed session id in the victim's browser.
	planted := session.NewID()
	u, _ := url.Parse(a.srv.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "cloakroom", Value: planted, Path: "/"}})
	b.login(a, "/private", "alice", "alice")
	got := b.cookie(a.srv.URL, "cloakroom")
	if got == nil || got.Value == planted {
		t.Fatal("the session id did not change at login")
	}
	attacker := newBrowser(t)
	attacker.client.Jar.SetCookies(u, []*http.Cookie{{Name: "cloakroom", Value: planted, Path: "/"}})
	if pg := attacker.get(a.srv.URL + "/"); pg.body != "home of nobody" {
		t.Fatalf("the planted id is logged in: %q", pg.body)
	}
}

func TestCallbackAttacks(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})

	// A victim starts a login; an attacker completes their own login and
	// feeds their code into the victim's callback (code injection): the
	// victim's PKCE verifier does not match the attacker's code.
	victim := newBrowser(t)
	vp := victim.get(a.srv.URL + "/private")
	victimState := stateOf(t, victim.hops)
	attacker := newBrowser(t)
	ap := attacker.get(a.srv.URL + "/private")
	attacker.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	code := attackerCode(t, attacker, ap)
	_ = vp
	pg := victim.get(a.srv.URL + "/auth/callback?" + url.Values{"state": {victimState}, "code": {code}, "iss": {p.kc.Issuer()}}.Encode())
	if pg.status != 400 || strings.Contains(pg.body, "private page") {
		t.Fatalf("injected code: %d %q", pg.status, pg.body)
	}

	tests := []struct {
		name  string
		query func(state string) url.Values
		want  int
	}{
		{"unknown state", func(string) url.Values { return url.Values{"state": {"forged"}, "code": {"x"}} }, 400},
		{"no state", func(string) url.Values { return url.Values{"code": {"x"}} }, 400},
		{"foreign iss", func(s string) url.Values {
			return url.Values{"state": {s}, "code": {"x"}, "iss": {"http://evil.example/realms/demo"}}
		}, 400},
		{"missing iss although promised", func(s string) url.Values { return url.Values{"state": {s}, "code": {"x"}} }, 400},
		{"bogus code", func(s string) url.Values { return url.Values{"state": {s}, "code": {"bogus"}, "iss": {p.kc.Issuer()}} }, 400},
		{"error from Keycloak", func(s string) url.Values {
			return url.Values{"state": {s}, "error": {"access_denied"}, "iss": {p.kc.Issuer()}}
		}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t)
			b.get(a.srv.URL + "/private")
			state := stateOf(t, b.hops)
			pg := b.get(a.srv.URL + "/auth/callback?" + tt.query(state).Encode())
			if pg.status != tt.want {
				t.Fatalf("status %d, want %d: %.200s", pg.status, tt.want, pg.body)
			}
			if b.cookie(a.srv.URL, "cloakroom") != nil {
				t.Fatal("a failed callback created a session")
			}
		})
	}

	// Code replay: the browser's own successful callback, sent again.
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	var callback string
	for _, h := range b.hops {
		if strings.Contains(h, "/auth/callback") {
			callback = h
		}
	}
	replay := newBrowser(t)
	if pg := replay.get(callback); pg.status != 400 {
		t.Fatalf("replayed callback in another browser: %d", pg.status)
	}
	if pg := b.get(callback); pg.status != 400 {
		t.Fatalf("replayed callback in the same browser: %d", pg.status)
	}
}

// stateOf returns the state parameter of the authorization request among hops.
func stateOf(t *testing.T, hops []string) string {
	t.Helper()
	for _, h := range hops {
		if strings.Contains(h, "/protocol/openid-connect/auth") {
			u, _ := url.Parse(h)
			return u.Query().Get("state")
		}
	}
	t.Fatalf("no authorization request among %v", hops)
	return ""
}

// attackerCode logs the attacker in at Keycloak and stops before the app's
// callback, returning the code.
func attackerCode(t *testing.T, b *browser, loginPage page) string {
	t.Helper()
	m := formAction.FindStringSubmatch(loginPage.body)
	if m == nil {
		t.Fatal("no login form")
	}
	base, _ := url.Parse(loginPage.url)
	target, _ := base.Parse(strings.ReplaceAll(m[2], "&amp;", "&"))
	resp, err := b.client.PostForm(target.String(), url.Values{"username": {"bob"}, "password": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code in %q", resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func TestOpenRedirects(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	for _, target := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)", "/%2F%2Fevil.example"} {
		b := newBrowser(t)
		pg := b.get(a.srv.URL + "/auth/login?return_to=" + url.QueryEscape(target))
		if pg.status != 400 {
			t.Errorf("return_to %q: %d %s", target, pg.status, pg.url)
		}
	}
	// Post-logout destinations are checked the same way.
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	m := csrfRe.FindStringSubmatch(b.get(a.srv.URL + "/private").body)
	pg := b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {m[1]}, "return_to": {"//evil.example/"}}, nil)
	if !strings.HasPrefix(pg.url, a.srv.URL) {
		t.Fatalf("post-logout redirect left the site: %s", pg.url)
	}
}

func TestLogoutNeedsCSRFToken(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf_token": {"nope"}}, nil},
		{"right token, foreign origin", nil, http.Header{"Origin": {"https://evil.example"}}},
	} {
		form := tc.form
		if form == nil {
			m := csrfRe.FindStringSubmatch(b.get(a.srv.URL + "/private").body)
			form = url.Values{"csrf_token": {m[1]}}
		}
		if pg := b.do(http.MethodPost, a.srv.URL+"/auth/logout", form, tc.header); pg.status != 403 {
			t.Errorf("%s: %d", tc.name, pg.status)
		}
	}
	if pg := b.get(a.srv.URL + "/private"); pg.status != 200 {
		t.Fatal("a refused logout ended the session")
	}
	// GET shows a confirmation form instead of logging out.
	if pg := b.get(a.srv.URL + "/auth/logout"); pg.status != 200 || !strings.Contains(pg.body, `id="logout"`) {
		t.Fatalf("GET logout: %d", pg.status)
	}
	if pg := b.get(a.srv.URL + "/private"); pg.status != 200 {
		t.Fatal("GET logout ended the session")
	}
}

func TestRegisterLink(t *testing.T) {
	t.Parallel()
	p := newIDP(t, func(c *keycloaktest.RealmConfig) { c.RegistrationAllowed = true })
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	pg := b.get(a.srv.URL + "/auth/register?return_to=/private")
	if !strings.Contains(pg.body, `id="kc-register-form"`) {
		t.Fatalf("register: %d %s", pg.status, pg.url)
	}
	pg = b.submit(pg, "kc-register-form", url.Values{
		"firstName": {"Dora"}, "lastName": {"New"}, "email": {"dora@example.com"},
		"username": {"dora"}, "password": {"pw-Dora-1"}, "password-confirm": {"pw-Dora-1"},
	})
	if pg.status != 200 || !strings.Contains(pg.body, "private page of dora") {
		t.Fatalf("after registration: %d %s %q", pg.status, pg.url, pg.body)
	}
}

func TestPassThroughParameters(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.client.Get(a.srv.URL + "/auth/login?login_hint=alice&ui_locales=de&kc_idp_hint=github&acr_values=gold&kc_action=UPDATE_PASSWORD&prompt=login&max_age=60&other=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	for k, v := range map[string]string{"login_hint": "alice", "ui_locales": "de", "kc_idp_hint": "github", "acr_values": "gold", "kc_action": "UPDATE_PASSWORD", "prompt": "login", "max_age": "60", "code_challenge_method": "S256", "response_type": "code", "client_id": "webapp"} {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Get("other") != "" || q.Get("state") == "" || q.Get("nonce") == "" || len(q.Get("code_challenge")) != 43 {
		t.Errorf("authorization request: %v", q)
	}
	if q.Get("redirect_uri") != a.srv.URL+"/auth/callback" {
		t.Errorf("redirect_uri = %q", q.Get("redirect_uri"))
	}
}

// ?organization=ALIAS asks Keycloak for that organization the way it
// documents: the scope organization:ALIAS (a kc_org parameter is ignored).
func TestOrganizationHint(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		org, wantScope string
		status         int
	}{
		{"acme", "openid profile email organization:acme", http.StatusFound},
		{"*", "openid profile email organization:*", http.StatusFound},
		{"", "openid profile email", http.StatusFound},
		{"acme corp", "", http.StatusBadRequest},
		{"acme\nx", "", http.StatusBadRequest},
		{"a\"b", "", http.StatusBadRequest},
	} {
		resp, err := b.client.Get(a.srv.URL + "/auth/login?organization=" + url.QueryEscape(tc.org))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%q: status %d, want %d", tc.org, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != http.StatusFound {
			continue
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); q.Get("scope") != tc.wantScope || q.Has("organization") {
			t.Errorf("%q: authorization request %v, want scope %q", tc.org, q, tc.wantScope)
		}
	}
}

func TestPromptNoneWithoutSession(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	pg := b.get(a.srv.URL + "/auth/login?prompt=none&return_to=/")
	if pg.status != 200 || pg.body != "home of nobody" {
		t.Fatalf("silent login without a Keycloak session: %d %s %q", pg.status, pg.url, pg.body)
	}
}

// TestStepUpCannotLoop: a user who cannot reach the level (no second factor)
// gets a 403 page after one round trip, not an endless redirect loop.
func TestStepUpCannotLoop(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "bob", "bob")
	pg := b.get(a.srv.URL + "/gold")
	if pg.status != 403 || !strings.Contains(pg.body, "Stronger login required") {
		t.Fatalf("step-up without a second factor: %d at %s after %d hops: %.300s", pg.status, pg.url, len(b.hops), pg.body)
	}
	if len(b.hops) > 8 {
		t.Fatalf("too many hops: %v", b.hops)
	}
}
