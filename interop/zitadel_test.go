package interop_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestZitadelExampleOP runs cloakroom against the example OpenID Provider
// of github.com/zitadel/oidc v3.49.2 (its exampleop and storage packages,
// with their built-in users, served on 127.0.0.1 by a launcher that
// peers/build.sh writes).
//
// Its clients get opaque access tokens (access token type "Bearer"), so
// there is nothing for bearer to verify locally. Its example client
// registers no post-logout redirect URI, so its end_session_endpoint
// refuses cloakroom's post_logout_redirect_uri: logout ends the local
// session and the provider shows an error page. It sends no back-channel
// logout.
func TestZitadelExampleOP(t *testing.T) {
	t.Parallel()
	bin := peerBinary(t, "zitadel-op", zitadelVersion)
	app, gw := newLateServer(t), newLateServer(t)
	addr := freeAddr(t)
	issuer := "http://" + addr + "/"
	startPeer(t, bin, nil, []string{
		"LISTEN=" + addr, "ISSUER=" + issuer,
		"REDIRECT_URI=" + app.URL + "/auth/callback," + gw.URL + "/_cloakroom/callback",
	}, issuer+".well-known/openid-configuration")

	c := rpConfig{issuer: issuer, clientID: "web", secret: "secret", scopes: []string{"openid", "profile", "email", "offline_access"}}
	a := startRP(t, app, c)
	startGateway(t, gw, c)
	user := "test-user@" + strings.Split(addr, ":")[0]
	login := func(b *peerBrowser, start string) peerPage {
		t.Helper()
		p := b.get(start)
		if !strings.HasPrefix(p.url, issuer+"login/") {
			t.Fatalf("expected the example OP's login page, got %d at %s", p.status, p.url)
		}
		return b.submitLogin(p, "username", user, "verysecure")
	}

	if generic, err := detectsGeneric(t.Context(), a.realm); err != nil || !generic {
		t.Fatalf("auto-detected generic profile: %v, %v; want true", generic, err)
	}
	b := newPeerBrowser(t)
	t.Run("login code flow and refresh", func(t *testing.T) {
		p := login(b, app.URL+"/private")
		if p.status != http.StatusOK || !strings.HasPrefix(p.body, "private ") {
			t.Fatalf("after login: %d at %s: %.300s", p.status, p.url, p.body)
		}
		if pageField(t, p.body, "sub") != "id1" || pageField(t, p.body, "user") != user || pageField(t, p.body, "email") != "test-user@zitadel.ch" {
			t.Errorf("session: %.300s", p.body)
		}
		if got := pageField(t, p.body, "access-claims"); got != "false" {
			t.Errorf("opaque access token read as claims (access-claims=%s)", got)
		}
		if !accessTokenChanged(t, b, a, pageField(t, p.body, "token")) {
			t.Error("refresh did not renew the access token")
		}
	})
	t.Run("gateway code flow", func(t *testing.T) {
		p := login(newPeerBrowser(t), gw.URL+"/")
		if p.status != http.StatusOK || !strings.Contains(p.body, "upstream user=id1 email=test-user@zitadel.ch") {
			t.Fatalf("gateway: %d at %s: %.300s", p.status, p.url, p.body)
		}
	})
	t.Run("RP-initiated logout", func(t *testing.T) {
		p := b.get(app.URL + "/private")
		p = b.logout(a, pageField(t, p.body, "csrf"))
		if !b.visited(issuer + "end_session") {
			t.Errorf("logout did not go to the end_session_endpoint: %v", b.hops)
		}
		if p = b.get(app.URL + "/private"); strings.HasPrefix(p.body, "private ") {
			t.Errorf("the local session survived logout")
		}
	})
}
