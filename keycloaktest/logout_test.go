package keycloaktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// receiver is a back-channel logout endpoint of a client application.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
	ctypes []string
	status int
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(body))
		rc.mu.Lock()
		rc.tokens = append(rc.tokens, form.Get("logout_token"))
		rc.ctypes = append(rc.ctypes, req.Header.Get("Content-Type"))
		status := rc.status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.tokens...)
}

// logoutServer is the demo realm with back-channel receivers for both
// clients; the public client does not require sid.
func logoutServer(t *testing.T, clock *fakeClock) (*Server, *receiver, *receiver) {
	conf := newReceiver(t, http.StatusOK)
	pub := newReceiver(t, http.StatusNoContent)
	s := browserServer(t, clock, func(c *RealmConfig) {
		c.Clients[0].BackchannelLogoutURL = conf.srv.URL + "/backchannel"
		c.Clients[1].BackchannelLogoutURL = pub.srv.URL + "/backchannel"
		c.Clients[1].PostLogoutRedirectURIs = []string{"http://127.0.0.1:8000/bye"}
	})
	return s, conf, pub
}

// verifyLogoutToken checks a logout token with go-jose against the JWKS.
func verifyLogoutToken(t *testing.T, s *Server, tok string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse logout token: %v", err)
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders[jose.HeaderType] != "logout+jwt" || h.KeyID != s.Realm("demo").ActiveKeyID() {
		t.Errorf("logout token header typ %v kid %q", h.ExtraHeaders[jose.HeaderType], h.KeyID)
	}
	set := fetchJWKS(t, s, "demo")
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		t.Fatal("logout token kid not in JWKS")
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != s.Issuer("demo") || c["jti"] == nil || c["nonce"] != nil {
		t.Errorf("logout claims %v", c)
	}
	if iat, exp := c["iat"].(float64), c["exp"].(float64); exp-iat != 120 {
		t.Errorf("exp-iat = %v", exp-iat)
	}
	ev, _ := c["events"].(map[string]any)
	if _, ok := ev[backchannelLogoutEvent].(map[string]any); !ok {
		t.Errorf("events %v", c["events"])
	}
	return c
}

func TestEndSessionWithHint(t *testing.T) {
	t.Parallel()
	s, conf, pub := logoutServer(t, nil)
	r := s.Realm("demo")
	b := newBrowser(t)
	u := b.login(s, "demo", authParams(), "alice", "alice")
	sid := u.Query().Get("session_state")
	tok := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))
	// The public client joins the session too.
	codeOf(t, s, "demo", redirectTo(t, b.get(authURL(s, "demo", authParams("client_id", DemoPublicClientID)))))

	q := url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {"http://127.0.0.1:8000/after"}, "state": {"ls-1"}}
	resp := b.get(s.Issuer("demo") + "/protocol/openid-connect/logout?" + q.Encode())
	if resp.status != http.StatusFound || resp.header.Get("Location") != "http://127.0.0.1:8000/after?state=ls-1" {
		t.Fatalf("logout: %d %q\n%s", resp.status, resp.header.Get("Location"), resp.body)
	}
	// Both clients got a logout token before the redirect.
	ct, pt := conf.received(), pub.received()
	if len(ct) != 1 || len(pt) != 1 {
		t.Fatalf("deliveries: confidential %d, public %d", len(ct), len(pt))
	}
	aliceID, _ := r.UserID("alice")
	c := verifyLogoutToken(t, s, ct[0])
	if c["aud"] != DemoClientID || c["sub"] != aliceID || c["sid"] != sid {
		t.Errorf("confidential client's token %v", c)
	}
	if p := verifyLogoutToken(t, s, pt[0]); p["aud"] != DemoPublicClientID || p["sid"] != nil {
		t.Errorf("public client's token (no sid required) %v", p)
	}
	if conf.ctypes[0] != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", conf.ctypes[0])
	}
	ds := r.LogoutDeliveries()
	if len(ds) != 2 || ds[0].Err != nil || ds[0].SessionID != sid || ds[0].Token == "" || ds[0].Time.IsZero() {
		t.Errorf("deliveries %+v", ds)
	}

	// The session is gone: refresh fails, the cookie logs in no more.
	ref := postForm(t, tokenURL(s, "demo"), refreshForm(tok["refresh_token"].(string)), DemoClientID+":"+DemoClientSecret)
	if b := ref.json(t); b["error_description"] != "Session not active" {
		t.Errorf("refresh after logout: %v", b)
	}
	if p := b.get(authURL(s, "demo", authParams())); !hasForm(p.body, "kc-form-login") {
		t.Errorf("SSO after logout: %d", p.status)
	}
	if got := b.cookie(s.Issuer("demo")+"/", cookieIdentity); got != "" {
		t.Errorf("identity cookie kept: %q", got)
	}
}

