package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of runDev
// and reads of the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

var issuerLine = regexp.MustCompile(`issuer:\s+(\S+)`)

// startDev runs runDev in the background and waits for its banner.
func startDev(t *testing.T, args ...string) (issuer string, out *syncBuffer, stop func() error) {
	t.Helper()
	issuer, out, _, stop = startDevLogs(t, args...)
	return issuer, out, stop
}

// startDevLogs is startDev that also returns what runDev logs.
func startDevLogs(t *testing.T, args ...string) (issuer string, out, errOut *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	errOut = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), out, errOut) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := issuerLine.FindStringSubmatch(out.String()); m != nil {
			issuer = m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("runDev returned early: %v\nstderr: %s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner; stdout: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = errors.New("runDev did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return issuer, out, errOut, stop
}

func TestDevServesDemoRealm(t *testing.T) {
	t.Parallel()
	issuer, out, stop := startDev(t, "--client-secret", "dev-secret")
	if !strings.HasPrefix(issuer, "http://127.0.0.1:") || strings.HasSuffix(issuer, ":0/realms/demo") || !strings.HasSuffix(issuer, "/realms/demo") {
		t.Fatalf("issuer %q", issuer)
	}
	banner := out.String()
	for _, want := range []string{issuer + "/.well-known/openid-configuration", "alice / alice", "bob / bob", "cloakroom  secret: dev-secret", "cloakroom-public"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc["issuer"] != issuer {
		t.Fatalf("discovery: %v %v", err, doc["issuer"])
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"},
		"client_id": {"cloakroom"}, "client_secret": {"dev-secret"}}
	resp, err = http.PostForm(issuer+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("password grant: %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("runDev: %v", err)
	}
	if _, err := http.Get(issuer); err == nil {
		t.Error("server still answers after ctx was cancelled")
	}
}

func TestDevRandomSecretIsPrinted(t *testing.T) {
	t.Parallel()
	issuer, out, _ := startDev(t)
	m := regexp.MustCompile(`cloakroom  secret: (\S+)`).FindStringSubmatch(out.String())
	if m == nil || len(m[1]) < 32 {
		t.Fatalf("no random secret in banner:\n%s", out.String())
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"cloakroom"}, "client_secret": {m[1]}}
	resp, err := http.PostForm(issuer+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("client_credentials with the printed secret: %d", resp.StatusCode)
	}
}

func TestDevExportAndServeRealmFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "realm.json")
	var out, errOut bytes.Buffer
	if err := runDev(context.Background(), []string{"--export-realm", file, "--client-secret", "exported"}, &out, &errOut); err != nil {
		t.Fatalf("export: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), file) {
		t.Errorf("stdout %q", out.String())
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v: it holds secrets", st.Mode().Perm())
	}
	cfg, err := keycloaktest.LoadRealmFile(file)
	if err != nil || cfg.Name != "demo" || cfg.Clients[0].Secret != "exported" {
		t.Fatalf("exported realm: %v %+v", err, cfg)
	}
	issuer, banner, _ := startDev(t, "--realm-file", file)
	if !strings.Contains(banner.String(), "alice") || !strings.Contains(banner.String(), "cloakroom  secret: exported") {
		t.Errorf("banner for a realm file:\n%s", banner.String())
	}
	form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}, "client_id": {"cloakroom-public"}}
	resp, err := http.PostForm(issuer+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login against the realm file: %d", resp.StatusCode)
	}
}

