// Package gateway is a reverse proxy that puts Keycloak login, bearer-token
// validation and role checks in front of HTTP applications written in any
// language: what oauth2-proxy and gatekeeper do, built from cloakroom's own
// login, bearer and session packages. `cloakroom serve` runs it.
//
// Requests are matched to routes by host and path prefix. Browser routes use
// login sessions; API routes accept bearer tokens; both can require realm or
// client roles, HTTP methods and (browser) an authentication level. The
// identity reaches the upstream as headers (X-Forwarded-User = sub, -Email,
// -Preferred-Username, -Roles, -Groups); any copy of those headers sent by
// the client is removed on every route. The reserved prefix /_cloakroom/
// serves login, callback, logout, back-channel logout, me, healthz, readyz
// and metrics. With Config.ForwardAuth it also answers the authorization
// subrequests of a proxy in front (AuthPath: nginx auth_request, Traefik
// ForwardAuth, Caddy forward_auth) and starts logins for it (StartPath).
//
// ExampleNew runs a gateway against keycloaktest in front of an
// application that reads the X-Forwarded-* headers. A setting that cannot
// work is a *ConfigError naming it (a *ValidationError lists every one
// Config.Validate found); its cause stays reachable with errors.Is and
// errors.As.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/bodylimit"
	"github.com/cloakroom/cloakroom/internal/storeurl"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
	"github.com/prometheus/client_golang/prometheus"
)

// Gateway is the reverse proxy. Create it with New, serve it with Run or
// Serve, or mount it yourself: a *Gateway is the http.Handler of the whole
// site (routes and /_cloakroom/). Close it when done.
type Gateway struct {
	cfg      Config
	logger   *slog.Logger
	realm    *cloakroom.Realm
	store    session.Store
	sessions *session.Manager
	login    *login.Handler
	bearer   *bearer.Authenticator
	intro    *bearer.Authenticator
	routes   []*route
	trusted  []netip.Prefix
	metrics  *metrics
	internal http.Handler
	strip    map[string]bool // normalized identity header names
	// headerKeys are the identity headers' canonical names (their values
	// are remembered on the caller's claims: identityHeadersFor).
	headerKeys headerKeys
	// routeMetrics are each route's metric children (and "_none",
	// "_cloakroom"), read-only once New returns.
	routeMetrics map[string]*routeMetrics
	// bearerChallenge is the WWW-Authenticate of a 401 on routes that
	// accept bearer tokens.
	bearerChallenge string
	bodyLimits      bodylimit.Limits
	access          bool
	// accessFast formats access-log lines without slog when the gateway
	// built its own logger (nil otherwise: lines go through the logger).
	accessFast *accessWriter
	flushLog   func() // writes out buffered log lines
	// untrustedAuth remembers the peers whose forward-auth subrequests were
	// refused for not being in trusted_proxies (warned about once each).
	untrustedAuth sync.Map
	untrustedN    atomic.Int64
	// transport is shared by every route: http.DefaultTransport keeps only
	// two idle connections per upstream, which turns each request of a
	// busy gateway into a new TCP connection.
	transport *http.Transport

	secret string // the client secret (from client_secret_file too)

	readyMu  sync.Mutex
	idp      idpState
	idpReady atomic.Bool

	stopBackground context.CancelFunc
	background     sync.WaitGroup
}

// Option configures New.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	logOutput  io.Writer
	registerer prometheus.Registerer
	gatherer   prometheus.Gatherer
	httpClient *http.Client
}

// WithLogger sets the logger (default: JSON or text on stderr per
// Config.Log).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithLogOutput keeps the logger the gateway builds from Config.Log (its
// format, level and access log) but writes it to w instead of stderr.
// Writes to w come from a background goroutine, in batches of whole
// lines; Close and the end of Serve wait for them. WithLogger overrides it.
func WithLogOutput(w io.Writer) Option { return func(o *options) { o.logOutput = w } }

// WithRegistry registers the gateway's metrics there instead of a private
// registry (which /_cloakroom/metrics serves).
func WithRegistry(r *prometheus.Registry) Option {
	return func(o *options) { o.registerer, o.gatherer = r, r }
}

// WithHTTPClient sets the client used to reach Keycloak.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// copyBuffers are the 32 KiB buffers the reverse proxies copy bodies
// through: without a pool each proxied request allocates one, which made
// up most of the gateway's allocation and GC work.
var copyBuffers = &bufferPool{}

// bufferPool pools the buffers as array pointers: putting a *[]byte back
// would allocate a slice header per request.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return buf[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}

