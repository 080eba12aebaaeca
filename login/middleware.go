package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/sessionmemo"
	"github.com/cloakroom/cloakroom/session"
	"golang.org/x/oauth2"
)

// errSessionEnded means the session is over (refresh token refused or
// expired): the user must log in again.
var errSessionEnded = errors.New("login: session ended")

// errRefreshRefused means the provider answered a refresh with tokens that
// fail verification (bad signature, wrong issuer, token_type, ...): not an
// outage, so the session cannot go on with them.
var errRefreshRefused = errors.New("login: refreshed tokens refused")

// Middleware loads the request's session, if any, refreshing its access
// token when it is about to expire, and puts it in the context. It never
// forces a login; RequireLogin does. A store or Keycloak failure that
// leaves the session unusable answers 503, never an anonymous pass.
func (h *Handler) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		sess, err := h.load(w, r)
		if err != nil {
			h.loadFailure(w, r, err)
			return
		}
		if sess != nil {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, sess))
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) loadFailure(w http.ResponseWriter, r *http.Request, err error) {
	if isUnavailable(err) {
		h.providerFailure(w, r, err)
		return
	}
	h.storeFailure(w, r, err)
}

// load returns the request's session (nil if none), refreshed if needed.
func (h *Handler) load(w http.ResponseWriter, r *http.Request) (*Session, error) {
	s, err := h.sessions.Get(r)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h.now().Add(h.refreshBefore()).After(s.AccessExpiry) {
		fresh, err := h.refreshes.do(s.Key(), func() (*session.State, error) { return h.refresh(r.Context(), s) })
		switch {
		case errors.Is(err, errSessionEnded):
			h.sessions.ClearCookie(w)
			return nil, nil
		case errors.Is(err, errRefreshRefused):
			// The provider's answer failed verification: not an outage.
			// Before, the session went on with the old access token
			// (logged as a failed refresh, retried on every request) and,
			// once that expired, every request got a 503 blaming the
			// session store. The session ends instead; the user logs in
			// again, where the same failure shows as a login error.
			h.logger.Warn("login: the provider's refreshed tokens did not pass verification; ending the session", "sub", s.Subject, "reason", err.Error())
			_ = h.sessions.Destroy(r.Context(), w, s)
			return nil, nil
		case err != nil && h.now().Before(s.AccessExpiry):
			// Keycloak is unreachable but the access token still works:
			// carry on, the next request tries again.
			if errors.Is(err, cloakroom.ErrMisconfigured) {
				h.reportMisconfigured(r.Context(), err)
			} else {
				h.logger.Warn("login: token refresh failed; using the current access token until it expires", "sub", s.Subject, "error", err)
			}
		case err != nil:
			return nil, err
		default:
			// Callers sharing one refresh each get their own copy.
			own := *fresh
			own.ID = s.ID
			s = &own
		}
	}
	if err := h.sessions.Touch(r.Context(), s); err != nil {
		h.logger.Warn("login: could not extend the session", "error", err)
	}
	ic, ac, err := h.claims(r.Context(), s)
	if err != nil {
		if isUnavailable(err) {
			return nil, err
		}
		// The stored token no longer verifies (e.g. its key was removed):
		// the session cannot be trusted.
		h.logger.Debug("login: stored access token refused; ending the session", "sub", s.Subject, "reason", err.Error())
		_ = h.sessions.Destroy(r.Context(), w, s)
		return nil, nil
	}
	return h.view(s, ic, ac), nil
}

func (h *Handler) view(s *session.State, ic, ac *cloakroom.Claims) *Session {
	v := &Session{Subject: s.Subject, IDClaims: ic, AccessClaims: ac, AccessToken: s.AccessToken, CSRFToken: s.CSRFToken, s: s}
	switch {
	case ic != nil && ic.Username() != "":
		v.Username = ic.Username()
	case ac != nil:
		v.Username = ac.Username()
	}
	return v
}

func (h *Handler) refreshBefore() time.Duration {
	if h.cfg.RefreshBefore > 0 {
		return h.cfg.RefreshBefore
	}
	return DefaultRefreshBefore
}

// leaseTime bounds how long one instance may hold a refresh; others wait
// for it that long at most.
const leaseTime = 10 * time.Second