func TestDevErrors(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"realm":"r","users":[{"username":"a","credentials":[{"type":"webauthn"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"unknown flag", []string{"--nope"}, nil, "exit status 2"},
		{"help", []string{"-h"}, flag.ErrHelp, ""},
		{"extra argument", []string{"serve"}, errDevUsage, "unexpected argument"},
		{"bad realm file", []string{"--realm-file", bad}, keycloaktest.ErrInvalidRealmFile, "users[0].credentials[0].type"},
		{"missing realm file", []string{"--realm-file", filepath.Join(t.TempDir(), "none.json")}, os.ErrNotExist, ""},
		{"bad listen address", []string{"--listen", "256.0.0.1:99999"}, nil, "listen"},
		{"unwritable export", []string{"--export-realm", filepath.Join(t.TempDir(), "no", "such", "dir.json")}, os.ErrNotExist, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := runDev(ctx, tc.args, io.Discard, io.Discard)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("runDev(%v) = %v, want %v containing %q", tc.args, err, tc.want, tc.msg)
			}
		})
	}
}

// TestDevWarnsDisabledRealm: a realm file without "enabled" is loaded
// disabled, as Keycloak imports it, and dev says so instead of leaving the
// developer with "Realm not enabled" at the first login.
func TestDevWarnsDisabledRealm(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "realm.json")
	if err := os.WriteFile(file, []byte(`{"realm":"quiet","clients":[{"clientId":"c","publicClient":true}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := runDev(context.Background(), []string{"--realm-file", file, "--export-realm", filepath.Join(dir, "out.json")}, &out, &errOut); err != nil {
		t.Fatalf("%v (%s)", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "realm is disabled") || !strings.Contains(errOut.String(), "realm=quiet") {
		t.Errorf("no warning: %s", errOut.String())
	}
}

// TestDevServesKeycloakExports: realms written by `kc.sh export` of
// Keycloak 24.0.5 and 26.7.3 (users with pbkdf2-sha512 and argon2 hashes,
// every built-in scope, flow and component) load into cloakroom dev, log
// in with the passwords Keycloak hashed, and issue the claims of the
// client's mappers. The conformance suite compares the same files with
// real Keycloak observation by observation.
func TestDevServesKeycloakExports(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"keycloak-24.0.5.json", "keycloak-26.7.3.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			issuer, _, _ := startDev(t, "--realm-file", filepath.Join("..", "..", "interop", "conformance", "testdata", "exports", file))
			form := url.Values{"grant_type": {"password"}, "username": {"erin"}, "password": {"erin-pw"},
				"client_id": {"exp-public"}, "scope": {"openid"}}
			resp, err := http.PostForm(issuer+"/protocol/openid-connect/token", form)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				AccessToken string `json:"access_token"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil {
				t.Fatalf("login: %d %v", resp.StatusCode, err)
			}
			parts := strings.Split(body.AccessToken, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Sub         string `json:"sub"`
				RealmAccess struct {
					Roles []string `json:"roles"`
				} `json:"realm_access"`
			}
			if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub == "" ||
				!slices.Contains(claims.RealmAccess.Roles, "writer") || !slices.Contains(claims.RealmAccess.Roles, "reader") {
				t.Errorf("claims %s (%v)", payload, err)
			}
		})
	}
}

