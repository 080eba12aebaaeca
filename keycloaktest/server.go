package keycloaktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DemoClientSecret is the secret of the "cloakroom" client of the realm
// added by WithDemoRealm.
const DemoClientSecret = "cloakroom-demo-secret"

// Server is a Keycloak-compatible OpenID Provider serving any number of
// realms. Create it with New (then Start, or mount Handler) or NewServer.
type Server struct {
	basePath  string
	clock     func() time.Time
	logger    *slog.Logger
	publicURL string
	handler   http.Handler

	mu     sync.RWMutex
	realms map[string]*Realm
	order  []string // realm names in creation order
	base   string   // scheme://host:port tokens are issued under; "" until known

	fault     atomic.Pointer[Fault]
	faultHits atomic.Int64 // matching requests since SetFault, for Fault.Times

	lmu     sync.Mutex // guards the listener state below
	addr    string
	httpSrv *http.Server
	started bool
	closed  bool
	refused bool
	serving sync.WaitGroup

	sweepStop chan struct{} // closed to stop the session sweeper
	sweeping  sync.WaitGroup
}

// sweepInterval is how often a running server ends expired sessions (and
// delivers their back-channel logouts).
const sweepInterval = 30 * time.Second

// startSweeperLocked runs ExpireSessions on every realm periodically.
func (s *Server) startSweeperLocked() {
	s.sweepStop = make(chan struct{})
	s.sweeping.Add(1)
	go func(stop <-chan struct{}) {
		defer s.sweeping.Done()
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				for _, r := range s.Realms() {
					r.ExpireSessions()
				}
			}
		}
	}(s.sweepStop)
}

// stopSweeperLocked stops the sweeper and waits for it.
func (s *Server) stopSweeperLocked() {
	if s.sweepStop != nil {
		close(s.sweepStop)
		s.sweepStop = nil
	}
	s.sweeping.Wait()
}

// Fault makes the server misbehave, for testing how clients cope with an
// unreachable, failing or slow Keycloak. Set it with Server.SetFault.
type Fault struct {
	// Refuse closes the listener and every open connection, so connections
	// are refused until the fault is cleared, when the server listens on the
	// same address again. With Paths set, matching requests instead get
	// their connection closed without a response.
	Refuse bool
	// Status answers every affected request with this HTTP status and a
	// Keycloak-like JSON error body.
	Status int
	// Delay sleeps before answering; a request whose context ends first
	// gets no answer.
	Delay time.Duration
	// Paths limits the fault to requests whose path contains one of these
	// substrings (e.g. "/certs"). Empty means every request.
	Paths []string
	// Times limits the fault to the first Times matching requests after
	// SetFault; later requests are served normally ("fail twice, then
	// succeed"). Zero means no limit. It does not apply to a Refuse fault
	// without Paths, which closes the listener.
	Times int
}

func (f *Fault) matches(path string) bool {
	if len(f.Paths) == 0 {
		return true
	}
	return slices.ContainsFunc(f.Paths, func(p string) bool { return strings.Contains(path, p) })
}

// Option configures a Server created by New or NewServer.
type Option func(*Server) error

// WithRealm adds a realm.
func WithRealm(cfg RealmConfig) Option {
	return func(s *Server) error {
		_, err := s.AddRealm(cfg)
		return err
	}
}

// WithRealmFile adds the realm of a Keycloak realm-export JSON file.
func WithRealmFile(path string) Option {
	return func(s *Server) error {
		cfg, err := LoadRealmFile(path)
		if err != nil {
			return err
		}
		_, err = s.AddRealm(cfg)
		return err
	}
}

// WithDemoRealm adds DemoRealm(DemoClientSecret).
func WithDemoRealm() Option { return WithRealm(DemoRealm(DemoClientSecret)) }

// WithBasePath serves everything under a path prefix, like Keycloak's
// legacy "/auth" (or --http-relative-path).
func WithBasePath(p string) Option {
	return func(s *Server) error {
		p = strings.TrimRight(p, "/")
		if p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") || strings.ContainsFunc(p, isControl)) {
			return fmt.Errorf("%w: base path %q must start with / and hold no query or fragment", ErrInvalidConfig, p)
		}
		s.basePath = p
		return nil
	}
}

// WithClock replaces time.Now for issuing and checking tokens and sessions.
func WithClock(now func() time.Time) Option {
	return func(s *Server) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidConfig)
		}
		s.clock = now
		return nil
	}
}

// WithLogger logs requests (method, path, status; never tokens or secrets)
// at debug level and problems at error level. The default discards logs.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) error {
		if l != nil {
			s.logger = l
		}
		return nil
	}
}

// WithPublicURL fixes the scheme://host[:port] tokens are issued under (the
// base path is appended), like Keycloak's hostname option. Without it the
// issuer comes from Start's address, or from each request when the Handler
// is mounted elsewhere.
func WithPublicURL(u string) Option {
	return func(s *Server) error {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" {
			return fmt.Errorf("%w: public URL %q must be http(s)://host[:port]", ErrInvalidConfig, u)
		}
		s.publicURL = pu.Scheme + "://" + pu.Host
		return nil
	}
}

