package bench

import (
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

var kcLoginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// BenchmarkLoginRoundTrip measures complete browser logins per second: a
// fresh browser asks for a protected page, is sent to keycloaktest's login
// form, posts the password, comes back through the callback (code exchange,
// ID and access token verification, session creation) and lands on the
// page. Everything runs on this machine, so the figure is the cost of the
// whole flow on both sides, not network latency.
func BenchmarkLoginRoundTrip(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	idp := keycloaktest.NewServer(b, keycloaktest.WithDemoRealm())
	kc := idp.Realm("demo")
	var h http.Handler
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer app.Close()
	if err := kc.AddClient(keycloaktest.ClientConfig{ClientID: "webapp", Secret: "s", StandardFlow: true, RedirectURIs: []string{app.URL + "/*"}}); err != nil {
		b.Fatal(err)
	}
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	store := session.NewMemoryStore()
	mgr, _ := session.NewManager(session.Config{Store: store, Keyring: ring})
	realm, _ := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
	auth, err := login.New(login.Config{Realm: realm, ClientID: "webapp", ClientSecret: "s", BaseURL: app.URL, Sessions: mgr, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	auth.Mount(mux)
	mux.Handle("/private", auth.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	h = auth.Middleware(mux)

	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	oneLogin := func() error {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: transport}
		resp, err := c.Get(app.URL + "/private")
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := kcLoginForm.FindSubmatch(page)
		if m == nil {
			return io.ErrUnexpectedEOF
		}
		resp, err = c.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {"alice"}, "password": {"alice"}})
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), "ok") {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	if err := oneLogin(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := oneLogin(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}
