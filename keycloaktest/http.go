package keycloaktest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxFormBytes bounds request bodies; Keycloak's own limit is similar.
const maxFormBytes = 1 << 20

// realmHandler serves one endpoint of a realm.
type realmHandler func(s *Server, r *Realm, w http.ResponseWriter, req *http.Request)

type route struct {
	methods []string
	handle  realmHandler
}

var getPost = []string{http.MethodGet, http.MethodPost}

// routes maps the path below /realms/{realm}/ to its endpoint.
var routes = map[string]route{
	"":                                 {[]string{http.MethodGet}, handleRealmInfo},
	".well-known/openid-configuration": {[]string{http.MethodGet}, handleDiscovery},
	"protocol/openid-connect/certs":    {[]string{http.MethodGet}, handleCerts},
	"protocol/openid-connect/token":    {[]string{http.MethodPost}, handleToken},
	"protocol/openid-connect/token/introspect": {[]string{http.MethodPost}, handleIntrospect},
	"protocol/openid-connect/userinfo":         {getPost, handleUserinfo},
	"protocol/openid-connect/revoke":           {[]string{http.MethodPost}, handleRevoke},

	// Browser side.
	"protocol/openid-connect/auth":                          {getPost, handleAuth},
	"protocol/openid-connect/registrations":                 {getPost, handleRegistrations},
	"protocol/openid-connect/logout":                        {getPost, handleLogout},
	"protocol/openid-connect/logout/logout-confirm":         {[]string{http.MethodPost}, handleLogoutConfirm},
	"protocol/openid-connect/login-status-iframe.html":      {[]string{http.MethodGet}, staticHTML(loginStatusIframeHTML)},
	"protocol/openid-connect/login-status-iframe.html/init": {[]string{http.MethodGet}, handleIframeInit},
	"protocol/openid-connect/3p-cookies/step1.html":         {[]string{http.MethodGet}, staticHTML(step1HTML)},
	"protocol/openid-connect/3p-cookies/step2.html":         {[]string{http.MethodGet}, staticHTML(step2HTML)},
	"login-actions/authenticate":                            {getPost, handleLoginActions("authenticate")},
	"login-actions/required-action":                         {getPost, handleLoginActions("required-action")},
	"login-actions/registration":                            {getPost, handleLoginActions("registration")},
	"login-actions/action-token":                            {[]string{http.MethodGet}, handleActionToken},

	// Account REST API (what keycloak-js loadUserProfile calls).
	"account": {[]string{http.MethodGet}, handleAccount},
}

// preflights are the endpoints that take cross-origin calls from browser
// clients, with the methods their CORS pre-flight answer allows (see
// cors.go).
var preflights = map[string]string{
	".well-known/openid-configuration": corsGetMethods,
	"protocol/openid-connect/certs":    corsGetMethods,
	"protocol/openid-connect/token":    corsPostMethods,
	"protocol/openid-connect/revoke":   corsPostMethods,
	"protocol/openid-connect/userinfo": corsDefaultMethods,
	"account":                          corsAccountMethods,
}

const certsPath = "protocol/openid-connect/certs"

// splitRealmPath splits {base}/realms/{realm}/{rest}.
func (s *Server) splitRealmPath(path string) (realm, rest string, ok bool) {
	if s.basePath != "" {
		p, found := strings.CutPrefix(path, s.basePath)
		if !found || !strings.HasPrefix(p, "/") {
			return "", "", false
		}
		path = p
	}
	p, found := strings.CutPrefix(path, "/realms/")
	if !found {
		return "", "", false
	}
	realm, rest, _ = strings.Cut(p, "/")
	return realm, rest, realm != ""
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection for hijacking.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware counts JWKS requests, applies faults and logs requests.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			// Only method, path and status: query strings and bodies can
			// carry tokens and secrets.
			s.logger.Debug("keycloaktest request", "method", req.Method, "path", req.URL.Path,
				"status", sw.status, "duration", time.Since(start))
		}()
		if name, rest, ok := s.splitRealmPath(req.URL.Path); ok && rest == certsPath {
			if r := s.Realm(name); r != nil {
				r.jwksRequests.Add(1)
			}
		}
		if f := s.fault.Load(); f != nil && f.matches(req.URL.Path) && (f.Times <= 0 || s.faultHits.Add(1) <= int64(f.Times)) {
			if f.Delay > 0 {
				t := time.NewTimer(f.Delay)
				select {
				case <-t.C:
				case <-req.Context().Done():
					t.Stop()
					return
				}
			}
			if f.Refuse {
				abortConnection(sw)
				return
			}
			if f.Status != 0 {
				writeFaultStatus(sw, f.Status)
				return
			}
		}
		next.ServeHTTP(sw, req)
	})
}

// abortConnection drops the connection without a response. Where the
// connection cannot be taken over (HTTP/2, recorders) it answers 503.
func abortConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeFaultStatus(w, http.StatusServiceUnavailable)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // reset rather than a clean close
	}
	_ = conn.Close()
}

// writeFaultStatus answers with Keycloak's error shapes: its generic server
// error for 500, the JAX-RS "HTTP nnn Text" message otherwise.
func writeFaultStatus(w http.ResponseWriter, status int) {
	if status < 100 || status > 999 {
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		writeJSON(w, status, map[string]string{"error": "unknown_error",
			"error_description": "For more on this error consult the server log."})
		return
	}
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))})
}

// route dispatches {base}/realms/{realm}/... requests.
func (s *Server) route(w http.ResponseWriter, req *http.Request) {
	if name, rest, ok := s.splitAdminPath(req.URL.Path); ok {
		s.adminRoute(w, req, name, rest)
		return
	}
	name, rest, ok := s.splitRealmPath(req.URL.Path)
	if !ok {
		writeNotFound(w)
		return
	}
	r := s.Realm(name)
	if r == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm does not exist"})
		return
	}
	rt, ok := routes[rest]
	if !ok {
		writeNotFound(w)
		return
	}
	if req.Method == http.MethodOptions {
		w.Header().Set("Allow", strings.Join(rt.methods, ", ")+", OPTIONS")
		if methods, ok := preflights[rest]; ok {
			writePreflight(w, req, methods)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if !slices.Contains(rt.methods, req.Method) && !(req.Method == http.MethodHead && slices.Contains(rt.methods, http.MethodGet)) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", ")+", OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "HTTP 405 Method Not Allowed"})
		return
	}
	rt.handle(s, r, w, req)
}

// writeNotFound is Keycloak's answer for a path it has no resource for.
func writeNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "Unable to find matching target resource method"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"unknown_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeOAuthError writes {"error":..,"error_description":..}.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// noStore marks a response as not cacheable, as Keycloak does for tokens.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// parseForm reads a bounded form body; the error is an OAuth error.
func parseForm(w http.ResponseWriter, req *http.Request) bool {
	req.Body = http.MaxBytesReader(w, req.Body, maxFormBytes)
	if err := req.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Invalid form body")
		return false
	}
	return true
}

// disabled reports whether the realm is disabled.
func (r *Realm) disabled() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cfg.Disabled
}

// client returns the client with that client_id, or nil.
func (r *Realm) client(clientID string) *client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.clients[clientID]
}

// realmDisabled answers 403 for a disabled realm.
func realmDisabled(r *Realm, w http.ResponseWriter) bool {
	disabled := r.disabled()
	if disabled {
		writeOAuthError(w, http.StatusForbidden, "access_denied", "Realm not enabled")
	}
	return disabled
}
