package main

import (
	"html"
	"io"
	"log/slog"
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
