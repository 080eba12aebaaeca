package keycloaktest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// pendingLogout is a logout waiting for the user's confirmation.
type pendingLogout struct {
	redirect, state string
	created         time.Time
}

const (
	msgLogoutClientOrHint = "Either the parameter client_id or the parameter id_token_hint is required when post_logout_redirect_uri is used."
	msgLogoutFailed       = "Logout failed"
)

// handleLogout serves the end-session endpoint (protocol doc 5.5, OIDC
// RP-Initiated Logout 1.0), and the legacy form POST of client credentials
// and a refresh token, answered 204.
func handleLogout(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	e := r.newEnv(s, req)
	params, ok := readParams(w, req)
	if !ok {
		r.write(w, errorOutcome(http.StatusBadRequest, msgInvalidRequest))
		return
	}
	if req.Method == http.MethodPost && req.PostForm.Has("refresh_token") {
		legacyLogout(s, r, w, req)
		return
	}
	var hint claimSet
	if raw := params.Get("id_token_hint"); raw != "" {
		// Signature and issuer are checked; expiry is not (an expired ID
		// token is a fine hint).
		c, hmacSigned, err := r.verifySigned(raw)
		if err != nil || hmacSigned || c.str("typ") != typID || c.str("iss") != e.issuer {
			r.write(w, errorOutcome(http.StatusBadRequest, msgInvalidParameter("id_token_hint")))
			return
		}
		hint = c
	}
	e.sso = r.ssoSession(e)
	r.mu.Lock()
	o := r.logoutLocked(e, params, hint)
	r.mu.Unlock()
	r.write(w, o)
}

func (r *Realm) logoutLocked(e env, params url.Values, hint claimSet) outcome {
	if params.Has("redirect_uri") {
		// Removed in Keycloak 26 in favour of post_logout_redirect_uri.
		return errorOutcome(http.StatusBadRequest, msgInvalidParameter("redirect_uri"))
	}
	redirect := params.Get("post_logout_redirect_uri")
	clientID := params.Get("client_id")
	if redirect != "" && hint == nil && clientID == "" {
		return errorOutcome(http.StatusBadRequest, msgLogoutClientOrHint)
	}
	if hint != nil {
		azp := hint.str("azp")
		if clientID != "" && clientID != azp {
			return errorOutcome(http.StatusBadRequest, msgInvalidParameter("client_id"))
		}
		clientID = azp
	}
	var c *client
	if clientID != "" {
		c = r.clients[clientID]
		if c == nil {
			return errorOutcome(http.StatusBadRequest, msgClientNotFound)
		}
		if c.cfg.Disabled {
			return errorOutcome(http.StatusBadRequest, msgClientDisabled)
		}
	}
	if redirect != "" && !validPostLogoutRedirect(c.cfg, redirect) {
		return errorOutcome(http.StatusBadRequest, msgInvalidRedirectURI)
	}
	state := params.Get("state")
	now := r.now()
	sess := e.sso
	if sess != nil && !r.sessionLiveLocked(sess, now) {
		sess = nil
	}
	switch {
	case hint != nil && sess != nil && sess.id == hint.str("sid"):
		return r.loggedOutLocked(e, sess, redirect, state)
	case hint != nil && sess == nil:
		// No SSO cookie here (blocked, or another browser): the holder of
		// the ID token ends the session it names.
		hs := r.sessions[hint.str("sid")]
		if hs != nil && hs.userID != hint.str("sub") {
			hs = nil
		}
		return r.loggedOutLocked(e, hs, redirect, state)
	case hint == nil && sess == nil && c != nil && redirect != "":
		return outcome{location: logoutTarget(redirect, state)}
	}
	// No hint, or a hint for another session than this browser's: ask.
	r.pruneBrowserLocked(now, false)
	code := randomString(32)
	r.logoutCodes[code] = &pendingLogout{redirect: redirect, state: state, created: now}
	return outcome{page: &page{Kind: "logout-confirm", Title: "Logging out", Realm: r.name,
		Action: e.realmURL + "/protocol/openid-connect/logout/logout-confirm", SessionCode: code}}
}

// handleLogoutConfirm serves the confirmation form's POST.
func handleLogoutConfirm(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	e := r.newEnv(s, req)
	form, ok := readParams(w, req)
	if !ok {
		r.write(w, errorOutcome(http.StatusBadRequest, msgInvalidRequest))
		return
	}
	e.sso = r.ssoSession(e)
	r.mu.Lock()
	p := r.logoutCodes[form.Get("session_code")]
	var o outcome
	if p == nil || r.now().Sub(p.created) > authSessionLifespan {
		o = errorOutcome(http.StatusBadRequest, msgLogoutFailed)
	} else {
		delete(r.logoutCodes, form.Get("session_code"))
		sess := e.sso
		if sess != nil && !r.sessionLiveLocked(sess, r.now()) {
			sess = nil
		}
		o = r.loggedOutLocked(e, sess, p.redirect, p.state)
	}
	r.mu.Unlock()
	r.write(w, o)
}

// loggedOutLocked ends the session (if any), clears the SSO cookies and
// sends the browser to the post-logout redirect or the "logged out" page.
func (r *Realm) loggedOutLocked(e env, sess *userSession, redirect, state string) outcome {
	var o outcome
	if sess != nil && !sess.ended {
		o.jobs = r.endSessionLocked(sess)
	}
	o.cookies = r.logoutCookies(e)
	if redirect != "" {
		o.location = logoutTarget(redirect, state)
		return o
	}
	o.page = &page{Kind: "info", Title: msgLoggedOut, Realm: r.name, ActionName: msgLoggedOut}
	return o
}

func logoutTarget(redirect, state string) string {
	if state == "" {
		return redirect
	}
	return appendQuery(redirect, url.Values{"state": {state}})
}

// validPostLogoutRedirect checks a post_logout_redirect_uri against the
// client's valid post-logout redirect URIs: "+" (or none configured) stands
// for its redirect URIs, "-" for none; matching is as for redirect_uri.
func validPostLogoutRedirect(c ClientConfig, redirect string) bool {
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme == "" || u.User != nil || u.Fragment != "" || strings.ContainsFunc(redirect, isControl) ||
		strings.Contains(u.Path, "/../") {
		return false
	}
	list := c.PostLogoutRedirectURIs
	if slices.Contains(list, "-") {
		return false
	}
	if len(list) == 0 || slices.Contains(list, "+") {
		list = append(slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == "+" }), c.RedirectURIs...)
	}
	return matchesRedirect(list, redirect)
}

// legacyLogout is the non-standard POST of client credentials and a
// refresh token, which ends the token's session and answers 204.
func legacyLogout(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	noStore(w)
	cl, aerr := r.authenticateClient(req)
	if aerr != nil {
		aerr.write(w)
		return
	}
	claims, hmacSigned, err := r.verifySigned(req.PostForm.Get("refresh_token"))
	typ := claims.str("typ")
	if err != nil || !hmacSigned || (typ != typRefresh && typ != typOffline) || claims.str("iss") != s.issuerFor(req, r.name) {
		invalidGrant("Invalid refresh token").write(w)
		return
	}
	if claims.str("azp") != cl.cfg.ClientID {
		invalidGrant("Invalid refresh token. Token client and authorized client don't match").write(w)
		return
	}
	r.mu.Lock()
	var jobs []logoutJob
	if sess := r.sessions[claims.str("sid")]; sess != nil && sess.userID == claims.str("sub") && !sess.ended {
		jobs = r.endSessionLocked(sess)
	}
	r.mu.Unlock()
	r.deliverLogouts(jobs)
	w.WriteHeader(http.StatusNoContent)
}