// refresh renews the session's tokens. Across instances sharing the store,
// one takes a lease on the session (a compare-and-swap on its record) and
// spends the refresh token; the others wait for its result, so Keycloak's
// refresh-token rotation never sees the same token twice from us.
func (h *Handler) refresh(ctx context.Context, s *session.State) (*session.State, error) {
	deadline := h.now().Add(leaseTime + 5*time.Second)
	for {
		cur, err := h.sessions.Reload(ctx, s)
		if errors.Is(err, session.ErrNotFound) {
			return nil, errSessionEnded
		}
		if err != nil {
			return nil, err
		}
		now := h.now()
		if now.Add(h.refreshBefore()).Before(cur.AccessExpiry) {
			return cur, nil // someone else refreshed it
		}
		if cur.RefreshToken == "" || (!cur.RefreshExpiry.IsZero() && !now.Before(cur.RefreshExpiry)) {
			_ = h.sessions.Delete(ctx, cur)
			return nil, errSessionEnded
		}
		if now.Before(cur.RefreshLease) {
			// Another instance is refreshing: wait for its result.
			if now.After(deadline) {
				return nil, &cloakroom.ProviderError{Op: "refresh", URL: h.realm.Issuer(), Err: errors.New("another instance holds the refresh lease")}
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		cur.RefreshLease = now.Add(leaseTime)
		if err := h.sessions.Save(ctx, cur); errors.Is(err, session.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return h.spendRefreshToken(ctx, cur)
	}
}

// clientRefused reports whether a token-endpoint error is the provider
// refusing the client itself (invalid_client, or Keycloak 26's 401
// unauthorized_client for a wrong secret) rather than the grant; see
// realmx.Conn.ClientRefusal.
func (h *Handler) clientRefused(tokenURL string, re *oauth2.RetrieveError) *cloakroom.ProviderError {
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	pe, _ := h.provider.ClientRefusal(tokenURL, h.cfg.ClientID, status, re.ErrorCode, re.ErrorDescription).(*cloakroom.ProviderError)
	return pe
}

// spendRefreshToken calls the token endpoint while holding the lease.
func (h *Handler) spendRefreshToken(ctx context.Context, cur *session.State) (s *session.State, err error) {
	if h.cfg.OnRefresh != nil {
		defer func() { h.cfg.OnRefresh(ctx, err) }()
	}
	release := func() {
		cur.RefreshLease = time.Time{}
		if err := h.sessions.Save(context.WithoutCancel(ctx), cur); err != nil && !errors.Is(err, session.ErrConflict) {
			h.logger.Warn("login: could not release the refresh lease", "error", err)
		}
	}
	meta, err := h.realm.Discover(ctx)
	if err != nil {
		release()
		return nil, err
	}
	octx, cancel := h.oauthContext(ctx)
	ts := h.oauthConfig(meta).TokenSource(octx, &oauth2.Token{RefreshToken: cur.RefreshToken, Expiry: time.Unix(1, 0)})
	tok, err := ts.Token()
	cancel()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			if pe := h.clientRefused(meta.TokenEndpoint, re); pe != nil {
				// Keycloak 26 answers a wrong client secret with 401
				// unauthorized_client: a misconfiguration of this
				// application, not the end of the user's session, which
				// stays for when the secret is fixed. The request is
				// answered "misconfigured" (see providerFailure).
				pe.Op = "refresh"
				release()
				return nil, pe
			}
		}
		if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_token" || re.ErrorCode == "unauthorized_client") {
			h.logger.Debug("login: refresh refused; the user must log in again", "sub", cur.Subject, "error", re.ErrorCode, "description", re.ErrorDescription)
			_ = h.sessions.Delete(context.WithoutCancel(ctx), cur)
			return nil, errSessionEnded
		}
		release()
		return nil, &cloakroom.ProviderError{Op: "refresh", URL: meta.TokenEndpoint, Err: scrubOAuthError(err)}
	}
	fresh, _, err := h.verifyTokens(ctx, tok, "", cur.Subject)
	if err != nil {
		release()
		if isUnavailable(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errRefreshRefused, err)
	}
	cur.AccessToken, cur.AccessExpiry, cur.OpaqueAccessToken = fresh.AccessToken, fresh.AccessExpiry, fresh.OpaqueAccessToken
	if fresh.RefreshToken != "" {
		cur.RefreshToken = fresh.RefreshToken
	}
	if !fresh.RefreshExpiry.IsZero() {
		cur.RefreshExpiry = fresh.RefreshExpiry
	}
	if fresh.IDToken != "" {
		cur.IDToken, cur.IDClaims = fresh.IDToken, fresh.IDClaims
		if len(cur.UserinfoClaims) > 0 {
			cur.IDClaims, _ = addProfileMembers(cur.IDClaims, cur.UserinfoClaims)
		}
	}
	cur.RefreshLease = time.Time{}
	if err := h.sessions.Save(context.WithoutCancel(ctx), cur); err != nil {
		// We hold the lease, so a conflict comes from a Touch: merge.
		if errors.Is(err, session.ErrConflict) {
			if again, rerr := h.sessions.Reload(ctx, cur); rerr == nil {
				again.AccessToken, again.AccessExpiry, again.OpaqueAccessToken = cur.AccessToken, cur.AccessExpiry, cur.OpaqueAccessToken
				again.RefreshToken, again.RefreshExpiry = cur.RefreshToken, cur.RefreshExpiry
				again.IDToken, again.IDClaims, again.RefreshLease = cur.IDToken, cur.IDClaims, time.Time{}
				if err = h.sessions.Save(ctx, again); err == nil {
					return again, nil
				}
			}
		}
		return nil, err
	}
	return cur, nil
}

