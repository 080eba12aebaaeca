package login

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/session"
)

// Stylesheet is the CSS of the pages the Handler renders (access denied,
// logout confirmation, signed out, errors), for applications that want
// their own pages to match. It has no external resources. The Handler
// serves it inline, allowed by its hash in the pages'
// Content-Security-Policy (no 'unsafe-inline').
const Stylesheet = `body{margin:0;padding:3rem 1rem;background:#f4f5f7;color:#1d2330;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}` +
	`main{max-width:34rem;margin:0 auto;background:#fff;border:1px solid #d8dce3;border-radius:.5rem;padding:1.5rem 2rem}` +
	`h1{font-size:1.375rem;line-height:1.25;margin:0 0 .75rem}p{margin:.5rem 0}.note{color:#555e6d;font-size:.9375rem}a{color:#0b57d0}` +
	`.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}.actions form{margin:0}` +
	`.button,button{display:inline-block;font:inherit;line-height:1.25;padding:.5rem 1rem;border:1px solid #b8c0cc;border-radius:.375rem;background:#fff;color:#1d2330;text-decoration:none;cursor:pointer}` +
	`.button:hover,button:hover{background:#eef0f3}.primary,.primary:hover{background:#0b57d0;border-color:#0b57d0;color:#fff}` +
	`:focus-visible{outline:3px solid #f2a900;outline-offset:2px}`

