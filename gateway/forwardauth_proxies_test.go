package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Forward-auth mode behind the real proxies the documentation configures:
// nginx (auth_request) and Caddy (forward_auth), each in front of a test
// application, with the gateway as their auth service and keycloaktest as
// Keycloak. The proxies' configuration is the text of
// docs/forward-auth.md, so the documented snippets are the tested ones.

// docSnippet returns the fenced code block that follows the line
// "<!-- tested: NAME -->" in docs/forward-auth.md.
func docSnippet(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- tested: " + name + " -->\n"
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/forward-auth.md has no %q", strings.TrimSpace(marker))
	}
	if !strings.HasPrefix(rest, "```") {
		t.Fatalf("docs/forward-auth.md: %q is not followed by a code block", strings.TrimSpace(marker))
	}
	_, rest, _ = strings.Cut(rest, "\n")
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("docs/forward-auth.md: the code block after %q does not end", strings.TrimSpace(marker))
	}
	return block + "\n"
}

// replaceAll replaces each old string of the documented snippet (pairs of
// old, new) and fails when one is missing: a changed snippet must not
// silently keep pointing at the documentation's addresses.
func replaceAll(t *testing.T, what, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s no longer contains %q: adjust the test", what, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// startNginxForwardAuth runs nginx on port with the documented server
// block, the gateway at gw and the application at app (host:port).
func startNginxForwardAuth(t *testing.T, port int, gw, app string) {
	t.Helper()
	startNginxForwardAuthHosts(t, port, gw, app)
}

// startNginxForwardAuthHosts is startNginxForwardAuth with one copy of the
// documented server block per host name (server_name), if any, unchanged:
// a login started on another host than public_url's is moved there by
// /_cloakroom/start itself.
func startNginxForwardAuthHosts(t *testing.T, port int, gw, app string, hosts ...string) {
	t.Helper()
	bin := lookTool(t, "CLOAKROOM_TEST_NGINX", "nginx", "/usr/sbin/nginx")
	if out, _ := exec.Command(bin, "-V").CombinedOutput(); !strings.Contains(string(out), "--with-http_auth_request_module") {
		t.Skipf("%s has no auth_request module (nginx -V: %s)", bin, out)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	identity := filepath.Join(dir, "cloakroom-identity.conf")
	if err := os.WriteFile(identity, []byte(docSnippet(t, "nginx cloakroom-identity.conf")), 0o644); err != nil {
		t.Fatal(err)
	}
	server := replaceAll(t, "the documented nginx app.conf", docSnippet(t, "nginx app.conf"),
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"server 127.0.0.1:4180;", "server "+gw+";",
		"server 127.0.0.1:9000;", "server "+app+";",
		"/etc/nginx/snippets/cloakroom-identity.conf", identity,
	)
	if len(hosts) > 0 {
		upstreams, block, ok := strings.Cut(server, "\nserver {")
		if !ok || !strings.Contains(block, "server_name app.example.com;") {
			t.Fatal("the documented nginx app.conf no longer has one server block for app.example.com: adjust the test")
		}
		server = upstreams
		for _, h := range hosts {
			server += "\nserver {" + strings.Replace(block, "server_name app.example.com;", "server_name "+h+";", 1)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte(server), 0o644); err != nil {
		t.Fatal(err)
	}
	runNginx(t, bin, dir, port, "\tinclude "+filepath.Join(dir, "app.conf")+";")
}

// startCaddyForwardAuth runs Caddy on port with the documented Caddyfile,
// its admin endpoint off and its state in a temporary directory.
func startCaddyForwardAuth(t *testing.T, port int, gw, app string) {
	t.Helper()
	bin := lookTool(t, "CLOAKROOM_TEST_CADDY", "caddy")
	dir := t.TempDir()
	site := replaceAll(t, "the documented Caddyfile", docSnippet(t, "caddy Caddyfile"),
		"app.example.com {", fmt.Sprintf("http://127.0.0.1:%d {", port),
		"127.0.0.1:4180", gw,
		"127.0.0.1:9000", app,
	)
	global := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\n", filepath.Join(dir, "data"))
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(global+site), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	startProcess(t, cmd, port)
}

// recordingUpstream echoes each request as JSON (like newUpstream) and
// records what it received.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []echoed
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := echoed{Method: r.Method, URI: r.RequestURI, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header}
		u.mu.Lock()
		u.seen = append(u.seen, e)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(u.Close)
	return u
}

// reached reports whether the application received a request for path.
func (u *recordingUpstream) reached(path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, e := range u.seen {
		if e.Path == path {
			return true
		}
	}
	return false
}

// forwardAuthEnv is keycloaktest, the application, the gateway in
// forward-auth mode and a real proxy in front.
type forwardAuthEnv struct {
	e     *env
	g     *gw
	app   *recordingUpstream
	front string // the proxy: the origin browsers use
}

func newForwardAuthEnv(t *testing.T, start func(*testing.T, int, string, string)) *forwardAuthEnv {
	t.Helper()
	e := newEnv(t)
	app := newRecordingUpstream(t)
	port := freePort(t)
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	g := e.start(func(c *gateway.Config) {
		c.PublicURL = front
		c.ForwardAuth = true
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []gateway.Route{
			{Name: "admin", Path: "/admin", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "api", Path: "/api", Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"user"}}},
			{Name: "public", Path: "/public", Public: true},
			{Name: "app", Path: "/"},
			// A route no request through the proxy may reach: public, on a
			// host a client might claim in X-Forwarded-Host.
			{Name: "claimed-host", Host: "evil.example", Path: "/", Public: true},
		}
	})
	start(t, port, strings.TrimPrefix(g.url, "http://"), strings.TrimPrefix(app.URL, "http://"))
	return &forwardAuthEnv{e: e, g: g, app: app, front: front}
}

