package interop_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"golang.org/x/oauth2"
)

// keycloak-connect, Keycloak's Node.js adapter (interop/node/package.json
// pins the version), protecting an Express API with bearer tokens issued by
// `cloakroom dev`. Needs node and npm: CLOAKROOM_INTEROP_NODE=1.

var (
	connectNpmOnce sync.Once
	connectNpmErr  error
)

// nodeDir returns interop/node with its npm packages installed, running
// `npm ci` once when node_modules is missing or older than
// package-lock.json (an installed tree needs no network). It skips the test
// unless CLOAKROOM_INTEROP_NODE is set.
func nodeDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("CLOAKROOM_INTEROP_NODE") == "" {
		t.Skip("set CLOAKROOM_INTEROP_NODE=1 (needs node and npm) to run Keycloak's own Node.js adapter")
	}
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	connectNpmOnce.Do(func() {
		lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			connectNpmErr = err
			return
		}
		if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			connectNpmErr = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	if connectNpmErr != nil {
		t.Fatal(connectNpmErr)
	}
	return dir
}

// lineWaiter collects a child process's output and reports the first line
// matching a pattern.
type lineWaiter struct {
	mu    sync.Mutex
	out   strings.Builder
	match chan []string
}

func newLineWaiter(r io.Reader, re *regexp.Regexp) *lineWaiter {
	lw := &lineWaiter{match: make(chan []string, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		found := false
		for sc.Scan() {
			lw.mu.Lock()
			lw.out.WriteString(sc.Text() + "\n")
			lw.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				lw.match <- m
			}
		}
	}()
	return lw
}

func (lw *lineWaiter) String() string {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.out.String()
}

// startProcess starts a child that prints a line matching re when ready,
// and returns the submatches of that line. The child is killed at the end
// of the test.
func startProcess(t *testing.T, cmd *exec.Cmd, re *regexp.Regexp) []string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // one stream, read by the waiter
	lw := newLineWaiter(stdout, re)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case m := <-lw.match:
		return m
	case err := <-exited:
		t.Fatalf("%s exited early: %v\n%s", cmd.Path, err, lw)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s is not ready after 60s:\n%s", cmd.Path, lw)
	}
	return nil
}

