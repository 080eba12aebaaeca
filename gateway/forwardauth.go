package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cloakroom/cloakroom/internal/canonical"
)

// Forward-auth: a proxy in front (nginx auth_request, Traefik ForwardAuth,
// Caddy forward_auth) asks the gateway, for each request it receives,
// whether to let it through: GET /_cloakroom/auth with the original
// request described in headers. The gateway answers as it would have
// answered the request itself, without an upstream: 200 with the identity
// headers, 401, 403 or 503.

// AuthPath and StartPath are the forward-auth endpoints (with
// Config.ForwardAuth).
const (
	AuthPath  = DefaultPrefix + "/auth"
	StartPath = DefaultPrefix + "/start"
)

// original is the request a proxy asks about, as its headers describe it.
type original struct {
	method string // as sent: a token
	uri    string // the raw request target
	host   string // host[:port], not yet canonical
	proto  string // "http" or "https"
}

// errOriginal is a subrequest whose headers do not describe one request.
type errOriginal string

func (e errOriginal) Error() string { return string(e) }

// errAmbiguous is a subrequest whose headers describe the original request
// twice, differently: typically the proxy set one spelling and passed the
// client's copy of the other along. Neither can be believed.
type errAmbiguous string

func (e errAmbiguous) Error() string { return string(e) }

// oneOf returns the single value of whichever of the header names is
// present (nginx's and Traefik's spellings). A header given twice, or both
// spellings with different values, is ambiguous: an error.
func oneOf(h http.Header, names ...string) (string, bool, error) {
	val, found := "", false
	for _, n := range names {
		vs := h.Values(n)
		switch {
		case len(vs) == 0:
			continue
		case len(vs) > 1:
			return "", false, errAmbiguous(n + " is given more than once: the proxy must set it once (and remove the client's copy)")
		case found && vs[0] != val:
			return "", false, errAmbiguous(strings.Join(names, " and ") + " disagree: the proxy must set one and remove the client's copy of the other")
		}
		val, found = vs[0], true
	}
	return val, found, nil
}

// originalRequest reads the original request from the headers of a
// forward-auth subrequest (which must come from a trusted proxy): method
// from X-Original-Method or X-Forwarded-Method, target from X-Original-URI
// or X-Forwarded-Uri, host from X-Forwarded-Host (else host, the
// subrequest's Host), scheme from X-Forwarded-Proto (else the subrequest's:
// https when it came over TLS). Nothing is defaulted that a rule depends
// on: a missing method or target is an error.
func originalRequest(h http.Header, host string, overTLS bool) (original, error) {
	var o original
	m, ok, err := oneOf(h, "X-Original-Method", "X-Forwarded-Method")
	if err != nil {
		return o, err
	}
	if !ok {
		return o, errOriginal("no X-Original-Method (nginx: proxy_set_header X-Original-Method $request_method) or X-Forwarded-Method header: the original method is needed to apply the route's rules")
	}
	if !validMethod(m) {
		return o, errOriginal("the original method " + strconv.Quote(m) + " is not an HTTP method token")
	}
	o.method = m
	uri, ok, err := oneOf(h, "X-Original-URI", "X-Forwarded-Uri")
	if err != nil {
		return o, err
	}
	if !ok || uri == "" {
		return o, errOriginal("no X-Original-URI (nginx: proxy_set_header X-Original-URI $request_uri) or X-Forwarded-Uri header: the original request target is needed")
	}
	o.uri = uri
	fh, ok, err := oneOf(h, "X-Forwarded-Host")
	switch {
	case err != nil:
		return o, err
	case ok && (fh == "" || strings.Contains(fh, ",")):
		return o, errOriginal("X-Forwarded-Host must name one host, e.g. app.example.com")
	case ok:
		o.host = fh
	default:
		o.host = host
	}
	o.proto = "http"
	if overTLS {
		o.proto = "https"
	}
	p, ok, err := oneOf(h, "X-Forwarded-Proto")
	switch {
	case err != nil:
		return o, err
	case ok && (strings.EqualFold(p, "http") || strings.EqualFold(p, "https")):
		o.proto = strings.ToLower(p)
	case ok:
		return o, errOriginal("X-Forwarded-Proto must be http or https")
	}
	return o, nil
}

