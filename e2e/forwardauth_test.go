package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// Forward-auth mode in a real browser: Chromium talks to a real nginx
// configured with the snippets of docs/forward-auth.md; nginx asks the
// gateway (auth_request) and proxies to the application.

// forwardAuthSnippet returns the code block after "<!-- tested: NAME -->"
// in docs/forward-auth.md.
func forwardAuthSnippet(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- tested: "+name+" -->\n```")
	if !ok {
		t.Fatalf("docs/forward-auth.md has no tested snippet %q", name)
	}
	_, rest, _ = strings.Cut(rest, "\n")
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("docs/forward-auth.md: snippet %q does not end", name)
	}
	return block + "\n"
}

// startForwardAuthNginx runs nginx on port with the documented
// configuration, the gateway at gw and the application at app.
func startForwardAuthNginx(t *testing.T, port int, gw, app string) {
	t.Helper()
	bin := os.Getenv("CLOAKROOM_TEST_NGINX")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("nginx"); err != nil {
			if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
				t.Skip("nginx not found (set CLOAKROOM_TEST_NGINX; .ci/run installs it)")
			}
			bin = "/usr/sbin/nginx"
		}
	}
	if out, _ := exec.Command(bin, "-V").CombinedOutput(); !strings.Contains(string(out), "--with-http_auth_request_module") {
		t.Skipf("%s has no auth_request module", bin)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	identity := filepath.Join(dir, "cloakroom-identity.conf")
	server := forwardAuthSnippet(t, "nginx app.conf")
	for _, r := range [][2]string{
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
		{"server 127.0.0.1:4180;", "server " + gw + ";"},
		{"server 127.0.0.1:9000;", "server " + app + ";"},
		{"/etc/nginx/snippets/cloakroom-identity.conf", identity},
	} {
		if !strings.Contains(server, r[0]) {
			t.Fatalf("the documented nginx app.conf no longer contains %q: adjust the test", r[0])
		}
		server = strings.ReplaceAll(server, r[0], r[1])
	}
	files := map[string]string{
		identity:                         forwardAuthSnippet(t, "nginx cloakroom-identity.conf"),
		filepath.Join(dir, "app.conf"):   server,
		filepath.Join(dir, "nginx.conf"): fmt.Sprintf("daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr error;\npid %[1]s/nginx.pid;\nevents { worker_connections 128; }\nhttp {\n\taccess_log off;\n\tclient_body_temp_path %[1]s/body;\n\tproxy_temp_path %[1]s/proxy;\n\tfastcgi_temp_path %[1]s/fastcgi;\n\tuwsgi_temp_path %[1]s/uwsgi;\n\tscgi_temp_path %[1]s/scgi;\n\tinclude %[1]s/app.conf;\n}\n", dir),
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", out.String())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nginx does not listen on %d: %s", port, out.String())
}

// TestForwardAuthNginxBrowser: Chromium opens a page through nginx, is
// sent to the keycloaktest login form, logs in and lands on the page with
// the identity the gateway vouched for; bob gets 403 on the admin route;
// logging out through nginx ends the Keycloak session and the next visit
// asks for the password.
func TestForwardAuthNginxBrowser(t *testing.T) {
	if os.Getenv("CLOAKROOM_TEST_CHROMIUM") == "" {
		t.Skip("set CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	var mu sync.Mutex
	var seen []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
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
	t.Cleanup(app.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwURL := "http://" + ln.Addr().String()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	front := fmt.Sprintf("http://127.0.0.1:%d", port)

	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := idp.Realm("demo")
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "gateway", Secret: "gateway-secret", StandardFlow: true, Audiences: []string{"gateway"},
		RedirectURIs: []string{front + "/*"}, PostLogoutRedirectURIs: []string{front + "/*"},
		BackchannelLogoutURL: gwURL + "/_cloakroom/backchannel-logout", BackchannelLogoutSessionRequired: true,
	}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), gateway.Config{
		Listen: ln.Addr().String(), PublicURL: front, ForwardAuth: true, TrustedProxies: []string{"127.0.0.1"},
		Issuer: kc.Issuer(), ClientID: "gateway", ClientSecret: "gateway-secret",
		Session: gateway.SessionConfig{Store: "sqlite:" + filepath.Join(t.TempDir(), "sessions.db"), EncryptionKeys: []string{session.GenerateKey()}},
		Routes: []gateway.Route{
			{Name: "admin", Path: "/admin", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "app", Path: "/"},
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
		g.Close()
	})
	startForwardAuthNginx(t, port, ln.Addr().String(), strings.TrimPrefix(app.URL, "http://"))

	browser := chromium(t)
	login := func(ctx context.Context, path, user string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(front+path), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
			t.Fatalf("%s: no login form: %v", path, err)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, kc.Issuer()+"/protocol/openid-connect/auth?") {
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

	login(browser, "/reports", "alice")
	if loc, err := chromedp.Run(browser, chromedp.Location()); err != nil || loc != front+"/reports" {
		t.Fatalf("after the login: at %q, %v; want %s/reports", loc, err, front)
	}
	aliceID, _ := kc.UserID("alice")
	for sel, want := range map[string]string{"#where": "/reports", "#user": aliceID, "#username": "alice", "#email": "alice@example.com"} {
		if got, err := text(browser, sel); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", sel, got, err, want)
		}
	}
	if code, err := status(browser, front+"/admin/x"); err != nil || code != http.StatusOK {
		t.Errorf("alice on /admin/x: %d, %v", code, err)
	}

	bob, cancelBob := chromedp.NewContext(browser, chromedp.WithNewBrowserContext()) // own cookies
	defer cancelBob()
	login(bob, "/", "bob")
	if code, err := status(bob, front+"/admin/bob"); err != nil || code != http.StatusForbidden {
		t.Errorf("bob on /admin/bob: %d, %v; want 403", code, err)
	}

	// Logout through nginx: the link, the confirmation, Keycloak's
	// end-session endpoint, back to "signed out"; then the password again.
	if err := chromedp.Do(browser,
		chromedp.Navigate(front+"/reports"),
		chromedp.WaitVisible(chromedp.CSS("#where")),
		chromedp.Click(chromedp.CSS("#logout-link")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n := len(kc.SessionIDs("alice")); n != 0 {
		t.Errorf("%d Keycloak sessions of alice after the logout", n)
	}
	if err := chromedp.Do(browser, chromedp.Navigate(front+"/after-logout"), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Fatalf("the next visit did not ask for the password: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		if p == "/admin/bob" || p == "/after-logout" {
			t.Errorf("the application received %s", p)
		}
	}
}
