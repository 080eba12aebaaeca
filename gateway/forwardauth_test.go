package gateway_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Unit tests of forward-auth mode (/_cloakroom/auth, /_cloakroom/start)
// with the test client as the proxy. forwardauth_proxies_test.go runs the
// documented nginx and Caddy configurations.

// faRoutes are authorization-only routes covering each rule.
func faRoutes(c *gateway.Config) {
	c.ForwardAuth = true
	c.TrustedProxies = []string{"127.0.0.1"}
	c.Routes = []gateway.Route{
		{Name: "admin", Path: "/admin", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "readonly", Path: "/reports", Methods: []string{"GET", "HEAD"}},
		{Name: "api", Path: "/api", Mode: "api", RealmRoles: gateway.RoleRule{All: []string{"user"}}},
		{Name: "api-admin", Path: "/api/admin", Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "both", Path: "/both", Mode: "both"},
		{Name: "gold", Path: "/gold", Mode: "both", ACR: "2"},
		{Name: "client", Path: "/audit", ClientRoles: gateway.ClientRoles{Client: "gateway", RoleRule: gateway.RoleRule{Any: []string{"auditor"}}}},
		{Name: "public", Path: "/public", Public: true},
		{Name: "hosted", Host: "app.example.test", Path: "/hosted"},
		{Name: "wild", Host: "*.apps.example.test", Path: "/"},
		{Name: "app", Path: "/"},
	}
}

// subrequest asks g about a request, as a proxy would: headers are
// name/value pairs. Redirects are not followed.
func subrequest(t *testing.T, g *gw, query string, header ...string) resp {
	t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/_cloakroom/auth"+query, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(body), header: res.Header}
}

