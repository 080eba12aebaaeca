package interop_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
)

// hydraAdmin calls Hydra's admin API and decodes the JSON answer into out.
func hydraAdmin(t *testing.T, admin, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, admin+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("hydra admin %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("hydra admin %s %s: %v", method, path, err)
		}
	}
}

// hydraUI is the login, consent and logout application Hydra sends
// browsers to: it accepts every request for user alice through the admin
// API, as a real login UI would after checking a password.
func hydraUI(t *testing.T, admin string) http.Handler {
	accept := func(w http.ResponseWriter, r *http.Request, kind, param string, body func(req map[string]any) any) {
		challenge := r.URL.Query().Get(param)
		var req map[string]any
		if kind != "logout" {
			hydraAdmin(t, admin, http.MethodGet, "/admin/oauth2/auth/requests/"+kind+"?"+param+"="+url.QueryEscape(challenge), nil, &req)
		}
		var out struct {
			RedirectTo string `json:"redirect_to"`
		}
		hydraAdmin(t, admin, http.MethodPut, "/admin/oauth2/auth/requests/"+kind+"/accept?"+param+"="+url.QueryEscape(challenge), body(req), &out)
		http.Redirect(w, r, out.RedirectTo, http.StatusFound)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		accept(w, r, "login", "login_challenge", func(map[string]any) any {
			return map[string]any{"subject": "alice", "remember": true, "remember_for": 3600}
		})
	})
	mux.HandleFunc("/consent", func(w http.ResponseWriter, r *http.Request) {
		accept(w, r, "consent", "consent_challenge", func(req map[string]any) any {
			return map[string]any{
				"grant_scope":                 req["requested_scope"],
				"grant_access_token_audience": req["requested_access_token_audience"],
				"session": map[string]any{
					"id_token":     map[string]any{"email": "alice@example.com", "preferred_username": "alice", "groups": []string{"admin"}},
					"access_token": map[string]any{"groups": []string{"admin"}},
				},
			}
		})
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		accept(w, r, "logout", "logout_challenge", func(map[string]any) any { return nil })
	})
	return mux
}

