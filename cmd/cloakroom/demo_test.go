package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// runningDemo is a `cloakroom demo` started by a test.
type runningDemo struct {
	gatewayURL, issuer, secret, store string
	out, errOut                       *syncBuffer
	stop                              func() error
}

var (
	demoOpenLine   = regexp.MustCompile(`open:\s+(http://\S+)/\n`)
	demoIssuerLine = regexp.MustCompile(`issuer:\s+(\S+)`)
	demoSecretLine = regexp.MustCompile(`client secret:\s+(\S+)`)
	demoStoreLine  = regexp.MustCompile(`sessions:\s+(sqlite:\S+)`)
)

// startDemoCommand runs `cloakroom demo` on free ports (plus args) through
// run, as main does, and waits for its banner.
func startDemoCommand(t *testing.T, args ...string) *runningDemo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &runningDemo{out: &syncBuffer{}, errOut: &syncBuffer{}}
	done := make(chan int, 1)
	argv := append([]string{"demo", "--listen", "127.0.0.1:0", "--idp-listen", "127.0.0.1:0"}, args...)
	go func() { done <- run(ctx, argv, strings.NewReader(""), d.out, d.errOut) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.out.String(), "Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("demo exited early with status %d\nstdout: %s\nstderr: %s", code, d.out.String(), d.errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner; stdout: %s\nstderr: %s", d.out.String(), d.errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	banner := d.out.String()
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *string
	}{{demoOpenLine, &d.gatewayURL}, {demoIssuerLine, &d.issuer}, {demoSecretLine, &d.secret}, {demoStoreLine, &d.store}} {
		m := f.re.FindStringSubmatch(banner)
		if m == nil {
			cancel()
			t.Fatalf("banner lacks %s:\n%s", f.re, banner)
		}
		*f.dst = m[1]
	}
	var once sync.Once
	var stopErr error
	d.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					stopErr = fmt.Errorf("demo exited with status %d: %s", code, d.errOut.String())
				}
			case <-time.After(20 * time.Second):
				stopErr = errors.New("the demo did not stop after its context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = d.stop() })
	return d
}

// demoBrowser is a cookie-keeping HTTP client that follows redirects, as a
// browser does.
type demoBrowser struct {
	t      *testing.T
	client *http.Client
}

func newDemoBrowser(t *testing.T) *demoBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &demoBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

type demoResponse struct {
	status int
	body   string
	url    string
}

func (b *demoBrowser) do(method, u string, form url.Values, header ...string) demoResponse {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return demoResponse{status: resp.StatusCode, body: string(data), url: resp.Request.URL.String()}
}

func (b *demoBrowser) get(u string, header ...string) demoResponse {
	b.t.Helper()
	return b.do(http.MethodGet, u, nil, header...)
}

var demoLoginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// submitLogin fills the keycloaktest login form of r.
func (b *demoBrowser) submitLogin(r demoResponse, user string) demoResponse {
	b.t.Helper()
	m := demoLoginForm.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("expected the login form, got %d at %s: %.400s", r.status, r.url, r.body)
	}
	return b.do(http.MethodPost, html.UnescapeString(m[1]), url.Values{"username": {user}, "password": {user}})
}

