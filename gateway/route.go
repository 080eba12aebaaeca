package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/bodylimit"
	"github.com/cloakroom/cloakroom/login"
)

// route is a compiled Route: its matcher, its protection chain and its proxy.
type route struct {
	cfg     *Route
	target  *url.URL
	proxy   *httputil.ReverseProxy
	browser http.Handler // session chain ending in the proxy
	api     http.Handler // bearer chain ending in the proxy
	// authBrowser and authAPI are the same chains ending in the answer to
	// a forward-auth subrequest (forward_auth only).
	authBrowser, authAPI http.Handler
	wildHost             string // "example.com" for "*.example.com"
}

// reqState travels with a request through the chains: which route, whether
// the request reached the upstream, and who the caller is.
type reqState struct {
	// The request's context, of which the reqState is a child answering
	// stateKey (one allocation for the state, the context value and the
	// response recorder rec, instead of three).
	context.Context
	rec       recorder
	route     *route
	peer      netip.Addr // the connection's remote address
	trusted   bool       // peer is a trusted proxy
	proxied   bool
	sub       string
	client    netip.Addr
	proto     string
	host      string    // for X-Forwarded-Host: canonical host[:port]
	canonHost string    // for route matching: canonical host without port
	authStart time.Time // set on API routes
	// bodyTooSlow reports that the client was cut off while sending the
	// request body (bodylimit.Wrap); nil before the body is wrapped.
	bodyTooSlow func() bool
	// Forward-auth subrequests: the original request's method and path
	// (for the access log), and a decision label that overrides the one
	// derived from the status.
	subrequest           bool
	origMethod, origPath string
	decision             string
}

// observeAuth records the bearer authentication time once.
func (g *Gateway) observeAuth(st *reqState) {
	if !st.authStart.IsZero() {
		g.metrics.verify.Observe(time.Since(st.authStart).Seconds())
		st.authStart = time.Time{}
	}
}

type stateKey struct{}

// Value implements context.Context: stateKey is the state itself.
func (st *reqState) Value(key any) any {
	if key == (stateKey{}) {
		return st
	}
	return st.Context.Value(key)
}

func stateOf(r *http.Request) *reqState {
	s, _ := r.Context().Value(stateKey{}).(*reqState)
	return s
}

func (g *Gateway) newRoute(rc *Route) (*route, error) {
	rt := &route{cfg: rc}
	if strings.HasPrefix(rc.Host, "*.") {
		rt.wildHost = rc.Host[1:]
	}
	if g.cfg.ForwardAuth {
		rt.authBrowser, rt.authAPI = g.chains(rc, http.HandlerFunc(g.authAllowed))
	}
	if rc.Upstream == "" {
		return rt, nil // authorization only (forward_auth)
	}
	target, err := url.Parse(rc.Upstream)
	if err != nil {
		return nil, &ConfigError{Setting: "routes." + rc.Name + ".upstream", Msg: err.Error(), Err: err}
	}
	rt.target = target
	rt.proxy = &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { g.rewrite(rt, pr) },
		Transport:  g.transport,
		BufferPool: copyBuffers,
		// No periodic flush: ReverseProxy flushes every write of a
		// streaming answer (text/event-stream, or no Content-Length)
		// itself; a flush timer on every other answer cost a timer
		// start and stop per request.
		FlushInterval: 0,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// A body cut for slowness also cancels the request's context
			// (the server saw the read fail): answer it first.
			if te := (*bodylimit.TimeoutError)(nil); errors.As(err, &te) || bodyTooSlow(r) {
				g.logger.Info("request body too slow", "route", rc.Name, "error", err)
				w.Header().Set("Connection", "close")
				writeJSON(w, http.StatusRequestTimeout, map[string]string{"code": "body_timeout", "detail": "the request body was sent too slowly"})
				return
			}
			if r.Context().Err() != nil {
				return // the client went away
			}
			g.logger.Warn("upstream unreachable", "route", rc.Name, "upstream", rc.Upstream, "error", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"code": "upstream_unavailable", "detail": "the application behind the gateway does not answer"})
		},
		ErrorLog: nil,
	}
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateOf(r); st != nil {
			st.proxied = true
			g.observeAuth(st)
		}
		rt.proxy.ServeHTTP(w, r)
	})
	rt.browser, rt.api = g.chains(rc, g.withExchange(rc, proxy)) // exchange_audience (exchange.go)
	return rt, nil
}

