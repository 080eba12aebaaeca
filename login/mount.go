package login

import (
	"html"
	"html/template"
	"net/http"
	"net/url"
)

// Mount registers the Handler on mux for every path under its prefix
// (Prefix()+"/": login, callback, logout, logged-out, back-channel logout,
// register), so the pattern always agrees with Config.Prefix:
//
//	mux := http.NewServeMux()
//	auth.Mount(mux)
//
// With another router, send every path under Prefix()+"/" to the Handler
// with the path unchanged (no http.StripPrefix): chi
// r.Mount(auth.Prefix(), auth); gorilla/mux
// r.PathPrefix(auth.Prefix() + "/").Handler(auth).
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.Handle(h.prefix+"/", h)
}

// LogoutURL returns the path of the logout endpoint, ending at returnTo
// (a local path or an allowed origin; "" for Config.PostLogoutRedirect).
// POST to it with the session's CSRF token (Session.LogoutFormFields, or
// the X-CSRF-Token header) to sign out; a link to it (GET) shows a
// confirmation page with a Sign out button, since a link alone must not be
// able to sign anyone out.
//
//	<form method="post" action="{{.LogoutURL}}">{{.Session.LogoutFormFields}}<button>Sign out</button></form>
func (h *Handler) LogoutURL(returnTo string) string {
	if returnTo == "" {
		return h.prefix + "/logout"
	}
	return h.prefix + "/logout?return_to=" + url.QueryEscape(returnTo)
}

// LogoutFormFields returns the hidden form field carrying the session's
// CSRF token, for a logout form posting to Handler.LogoutURL. It is empty
// for a nil Session (nobody signed in), so templates may call it
// unconditionally.
func (s *Session) LogoutFormFields() template.HTML {
	if s == nil || s.CSRFToken == "" {
		return ""
	}
	return template.HTML(`<input type="hidden" name="csrf_token" value="` + html.EscapeString(s.CSRFToken) + `">`)
}

// RegisterURL returns the path that opens Keycloak's registration page
// (prompt=create) and comes back to returnTo, signed in.
func (h *Handler) RegisterURL(returnTo string) string {
	if returnTo == "" {
		return h.prefix + "/register"
	}
	return h.prefix + "/register?return_to=" + url.QueryEscape(returnTo)
}