// validMethod reports an RFC 9110 method token of reasonable length.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// warnUntrusted logs, once per peer, a forward-auth subrequest refused
// because its peer is not a trusted proxy (at most 1000 peers are
// remembered).
func (g *Gateway) warnUntrusted(peer netip.Addr) {
	key := peer.String()
	if _, seen := g.untrustedAuth.Load(key); seen || g.untrustedN.Load() >= 1000 {
		return
	}
	if _, seen := g.untrustedAuth.LoadOrStore(key, true); seen {
		return
	}
	g.untrustedN.Add(1)
	g.logger.Warn("forward-auth subrequest refused: the peer is not in trusted_proxies; add the proxy's address to trusted_proxies (CLOAKROOM_TRUSTED_PROXIES, --trusted-proxies)", "peer", key, "endpoint", AuthPath)
}

func refuseAuth(w http.ResponseWriter, status int, code, detail string) {
	writeJSON(w, status, map[string]string{"code": code, "detail": detail})
}

// serveAuth answers a forward-auth subrequest and returns the route name
// for metrics.
func (g *Gateway) serveAuth(w *recorder, r *http.Request, st *reqState, trusted bool) string {
	st.subrequest = true
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		refuseAuth(w, http.StatusMethodNotAllowed, "method_not_allowed", "the forward-auth endpoint takes GET or HEAD; the original method goes in X-Original-Method or X-Forwarded-Method")
		return "_cloakroom"
	}
	if !trusted {
		g.warnUntrusted(remoteAddr(r))
		refuseAuth(w, http.StatusForbidden, "untrusted_proxy", "forward-auth subrequests are answered only for peers listed in trusted_proxies")
		return "_cloakroom"
	}
	o, err := originalRequest(r.Header, r.Host, r.TLS != nil)
	if amb := errAmbiguous(""); errors.As(err, &amb) {
		// A refusal, not 400: nginx turns a 400 into a 500.
		refuseAuth(w, http.StatusForbidden, "ambiguous_original_request", err.Error())
		return "_cloakroom"
	} else if err != nil {
		refuseAuth(w, http.StatusBadRequest, "bad_original_request", err.Error())
		return "_cloakroom"
	}
	st.origMethod = o.method
	// The same canonical form as the gateway's own routing; dot and empty
	// segments, which a browser would be redirected away from, are refused:
	// a subrequest cannot be redirected.
	t, err := canonical.Parse(o.uri, o.host)
	if err == nil && t.Cleaned {
		err = errors.New("path: dot segments (. or ..) or empty segments (//) in the original request target (canonical: " + t.EscapedPath() + ")")
	}
	if err != nil {
		refuseAuth(w, http.StatusBadRequest, "bad_request_target", err.Error())
		return "_cloakroom"
	}
	st.origPath = t.Path
	st.proto, st.host = o.proto, t.HostPort()
	rt := g.match(t.Host, t.Path)
	if rt == nil {
		// Not 404: nginx turns any answer but 2xx, 401 and 403 into a 500.
		refuseAuth(w, http.StatusForbidden, "no_route", "no route for this host and path")
		return "_none"
	}
	st.route = rt
	if len(rt.cfg.Methods) > 0 && !slices.Contains(rt.cfg.Methods, o.method) {
		st.decision = "method_not_allowed"
		w.Header().Set("Allow", strings.Join(rt.cfg.Methods, ", "))
		refuseAuth(w, http.StatusForbidden, "method_not_allowed", o.method+" is not allowed here")
		return rt.cfg.Name
	}

	// The original request, as the route's chains expect it. Its answers
	// are JSON (X-Requested-With), so that the login chain never starts a
	// login itself: a subrequest's answer is a decision, and the redirect
	// to Keycloak starts at StartPath.
	in := r.Clone(r.Context())
	in.Method = o.method
	in.URL = &url.URL{Path: t.Path, RawQuery: t.RawQuery}
	in.RequestURI = t.RequestURI()
	in.Host = t.HostPort()
	in.Body, in.ContentLength = http.NoBody, 0
	in.Header.Set("X-Requested-With", "XMLHttpRequest")

	chain, viaBrowser := rt.authBrowser, true
	switch rt.cfg.Mode {
	case "api":
		chain, viaBrowser = rt.authAPI, false
	case "both":
		if sendsToken(r) {
			chain, viaBrowser = rt.authAPI, false
		}
	}
	buf := &authBuffer{header: http.Header{}}
	chain.ServeHTTP(buf, in)
	if buf.status == 0 {
		buf.status = http.StatusOK
	}

	dst := w.Header()
	copyHeaders := func() {
		for k, v := range buf.header {
			dst[k] = v
		}
	}
	switch {
	case buf.status >= 200 && buf.status < 300:
		if !st.proxied {
			// Only authAllowed says yes; anything else is a bug: fail closed.
			g.logger.Error("forward-auth: a 2xx answer that did not come from the allowing handler; refusing", "route", rt.cfg.Name, "status", buf.status)
			refuseAuth(w, http.StatusInternalServerError, "internal_error", "the gateway could not decide")
			return rt.cfg.Name
		}
		copyHeaders()
		w.WriteHeader(http.StatusOK)
	case buf.status == http.StatusUnauthorized && viaBrowser:
		var body struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(buf.body.Bytes(), &body)
		if body.Code == "" {
			body.Code, body.Detail = "not_authenticated", "Log in first."
		}
		start := g.startURL(o.proto + "://" + t.HostPort() + scrubQuery(t))
		for _, k := range []string{"Set-Cookie", "Vary"} {
			if v := buf.header.Values(k); len(v) > 0 {
				dst[k] = v
			}
		}
		if redirect, _ := strconv.ParseBool(r.URL.Query().Get("redirect")); redirect && navigation(o.method, r.Header) {
			dst.Set("Cache-Control", "no-store")
			dst.Set("Location", start)
			w.WriteHeader(http.StatusFound)
			return rt.cfg.Name
		}
		dst["Www-Authenticate"] = buf.header.Values("Www-Authenticate")
		if rt.cfg.Mode == "both" {
			w.challenge = g.bearerChallenge
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": body.Code, "detail": body.Detail, "login_url": start})
	default:
		copyHeaders()
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
	}
	return rt.cfg.Name
}

