package login_test

import (
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// TestSecureFollowsBaseURL: the session cookie is Secure (and __Host-)
// exactly when BaseURL is https, whatever session.Config.Secure says; a
// disagreement is no longer an error.
func TestSecureFollowsBaseURL(t *testing.T) {
	t.Parallel()
	realm, err := cloakroom.NewRealm("http://127.0.0.1:1/realms/x", cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(mustKeys(t)...)
	for _, tc := range []struct {
		base         string
		configSecure bool
		want         bool
		wantCookie   string
	}{
		{"https://app.example", false, true, "__Host-cloakroom"},
		{"https://app.example", true, true, "__Host-cloakroom"},
		{"http://127.0.0.1:8000", true, false, "cloakroom"},
		{"http://127.0.0.1:8000", false, false, "cloakroom"},
	} {
		mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: kr, Secure: tc.configSecure})
		h, err := login.New(login.Config{Realm: realm, ClientID: "app", ClientSecret: "s", BaseURL: tc.base, Sessions: mgr, Logger: quiet})
		if err != nil {
			t.Fatalf("%s with Secure %v: %v", tc.base, tc.configSecure, err)
		}
		if got := h.Sessions(); got.Secure() != tc.want || got.CookieName() != tc.wantCookie {
			t.Errorf("%s with Secure %v: Sessions() Secure %v, cookie %q; want %v, %q", tc.base, tc.configSecure, got.Secure(), got.CookieName(), tc.want, tc.wantCookie)
		}
		if (h.Sessions() == mgr) != (tc.configSecure == tc.want) {
			t.Errorf("%s with Secure %v: a copy was made needlessly, or the Manager was changed", tc.base, tc.configSecure)
		}
		if mgr.Secure() != tc.configSecure {
			t.Errorf("login.New changed the Manager it was given")
		}
	}
}
