package e2e

import (
	"context"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// upstreamPage shows the identity the gateway sent, as an application
// behind it (in any language) would read it.
var upstreamPage = template.Must(template.New("u").Parse(`<!doctype html><title>upstream</title>
<h1 id="where">{{.Path}}</h1>
<p>user <span id="user">{{.User}}</span></p>
<p>username <span id="username">{{.Username}}</span></p>
<p>email <span id="email">{{.Email}}</span></p>
<p>roles <span id="roles">{{.Roles}}</span></p>
<p><a id="logout-link" href="/_cloakroom/logout">Log out</a></p>`))

// seenRequest is what the upstream received.
type seenRequest struct {
	path   string
	header http.Header
}

// gatewayEnv is keycloaktest, an upstream application and the gateway in
// front of it, all in the test process.
type gatewayEnv struct {
	url string // the gateway
	kc  *keycloaktest.Realm

	mu   sync.Mutex
	seen []seenRequest
}

// requests returns what the upstream has received so far.
func (e *gatewayEnv) requests() []seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seenRequest(nil), e.seen...)
}

// newGatewayEnv starts the three parts. The gateway has the Keycloak client
// "gateway" with its back-channel logout URL, sessions in SQLite, and the
// routes /admin (realm role admin), /public (no login) and / (login).
//
// Call it before chromium(t), so that Chromium closes first at cleanup: a
// browser keeps spare connections open, and the gateway's graceful shutdown
// would wait 5 s for them (net/http counts a connection without a request
// as idle only after 5 s).
func newGatewayEnv(t *testing.T) *gatewayEnv {
	t.Helper()
	if os.Getenv("CLOAKROOM_TEST_CHROMIUM") == "" {
		t.Skip("set CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	e := &gatewayEnv{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, seenRequest{path: r.URL.Path, header: r.Header.Clone()})
		e.mu.Unlock()
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		h := gateway.DefaultHeaders
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = upstreamPage.Execute(w, map[string]string{
			"Path": r.URL.Path, "User": r.Header.Get(h.User), "Username": r.Header.Get(h.Username),
			"Email": r.Header.Get(h.Email), "Roles": r.Header.Get(h.Roles),
		})
	}))
	t.Cleanup(up.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()

	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	e.kc = idp.Realm("demo")
	if err := e.kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "gateway", Secret: "gateway-secret", StandardFlow: true, Audiences: []string{"gateway"},
		RedirectURIs: []string{e.url + "/*"}, PostLogoutRedirectURIs: []string{e.url + "/*"},
		BackchannelLogoutURL: e.url + "/_cloakroom/backchannel-logout", BackchannelLogoutSessionRequired: true,
	}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), gateway.Config{
		Listen: ln.Addr().String(), PublicURL: e.url,
		Issuer: e.kc.Issuer(), ClientID: "gateway", ClientSecret: "gateway-secret",
		Session: gateway.SessionConfig{
			Store:          "sqlite:" + filepath.Join(t.TempDir(), "sessions.db"),
			EncryptionKeys: []string{session.GenerateKey()},
		},
		Routes: []gateway.Route{
			{Name: "admin", Path: "/admin", Upstream: up.URL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "public", Path: "/public", Upstream: up.URL, Public: true},
			{Name: "app", Path: "/", Upstream: up.URL},
		},
	}, gateway.WithLogger(quiet))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
	})
	return e
}

// gatewayLogin opens a protected page through the gateway, checks that the
// browser lands on the keycloaktest login form, and logs in there.
func (e *gatewayEnv) gatewayLogin(t *testing.T, ctx context.Context, path, user string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+path),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
	); err != nil {
		t.Fatalf("%s: no login form: %v", path, err)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, e.kc.Issuer()+"/protocol/openid-connect/auth?") {
		t.Fatalf("the login form is not the provider's: %q, %v", loc, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), user),
		chromedp.Click(chromedp.CSS("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#where")),
	); err != nil {
		t.Fatalf("logging in as %s: %v", user, err)
	}
}