// devLoginForm matches the login form's action on a keycloaktest page.
var devLoginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// TestDevCodeFlowFromAnyLoopbackPort: with no flag, the demo realm's
// clients log a browser in through a redirect URI on a loopback host and
// a port picked at random, as cloakroom serve (4180) and examples/webapp
// (8000) need, and as Keycloak does for a redirect URI registered without
// a port.
func TestDevCodeFlowFromAnyLoopbackPort(t *testing.T) {
	t.Parallel()
	issuer, _, logs, _ := startDevLogs(t, "--client-secret", "loop-secret")
	tests := []struct {
		name, listen, host, client string
	}{
		{"confidential on 127.0.0.1", "127.0.0.1:0", "127.0.0.1", keycloaktest.DemoClientID},
		{"confidential on localhost", "127.0.0.1:0", "localhost", keycloaktest.DemoClientID},
		{"public on [::1]", "[::1]:0", "[::1]", keycloaktest.DemoPublicClientID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Skipf("no %s here: %v", tc.listen, err)
			}
			callbacks := make(chan url.Values, 1)
			app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case callbacks <- r.URL.Query():
				default:
				}
				io.WriteString(w, "back in the app")
			}), ReadHeaderTimeout: 5 * time.Second}
			go app.Serve(ln)
			t.Cleanup(func() { app.Close() })
			redirect := fmt.Sprintf("http://%s:%d/auth/callback", tc.host, ln.Addr().(*net.TCPAddr).Port)

			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			q := url.Values{"client_id": {tc.client}, "redirect_uri": {redirect}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"st"}}
			resp, err := browser.Get(issuer + "/protocol/openid-connect/auth?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := devLoginForm.FindSubmatch(page)
			if resp.StatusCode != http.StatusOK || m == nil {
				t.Fatalf("auth with redirect_uri %s: %d\n%s", redirect, resp.StatusCode, page)
			}
			resp, err = browser.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {"alice"}, "password": {"alice"}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "back in the app" {
				t.Fatalf("login did not come back to %s: %d %s", redirect, resp.StatusCode, body)
			}
			cb := <-callbacks
			if cb.Get("code") == "" || cb.Get("state") != "st" || cb.Get("iss") != issuer {
				t.Fatalf("callback %v", cb)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {redirect}, "client_id": {tc.client}}
			if tc.client == keycloaktest.DemoClientID {
				form.Set("client_secret", "loop-secret")
			}
			resp, err = http.PostForm(issuer+"/protocol/openid-connect/token", form)
			if err != nil {
				t.Fatal(err)
			}
			var tok struct {
				AccessToken string `json:"access_token"`
				IDToken     string `json:"id_token"`
			}
			err = json.NewDecoder(resp.Body).Decode(&tok)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil || tok.AccessToken == "" || tok.IDToken == "" {
				t.Fatalf("code exchange: %d %v %+v", resp.StatusCode, err, tok)
			}
		})
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "refused") {
			t.Errorf("dev refused a loopback redirect URI:\n%s", logs.String())
		}
	})
}

// TestDevRefusedRedirectURI: a refused redirect URI is logged once per
// request at WARN, with its client and the flag that fixes it; the page
// says so once; --redirect-uri then lets it in.
func TestDevRefusedRedirectURI(t *testing.T) {
	t.Parallel()
	const redirect = "http://app.test:9000/cb"
	authorize := func(t *testing.T, issuer, client string) (int, string) {
		t.Helper()
		q := url.Values{"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"}}
		resp, err := http.Get(issuer + "/protocol/openid-connect/auth?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		issuer, _, logs, _ := startDevLogs(t)
		for i, client := range []string{keycloaktest.DemoClientID, keycloaktest.DemoPublicClientID} {
			status, page := authorize(t, issuer, client)
			if status != http.StatusBadRequest || strings.Count(page, "Invalid parameter: redirect_uri") != 1 {
				t.Errorf("%s: %d, page:\n%s", client, status, page)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != i+1 {
				t.Fatalf("want %d log lines, got:\n%s", i+1, logs.String())
			}
			line := lines[i]
			for _, want := range []string{"level=WARN", `msg="redirect_uri refused: it is not one of the client's valid redirect URIs"`,
				"client=" + client, "redirect_uri=" + redirect, `fix="restart cloakroom dev with --redirect-uri ` + redirect,
				"--redirect-uri http://app.test:9000/* for any path there"} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %s:\n%s", want, line)
				}
			}
			if strings.Contains(line, "keycloaktest") {
				t.Errorf("log line names the package: %s", line)
			}
		}
	})
	t.Run("allowed with --redirect-uri", func(t *testing.T) {
		t.Parallel()
		issuer, banner, logs, _ := startDevLogs(t, "--redirect-uri", "http://app.test:9000/*", "--redirect-uri", "http://other.test/cb")
		for _, client := range []string{keycloaktest.DemoClientID, keycloaktest.DemoPublicClientID} {
			if status, page := authorize(t, issuer, client); status != http.StatusOK {
				t.Errorf("%s: %d\n%s", client, status, page)
			}
		}
		if n := strings.Count(banner.String(), "http://app.test:9000/*  http://other.test/cb"); n != 2 {
			t.Errorf("banner lists the added URIs %d times, want 2:\n%s", n, banner.String())
		}
		if strings.Contains(logs.String(), "refused") {
			t.Errorf("log:\n%s", logs.String())
		}
	})
}