func TestEndSessionVariants(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s, _, _ := logoutServer(t, clock)
	logoutURL := s.Issuer("demo") + "/protocol/openid-connect/logout"
	idToken := func(b *browser, client string) string {
		u := b.login(s, "demo", authParams("client_id", client), "alice", "alice")
		if client == DemoClientID {
			return mustExchange(t, s, "demo", codeOf(t, s, "demo", u))["id_token"].(string)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {codeOf(t, s, "demo", u)}, "redirect_uri": {testRedirect}, "client_id": {client}}
		return postForm(t, tokenURL(s, "demo"), form).json(t)["id_token"].(string)
	}

	t.Run("invalid redirect", func(t *testing.T) {
		b := newBrowser(t)
		q := url.Values{"id_token_hint": {idToken(b, DemoClientID)}, "post_logout_redirect_uri": {"http://evil.example/"}}
		resp := b.get(logoutURL + "?" + q.Encode())
		if resp.status != 400 {
			t.Fatalf("%d", resp.status)
		}
		pageHas(t, resp, msgInvalidRedirectURI)
	})
	t.Run("redirect not in the client's post-logout list", func(t *testing.T) {
		b := newBrowser(t)
		q := url.Values{"id_token_hint": {idToken(b, DemoPublicClientID)}, "post_logout_redirect_uri": {testRedirect}}
		if resp := b.get(logoutURL + "?" + q.Encode()); resp.status != 400 {
			t.Errorf("%d", resp.status)
		}
	})
	t.Run("redirect without hint or client", func(t *testing.T) {
		resp := newBrowser(t).get(logoutURL + "?" + url.Values{"post_logout_redirect_uri": {testRedirect}}.Encode())
		if resp.status != 400 {
			t.Fatalf("%d", resp.status)
		}
		pageHas(t, resp, msgLogoutClientOrHint)
	})
	t.Run("hint is not an ID token", func(t *testing.T) {
		access := passwordLogin(t, s, "bob", "bob", "openid")["access_token"].(string)
		resp := newBrowser(t).get(logoutURL + "?" + url.Values{"id_token_hint": {access}}.Encode())
		if resp.status != 400 {
			t.Errorf("%d", resp.status)
		}
		forged := s.Realm("demo").MustToken(t, "bob", DemoClientID, WithKind(IDToken), WithUnknownKey())
		if resp := newBrowser(t).get(logoutURL + "?" + url.Values{"id_token_hint": {forged}}.Encode()); resp.status != 400 {
			t.Errorf("unknown key: %d", resp.status)
		}
	})
	t.Run("client_id differs from the hint", func(t *testing.T) {
		b := newBrowser(t)
		q := url.Values{"id_token_hint": {idToken(b, DemoClientID)}, "client_id": {DemoPublicClientID}}
		if resp := b.get(logoutURL + "?" + q.Encode()); resp.status != 400 {
			t.Errorf("%d", resp.status)
		}
	})
	t.Run("legacy redirect_uri", func(t *testing.T) {
		if resp := newBrowser(t).get(logoutURL + "?redirect_uri=" + url.QueryEscape(testRedirect)); resp.status != 400 {
			t.Errorf("%d", resp.status)
		}
	})
	t.Run("expired hint still logs out", func(t *testing.T) {
		b := newBrowser(t)
		hint := idToken(b, DemoClientID)
		clock.Advance(time.Hour)
		resp := b.get(logoutURL + "?" + url.Values{"id_token_hint": {hint}}.Encode())
		if resp.status != 200 {
			t.Fatalf("%d %s", resp.status, resp.body)
		}
		pageHas(t, resp, msgLoggedOut)
	})
	t.Run("no hint: confirmation page", func(t *testing.T) {
		b := newBrowser(t)
		u := b.login(s, "demo", authParams(), "alice", "alice")
		sid := u.Query().Get("session_state")
		q := url.Values{"client_id": {DemoClientID}, "post_logout_redirect_uri": {"http://127.0.0.1:8000/x"}, "state": {"s2"}}
		page := b.get(logoutURL + "?" + q.Encode())
		if page.status != 200 || !strings.Contains(string(page.body), `id="kc-logout"`) {
			t.Fatalf("confirmation page:\n%s", page.body)
		}
		if !slicesContains(s.Realm("demo").SessionIDs("alice"), sid) {
			t.Fatal("session ended before confirmation")
		}
		action := regexp1(t, string(page.body), `<form class="form-actions" action="([^"]+)"`)
		code := regexp1(t, string(page.body), `name="session_code" value="([^"]+)"`)
		resp := b.post(action, url.Values{"session_code": {code}, "confirmLogout": {"Logout"}})
		if resp.status != 302 || resp.header.Get("Location") != "http://127.0.0.1:8000/x?state=s2" {
			t.Fatalf("after confirmation: %d %q", resp.status, resp.header.Get("Location"))
		}
		if slicesContains(s.Realm("demo").SessionIDs("alice"), sid) {
			t.Error("session still live")
		}
		// The confirmation code works once.
		if again := b.post(action, url.Values{"session_code": {code}}); again.status != 400 {
			t.Errorf("confirmation replay: %d", again.status)
		}
	})
	t.Run("no hint, no redirect: logged-out page", func(t *testing.T) {
		b := newBrowser(t)
		b.login(s, "demo", authParams(), "bob", "bob")
		page := b.get(logoutURL)
		action := regexp1(t, string(page.body), `<form class="form-actions" action="([^"]+)"`)
		resp := b.post(action, url.Values{"session_code": {regexp1(t, string(page.body), `name="session_code" value="([^"]+)"`)}})
		if resp.status != 200 {
			t.Fatalf("%d", resp.status)
		}
		pageHas(t, resp, msgLoggedOut)
	})
	t.Run("no hint, no SSO cookie, known client and redirect: straight redirect", func(t *testing.T) {
		q := url.Values{"client_id": {DemoClientID}, "post_logout_redirect_uri": {testRedirect}, "state": {"z"}}
		resp := newBrowser(t).get(logoutURL + "?" + q.Encode())
		if resp.status != 302 || resp.header.Get("Location") != testRedirect+"?state=z" {
			t.Errorf("%d %q", resp.status, resp.header.Get("Location"))
		}
	})
	t.Run("hint for another session: confirmation", func(t *testing.T) {
		hint := idToken(newBrowser(t), DemoClientID)
		b := newBrowser(t)
		b.login(s, "demo", authParams(), "bob", "bob")
		page := b.get(logoutURL + "?" + url.Values{"id_token_hint": {hint}}.Encode())
		if !strings.Contains(string(page.body), `id="kc-logout"`) {
			t.Errorf("no confirmation:\n%s", page.body)
		}
	})
	t.Run("hint without SSO cookie ends the hint's session", func(t *testing.T) {
		b := newBrowser(t)
		u := b.login(s, "demo", authParams(), "alice", "alice")
		hint := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))["id_token"].(string)
		resp := newBrowser(t).get(logoutURL + "?" + url.Values{"id_token_hint": {hint}}.Encode())
		pageHas(t, resp, msgLoggedOut)
		if slicesContains(s.Realm("demo").SessionIDs("alice"), u.Query().Get("session_state")) {
			t.Error("session still live")
		}
	})
	t.Run("legacy POST with refresh token", func(t *testing.T) {
		login := passwordLogin(t, s, "bob", "bob", "")
		form := url.Values{"refresh_token": {login["refresh_token"].(string)}}
		if resp := postForm(t, logoutURL, form, DemoClientID+":"+DemoClientSecret); resp.status != 204 {
			t.Fatalf("%d %s", resp.status, resp.body)
		}
		if b := postForm(t, tokenURL(s, "demo"), refreshForm(login["refresh_token"].(string)), DemoClientID+":"+DemoClientSecret).json(t); b["error_description"] != "Session not active" {
			t.Errorf("%v", b)
		}
		if resp := postForm(t, logoutURL, form, DemoClientID+":wrong"); resp.status != 401 {
			t.Errorf("bad client: %d", resp.status)
		}
	})
}