// startCloakroomDev builds the cloakroom command and runs `cloakroom dev`
// with the demo realm plus a client whose access tokens live one second
// ("short-lived", Keycloak's client attribute access.token.lifespan). It
// returns the realm's issuer.
func startCloakroomDev(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cloakroom")
	build.Dir = ".." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := keycloaktest.DemoRealm(clientSecret)
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{
		ClientID: "short-lived", Secret: "short-secret", DirectAccessGrants: true, Audiences: []string{clientID},
		Attributes: map[string]string{"access.token.lifespan": "1"},
	})
	srv, err := keycloaktest.New(keycloaktest.WithRealm(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	export, err := srv.Realm(demoRealm).Export()
	if err != nil {
		t.Fatal(err)
	}
	realmFile := filepath.Join(tmp, "realm.json")
	if err := os.WriteFile(realmFile, export, 0o600); err != nil {
		t.Fatal(err)
	}
	m := startProcess(t, exec.Command(bin, "dev", "--listen", "127.0.0.1:0", "--realm-file", realmFile),
		regexp.MustCompile(`^\s*issuer:\s+(http://127\.0\.0\.1:\d+/realms/demo)$`))
	return m[1]
}

// startExpressAPI runs interop/node/connect/server.js against the realm and
// returns its base URL. publicKey, when not empty, is the realm public key
// keycloak-connect verifies with instead of fetching the realm's certs.
func startExpressAPI(t *testing.T, dir, issuer, publicKey string) string {
	t.Helper()
	base, _, _ := strings.Cut(issuer, "/realms/")
	cmd := exec.Command("node", filepath.Join("connect", "server.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KEYCLOAK_URL="+base, "KEYCLOAK_REALM="+demoRealm, "KEYCLOAK_CLIENT="+clientID,
		"KEYCLOAK_PUBLIC_KEY="+publicKey, "PORT=0")
	m := startProcess(t, cmd, regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)$`))
	return m[1]
}

// realmPublicKey reads public_key from GET /realms/{realm}.
func realmPublicKey(t *testing.T, issuer string) string {
	t.Helper()
	resp, err := http.Get(issuer)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.PublicKey == "" {
		t.Fatalf("realm info: %v, public key %q", err, info.PublicKey)
	}
	return info.PublicKey
}

// callAPI sends GET with an Authorization header (none when "") and returns
// the status and body.
func callAPI(t *testing.T, u, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestKeycloakConnect: an Express route protected by keycloak-connect in
// bearer-only mode (verify-token-audience on, resource "cloakroom")
// accepts access tokens `cloakroom dev` issues and enforces realm roles;
// it refuses expired tokens, tokens of another realm, tokens meant for
// another client, ID and refresh tokens, tampered, unsigned and garbage
// tokens. keycloak-connect answers every refusal with 403 "Access denied"
// (it never sends 401). Both key sources are covered: the realm's certs
// endpoint (JWKS) and the realm public key in the adapter configuration.
func TestKeycloakConnect(t *testing.T) {
	dir := nodeDir(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("CLOAKROOM_INTEROP_NODE is set but node is not on PATH: %v", err)
	}
	issuer := startCloakroomDev(t)
	ep := oauth2.Endpoint{TokenURL: issuer + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInHeader}

	alice := login(t, ep, clientID, clientSecret, "alice", "alice")
	bob := login(t, ep, clientID, clientSecret, "bob", "bob")
	short := login(t, ep, "short-lived", "short-secret", "alice", "alice")
	publicTok := login(t, ep, publicClient, "", "alice", "alice")

	// Another realm: a second provider (another issuer, other keys); and a
	// token of it that claims to come from cloakroom dev's realm.
	other := startDemo(t)
	otherTok := login(t, other.endpoint(oauth2.AuthStyleInHeader), clientID, clientSecret, "alice", "alice")
	forged := other.realm.MustToken(t, "alice", clientID, keycloaktest.WithIssuer(issuer))

	// bob's token claiming the admin role, with bob's signature.
	escalated := tamper(t, bob.AccessToken, "realm_access", map[string]any{"roles": []string{"admin", "user"}})
	// alice's claims under {"alg":"none","typ":"JWT"}, without signature.
	unsigned := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.Split(alice.AccessToken, ".")[1] + "."

	// The short-lived token must have expired (keycloak-connect compares
	// exp with its clock, without leeway).
	exp, _ := unverifiedClaims(t, short.AccessToken)["exp"].(float64)
	if wait := time.Until(time.Unix(int64(exp)+1, 0)); wait > 0 {
		time.Sleep(wait)
	}

	bearer := func(tok string) string { return "Bearer " + tok }
	cases := []struct {
		name, path, auth string
		want             int
	}{
		{"alice", "/api/hello", bearer(alice.AccessToken), 200},
		{"bob", "/api/hello", bearer(bob.AccessToken), 200},
		{"lower-case scheme", "/api/hello", "bearer " + alice.AccessToken, 200},
		{"admin role: alice", "/api/admin", bearer(alice.AccessToken), 200},
		{"admin role: bob", "/api/admin", bearer(bob.AccessToken), 403},
		{"no token", "/api/hello", "", 403},
		{"garbage", "/api/hello", bearer("garbage"), 403},
		{"garbage JWT", "/api/hello", bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), 403},
		{"expired", "/api/hello", bearer(short.AccessToken), 403},
		{"other realm", "/api/hello", bearer(otherTok.AccessToken), 403},
		{"forged issuer, other realm's key", "/api/hello", bearer(forged), 403},
		{"token for another client", "/api/hello", bearer(publicTok.AccessToken), 403},
		{"ID token", "/api/hello", bearer(idTokenOf(t, alice)), 403},
		{"refresh token", "/api/hello", bearer(alice.RefreshToken), 403},
		{"tampered roles", "/api/admin", bearer(escalated), 403},
		{"alg none", "/api/hello", bearer(unsigned), 403},
	}
	for _, mode := range []struct {
		name      string
		publicKey string
	}{
		{"keys from certs", ""},
		{"realm public key", realmPublicKey(t, issuer)},
	} {
		t.Run(mode.name, func(t *testing.T) {
			api := startExpressAPI(t, dir, issuer, mode.publicKey)
			for _, tc := range cases {
				status, body := callAPI(t, api+tc.path, tc.auth)
				if status != tc.want {
					t.Errorf("%s: %s answered %d %q, want %d", tc.name, tc.path, status, body, tc.want)
				}
				if status == 200 && !strings.Contains(body, `"alice"`) && !strings.Contains(body, `"bob"`) {
					t.Errorf("%s: body %q", tc.name, body)
				}
			}
		})
	}
}
