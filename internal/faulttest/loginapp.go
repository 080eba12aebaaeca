package faulttest

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// LoginApp is a small web application built on the login package alone,
// in front of a keycloaktest server with the demo realm (users alice and
// bob, password = username): GET /private needs a login and answers
// "private page of SUB"; everything under /auth/ is the login Handler.
type LoginApp struct {
	IDP     *keycloaktest.Server
	KC      *keycloaktest.Realm
	URL     string
	Handler *login.Handler
	Store   session.Store
	Logs    *SyncBuffer
}

// AppCookie is the LoginApp's session cookie name.
const AppCookie = "cloakroom"

// NewLoginApp starts a LoginApp whose sessions live in store. Keycloak's
// back-channel logouts for the client "webapp" reach it.
func NewLoginApp(t testing.TB, store session.Store) *LoginApp {
	t.Helper()
	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	a := &LoginApp{IDP: idp, KC: idp.Realm("demo"), Store: store, Logs: &SyncBuffer{}}
	var handler http.Handler = http.NotFoundHandler()
	var mu sync.RWMutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		h := handler
		mu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	if err := a.KC.AddClient(keycloaktest.ClientConfig{
		ClientID: "webapp", Secret: "webapp-secret", StandardFlow: true,
		RedirectURIs: []string{srv.URL + "/*"}, PostLogoutRedirectURIs: []string{srv.URL + "/*"},
		BackchannelLogoutURL: srv.URL + "/auth/backchannel-logout", BackchannelLogoutSessionRequired: true,
	}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(a.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	realm, err := cloakroom.NewRealm(a.KC.Issuer(), cloakroom.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := session.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := session.NewManager(session.Config{Store: store, Keyring: ring, CookieName: AppCookie})
	if err != nil {
		t.Fatal(err)
	}
	a.Handler, err = login.New(login.Config{
		Realm: realm, ClientID: "webapp", ClientSecret: "webapp-secret",
		BaseURL: srv.URL, Sessions: mgr, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Handler.Mount(mux)
	mux.Handle("/private", a.Handler.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		fmt.Fprintf(w, "private page of %s csrf=%s", s.Subject, s.CSRFToken)
	})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := login.FromContext(r.Context()); ok {
			fmt.Fprintf(w, "home of %s", s.Subject)
			return
		}
		io.WriteString(w, "home of nobody")
	})
	mu.Lock()
	handler = a.Handler.Middleware(mux)
	mu.Unlock()
	return a
}

// Subject returns the Keycloak id of a demo user.
func (a *LoginApp) Subject(t testing.TB, user string) string {
	t.Helper()
	id, ok := a.KC.UserID(user)
	if !ok {
		t.Fatalf("no user %q", user)
	}
	return id
}

// CSRF reads the session's CSRF token from p (a /private page).
func CSRF(p Page) string {
	_, after, ok := strings.Cut(p.Body, "csrf=")
	if !ok {
		return ""
	}
	return strings.Fields(after)[0]
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