// faLogin logs user in through /_cloakroom/start and returns the session
// cookie as a Cookie header value.
func faLogin(t *testing.T, g *gw, user string) string {
	t.Helper()
	b := newBrowser(t)
	r := b.get(g.url+"/_cloakroom/start?rd="+url.QueryEscape(g.url+"/welcome"), "Accept", "text/html")
	m := loginForm.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("start: expected the login form, got %d at %s: %.300s", r.status, r.url, r.body)
	}
	req, _ := http.NewRequest("POST", html.UnescapeString(m[1]), strings.NewReader(url.Values{"username": {user}, "password": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r = b.do(req)
	if r.url != g.url+"/welcome" || r.status != http.StatusNotFound || !strings.Contains(r.body, "no_upstream") {
		t.Fatalf("after the login: %d at %s, want the authorization-only route's 404 at %s/welcome: %.200s", r.status, r.url, g.url, r.body)
	}
	c := b.sessionCookie(g)
	if c == nil {
		t.Fatal("no session cookie after the login")
	}
	return c.Name + "=" + c.Value
}

func nginxStyle(method, uri string) []string {
	return []string{"X-Original-Method", method, "X-Original-URI", uri}
}

func TestForwardAuthDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(faRoutes)
	alice, bob := faLogin(t, g, "alice"), faLogin(t, g, "bob")
	aliceID, _ := e.kc.UserID("alice")
	bobToken := e.kc.MustToken(t, "bob", "gateway")
	aliceToken := e.kc.MustToken(t, "alice", "gateway")

	tests := []struct {
		name   string
		query  string
		header []string
		status int
		want   string // in the body, WWW-Authenticate, Location or the identity headers
	}{
		// Header spellings: nginx, Traefik/Caddy, host from X-Forwarded-Host.
		{"nginx spelling", "", append(nginxStyle("GET", "/x?a=1"), "Cookie", alice), 200, aliceID},
		{"traefik spelling", "", []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/x", "X-Forwarded-Host", "app.example.test", "X-Forwarded-Proto", "https", "Cookie", alice}, 200, aliceID},
		{"both spellings agreeing", "", append(nginxStyle("GET", "/x"), "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/x", "Cookie", alice), 200, aliceID},
		{"host from X-Forwarded-Host", "", append(nginxStyle("GET", "/hosted/x"), "X-Forwarded-Host", "APP.example.test.", "Cookie", bob), 200, "bob"},
		{"wildcard host", "", append(nginxStyle("GET", "/x"), "X-Forwarded-Host", "a.apps.example.test:8443", "Cookie", bob), 200, "bob"},
		// Missing or ambiguous descriptions.
		{"no original URI", "", []string{"X-Original-Method", "GET", "Cookie", alice}, 400, "X-Original-URI"},
		{"no original method", "", []string{"X-Original-URI", "/x", "Cookie", alice}, 400, "X-Original-Method"},
		{"bad method", "", append(nginxStyle("G T", "/x"), "Cookie", alice), 400, "bad_original_request"},
		{"bad proto", "", append(nginxStyle("GET", "/x"), "X-Forwarded-Proto", "gopher", "Cookie", alice), 400, "X-Forwarded-Proto"},
		{"two hosts", "", append(nginxStyle("GET", "/x"), "X-Forwarded-Host", "a.example, b.example", "Cookie", alice), 400, "X-Forwarded-Host"},
		{"spellings disagree (client's copy)", "", append(nginxStyle("GET", "/admin/x"), "X-Forwarded-Uri", "/public/x"), 403, "ambiguous_original_request"},
		{"methods disagree", "", append(nginxStyle("POST", "/reports/x"), "X-Forwarded-Method", "GET", "Cookie", alice), 403, "ambiguous_original_request"},
		{"URI twice", "", []string{"X-Original-Method", "GET", "X-Original-URI", "/admin/x", "X-Original-URI", "/public/x"}, 403, "ambiguous_original_request"},
		// Browser routes, roles, methods.
		{"anonymous", "", nginxStyle("GET", "/x"), 401, `Cookie realm=`},
		{"anonymous login_url", "", append(nginxStyle("GET", "/x?month=11"), "X-Forwarded-Host", "app.example.test"), 401, `/_cloakroom/start?rd=http%3A%2F%2Fapp.example.test%2Fx%3Fmonth%3D11`},
		{"admin: alice", "", append(nginxStyle("GET", "/admin/x"), "Cookie", alice), 200, "admin"},
		{"admin: bob", "", append(nginxStyle("GET", "/admin/x"), "Cookie", bob), 403, `This page requires the role \"admin\".`},
		{"client role missing", "", append(nginxStyle("GET", "/audit/x"), "Cookie", bob), 403, "auditor"},
		{"method refused", "", append(nginxStyle("POST", "/reports/1"), "Cookie", alice), 403, "method_not_allowed"},
		{"method allowed", "", append(nginxStyle("HEAD", "/reports/1"), "Cookie", alice), 200, aliceID},
		{"public, anonymous", "", nginxStyle("GET", "/public/x"), 200, ""},
		{"public, signed in", "", append(nginxStyle("GET", "/public/x"), "Cookie", bob), 200, "bob"},
		{"no route host", "", append(nginxStyle("GET", "/hosted/x"), "X-Forwarded-Host", "other.example.test", "Cookie", bob), 200, "bob"}, // falls on "app"
		// API routes: bearer tokens, never a redirect.
		{"api anonymous", "?redirect=true", append(nginxStyle("GET", "/api/x"), "Accept", "text/html"), 401, `Bearer realm=`},
		{"api token", "", append(nginxStyle("GET", "/api/x"), "Authorization", "Bearer "+bobToken), 200, "bob"},
		{"api session is not enough", "", append(nginxStyle("GET", "/api/x"), "Cookie", alice), 401, "Bearer"},
		{"api expired", "", append(nginxStyle("GET", "/api/x"), "Authorization", "Bearer "+e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithExpired())), 401, "token_expired"},
		{"api bad token", "", append(nginxStyle("GET", "/api/x"), "Authorization", "Bearer "+bobToken[:len(bobToken)-4]+"AAAA"), 401, "invalid_token"},
		{"api role missing", "", append(nginxStyle("DELETE", "/api/admin/x"), "Authorization", "Bearer "+bobToken), 403, "insufficient_scope"},
		{"api role present", "", append(nginxStyle("DELETE", "/api/admin/x"), "Authorization", "Bearer "+aliceToken), 200, "alice"},
		{"both with bearer", "", append(nginxStyle("POST", "/both/x"), "Authorization", "Bearer "+bobToken), 200, "bob"},
		{"both anonymous: both challenges", "", nginxStyle("POST", "/both/x"), 401, "Bearer realm="},
		{"both with session", "", append(nginxStyle("GET", "/both/x"), "Cookie", bob), 200, "bob"},
		// acr: a token below it is refused; a session below it must step up.
		{"acr bearer below", "", append(nginxStyle("GET", "/gold/x"), "Authorization", "Bearer "+e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithClaim("acr", "1"))), 403, "authentication level"},
		{"acr bearer at", "", append(nginxStyle("GET", "/gold/x"), "Authorization", "Bearer "+e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithClaim("acr", "2"))), 200, "bob"},
		{"acr session below", "", append(nginxStyle("GET", "/gold/x"), "Cookie", bob), 401, "step_up_required"},
		{"acr session below, navigation", "?redirect=true", append(nginxStyle("GET", "/gold/x"), "Cookie", bob, "Accept", "text/html"), 302, "/_cloakroom/start?rd="},
		// redirect=true: anonymous navigations only.
		{"redirect: navigation", "?redirect=true", append(nginxStyle("GET", "/x?q=1"), "Accept", "text/html,*/*", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "app.example.test"), 302, g.url + "/_cloakroom/start?rd=" + url.QueryEscape("https://app.example.test/x?q=1")},
		{"redirect: credentials not copied", "?redirect=true", append(nginxStyle("GET", "/x?code=secret&keep=1"), "Accept", "text/html"), 302, "keep%3D1"},
		{"redirect: XHR", "?redirect=true", append(nginxStyle("GET", "/x"), "Accept", "application/json"), 401, "not_authenticated"},
		{"redirect: POST", "?redirect=true", append(nginxStyle("POST", "/x"), "Accept", "text/html"), 401, "not_authenticated"},
		{"redirect: signed in", "?redirect=true", append(nginxStyle("GET", "/x"), "Accept", "text/html", "Cookie", alice), 200, aliceID},
		{"redirect: refused role stays 403", "?redirect=true", append(nginxStyle("GET", "/admin/x"), "Accept", "text/html", "Cookie", bob), 403, "admin"},
		// Identity headers from the client are dropped before anything.
		{"spoofed identity, anonymous public", "", append(nginxStyle("GET", "/public/x"), "X-Forwarded-User", "mallory", "X_Forwarded_Roles", "admin"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := subrequest(t, g, tt.query, tt.header...)
			seen := r.body + " " + strings.Join(r.header.Values("WWW-Authenticate"), " ") + " " + r.header.Get("Location") + " " +
				r.header.Get("X-Forwarded-User") + " " + r.header.Get("X-Forwarded-Preferred-Username") + " " + r.header.Get("X-Forwarded-Roles")
			if r.status != tt.status || !strings.Contains(seen, tt.want) {
				t.Fatalf("%d %q, want %d with %q", r.status, seen, tt.status, tt.want)
			}
			if r.status >= 200 && r.status < 300 && r.body != "" {
				t.Errorf("a 200 with a body: %q", r.body)
			}
			if r.status != 200 && r.header.Get("X-Forwarded-User") != "" {
				t.Errorf("identity header on a %d", r.status)
			}
			if r.status == 200 {
				// Every identity header is present, so a proxy copying them
				// overwrites the client's copies; none carries a spoofed value.
				for _, h := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Roles", "X-Forwarded-Groups"} {
					if v := r.header.Values(h); len(v) != 1 || strings.Contains(v[0], "mallory") {
						t.Errorf("%s: %q", h, v)
					}
				}
				if r.header.Values("X-Forwarded-Access-Token") != nil {
					t.Error("access token sent without forward_access_token")
				}
			}
			if r.status == 401 && strings.Contains(tt.name, "both anonymous") && !strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), " "), "Cookie realm=") {
				t.Errorf("a both route offers both challenges: %q", r.header.Values("WWW-Authenticate"))
			}
		})
	}
}