func TestBackchannelTriggers(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s, conf, _ := logoutServer(t, clock)
	r := s.Realm("demo")
	session := func(user string) string {
		u := newBrowser(t).login(s, "demo", authParams(), user, user)
		mustExchange(t, s, "demo", codeOf(t, s, "demo", u))
		return u.Query().Get("session_state")
	}
	sidOf := func(tok string) any { return decode(t, tok).claims["sid"] }

	sid := session("alice")
	r.EndSession(sid)
	if got := conf.received(); len(got) != 1 || sidOf(got[0]) != sid {
		t.Fatalf("EndSession: %d deliveries", len(got))
	}
	r.EndSession(sid) // already ended: nothing more
	if len(conf.received()) != 1 {
		t.Error("second EndSession delivered again")
	}

	sid = session("alice")
	clock.Advance(r.cfg.SSOSessionIdle + time.Second)
	r.ExpireSessions()
	if got := conf.received(); len(got) != 2 || sidOf(got[1]) != sid {
		t.Fatalf("ExpireSessions: %d deliveries", len(got))
	}

	// Disabling ends no session, as in Keycloak 26.7.3 (conformance:
	// disable-user): nothing is delivered.
	session("bob")
	if err := r.SetUserEnabled("bob", false); err != nil {
		t.Fatal(err)
	}
	if got := conf.received(); len(got) != 2 {
		t.Fatalf("disable: %d deliveries, want none", len(got))
	}
	if err := r.SetUserEnabled("bob", true); err != nil {
		t.Fatal(err)
	}

	sid = session("bob")
	if err := r.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	// bob's two sessions end: the one from before the disable, and sid.
	if got := conf.received(); len(got) != 4 || (sidOf(got[2]) != sid && sidOf(got[3]) != sid) {
		t.Fatalf("delete: %d deliveries", len(got))
	}

	// The maximum lifespan ends even a busy session.
	sid = session("alice")
	for range 3 {
		clock.Advance(r.cfg.SSOSessionMax / 3)
		r.mu.Lock()
		r.sessions[sid].last = clock.Now() // kept busy
		r.mu.Unlock()
	}
	clock.Advance(time.Second)
	r.ExpireSessions()
	if got := conf.received(); len(got) != 5 || sidOf(got[4]) != sid {
		t.Fatalf("max lifespan: %d deliveries", len(got))
	}

	// Revoking the refresh token of the session's only client ends it.
	u := newBrowser(t).login(s, "demo", authParams(), "alice", "alice")
	rt := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))["refresh_token"].(string)
	if resp := postForm(t, s.Issuer("demo")+"/protocol/openid-connect/revoke", url.Values{"token": {rt}}, DemoClientID+":"+DemoClientSecret); resp.status != 200 {
		t.Fatalf("revoke: %d", resp.status)
	}
	if got := conf.received(); len(got) != 6 || sidOf(got[5]) != u.Query().Get("session_state") {
		t.Fatalf("revoke: %d deliveries", len(got))
	}

	// A failing receiver is recorded; the session ends anyway.
	conf.mu.Lock()
	conf.status = http.StatusInternalServerError
	conf.mu.Unlock()
	sid = session("alice")
	r.EndSession(sid)
	ds := r.LogoutDeliveries()
	last := ds[len(ds)-1]
	if last.Status != 500 || last.Err == nil || last.ClientID != DemoClientID || last.URL != conf.srv.URL+"/backchannel" {
		t.Errorf("failed delivery %+v", last)
	}
	if slicesContains(r.SessionIDs("alice"), sid) {
		t.Error("session live after a failed delivery")
	}
}

func TestBackchannelUnreachable(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	s := browserServer(t, nil, func(c *RealmConfig) { c.Clients[0].BackchannelLogoutURL = deadURL })
	u := newBrowser(t).login(s, "demo", authParams(), "alice", "alice")
	s.Realm("demo").EndSession(u.Query().Get("session_state"))
	ds := s.Realm("demo").LogoutDeliveries()
	if len(ds) != 1 || ds[0].Err == nil || ds[0].Status != 0 {
		t.Errorf("%+v", ds)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func regexp1(t *testing.T, s, expr string) string {
	t.Helper()
	m := regexpMust(expr).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", expr, s)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

func regexpMust(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }
