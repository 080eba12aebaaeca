package bench

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// BenchmarkGatewayRequest is the gateway's own cost per request with a
// session cookie, a bearer token, or no check (public route), measured in
// process (ServeHTTP) against a real upstream on loopback, next to the
// upstream alone. The load script (gateway-load.sh) measures the same over
// real connections.
func BenchmarkGatewayRequest(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	idp := keycloaktest.NewServer(b, keycloaktest.WithDemoRealm())
	kc := idp.Realm("demo")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	public := "http://" + ln.Addr().String()
	if err := kc.AddClient(keycloaktest.ClientConfig{ClientID: "gateway", Secret: "s", StandardFlow: true, DirectAccessGrants: true,
		RedirectURIs: []string{public + "/*"}, Audiences: []string{"gateway"}}); err != nil {
		b.Fatal(err)
	}
	noAccessLog := false
	cfg := gateway.Config{
		Listen: ln.Addr().String(), PublicURL: public, Issuer: kc.Issuer(), ClientID: "gateway", ClientSecret: "s",
		Session: gateway.SessionConfig{Store: "sqlite:" + b.TempDir() + "/s.db", EncryptionKeys: []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
		Log:     gateway.LogConfig{Level: "warn", AccessLog: &noAccessLog},
		Routes: []gateway.Route{
			{Name: "public", Path: "/public", Upstream: up.URL, Public: true},
			{Name: "api", Path: "/api", Upstream: up.URL, Mode: "api"},
			{Name: "app", Path: "/", Upstream: up.URL},
		},
	}
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	// The same gateway with its default logger (info, JSON lines, access
	// log on; here to io.Discard): what the log line costs.
	logged := cfg
	logged.Log.AccessLog = nil
	logged.Log.Level = "info"
	// Same SQLite file (and keys): the cookie below is valid on both.
	gl, err := gateway.New(context.Background(), logged, gateway.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer gl.Close()
	// The floor: one bare ReverseProxy hop with a pooled transport and
	// copy buffer.
	upURL, _ := url.Parse(up.URL)
	bare := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(upURL); pr.SetXForwarded() },
		Transport:  &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256},
		BufferPool: benchBuffers{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Serve(ctx, ln)

	// Log in once through the real flow to get a session cookie.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(public + "/")
	if err != nil {
		b.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := kcLoginForm.FindSubmatch(page)
	if m == nil {
		b.Fatalf("no login form: %.200s", page)
	}
	resp, err = c.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {"alice"}, "password": {"alice"}})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	u, _ := url.Parse(public)
	var cookie string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "cloakroom" {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	token := kc.MustToken(b, "alice", "gateway")
	loggedCookie := cookie

	cases := []struct {
		name    string
		handler http.Handler
		path    string
		header  [2]string
	}{
		{"upstream-alone", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := http.Get(up.URL + r.URL.Path)
			if err == nil {
				io.Copy(w, resp.Body)
				resp.Body.Close()
			}
		}), "/x", [2]string{}},
		{"bare-hop", bare, "/x", [2]string{}},
		{"gateway-public", g, "/public/x", [2]string{}},
		{"gateway-session", g, "/x", [2]string{"Cookie", cookie}},
		{"gateway-bearer", g, "/api/x", [2]string{"Authorization", "Bearer " + token}},
		{"gateway-session-accesslog", gl, "/x", [2]string{"Cookie", loggedCookie}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("GET", public+tc.path, nil)
					r.RemoteAddr = "127.0.0.1:40000"
					if tc.header[0] != "" {
						r.Header.Set(tc.header[0], tc.header[1])
					}
					w := httptest.NewRecorder()
					tc.handler.ServeHTTP(w, r)
					if w.Code != 200 || !strings.Contains(w.Body.String(), "ok") {
						b.Errorf("%s: %d %.100s", tc.name, w.Code, w.Body.String())
						return
					}
				}
			})
		})
	}
}

// benchBuffers pools 32 KiB copy buffers for the bare hop.
type benchBuffers struct{}

var benchBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (benchBuffers) Get() []byte  { return *benchBufferPool.Get().(*[]byte) }
func (benchBuffers) Put(b []byte) { benchBufferPool.Put(&b) }