// TestHydra runs cloakroom against ORY Hydra v2.3.0 (serve all --dev,
// in-memory database, JWT access tokens), with a login/consent/logout UI
// that accepts through Hydra's admin API: the code flow of the login
// package (two applications sharing Hydra's session) and of the gateway,
// refresh, bearer validation of Hydra's RFC 9068-like JWT access tokens
// (client_id instead of azp, scp, custom claims under ext),
// RP-initiated logout, and the back-channel logout Hydra sends to the
// other application, which ends its session.
func TestHydra(t *testing.T) {
	t.Parallel()
	bin := peerBinary(t, "hydra", hydraVersion)
	app1, app2, gw, ui := newLateServer(t), newLateServer(t), newLateServer(t), newLateServer(t)
	pub, adm := freeAddr(t), freeAddr(t)
	issuer, admin := "http://"+pub+"/", "http://"+adm
	host, pubPort, _ := strings.Cut(pub, ":")
	_, admPort, _ := strings.Cut(adm, ":")
	startPeer(t, bin, []string{"serve", "all", "--dev", "--sqa-opt-out"}, []string{
		"DSN=memory",
		"SERVE_PUBLIC_HOST=" + host, "SERVE_PUBLIC_PORT=" + pubPort,
		"SERVE_ADMIN_HOST=" + host, "SERVE_ADMIN_PORT=" + admPort,
		"URLS_SELF_ISSUER=" + issuer,
		"URLS_LOGIN=" + ui.URL + "/login", "URLS_CONSENT=" + ui.URL + "/consent", "URLS_LOGOUT=" + ui.URL + "/logout",
		"SECRETS_SYSTEM=cloakroom-interop-test-system-secret",
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"LOG_LEVEL=warn",
	}, admin+"/health/ready")
	ui.set(hydraUI(t, admin))
	// Hydra creates its signing keys on first use; two first uses at once
	// (the applications' and the gateway's discovery) can each create one
	// and publish the second after the relying parties fetched the first.
	// One request first makes the key sets exist before anyone looks.
	resp, err := http.Get(issuer + ".well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range []struct{ id, base, callback string }{
		{"web1", app1.URL, "/auth"}, {"web2", app2.URL, "/auth"}, {"gw", gw.URL, "/_cloakroom"},
	} {
		hydraAdmin(t, admin, http.MethodPost, "/admin/clients", map[string]any{
			"client_id": c.id, "client_secret": c.id + "-secret",
			"grant_types":                         []string{"authorization_code", "refresh_token"},
			"response_types":                      []string{"code"},
			"scope":                               "openid offline_access profile email",
			"redirect_uris":                       []string{c.base + c.callback + "/callback"},
			"post_logout_redirect_uris":           []string{c.base + c.callback + "/logged-out"},
			"backchannel_logout_uri":              c.base + c.callback + "/backchannel-logout",
			"backchannel_logout_session_required": true,
			"token_endpoint_auth_method":          "client_secret_basic",
		}, nil)
	}
	scopes := []string{"openid", "offline_access", "profile", "email"}
	a1 := startRP(t, app1, rpConfig{issuer: issuer, clientID: "web1", secret: "web1-secret", scopes: scopes, rolesClaim: "ext.groups"})
	a2 := startRP(t, app2, rpConfig{issuer: issuer, clientID: "web2", secret: "web2-secret", scopes: scopes, rolesClaim: "ext.groups"})
	startGateway(t, gw, rpConfig{issuer: issuer, clientID: "gw", secret: "gw-secret", scopes: scopes, rolesClaim: "ext.groups"})

	if generic, err := detectsGeneric(t.Context(), a1.realm); err != nil || !generic {
		t.Fatalf("auto-detected generic profile: %v, %v; want true", generic, err)
	}
	b := newPeerBrowser(t)
	var accessToken string
	t.Run("login code flow, roles and refresh", func(t *testing.T) {
		p := b.get(app1.URL + "/private")
		if p.status != http.StatusOK || !strings.HasPrefix(p.body, "private ") || !b.visited(ui.URL+"/consent") {
			t.Fatalf("after login: %d at %s (hops %v): %.300s", p.status, p.url, b.hops, p.body)
		}
		if pageField(t, p.body, "sub") != "alice" || pageField(t, p.body, "user") != "alice" || pageField(t, p.body, "email") != "alice@example.com" || pageField(t, p.body, "sid") == "" {
			t.Errorf("session: %.300s", p.body)
		}
		if got := pageField(t, p.body, "access-claims"); got != "true" {
			t.Errorf("Hydra's JWT access token was not verified (access-claims=%s)", got)
		}
		accessToken = pageField(t, p.body, "token")
		if !accessTokenChanged(t, b, a1, accessToken) {
			t.Error("refresh did not renew the access token")
		}
		if p := b.get(app1.URL + "/admin"); p.status != http.StatusOK {
			t.Errorf("/admin with ext.groups [admin]: %d %.200s", p.status, p.body)
		}
		// The second application logs in through Hydra's session.
		if p := b.get(app2.URL + "/private"); p.status != http.StatusOK || pageField(t, p.body, "sub") != "alice" {
			t.Fatalf("second application: %d at %s: %.300s", p.status, p.url, p.body)
		}
	})
	t.Run("bearer validates the JWT access token", func(t *testing.T) {
		if accessToken == "" {
			t.Skip("no login")
		}
		if _, err := bearerCheck(t, issuer, "orders-api", nil, accessToken); !errors.Is(err, cloakroom.ErrAudience) {
			t.Errorf("token of client web1 at an API that does not trust it: err = %v, want ErrAudience", err)
		}
		c, err := bearerCheck(t, issuer, "orders-api", []string{"web1"}, accessToken)
		if err != nil {
			t.Fatalf("token of client web1 (client_id) at an API that trusts it: %v", err)
		}
		if c.Subject() != "alice" || !c.HasScope("openid") || !slices.Contains(c.Strings("ext.groups"), "admin") {
			t.Errorf("claims: sub %q, scopes %q, ext.groups %q", c.Subject(), c.Scopes(), c.Strings("ext.groups"))
		}
	})
	t.Run("gateway code flow", func(t *testing.T) {
		p := newPeerBrowser(t).get(gw.URL + "/")
		if p.status != http.StatusOK || !strings.Contains(p.body, "upstream user=alice email=alice@example.com roles=admin") {
			t.Fatalf("gateway: %d at %s: %.300s", p.status, p.url, p.body)
		}
	})
	t.Run("RP-initiated logout and back-channel logout", func(t *testing.T) {
		p := b.get(app1.URL + "/private")
		csrf := pageField(t, p.body, "csrf")
		b.logout(a1, csrf)
		if !b.visited(issuer+"oauth2/sessions/logout") || !b.visited(ui.URL+"/logout") || !b.visited(app1.URL+"/auth/logged-out") {
			t.Errorf("logout did not pass Hydra's end-session endpoint and come back: %v", b.hops)
		}
		// Hydra posts the logout token to web2 while the browser is
		// redirected; wait for it (bounded), no sleeping on success.
		deadline := time.Now().Add(15 * time.Second)
		for a2.backchannel.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := a2.backchannel.Load(); n != 1 {
			t.Fatalf("back-channel logout ended %d sessions of the second application, want 1", n)
		}
		// The next visit is a new login at Hydra, not the old session.
		if p := b.get(app2.URL + "/private"); !b.visited(issuer+"oauth2/auth") || p.status != http.StatusOK {
			t.Errorf("the second application's session survived Hydra's back-channel logout: hops %v", b.hops)
		}
	})
}