// status navigates to u and returns the HTTP status of the document.
func status(ctx context.Context, u string) (int64, error) {
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
	if err != nil {
		return 0, err
	}
	return resp.Status, nil
}

// TestGatewayBrowserLogin: a protected page sends the browser to the
// keycloaktest login form; after the password it is back on that page, and
// the upstream shows the identity the gateway sent.
func TestGatewayBrowserLogin(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	e.gatewayLogin(t, ctx, "/reports?month=11", "alice")

	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != e.url+"/reports?month=11" {
		t.Fatalf("landed on %q, %v", loc, err)
	}
	aliceID, _ := e.kc.UserID("alice")
	tests := []struct {
		sel  string
		want func(string) bool
	}{
		{"#where", func(s string) bool { return s == "/reports" }},
		{"#user", func(s string) bool { return s == aliceID }},
		{"#username", func(s string) bool { return s == "alice" }},
		{"#email", func(s string) bool { return s == "alice@example.com" }},
		{"#roles", func(s string) bool { return strings.Contains(s, "admin") && strings.Contains(s, "user") }},
	}
	for _, tt := range tests {
		if got, err := text(ctx, tt.sel); err != nil || !tt.want(got) {
			t.Errorf("%s = %q, %v", tt.sel, got, err)
		}
	}
	if len(e.kc.SessionIDs("alice")) != 1 {
		t.Error("no Keycloak session for alice")
	}
}

// TestGatewayRoles: bob (realm role user) gets 403 on the admin-only route;
// alice (admin), in another browser profile, gets in.
func TestGatewayRoles(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	aliceCtx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext()) // own cookies
	defer cancel()

	e.gatewayLogin(t, ctx, "/", "bob")
	e.gatewayLogin(t, aliceCtx, "/", "alice")
	tests := []struct {
		who    string
		ctx    context.Context
		status int64
		sel    string
		want   string
	}{
		{"bob", ctx, http.StatusForbidden, "h1", "Access denied"},
		{"alice", aliceCtx, http.StatusOK, "#where", "/admin/settings"},
	}
	for _, tt := range tests {
		code, err := status(tt.ctx, e.url+"/admin/settings")
		if err != nil || code != tt.status {
			t.Errorf("%s on /admin/settings: status %d, %v; want %d", tt.who, code, err, tt.status)
			continue
		}
		if got, err := text(tt.ctx, tt.sel); err != nil || got != tt.want {
			t.Errorf("%s on /admin/settings: %s = %q, %v; want %q", tt.who, tt.sel, got, err, tt.want)
		}
	}
	for _, r := range e.requests() {
		if strings.HasPrefix(r.path, "/admin") && r.header.Get("X-Forwarded-Preferred-Username") != "alice" {
			t.Errorf("the upstream got %s for %q", r.path, r.header.Get("X-Forwarded-Preferred-Username"))
		}
	}
}

// TestGatewayLogoutEndsKeycloakSession: logging out through the gateway
// (the link, then the confirmation button) ends the gateway session and the
// Keycloak session, so the next visit asks for the password again.
func TestGatewayLogoutEndsKeycloakSession(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	e.gatewayLogin(t, ctx, "/", "alice")

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#logout-link")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#logout")),
		// Back from Keycloak's end-session endpoint: "You have been signed
		// out"; signing in again needs the password, not an SSO pass-through.
		chromedp.WaitVisible(chromedp.CSS("#login")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
	); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n := len(e.kc.SessionIDs("alice")); n != 0 {
		t.Fatalf("%d Keycloak sessions left after logout", n)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Fatalf("the next visit did not ask for the password: %v", err)
	}
}

