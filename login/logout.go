package login

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/session"
)

// handleLogout ends the session: GET shows a confirmation form (a link must
// not be able to log users out), POST with the session's CSRF token ends
// the local session and sends the browser to Keycloak's end-session
// endpoint, so the Keycloak session ends too.
func (h *Handler) handleLogout(w http.ResponseWriter, r *http.Request) {
	s, err := h.sessions.Get(r)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		h.storeFailure(w, r, err)
		return
	}
	returnTo, ok := h.safeRedirect(r.FormValue("return_to"))
	explicit := ok && r.FormValue("return_to") != ""
	if !explicit {
		returnTo = h.postLogoutTarget()
	}
	// With Config.SignedOutPage, a logout without return_to ends on the
	// signed-out page (served by logged-out), not at returnTo.
	showPage := h.cfg.SignedOutPage && !explicit
	after := returnTo
	if showPage {
		after = h.prefix + "/logged-out"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if s == nil {
			if showPage {
				h.signedOut(w, returnTo)
				return
			}
			http.Redirect(w, r, returnTo, http.StatusFound)
			return
		}
		confirmReturn := ""
		if explicit {
			confirmReturn = returnTo
		}
		renderPage(w, http.StatusOK, h.logoutConfirmation(r, usernameOf(r, s), s.CSRFToken, confirmReturn))
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s == nil {
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	if !h.sameOrigin(r) || !validCSRF(r, s.CSRFToken) {
		h.logger.Debug("login: logout refused: missing or wrong CSRF token, or cross-origin request")
		h.logoutRefused(w, r)
		return
	}
	if err := h.sessions.Destroy(r.Context(), w, s); err != nil {
		h.storeFailure(w, r, err)
		return
	}
	if h.cfg.AfterLogout != nil {
		h.cfg.AfterLogout(r.Context(), h.view(s, nil, nil))
	}
	meta, err := h.realm.Discover(r.Context())
	if err != nil || meta.EndSessionEndpoint == "" {
		// The local session is gone either way; without Keycloak's
		// endpoint its session cannot be ended from here.
		if err != nil {
			h.logger.Warn("login: local session ended, but the Keycloak session could not be (discovery failed)", "error", err)
		}
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	state := session.NewID()
	if showPage {
		h.setLogoutCookie(w, state, "") // "": show the signed-out page
	} else {
		h.setLogoutCookie(w, state, returnTo)
	}
	u, err := url.Parse(meta.EndSessionEndpoint)
	if err != nil {
		http.Redirect(w, r, after, http.StatusSeeOther)
		return
	}
	q := u.Query()
	if s.IDToken != "" {
		q.Set("id_token_hint", s.IDToken)
	}
	q.Set("client_id", h.cfg.ClientID)
	q.Set("post_logout_redirect_uri", h.base.String()+h.prefix+"/logged-out")
	q.Set("state", state)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (h *Handler) postLogoutTarget() string {
	if h.cfg.PostLogoutRedirect != "" {
		return h.cfg.PostLogoutRedirect
	}
	return h.base.Path + "/"
}

// sameOrigin refuses requests whose Origin (or, failing that, Referer)
// names another site; requests with neither are judged by the CSRF token.
func (h *Handler) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		if ref := r.Header.Get("Referer"); ref != "" {
			if u, err := url.Parse(ref); err == nil && u.Host != "" {
				origin = u.Scheme + "://" + u.Host
			}
		}
	}
	if origin == "" {
		return true
	}
	return origin == h.base.Scheme+"://"+h.base.Host
}

func validCSRF(r *http.Request, want string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (h *Handler) logoutCookieName() string {
	if h.secure {
		return "__Secure-cloakroom-logout"
	}
	return "cloakroom-logout"
}

// setLogoutCookie remembers the logout's state and destination, sealed, for
// the return from Keycloak.
func (h *Handler) setLogoutCookie(w http.ResponseWriter, state, returnTo string) {
	sealed := h.sessions.Keyring().Seal([]byte(returnTo), []byte("logout:"+state))
	http.SetCookie(w, &http.Cookie{
		Name: h.logoutCookieName(), Value: base64.RawURLEncoding.EncodeToString(sealed),
		Path: h.prefix + "/", MaxAge: int(pendingLifetime / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// handleLoggedOut is the post_logout_redirect_uri: it checks the state
// Keycloak echoes and sends the browser on to where logout was asked to
// lead. A missing or wrong state leads to the default page instead: with
// Config.SignedOutPage, the signed-out page (unless the browser has a
// session, when there is nothing to tell).
func (h *Handler) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	target := h.postLogoutTarget()
	showPage := h.cfg.SignedOutPage
	state := r.URL.Query().Get("state")
	if c, err := r.Cookie(h.logoutCookieName()); err == nil && state != "" {
		if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			if dest, err := h.sessions.Keyring().Open(raw, []byte("logout:"+state)); err == nil && len(dest) > 0 {
				if safe, ok := h.safeRedirect(string(dest)); ok {
					target, showPage = safe, false
				}
			}
		}
	}
	http.SetCookie(w, &http.Cookie{Name: h.logoutCookieName(), Value: "", Path: h.prefix + "/", MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	if showPage {
		if s, err := h.sessions.Get(r); err != nil || s == nil {
			h.signedOut(w, target)
			return
		}
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// maxLogoutBody bounds a back-channel logout request.
const maxLogoutBody = 64 << 10

// handleBackchannelLogout implements OIDC Back-Channel Logout 1.0: Keycloak
// POSTs a logout token; every session of its sid (or, without sid, of its
// sub) ends, in the shared store, so on every instance.
func (h *Handler) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, desc string) {
		h.logger.Debug("login: back-channel logout refused", "reason", desc)
		writeJSON(w, status, map[string]string{"error": "invalid_request", "error_description": desc})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(http.StatusMethodNotAllowed, "back-channel logout accepts only POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		fail(http.StatusBadRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "the body cannot be parsed")
		return
	}
	tokens := r.PostForm["logout_token"]
	if len(tokens) != 1 || tokens[0] == "" {
		fail(http.StatusBadRequest, "the body must carry exactly one logout_token")
		return
	}
	claims, err := h.ltVerifier.Verify(r.Context(), tokens[0])
	if err != nil {
		if errors.Is(err, cloakroom.ErrUnavailable) {
			h.logger.Warn("login: back-channel logout token cannot be verified: identity provider unavailable", "error", err)
			fail(http.StatusServiceUnavailable, "the logout token cannot be verified now")
			return
		}
		fail(http.StatusBadRequest, "invalid logout token: "+err.Error())
		return
	}
	first, jtiErr := h.rememberJTI(r, claims)
	if jtiErr == nil && !first {
		fail(http.StatusBadRequest, "logout token replayed (jti already seen)")
		return
	}
	// With the store unreachable the jti cannot be marked; the logout goes
	// on if the sessions' deletion can be journaled (a replay of a logout
	// token can only end the same sessions again).
	keys, err := h.endSessions(r, claims.SessionID(), claims.Subject())
	switch {
	case errors.Is(err, session.ErrLogoutDeferred):
		h.logger.Warn("login: back-channel logout accepted while the session store is unreachable: recorded in the logout journal, applied when the store returns", "sub", claims.Subject(), "sid", claims.SessionID())
	case err != nil:
		h.logger.Warn("login: session store failed during back-channel logout", "error", errors.Join(jtiErr, err))
		fail(http.StatusServiceUnavailable, "the session store is unavailable")
		return
	case jtiErr != nil:
		h.logger.Warn("login: back-channel logout done, but its jti could not be recorded against replays", "error", jtiErr)
	}
	h.logger.Debug("login: back-channel logout", "sub", claims.Subject(), "sid", claims.SessionID(), "sessions", len(keys))
	if h.cfg.OnBackchannelLogout != nil {
		h.cfg.OnBackchannelLogout(r.Context(), &BackchannelLogoutEvent{Subject: claims.Subject(), SID: claims.SessionID(), Keys: keys})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// rememberJTI marks the logout token's jti in the shared store until the
// token expires and reports whether this was its first use: a second use
// is a replay, on any instance.
func (h *Handler) rememberJTI(r *http.Request, c *cloakroom.Claims) (first bool, err error) {
	sum := sha256.Sum256([]byte("jti\x00" + c.Issuer() + "\x00" + c.ID()))
	exp := c.Expiry()
	if exp.IsZero() {
		exp = c.IssuedAt().Add(cloakroom.DefaultLogoutTokenMaxAge)
	}
	// Keep it at least a few minutes: the token's lifetime plus leeway.
	if floor := h.now().Add(5 * time.Minute); exp.Before(floor) {
		exp = floor
	}
	return h.sessions.MarkOnce(r.Context(), "logout-jti:"+base64.RawURLEncoding.EncodeToString(sum[:]), exp)
}

// endSessions deletes the sessions of a Keycloak session (sid), or all of a
// user's when there is no sid.
func (h *Handler) endSessions(r *http.Request, sid, sub string) ([]string, error) {
	if sid != "" {
		return h.sessions.DeleteBySID(r.Context(), sid)
	}
	return h.sessions.DeleteBySubject(r.Context(), sub)
}

// handleFrontchannelLogout implements OIDC Front-Channel Logout: Keycloak's
// logout page loads this URL in an iframe with iss and sid.
func (h *Handler) handleFrontchannelLogout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("iss") != h.realm.Issuer() || q.Get("sid") == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	keys, err := h.sessions.DeleteBySID(r.Context(), q.Get("sid"))
	if err != nil && !errors.Is(err, session.ErrLogoutDeferred) {
		h.logger.Warn("login: session store failed during front-channel logout", "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if h.cfg.OnBackchannelLogout != nil {
		h.cfg.OnBackchannelLogout(r.Context(), &BackchannelLogoutEvent{SID: q.Get("sid"), Keys: keys})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte("<!doctype html><title>Logged out</title>"))
}