// TestDevClientFlags: --client-secret and --redirect-uri with a realm
// file go to the client they name or to the only one that fits.
func TestDevClientFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, doc string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	one := write("one.json", `{"realm":"one","enabled":true,"clients":[
		{"clientId":"app","secret":"old","redirectUris":["http://app.test/*"]},
		{"clientId":"spa","publicClient":true},
		{"clientId":"cli","publicClient":true,"standardFlowEnabled":false,"directAccessGrantsEnabled":true}]}`)
	two := write("two.json", `{"realm":"two","enabled":true,"clients":[{"clientId":"a","secret":"sa"},{"clientId":"b","secret":"sb"}]}`)
	public := write("public.json", `{"realm":"pub","enabled":true,"clients":[{"clientId":"spa","publicClient":true}]}`)
	masked := write("masked.json", `{"realm":"masked","enabled":true,"clients":[{"clientId":"app","secret":"**********"}]}`)
	kcExport := filepath.Join("..", "..", "interop", "conformance", "testdata", "exports", "keycloak-26.7.3.json")

	errorCases := []struct {
		name string
		args []string
		msg  string
	}{
		{"several confidential clients", []string{"--realm-file", two, "--client-secret", "x"},
			"cloakroom dev: --client-secret: the realm file has several confidential clients (a, b); name one with --client-id"},
		{"no confidential client", []string{"--realm-file", public, "--client-secret", "x"},
			"cloakroom dev: --client-secret: the realm file has no confidential client to give it to"},
		{"public client named", []string{"--realm-file", one, "--client-id", "spa", "--client-secret", "x"},
			`cloakroom dev: --client-secret: client "spa" is public: it has no secret`},
		{"demo public client named", []string{"--client-id", keycloaktest.DemoPublicClientID, "--client-secret", "x"},
			`cloakroom dev: --client-secret: client "cloakroom-public" is public: it has no secret`},
		{"unknown client", []string{"--realm-file", one, "--client-id", "ghost", "--redirect-uri", "http://x.test/"},
			`cloakroom dev: --client-id "ghost": the realm has no such client (its clients: app, spa, cli)`},
		{"relative redirect", []string{"--redirect-uri", "/callback"},
			`cloakroom dev: --redirect-uri "/callback": want an absolute URI without a fragment, e.g. http://127.0.0.1:3000/callback or http://app.test:3000/*`},
		{"redirect with fragment", []string{"--redirect-uri", "http://x.test/#a"}, `--redirect-uri "http://x.test/#a": want an absolute URI`},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := runDev(context.Background(), tc.args, io.Discard, io.Discard)
			if !errors.Is(err, errDevUsage) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("runDev(%q) = %v\nwant %s", tc.args, err, tc.msg)
			}
		})
	}
	t.Run("no browser client", func(t *testing.T) {
		t.Parallel()
		nostd := write("nostd2.json", `{"realm":"n","clients":[{"clientId":"s","standardFlowEnabled":false,"secret":"x"}]}`)
		err := runDev(context.Background(), []string{"--realm-file", nostd, "--redirect-uri", "http://x.test/"}, io.Discard, io.Discard)
		if !errors.Is(err, errDevUsage) || !strings.Contains(err.Error(), "no client of the realm has the standard flow (browser login) enabled") {
			t.Errorf("err = %v", err)
		}
	})

	// secretWorks reports whether the token endpoint takes the client's
	// secret: client authentication comes before the missing code.
	secretWorks := func(t *testing.T, issuer, client, secret string) bool {
		t.Helper()
		resp, err := http.PostForm(issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"authorization_code"},
			"client_id": {client}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "Missing parameter: code") {
			return true
		}
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Invalid client credentials") {
			t.Fatalf("token endpoint: %d %s", resp.StatusCode, body)
		}
		return false
	}
	runs := []struct {
		name       string
		args       []string
		banner     []string
		secrets    map[string]string // client -> secret that must work
		notSecrets map[string]string // client -> secret that must not
	}{
		{"only confidential client", []string{"--realm-file", one, "--client-secret", "new"},
			[]string{"app  secret: new", "spa  (public)", "cli  (public)\n      no browser login (standard flow off)"},
			map[string]string{"app": "new"}, map[string]string{"app": "old"}},
		{"named client", []string{"--realm-file", two, "--client-id", "b", "--client-secret", "new-b"},
			[]string{"a  secret: sa", "b  secret: new-b", "redirect URIs: none (add one with --redirect-uri)"},
			map[string]string{"a": "sa", "b": "new-b"}, map[string]string{"b": "sb"}},
		{"Keycloak's export, built-in clients not counted", []string{"--realm-file", kcExport, "--client-secret", "new-exp"},
			[]string{"exp-app  secret: new-exp", "exp-public  (public)"},
			map[string]string{"exp-app": "new-exp"}, map[string]string{"exp-app": "exp-app-secret"}},
		{"masked secret", []string{"--realm-file", masked},
			[]string{"app  secret: ********** (masked by Keycloak's export; set one with --client-secret)"}, nil, nil},
		{"redirect URIs to browser clients", []string{"--realm-file", one, "--redirect-uri", "http://127.0.0.1:3000/cb"},
			[]string{"app  secret: old\n      redirect URIs: http://app.test/*  http://127.0.0.1:3000/cb\n", "spa  (public)\n      redirect URIs: http://127.0.0.1:3000/cb\n",
				"cli  (public)\n      no browser login"}, nil, nil},
		{"redirect URI to the named client", []string{"--realm-file", one, "--client-id", "spa", "--redirect-uri", "http://127.0.0.1:3000/cb"},
			[]string{"app  secret: old\n      redirect URIs: http://app.test/*\n", "spa  (public)\n      redirect URIs: http://127.0.0.1:3000/cb\n"}, nil, nil},
		{"demo secret by name", []string{"--client-id", keycloaktest.DemoClientID, "--client-secret", "named"},
			[]string{"cloakroom  secret: named"}, map[string]string{keycloaktest.DemoClientID: "named"}, nil},
	}
	for _, tc := range runs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			issuer, out, _ := startDev(t, tc.args...)
			for _, want := range tc.banner {
				if !strings.Contains(out.String(), want) {
					t.Errorf("banner lacks %q:\n%s", want, out.String())
				}
			}
			for client, secret := range tc.secrets {
				if !secretWorks(t, issuer, client, secret) {
					t.Errorf("client %s refuses secret %q", client, secret)
				}
			}
			for client, secret := range tc.notSecrets {
				if secretWorks(t, issuer, client, secret) {
					t.Errorf("client %s still takes secret %q", client, secret)
				}
			}
		})
	}
}

