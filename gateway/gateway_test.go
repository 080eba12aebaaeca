package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

func TestBrowserRouteLoginAndIdentityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(nil)
	b := newBrowser(t)
	r := b.login(g, "/dashboard?x=1", "alice")
	got := echo(t, r)
	aliceID, _ := e.kc.UserID("alice")
	if got.Path != "/dashboard" || got.Query != "x=1" {
		t.Fatalf("upstream got %s?%s", got.Path, got.Query)
	}
	for name, want := range map[string]string{
		"X-Forwarded-User":               aliceID,
		"X-Forwarded-Email":              "alice@example.com",
		"X-Forwarded-Preferred-Username": "alice",
	} {
		if header(got, name) != want {
			t.Errorf("%s = %q, want %q", name, header(got, name), want)
		}
	}
	if roles := header(got, "X-Forwarded-Roles"); !strings.Contains(roles, "admin") || !strings.Contains(roles, "account:view-profile") {
		t.Errorf("X-Forwarded-Roles = %q", roles)
	}
	if header(got, "X-Forwarded-Access-Token") != "" {
		t.Error("the access token was forwarded without forward_access_token")
	}
	if c := header(got, "Cookie"); strings.Contains(c, "cloakroom=") {
		t.Errorf("the session cookie reached the upstream: %q", c)
	}
	// /_cloakroom/me tells the browser who it is.
	me := b.get(g.url + "/_cloakroom/me")
	if me.status != 200 || !strings.Contains(me.body, `"sub":"`+aliceID+`"`) || !strings.Contains(me.body, `"via":"session"`) {
		t.Fatalf("me: %d %s", me.status, me.body)
	}
}

func TestSpoofedIdentityHeadersNeverReachUpstream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{
			{Name: "public", Path: "/public", Upstream: e.upstream.URL, Public: true},
			{Name: "app", Path: "/", Upstream: e.upstream.URL},
			{Name: "api", Path: "/api", Upstream: e.upstream.URL, Mode: "api"},
		}
	})
	spoof := []string{
		"X-Forwarded-User", "mallory",
		"x-forwarded-email", "mallory@evil.example",
		"X_Forwarded_User", "mallory",
		"X-Forwarded-Preferred-Username", "admin",
		"X-Forwarded-Roles", "admin",
		"X-Forwarded-Groups", "/admins",
		"X-Forwarded-Access-Token", "forged",
	}
	check := func(where string, r resp) {
		t.Helper()
		got := echo(t, r)
		for name, vals := range got.Headers {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if strings.HasPrefix(n, "x-forwarded-") && n != "x-forwarded-for" && n != "x-forwarded-proto" && n != "x-forwarded-host" {
				for _, v := range vals {
					if strings.Contains(v, "mallory") || v == "admin" || v == "/admins" || v == "forged" {
						t.Errorf("%s: spoofed header %s: %q reached the upstream", where, name, v)
					}
				}
			}
		}
	}
	anon := newBrowser(t)
	check("public route, anonymous", anon.get(g.url+"/public/x", spoof...))
	b := newBrowser(t)
	b.login(g, "/", "bob")
	check("browser route, logged in", b.get(g.url+"/page", spoof...))
	token := e.kc.MustToken(t, "bob", "gateway")
	check("api route, bearer", anon.get(g.url+"/api/x", append([]string{"Authorization", "Bearer " + token}, spoof...)...))
}

func TestRolesMethodsAndModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{
			{Name: "admin", Path: "/admin", Upstream: e.upstream.URL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "readonly", Path: "/reports", Upstream: e.upstream.URL, Methods: []string{"GET", "HEAD"}},
			{Name: "api", Path: "/api", Upstream: e.upstream.URL, Mode: "api", RealmRoles: gateway.RoleRule{All: []string{"user"}}},
			{Name: "api-admin", Path: "/api/admin", Upstream: e.upstream.URL, Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "both", Path: "/both", Upstream: e.upstream.URL, Mode: "both"},
			{Name: "both-gold", Path: "/gold", Upstream: e.upstream.URL, Mode: "both", ACR: "2"},
			{Name: "api-client", Path: "/audit", Upstream: e.upstream.URL, Mode: "api", ClientRoles: gateway.ClientRoles{Client: "gateway", RoleRule: gateway.RoleRule{Any: []string{"auditor"}}}},
			{Name: "app", Path: "/", Upstream: e.upstream.URL},
		}
	})
	alice, bob := newBrowser(t), newBrowser(t)
	alice.login(g, "/", "alice")
	bob.login(g, "/", "bob")
	if r := bob.get(g.url + "/admin/x"); r.status != 403 {
		t.Errorf("bob on /admin: %d", r.status)
	}
	if r := alice.get(g.url + "/admin/x"); r.status != 200 {
		t.Errorf("alice on /admin: %d", r.status)
	}
	req, _ := http.NewRequest("POST", g.url+"/reports/1", nil)
	if r := alice.do(req); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST on a GET-only route: %d %q", r.status, r.header.Get("Allow"))
	}

	anon := newBrowser(t)
	bobToken := e.kc.MustToken(t, "bob", "gateway")
	tests := []struct {
		name   string
		path   string
		header []string
		status int
		want   string
	}{
		{"api without token", "/api/x", nil, 401, `"code":"not_authenticated"`},
		{"api with token", "/api/x", []string{"Authorization", "Bearer " + bobToken}, 200, `"X-Forwarded-User"`},
		{"api expired", "/api/x", []string{"Authorization", "Bearer " + e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithExpired())}, 401, "token_expired"},
		{"api other audience", "/api/x", []string{"Authorization", "Bearer " + e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithAudience("account"), keycloaktest.WithAZP("cloakroom"))}, 401, "token_not_valid"},
		{"api role missing", "/api/admin/x", []string{"Authorization", "Bearer " + bobToken}, 403, "insufficient"},
		{"api role missing, the one wording", "/api/admin/x", []string{"Authorization", "Bearer " + bobToken}, 403, `"detail":"This page requires the role \"admin\"."`},
		{"api client role missing", "/audit/x", []string{"Authorization", "Bearer " + bobToken}, 403, `"detail":"This page requires the role \"auditor\" of client \"gateway\"."`},
		// acr compiles to the same requirement on the bearer chain: a token
		// cannot skip the step-up a session must make.
		{"both, bearer below acr", "/gold/x", []string{"Authorization", "Bearer " + e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithClaim("acr", "1"))}, 403, `"detail":"This page requires authentication level \"2\" or higher."`},
		{"both, bearer at acr", "/gold/x", []string{"Authorization", "Bearer " + e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithClaim("acr", "2"))}, 200, `"X-Forwarded-User"`},
		{"both with bearer", "/both/x", []string{"Authorization", "Bearer " + bobToken}, 200, `"X-Forwarded-User"`},
		{"both anonymous JSON", "/both/x", []string{"Accept", "application/json"}, 401, "login_url"},
	}
	for _, tt := range tests {
		r := anon.get(g.url+tt.path, tt.header...)
		if r.status != tt.status || !strings.Contains(r.body+r.header.Get("WWW-Authenticate"), tt.want) {
			t.Errorf("%s: %d %q (www-authenticate %q)", tt.name, r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	// A session works on a "both" route too.
	if r := bob.get(g.url + "/both/x"); r.status != 200 || !strings.Contains(r.body, "X-Forwarded-User") {
		t.Errorf("both with session: %d", r.status)
	}
}

func TestHostRoutingAndStripPrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := newUpstream(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{
			{Name: "docs", Host: "docs.example.test", Path: "/", Upstream: other.URL, Public: true},
			{Name: "wild", Host: "*.apps.example.test", Path: "/", Upstream: other.URL, Public: true},
			{Name: "svc", Path: "/svc", Upstream: e.upstream.URL + "/base", Public: true, StripPrefix: true},
			{Name: "app", Path: "/", Upstream: e.upstream.URL, Public: true},
		}
	})
	get := func(host, path string) echoed {
		req, _ := http.NewRequest("GET", g.url+path, nil)
		req.Host = host
		return echo(t, newBrowser(t).do(req))
	}
	if got := get("docs.example.test", "/a"); got.Host != "docs.example.test" || got.Path != "/a" {
		t.Errorf("host route: %+v", got)
	}
	if got := get("x.apps.example.test", "/b"); got.Host != "x.apps.example.test" {
		t.Errorf("wildcard host route: %+v", got)
	}
	if got := get("127.0.0.1", "/svc/items/1"); got.Path != "/base/items/1" {
		t.Errorf("strip prefix: path %q", got.Path)
	}
	if got := get("127.0.0.1", "/svcx"); got.Path != "/svcx" {
		t.Errorf("/svcx must not match /svc: %q", got.Path)
	}
}