// TestGatewayBackchannelLogout: ending the session in Keycloak (an admin's
// "sign out") posts a logout token to the gateway, which ends the browser's
// session: the next navigation shows the login form.
func TestGatewayBackchannelLogout(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	e.gatewayLogin(t, ctx, "/", "alice")
	// The session works before.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/again"), chromedp.WaitVisible(chromedp.CSS("#where"))); err != nil {
		t.Fatal(err)
	}

	sids := e.kc.SessionIDs("alice")
	if len(sids) != 1 {
		t.Fatalf("Keycloak sessions of alice: %v", sids)
	}
	e.kc.EndSession(sids[0])
	delivered := false
	for _, d := range e.kc.LogoutDeliveries() {
		if d.ClientID == "gateway" && d.SessionID == sids[0] {
			if d.Err != nil {
				t.Fatalf("back-channel logout to the gateway failed: %v (status %d)", d.Err, d.Status)
			}
			delivered = true
		}
	}
	if !delivered {
		t.Fatal("no back-channel logout was sent to the gateway")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/after"), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Fatalf("still logged in after the back-channel logout: %v", err)
	}
	for _, r := range e.requests() {
		if r.path == "/after" {
			t.Fatal("the upstream was reached after the back-channel logout")
		}
	}
}

// TestGatewaySpoofedHeaders: identity headers sent by the client (the
// browser, or any HTTP client) never reach the upstream; the upstream sees
// only what the gateway vouches for, and spoofed roles open nothing.
func TestGatewaySpoofedHeaders(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	e.gatewayLogin(t, ctx, "/", "bob")
	bobID, _ := e.kc.UserID("bob")

	spoofed := map[string]string{
		"X-Forwarded-User":               "mallory",
		"X-Forwarded-Email":              "mallory@evil.example",
		"X-Forwarded-Preferred-Username": "mallory",
		"X-Forwarded-Roles":              "admin",
		"X-Forwarded-Groups":             "/admins",
		"X-Forwarded-Access-Token":       "forged-token",
		"X_Forwarded_User":               "mallory",
		"x-forwarded-roles":              "admin",
	}
	extra := network.Headers{"X-Probe": "sent-by-browser"} // not an identity header: must arrive
	for k, v := range spoofed {
		extra[k] = v
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: extra}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/spoof"), chromedp.WaitVisible(chromedp.CSS("#where"))); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{"#user": bobID, "#username": "bob", "#email": "bob@example.com"} {
		if got, err := text(ctx, sel); err != nil || got != want {
			t.Errorf("with spoofed headers %s = %q, %v; want %q", sel, got, err, want)
		}
	}
	if roles, _ := text(ctx, "#roles"); strings.Contains(","+roles+",", ",admin,") {
		t.Errorf("spoofed role reached the upstream: %q", roles)
	}
	if code, err := status(ctx, e.url+"/admin"); err != nil || code != http.StatusForbidden {
		t.Errorf("bob with a spoofed admin role on /admin: %d, %v", code, err)
	}

	// A plain client on the public route, without any session.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/public/plain", nil)
	for k, v := range spoofed {
		req.Header[k] = []string{v} // as sent, not canonicalized
	}
	req.Header.Set("X-Probe", "sent-by-client")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("public route: %d", resp.StatusCode)
	}

	probes := map[string]bool{}
	for _, r := range e.requests() {
		if r.path != "/spoof" && r.path != "/public/plain" {
			continue
		}
		probes[r.header.Get("X-Probe")] = true
		for name, values := range r.header {
			for _, v := range values {
				if strings.Contains(v, "mallory") || strings.Contains(v, "forged") || v == "/admins" || (v == "admin" && !strings.EqualFold(name, "X-Probe")) {
					t.Errorf("%s: the upstream received %s: %q", r.path, name, v)
				}
			}
		}
		if r.path == "/public/plain" && r.header.Get("X-Forwarded-User") != "" {
			t.Errorf("anonymous request reached the upstream with X-Forwarded-User %q", r.header.Get("X-Forwarded-User"))
		}
	}
	// The spoofed headers were really sent: their harmless companion arrived.
	if !probes["sent-by-browser"] || !probes["sent-by-client"] {
		t.Fatalf("probe header not seen by the upstream: %v", probes)
	}
}