// authAllowed ends the chains of a forward-auth subrequest that passed
// every rule: 200 with the identity headers. Every one is present, empty
// when there is no value (all of them for an anonymous caller of a public
// route), so that a proxy copying them to the upstream overwrites any copy
// the client sent.
func (g *Gateway) authAllowed(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	if st != nil {
		st.proxied = true
		g.observeAuth(st)
	}
	h := w.Header()
	names := g.cfg.Headers
	for _, n := range []string{names.User, names.Email, names.Username, names.Roles, names.Groups} {
		h[http.CanonicalHeaderKey(n)] = []string{""}
	}
	if g.cfg.ForwardAccessToken {
		h[http.CanonicalHeaderKey(names.AccessToken)] = []string{""}
	}
	if who, token := g.callerHeaders(r); who != nil {
		if st != nil {
			st.sub = who.sub
		}
		k := &g.headerKeys
		h[k.user] = []string{sanitizeHeaderValue(who.sub)}
		setIf(h, k.email, who.email)
		setIf(h, k.username, who.username)
		setIf(h, k.roles, who.roles)
		setIf(h, k.groups, who.groups)
		if g.cfg.ForwardAccessToken {
			setIf(h, k.accessToken, sanitizeHeaderValue(token))
		}
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// navigation reports a browser loading a page: GET or HEAD accepting HTML.
func navigation(method string, h http.Header) bool {
	return (method == http.MethodGet || method == http.MethodHead) && strings.Contains(strings.ToLower(strings.Join(h.Values("Accept"), ",")), "text/html")
}

// startURL is the address that logs the user in and returns to rd.
func (g *Gateway) startURL(rd string) string {
	return g.cfg.PublicURL + StartPath + "?rd=" + url.QueryEscape(rd)
}

// credentialParams are query parameters never copied into a return
// address (as in the login package).
var credentialParams = []string{"access_token", "id_token", "refresh_token", "logout_token", "token", "code", "client_secret"}

// scrubQuery returns t's escaped path and query without the parameters
// that carry a credential.
func scrubQuery(t canonical.Target) string {
	if t.RawQuery == "" {
		return t.EscapedPath()
	}
	q, err := url.ParseQuery(t.RawQuery)
	if err != nil {
		return t.EscapedPath()
	}
	changed := false
	for name, values := range q {
		drop := slices.ContainsFunc(credentialParams, func(p string) bool { return strings.EqualFold(p, name) })
		for _, v := range values {
			drop = drop || strings.HasPrefix(v, "eyJ") && strings.Count(v, ".") >= 2
		}
		if drop {
			delete(q, name)
			changed = true
		}
	}
	if !changed {
		return t.RequestURI()
	}
	if len(q) == 0 {
		return t.EscapedPath()
	}
	return t.EscapedPath() + "?" + q.Encode()
}

// authBuffer holds the answer of a route's chain to a subrequest, so that
// serveAuth can turn it into the proxy's answer.
type authBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *authBuffer) Header() http.Header { return b.header }

func (b *authBuffer) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *authBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.body.Len() < 64<<10 {
		b.body.Write(p[:min(len(p), 64<<10-b.body.Len())])
	}
	return len(p), nil
}

