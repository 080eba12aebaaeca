package login

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/cloakroom/cloakroom"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}a,button{font-size:1rem}</style>
</head><body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Form}}<form method="post" action="{{.Form}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}">{{if .ReturnTo}}<input type="hidden" name="return_to" value="{{.ReturnTo}}">{{end}}<button type="submit" id="logout">Log out</button></form>{{end}}
{{if .Link}}<p><a href="{{.Link}}">{{.LinkText}}</a></p>{{end}}
</body></html>
`))

type page struct {
	Title, Message string
	Link, LinkText string
	Form, CSRF     string
	ReturnTo       string
}

// wantsJSON reports whether the client is a script rather than a browser
// navigation: it asks for JSON, says it is XHR, or is not a GET/HEAD.
func wantsJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
		return true
	}
	accept := r.Header.Get("Accept")
	if strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html") {
		return true
	}
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func renderPage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

// errorPage answers a browser with a short HTML page (a script with JSON);
// retry, if set, links to a fresh login.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg, retry string) {
	if wantsJSON(r) {
		writeJSON(w, status, map[string]string{"code": codeFor(status), "detail": msg})
		return
	}
	p := page{Title: title, Message: msg}
	if retry != "" {
		p.Link, p.LinkText = retry, "Log in again"
	}
	renderPage(w, status, p)
}

func codeFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "not_authenticated"
	case http.StatusForbidden:
		return "permission_denied"
	case http.StatusServiceUnavailable:
		return "idp_unavailable"
	case http.StatusBadRequest:
		return "login_failed"
	}
	return "internal_error"
}

// unavailable answers 503 when Keycloak cannot be reached. The session, if
// any, is kept: the user is still logged in once Keycloak is back.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.Warn("login: identity provider unavailable", "error", err)
	w.Header().Set("Retry-After", "5")
	h.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "The identity provider cannot be reached. Please try again in a moment.", "")
}

// storeFailure answers 503 when the session store fails: never an anonymous pass.
// Scripts get the code session_store_unavailable (not idp_unavailable: it
// is not Keycloak that failed).
func (h *Handler) storeFailure(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.Warn("login: session store failed", "error", err)
	w.Header().Set("Retry-After", "5")
	const msg = "Sessions cannot be read or written right now. Please try again in a moment."
	if wantsJSON(r) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"code": "session_store_unavailable", "detail": msg})
		return
	}
	h.errorPage(w, r, http.StatusServiceUnavailable, "Temporarily unavailable", msg, "")
}

func isUnavailable(err error) bool { return errors.Is(err, cloakroom.ErrUnavailable) }