// RequireLogin is Middleware that also insists on a session: browsers are
// sent to Keycloak and come back to the page they asked for; scripts
// (Accept: application/json, XHR, non-GET) get 401 JSON with a login_url.
func (h *Handler) RequireLogin(next http.Handler) http.Handler {
	return h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); !ok {
			h.notLoggedIn(w, r, nil)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

func (h *Handler) notLoggedIn(w http.ResponseWriter, r *http.Request, extra map[string]string) {
	returnTo := returnPath(r)
	if wantsJSON(r) {
		body := map[string]string{"code": "not_authenticated", "detail": "Log in first.", "login_url": h.LoginURL(returnTo)}
		status := http.StatusUnauthorized
		if extra["acr_values"] != "" {
			body["code"], body["detail"], body["acr_values"] = "step_up_required", "A stronger authentication is required.", extra["acr_values"]
		}
		w.Header().Set("WWW-Authenticate", h.Challenge())
		writeJSON(w, status, body)
		return
	}
	h.StartLogin(w, r, returnTo, extra)
}

// Require returns middleware (implying RequireLogin) that lets a request
// through only when the session's token satisfies req (read from
// Session.RoleClaims), e.g. Require(cloakroom.AnyRealmRole("admin"));
// otherwise 403 with cloakroom.Refusal's sentence: "You are signed in as
// bob, but this page requires the role "admin"."
func (h *Handler) Require(req cloakroom.Requirement) func(http.Handler) http.Handler {
	return h.RequireFunc(req.String(), func(s *Session) bool { return req.Allows(s.RoleClaims()) })
}

// RequireFunc is Require for a rule on the whole Session: what describes
// it in the refusal, which reads "…, but this page requires "+what+"."
// (e.g. `membership of the finance team`).
func (h *Handler) RequireFunc(what string, allow func(*Session) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := FromContext(r.Context())
			if !allow(s) {
				h.logger.Debug("login: request refused", "sub", s.Subject, "requires", what)
				h.forbidden(w, r, s, what)
				return
			}
			next.ServeHTTP(w, r)
		}))
	}
}

// RoleClaims returns the claims requirements read: the access token's
// when it was verified, else the ID token's (an opaque access token,
// GenericOIDC). Both read roles from Config.Verifier.RolesClaim. It may
// be nil.
func (s *Session) RoleClaims() *cloakroom.Claims {
	if s.AccessClaims != nil {
		return s.AccessClaims
	}
	return s.IDClaims
}

