package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

func TestValidateExchangeAudience(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" when valid
	}{
		{"valid", func(c *Config) { c.Routes[0].ExchangeAudience = "orders-api" }, ""},
		{"space", func(c *Config) { c.Routes[0].ExchangeAudience = "orders api" }, "is not a Keycloak client id"},
		{"newline", func(c *Config) { c.Routes[0].ExchangeAudience = "orders\n" }, "is not a Keycloak client id"},
		{"forward auth only", func(c *Config) {
			c.ForwardAuth, c.PublicURL = true, "https://auth.example.com"
			c.Routes[0].Upstream, c.Routes[0].ExchangeAudience = "", "orders-api"
		}, "needs an upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "routes[0].exchange_audience") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want routes[0].exchange_audience: %s", err, tt.want)
			}
		})
	}
}

// exchangeGateway is a gateway whose client ("cloakroom", the demo
// realm's) has standard token exchange on and an audience mapper for
// orders-api; upstream records the requests that reach it.
type exchangeGateway struct {
	g        *Gateway
	idp      *keycloaktest.Server
	logs     *syncBuffer
	mu       sync.Mutex
	upstream []*http.Request
}

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

func newExchangeGateway(t *testing.T) *exchangeGateway {
	t.Helper()
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	for i := range cfg.Clients {
		if cfg.Clients[i].ClientID == keycloaktest.DemoClientID {
			cfg.Clients[i].Attributes = map[string]string{keycloaktest.ClientAttrStandardTokenExchange: "true"}
			cfg.Clients[i].Audiences = append(cfg.Clients[i].Audiences, "orders-api")
		}
	}
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "orders-api", Secret: "o"}, keycloaktest.ClientConfig{ClientID: "other-api", Secret: "x"})
	e := &exchangeGateway{idp: keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg)), logs: &syncBuffer{}}
	g, err := New(context.Background(), Config{
		Issuer: e.idp.Issuer("demo"), ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret,
		ForwardAccessToken: true,
		Session:            SessionConfig{Store: "sqlite:" + filepath.Join(t.TempDir(), "s.db")},
		Routes:             []Route{{Name: "orders", Path: "/", Upstream: "http://127.0.0.1:1", Mode: "api", ExchangeAudience: "orders-api"}},
	}, WithLogger(slog.New(slog.NewTextHandler(e.logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	e.g = g
	return e
}

// handler is the API chain of a route with audience, ending in a recorder
// of what the proxy would send: the request after rewrite.
func (e *exchangeGateway) handler(audience string) http.Handler {
	rc := &Route{Name: "orders", Path: "/", Upstream: "http://127.0.0.1:1", Mode: "api", ExchangeAudience: audience}
	rt := &route{cfg: rc, target: mustParseURL("http://127.0.0.1:1")}
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		pr := &httputil.ProxyRequest{In: r, Out: out}
		e.g.rewrite(rt, pr)
		e.mu.Lock()
		e.upstream = append(e.upstream, pr.Out)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return e.g.bearer.Authenticate(e.g.withExchange(rc, proxy))
}

func (e *exchangeGateway) sent() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.upstream...)
}

func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExchangeRoute(t *testing.T) {
	t.Parallel()
	e := newExchangeGateway(t)
	user := e.idp.Realm("demo").MustToken(t, "alice", keycloaktest.DemoClientID)
	call := func(h http.Handler, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "http://gw.example/orders", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("upstream gets a token for its audience only", func(t *testing.T) {
		rec := call(e.handler("orders-api"), user)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		out := e.sent()[len(e.sent())-1]
		bearer := strings.TrimPrefix(out.Header.Get("Authorization"), "Bearer ")
		if bearer == user || out.Header.Get(DefaultHeaders.AccessToken) != bearer {
			t.Fatal("the upstream got the caller's own token")
		}
		c := claimsOf(t, bearer)
		if c["aud"] != "orders-api" || c["azp"] != keycloaktest.DemoClientID || c["sub"] != claimsOf(t, user)["sub"] {
			t.Errorf("exchanged token: aud %v azp %v", c["aud"], c["azp"])
		}
	})
	t.Run("audience not available: 502, logged, nothing forwarded", func(t *testing.T) {
		n := len(e.sent())
		rec := call(e.handler("other-api"), user)
		if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "token_exchange_refused") || strings.Contains(rec.Body.String(), "Audience mapper") {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if len(e.sent()) != n {
			t.Fatal("the request reached the upstream")
		}
		if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "Audience mapper") || strings.Contains(logs, user) {
			t.Errorf("log: %s", logs)
		}
	})
	t.Run("Keycloak refuses the caller's token: 401", func(t *testing.T) {
		for _, sid := range e.idp.Realm("demo").SessionIDs("bob") {
			e.idp.Realm("demo").EndSession(sid)
		}
		bob := e.idp.Realm("demo").MustToken(t, "bob", keycloaktest.DemoClientID)
		for _, sid := range e.idp.Realm("demo").SessionIDs("bob") {
			e.idp.Realm("demo").EndSession(sid)
		}
		rec := call(e.handler("orders-api"), bob)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d %v: %s", rec.Code, rec.Header(), rec.Body)
		}
	})
	t.Run("anonymous on a public route: nothing to send", func(t *testing.T) {
		rec := call(e.handler("orders-api"), "")
		// The bearer chain here has no RequireAuthenticated: the request
		// passes without a token, and none is sent on.
		out := e.sent()[len(e.sent())-1]
		if rec.Code != http.StatusNoContent || out.Header.Get("Authorization") != "" || out.Header.Get(DefaultHeaders.AccessToken) != "" {
			t.Fatalf("status %d, headers %v", rec.Code, out.Header)
		}
	})
}

