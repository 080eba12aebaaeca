package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/session"
)

// The gateway in front of a real Keycloak (CLOAKROOM_TEST_KEYCLOAK, started
// by scripts/keycloak.sh and by .ci/run), driven by Chromium through
// Keycloak's own login page: the code flow with PKCE, state, nonce and iss;
// roles; RP-initiated logout ending the Keycloak session; a logout made in
// Keycloak reaching the gateway over the back channel.

// realKC talks to a real Keycloak's admin API as the master administrator.
type realKC struct {
	t     *testing.T
	base  string
	realm string
}

func newRealKC(t *testing.T, realm string) *realKC {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	if os.Getenv("CLOAKROOM_TEST_CHROMIUM") == "" {
		t.Skip("set CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	k := &realKC{t: t, base: base, realm: realm}
	data, err := os.ReadFile("../interop/conformance/testdata/conformance-realm.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	rep["realm"] = realm
	k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", rep, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0) })
	return k
}

func (k *realKC) issuer() string { return k.base + "/realms/" + k.realm }

func (k *realKC) token() string {
	k.t.Helper()
	user, pass := os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN"), os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD")
	if user == "" {
		user, pass = "admin", "admin"
	}
	res, err := http.PostForm(k.base+"/realms/master/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {user}, "password": {pass},
	})
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		k.t.Fatalf("admin login: %v (status %d)", err, res.StatusCode)
	}
	return tok.AccessToken
}

// call sends an admin request; want 0 accepts any status.
func (k *realKC) call(method, path string, body any, want int) []byte {
	k.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, k.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+k.token())
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if want != 0 && res.StatusCode != want {
		k.t.Fatalf("%s %s: status %d, want %d: %.300s", method, path, res.StatusCode, want, data)
	}
	return data
}

func (k *realKC) userID(username string) string {
	k.t.Helper()
	var users []struct{ ID string }
	json.Unmarshal(k.call(http.MethodGet, "/admin/realms/"+k.realm+"/users?exact=true&username="+username, nil, 200), &users)
	if len(users) != 1 {
		k.t.Fatalf("user %s not found", username)
	}
	return users[0].ID
}

func (k *realKC) sessions(username string) int {
	var s []any
	json.Unmarshal(k.call(http.MethodGet, "/admin/realms/"+k.realm+"/users/"+k.userID(username)+"/sessions", nil, 200), &s)
	return len(s)
}

// realGatewayEnv is a gateway in front of an upstream page, registered as a
// confidential client of the real Keycloak with its back-channel logout URL.
func realGatewayEnv(t *testing.T, realm string) (*gatewayEnv, *realKC) {
	t.Helper()
	k := newRealKC(t, realm)
	e := &gatewayEnv{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, seenRequest{path: r.URL.Path, header: r.Header.Clone()})
		e.mu.Unlock()
		h := gateway.DefaultHeaders
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = upstreamPage.Execute(w, map[string]string{
			"Path": r.URL.Path, "User": r.Header.Get(h.User), "Username": r.Header.Get(h.Username),
			"Email": r.Header.Get(h.Email), "Roles": r.Header.Get(h.Roles),
		})
	}))
	t.Cleanup(up.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	k.call(http.MethodPost, "/admin/realms/"+realm+"/clients", map[string]any{
		"clientId": "gateway", "enabled": true, "publicClient": false, "secret": "gateway-secret",
		"standardFlowEnabled": true, "directAccessGrantsEnabled": false, "frontchannelLogout": false,
		"redirectUris": []string{e.url + "/*"},
		"attributes": map[string]string{
			"post.logout.redirect.uris":           e.url + "/*",
			"backchannel.logout.url":              e.url + "/_cloakroom/backchannel-logout",
			"backchannel.logout.session.required": "true",
			"pkce.code.challenge.method":          "S256",
		},
		"protocolMappers": []any{map[string]any{
			"name": "audience-gateway", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]string{"included.client.audience": "gateway", "access.token.claim": "true", "introspection.token.claim": "true"},
		}},
	}, http.StatusCreated)
	g, err := gateway.New(context.Background(), gateway.Config{
		Listen: ln.Addr().String(), PublicURL: e.url,
		Issuer: k.issuer(), ClientID: "gateway", ClientSecret: "gateway-secret",
		Session: gateway.SessionConfig{
			Store:          "sqlite:" + filepath.Join(t.TempDir(), "sessions.db"),
			EncryptionKeys: []string{session.GenerateKey()},
		},
		Routes: []gateway.Route{
			{Name: "admin", Path: "/admin", Upstream: up.URL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "app", Path: "/", Upstream: up.URL},
		},
	}, gateway.WithLogger(quiet))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Close()
	})
	return e, k
}