// RequireAnyRealmRole is Require(cloakroom.AnyRealmRole(roles...)): at
// least one of the roles, read from the roles claim (Claims.RealmRoles:
// Keycloak's realm roles, or the Config.Verifier.RolesClaim of another
// provider).
func (h *Handler) RequireAnyRealmRole(roles ...string) func(http.Handler) http.Handler {
	return h.Require(cloakroom.AnyRealmRole(roles...))
}

// RequireAllRealmRoles is Require(cloakroom.AllRealmRoles(roles...)).
func (h *Handler) RequireAllRealmRoles(roles ...string) func(http.Handler) http.Handler {
	return h.Require(cloakroom.AllRealmRoles(roles...))
}

// RequireAnyClientRole is Require(cloakroom.AnyClientRole(clientID, roles...)).
func (h *Handler) RequireAnyClientRole(clientID string, roles ...string) func(http.Handler) http.Handler {
	return h.Require(cloakroom.AnyClientRole(clientID, roles...))
}

// RequireAllClientRoles is Require(cloakroom.AllClientRoles(clientID, roles...)).
func (h *Handler) RequireAllClientRoles(clientID string, roles ...string) func(http.Handler) http.Handler {
	return h.Require(cloakroom.AllClientRoles(clientID, roles...))
}

// RequireACR demands an authentication level (Keycloak's acr, e.g. the
// ACR name mapped to the second factor). A session below it is sent back
// to Keycloak with acr_values=level, Keycloak's way to ask for the missing
// factor; scripts get 401 {"code":"step_up_required"}. Levels compare
// as cloakroom.MinACR(level, Config.ACRLevels) compares them.
func (h *Handler) RequireACR(level string) func(http.Handler) http.Handler {
	req := cloakroom.MinACR(level, h.cfg.ACRLevels)
	return func(next http.Handler) http.Handler {
		return h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := FromContext(r.Context())
			if !req.Allows(s.acrClaims()) {
				if h.stepUpJustFailed(s, level) {
					h.logger.Debug("login: step-up did not reach the required level", "sub", s.Subject, "want", level, "have", s.acr())
					h.stepUpFailed(w, r, level, s.acr())
					return
				}
				h.notLoggedIn(w, r, map[string]string{"acr_values": level})
				return
			}
			next.ServeHTTP(w, r)
		}))
	}
}

// stepUpWindow is how long after a step-up login an insufficient level is
// an answer (403) rather than a reason to ask again.
const stepUpWindow = 2 * time.Minute

// stepUpJustFailed reports whether the session comes from a step-up login
// that asked for level moments ago (session.State.StepUpACR, StepUpAt).
func (h *Handler) stepUpJustFailed(s *Session, level string) bool {
	return s.s.StepUpACR == level && h.now().Sub(s.s.StepUpAt) < stepUpWindow
}

// acrClaims returns the claims the session's authentication level is
// read from: the ID token's when it has acr, else the access token's.
func (s *Session) acrClaims() *cloakroom.Claims {
	if s.IDClaims != nil && s.IDClaims.ACR() != "" {
		return s.IDClaims
	}
	return s.AccessClaims
}

func (s *Session) acr() string {
	if c := s.acrClaims(); c != nil {
		return c.ACR()
	}
	return ""
}

