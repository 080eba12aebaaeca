package gateway

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/login"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// normalizeHeader folds a header name the way CGI-style servers do
// (X_Forwarded_User and X-Forwarded-User both become HTTP_X_FORWARDED_USER),
// so a client cannot smuggle an identity header under an underscore name.
func normalizeHeader(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
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
// the client is the rightmost untrusted address of X-Forwarded-For.
func (g *Gateway) clientOf(r *http.Request) (netip.Addr, string, string) {
	peer := remoteAddr(r)
	proto, host := "http", r.Host
	if r.TLS != nil {
		proto = "https"
	}
	if !g.isTrusted(peer) {
		return peer, proto, host
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		proto = p
	}
	if h := r.Header.Get("X-Forwarded-Host"); h != "" && !strings.ContainsAny(h, " /\\,") {
		host = h
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

// ServeHTTP is the gateway.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	client, proto, host := g.clientOf(r)
	st := &reqState{client: client, proto: proto, host: host}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))

	// Identity headers come from the gateway only, on every route.
	for name := range r.Header {
		if g.strip[normalizeHeader(name)] {
			delete(r.Header, name)
		}
	}

	routeName := "_none"
	if strings.HasPrefix(r.URL.Path, DefaultPrefix+"/") || r.URL.Path == DefaultPrefix {
		routeName = "_cloakroom"
		g.internal.ServeHTTP(rec, r)
	} else if rt := g.match(r); rt == nil {
		writeJSON(rec, http.StatusNotFound, map[string]string{"code": "no_route", "detail": "no route for this host and path"})
	} else {
		st.route = rt
		routeName = rt.cfg.Name
		g.serveRoute(rec, r, rt)
	}
	elapsed := time.Since(start)
	code := strconv.Itoa(rec.status)
	g.metrics.requests.WithLabelValues(routeName, code).Inc()
	g.metrics.duration.WithLabelValues(routeName).Observe(elapsed.Seconds())
	if st.route != nil {
		g.metrics.decisions.WithLabelValues(routeName, decision(st, rec.status)).Inc()
	}
	if g.access {
		// Path only: query strings can carry codes and states.
		g.logger.LogAttrs(r.Context(), slogInfo, "request",
			attrString("method", r.Method), attrString("path", r.URL.Path), attrString("route", routeName),
			attrInt("status", rec.status), attrInt64("bytes", rec.bytes), attrDur("duration", elapsed),
			attrString("client", client.String()), attrString("sub", st.sub))
	}
}

func decision(st *reqState, status int) string {
	switch {
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
	if len(rt.cfg.Methods) > 0 && !slices.Contains(rt.cfg.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.cfg.Methods, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"code": "method_not_allowed", "detail": r.Method + " is not allowed here"})
		return
	}
	switch rt.cfg.Mode {
	case "api":
		rt.api.ServeHTTP(w, r)
	case "both":
		if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
			rt.api.ServeHTTP(w, r)
			return
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
		if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
			meBearer.ServeHTTP(w, r)
			return
		}
		meSession.ServeHTTP(w, r)
	})
	mux.Handle(DefaultPrefix+"/", g.login)
	return mux
}

// serveMe answers who the caller is, as the upstream would see it.
func (g *Gateway) serveMe(w http.ResponseWriter, r *http.Request) {
	who := callerOf(r)
	if who == nil {
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
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
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
