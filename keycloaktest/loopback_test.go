package keycloaktest

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// loopbackRegistered are the valid redirect URIs of the clients c0..c12 of
// the loopback matrix, in that order.
var loopbackRegistered = []string{
	"http://127.0.0.1/*", "http://127.0.0.1:8000/*", "http://localhost/*", "http://localhost:8000/*",
	"http://[::1]/*", "http://[::1]:8000/*", "http://127.0.0.1/cb", "http://localhost/cb",
	"http://127.0.0.1:8000/cb", "http://127.0.0.1", "https://127.0.0.1/*", "http://127.0.0.2/*",
	"http://localhost.localdomain/*",
}

// loopbackMatrix is what Keycloak 26.7.3 answered at the authorization
// endpoint for each redirect_uri (rows) and client c0..c12 (columns, one
// character each: "+" login page, "-" "Invalid parameter: redirect_uri"),
// observed with a realm of those clients imported through the admin API.
// An http URI on localhost, 127.0.0.1 or [::1] that matches nothing is
// matched again without its port; https, other hosts and other spellings
// are matched as written.
var loopbackMatrix = []struct{ request, want string }{
	{"http://127.0.0.1:4180/oauth2/callback", "+------------"},
	{"http://127.0.0.1/cb", "+-----+------"},
	{"http://127.0.0.1:8000/cb", "++----+-+----"},
	{"http://127.0.0.1:4180/cb", "+-----+------"},
	{"http://localhost:4180/cb", "--+----+-----"},
	{"http://localhost/cb", "--+----+-----"},
	{"http://[::1]:4180/cb", "----+--------"},
	{"http://[::1]/cb", "----+--------"},
	{"http://127.0.0.1:4180", "+--------+---"},
	{"http://127.0.0.1:80/cb", "+-----+------"},
	{"https://127.0.0.1:4180/cb", "-------------"},
	{"http://127.0.0.2:4180/cb", "-------------"},
	{"http://LOCALHOST:4180/cb", "-------------"},
	{"http://127.0.0.1:4180/cb?x=1", "+------------"},
	{"http://127.0.0.1:99999/cb", "+-----+------"},
	{"http://127.0.0.1:abc/cb", "-------------"},
	{"http://localhost:4180", "--+----------"},
	{"http://127.0.0.1:4180?x=1", "+------------"},
	{"http://127.0.0.1:/cb", "+-----+------"},
}

func loopbackServer(t *testing.T, logger *slog.Logger) *Server {
	t.Helper()
	cfg := RealmConfig{Name: "lb"}
	for i, ru := range loopbackRegistered {
		cfg.Clients = append(cfg.Clients, ClientConfig{ClientID: fmt.Sprintf("c%d", i), Public: true, StandardFlow: true, RedirectURIs: []string{ru}})
	}
	opts := []Option{WithRealm(cfg)}
	if logger != nil {
		opts = append(opts, WithLogger(logger))
	}
	return NewServer(t, opts...)
}

// TestLoopbackRedirectURIsAsKeycloak replays the observations of Keycloak
// 26.7.3 (RFC 8252 section 7.3: any port for a loopback redirect URI).
func TestLoopbackRedirectURIsAsKeycloak(t *testing.T) {
	t.Parallel()
	s := loopbackServer(t, nil)
	for _, row := range loopbackMatrix {
		t.Run(row.request, func(t *testing.T) {
			t.Parallel()
			var got strings.Builder
			for i := range loopbackRegistered {
				q := url.Values{"client_id": {fmt.Sprintf("c%d", i)}, "redirect_uri": {row.request}, "response_type": {"code"}, "scope": {"openid"}}
				resp := get(t, authURL(s, "lb", q))
				switch {
				case resp.status == http.StatusOK && hasForm(resp.body, "kc-form-login"):
					got.WriteByte('+')
				case resp.status == http.StatusBadRequest && bytes.Contains(resp.body, []byte("Invalid parameter: redirect_uri")):
					got.WriteByte('-')
				default:
					got.WriteByte('?')
				}
			}
			if got.String() != row.want {
				t.Errorf("redirect_uri %s against c0..c12 = %s, Keycloak 26.7.3: %s", row.request, got.String(), row.want)
			}
		})
	}
}