// cell returns the text of the element with that id.
func cell(body, id string) (string, bool) {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

func passwordToken(t *testing.T, d *runningDemo, user string) string {
	t.Helper()
	resp, err := http.PostForm(d.issuer+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"cloakroom"}, "client_secret": {d.secret},
		"username": {user}, "password": {user},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("password grant with the printed secret: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// TestDemo runs `cloakroom demo` and uses it as the README says: log in
// through the gateway, look at the identity the sample app receives, try the
// admin page and the API, log out, and stop it with Ctrl-C.
func TestDemo(t *testing.T) {
	t.Parallel()
	d := startDemoCommand(t)
	for _, v := range []string{d.gatewayURL, d.issuer} {
		if strings.Contains(v, ":0/") || strings.HasSuffix(v, ":0") || !strings.HasPrefix(v, "http://127.0.0.1:") {
			t.Fatalf("the banner must print real addresses, got %q", v)
		}
	}
	banner := d.out.String()
	for _, want := range []string{
		"alice / alice", "roles: admin, user", "bob / bob", "roles: user",
		"client:        cloakroom", d.issuer + "/protocol/openid-connect/token",
		"client_secret=" + d.secret, `curl -H "Authorization: Bearer $TOKEN" ` + d.gatewayURL + "/api/hello",
		"(removed at exit)",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	alice, bob, anon := newDemoBrowser(t), newDemoBrowser(t), newDemoBrowser(t)
	var aliceSub string
	t.Run("login shows the identity table", func(t *testing.T) {
		first := alice.get(d.gatewayURL + "/")
		if !strings.HasPrefix(first.url, d.issuer+"/protocol/openid-connect/auth") {
			t.Fatalf("not sent to the provider's login page: %s", first.url)
		}
		home := alice.submitLogin(first, "alice")
		if home.status != 200 || home.url != d.gatewayURL+"/" {
			t.Fatalf("after login: %d at %s: %.300s", home.status, home.url, home.body)
		}
		var me struct {
			Sub string `json:"sub"`
		}
		if err := json.Unmarshal([]byte(alice.get(d.gatewayURL+"/_cloakroom/me").body), &me); err != nil || me.Sub == "" {
			t.Fatalf("/_cloakroom/me: %v", err)
		}
		aliceSub = me.Sub
		tests := []struct {
			id   string
			want func(string) bool
		}{
			{"user", func(v string) bool { return v == me.Sub }},
			{"email", func(v string) bool { return v == "alice@example.com" }},
			{"username", func(v string) bool { return v == "alice" }},
			{"roles", func(v string) bool { return strings.Contains(v, "admin") && strings.Contains(v, "user") }},
			{"groups", func(v string) bool { return v == "" }},
		}
		for _, tt := range tests {
			if v, ok := cell(home.body, tt.id); !ok || !tt.want(v) {
				t.Errorf("identity table #%s = %q (present %v)", tt.id, v, ok)
			}
		}
	})
	t.Run("spoofed identity headers do not reach the app", func(t *testing.T) {
		bob.submitLogin(bob.get(d.gatewayURL+"/"), "bob")
		// Bob has no groups, so the gateway sets no X-Forwarded-Groups: a
		// spoofed one would show unless the gateway removes it.
		page := bob.get(d.gatewayURL+"/", "X-Forwarded-User", "mallory", "X-Forwarded-Roles", "admin",
			"X-Forwarded-Groups", "/admins", "X_Forwarded_Preferred_Username", "alice")
		user, _ := cell(page.body, "user")
		name, _ := cell(page.body, "username")
		roles, _ := cell(page.body, "roles")
		groups, _ := cell(page.body, "groups")
		if user == "mallory" || user == "" || user == aliceSub || name != "bob" || strings.Contains(roles, "admin") || groups != "" {
			t.Fatalf("the app saw user %q, username %q, roles %q, groups %q", user, name, roles, groups)
		}
	})
	t.Run("admin page needs realm role admin", func(t *testing.T) {
		tests := []struct {
			who    *demoBrowser
			status int
			want   string
		}{
			{bob, http.StatusForbidden, "Access denied"},
			{alice, http.StatusOK, "Welcome to the admin area, alice."},
		}
		for _, tt := range tests {
			if r := tt.who.get(d.gatewayURL + "/admin"); r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Errorf("/admin: %d %.200s, want %d with %q", r.status, r.body, tt.status, tt.want)
			}
		}
	})
	t.Run("API with a bearer token or the session", func(t *testing.T) {
		tests := []struct {
			name   string
			who    *demoBrowser
			header []string
			status int
			want   []string
		}{
			{"bearer", anon, []string{"Authorization", "Bearer " + passwordToken(t, d, "bob")}, 200, []string{`"message":"Hello, bob!"`, `"via":"bearer"`}},
			{"session", alice, []string{"Accept", "application/json"}, 200, []string{`"message":"Hello, alice!"`, `"via":"session"`, `"sub":"` + aliceSub + `"`}},
			{"anonymous", anon, []string{"Accept", "application/json"}, 401, []string{"not_authenticated"}},
			{"bad token", anon, []string{"Authorization", "Bearer not.a.token"}, 401, []string{"token_not_valid"}},
		}
		for _, tt := range tests {
			r := tt.who.get(d.gatewayURL+"/api/hello", tt.header...)
			if r.status != tt.status {
				t.Errorf("%s: status %d, want %d: %s", tt.name, r.status, tt.status, r.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("%s: body lacks %s: %s", tt.name, w, r.body)
				}
			}
		}
		page := alice.get(d.gatewayURL + "/call-api")
		if !strings.Contains(page.body, `id="call-api"`) || !strings.Contains(page.body, d.issuer+"/protocol/openid-connect/token") {
			t.Errorf("/call-api page: %.300s", page.body)
		}
		if js := alice.get(d.gatewayURL + "/assets/call-api.js"); js.status != 200 || !strings.Contains(js.body, `fetch("/api/hello"`) {
			t.Errorf("call-api.js: %d", js.status)
		}
	})
	t.Run("the printed curl commands work", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed")
		}
		i := strings.Index(banner, "TOKEN=$(")
		j := strings.Index(banner, "\nPress Ctrl-C")
		if i < 0 || j < i {
			t.Fatalf("no commands in the banner:\n%s", banner)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "sh", "-c", banner[i:j]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"message":"Hello, alice!"`) {
			t.Fatalf("running the printed commands: %v\n%s", err, out)
		}
	})
	t.Run("logout ends the provider session too", func(t *testing.T) {
		confirm := alice.get(d.gatewayURL + "/_cloakroom/logout")
		m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(confirm.body)
		if m == nil {
			t.Fatalf("no logout confirmation form: %.300s", confirm.body)
		}
		after := alice.do(http.MethodPost, d.gatewayURL+"/_cloakroom/logout", url.Values{"csrf_token": {html.UnescapeString(m[1])}}, "Origin", d.gatewayURL)
		// Back from the provider's end-session endpoint, the gateway says so
		// and offers to sign in again; that asks for the password again:
		// the provider's session ended too.
		again := regexp.MustCompile(`<a[^>]*id="login"[^>]*href="([^"]+)"|<a[^>]*href="([^"]+)"[^>]*id="login"`).FindStringSubmatch(after.body)
		if after.status != http.StatusOK || !strings.Contains(after.body, "You have been signed out.") || again == nil {
			t.Fatalf("after logout: %d at %s: %.500s", after.status, after.url, after.body)
		}
		href := html.UnescapeString(again[1] + again[2])
		if !strings.HasPrefix(href, "http") {
			href = d.gatewayURL + href
		}
		if next := alice.get(href); !demoLoginForm.MatchString(next.body) {
			t.Fatalf("signing in again after logout does not ask for the password: %d at %s", next.status, next.url)
		}
		if r := alice.get(d.gatewayURL+"/api/hello", "Accept", "application/json"); r.status != 401 {
			t.Fatalf("the session still works after logout: %d", r.status)
		}
	})

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.out.String(), "cloakroom demo: stopped") {
		t.Errorf("no stop message: %s", d.out.String())
	}
	dbFile := strings.TrimPrefix(d.store, "sqlite:")
	if _, err := os.Stat(filepath.Dir(dbFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary session directory is left behind: %v", err)
	}
	for _, u := range []string{d.gatewayURL, d.issuer} {
		if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(strings.SplitN(u, "/realms", 2)[0], "http://"), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after stop", u)
		}
	}
}

// TestDemoSessionFile: --session-file keeps the gateway's sessions in the
// named SQLite file, which stays (closed) after the demo stops.
func TestDemoSessionFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "sessions.db")
	d := startDemoCommand(t, "--session-file", file)
	if d.store != "sqlite:"+file || strings.Contains(d.out.String(), "removed at exit") {
		t.Fatalf("banner store %q:\n%s", d.store, d.out.String())
	}
	b := newDemoBrowser(t)
	if r := b.submitLogin(b.get(d.gatewayURL+"/"), "bob"); r.status != 200 {
		t.Fatalf("login: %d", r.status)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("session file after stop: %v", err)
	}
}

// TestDemoErrors: bad usage exits 2; a busy port or an unusable session file
// exits 1 with a message naming the flag, and releases what was started.
func TestDemoErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"gateway port in use", []string{"--listen", busy.Addr().String(), "--idp-listen", "127.0.0.1:0"}, 1,
			[]string{"cloakroom demo: --listen " + busy.Addr().String() + ": the address is already in use"}},
		{"provider port in use", []string{"--listen", "127.0.0.1:0", "--idp-listen", busy.Addr().String()}, 1,
			[]string{"--idp-listen " + busy.Addr().String() + ": the address is already in use"}},
		{"session file in a file", []string{"--listen", "127.0.0.1:0", "--idp-listen", "127.0.0.1:0", "--session-file", filepath.Join(notDir, "s.db")}, 1,
			[]string{"--session-file " + filepath.Join(notDir, "s.db")}},
		{"bad address", []string{"--listen", "nowhere"}, 1, []string{"--listen nowhere"}},
		{"unknown flag", []string{"--port", "8000"}, 2, []string{"flag provided but not defined: -port", "Usage: cloakroom demo"}},
		{"extra argument", []string{"now"}, 2, []string{`unexpected argument "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errOut syncBuffer
			code := run(ctx, append([]string{"demo"}, tt.args...), strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr: %s", code, tt.code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q: %s", w, errOut.String())
				}
			}
			if strings.Contains(out.String(), "Press Ctrl-C") {
				t.Errorf("banner printed although the demo failed: %s", out.String())
			}
		})
	}

	// A failed start releases the ports it had already taken.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwAddr := ln.Addr().String()
	ln.Close()
	var errOut syncBuffer
	if code := run(context.Background(), []string{"demo", "--listen", gwAddr, "--idp-listen", busy.Addr().String()}, strings.NewReader(""), io.Discard, &errOut); code != 1 {
		t.Fatalf("exit status %d: %s", code, errOut.String())
	}
	again, err := net.Listen("tcp", gwAddr)
	if err != nil {
		t.Fatalf("the gateway port stays taken after a failed start: %v", err)
	}
	again.Close()
}