// claims returns the session's ID-token claims, parsed from the stored
// claims JSON, and its access token's claims, verified (nil for an access
// token opaque to us). Both are memoised per session: a request then
// costs one lookup by session key instead of a JSON parse, and instead of
// hashing the ~1 kB access token to probe the Verifier's cache.
//
// A memoised access token is reused only on the terms of the Verifier's
// own cache, which it stands in front of: the same token, before its exp,
// with no key removed from the provider's key set since it was verified
// (the key-set epoch), and only when that cache is on
// (VerifierConfig.CacheEntries) and the Verifier is the signature-checking
// one (with Config.LightweightTokens the LightweightVerifier decides on
// each request, from its own cache).
func (h *Handler) claims(ctx context.Context, s *session.State) (ic, ac *cloakroom.Claims, err error) {
	now := h.now().Unix()
	// What this Handler kept with the session on an earlier request (see
	// claimsMemo); another Handler's, sharing the Manager, is not used.
	var m claimsMemo
	if held, _ := sessionmemo.Load(s).(*claimsMemo); held != nil && held.h == h {
		m = *held
	}
	changed := m.h == nil || m.idToken != s.IDToken
	if changed {
		m.h, m.idToken, m.idClaims = h, s.IDToken, h.parseIDClaims(s)
	}
	// An access token opaque to us (GenericOIDC) is not verified: the
	// provider answers for it, and refresh renews it before AccessExpiry.
	if !s.OpaqueAccessToken {
		// The epoch is read before verifying, as the Verifier does: a key
		// removed meanwhile leaves the memo at the older epoch, never
		// reused.
		epoch := h.keyEpoch()
		if m.access != nil && m.accessToken == s.AccessToken && m.epoch == epoch && now < m.access.Expiry().Unix() {
			ac = m.access
		} else {
			if ac, err = h.atCheck.Verify(ctx, s.AccessToken); err != nil {
				return nil, nil, err
			}
			if h.memoAccess {
				m.accessToken, m.access, m.epoch = s.AccessToken, ac, epoch
				changed = true
			}
		}
	}
	if changed {
		kept := m
		sessionmemo.Store(h.sessions, s, &kept)
	}
	return m.idClaims, ac, nil
}

// parseIDClaims parses the session's stored ID-token claims (nil if it has
// none or they do not parse).
func (h *Handler) parseIDClaims(s *session.State) *cloakroom.Claims {
	if len(s.IDClaims) == 0 {
		return nil
	}
	c, err := cloakroom.ParseClaims(s.IDClaims)
	if err != nil {
		return nil
	}
	if h.cfg.Verifier.RolesClaim != "" {
		// ParseClaims's claims read the default roles claim already.
		c = c.WithRolesClaim(h.cfg.Verifier.RolesClaim)
	}
	return c
}

// claimsMemo is what one session's requests reuse (Handler.claims), kept
// with the session as its Manager holds it decoded (internal/sessionmemo):
// found by the session's own lookup, with no table of its own, and gone
// with the decoded session (its logout, another version of it, or the
// decoded-session cache's two minutes without a save). It answers only for the Handler that made it and for
// the session's current tokens. The tokens are the session's own strings,
// shared with its State, not copies; the access claims are shared with
// the Verifier's cache.
type claimsMemo struct {
	h           *Handler
	idToken     string
	idClaims    *cloakroom.Claims
	accessToken string
	access      *cloakroom.Claims
	epoch       uint64 // the Realm's key-set epoch when access was verified
}

// Challenge is the WWW-Authenticate value of a 401 that asks for a login
// session (RFC 7235 §3.1 requires one on every 401). It uses the Cookie
// scheme of draft-broyer-http-cookie-auth: browsers show no password
// dialog for it, and a script learns where logins start.
func (h *Handler) Challenge() string {
	return `Cookie realm="` + challengeSafe(h.realm.Name()) + `", form-action="` + h.prefix + `/login"`
}

// challengeSafe keeps a value inside an HTTP quoted-string.
func challengeSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// tokenParams are query parameters that carry credentials (RFC 6750 §2.3,
// and what OAuth responses put in a URL): they are never copied into a
// login URL or a return address, where they would reach logs, Referer
// headers and browser history.
var tokenParams = []string{"access_token", "id_token", "refresh_token", "logout_token", "token", "code", "client_secret"}

// returnPath is the request's path and query to come back to after a
// login, without any query parameter that carries a credential or a value
// shaped like a JWT.
func returnPath(r *http.Request) string {
	u := *r.URL
	if u.RawQuery == "" {
		return u.RequestURI()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		u.RawQuery = ""
		return u.RequestURI()
	}
	changed := false
	for name, values := range q {
		drop := slices.ContainsFunc(tokenParams, func(p string) bool { return strings.EqualFold(p, name) })
		for _, v := range values {
			drop = drop || looksLikeJWT(v)
		}
		if drop {
			delete(q, name)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.RequestURI()
}

// looksLikeJWT reports a compact JWS or JWE: base64url parts separated by
// dots, the first a JSON object ("eyJ").
func looksLikeJWT(v string) bool {
	if !strings.HasPrefix(v, "eyJ") {
		return false
	}
	dots := strings.Count(v, ".")
	return (dots == 2 || dots == 4) && len(v) > 20
}