func TestExchangeRouteKeycloakDown(t *testing.T) {
	t.Parallel()
	e := newExchangeGateway(t)
	user := e.idp.Realm("demo").MustToken(t, "alice", keycloaktest.DemoClientID)
	h := e.handler("orders-api")
	req := httptest.NewRequest(http.MethodGet, "http://gw.example/orders", nil)
	req.Header.Set("Authorization", "Bearer "+user)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req) // discovery and keys are fetched
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	n := len(e.sent())
	e.idp.Close()
	// Another token of alice: no cached exchange.
	other := e.idp.Realm("demo").MustToken(t, "alice", keycloaktest.DemoClientID)
	req = httptest.NewRequest(http.MethodGet, "http://gw.example/orders", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || len(e.sent()) != n {
		t.Fatalf("status %d, Retry-After %q, forwarded %d: %s", rec.Code, rec.Header().Get("Retry-After"), len(e.sent())-n, rec.Body)
	}
}

func TestUpstreamAccessToken(t *testing.T) {
	t.Parallel()
	plain := &route{cfg: &Route{}}
	exch := &route{cfg: &Route{ExchangeAudience: "orders-api"}}
	bare := httptest.NewRequest(http.MethodGet, "/", nil)
	with := bare.WithContext(context.WithValue(bare.Context(), exchangedKey{}, "exchanged"))
	for _, tc := range []struct {
		name string
		rt   *route
		in   *http.Request
		want string
	}{
		{"no exchange", plain, bare, "user"},
		{"exchanged", exch, with, "exchanged"},
		{"exchange route without exchanged token: nothing, never the user's", exch, bare, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := upstreamAccessToken(tc.rt, tc.in, "user"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func mustParseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Through the whole gateway (canonicalization, bearer chain, proxy,
// rewrite) to a real upstream: the upstream sees only the exchanged token.
func TestExchangeRouteThroughGateway(t *testing.T) {
	t.Parallel()
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	for i := range cfg.Clients {
		if cfg.Clients[i].ClientID == keycloaktest.DemoClientID {
			cfg.Clients[i].Attributes = map[string]string{keycloaktest.ClientAttrStandardTokenExchange: "true"}
			cfg.Clients[i].Audiences = append(cfg.Clients[i].Audiences, "orders-api")
		}
	}
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "orders-api", Secret: "o"})
	idp := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg))
	got := make(chan http.Header, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(up.Close)
	g, err := New(context.Background(), Config{
		Issuer: idp.Issuer("demo"), ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret,
		ForwardAccessToken: true, PublicURL: "http://gw.example",
		Session: SessionConfig{Store: "sqlite:" + filepath.Join(t.TempDir(), "s.db")},
		Routes:  []Route{{Name: "orders", Path: "/orders", Upstream: up.URL, Mode: "api", ExchangeAudience: "orders-api"}},
	}, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	user := idp.Realm("demo").MustToken(t, "alice", keycloaktest.DemoClientID)
	req := httptest.NewRequest(http.MethodGet, "http://gw.example/orders/1", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Authorization", "Bearer "+user)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	h := <-got
	sent := strings.TrimPrefix(h.Get("Authorization"), "Bearer ")
	if sent == user || h.Get(DefaultHeaders.AccessToken) != sent || strings.Contains(fmt.Sprint(h), user) {
		t.Fatal("the upstream got the caller's own token")
	}
	if c := claimsOf(t, sent); c["aud"] != "orders-api" || c["azp"] != keycloaktest.DemoClientID {
		t.Errorf("exchanged token: aud %v azp %v", c["aud"], c["azp"])
	}
	if h.Get(DefaultHeaders.User) == "" {
		t.Error("no identity header")
	}
}