var formAction = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// login opens path through the proxy as a browser would, expects
// keycloaktest's login form and signs in.
func (f *forwardAuthEnv) login(t *testing.T, b *browser, path, user string) resp {
	t.Helper()
	r := b.get(f.front+path, "Accept", "text/html")
	m := formAction.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("%s: expected the login form, got %d at %s: %.300s\ngateway log: %s", path, r.status, r.url, r.body, f.g.log.String())
	}
	if !strings.HasPrefix(r.url, f.e.kc.Issuer()+"/") {
		t.Fatalf("the login form is not the provider's: %s", r.url)
	}
	req, _ := http.NewRequest("POST", html.UnescapeString(m[1]), strings.NewReader(url.Values{"username": {user}, "password": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

// noRedirects is a client that returns redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestForwardAuthBehindRealProxies(t *testing.T) {
	t.Parallel()
	for _, p := range []struct {
		name  string
		start func(*testing.T, int, string, string)
	}{
		{"nginx", startNginxForwardAuth},
		{"caddy", startCaddyForwardAuth},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			f := newForwardAuthEnv(t, p.start)
			aliceID, _ := f.e.kc.UserID("alice")
			bobID, _ := f.e.kc.UserID("bob")

			// An anonymous page request is sent to /_cloakroom/start with
			// the original URL, and never reaches the application.
			req, _ := http.NewRequest("GET", f.front+"/reports?month=11", nil)
			req.Header.Set("Accept", "text/html")
			res, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			want := f.front + "/_cloakroom/start?rd=" + url.QueryEscape(f.front+"/reports?month=11")
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !sameStart(loc, f.front, f.front+"/reports?month=11") {
				t.Fatalf("anonymous page: %d Location %q, want 302 to %s\ngateway log: %s", res.StatusCode, loc, want, f.g.log.String())
			}
			if f.app.reached("/reports") {
				t.Fatal("the application received an anonymous request")
			}

			// Login through Keycloak's form, back on the original page,
			// with the identity headers at the application.
			alice := newBrowser(t)
			r := f.login(t, alice, "/reports?month=11", "alice")
			if r.url != f.front+"/reports?month=11" {
				t.Fatalf("after the login: %d at %s, want %s/reports?month=11: %.300s", r.status, r.url, f.front, r.body)
			}
			got := echo(t, r)
			for name, want := range map[string]string{
				"X-Forwarded-User": aliceID, "X-Forwarded-Email": "alice@example.com",
				"X-Forwarded-Preferred-Username": "alice",
			} {
				if header(got, name) != want {
					t.Errorf("application got %s %q, want %q", name, header(got, name), want)
				}
			}
			if roles := "," + header(got, "X-Forwarded-Roles") + ","; !strings.Contains(roles, ",admin,") || !strings.Contains(roles, ",user,") {
				t.Errorf("application got X-Forwarded-Roles %q", header(got, "X-Forwarded-Roles"))
			}
			if got.URI != "/reports?month=11" {
				t.Errorf("application got %q", got.URI)
			}
			if r := alice.get(f.front+"/admin/settings", "Accept", "text/html"); r.status != 200 || header(echo(t, r), "X-Forwarded-User") != aliceID {
				t.Errorf("alice on /admin/settings: %d %.200s", r.status, r.body)
			}

			// A role refusal: bob is signed in but not an admin.
			bob := newBrowser(t)
			f.login(t, bob, "/", "bob")
			if r := bob.get(f.front+"/admin/bob-was-here", "Accept", "text/html"); r.status != http.StatusForbidden {
				t.Errorf("bob on /admin: %d %.200s", r.status, r.body)
			}
			// The original request as the proxy describes it cannot be
			// rewritten by the client.
			// (A client copy of the other proxy's header makes the two
			// disagree: cloakroom answers 400, which nginx turns into 500.)
			if r := bob.get(f.front+"/admin/bob-was-here",
				"X-Original-URI", "/public/x", "X-Original-Method", "GET", "X-Original-URL", f.front+"/public/x",
				"X-Forwarded-Uri", "/public/x", "X-Forwarded-Method", "GET", "X-Forwarded-Host", "elsewhere.example"); r.status < 400 {
				t.Errorf("bob on /admin with a spoofed original URI: %d %.200s", r.status, r.body)
			} else {
				t.Logf("bob on /admin with a spoofed original URI: %d", r.status)
			}
			if r := bob.get(f.front+"/admin/bob-was-here", "X-Original-URI", "/public/x", "X-Forwarded-Uri", "/public/x"); r.status < 400 {
				t.Errorf("bob on /admin with a spoofed original URI: %d %.200s", r.status, r.body)
			}
			if f.app.reached("/admin/bob-was-here") {
				t.Error("the application received bob's request for /admin")
			}

			// Spoofed identity headers never reach the application: for a
			// signed-in user without groups, an anonymous visitor of a
			// public page, and on an API call.
			spoof := []string{
				"X-Forwarded-User", "mallory",
				"x-forwarded-email", "mallory@evil.example",
				"X-Forwarded-Preferred-Username", "mallory",
				"X-Forwarded-Roles", "admin",
				"X-Forwarded-Groups", "/admins",
				"X-Forwarded-Access-Token", "forged",
				"X_Forwarded_User", "mallory",
				"x_forwarded_roles", "admin",
				"X_FORWARDED_GROUPS", "/admins",
				"X-Probe", "sent-by-client",
			}
			check := func(where string, r resp, wantUser string) {
				t.Helper()
				got := echo(t, r)
				if header(got, "X-Probe") != "sent-by-client" {
					t.Errorf("%s: the probe header did not arrive: the spoofed ones were not really sent", where)
				}
				if u := header(got, "X-Forwarded-User"); u != wantUser {
					t.Errorf("%s: application got X-Forwarded-User %q, want %q", where, u, wantUser)
				}
				for name, vals := range got.Headers {
					n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
					if !strings.HasPrefix(n, "x-forwarded-") {
						continue
					}
					for _, v := range vals {
						if strings.Contains(v, "{http.") {
							t.Errorf("%s: the application got %s: %q, the proxy's unreplaced placeholder", where, name, v)
						}
						if strings.Contains(v, "mallory") || v == "admin" || v == "/admins" || v == "forged" {
							t.Errorf("%s: spoofed header %s: %q reached the application", where, name, v)
						}
					}
				}
			}
			check("bob on a page", bob.get(f.front+"/spoof", spoof...), bobID)
			anon := newBrowser(t)
			check("anonymous on a public page", anon.get(f.front+"/public/x", spoof...), "")
			token := f.e.kc.MustToken(t, "bob", "gateway")
			check("bearer on the API", anon.get(f.front+"/api/x", append([]string{"Authorization", "Bearer " + token}, spoof...)...), bobID)
			anon.get(f.front+"/admin/x", spoof...)
			if f.app.reached("/admin/x") {
				t.Error("an anonymous request with spoofed identity headers reached /admin")
			}

			checkForwardingHeaders(t, f, bob, bobID)

			// The API: a bearer token passes with its identity; no token
			// or a bad one is a 401, never a redirect to the login.
			r = anon.get(f.front+"/api/orders", "Authorization", "Bearer "+token, "Accept", "application/json")
			if r.status != 200 || header(echo(t, r), "X-Forwarded-Preferred-Username") != "bob" {
				t.Errorf("bearer on /api/orders: %d %.200s", r.status, r.body)
			}
			for _, h := range [][]string{{"Accept", "application/json"}, {"Authorization", "Bearer " + token[:len(token)-4] + "AAAA"}} {
				req, _ := http.NewRequest("GET", f.front+"/api/orders", nil)
				req.Header.Set(h[0], h[1])
				res, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("/api/orders with %s: %d, want 401", h[0], res.StatusCode)
				}
			}

			// Logout through the proxy: the confirmation page, then the
			// POST with the session's CSRF token; the Keycloak session
			// ends and the next page asks for the password again.
			if r := alice.get(f.front + "/_cloakroom/logout"); r.status != 200 {
				t.Fatalf("logout page: %d %.200s", r.status, r.body)
			}
			var me struct {
				CSRF string `json:"csrf_token"`
			}
			if r := alice.get(f.front+"/_cloakroom/me", "Accept", "application/json"); json.Unmarshal([]byte(r.body), &me) != nil || me.CSRF == "" {
				t.Fatalf("/_cloakroom/me through the proxy: %d %.200s", r.status, r.body)
			}
			req, _ = http.NewRequest("POST", f.front+"/_cloakroom/logout", strings.NewReader(url.Values{"csrf_token": {me.CSRF}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", f.front)
			if r := alice.do(req); r.status != 200 {
				t.Fatalf("logout: %d at %s: %.200s", r.status, r.url, r.body)
			}
			if n := len(f.e.kc.SessionIDs("alice")); n != 0 {
				t.Errorf("%d Keycloak sessions of alice after the logout", n)
			}
			if r := alice.get(f.front+"/after-logout", "Accept", "text/html"); !formAction.MatchString(r.body) || f.app.reached("/after-logout") {
				t.Errorf("after the logout: %d at %s: %.200s", r.status, r.url, r.body)
			}

			// Back-channel logout: Keycloak ends bob's session, the gateway
			// is told, and the proxy lets nothing more through.
			if r := bob.get(f.front+"/before-backchannel", "Accept", "text/html"); r.status != 200 {
				t.Fatalf("bob before the back-channel logout: %d", r.status)
			}
			// (bob has two Keycloak sessions: the browser's and the
			// password grant of the bearer token.)
			sids := f.e.kc.SessionIDs("bob")
			for _, sid := range sids {
				f.e.kc.EndSession(sid)
			}
			delivered := false
			for _, d := range f.e.kc.LogoutDeliveries() {
				if d.ClientID == "gateway" && slices.Contains(sids, d.SessionID) {
					if d.Err != nil {
						t.Fatalf("back-channel logout to the gateway failed: %v (status %d)", d.Err, d.Status)
					}
					delivered = true
				}
			}
			if !delivered {
				t.Fatal("no back-channel logout was sent to the gateway")
			}
			if r := bob.get(f.front+"/after-backchannel", "Accept", "text/html"); !formAction.MatchString(r.body) || f.app.reached("/after-backchannel") {
				t.Errorf("bob after the back-channel logout: %d at %s: %.200s", r.status, r.url, r.body)
			}
		})
	}
}

// checkForwardingHeaders sends the headers by which a client could try to
// describe another request (host, scheme, client address, rewritten URL)
// and checks that cloakroom decided on the request the proxy received, and
// that the application got the proxy's values of those headers.
func checkForwardingHeaders(t *testing.T, f *forwardAuthEnv, bob *browser, bobID string) {
	t.Helper()
	fwd := []string{
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"X-Forwarded-For", "6.6.6.6",
		"X-Real-IP", "6.6.6.6",
		"X-Original-URL", "/admin",
		"X-Rewrite-URL", "/admin",
	}
	frontHost := strings.TrimPrefix(f.front, "http://")

	// Anonymous: believing X-Forwarded-Host would match the public route of
	// evil.example and let the request through; believing the scheme would
	// send the browser to an https rd (cloakroom's Location behind Caddy;
	// behind nginx the redirect is nginx's own and the scheme cloakroom
	// believes shows nowhere).
	req, _ := http.NewRequest("GET", f.front+"/fwd/anonymous", nil)
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(fwd); i += 2 {
		req.Header.Set(fwd[i], fwd[i+1])
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !sameStart(loc, f.front, f.front+"/fwd/anonymous") {
		t.Errorf("anonymous with forwarding headers: %d Location %q, want 302 to the start with rd=%s/fwd/anonymous", res.StatusCode, loc, f.front)
	}
	if f.app.reached("/fwd/anonymous") {
		t.Error("an anonymous request claiming X-Forwarded-Host: evil.example reached the application")
	}
	if d := f.decision(t, "/fwd/anonymous"); d.Route != "app" || d.Status == http.StatusOK {
		t.Errorf("cloakroom decided on /fwd/anonymous by route %q with %d, want route app and no 200", d.Route, d.Status)
	}

	// Signed in: bob passes as himself on the path he asked for (believing
	// X-Original-URL: /admin would refuse him, believing https would look
	// for another cookie), and cloakroom's client address is not the one
	// the client claimed.
	r := bob.get(f.front+"/fwd/page?x=1", append([]string{"Accept", "text/html"}, fwd...)...)
	if r.status != http.StatusOK {
		t.Fatalf("bob with forwarding headers: %d at %s: %.200s", r.status, r.url, r.body)
	}
	got := echo(t, r)
	if got.URI != "/fwd/page?x=1" || header(got, "X-Forwarded-User") != bobID {
		t.Errorf("bob with forwarding headers: the application got %q as %q", got.URI, header(got, "X-Forwarded-User"))
	}
	if d := f.decision(t, "/fwd/page"); d.Route != "app" || d.Status != http.StatusOK || d.Sub != bobID || d.Client != "127.0.0.1" {
		t.Errorf("cloakroom decided on /fwd/page by route %q with %d for %q from %q, want route app, 200, bob, 127.0.0.1", d.Route, d.Status, d.Sub, d.Client)
	}
	// What the application receives: the proxy's own values.
	for name, want := range map[string]string{
		"X-Forwarded-Host":  frontHost,
		"X-Forwarded-Proto": "http",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Real-IP":         "127.0.0.1",
	} {
		if v := header(got, name); v != want {
			t.Errorf("the application got %s %q, want the proxy's %q", name, v, want)
		}
	}
	for _, name := range []string{"X-Original-URL", "X-Rewrite-URL"} {
		if v, ok := got.Headers[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("the application got the client's %s %q", name, v)
		}
	}
	for name, vals := range got.Headers {
		for _, v := range vals {
			if strings.Contains(v, "6.6.6.6") || strings.Contains(v, "evil.example") {
				t.Errorf("the application got the client's %s: %q", name, v)
			}
		}
	}
}

// authDecision is the access-log line of a forward-auth subrequest.
type authDecision struct {
	Path   string `json:"path"`
	Route  string `json:"route"`
	Status int    `json:"status"`
	Sub    string `json:"sub"`
	Client string `json:"client"`
}

// decision returns the last forward-auth decision the gateway logged for
// the original path.
func (f *forwardAuthEnv) decision(t *testing.T, path string) authDecision {
	t.Helper()
	var last authDecision
	found := false
	for _, line := range strings.Split(f.g.log.String(), "\n") {
		var l struct {
			Msg         string `json:"msg"`
			ForwardAuth bool   `json:"forward_auth"`
			authDecision
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" && l.ForwardAuth && l.Path == path {
			last, found = l.authDecision, true
		}
	}
	if !found {
		t.Fatalf("no forward-auth decision logged for %s:\n%s", path, f.g.log.String())
	}
	return last
}

// TestForwardAuthCookieDomainBehindNginx: with cookie_domain, one login
// through nginx covers every host under the domain. nginx serves the
// documented server block for a.example.test and b.example.test (two
// server blocks, one port); the client resolves both to 127.0.0.1 and
// keeps cookies as a browser would (a domain cookie goes to every host
// under its domain).
func TestForwardAuthCookieDomainBehindNginx(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := newRecordingUpstream(t)
	port := freePort(t)
	a := fmt.Sprintf("http://a.example.test:%d", port)
	b := fmt.Sprintf("http://b.example.test:%d", port)
	// The gateway's client, registered before e.start does it, with the
	// callbacks of both hosts.
	if err := e.kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "gateway", Secret: "gateway-secret", StandardFlow: true,
		RedirectURIs:           []string{"http://a.example.test:*", "http://b.example.test:*", "http://127.0.0.1:*"},
		PostLogoutRedirectURIs: []string{"http://a.example.test:*", "http://b.example.test:*", "http://127.0.0.1:*"},
		Audiences:              []string{"gateway"},
	}); err != nil {
		t.Fatal(err)
	}
	g := e.start(func(c *gateway.Config) {
		c.PublicURL = a
		c.CookieDomain = "example.test"
		c.AllowedRedirectOrigins = []string{b}
		c.ForwardAuth = true
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []gateway.Route{
			{Name: "admin", Path: "/admin", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "app", Path: "/"},
		}
	})
	startNginxForwardAuthHosts(t, port, strings.TrimPrefix(g.url, "http://"), strings.TrimPrefix(app.URL, "http://"), "a.example.test", "b.example.test")

	// *.example.test is this nginx; anything else (keycloaktest) as is.
	newClient := func() *browser {
		br := newBrowser(t)
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		br.client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, p, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".example.test") {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			return dialer.DialContext(ctx, network, addr)
		}}
		return br
	}
	f := &forwardAuthEnv{e: e, g: g, app: app, front: b}
	aliceID, _ := e.kc.UserID("alice")
	bobID, _ := e.kc.UserID("bob")

	// alice starts on b: nginx sends her to a's /_cloakroom/start (the
	// login in progress is a's host-only cookie, and the callback is on
	// public_url, a), and after Keycloak she is back on b's page.
	alice := newClient()
	r := f.login(t, alice, "/on-b?x=1", "alice")
	if r.url != b+"/on-b?x=1" || r.status != 200 || header(echo(t, r), "X-Forwarded-User") != aliceID {
		t.Fatalf("after the login on b: %d at %s: %.300s\ngateway log: %s", r.status, r.url, r.body, g.log.String())
	}
	// The same session on a, without another login.
	r = alice.get(a+"/on-a", "Accept", "text/html")
	if r.url != a+"/on-a" || r.status != 200 {
		t.Fatalf("alice on a after the login on b: %d at %s: %.300s", r.status, r.url, r.body)
	}
	if got := echo(t, r); header(got, "X-Forwarded-User") != aliceID || got.Host != "a.example.test" && !strings.HasPrefix(got.Host, "a.example.test:") {
		t.Errorf("alice on a: the application got %q for host %q", header(got, "X-Forwarded-User"), got.Host)
	}
	// Roles are still checked per request, on either host.
	bob := newClient()
	f.front = a
	f.login(t, bob, "/", "bob")
	for _, origin := range []string{a, b} {
		if r := bob.get(origin+"/on-both", "Accept", "text/html"); r.status != 200 || header(echo(t, r), "X-Forwarded-User") != bobID {
			t.Errorf("bob on %s: %d at %s", origin, r.status, r.url)
		}
		if r := bob.get(origin+"/admin/bob", "Accept", "text/html"); r.status != http.StatusForbidden {
			t.Errorf("bob on %s/admin: %d, want 403", origin, r.status)
		}
	}
	if app.reached("/admin/bob") {
		t.Error("the application received bob's request for /admin")
	}

	// Logging out on a ends the session on b too.
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if r := alice.get(a+"/_cloakroom/me", "Accept", "application/json"); json.Unmarshal([]byte(r.body), &me) != nil || me.CSRF == "" {
		t.Fatalf("/_cloakroom/me on a: %d %.200s", r.status, r.body)
	}
	req, _ := http.NewRequest("POST", a+"/_cloakroom/logout", strings.NewReader(url.Values{"csrf_token": {me.CSRF}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a)
	if r := alice.do(req); r.status != 200 {
		t.Fatalf("logout on a: %d at %s: %.200s", r.status, r.url, r.body)
	}
	if r := alice.get(b+"/after-logout", "Accept", "text/html"); !formAction.MatchString(r.body) || app.reached("/after-logout") {
		t.Errorf("alice on b after the logout on a: %d at %s: %.200s", r.status, r.url, r.body)
	}
}

// sameStart reports whether loc is front's /_cloakroom/start with rd.
func sameStart(loc, front, rd string) bool {
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	if u.IsAbs() && u.Scheme+"://"+u.Host != front {
		return false
	}
	return u.Path == "/_cloakroom/start" && u.Query().Get("rd") == rd
}