// TestDemoBackchannelLogout: the demo registers the gateway's back-channel
// logout URL with the provider, so ending the user's session there (an
// admin's "sign out") logs the browser out of the gateway at once.
func TestDemoBackchannelLogout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := startDemo(ctx, demoOptions{listen: "127.0.0.1:0", idpListen: "127.0.0.1:0"}, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	}()
	b := newDemoBrowser(t)
	if r := b.submitLogin(b.get(d.gatewayURL+"/"), "alice"); r.status != 200 {
		t.Fatalf("login: %d", r.status)
	}
	kc := d.idp.Realm("demo")
	sids := kc.SessionIDs("alice")
	if len(sids) != 1 {
		t.Fatalf("provider sessions of alice: %v", sids)
	}
	kc.EndSession(sids[0])
	var delivered bool
	for _, del := range kc.LogoutDeliveries() {
		if del.URL == d.gatewayURL+"/_cloakroom/backchannel-logout" && del.SessionID == sids[0] {
			if del.Err != nil {
				t.Fatalf("back-channel logout: %v", del.Err)
			}
			delivered = true
		}
	}
	if !delivered {
		t.Fatalf("no back-channel logout to the gateway: %+v", kc.LogoutDeliveries())
	}
	if r := b.get(d.gatewayURL + "/"); !demoLoginForm.MatchString(r.body) {
		t.Fatalf("still logged in after the back-channel logout: %d at %s", r.status, r.url)
	}
}