// TestLoopbackPostLogoutRedirect: the post-logout redirect URI is matched
// the same way (Keycloak 26.7.3: 302 for the host registered without a
// port, "Invalid redirect uri" for the others).
func TestLoopbackPostLogoutRedirect(t *testing.T) {
	t.Parallel()
	s := loopbackServer(t, nil)
	tests := []struct {
		client, redirect string
		ok               bool
	}{
		{"c0", "http://127.0.0.1:4180/bye", true},
		{"c0", "http://localhost:4180/bye", false},
		{"c0", "http://[::1]:4180/bye", false},
		{"c1", "http://127.0.0.1:4180/bye", false},
		{"c2", "http://localhost:4180/bye", true},
		{"c2", "http://127.0.0.1:4180/bye", false},
		{"c4", "http://[::1]:4180/bye", true},
		{"c4", "http://localhost:4180/bye", false},
	}
	for _, tc := range tests {
		t.Run(tc.client+" "+tc.redirect, func(t *testing.T) {
			t.Parallel()
			q := url.Values{"client_id": {tc.client}, "post_logout_redirect_uri": {tc.redirect}}
			resp := newBrowser(t).get(s.Issuer("lb") + "/protocol/openid-connect/logout?" + q.Encode())
			if tc.ok && (resp.status != http.StatusFound || resp.header.Get("Location") != tc.redirect) {
				t.Errorf("got %d to %q, want 302 to %s", resp.status, resp.header.Get("Location"), tc.redirect)
			}
			if !tc.ok && (resp.status != http.StatusBadRequest || !bytes.Contains(resp.body, []byte(msgInvalidRedirectURI))) {
				t.Errorf("got %d, want 400 %q", resp.status, msgInvalidRedirectURI)
			}
		})
	}
}

// TestDemoRealmAcceptsLoopbackOnAnyPort: the demo clients take a redirect
// URI on any loopback host and port (cloakroom serve's 4180, an ephemeral
// one) and a whole code flow runs through it, and still refuse others.
func TestDemoRealmAcceptsLoopbackOnAnyPort(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	tests := []struct {
		client, redirect string
		ok               bool
	}{
		{DemoClientID, "http://127.0.0.1:4180/_cloakroom/callback", true},
		{DemoClientID, "http://localhost:4180/_cloakroom/callback", true},
		{DemoPublicClientID, "http://[::1]:53177/cb", true},
		{DemoPublicClientID, "http://127.0.0.1:8000/auth/callback", true},
		{DemoClientID, "http://127.0.0.1:1/", true},
		{DemoClientID, "https://127.0.0.1:4180/cb", false},
		{DemoClientID, "http://app.test:4180/cb", false},
		{DemoClientID, "http://127.0.0.1.nip.io:4180/cb", false},
		{DemoClientID, "http://user@127.0.0.1:4180/cb", false},
	}
	for _, tc := range tests {
		t.Run(tc.client+" "+tc.redirect, func(t *testing.T) {
			t.Parallel()
			params := authParams("client_id", tc.client, "redirect_uri", tc.redirect)
			b := newBrowser(t)
			if !tc.ok {
				resp := b.get(authURL(s, "demo", params))
				if resp.status != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", resp.status)
				}
				return
			}
			to := b.login(s, "demo", params, "alice", "alice")
			if got := to.Scheme + "://" + to.Host + to.Path; got != strings.Split(tc.redirect, "?")[0] {
				t.Fatalf("sent to %s, want %s", to, tc.redirect)
			}
			code := codeOf(t, s, "demo", to)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {tc.redirect}, "client_id": {tc.client}}
			basic := ""
			if tc.client == DemoClientID {
				basic = DemoClientID + ":" + DemoClientSecret
			}
			if resp := postForm(t, tokenURL(s, "demo"), form, basic); resp.status != http.StatusOK {
				t.Fatalf("code exchange: %d %s", resp.status, resp.body)
			}
		})
	}
}

