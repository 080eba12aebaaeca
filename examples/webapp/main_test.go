package main

import (
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

var loginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

func TestWebapp(t *testing.T) {
	t.Parallel()
	realm := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	for i := range realm.Clients {
		realm.Clients[i].RedirectURIs = []string{"http://127.0.0.1:*"}
		realm.Clients[i].PostLogoutRedirectURIs = []string{"http://127.0.0.1:*"}
	}
	kc := keycloaktest.NewServer(t, keycloaktest.WithRealm(realm))
	var h http.Handler
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer app.Close()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err = newApp(config{
		baseURL: app.URL, issuer: kc.Issuer("demo"), clientID: "cloakroom", clientSecret: keycloaktest.DemoClientSecret,
		sessionKeys: session.GenerateKey(),
	}, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}

	visit := func(c *http.Client, u string) (int, string) {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	logIn := func(user string) *http.Client {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		_, body := visit(c, app.URL+"/profile")
		m := loginForm.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no login form: %.300s", body)
		}
		resp, err := c.PostForm(html.UnescapeString(m[1]), url.Values{"username": {user}, "password": {user}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `id="username">`+user+`<`) {
			t.Fatalf("%s did not land on the profile: %.400s", user, b)
		}
		return c
	}

	alice := logIn("alice")
	if _, body := visit(alice, app.URL+"/profile"); !strings.Contains(body, "admin user") && !strings.Contains(body, "admin ") {
		t.Fatalf("alice's roles missing: %.600s", body)
	}
	if status, body := visit(alice, app.URL+"/admin"); status != 200 || !strings.Contains(body, `id="admin"`) {
		t.Fatalf("alice on /admin: %d", status)
	}
	bob := logIn("bob")
	if status, _ := visit(bob, app.URL+"/admin"); status != 403 {
		t.Fatalf("bob on /admin: %d", status)
	}
	if _, body := visit(http.DefaultClient, app.URL+"/"); !strings.Contains(body, "Hello, stranger") {
		t.Fatalf("anonymous home: %.200s", body)
	}
}

func TestDefaultBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1:8000", "http://127.0.0.1:8000"},
		{"0.0.0.0:8000", "http://127.0.0.1:8000"},
		{"[::]:8000", "http://127.0.0.1:8000"},
		{"[::1]:3000", "http://[::1]:3000"},
		{"192.0.2.7:80", "http://192.0.2.7:80"},
	}
	for _, tc := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultBaseURL(addr); got != tc.want {
			t.Errorf("defaultBaseURL(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestWebappAgainstDemoRealm: the demo realm of cloakroom dev, unchanged,
// takes the app on whatever loopback port it runs (here a random one, as
// README.md promises for --listen): login, profile and logout through
// Keycloak's end-session endpoint.
func TestWebappAgainstDemoRealm(t *testing.T) {
	t.Parallel()
	kc := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	var h http.Handler
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer app.Close()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	addr, _ := net.ResolveTCPAddr("tcp", strings.TrimPrefix(app.URL, "http://"))
	h, err = newApp(config{
		baseURL: defaultBaseURL(addr), issuer: kc.Issuer("demo"), clientID: keycloaktest.DemoClientID,
		clientSecret: keycloaktest.DemoClientSecret, sessionKeys: session.GenerateKey(),
	}, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	read := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := read(c.Get(app.URL + "/profile"))
	m := loginForm.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("no login page for the app on %s: %d %.400s", app.URL, status, body)
	}
	status, body = read(c.PostForm(html.UnescapeString(m[1]), url.Values{"username": {"alice"}, "password": {"alice"}}))
	if status != http.StatusOK || !strings.Contains(body, `id="username">alice<`) {
		t.Fatalf("alice did not land on the profile: %d %.400s", status, body)
	}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatalf("no logout form: %.400s", body)
	}
	status, body = read(c.PostForm(app.URL+"/auth/logout", url.Values{"csrf_token": {csrf[1]}}))
	if status != http.StatusOK || strings.Contains(body, "Invalid redirect uri") {
		t.Fatalf("logout: %d %.400s", status, body)
	}
	if _, body := read(c.Get(app.URL + "/")); !strings.Contains(body, "Hello, stranger") {
		t.Fatalf("still logged in after logout: %.300s", body)
	}
}