// New returns a configured server that is not listening yet.
func New(opts ...Option) (*Server, error) {
	s := &Server{
		clock:  time.Now,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		realms: map[string]*Realm{},
	}
	s.handler = s.middleware(http.HandlerFunc(s.route))
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	s.base = s.publicURL
	return s, nil
}

// NewServer starts a server on 127.0.0.1:0 for a test and closes it when the
// test ends. It calls t.Fatal if the server cannot start.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("keycloaktest: close: %v", err)
		}
	})
	return s
}

// Start listens on addr (":0" and "127.0.0.1:0" pick a free port) and serves
// in the background until Close.
func (s *Server) Start(addr string) error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.started || s.closed {
		return fmt.Errorf("%w: Start on a server that was already started", ErrServerState)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("keycloaktest: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.started = true
	s.startSweeperLocked()
	s.mu.Lock()
	if s.base == "" {
		s.base = "http://" + urlHost(s.addr)
	}
	s.mu.Unlock()
	if f := s.fault.Load(); f != nil && f.Refuse && len(f.Paths) == 0 {
		s.refused = true
		return ln.Close()
	}
	s.serveLocked(ln)
	return nil
}

// urlHost turns a listen address into a host for URLs: an unspecified IP
// (":8080", "0.0.0.0:8080") becomes localhost.
func urlHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func (s *Server) serveLocked(ln net.Listener) {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	s.httpSrv = hs
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("keycloaktest: serve", "error", err)
		}
	}()
}

// stopLocked closes the listener and every connection, and waits for the
// serving goroutine to end.
func (s *Server) stopLocked() error {
	if s.httpSrv == nil {
		return nil
	}
	err := s.httpSrv.Close()
	s.serving.Wait()
	s.httpSrv = nil
	return err
}

// Addr returns the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.addr
}

// Close stops the server. It is safe to call more than once.
func (s *Server) Close() error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopSweeperLocked()
	if err := s.stopLocked(); err != nil {
		return fmt.Errorf("keycloaktest: close: %w", err)
	}
	return nil
}

// Shutdown stops the server gracefully: it stops accepting connections and
// waits for requests in flight until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopSweeperLocked()
	if s.httpSrv == nil {
		return nil
	}
	err := s.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = s.httpSrv.Close()
	}
	s.serving.Wait()
	s.httpSrv = nil
	if err != nil {
		return fmt.Errorf("keycloaktest: shutdown: %w", err)
	}
	return nil
}

// SetFault makes the server misbehave until ClearFault (or another
// SetFault). If re-listening after a Refuse fault fails, the error is logged
// and the server keeps refusing; ClearFault retries.
func (s *Server) SetFault(f Fault) {
	f.Paths = slices.Clone(f.Paths)
	s.faultHits.Store(0)
	s.fault.Store(&f)
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if f.Refuse && len(f.Paths) == 0 {
		if s.started && !s.closed && !s.refused {
			if err := s.stopLocked(); err != nil {
				s.logger.Error("keycloaktest: refuse connections", "error", err)
			}
			s.refused = true
		}
		return
	}
	s.relistenLocked()
}

// ClearFault makes the server behave again, listening again if it refused.
func (s *Server) ClearFault() {
	s.fault.Store(nil)
	s.lmu.Lock()
	defer s.lmu.Unlock()
	s.relistenLocked()
}

func (s *Server) relistenLocked() {
	if !s.refused || s.closed {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.logger.Error("keycloaktest: listen again after Refuse fault", "addr", s.addr, "error", err)
		return
	}
	s.refused = false
	s.serveLocked(ln)
}

// URL returns the base URL, e.g. "http://127.0.0.1:41234" or, with
// WithBasePath("/auth"), "http://127.0.0.1:41234/auth". It is "" before
// Start unless WithPublicURL was given.
func (s *Server) URL() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.base == "" {
		return ""
	}
	return s.base + s.basePath
}

// Issuer returns the issuer of a realm: URL()+"/realms/"+realm.
func (s *Server) Issuer(realm string) string { return s.URL() + "/realms/" + realm }

// Handler returns the server's HTTP handler, for mounting it elsewhere
// (e.g. httptest.NewServer). Faults apply to it as well.
func (s *Server) Handler() http.Handler { return s.handler }

// Realm returns the realm with that name, or nil.
func (s *Server) Realm(name string) *Realm {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.realms[name]
}

// Realms returns the realms in creation order.
func (s *Server) Realms() []*Realm {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Realm, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.realms[name])
	}
	return out
}

// AddRealm adds a realm. Its keys are generated on first use.
func (s *Server) AddRealm(cfg RealmConfig) (*Realm, error) {
	r, err := newRealm(s, cfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.realms[r.name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrRealmExists, r.name)
	}
	s.realms[r.name] = r
	s.order = append(s.order, r.name)
	return r, nil
}

func (s *Server) now() time.Time { return s.clock() }

// issuerFor is the realm issuer for a request: the configured base URL, or
// (for a Handler mounted with no known URL) the request's own.
func (s *Server) issuerFor(req *http.Request, realm string) string {
	if u := s.URL(); u != "" {
		return u + "/realms/" + realm
	}
	return requestBase(req) + s.basePath + "/realms/" + realm
}

// requestBase is scheme://host of the request, which is what Keycloak
// builds endpoint URLs from when no hostname is configured.
func requestBase(req *http.Request) string {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}
