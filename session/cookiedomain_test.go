package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/session"
)

// TestCookieDomain: with CookieDomain the session cookie carries Domain
// (set and cleared alike) and, when Secure, the __Secure- prefix, since
// __Host- cookies cannot have a Domain.
func TestCookieDomain(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		ring, _ := session.NewKeyring(make([]byte, 32))
		m, err := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring, Secure: secure, CookieDomain: ".example.com"})
		if err != nil {
			t.Fatal(err)
		}
		want := "cloakroom"
		if secure {
			want = "__Secure-cloakroom"
		}
		if m.CookieName() != want {
			t.Errorf("secure %v: cookie name %q, want %q", secure, m.CookieName(), want)
		}
		if m2 := m.WithSecure(!secure); m2.CookieName() == "__Host-cloakroom" {
			t.Error("WithSecure dropped the domain")
		}
		w := httptest.NewRecorder()
		if err := m.Create(context.Background(), w, &session.State{Subject: "u1"}); err != nil {
			t.Fatal(err)
		}
		m.ClearCookie(w)
		set := w.Result().Header.Values("Set-Cookie")
		if len(set) != 2 {
			t.Fatalf("Set-Cookie: %q", set)
		}
		for _, c := range set {
			if !strings.Contains(c, "; Domain=example.com") || !strings.HasPrefix(c, want+"=") {
				t.Errorf("secure %v: %q", secure, c)
			}
		}
		req := &http.Request{Header: http.Header{"Cookie": {strings.Split(set[0], ";")[0]}}}
		if s, err := m.Get(req); err != nil || s.Subject != "u1" {
			t.Errorf("Get: %v %v", s, err)
		}
	}
}