// chains builds the route's two protection chains ending in next: the
// browser chain (sessions) and the API chain (bearer tokens). Proxied
// requests end in the reverse proxy, forward-auth subrequests in the
// answer that allows them.
func (g *Gateway) chains(rc *Route, next http.Handler) (browser, api http.Handler) {
	// The route's rules, compiled once into the Requirements both chains
	// check, in this order (the first unmet one is refused).
	reqs := rc.requirements()

	// Browser chain: the login middleware loads the session; requirements
	// follow. acr is a step-up on this chain (RequireACR checks the same
	// cloakroom.MinACR, and sends a session below it back to Keycloak).
	var b http.Handler = next
	if rc.ACR != "" {
		b = g.login.RequireACR(rc.ACR)(b)
	}
	for _, req := range slices.Backward(reqs) {
		b = g.login.Require(req)(b)
	}
	if !rc.Public {
		b = g.login.RequireLogin(b)
	}
	browser = g.login.Middleware(b)

	// API chain: bearer tokens. A token below acr is refused (403): an API
	// client cannot be sent to a login form.
	var a http.Handler = withoutDPoPProof(next)
	if rc.ACR != "" {
		a = bearer.Require(cloakroom.MinACR(rc.ACR, g.cfg.ACRLevels))(a)
	}
	for _, req := range slices.Backward(reqs) {
		a = bearer.Require(req)(a)
	}
	if !rc.Public {
		a = bearer.RequireAuthenticated()(a)
	}
	auth := g.bearer
	if rc.Introspect {
		auth = g.intro
	}
	auth = g.dpopAuthenticator(rc, auth) // dpop.go
	inner := auth.Authenticate(a)
	api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Bearer authentication is timed up to the proxy (or the refusal).
		st := stateOf(r)
		if st != nil {
			st.authStart = time.Now()
		}
		inner.ServeHTTP(w, r)
		if st != nil {
			g.observeAuth(st)
		}
	})
	return browser, api
}

// requirements compiles the route's realm_roles and client_roles rules
// into Requirements, checked in this order: realm_roles any, all, then
// client_roles any, all, then organizations.
func (rc *Route) requirements() []cloakroom.Requirement {
	var reqs []cloakroom.Requirement
	if len(rc.RealmRoles.Any) > 0 {
		reqs = append(reqs, cloakroom.AnyRealmRole(rc.RealmRoles.Any...))
	}
	if len(rc.RealmRoles.All) > 0 {
		reqs = append(reqs, cloakroom.AllRealmRoles(rc.RealmRoles.All...))
	}
	if len(rc.ClientRoles.Any) > 0 {
		reqs = append(reqs, cloakroom.AnyClientRole(rc.ClientRoles.Client, rc.ClientRoles.Any...))
	}
	if len(rc.ClientRoles.All) > 0 {
		reqs = append(reqs, cloakroom.AllClientRoles(rc.ClientRoles.Client, rc.ClientRoles.All...))
	}
	if len(rc.Organizations) > 0 {
		reqs = append(reqs, cloakroom.MemberOf(rc.Organizations...))
	}
	return reqs
}

// matches reports whether the route serves the canonical host (lower
// case, no port, no trailing dot) and path. Route hosts are stored in the
// same form, so the comparison is case-insensitive everywhere, wildcards
// included.
func (rt *route) matches(host, path string) bool {
	switch {
	case rt.cfg.Host == "":
	case rt.wildHost != "":
		if !strings.HasSuffix(host, rt.wildHost) || len(host) == len(rt.wildHost) {
			return false
		}
	case host != rt.cfg.Host:
		return false
	}
	p := rt.cfg.Path
	if !strings.HasPrefix(path, p) {
		return false
	}
	// "/app" matches "/app" and "/app/x", not "/apple".
	return strings.HasSuffix(p, "/") || len(path) == len(p) || path[len(p)] == '/'
}

// sortRoutes orders routes so the first match is the most specific: host
// routes before host-less ones, longer paths first.
func sortRoutes(rs []*route) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].cfg, rs[j].cfg
		if (a.Host != "") != (b.Host != "") {
			return a.Host != ""
		}
		if (a.Host != "" && !strings.HasPrefix(a.Host, "*.")) != (b.Host != "" && !strings.HasPrefix(b.Host, "*.")) {
			return !strings.HasPrefix(a.Host, "*.")
		}
		return len(a.Path) > len(b.Path)
	})
}

func (g *Gateway) match(host, path string) *route {
	for _, rt := range g.routes {
		if rt.matches(host, path) {
			return rt
		}
	}
	return nil
}

// identity is what the upstream learns about the caller.
type identity struct {
	sub, email, username string
	roles, groups        []string
	token                string
}

func identityFromClaims(c *cloakroom.Claims, id *cloakroom.Claims, token string) *identity {
	if c == nil {
		// An opaque access token (generic profile): the ID token speaks.
		c, id = id, nil
	}
	if c == nil {
		return nil
	}
	who := &identity{sub: c.Subject(), email: c.Email(), username: c.Username(), token: token}
	if id != nil {
		if who.email == "" {
			who.email = id.Email()
		}
		if who.username == "" {
			who.username = id.Username()
		}
	}
	who.roles = c.RealmRoles()
	for client, roles := range c.ResourceAccess() {
		for _, role := range roles {
			who.roles = append(who.roles, client+":"+role)
		}
	}
	slices.Sort(who.roles)
	// Keycloak's group-membership mapper writes the access token by default;
	// its parsed claims are cached with the token, the ID claims are not.
	who.groups = c.Strings("groups")
	return who
}

