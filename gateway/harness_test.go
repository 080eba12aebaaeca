package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// echoed is what the test upstream saw.
type echoed struct {
	Method  string              `json:"method"`
	URI     string              `json:"uri"` // the request target as received
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

// newUpstream starts an application that echoes each request as JSON, and
// serves /events (SSE) and /ws (a raw upgraded echo connection).
func newUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	// /events sends one event and then holds the stream open until the
	// client goes (or 30 s pass): a proxy that buffered the response would
	// deliver nothing while the stream is open.
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprintf(w, "data: event 0\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(30 * time.Second):
		}
		fmt.Fprintf(w, "data: event 1\n\n")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "echo-protocol") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo-protocol\r\nX-Seen-User: %s\r\n\r\n", r.Header.Get("X-Forwarded-User"))
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		rw.WriteString("echo: " + line)
		rw.Flush()
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "received %d bytes", n)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type env struct {
	t        testing.TB
	idp      *keycloaktest.Server
	kc       *keycloaktest.Realm
	upstream *httptest.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the demo realm adjusted by edit.
func newEnvWith(t testing.TB, edit func(*keycloaktest.RealmConfig)) *env {
	t.Helper()
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	if edit != nil {
		edit(&cfg)
	}
	idp := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg))
	kc := idp.Realm("demo")
	return &env{t: t, idp: idp, kc: kc, upstream: newUpstream(t)}
}

// gw is one running gateway instance.
type gw struct {
	g   *gateway.Gateway
	url string
	log *syncBuf
	// stop shuts the instance down (as its cleanup does; once).
	stop func()
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a gateway for the environment; edit adjusts its config and
// opts are passed to gateway.New after the test's logger. The Keycloak
// client "gateway" is registered on the first call.
func (e *env) start(edit func(*gateway.Config), opts ...gateway.Option) *gw {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	if e.kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "gateway", Secret: "gateway-secret", StandardFlow: true,
		RedirectURIs: []string{"http://127.0.0.1:*"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1:*"},
		BackchannelLogoutURL: url + "/_cloakroom/backchannel-logout", BackchannelLogoutSessionRequired: true,
		Audiences: []string{"gateway"}, Roles: []string{"auditor"},
	}) == nil {
		e.t.Logf("registered client gateway with back-channel URL %s", url)
	}
	cfg := gateway.Config{
		Listen: ln.Addr().String(), PublicURL: url,
		Issuer: e.kc.Issuer(), ClientID: "gateway", ClientSecret: "gateway-secret",
		Session: gateway.SessionConfig{Store: "memory:", EncryptionKeys: []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
		Routes:  []gateway.Route{{Name: "app", Path: "/", Upstream: e.upstream.URL}},
	}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Session.LogoutJournal == "" && (strings.HasPrefix(cfg.Session.Store, "redis") || strings.HasPrefix(cfg.Session.Store, "postgres")) {
		// Shared stores journal logouts; keep the file out of the package.
		cfg.Session.LogoutJournal = filepath.Join(e.t.TempDir(), "logouts.journal")
	}
	logs := &syncBuf{}
	opts = append([]gateway.Option{gateway.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	g, err := gateway.New(context.Background(), cfg, opts...)
	if err != nil {
		ln.Close()
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			g.Close()
		})
	}
	e.t.Cleanup(stop)
	return &gw{g: g, url: url, log: logs, stop: stop}
}

// browser follows redirects by hand and keeps cookies.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

type resp struct {
	status int
	body   string
	header http.Header
	url    string
}

func (b *browser) do(req *http.Request) resp {
	b.t.Helper()
	r, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return resp{status: r.StatusCode, body: string(body), header: r.Header, url: r.Request.URL.String()}
}

func (b *browser) get(u string, header ...string) resp {
	b.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return b.do(req)
}

var loginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// login opens path through the gateway and logs in at keycloaktest.
func (b *browser) login(g *gw, path, user string) resp {
	b.t.Helper()
	r := b.get(g.url + path)
	m := loginForm.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("expected the login form, got %d at %s: %.300s", r.status, r.url, r.body)
	}
	req, _ := http.NewRequest("POST", html.UnescapeString(m[1]), strings.NewReader(url.Values{"username": {user}, "password": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// sessionCookie returns the gateway's session cookie the browser holds
// for g, or nil.
func (b *browser) sessionCookie(g *gw) *http.Cookie {
	u, _ := url.Parse(g.url)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "cloakroom" {
			return c
		}
	}
	return nil
}

func echo(t *testing.T, r resp) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("not the upstream's echo (%d at %s): %.300s", r.status, r.url, r.body)
	}
	return e
}

func header(e echoed, name string) string {
	v := e.Headers[http.CanonicalHeaderKey(name)]
	return strings.Join(v, ",")
}

// rawUpgrade opens a connection through the gateway with an Upgrade
// request and returns the response head and the echoed line.
func rawUpgrade(t *testing.T, gwURL string, cookie *http.Cookie) (string, string) {
	t.Helper()
	u, _ := url.Parse(gwURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo-protocol\r\n", u.Host)
	if cookie != nil {
		fmt.Fprintf(conn, "Cookie: %s=%s\r\n", cookie.Name, cookie.Value)
	}
	fmt.Fprint(conn, "X-Forwarded-User: spoofed\r\n\r\n")
	rd := bufio.NewReader(conn)
	var head strings.Builder
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the upgrade response: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	if !strings.Contains(head.String(), " 101 ") {
		return head.String(), ""
	}
	fmt.Fprint(conn, "hello\n")
	line, _ := rd.ReadString('\n')
	return head.String(), line
}