// TestForwardAuthCanonicalTargets: the original target goes through the
// gateway's canonical form; whatever a variant, it is refused (400) or
// decided on its canonical path, never let through to a protected path.
func TestForwardAuthCanonicalTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		faRoutes(c)
		c.Routes = []gateway.Route{
			{Name: "public", Path: "/public", Public: true},
			{Name: "admin", Path: "/admin", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "app", Path: "/"},
		}
	})
	bob := faLogin(t, g, "bob")
	attacks := []string{
		"/public/..%2fadmin/secret", "/public/..%2Fadmin/secret", "/public/%2e%2e/admin/secret", "/public/.%2E/admin",
		"/public/%2E%2E%2Fadmin", "/public/..\\admin", "/public/..%5cadmin", "/public/..%5Cadmin", "/public;/../admin",
		"/public/x;/../../admin", "/admin;x/secret", "/public/../admin", "/public/./../admin", "//admin/x", "/./admin",
		"/public//../admin", "/public/%252e%252e/admin", "/public/%25%32%65%25%32%65/admin", "/public/%c0%ae%c0%ae/admin",
		"/public/%e0%80%ae%e0%80%ae/admin", "/public/%ff/x", "/public/%00/../admin", "/admin%00.txt", "/public/%0a/admin",
		"/public/%zz", "/public/a%2", "/public/x#/../../admin", "*", "public/../admin", "http://evil.example/public/../admin",
		"/public/\t/../admin", "/public/%2e%2e%2f%2e%2e%2fadmin", "/public/..;/admin", "/public/%3B/../admin",
	}
	for _, uri := range attacks {
		for _, spelling := range [][2]string{{"X-Original-Method", "X-Original-URI"}, {"X-Forwarded-Method", "X-Forwarded-Uri"}} {
			t.Run(spelling[1]+" "+uri, func(t *testing.T) {
				t.Parallel()
				r := subrequest(t, g, "?redirect=true", spelling[0], "GET", spelling[1], uri, "Cookie", bob, "Accept", "text/html")
				if r.status != http.StatusBadRequest {
					t.Fatalf("%q: %d %.200s, want 400", uri, r.status, r.body)
				}
			})
		}
	}
	// Harmless variants are decided on their canonical path.
	for uri, want := range map[string]int{
		"/%61dmin/x":          403, // /admin/x: bob is not an admin
		"/ADMIN/x":            200, // case-sensitive: falls on "app"
		"/public/caf%C3%A9":   200,
		"/public/a%20b?x=../": 200,
		"/admin":              403,
		"/adminx":             200,
	} {
		if r := subrequest(t, g, "", "X-Original-Method", "GET", "X-Original-URI", uri, "Cookie", bob); r.status != want {
			t.Errorf("%q: %d %.200s, want %d", uri, r.status, r.body, want)
		}
	}
}