func TestStreamingAndWebSockets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(nil)
	b := newBrowser(t)
	b.login(g, "/", "alice")
	session := b.sessionCookie(g)
	// SSE: the first event arrives while the upstream still holds the
	// stream open (it would hold it for 30 s; the request gives up after
	// 10), so the gateway does not buffer.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/events", nil)
	req.AddCookie(session)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r.Body).ReadString('\n')
	r.Body.Close()
	if line != "data: event 0\n" {
		t.Fatalf("SSE: first line %q (%v): the stream was buffered", line, err)
	}
	// WebSocket-style upgrade: passes through, with the identity and
	// without the spoofed header.
	head, echoLine := rawUpgrade(t, g.url, session)
	aliceID, _ := e.kc.UserID("alice")
	if !strings.Contains(head, "101 Switching Protocols") || !strings.Contains(head, "X-Seen-User: "+aliceID) || echoLine != "echo: hello\n" {
		t.Fatalf("upgrade: %q / %q", head, echoLine)
	}
	// Without a session the upgrade is refused (redirected to login).
	head, _ = rawUpgrade(t, g.url, nil)
	if strings.Contains(head, " 101 ") {
		t.Fatal("an anonymous upgrade passed")
	}
}

func TestInternalEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(nil)
	b := newBrowser(t)
	if r := b.get(g.url + "/_cloakroom/healthz"); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.get(g.url + "/_cloakroom/readyz")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.login(g, "/", "bob")
	token := e.kc.MustToken(t, "bob", "gateway")
	if r := newBrowser(t).get(g.url+"/_cloakroom/me", "Authorization", "Bearer "+token); r.status != 200 || !strings.Contains(r.body, `"via":"bearer"`) {
		t.Fatalf("me with bearer: %d %s", r.status, r.body)
	}
	if r := newBrowser(t).get(g.url + "/_cloakroom/me"); r.status != 401 {
		t.Fatalf("me anonymous: %d", r.status)
	}
	m := b.get(g.url + "/_cloakroom/metrics")
	for _, want := range []string{
		`cloakroom_requests_total{code="200",route="app"}`,
		`cloakroom_auth_decisions_total{decision="allowed",route="app"}`,
		`cloakroom_auth_decisions_total{decision="login_redirect",route="app"}`,
		`cloakroom_logins_total 1`,
		`cloakroom_session_store_seconds_bucket{op="load"`,
		`cloakroom_request_duration_seconds_bucket{route="app"`,
		`cloakroom_token_verification_seconds`,
	} {
		if !strings.Contains(m.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r := b.get(g.url + "/nothing-routes-here-but-app-catches-all"); r.status != 200 {
		t.Fatalf("catch-all: %d", r.status)
	}
}

func TestNoRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{{Name: "only", Path: "/only", Upstream: e.upstream.URL, Public: true}}
	})
	if r := newBrowser(t).get(g.url + "/elsewhere"); r.status != 404 || !strings.Contains(r.body, "no_route") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestKeycloakDownAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.idp.SetFault(keycloaktest.Fault{Refuse: true})
	g := e.start(nil)
	b := newBrowser(t)
	r := b.get(g.url + "/_cloakroom/readyz")
	if r.status != 503 || !strings.Contains(r.body, "identity_provider") {
		t.Fatalf("readyz with Keycloak down: %d %s", r.status, r.body)
	}
	if r := b.get(g.url+"/page", "Accept", "application/json"); r.status != 503 && r.status != 401 {
		t.Fatalf("request with Keycloak down: %d", r.status)
	}
	e.idp.ClearFault()
	deadline := time.Now().Add(15 * time.Second)
	for b.get(g.url+"/_cloakroom/readyz").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not become ready after Keycloak came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.login(g, "/", "alice")
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{{Name: "dead", Path: "/", Upstream: "http://127.0.0.1:1", Public: true}}
	})
	if r := newBrowser(t).get(g.url + "/"); r.status != 502 || !strings.Contains(r.body, "upstream_unavailable") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	trusting := e.start(func(c *gateway.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []gateway.Route{{Name: "app", Path: "/", Upstream: e.upstream.URL, Public: true}}
	})
	distrusting := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{{Name: "app", Path: "/", Upstream: e.upstream.URL, Public: true}}
	})
	fwd := []string{"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "app.example.com"}
	got := echo(t, newBrowser(t).get(trusting.url+"/", fwd...))
	if header(got, "X-Forwarded-For") != "203.0.113.7, 127.0.0.1" || header(got, "X-Forwarded-Proto") != "https" || header(got, "X-Forwarded-Host") != "app.example.com" {
		t.Errorf("trusted proxy: %v", got.Headers)
	}
	got = echo(t, newBrowser(t).get(distrusting.url+"/", fwd...))
	if header(got, "X-Forwarded-For") != "127.0.0.1" || header(got, "X-Forwarded-Proto") != "http" || strings.Contains(header(got, "X-Forwarded-Host"), "example.com") {
		t.Errorf("untrusted client's forwarded headers were kept: %v", got.Headers)
	}
}

func TestAccessLogHasNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.ForwardAccessToken = true })
	b := newBrowser(t)
	b.login(g, "/?code=abc&state=xyz", "alice")
	token := e.kc.MustToken(t, "alice", "gateway")
	newBrowser(t).get(g.url+"/x", "Authorization", "Bearer "+token, "Cookie", "other=keepme")
	u, _ := url.Parse(g.url)
	logs := g.log.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no access log lines: %.500s", logs)
	}
	secrets := []string{"gateway-secret", "xyz"}
	for _, c := range b.client.Jar.Cookies(u) {
		secrets = append(secrets, c.Value)
	}
	for _, part := range strings.Split(token, ".") {
		secrets = append(secrets, part)
	}
	for _, s := range secrets {
		if len(s) >= 3 && strings.Contains(logs, s) {
			t.Errorf("the logs contain a secret value %.12s…", s)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := gateway.Config{
		Listen: "127.0.0.1:0", Issuer: e.kc.Issuer(), ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret,
		Session: gateway.SessionConfig{Store: "memory:"},
		Routes:  []gateway.Route{{Path: "/", Upstream: e.upstream.URL, Public: true}},
	}
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestForwardAccessToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.ForwardAccessToken = true })
	b := newBrowser(t)
	got := echo(t, b.login(g, "/", "bob"))
	tok := header(got, "X-Forwarded-Access-Token")
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("forwarded token: %q", tok)
	}
	_ = fmt.Sprint()
	_ = context.Background()
}

// TestTrustedForwardingHeaders: from a trusted proxy the routing and
// client-identity headers pass (underscore spellings never do), and
// X-Real-IP is the client the gateway computed, not the proxy's claim.
func TestTrustedForwardingHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Routes = []gateway.Route{{Name: "app", Path: "/", Upstream: e.upstream.URL, Public: true}}
	})
	got := echo(t, newBrowser(t).get(g.url+"/",
		"X-Forwarded-For", "203.0.113.7", "X-Real-IP", "198.51.100.1", "X-Original-URL", "/orig",
		"X-Forwarded-Prefix", "/app", "X-Forwarded-Port", "443", "X_Forwarded_Prefix", "/evil", "X_Real_IP", "6.6.6.6"))
	for name, want := range map[string]string{
		"X-Real-Ip": "203.0.113.7", "X-Original-Url": "/orig", "X-Forwarded-Prefix": "/app", "X-Forwarded-Port": "443",
		"X_Forwarded_Prefix": "", "X_Real_IP": "",
	} {
		var values []string
		for k, v := range got.Headers {
			if strings.EqualFold(k, name) {
				values = append(values, v...)
			}
		}
		if got := strings.Join(values, ","); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestSlowBody: a request body that trickles in is cut (408) once it falls
// behind body_read_timeout plus body_min_rate; one that keeps the rate
// arrives whole, also when it takes longer than body_read_timeout.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.BodyReadTimeout, c.BodyMinRate = 300*time.Millisecond, 200
		c.Routes = []gateway.Route{{Name: "app", Path: "/", Upstream: e.upstream.URL, Public: true}}
	})
	addr := strings.TrimPrefix(g.url, "http://")
	send := func(n, chunk int, pause time.Duration) (int, string) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", addr, n)
		go func() {
			for sent := 0; sent < n; sent += chunk {
				if _, err := conn.Write([]byte(strings.Repeat("x", min(chunk, n-sent)))); err != nil {
					return
				}
				time.Sleep(pause)
			}
		}()
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	// 100 bytes at 100 bytes/s (below 200 B/s): cut.
	if status, body := send(100, 10, 100*time.Millisecond); status != http.StatusRequestTimeout || !strings.Contains(body, "body_timeout") {
		t.Errorf("slow body: %d %s, want 408 body_timeout\n%s", status, body, g.log.String())
	}
	// 200 bytes at about 1000 bytes/s for 0.2 s, then 600 more: fine.
	if status, body := send(800, 100, 50*time.Millisecond); status != 200 || body != "received 800 bytes" {
		t.Errorf("body at a good rate: %d %s", status, body)
	}
}