// TestDevMessages: what the developer reads on stderr, through run as main
// calls it: one "cloakroom dev:" prefix, no package names, realm file
// problems with the file and the place in it.
func TestDevMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, doc string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	empty := write("empty.json", "")
	broken := write("broken.json", "{\"realm\": \"x\",\n  \"enabled\": yes\n}")
	wrongType := write("type.json", "{\"realm\": \"x\",\n  \"clients\": [{\"clientId\": \"a\", \"redirectUris\": \"http://a.test/*\"}]\n}")
	groups := write("groups.json", `{"realm":"x","users":[{"username":"a","groups":["/nope"]}]}`)
	missing := filepath.Join(dir, "missing.json")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"empty realm file", []string{"--realm-file", empty}, 1, "cloakroom dev: realm file " + empty + " is empty\n"},
		{"invalid JSON", []string{"--realm-file", broken}, 1, "cloakroom dev: realm file " + broken + ":2:14: invalid JSON: unexpected character 'y' where a value should be (a comma too many, or a missing value?)\n"},
		{"wrong type", []string{"--realm-file", wrongType}, 1, "cloakroom dev: realm file " + wrongType + ":2:49: clients[0].redirectUris: expected an array of strings, got a string\n"},
		{"realm-wide problem", []string{"--realm-file", groups}, 1, "cloakroom dev: realm file " + groups + `: user "a": no group with path "/nope"` + "\n"},
		{"missing realm file", []string{"--realm-file", missing}, 1, "cloakroom dev: read realm file " + missing + ": no such file or directory\n"},
		{"extra argument", []string{"serve"}, 2, "cloakroom dev: unexpected argument \"serve\" (cloakroom dev takes flags only; see cloakroom dev -h)\n"},
		{"bad port", []string{"--listen", "127.0.0.1:99999"}, 1, "cloakroom dev: --listen 127.0.0.1:99999: address 99999: invalid port\n"},
		{"unwritable export", []string{"--export-realm", filepath.Join(dir, "no", "x.json")}, 1, "cloakroom dev: --export-realm " + filepath.Join(dir, "no", "x.json") + ": no such file or directory\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"dev"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || stderr.String() != tc.stderr {
				t.Errorf("status %d, stderr:\n%s\nwant %d:\n%s", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		t.Parallel()
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"dev", "--nope"}, strings.NewReader(""), io.Discard, &stderr)
		if code != 2 || strings.Count(stderr.String(), "flag provided but not defined: -nope") != 1 || !strings.Contains(stderr.String(), "-redirect-uri URI") {
			t.Errorf("status %d, stderr:\n%s", code, stderr.String())
		}
	})
}