// syncLog is a log destination safe for the server's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRefusedRedirectIsLogged: each refused redirect_uri gives one WARN
// line naming the client and the URI, worded by the reason; an accepted
// one gives none.
func TestRefusedRedirectIsLogged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, client, redirect, msg string
	}{
		{"not registered", DemoClientID, "http://app.test:9000/cb", logRedirectNotRegistered},
		{"public client", DemoPublicClientID, "https://127.0.0.1:4180/cb", logRedirectNotRegistered},
		{"missing", DemoClientID, "", logRedirectMissing},
		{"response parameter", DemoClientID, "http://127.0.0.1:4180/cb?code=x", logRedirectMalformed},
		{"accepted", DemoClientID, "http://127.0.0.1:4180/cb", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &syncLog{}
			s := NewServer(t, WithDemoRealm(), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
			resp := get(t, authURL(s, "demo", authParams("client_id", tc.client, "redirect_uri", tc.redirect)))
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if tc.msg == "" {
				if resp.status != http.StatusOK || strings.Contains(logs.String(), "redirect_uri refused") {
					t.Fatalf("status %d, log:\n%s", resp.status, logs)
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("want one log line, got:\n%s", logs)
			}
			for _, want := range []string{"level=WARN", fmt.Sprintf("msg=%q", tc.msg), "client=" + tc.client, "realm=demo", "valid_redirect_uris="} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("log line lacks %s:\n%s", want, lines[0])
				}
			}
			if tc.redirect != "" && !strings.Contains(lines[0], "redirect_uri="+tc.redirect) && !strings.Contains(lines[0], fmt.Sprintf("redirect_uri=%q", tc.redirect)) {
				t.Errorf("log line lacks the redirect URI:\n%s", lines[0])
			}
		})
	}
}

// TestErrorPageShowsMessageOnce: Keycloak's error page shows its message
// once (error.ftl has displayMessage=false), not also as an alert.
func TestErrorPageShowsMessageOnce(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	for _, tc := range []struct{ name, msg string }{
		{"redirect_uri", "Invalid parameter: redirect_uri"},
		{"client_id", msgClientNotFound},
	} {
		params := authParams("redirect_uri", "http://app.test/cb")
		if tc.name == "client_id" {
			params = authParams("client_id", "ghost")
		}
		resp := get(t, authURL(s, "demo", params))
		if n := strings.Count(string(resp.body), tc.msg); resp.status != http.StatusBadRequest || n != 1 {
			t.Errorf("%s: status %d, message %d times:\n%s", tc.name, resp.status, n, resp.body)
		}
	}
	// The login page keeps its alert.
	b := newBrowser(t)
	page := b.get(authURL(s, "demo", authParams()))
	resp := b.post(formAction(t, page.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"nope"}})
	if !bytes.Contains(resp.body, []byte(`<span class="kc-feedback-text">`+msgInvalidUser)) {
		t.Errorf("login page lost its alert:\n%s", resp.body)
	}
}

// TestLoginNote: the demo realm's login page names its users; a realm
// without a note (a realm file, even the demo realm's own export) shows
// none.
func TestLoginNote(t *testing.T) {
	t.Parallel()
	demo := DemoRealm(DemoClientSecret)
	exported, err := NewServer(t, WithRealm(demo)).Realm("demo").Export()
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := ParseRealm(exported)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.Name = "fromfile"
	tests := []struct {
		name  string
		realm RealmConfig
		want  bool
	}{
		{"demo realm", demo, true},
		{"demo realm exported and read back", fromFile, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, WithRealm(tc.realm))
			page := get(t, authURL(s, tc.realm.Name, authParams()))
			has := bytes.Contains(page.body, []byte(`id="cloakroom-login-note"`))
			if page.status != http.StatusOK || has != tc.want {
				t.Fatalf("status %d, note shown %v, want %v:\n%s", page.status, has, tc.want, page.body)
			}
			if tc.want {
				for _, user := range []string{"alice / alice", "admin", "bob / bob", "user"} {
					if !bytes.Contains(page.body, []byte(user)) {
						t.Errorf("note lacks %q", user)
					}
				}
			}
		})
	}
}