// New builds a Gateway from a validated Config. Keycloak need not be
// reachable: the gateway starts, readyz says why it is not ready, and
// discovery is retried with backoff in the background.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	logger := o.logger
	flushLog := func() {}
	var accessFast *accessWriter
	if logger == nil {
		// Lines leave the request path: see batchWriter.
		out := o.logOutput
		if out == nil {
			out = os.Stderr
		}
		bw := newBatchWriter(out)
		logger, flushLog = newLogger(cfg.Log, bw), bw.Flush
		if logger.Enabled(ctx, slogInfo) {
			accessFast = &accessWriter{w: bw, text: cfg.Log.Format == "text"}
		}
		defer func() {
			if err != nil {
				bw.Flush() // the process may exit at once
			}
		}()
	}
	g := &Gateway{cfg: cfg, logger: logger, flushLog: flushLog, access: cfg.Log.AccessLog == nil || *cfg.Log.AccessLog, accessFast: accessFast,
		headerKeys: newHeaderKeys(cfg.Headers)}
	g.transport = http.DefaultTransport.(*http.Transport).Clone()
	g.transport.MaxIdleConns = 1024
	g.transport.MaxIdleConnsPerHost = 256
	g.transport.IdleConnTimeout = 90 * time.Second
	if o.registerer == nil {
		reg := prometheus.NewRegistry()
		o.registerer, o.gatherer = reg, reg
	}
	g.metrics = newMetrics(o.registerer, o.gatherer)

	secret, err := clientSecret(cfg)
	if err != nil {
		return nil, err
	}
	g.secret = secret
	for _, p := range cfg.TrustedProxies {
		pr, _ := parsePrefix(p)
		g.trusted = append(g.trusted, pr)
	}
	realmOpts := []cloakroom.RealmOption{cloakroom.WithLogger(logger)}
	if o.httpClient != nil {
		realmOpts = append(realmOpts, cloakroom.WithHTTPClient(o.httpClient))
	}
	realm, err := cloakroom.NewRealm(cfg.Issuer, realmOpts...)
	if err != nil {
		return nil, &ConfigError{Setting: "issuer", Msg: strings.TrimPrefix(err.Error(), "cloakroom: "), Err: err}
	}
	g.realm = realm
	// The one verification setting: login's verifiers and the bearer
	// verifier below are made from it.
	profile, _ := cloakroom.ParseProfile(cfg.Profile) // checked by Validate
	verify := cloakroom.VerifierConfig{Algorithms: cfg.Algorithms, Leeway: cfg.Leeway, Profile: profile, RolesClaim: cfg.RolesClaim}

	// Sessions.
	keys := make([][]byte, 0, len(cfg.Session.EncryptionKeys))
	for _, k := range cfg.Session.EncryptionKeys {
		b, _ := sessionKey(k)
		keys = append(keys, b)
	}
	if len(keys) == 0 {
		b, _ := sessionKey(session.GenerateKey())
		keys = append(keys, b)
		logger.Warn("no session encryption key configured: using a random one, so sessions end when the gateway restarts; set CLOAKROOM_ENCRYPTION_KEY (openssl rand -base64 32)")
	}
	ring, err := session.NewKeyring(keys...)
	if err != nil {
		return nil, &ConfigError{Setting: "session.encryption_keys", Msg: err.Error(), Err: err}
	}
	store, err := storeurl.Open(ctx, cfg.Session.Store)
	if err != nil {
		return nil, &ConfigError{Setting: "session.store", Msg: err.Error(), Err: err}
	}
	// Unset: session.NewCachedStore's default (a minute over a store that
	// notifies deletions, 5 s otherwise); 0: no cache.
	var ttl time.Duration
	if cfg.Session.CacheTTL != nil {
		ttl = *cfg.Session.CacheTTL
	}
	cache := cfg.Session.CacheTTL == nil || ttl > 0
	var st session.Store = newTimedStore(store, g.metrics)
	if n, ok := store.(session.Notifier); ok {
		st = &notifyingTimedStore{timedStore: st.(*timedStore), n: n}
	}
	// The memory store is in this process already: a cache in front of
	// it would only add reloads every TTL.
	if u, _ := storeurl.Parse(cfg.Session.Store); cache && u.Kind != storeurl.Memory {
		cached, err := session.NewCachedStore(ctx, st, session.CacheOptions{TTL: ttl})
		if err != nil {
			store.Close()
			return nil, &ConfigError{Setting: "session.store", Msg: "subscribing to invalidations: " + err.Error(), Err: err}
		}
		if u, _ := storeurl.Parse(cfg.Session.Store); !cached.Notified() && u.Shared() {
			logger.Warn("the session store cannot notify other instances; a logout reaches them within the cache TTL", "cache_ttl", cached.TTL())
		}
		st = cached
	}
	if path := cfg.journalPath(); path != "" {
		hold := time.Duration(0)
		if cfg.Session.RecoveryHold != nil {
			hold = *cfg.Session.RecoveryHold
			if hold == 0 {
				hold = -1 // session.JournalConfig: negative turns the hold off
			}
		}
		journaled, err := session.NewJournaledStore(st, session.JournalConfig{
			Path: path, MaxLifetime: cfg.Session.MaxLifetime, RecoveryHold: hold, Logger: logger,
		})
		if err != nil {
			st.Close()
			return nil, &ConfigError{Setting: "session.logout_journal", Msg: strings.TrimPrefix(err.Error(), "session: ") + journalHint(path, err), Err: err}
		}
		st = journaled
		g.metrics.journalPending(o.registerer, journaled.Pending)
	}
	g.store = st
	secure := strings.HasPrefix(cfg.PublicURL, "https://")
	g.sessions, err = session.NewManager(session.Config{
		Store: st, Keyring: ring, CookieName: cfg.Session.CookieName, Secure: secure, CookieDomain: cfg.CookieDomain,
		IdleTimeout: cfg.Session.IdleTimeout, MaxLifetime: cfg.Session.MaxLifetime,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	g.login, err = login.New(login.Config{
		Realm: realm, ClientID: cfg.ClientID, ClientSecret: secret,
		BaseURL: cfg.PublicURL, Prefix: DefaultPrefix, Sessions: g.sessions,
		Verifier: verify, ACRLevels: cfg.ACRLevels, AllowedRedirectOrigins: cfg.AllowedRedirectOrigins, Scopes: cfg.Scopes,
		LightweightTokens: cfg.LightweightTokens,
		// With forward_auth, the hosts of the routes are the gateway's own
		// sites: a login may return there (see allowedRedirect).
		AllowRedirect: g.allowedRouteRedirect,
		// Other providers may return the profile (email, username) only at
		// userinfo when they issue an access token (OIDC Core 5.4).
		FetchUserinfo: profile != cloakroom.Keycloak,
		// After logout: "You have been signed out", with a way back in.
		SignedOutPage: true,
		Logger:        logger,
		AfterLogin: func(ctx context.Context, e *login.LoginEvent) error {
			g.metrics.logins.Inc()
			g.clientAccepted()
			return nil
		},
		// A wrong issuer, client id or secret: logged once at ERROR with
		// the setting to fix, and reported by readyz.
		OnMisconfigured: func(ctx context.Context, err error) { g.reportMisconfigured(err) },
		AfterLogout:     func(ctx context.Context, s *login.Session) { g.metrics.logouts.WithLabelValues("rp").Inc() },
		OnBackchannelLogout: func(ctx context.Context, e *login.BackchannelLogoutEvent) {
			g.metrics.logouts.WithLabelValues("backchannel").Inc()
		},
		OnRefresh: func(ctx context.Context, err error) {
			result := "ok"
			if err != nil {
				result = "failed"
			} else {
				g.clientAccepted()
			}
			g.metrics.refreshes.WithLabelValues(result).Inc()
		},
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	// API routes also take the audiences and authorized parties
	// configured for them.
	verify.ClientID, verify.Audiences, verify.AuthorizedParties = cfg.ClientID, append([]string{cfg.ClientID}, cfg.Audiences...), cfg.AuthorizedParties
	verifier, err := realm.NewVerifier(verify)
	if err != nil {
		st.Close()
		return nil, err
	}
	// DPoP proofs (accepted by default; routes may require or refuse
	// them, dpop.go) name the public URL and are good once across every
	// instance sharing the store: also at /_cloakroom/me.
	bopts := []bearer.Option{bearer.WithLogger(logger),
		bearer.WithDPoP(bearer.DPoPConfig{Replay: bearer.ReplayCacheFromStore(g.store), RequestURL: publicRequestURL})}
	if cfg.LightweightTokens {
		bopts = append(bopts, bearer.WithLightweightTokens(cloakroom.ClientCredentials{ClientID: cfg.ClientID, ClientSecret: secret}))
	}
	if g.bearer, err = bearer.New(verifier, bopts...); err != nil {
		st.Close()
		return nil, err
	}
	if g.intro, err = bearer.New(verifier, append(bopts, bearer.WithIntrospection(bearer.IntrospectionConfig{
		Client: cloakroom.ClientCredentials{ClientID: cfg.ClientID, ClientSecret: secret}, CacheTTL: 5 * time.Second,
	}))...); err != nil {
		st.Close()
		return nil, err
	}
	g.bearerChallenge = g.bearer.Challenge()
	g.bodyLimits = bodylimit.Limits{Timeout: cfg.BodyReadTimeout, MinRate: cfg.BodyMinRate}
	g.strip = map[string]bool{}
	for _, h := range []string{cfg.Headers.User, cfg.Headers.Email, cfg.Headers.Username, cfg.Headers.Roles, cfg.Headers.Groups, cfg.Headers.AccessToken} {
		g.strip[normalizeHeader(h)] = true
	}
	for i := range cfg.Routes {
		r, err := g.newRoute(&cfg.Routes[i])
		if err != nil {
			st.Close()
			return nil, err
		}
		g.routes = append(g.routes, r)
	}
	sortRoutes(g.routes)
	g.routeMetrics = map[string]*routeMetrics{}
	for _, name := range []string{"_none", "_cloakroom"} {
		g.routeMetrics[name] = new(routeMetrics)
	}
	for _, r := range g.routes {
		g.routeMetrics[r.cfg.Name] = new(routeMetrics)
	}
	g.internal = g.internalHandler()

	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.stopBackground = cancel
	g.idp.discovery = errors.New("not contacted yet")
	g.background.Add(1)
	go g.warmUp(bctx)
	return g, nil
}

// warmUp fetches discovery and keys, retrying with backoff until it works,
// so that readyz turns ready as soon as Keycloak is reachable.
func (g *Gateway) warmUp(ctx context.Context) {
	defer g.background.Done()
	backoff := 500 * time.Millisecond
	for {
		err := g.realm.RefreshKeys(ctx)
		if ctx.Err() != nil {
			return // shutting down
		}
		g.readyMu.Lock()
		g.idp.discovery = err
		g.readyMu.Unlock()
		if err == nil {
			g.idpReady.Store(true)
			g.logger.Info("identity provider reachable", "issuer", g.realm.Issuer())
			g.checkClient(ctx)
			return
		}
		if errors.Is(err, cloakroom.ErrMisconfigured) {
			// Not an outage: logged at ERROR with the fix. Still retried,
			// so that a realm created later is picked up.
			g.reportMisconfigured(err)
		} else {
			g.logger.Warn("identity provider not reachable yet; retrying", "issuer", g.cfg.Issuer, "error", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// Ready reports why the gateway cannot serve yet (nil when it can): the
// identity provider was never reached or refuses the issuer
// (identity_provider), refuses the client id or secret
// (client_credentials), or the session store fails (session_store).
// Misconfigurations are reported as "misconfigured: " and the message
// naming the setting to fix; secrets never appear.
func (g *Gateway) Ready(ctx context.Context) map[string]string {
	checks := map[string]string{}
	g.readyMu.Lock()
	if !g.idpReady.Load() {
		if _, msg, ok := Misconfiguration(g.idp.discovery); ok {
			checks["identity_provider"] = "misconfigured: " + msg
		} else {
			checks["identity_provider"] = fmt.Sprintf("not reachable: %v", g.idp.discovery)
		}
	}
	if _, msg, ok := Misconfiguration(g.idp.client); ok {
		checks["client_credentials"] = "misconfigured: " + msg
	}
	g.readyMu.Unlock()
	sctx, cancel := context.WithTimeout(session.WithoutCache(ctx), 2*time.Second)
	defer cancel()
	if _, err := g.store.Load(sctx, "readyz-probe"); err != nil && !errors.Is(err, session.ErrNotFound) {
		checks["session_store"] = err.Error()
	}
	return checks
}

// Close stops background work and closes the session store.
func (g *Gateway) Close() error {
	g.stopBackground()
	g.background.Wait()
	g.transport.CloseIdleConnections()
	err := g.store.Close()
	g.flushLog()
	return err
}

// Run listens on Config.Listen (TLS if configured) and serves until ctx
// ends, then shuts down gracefully within Config.ShutdownTimeout.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
	}
	if g.cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLS.CertFile, g.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return &ConfigError{Setting: "tls", Msg: err.Error(), Err: err}
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	g.logger.Info("gateway listening", "addr", ln.Addr().String(), "public_url", g.cfg.PublicURL, "routes", len(g.routes))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdown)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = srv.Close()
	}
	<-errc
	g.logger.Info("gateway stopped")
	g.flushLog()
	return err
}

// NewLogger builds the gateway's logger from LogConfig.
func NewLogger(c LogConfig, w *os.File) *slog.Logger { return newLogger(c, w) }

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// journalHint tells how to fix a journal file the process cannot create or
// write: where it is (the default is relative: the working directory) and
// which setting moves it.
func journalHint(path string, err error) string {
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return ""
	}
	abs, aerr := filepath.Abs(path)
	if aerr != nil {
		abs = path
	}
	where := abs
	if !filepath.IsAbs(path) {
		where = abs + ", in the working directory"
	}
	return " (the journal is " + where + "): set session.logout_journal (CLOAKROOM_SESSION_LOGOUT_JOURNAL, --logout-journal) to a file this process can write, on storage that survives its restarts (a volume in a container), or to off to answer such logouts 503"
}
