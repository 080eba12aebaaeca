package interop_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
)

// dexPasswordHash is bcrypt("password"), the hash of dex's own example
// configuration.
const dexPasswordHash = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"

// TestDex runs cloakroom against dex v2.45.1: in-memory storage, a static
// client and a static password user, on 127.0.0.1.
//
// dex issues JWT access tokens shaped exactly like its ID tokens (same
// audience, nonce and at_hash): cloakroom cannot tell them from ID tokens,
// so it refuses them as bearer tokens (an API needs introspection for
// dex), and the login package carries them as opaque credentials. dex
// advertises no end_session_endpoint and sends no back-channel logout, so
// logout ends the local session only.
func TestDex(t *testing.T) {
	t.Parallel()
	bin := peerBinary(t, "dex", dexVersion)
	app, gw := newLateServer(t), newLateServer(t)
	addr := freeAddr(t)
	issuer := "http://" + addr + "/dex"
	conf := fmt.Sprintf(`issuer: %s
storage:
  type: memory
web:
  http: %s
oauth2:
  skipApprovalScreen: true
enablePasswordDB: true
staticClients:
- id: web
  secret: web-secret
  name: cloakroom interop
  redirectURIs: ['%s/auth/callback', '%s/_cloakroom/callback']
staticPasswords:
- email: admin@example.com
  hash: "%s"
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
`, issuer, addr, app.URL, gw.URL, dexPasswordHash)
	path := filepath.Join(t.TempDir(), "dex.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startPeer(t, bin, []string{"serve", path}, nil, issuer+"/.well-known/openid-configuration")

	c := rpConfig{issuer: issuer, clientID: "web", secret: "web-secret", scopes: []string{"openid", "profile", "email", "offline_access"}, rolesClaim: "groups"}
	a := startRP(t, app, c)
	startGateway(t, gw, c)
	login := func(b *peerBrowser, start string) peerPage {
		t.Helper()
		p := b.get(start)
		if !strings.HasPrefix(p.url, issuer) {
			t.Fatalf("expected dex's login page, got %d at %s", p.status, p.url)
		}
		return b.submitLogin(p, "login", "admin@example.com", "password")
	}

	if generic, err := detectsGeneric(t.Context(), a.realm); err != nil || !generic {
		t.Fatalf("auto-detected generic profile: %v, %v; want true", generic, err)
	}
	var sub, accessToken string
	b := newPeerBrowser(t)
	t.Run("login code flow and refresh", func(t *testing.T) {
		p := login(b, app.URL+"/private")
		if p.status != http.StatusOK || !strings.HasPrefix(p.body, "private ") {
			t.Fatalf("after login: %d at %s: %.300s", p.status, p.url, p.body)
		}
		sub, accessToken = pageField(t, p.body, "sub"), pageField(t, p.body, "token")
		if sub == "" || pageField(t, p.body, "email") != "admin@example.com" {
			t.Errorf("session: %.300s", p.body)
		}
		if got := pageField(t, p.body, "access-claims"); got != "false" {
			t.Errorf("dex's ID-token-shaped access token was read as an access token (access-claims=%s)", got)
		}
		if !accessTokenChanged(t, b, a, accessToken) {
			t.Error("refresh did not renew the access token")
		}
		if p := b.get(app.URL + "/admin"); p.status != http.StatusForbidden {
			t.Errorf("/admin without the admin group: %d", p.status)
		}
	})
	t.Run("gateway code flow", func(t *testing.T) {
		p := login(newPeerBrowser(t), gw.URL+"/")
		if p.status != http.StatusOK || !strings.Contains(p.body, "upstream user="+sub+" email=admin@example.com") {
			t.Fatalf("gateway: %d at %s: %.300s", p.status, p.url, p.body)
		}
	})
	t.Run("bearer refuses the ID-token-shaped access token", func(t *testing.T) {
		if accessToken == "" {
			t.Skip("no login")
		}
		_, err := bearerCheck(t, issuer, "web", nil, accessToken)
		if !errors.Is(err, cloakroom.ErrTokenType) {
			t.Fatalf("dex access token as bearer token: err = %v, want ErrTokenType", err)
		}
	})
	t.Run("logout ends the local session", func(t *testing.T) {
		p := b.get(app.URL + "/private")
		p = b.logout(a, pageField(t, p.body, "csrf"))
		if b.visited(issuer) {
			t.Errorf("logout went to dex, which announces no end_session_endpoint: %v", b.hops)
		}
		if p = b.get(app.URL + "/private"); !strings.HasPrefix(p.url, issuer) {
			t.Errorf("after logout /private did not ask dex for a login: %d at %s", p.status, p.url)
		}
	})
}
