package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/session"
)

// syncBuffer is an io.Writer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// passwordToken runs the password grant at the real Keycloak and returns
// the access token.
func passwordToken(t *testing.T, k *realKC, client, secret, user, password string) string {
	t.Helper()
	res, err := http.PostForm(k.issuer()+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {client}, "client_secret": {secret},
		"username": {user}, "password": {password}, "scope": {"openid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("password grant for %s at %s: status %d, %v", user, client, res.StatusCode, err)
	}
	return tok.AccessToken
}

// TestRealKeycloakServe runs `cloakroom serve` as its own process, built
// from this tree and configured by a YAML file as docs/gateway.md shows
// (secret and session key from CLOAKROOM_CLIENT_SECRET and
// CLOAKROOM_ENCRYPTION_KEY), in front of an upstream and a real Keycloak.
// It proves: a browser is sent to Keycloak's own login page and back; the
// upstream receives the identity headers (X-Forwarded-User = the Keycloak
// user id, username, email, roles) and never the session cookie; RP
// logout ends the Keycloak session and the next page asks for the
// password again without reaching the upstream; the api route takes real
// Keycloak bearer tokens (admin role: 200 and the identity forwarded;
// without it: 403 insufficient_scope; a token for another audience, a
// malformed token or none: 401); no token or secret reaches the log; and
// SIGTERM stops the process with status 0.
func TestRealKeycloakServe(t *testing.T) {
	k := newRealKC(t, "e2e-serve") // skips without Keycloak or Chromium

	e := &gatewayEnv{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, seenRequest{path: r.URL.Path, header: r.Header.Clone()})
		e.mu.Unlock()
		h := gateway.DefaultHeaders
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get(h.User), "roles": r.Header.Get(h.Roles)})
			return
		}
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
	addr := ln.Addr().String()
	ln.Close()
	e.url = "http://" + addr
	k.call(http.MethodPost, "/admin/realms/"+k.realm+"/clients", map[string]any{
		"clientId": "gateway", "enabled": true, "publicClient": false, "secret": "gateway-secret",
		// Direct grants only so that the test can get bearer tokens.
		"standardFlowEnabled": true, "directAccessGrantsEnabled": true, "frontchannelLogout": false,
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

	dir := t.TempDir()
	bin := filepath.Join(dir, "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cloakroom")
	build.Dir = ".." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	config := filepath.Join(dir, "gateway.yaml")
	yaml := fmt.Sprintf(`listen: %s
public_url: %s
issuer: %s
client_id: gateway
session:
  store: sqlite:%s
routes:
  - name: api
    path: /api
    upstream: %s
    mode: api
    realm_roles: {any: [admin]}
  - name: app
    path: /
    upstream: %s
`, addr, e.url, k.issuer(), filepath.Join(dir, "sessions.db"), up.URL, up.URL)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", config, "--log-format", "text")
	cmd.Env = append(os.Environ(), "CLOAKROOM_CLIENT_SECRET=gateway-secret", "CLOAKROOM_ENCRYPTION_KEY="+session.GenerateKey())
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered before chromium(t): Chromium closes first, so the
	// graceful shutdown has no browser connections to wait for.
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("cloakroom serve after SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("cloakroom serve did not stop within 20 s of SIGTERM")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(e.url + "/_cloakroom/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("cloakroom serve exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloakroom serve not ready after 30 s\n%s", logs.String())
		}
	}

	ctx := chromium(t)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	aliceID := k.userID("alice")

	// Browser login through Keycloak's page; the upstream sees who it is.
	realLogin(t, ctx, e, k, "/hello?x=1", "alice", "alice-pw")
	if href, err := chromedp.Run(ctx, chromedp.Location()); err != nil || href != e.url+"/hello?x=1" {
		t.Fatalf("landed on %q, %v", href, err)
	}
	if got, err := text(ctx, "#user"); err != nil || got != aliceID {
		t.Errorf("the page shows user %q, %v; want %s", got, err, aliceID)
	}
	var hello *seenRequest
	for _, r := range e.requests() {
		if r.path == "/hello" {
			hello = &r
		}
	}
	if hello == nil {
		t.Fatal("the upstream never received /hello")
	}
	h := gateway.DefaultHeaders
	for name, want := range map[string]string{h.User: aliceID, h.Username: "alice", h.Email: "alice@example.com"} {
		if got := hello.header.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	if roles := strings.Split(hello.header.Get(h.Roles), ","); !containsAll(roles, "admin", "user", "conf-app:editor") {
		t.Errorf("upstream %s = %v", h.Roles, roles)
	}
	if c := hello.header.Get("Cookie"); strings.Contains(c, "cloakroom=") {
		t.Errorf("the session cookie reached the upstream: %q", c)
	}
	if n := k.sessions("alice"); n != 1 {
		t.Errorf("%d Keycloak sessions for alice after the login, want 1", n)
	}

	// RP-initiated logout ends the Keycloak session too.
	if err := chromedp.Do(ctx,
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
		t.Errorf("%d Keycloak sessions for alice after the logout", n)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/after-logout"), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Errorf("after the logout, a page does not ask for the password: %v", err)
	}
	for _, r := range e.requests() {
		if r.path == "/after-logout" {
			t.Errorf("the upstream was reached after the logout")
		}
	}

	// The api route with real Keycloak bearer tokens.
	alice := passwordToken(t, k, "gateway", "gateway-secret", "alice", "alice-pw")
	bob := passwordToken(t, k, "gateway", "gateway-secret", "bob", "bob-pw")
	otherAudience := passwordToken(t, k, "conf-app", "conf-app-secret", "alice", "alice-pw")
	for _, tc := range []struct {
		name, auth  string
		status      int
		challenge   string // in WWW-Authenticate
		body        string // in the body
		forwardedTo string // the X-Forwarded-User the upstream must see
	}{
		{name: "admin", auth: "Bearer " + alice, status: 200, body: `"user":"` + aliceID + `"`, forwardedTo: aliceID},
		{name: "without the role", auth: "Bearer " + bob, status: 403, challenge: `error="insufficient_scope"`, body: "permission_denied"},
		{name: "another audience", auth: "Bearer " + otherAudience, status: 401, challenge: `error="invalid_token"`, body: "token_not_valid"},
		{name: "malformed", auth: "Bearer not-a-token", status: 401, challenge: `error="invalid_token"`, body: "token_not_valid"},
		{name: "none", status: 401, challenge: "Bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/api/orders-" + strings.ReplaceAll(tc.name, " ", "-")
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || !strings.Contains(string(body), tc.body) || !strings.Contains(res.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Errorf("%d %q %s; want %d, challenge %q, body with %q", res.StatusCode, res.Header.Get("WWW-Authenticate"), body, tc.status, tc.challenge, tc.body)
			}
			var reached *seenRequest
			for _, r := range e.requests() {
				if r.path == path {
					reached = &r
				}
			}
			switch {
			case tc.forwardedTo == "" && reached != nil:
				t.Errorf("a refused request reached the upstream")
			case tc.forwardedTo != "" && (reached == nil || reached.header.Get(h.User) != tc.forwardedTo):
				t.Errorf("the upstream got %v, want X-Forwarded-User %s", reached, tc.forwardedTo)
			}
		})
	}

	for _, secret := range []string{"gateway-secret", alice, bob, otherAudience} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the gateway's log holds a secret or token:\n%s", logs.String())
			break
		}
	}

	// The cleanup sends SIGTERM once Chromium is gone and checks the exit.
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, v := range list {
			found = found || v == w
		}
		if !found {
			return false
		}
	}
	return true
}