// realLogin opens path through the gateway, checks that the browser is on
// Keycloak's own login page for the realm, and logs in there.
func realLogin(t *testing.T, ctx context.Context, e *gatewayEnv, k *realKC, path, user, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+path),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
	); err != nil {
		t.Fatalf("%s: no Keycloak login form: %v", path, err)
	}
	href, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasPrefix(href, k.issuer()+"/protocol/openid-connect/auth?") {
		t.Fatalf("the login form is not the realm's: %q, %v", href, err)
	}
	u, _ := url.Parse(href)
	for _, p := range []string{"state", "nonce", "code_challenge"} {
		if u.Query().Get(p) == "" {
			t.Errorf("the authorization request has no %s", p)
		}
	}
	if m := u.Query().Get("code_challenge_method"); m != "S256" {
		t.Errorf("code_challenge_method %q", m)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#where")),
	); err != nil {
		t.Fatalf("logging in as %s: %v", user, err)
	}
}

func TestRealKeycloakGatewayLoginRolesLogout(t *testing.T) {
	e, k := realGatewayEnv(t, "e2e-gateway")
	ctx := chromium(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	realLogin(t, ctx, e, k, "/reports?month=11", "alice", "alice-pw")
	if href, err := chromedp.Run(ctx, chromedp.Location()); err != nil || href != e.url+"/reports?month=11" {
		t.Fatalf("landed on %q, %v", href, err)
	}
	aliceID := k.userID("alice")
	for sel, want := range map[string]string{"#where": "/reports", "#user": aliceID, "#username": "alice", "#email": "alice@example.com"} {
		if got, err := text(ctx, sel); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", sel, got, err, want)
		}
	}
	if roles, _ := text(ctx, "#roles"); !strings.Contains(roles, "admin") {
		t.Errorf("roles %q", roles)
	}
	if code, err := status(ctx, e.url+"/admin/x"); err != nil || code != 200 {
		t.Errorf("alice on /admin: %d %v", code, err)
	}
	if n := k.sessions("alice"); n != 1 {
		t.Errorf("%d Keycloak sessions for alice", n)
	}
	// RP-initiated logout: the link, the confirmation, Keycloak's end-session
	// endpoint, back to "/", which asks for the password again.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#logout-link")),
		chromedp.Click(chromedp.CSS("#logout-link")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")), // "You have been signed out"
		pageLoaded,
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
	); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n := k.sessions("alice"); n != 0 {
		t.Errorf("%d Keycloak sessions left after logout", n)
	}
	// bob (auditor, a composite of user) is refused on /admin.
	realLogin(t, ctx, e, k, "/", "bob", "bob-pw")
	if code, err := status(ctx, e.url+"/admin/x"); err != nil || code != http.StatusForbidden {
		t.Errorf("bob on /admin: %d %v", code, err)
	}
}

func TestRealKeycloakGatewayBackchannelLogout(t *testing.T) {
	e, k := realGatewayEnv(t, "e2e-backchannel")
	ctx := chromium(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	realLogin(t, ctx, e, k, "/", "alice", "alice-pw")
	// An administrator signs alice out in Keycloak: Keycloak posts a logout
	// token to the gateway, which ends the browser's session.
	k.call(http.MethodPost, "/admin/realms/"+k.realm+"/users/"+k.userID("alice")+"/logout", nil, http.StatusNoContent)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/after"))
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.HasPrefix(loc, k.issuer()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still logged in 10 s after Keycloak ended the session (at %q, %v)", loc, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, r := range e.requests() {
		if r.path == "/after" {
			t.Errorf("the upstream was reached after the back-channel logout")
			break
		}
	}
}