func callerOf(r *http.Request) *identity {
	if s, ok := login.FromContext(r.Context()); ok {
		return identityFromClaims(s.AccessClaims, s.IDClaims, s.AccessToken)
	}
	if p, ok := bearer.FromContext(r.Context()); ok {
		return identityFromClaims(p.Claims, nil, p.Token)
	}
	return nil
}

// rewrite prepares the outbound request: target URL, forwarding headers,
// identity headers. Spoofed identity headers were removed on the way in.
func (g *Gateway) rewrite(rt *route, pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme, out.URL.Host = rt.target.Scheme, rt.target.Host
	// in.URL.Path is canonical (ServeHTTP): no dot or empty segment and no
	// '/' inside a segment, so removing the route's prefix (which ends at
	// a segment boundary) cannot climb above the upstream's base path, and
	// the encoding Go gives it (RawPath empty) is the only one possible.
	path := in.URL.Path
	if rt.cfg.StripPrefix && rt.cfg.Path != "/" {
		path = strings.TrimPrefix(path, strings.TrimSuffix(rt.cfg.Path, "/"))
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	out.URL.Path = singleJoin(rt.target.Path, path)
	out.URL.RawPath = ""
	out.URL.RawQuery = in.URL.RawQuery
	out.Host = in.Host // upstreams see the public host, as behind any proxy

	st := stateOf(in)
	var peer netip.Addr
	var trusted bool
	if st != nil {
		peer, trusted = st.peer, st.trusted
	} else {
		peer = remoteAddr(in)
		trusted = g.isTrusted(peer)
	}
	oh := out.Header
	delete(oh, "Forwarded")
	// One backing array for the values set below (each header's value is
	// a slice of its own of it), instead of an allocation per header.
	vals := make([]string, 0, 10)
	set := func(key, v string) {
		vals = append(vals, v)
		oh[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	peerStr := ""
	if peer.IsValid() {
		peerStr = peer.String()
	}
	if st != nil && st.client.IsValid() {
		if st.client == peer {
			set("X-Real-Ip", peerStr)
		} else {
			set("X-Real-Ip", st.client.String())
		}
	} else {
		delete(oh, "X-Real-Ip")
	}
	prior := ""
	if trusted {
		prior = strings.Join(in.Header.Values("X-Forwarded-For"), ", ")
	}
	switch {
	case prior != "" && peer.IsValid():
		set("X-Forwarded-For", prior+", "+peerStr)
	case peer.IsValid():
		set("X-Forwarded-For", peerStr)
	default:
		delete(oh, "X-Forwarded-For")
	}
	if st != nil {
		set("X-Forwarded-Proto", st.proto)
		set("X-Forwarded-Host", st.host)
	}
	if who, token := g.callerHeaders(in); who != nil {
		if st != nil {
			st.sub = who.sub
		}
		h := &g.headerKeys
		set(h.user, who.sub)
		for _, kv := range [...][2]string{{h.email, who.email}, {h.username, who.username}, {h.roles, who.roles}, {h.groups, who.groups}} {
			if kv[1] != "" {
				set(kv[0], kv[1])
			}
		}
		// exchange_audience: the token exchanged for the upstream, never
		// the caller's (exchange.go).
		if t := upstreamAccessToken(rt, in, token); g.cfg.ForwardAccessToken && t != "" {
			set(h.accessToken, t)
		}
	}
	// The session cookie is the gateway's business, not the upstream's.
	stripCookie(out, g.sessions.CookieName())
}

// setIf sets the header (canonical key) to v, already made a valid header
// value, when v is not empty.
func setIf(h http.Header, key, v string) {
	if v != "" {
		h[key] = []string{v}
	}
}

// sanitizeHeaderValue drops characters that cannot appear in a header.
func sanitizeHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f { // (strings.Map also mends invalid UTF-8)
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

func singleJoin(a, b string) string {
	switch {
	case a == "" || a == "/":
		return b
	case strings.HasSuffix(a, "/") && strings.HasPrefix(b, "/"):
		return a + b[1:]
	case !strings.HasSuffix(a, "/") && !strings.HasPrefix(b, "/"):
		return a + "/" + b
	}
	return a + b
}

// stripCookie removes one cookie from the outbound Cookie header(s),
// leaving the others byte for byte.
func stripCookie(r *http.Request, name string) {
	values := r.Header.Values("Cookie")
	if len(values) == 0 {
		return
	}
	var kept strings.Builder
	for _, line := range values {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			trimmed := strings.TrimSpace(part)
			if n, _, _ := strings.Cut(trimmed, "="); n == name || trimmed == "" {
				continue
			}
			if kept.Len() > 0 {
				kept.WriteString("; ")
			}
			kept.WriteString(trimmed)
		}
	}
	delete(r.Header, "Cookie")
	if kept.Len() > 0 {
		r.Header["Cookie"] = []string{kept.String()}
	}
}

func bodyTooSlow(r *http.Request) bool {
	st := stateOf(r)
	return st != nil && st.bodyTooSlow != nil && st.bodyTooSlow()
}
