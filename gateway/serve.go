package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/bodylimit"
	"github.com/cloakroom/cloakroom/internal/canonical"
	"github.com/cloakroom/cloakroom/login"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// normalizeHeader folds a header name the way CGI-style servers do
// (X_Forwarded_User and X-Forwarded-User both become HTTP_X_FORWARDED_USER),
// so a client cannot smuggle an identity header under an underscore name.
func normalizeHeader(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// foldHeader appends normalizeHeader(name) to dst for an ASCII name,
// without allocating.
func foldHeader(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
			return a.Unmap()
		}
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (g *Gateway) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range g.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientOf works out the original client's address, scheme and host:
// forwarded headers count only when the peer is a trusted proxy, and then
// the client is the rightmost untrusted address of X-Forwarded-For. host
// is r.Host, which ServeHTTP has made canonical, or a trusted proxy's
// X-Forwarded-Host in canonical form.
func (g *Gateway) clientOf(r *http.Request, trusted bool) (netip.Addr, string, string) {
	var peer netip.Addr
	if st := stateOf(r); st != nil {
		peer = st.peer
	} else {
		peer = remoteAddr(r)
	}
	proto, host := "http", r.Host
	if r.TLS != nil {
		proto = "https"
	}
	if !trusted {
		return peer, proto, host
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		proto = p
	}
	if h, p, err := canonical.Host(r.Header.Get("X-Forwarded-Host")); err == nil && h != "" {
		host = canonical.Target{Host: h, Port: p}.HostPort()
	}
	client := peer
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !g.isTrusted(client) {
			break
		}
	}
	return client, proto, host
}

// forwardingHeaders are request headers that upstreams commonly read for
// the client's address, the original URL, the scheme or the method. Only a
// trusted proxy may set them; from anyone else they are dropped, and in
// their underscore spellings (which CGI-style servers read as the same
// header) they are dropped whoever sent them. X-Forwarded-For, -Proto and
// -Host and X-Real-IP are then set by the gateway itself.
var forwardingHeaders = map[string]bool{}

func init() {
	for _, h := range []string{
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Scheme",
		"X-Forwarded-Ssl", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Url-Scheme", "Front-End-Https",
		"X-Real-IP", "True-Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "Client-IP", "CF-Connecting-IP",
		"X-Original-URL", "X-Original-URI", "X-Original-Method", "X-Rewrite-URL", "X-Host",
		"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	} {
		forwardingHeaders[normalizeHeader(h)] = true
	}
}

// sanitize removes from the request what only the gateway may set: the
// identity headers (always), the forwarding headers (unless a trusted
// proxy sent them, and never in underscore spellings), and an h2c upgrade
// (which would let the client speak HTTP/2 to the upstream past every
// check of later requests on that connection).
func (g *Gateway) sanitize(r *http.Request, trusted bool) {
	var buf [64]byte
	for name := range r.Header {
		var n []byte
		if len(name) <= len(buf) && asciiOnly(name) {
			n = foldHeader(buf[:0], name)
		} else { // (strings.ToLower maps some non-ASCII letters to ASCII ones)
			n = []byte(normalizeHeader(name))
		}
		// (indexing with string(n) does not allocate)
		if g.strip[string(n)] || forwardingHeaders[string(n)] && (!trusted || strings.Contains(name, "_")) {
			delete(r.Header, name)
		}
	}
	for _, v := range r.Header.Values("Upgrade") {
		for _, proto := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(proto), "h2c") {
				r.Header.Del("Upgrade")
				r.Header.Del("HTTP2-Settings")
				return
			}
		}
	}
}

// sendsToken reports whether the request carries an access token (the
// Bearer or DPoP scheme): on routes that take either credential, it goes
// to the API chain.
func sendsToken(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")
}

// refuseRequest answers a request the gateway will not authorize: 400 with
// a JSON body naming what to fix.
func refuseRequest(w http.ResponseWriter, code, detail string) {
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusBadRequest, map[string]string{"code": code, "detail": detail})
}