// serveStart starts a login that returns to rd (an absolute URL), for
// proxies that send anonymous browsers here: nginx's error_page 401, or
// the 302 of /_cloakroom/auth?redirect=true.
func (g *Gateway) serveStart(w http.ResponseWriter, r *http.Request) {
	u, rt, ok := g.checkRedirect(r.URL.Query().Get("rd"))
	if !ok {
		refuseAuth(w, http.StatusBadRequest, "invalid_redirect", "rd must be an absolute http(s) URL on public_url ("+g.cfg.PublicURL+"), on the host of a route, or on an origin listed in allowed_redirect_origins")
		return
	}
	// The login's pending state is a cookie of the host that starts it,
	// and Keycloak returns to public_url's callback: a login started on
	// another host (an application behind the same proxy, with
	// cookie_domain) moves to public_url's host first, or the callback
	// would find no pending login.
	if pub, err := url.Parse(g.cfg.PublicURL); err == nil && !sameHost(r.Host, pub.Host) {
		http.Redirect(w, r, strings.TrimSuffix(g.cfg.PublicURL, "/")+DefaultPrefix+"/start?rd="+url.QueryEscape(u.String()), http.StatusFound)
		return
	}
	var extra map[string]string
	if rt != nil && rt.cfg.ACR != "" {
		// The route behind rd needs a stronger login: ask for it now.
		extra = map[string]string{"acr_values": rt.cfg.ACR}
	}
	g.login.StartLogin(w, r, u.String(), extra)
}

// sameHost compares the host names of two Host values in canonical form
// (case, trailing dot). Ports do not count: cookies ignore them, and a
// proxy may pass the host without its port (nginx's $host).
func sameHost(a, b string) bool {
	ah, _, err1 := canonical.Host(a)
	bh, _, err2 := canonical.Host(b)
	return err1 == nil && err2 == nil && ah == bh
}

// checkRedirect accepts rd when it is an absolute http(s) URL, without
// user information, backslashes, control characters or percent-encoding
// in the host, whose origin is public_url's, one of
// allowed_redirect_origins, or a route's host (allowedRouteRedirect). It
// returns the URL with its host in canonical form, and the route it
// falls on, if any.
func (g *Gateway) checkRedirect(rd string) (*url.URL, *route, bool) {
	if rd == "" || len(rd) > 2048 {
		return nil, nil, false
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c <= 0x20 || c == 0x7f || c == '\\' {
			return nil, nil, false
		}
	}
	lower := strings.ToLower(rd)
	if !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "http://") {
		return nil, nil, false
	}
	u, err := url.Parse(rd)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" || strings.ContainsAny(u.Host, "%@") {
		return nil, nil, false
	}
	h, p, err := canonical.Host(u.Host)
	if err != nil || h == "" {
		return nil, nil, false
	}
	u.Host = canonical.Target{Host: h, Port: p}.HostPort()
	origin := u.Scheme + "://" + u.Host
	allowed := origin == strings.ToLower(g.cfg.PublicURL)
	for _, o := range g.cfg.AllowedRedirectOrigins {
		allowed = allowed || origin == strings.ToLower(strings.TrimSuffix(o, "/"))
	}
	allowed = allowed || g.allowedRouteRedirect(u)
	if !allowed {
		return nil, nil, false
	}
	var rt *route
	if path, cleaned, err := canonical.Path(u.EscapedPath()); err == nil && !cleaned {
		rt = g.match(h, path)
	}
	return u, rt, true
}

// allowedRouteRedirect reports whether u is on the host of a route that
// names one (exactly, or under its *.domain), with public_url's scheme or
// https, on any port. Routes without a host add nothing: they match every
// host. Without forward_auth it allows nothing.
func (g *Gateway) allowedRouteRedirect(u *url.URL) bool {
	if !g.cfg.ForwardAuth {
		return false
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && strings.HasPrefix(g.cfg.PublicURL, "http://")) {
		return false
	}
	h, _, err := canonical.Host(u.Host)
	if err != nil || h == "" {
		return false
	}
	for _, rt := range g.routes {
		switch {
		case rt.cfg.Host == "":
		case rt.wildHost != "":
			if strings.HasSuffix(h, rt.wildHost) && len(h) > len(rt.wildHost) {
				return true
			}
		case h == rt.cfg.Host:
			return true
		}
	}
	return false
}
