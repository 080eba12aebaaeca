package login_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

func newOfflineHandler(t *testing.T, prefix string, logs *bytes.Buffer) *login.Handler {
	t.Helper()
	realm, err := cloakroom.NewRealm("https://sso.example.com/realms/demo")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	sessions, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring})
	h, err := login.New(login.Config{
		Realm: realm, ClientID: "webapp", ClientSecret: "s", BaseURL: "https://app.example.com",
		Prefix: prefix, Sessions: sessions, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMount: Mount serves exactly the prefix's subtree; a Handler mounted
// at another pattern (or behind StripPrefix) answers 404 and says why once.
func TestMount(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := newOfflineHandler(t, "/sso", &logs)
	mux := http.NewServeMux()
	h.Mount(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for path, want := range map[string]int{"/sso/logout": http.StatusFound, "/sso/nothing": http.StatusNotFound, "/auth/logout": http.StatusTeapot, "/ssox": http.StatusTeapot} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://app.example.com"+path, nil))
		if w.Code != want {
			t.Errorf("GET %s = %d, want %d", path, w.Code, want)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("warnings with Mount: %s", logs.String())
	}

	wrong := http.NewServeMux()
	wrong.Handle("/sso/", http.StripPrefix("/sso", h))
	for range 2 {
		w := httptest.NewRecorder()
		wrong.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://app.example.com/sso/login", nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("behind StripPrefix: %d, want 404", w.Code)
		}
	}
	if n := strings.Count(logs.String(), "Handler.Mount"); n != 1 {
		t.Errorf("%d warnings naming Handler.Mount, want 1: %s", n, logs.String())
	}
}

func TestLogoutURLAndFormFields(t *testing.T) {
	t.Parallel()
	h := newOfflineHandler(t, "/auth", new(bytes.Buffer))
	for returnTo, want := range map[string]string{"": "/auth/logout", "/bye?x=1": "/auth/logout?return_to=%2Fbye%3Fx%3D1"} {
		if got := h.LogoutURL(returnTo); got != want {
			t.Errorf("LogoutURL(%q) = %q, want %q", returnTo, got, want)
		}
	}
	var none *login.Session
	if got := none.LogoutFormFields(); got != "" {
		t.Errorf("nil Session: %q", got)
	}
	s := &login.Session{CSRFToken: `a"b<c`}
	if got, want := string(s.LogoutFormFields()), `<input type="hidden" name="csrf_token" value="a&#34;b&lt;c">`; got != want {
		t.Errorf("LogoutFormFields = %s, want %s", got, want)
	}
}