// pageCSP allows the inline Stylesheet by its hash and nothing else but
// forms to this site (and the redirects a logout form follows to the
// identity provider).
var pageCSP = func() string {
	sum := sha256.Sum256([]byte(Stylesheet))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'self' https: http:; frame-ancestors 'none'"
}()

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>` + Stylesheet + `</style>
</head><body><main>
<h1>{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{- with .Note}}
<p class="note">{{.}}</p>{{end}}
{{- with .Actions}}
<div class="actions">
{{- range .}}
{{if .Form}}<form method="post" action="{{.Form}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}">{{with .ReturnTo}}<input type="hidden" name="return_to" value="{{.}}">{{end}}<button type="submit"{{with .ID}} id="{{.}}"{{end}}{{if .Primary}} class="primary"{{end}}>{{.Text}}</button></form>
{{- else}}<a href="{{.Href}}"{{with .ID}} id="{{.}}"{{end}} class="button{{if .Primary}} primary{{end}}">{{.Text}}</a>{{end}}
{{- end}}
</div>{{end}}
</main></body></html>
`))

// page is one of the Handler's pages: what happened (Title, Message, an
// optional quieter Note) and the next steps.
type page struct {
	Title, Message, Note string
	Actions              []action
}

// action is a next step: a link (Href), or a button (Form set) posting a
// form with the session's CSRF token and an optional return_to.
type action struct {
	ID, Text, Href       string
	Primary              bool
	Form, CSRF, ReturnTo string
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
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

// wantsPage reports whether to answer with a page rather than JSON: what
// wantsJSON leaves to browsers, and any browser navigation (a form post
// included: Sec-Fetch-Mode navigate).
func wantsPage(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
		return false
	}
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" || !wantsJSON(r)
}

// home is the application's home page.
func (h *Handler) home() string { return h.base.Path + "/" }

// withHome adds a link to the home page, unless the request is for it
// (it would lead back here); it is the main step, first, when no other is.
func (h *Handler) withHome(r *http.Request, actions []action) []action {
	if r.URL.Path == h.home() {
		return actions
	}
	if slices.ContainsFunc(actions, func(a action) bool { return a.Primary }) {
		return append(actions, action{ID: "home", Text: "Go to the home page", Href: h.home()})
	}
	return append([]action{{ID: "home", Text: "Go to the home page", Href: h.home(), Primary: true}}, actions...)
}

// errorPage answers a browser with a short HTML page (a script with JSON);
// retry, if set, links to a fresh login.
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg, retry string) {
	var actions []action
	if retry != "" {
		actions = append(actions, action{ID: "retry", Text: "Sign in again", Href: retry, Primary: true})
	}
	h.writeError(w, r, status, codeFor(status), page{Title: title, Message: msg, Actions: actions})
}

// writeError answers a script with JSON {"code", "detail": p.Message}, a
// browser with the page p and a link home.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, status int, code string, p page) {
	if !wantsPage(r) {
		writeJSON(w, status, map[string]string{"code": code, "detail": p.Message})
		return
	}
	p.Actions = h.withHome(r, p.Actions)
	renderPage(w, status, p)
}

// ErrorPage answers with one of the Handler's pages, in the style of its
// others: a browser gets an HTML page with title, message (plain text,
// escaped) and a link to the home page; a script (Accept:
// application/json, XHR, a request that is not a navigation) gets
// {"code": code, "detail": message}.
func (h *Handler) ErrorPage(w http.ResponseWriter, r *http.Request, status int, code, title, message string) {
	h.writeError(w, r, status, code, page{Title: title, Message: message})
}

// MisconfiguredPage answers 500 "Sign-in is misconfigured" (scripts:
// {"code":"login_misconfigured"}), for when the identity provider refuses
// this application itself (an unknown client, a wrong secret, an
// unregistered redirect URI): trying again will not help, the operator
// must fix the configuration.
func (h *Handler) MisconfiguredPage(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, http.StatusInternalServerError, "login_misconfigured", page{
		Title:   "Sign-in is misconfigured",
		Message: "You cannot sign in to this site at the moment: its sign-in settings do not match those of the sign-in service.",
		Note:    "This cannot be fixed from your browser. Please tell the site's administrator.",
	})
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
	h.writeError(w, r, http.StatusServiceUnavailable, "idp_unavailable", page{
		Title:   "Sign-in temporarily unavailable",
		Message: "The sign-in service cannot be reached right now. Please try again in a moment.",
		Actions: h.tryAgain(r),
	})
}

// storeFailure answers 503 when the session store fails: never an anonymous pass.
// Scripts get the code session_store_unavailable (not idp_unavailable: it
// is not Keycloak that failed).
func (h *Handler) storeFailure(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.Warn("login: session store failed", "error", err)
	w.Header().Set("Retry-After", "5")
	h.writeError(w, r, http.StatusServiceUnavailable, "session_store_unavailable", page{
		Title:   "Temporarily unavailable",
		Message: "This site cannot check who you are right now: its session storage is not answering. Please try again in a moment.",
		Actions: h.tryAgain(r),
	})
}

// tryAgain links to the page asked for (without credentials in its query),
// or, from the login routes (the callback's code is spent), to a new login.
func (h *Handler) tryAgain(r *http.Request) []action {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil
	}
	href := returnPath(r)
	raw := r.URL.Query().Get("return_to")
	ret, ok := h.safeRedirect(raw)
	switch {
	case strings.HasPrefix(r.URL.Path, h.prefix+"/"):
		if !ok || raw == "" {
			ret = ""
		}
		href = h.LoginURL(ret)
	case ok && raw != "" && (ret == r.URL.EscapedPath() || strings.HasPrefix(ret, r.URL.EscapedPath()+"?")):
		// StartLogin added the page asked for as return_to.
		href = ret
	}
	return []action{{ID: "retry", Text: "Try again", Href: href, Primary: true}}
}

func isUnavailable(err error) bool { return errors.Is(err, cloakroom.ErrUnavailable) }

// forbidden answers a signed-in user who lacks what the page requires:
// 403, with a way home and a way to sign in as someone else (sign out,
// then sign in and come back here). The words are cloakroom.Refusal's,
// as in bearer's and the gateway's 403 answers.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, s *Session, what string) {
	p := page{
		Title:   "Access denied",
		Message: cloakroom.Refusal("", what),
		Note:    "If you need access, ask the site's administrator.",
	}
	if wantsPage(r) {
		who := "You are signed in"
		if s.Username != "" {
			who += " as " + s.Username
		}
		p.Message = cloakroom.Refusal(who, what)
		p.Actions = []action{{
			ID: "switch-user", Text: "Sign in as someone else",
			Form: h.prefix + "/logout", CSRF: s.CSRFToken, ReturnTo: h.LoginURL(returnPath(r)),
		}}
	}
	h.writeError(w, r, http.StatusForbidden, "permission_denied", p)
}

// logoutConfirmation is the page GET {prefix}/logout shows: a link must
// not be able to sign anyone out, so signing out takes this button (a
// form with the CSRF token). Cancel goes back to the page the user came
// from (a page of this site), or home.
func (h *Handler) logoutConfirmation(r *http.Request, username, csrf, returnTo string) page {
	msg := "Do you want to sign out?"
	if username != "" {
		msg = "You are signed in as " + username + ". Do you want to sign out?"
	}
	return page{
		Title:   "Sign out",
		Message: msg,
		Note:    "This also ends your single sign-on session, so you will need your password to sign in again.",
		Actions: []action{
			{ID: "logout", Text: "Sign out", Primary: true, Form: h.prefix + "/logout", CSRF: csrf, ReturnTo: returnTo},
			{ID: "cancel", Text: "Cancel", Href: h.cancelTarget(r)},
		},
	}
}

// usernameOf returns the signed-in user's preferred_username, for display.
func usernameOf(r *http.Request, s *session.State) string {
	if v, ok := FromContext(r.Context()); ok && v.Subject == s.Subject {
		return v.Username
	}
	if c, err := cloakroom.ParseClaims(s.IDClaims); err == nil {
		return c.Username()
	}
	return ""
}

// cancelTarget is where Cancel on the logout confirmation leads: the
// Referer when it is a page of this site outside the prefix, else home.
func (h *Handler) cancelTarget(r *http.Request) string {
	ref, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || ref.Scheme+"://"+ref.Host != h.base.Scheme+"://"+h.base.Host {
		return h.home()
	}
	path := ref.EscapedPath()
	if path == h.prefix || strings.HasPrefix(path, h.prefix+"/") {
		return h.home()
	}
	ref.Scheme, ref.Host, ref.Fragment, ref.RawFragment = "", "", "", ""
	if target, ok := h.safeRedirect(ref.String()); ok && strings.HasPrefix(target, "/") {
		return target
	}
	return h.home()
}

// signedOut is the page after a logout: what happened, and a way back in.
func (h *Handler) signedOut(w http.ResponseWriter, target string) {
	renderPage(w, http.StatusOK, page{
		Title:   "Signed out",
		Message: "You have been signed out.",
		Actions: []action{{ID: "login", Text: "Sign in again", Href: h.LoginURL(target), Primary: true}},
	})
}

// stepUpFailed answers 403 when a step-up login did not reach the level a
// page requires.
func (h *Handler) stepUpFailed(w http.ResponseWriter, r *http.Request, level, have string) {
	h.writeError(w, r, http.StatusForbidden, "permission_denied", page{
		Title: "Stronger login required",
		Message: "This page requires a stronger sign-in (authentication level " + strconv.Quote(level) +
			") than the one you completed (level " + strconv.Quote(have) + ").",
		Note:    "Set up the required second factor in your account, then try again.",
		Actions: []action{{ID: "retry", Text: "Try again", Href: h.LoginURL(returnPath(r)), Primary: true}},
	})
}

// logoutRefused answers a logout POST without the session's CSRF token or
// from another site: the user is still signed in, and the confirmation
// page is the way to sign out.
func (h *Handler) logoutRefused(w http.ResponseWriter, r *http.Request) {
	h.writeError(w, r, http.StatusForbidden, "permission_denied", page{
		Title:   "Logout refused",
		Message: "You are still signed in: this sign-out request did not come from this site's sign-out button.",
		Actions: []action{{ID: "logout-confirm", Text: "Sign out", Href: h.prefix + "/logout", Primary: true}},
	})
}
