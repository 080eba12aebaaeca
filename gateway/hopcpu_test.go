package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// BenchmarkHopCPU is the CPU the gateway spends on one request, against
// the floor (a bare httputil.ReverseProxy hop with a pooled copy buffer)
// given the same request, with no network and no kernel: each proxy's
// transport dials an in-memory upstream that parses the request as a Go
// server would (http.ReadRequest: what the forwarded headers cost the
// application) and answers 95 bytes of JSON; floor-identity is the floor
// also forwarding the headers the gateway adds for a logged-in user. Run
// with -cpu 1, one request at a time, ns/op is close to CPU per request;
// the load scripts in bench/ measure the same hop over real connections,
// where this machine's noise is far larger than the differences being
// measured.
//
//	go test ./gateway -run '^$' -bench HopCPU -cpu 1 -count 6
func BenchmarkHopCPU(b *testing.B) {
	e := newEnv(b)
	newGateway := func(accessLog bool) *gw {
		g := e.start(func(c *gateway.Config) {
			c.Routes = []gateway.Route{
				{Name: "api", Path: "/api", Upstream: e.upstream.URL, Mode: "api"},
				{Name: "app", Path: "/", Upstream: e.upstream.URL},
			}
			if !accessLog {
				off := false
				c.Log.AccessLog = &off
			}
			// The logger the gateway builds itself, as `cloakroom serve`
			// has (the harness's is a test logger): its access-log lines
			// take the fast path (accesslog.go).
		}, gateway.WithLogger(nil), gateway.WithLogOutput(io.Discard))
		return g
	}
	plain, logged := newGateway(false), newGateway(true)
	// Before any request: connections the transport pooled to the real
	// upstream would be reused.
	for _, g := range []*gw{plain, logged} {
		gateway.SetUpstreamDialer(g.g, dialMemUpstream)
	}
	cookie, loggedCookie := benchLogin(b, plain), benchLogin(b, logged)
	token := e.kc.MustToken(b, "alice", "gateway")
	// keycloaktest refills its pool of RSA keys in the background
	// (keys.go): let it finish, or it shares the CPU with the first cases.
	time.Sleep(5 * time.Second)
	up, _ := url.Parse(e.upstream.URL)
	floor := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport:  &http.Transport{DialContext: dialMemUpstream, MaxIdleConns: 1024, MaxIdleConnsPerHost: 256},
		BufferPool: benchPool{},
	}
	// The floor again, also sending what the gateway adds for a
	// logged-in user (as bench/loadgen's hop -identity): what forwarding
	// an identity costs the proxy and the upstream, whoever computes it.
	floorIdentity := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			h := pr.Out.Header
			h.Del("Cookie")
			h.Set("X-Real-Ip", strings.Join(h.Values("X-Forwarded-For"), ", "))
			h.Set("X-Forwarded-User", "8391d845-7513-4fb6-9b8f-9788b52d3a49")
			h.Set("X-Forwarded-Email", "alice@example.com")
			h.Set("X-Forwarded-Preferred-Username", "alice")
			h.Set("X-Forwarded-Roles", "user")
		},
		Transport:  floor.Transport,
		BufferPool: benchPool{},
	}
	u, _ := url.Parse(plain.url)
	cases := []struct {
		name   string
		h      http.Handler
		path   string
		header [2]string
	}{
		{"floor/cookie", floor, "/x", [2]string{"Cookie", cookie}},
		{"floor/bearer", floor, "/api/x", [2]string{"Authorization", "Bearer " + token}},
		{"floor-identity/cookie", floorIdentity, "/x", [2]string{"Cookie", cookie}},
		{"floor-identity/bearer", floorIdentity, "/api/x", [2]string{"Authorization", "Bearer " + token}},
		{"gateway/session", plain.g, "/x", [2]string{"Cookie", cookie}},
		{"gateway/session+accesslog", logged.g, "/x", [2]string{"Cookie", loggedCookie}},
		{"gateway/bearer", plain.g, "/api/x", [2]string{"Authorization", "Bearer " + token}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "http://"+u.Host+tc.path, nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("User-Agent", "Go-http-client/1.1")
				r.Header.Set("Accept-Encoding", "gzip")
				r.Header.Set(tc.header[0], tc.header[1])
				w := httptest.NewRecorder()
				tc.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %.200s", tc.name, w.Code, w.Body)
				}
			}
		})
	}
}

// benchLogin logs alice in through g and returns her session cookie.
func benchLogin(b *testing.B, g *gw) string {
	br := newBrowser(b)
	if r := br.login(g, "/", "alice"); r.status != http.StatusOK {
		b.Fatalf("login: %d at %s", r.status, r.url)
	}
	c := br.sessionCookie(g)
	if c == nil {
		b.Fatal("no session cookie after the login")
	}
	return c.Name + "=" + c.Value
}

type benchPool struct{}

var benchBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (benchPool) Get() []byte  { return *benchBuffers.Get().(*[]byte) }
func (benchPool) Put(b []byte) { benchBuffers.Put(&b) }

// memUpstream is one connection to an in-memory upstream: what the
// transport writes is parsed as requests, and each is answered.
type memUpstream struct {
	mu     sync.Mutex
	ready  sync.Cond
	in     bytes.Buffer // written by the transport, not yet a whole request
	out    bytes.Buffer // answers not yet read
	rd     bytes.Reader
	br     *bufio.Reader
	closed bool
}

const memAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Length: 95\r\n\r\n" +
	`{"ok":true,"upstream":"in memory","note":"ninety-five bytes of JSON, as loadgen upstream"}     `

func dialMemUpstream(context.Context, string, string) (net.Conn, error) {
	c := &memUpstream{br: bufio.NewReader(nil)}
	c.ready.L = &c.mu
	return c, nil
}

func (c *memUpstream) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.in.Write(p)
	for {
		i := bytes.Index(c.in.Bytes(), []byte("\r\n\r\n"))
		if i < 0 {
			return len(p), nil
		}
		c.rd.Reset(c.in.Bytes()[:i+4])
		c.br.Reset(&c.rd)
		if _, err := http.ReadRequest(c.br); err != nil {
			return 0, err
		}
		c.in.Next(i + 4)
		c.out.WriteString(memAnswer)
		c.ready.Broadcast()
	}
}

func (c *memUpstream) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.out.Len() == 0 && !c.closed {
		c.ready.Wait()
	}
	if c.out.Len() == 0 {
		return 0, io.EOF
	}
	return c.out.Read(p)
}

func (c *memUpstream) Close() error {
	c.mu.Lock()
	c.closed = true
	c.ready.Broadcast()
	c.mu.Unlock()
	return nil
}

func (c *memUpstream) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}
}
func (c *memUpstream) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}
}
func (c *memUpstream) SetDeadline(time.Time) error      { return nil }
func (c *memUpstream) SetReadDeadline(time.Time) error  { return nil }
func (c *memUpstream) SetWriteDeadline(time.Time) error { return nil }