// ServeHTTP is the gateway. Before any route is chosen, the request is
// made canonical (see internal/canonical): routes are matched on the
// canonical host and path, and exactly those are forwarded.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	peer := remoteAddr(r)
	trusted := g.isTrusted(peer)
	g.sanitize(r, trusted)
	st := &reqState{Context: r.Context(), peer: peer, trusted: trusted}
	st.rec = recorder{ResponseWriter: w, status: http.StatusOK}
	rec := &st.rec
	r = r.WithContext(st)

	routeName := "_none"
	if g.canonicalize(rec, r, st) {
		st.client, st.proto, st.host = g.clientOf(r, trusted)
		if g.cfg.ForwardAuth && r.URL.Path == AuthPath {
			routeName = g.serveAuth(rec, r, st, trusted)
		} else if strings.HasPrefix(r.URL.Path, DefaultPrefix+"/") || r.URL.Path == DefaultPrefix {
			routeName = "_cloakroom"
			g.internal.ServeHTTP(rec, r)
		} else if rt := g.match(st.canonHost, r.URL.Path); rt == nil {
			writeJSON(rec, http.StatusNotFound, map[string]string{"code": "no_route", "detail": "no route for this host and path"})
		} else {
			st.route = rt
			routeName = rt.cfg.Name
			g.serveRoute(rec, r, rt)
		}
	} else {
		st.client = peer
	}
	end := time.Now()
	elapsed := end.Sub(start)
	dec := ""
	if st.route != nil {
		dec = decision(st, rec.status)
	}
	g.metrics.observe(g.routeMetrics[routeName], routeName, rec.status, elapsed, dec)
	if g.access {
		// Path only: query strings can carry codes and states. A
		// forward-auth subrequest is logged as the original request it
		// decided on, marked forward_auth.
		e := accessEntry{method: r.Method, path: r.URL.Path, route: routeName, status: rec.status, bytes: rec.bytes,
			duration: elapsed, client: st.client, sub: st.sub, forwardAuth: st.subrequest}
		if st.subrequest {
			if st.origMethod != "" {
				e.method = st.origMethod
			}
			if st.origPath != "" {
				e.path = st.origPath
			}
		}
		g.logAccess(r.Context(), end, &e)
	}
}

// canonicalize replaces the request's host and path by their canonical
// form, or answers the request (400, or a redirect to the canonical path
// for GET and HEAD) and returns false.
func (g *Gateway) canonicalize(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	if len(r.Header.Values("Authorization")) > 1 {
		refuseRequest(w, "invalid_request", "more than one Authorization header: send exactly one")
		return false
	}
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"code": "method_not_allowed", "detail": "CONNECT is not served: the gateway is not a forward proxy"})
		return false
	}
	uri := r.RequestURI
	if uri == "" { // a request built in-process rather than read from the wire
		uri = r.URL.RequestURI()
	}
	t, err := canonical.Parse(uri, r.Host)
	if err != nil || t.Cleaned {
		canonical.Answer(w, r, t, err)
		return false
	}
	r.Host = t.HostPort()
	r.URL.Scheme, r.URL.Host, r.URL.Opaque, r.URL.User = "", "", "", nil
	r.URL.Path, r.URL.RawPath = t.Path, ""
	st.canonHost = t.Host
	return true
}

func decision(st *reqState, status int) string {
	switch {
	case st.decision != "":
		return st.decision
	case st.proxied && st.route.cfg.Public && st.sub == "":
		return "public"
	case st.proxied:
		return "allowed"
	case status == http.StatusFound || status == http.StatusSeeOther:
		return "login_redirect"
	case status == http.StatusUnauthorized || status == http.StatusBadRequest:
		return "unauthorized"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "other"
}

func (g *Gateway) serveRoute(w http.ResponseWriter, r *http.Request, rt *route) {
	if rt.proxy == nil {
		// An authorization-only route (forward_auth): the proxy in front
		// serves it, and asks the gateway only at /_cloakroom/auth.
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "no_upstream", "detail": "route " + rt.cfg.Name + " only answers forward-auth subrequests (" + AuthPath + "): send the request to the proxy in front"})
		return
	}
	if len(rt.cfg.Methods) > 0 && !slices.Contains(rt.cfg.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.cfg.Methods, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"code": "method_not_allowed", "detail": r.Method + " is not allowed here"})
		return
	}
	if st := stateOf(r); st != nil {
		st.bodyTooSlow = bodylimit.Wrap(w, r, g.bodyLimits)
	} else {
		bodylimit.Wrap(w, r, g.bodyLimits)
	}
	switch rt.cfg.Mode {
	case "api":
		rt.api.ServeHTTP(w, r)
	case "both":
		if sendsToken(r) {
			rt.api.ServeHTTP(w, r)
			return
		}
		// Either credential would do: a 401 offers both.
		if rec, ok := w.(*recorder); ok {
			rec.challenge = g.bearerChallenge
		}
		rt.browser.ServeHTTP(w, r)
	default:
		rt.browser.ServeHTTP(w, r)
	}
}