func TestForwardAuthTrust(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		faRoutes(c)
		c.TrustedProxies = []string{"192.0.2.10"}
	})
	for i := 0; i < 3; i++ {
		r := subrequest(t, g, "", append(nginxStyle("GET", "/public/x"), "X-Forwarded-For", "192.0.2.10")...)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "trusted_proxies") || r.header.Get("X-Forwarded-User") != "" {
			t.Fatalf("untrusted peer: %d %.200s", r.status, r.body)
		}
	}
	logs := g.log.String()
	if n := strings.Count(logs, "forward-auth subrequest refused"); n != 1 {
		t.Errorf("%d warnings about the untrusted peer, want 1: %s", n, logs)
	}
	if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, "trusted_proxies") {
		t.Errorf("the warning does not name trusted_proxies at WARN: %s", logs)
	}
	// Other methods on the endpoint are refused.
	req, _ := http.NewRequest("POST", g.url+"/_cloakroom/auth", nil)
	if res, err := noRedirects.Do(req); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /_cloakroom/auth: %v %v", res, err)
	}
}

func TestForwardAuthOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	if r := subrequest(t, g, "", nginxStyle("GET", "/x")...); r.status != http.StatusNotFound {
		t.Errorf("/_cloakroom/auth without forward_auth: %d", r.status)
	}
	if r := newBrowser(t).get(g.url + "/_cloakroom/start?rd=" + url.QueryEscape(g.url+"/")); r.status != http.StatusNotFound {
		t.Errorf("/_cloakroom/start without forward_auth: %d", r.status)
	}
	if err := (&gateway.Config{Issuer: "https://sso.example.com/realms/r", ClientID: "c", ClientSecret: "s", Routes: []gateway.Route{{Path: "/"}}}).Validate(); err == nil || !strings.Contains(err.Error(), "forward_auth") {
		t.Errorf("a route without upstream and without forward_auth: %v", err)
	}
}

func TestForwardAuthStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		faRoutes(c)
		c.AllowedRedirectOrigins = []string{"https://other.example.test:8443"}
	})
	u, _ := url.Parse(g.url)
	good := []string{
		g.url + "/x?y=1",
		"http://app.example.test/hosted/x",
		"https://app.example.test/x",
		"https://a.apps.example.test:8443/x",
		"HTTPS://App.Example.Test./x",
		"https://other.example.test:8443/x",
	}
	for _, rd := range good {
		r := startRequest(t, g, rd)
		if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), e.kc.Issuer()+"/") {
			t.Errorf("rd %q: %d %q %.200s, want a redirect to Keycloak", rd, r.status, r.header.Get("Location"), r.body)
		}
	}
	hostile := []string{
		"", "/x", "//evil.example/x", "https://evil.example/x", "https:evil.example", "https:/evil.example", "https:///evil.example",
		"https://app.example.test@evil.example/", "https://evil.example\\@app.example.test/", "https://evil.example%2f@app.example.test/",
		"https://app.example.test%2e.evil.example/", "https://app.example.test.evil.example/", "https://evil.example#@app.example.test",
		"https://evil.example?@app.example.test", "https:\\\\evil.example", "\\\\evil.example", "/\\evil.example",
		"https%3A%2F%2Fevil.example", "javascript:alert(1)", "JavaScript://app.example.test/%0aalert(1)", "data:text/html,x",
		"ftp://app.example.test/", "https://apps.example.test/", "https://x.evilapps.example.test/", " https://app.example.test/",
		"https://app.example.test/\r\nSet-Cookie: x=1", "https://[::1]/", "https://127.0.0.1/", "http://" + u.Host + ".evil.example/",
		"https://other.example.test/x", "http://other.example.test:8443/x", "https://user:pw@app.example.test/",
	}
	for _, rd := range hostile {
		r := startRequest(t, g, rd)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "allowed_redirect_origins") || r.header.Get("Location") != "" {
			t.Errorf("rd %q: %d %q %.200s, want 400 naming allowed_redirect_origins", rd, r.status, r.header.Get("Location"), r.body)
		}
	}
	// The route behind rd asks for a stronger login.
	r := startRequest(t, g, g.url+"/gold/x")
	if loc, _ := url.Parse(r.header.Get("Location")); r.status != http.StatusFound || loc.Query().Get("acr_values") != "2" {
		t.Errorf("rd on an acr route: %d %q", r.status, r.header.Get("Location"))
	}
}

// TestForwardAuthHTTPSPublicURL: with an https public_url, route hosts are
// accepted in rd only over https.
func TestForwardAuthHTTPSPublicURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		faRoutes(c)
		c.PublicURL = "https://auth.example.test"
	})
	if r := startRequest(t, g, "http://app.example.test/hosted/x"); r.status != http.StatusBadRequest {
		t.Errorf("http rd with an https public_url: %d", r.status)
	}
	r := subrequest(t, g, "?redirect=true", append(nginxStyle("GET", "/x"), "Accept", "text/html", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "app.example.test")...)
	if want := "https://auth.example.test/_cloakroom/start?rd=" + url.QueryEscape("https://app.example.test/x"); r.status != 302 || r.header.Get("Location") != want {
		t.Errorf("redirect: %d %q, want %q", r.status, r.header.Get("Location"), want)
	}
}

func startRequest(t *testing.T, g *gw, rd string) resp {
	t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/_cloakroom/start?rd="+url.QueryEscape(rd), nil)
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(body), header: res.Header}
}