// TestDevLoginNote: the demo realm's login page, in cloakroom dev and
// cloakroom demo, names the demo users; a realm file's never does, even
// the demo realm's own export.
func TestDevLoginNote(t *testing.T) {
	t.Parallel()
	const note = "Demo users: alice / alice (roles admin, user) and bob / bob (role user)."
	loginPage := func(t *testing.T, issuer string) string {
		t.Helper()
		q := url.Values{"client_id": {keycloaktest.DemoPublicClientID}, "redirect_uri": {"http://127.0.0.1:8000/"}, "response_type": {"code"}, "scope": {"openid"}}
		resp, err := http.Get(issuer + "/protocol/openid-connect/auth?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !devLoginForm.Match(body) {
			t.Fatalf("no login page: %d\n%s", resp.StatusCode, body)
		}
		return string(body)
	}
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		issuer, _, _ := startDev(t)
		if page := loginPage(t, issuer); !strings.Contains(page, note) {
			t.Errorf("login page lacks the note:\n%s", page)
		}
	})
	t.Run("dev with the demo realm's export", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "demo.json")
		if err := runDev(context.Background(), []string{"--export-realm", file}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		issuer, _, _ := startDev(t, "--realm-file", file)
		if page := loginPage(t, issuer); strings.Contains(page, "alice") {
			t.Errorf("a realm file's login page names users:\n%s", page)
		}
	})
	t.Run("demo", func(t *testing.T) {
		t.Parallel()
		d := startDemoCommand(t)
		r := newDemoBrowser(t).do(http.MethodGet, d.gatewayURL+"/admin", nil)
		if !strings.Contains(r.body, `id="kc-form-login"`) || !strings.Contains(r.body, note) {
			t.Errorf("demo login page (%s) lacks the note:\n%s", r.url, r.body)
		}
	})
}