// internalHandler serves the reserved prefix.
func (g *Gateway) internalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DefaultPrefix+"/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+DefaultPrefix+"/readyz", func(w http.ResponseWriter, r *http.Request) {
		if checks := g.Ready(r.Context()); len(checks) > 0 {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "checks": checks})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.Handle("GET "+DefaultPrefix+"/metrics", promhttp.HandlerFor(g.metrics.gatherer, promhttp.HandlerOpts{}))
	me := http.HandlerFunc(g.serveMe)
	meBearer := g.bearer.Authenticate(me)
	meSession := g.login.Middleware(me)
	mux.HandleFunc("GET "+DefaultPrefix+"/me", func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*recorder); ok {
			rec.challenge = g.bearerChallenge
		}
		if sendsToken(r) {
			meBearer.ServeHTTP(w, r)
			return
		}
		meSession.ServeHTTP(w, r)
	})
	if g.cfg.ForwardAuth {
		mux.HandleFunc("GET "+StartPath, g.serveStart)
	}
	g.login.Mount(mux) // the rest of DefaultPrefix: login, callback, logout, back-channel logout
	return mux
}

// serveMe answers who the caller is, as the upstream would see it.
func (g *Gateway) serveMe(w http.ResponseWriter, r *http.Request) {
	who := callerOf(r)
	if who == nil {
		w.Header().Set("WWW-Authenticate", g.login.Challenge())
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "not_authenticated", "detail": "Log in first.", "login_url": DefaultPrefix + "/login"})
		return
	}
	body := map[string]any{
		"sub": who.sub, "email": who.email, "preferred_username": who.username,
		"roles": nonNil(who.roles), "groups": nonNil(who.groups),
	}
	if s, ok := login.FromContext(r.Context()); ok {
		body["via"] = "session"
		body["expires_at"] = s.ExpiresAt().UTC().Format(time.RFC3339)
		if s.IDClaims != nil {
			body["name"] = s.IDClaims.Name()
			body["acr"] = s.IDClaims.ACR()
		}
		body["csrf_token"] = s.CSRFToken
	} else if p, ok := bearer.FromContext(r.Context()); ok {
		body["via"] = "bearer"
		body["expires_at"] = p.Claims.Expiry().UTC().Format(time.RFC3339)
		body["name"] = p.Claims.Name()
	}
	writeJSON(w, http.StatusOK, body)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// recorder captures the status and size of a response for metrics and the
// access log. It passes Flush and Hijack through (SSE, WebSockets).
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	// challenge is added to a 401's WWW-Authenticate unless one of its
	// scheme is there: on routes that take a session or a token, the
	// answer offers both.
	challenge string
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
		if code == http.StatusUnauthorized && r.challenge != "" {
			scheme, _, _ := strings.Cut(r.challenge, " ")
			h := r.Header()
			if !slices.ContainsFunc(h.Values("WWW-Authenticate"), func(v string) bool {
				return strings.HasPrefix(strings.ToLower(v), strings.ToLower(scheme))
			}) {
				h.Add("WWW-Authenticate", r.challenge)
			}
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		r.status = http.StatusSwitchingProtocols
		return h.Hijack()
	}
	return nil, nil, errors.New("gateway: the connection cannot be hijacked")
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