// TestForwardAuthRefreshAndOutage: a session whose access token expires is
// refreshed on a subrequest; a session Keycloak ended is cleared (the
// Set-Cookie reaches the proxy's answer); Keycloak down with an expired
// token is 503, never a 2xx.
func TestForwardAuthRefreshAndOutage(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *keycloaktest.RealmConfig) { c.AccessTokenLifespan = 2 * time.Second })
	g := e.start(faRoutes, shortKeycloakClient())
	alice, bob := faLogin(t, g, "alice"), faLogin(t, g, "bob")
	aliceID, _ := e.kc.UserID("alice")
	time.Sleep(2500 * time.Millisecond) // past the access tokens' expiry

	if r := subrequest(t, g, "", append(nginxStyle("GET", "/x"), "Cookie", alice)...); r.status != 200 || r.header.Get("X-Forwarded-User") != aliceID {
		t.Fatalf("refreshed session: %d %.200s", r.status, r.body)
	}
	if !strings.Contains(g.log.String(), `"status":200`) {
		t.Error("the subrequest was not in the access log")
	}

	if err := e.kc.SetUserEnabled("bob", false); err != nil {
		t.Fatal(err)
	}
	r := subrequest(t, g, "", append(nginxStyle("GET", "/x"), "Cookie", bob)...)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("Set-Cookie"), "cloakroom=;") {
		t.Errorf("session ended at refresh: %d Set-Cookie %q %.200s", r.status, r.header.Get("Set-Cookie"), r.body)
	}

	time.Sleep(2500 * time.Millisecond) // alice's refreshed token expires too
	e.idp.SetFault(keycloaktest.Fault{Refuse: true})
	defer e.idp.ClearFault()
	for _, q := range []string{"", "?redirect=true"} {
		r := subrequest(t, g, q, append(nginxStyle("GET", "/x"), "Cookie", alice, "Accept", "text/html")...)
		if r.status != http.StatusServiceUnavailable || r.header.Get("X-Forwarded-User") != "" {
			t.Errorf("Keycloak down, token expired: %d %.200s, want 503", r.status, r.body)
		}
	}
}

// TestForwardAuthMetricsAndLog: subrequests are counted and logged under
// the route of the original request, with a decision.
func TestForwardAuthMetricsAndLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(faRoutes)
	subrequest(t, g, "", nginxStyle("GET", "/admin/secret?code=x")...)
	subrequest(t, g, "", nginxStyle("GET", "/public/x")...)
	r := newBrowser(t).get(g.url + "/_cloakroom/metrics")
	for _, want := range []string{
		`cloakroom_auth_decisions_total{decision="unauthorized",route="admin"} 1`,
		`cloakroom_auth_decisions_total{decision="public",route="public"} 1`,
		`cloakroom_requests_total{code="401",route="admin"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	logs := g.log.String()
	if !strings.Contains(logs, `"path":"/admin/secret","route":"admin","status":401`) || !strings.Contains(logs, `"forward_auth":true`) {
		t.Errorf("access log: %s", logs)
	}
	if strings.Contains(logs, "code=x") {
		t.Error("the query string was logged")
	}
}

// TestForwardAuthCookieDomain: the session cookie set at the callback
// carries the configured Domain; a domain that does not cover public_url
// is refused.
func TestForwardAuthCookieDomain(t *testing.T) {
	t.Parallel()
	base := gateway.Config{Issuer: "https://sso.example.com/realms/r", ClientID: "c", ClientSecret: "s", ForwardAuth: true, Routes: []gateway.Route{{Path: "/"}}}
	for domain, wantErr := range map[string]string{
		".example.com":       "",
		"example.com":        "",
		".other.com":         "does not cover public_url",
		"com":                "single label",
		".192.0.2.1":         "IP address",
		"example.com:443":    "not a domain name",
		"https://example.co": "not a domain name",
	} {
		c := base
		c.PublicURL, c.CookieDomain = "https://auth.example.com", domain
		err := c.Validate()
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("cookie_domain %q: %v, want %q", domain, err, wantErr)
		}
	}

	// The cookie itself: see session's TestCookieDomain.
}
