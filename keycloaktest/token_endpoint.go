package keycloaktest

import (
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// oauthErr is an OAuth error response waiting to be written.
type oauthErr struct {
	status      int
	code, descr string
}

func (e *oauthErr) write(w http.ResponseWriter) { writeOAuthError(w, e.status, e.code, e.descr) }

func invalidGrant(desc string) *oauthErr {
	return &oauthErr{http.StatusBadRequest, "invalid_grant", desc}
}

// Keycloak's client authenticator (client-secret) answers 401 without a
// WWW-Authenticate challenge. It tells apart a client it cannot identify
// (no client_id, unknown, disabled, unreadable Basic header: invalid_client)
// from a known client whose secret is missing or wrong (unauthorized_client),
// as Keycloak 26.7 does on the token and revocation endpoints
// (conformance: token-errors/no-client, token-errors/wrong-secret,
// token-errors/no-secret).
var (
	errBadClient         = &oauthErr{http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials"}
	errClientCredentials = &oauthErr{http.StatusUnauthorized, "unauthorized_client", "Invalid client or Invalid client credentials"}
)

// authenticateClient implements client_secret_basic (credentials
// form-urlencoded inside Basic, RFC 6749 2.3.1), client_secret_post and
// public clients. The form must already be parsed.
//
// As Keycloak's client-secret authenticator, a client_id or client_secret
// in the form overrides the one in the Basic header (observed on Keycloak
// 26.7.3: Basic for one client with the form's client_id of a public client
// authenticates the public client), and a Basic header that cannot be read
// only fails when the form names no client either.
func (r *Realm) authenticateClient(req *http.Request) (*client, *oauthErr) {
	id, secret := "", ""
	if scheme, payload, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Basic") {
		id, secret, _ = parseBasicClient(payload)
	}
	if v, ok := req.PostForm["client_id"]; ok {
		id = v[0]
	}
	if v, ok := req.PostForm["client_secret"]; ok {
		secret = v[0]
	}
	if id == "" {
		return nil, errBadClient
	}
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	if c == nil || c.cfg.Disabled {
		return nil, errBadClient
	}
	if c.cfg.Public {
		return c, nil
	}
	if secret == "" || c.cfg.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.cfg.Secret)) != 1 {
		return nil, errClientCredentials
	}
	return c, nil
}

// parseBasicClient decodes the credentials of a Basic header: base64 of
// "id:secret", each form-urlencoded. ok is false when it cannot be read.
func parseBasicClient(payload string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", false
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(p); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// grantHandler serves one grant_type after client authentication.
type grantHandler func(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request)

// grantHandlers maps grant_type to its implementation.
var grantHandlers = map[string]grantHandler{
	"authorization_code": authorizationCodeGrant,
	"password":           passwordGrant,
	"client_credentials": clientCredentialsGrant,
	"refresh_token":      refreshTokenGrant,
}

// handleToken serves the token endpoint (protocol doc section 3).
func handleToken(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	noStore(w)
	// CORS as Keycloak: errors before client authentication carry no CORS
	// headers (only "Realm not enabled" may be read by any origin); after
	// it, the client's web origins may read the answer.
	cors := newCORS(w, req, true)
	if r.disabled() {
		cors.allowAll()
	}
	if realmDisabled(r, w) || !parseForm(w, req) {
		return
	}
	gt := req.PostForm.Get("grant_type")
	if gt == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing form parameter: grant_type")
		return
	}
	h, ok := grantHandlers[gt]
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
		return
	}
	c, aerr := r.authenticateClient(req)
	if aerr != nil {
		aerr.write(w)
		return
	}
	cors.allowClient(c.cfg)
	if req, aerr = r.tokenRequestDPoP(s, c, req); aerr != nil {
		aerr.write(w)
		return
	}
	h(s, r, c, w, req)
}

// passwordGrant is the resource owner password credentials grant, checked
// in Keycloak 26.7's order: direct grants, scope, then the direct-grant
// flow (username present, password, account enabled, required actions),
// then the offline check when the refresh token is made.
func passwordGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	if !c.cfg.DirectAccessGrants {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants")
		return
	}
	scope := req.PostForm.Get("scope")
	scopes, ok := grantScopes(c, scope, false, r.dynamicScope)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
		return
	}
	if _, ok := req.PostForm["username"]; !ok {
		// The flow's username step answers a missing parameter (an empty one
		// is just a wrong username) with 401 and no challenge (conformance:
		// token-errors/no-username).
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "Missing parameter: username")
		return
	}
	username, password := req.PostForm.Get("username"), req.PostForm.Get("password")
	r.mu.RLock()
	u := r.findLoginUserLocked(username)
	var (
		enabled  bool
		plain    string
		hash     *PasswordHash
		required bool
	)
	if u != nil {
		enabled, plain, hash, required = u.enabled, u.password, u.hash, len(r.pendingActionsLocked(u)) > 0
	}
	r.mu.RUnlock()
	if u == nil || u.serviceAccountOf != "" {
		invalidGrant("Invalid user credentials").write(w)
		return
	}
	// The password is checked before the account: a disabled user with a
	// wrong password is told "Invalid user credentials", with the right
	// one "Account disabled" (observed on Keycloak 26.7.3).
	if !checkPassword(password, plain, hash) {
		invalidGrant("Invalid user credentials").write(w)
		return
	}
	if !enabled {
		invalidGrant("Account disabled").write(w)
		return
	}
	if required {
		invalidGrant("Account is not fully set up").write(w)
		return
	}
	r.mu.Lock()
	now := r.now()
	// The password grant takes no nonce: Keycloak reads it only from an
	// authorization request (observed on Keycloak 26.7.3).
	g := grant{issuer: s.issuerFor(req, r.name), user: u, client: c, scopes: scopes, now: now, grantType: grantPassword,
		dpopJKT: dpopJKTOf(req)}
	if g.offline() && !r.offlineTokensAllowedLocked(u) {
		r.mu.Unlock()
		errOfflineNotAllowed.write(w)
		return
	}
	g.session = r.newSessionLocked(u, c.cfg.ClientID, now)
	g.session.issuer = g.issuer
	g.session.ip = remoteHost(req)
	// A direct grant authenticates outside the browser flow, which is what
	// records a session's AUTH_TIME note: Keycloak's tokens from this
	// session have no auth_time (conformance:
	// password/alice-openid.id_token.claims).
	g.session.authTime = 0
	set := r.buildTokenSetLocked(g, true)
	r.mu.Unlock()
	r.writeTokenSet(s, w, set)
}

// errOfflineNotAllowed is Keycloak's answer to offline_access for a user who
// does not hold the offline_access realm role (conformance:
// password/alice-offline).
var errOfflineNotAllowed = &oauthErr{http.StatusBadRequest, "not_allowed", "Offline tokens not allowed for the user or client"}

// offlineTokensAllowedLocked reports whether u may get offline tokens: it
// must hold the realm role offline_access, directly, through a group or a
// composite such as default-roles-{realm}.
func (r *Realm) offlineTokensAllowedLocked(u *user) bool {
	return slices.Contains(r.effectiveRealmRoles(u), "offline_access")
}

// checkPassword compares in constant time; a user with no credential never
// matches.
func checkPassword(given, plain string, hash *PasswordHash) bool {
	if hash != nil {
		return hash.verify(given)
	}
	if plain == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(given), []byte(plain)) == 1
}

// clientCredentialsGrant issues a service account's token. A client that
// may not use it is answered 401, not 400 (conformance:
// token-errors/public-client-credentials,
// client-credentials/no-service-account).
func clientCredentialsGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	if c.cfg.Public {
		writeOAuthError(w, http.StatusUnauthorized, "unauthorized_client", "Public client not allowed to retrieve service account")
		return
	}
	if !c.cfg.ServiceAccounts {
		writeOAuthError(w, http.StatusUnauthorized, "unauthorized_client", "Client not enabled to retrieve service account")
		return
	}
	scope := req.PostForm.Get("scope")
	scopes, ok := grantScopes(c, scope, true, r.dynamicScope)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
		return
	}
	r.mu.Lock()
	u, err := r.userLocked(serviceAccountPrefix + c.cfg.ClientID)
	if err != nil || !u.enabled {
		r.mu.Unlock()
		invalidGrant("Account disabled").write(w)
		return
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	g := grant{issuer: s.issuerFor(req, r.name), user: u, client: c, scopes: scopes, now: r.now(), clientAddr: host,
		grantType: grantClientCredentials, dpopJKT: dpopJKTOf(req)}
	// Keycloak issues no refresh token and no session for this grant unless
	// the client opts in (client_credentials.use_refresh_token).
	set := r.buildTokenSetLocked(g, false)
	r.mu.Unlock()
	r.writeTokenSet(s, w, set)
}

func refreshTokenGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	raw := req.PostForm.Get("refresh_token")
	if raw == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "No refresh token")
		return
	}
	claims, hmacSigned, err := r.verifySigned(raw)
	typ := claims.str("typ")
	if err != nil || !hmacSigned || (typ != typRefresh && typ != typOffline) || claims.str("iss") != s.issuerFor(req, r.name) {
		invalidGrant("Invalid refresh token").write(w)
		return
	}
	now := r.now()
	if !refreshTokenUnexpired(claims, now) {
		invalidGrant("Token is not active").write(w)
		return
	}
	if claims.str("azp") != c.cfg.ClientID {
		invalidGrant("Invalid refresh token. Token client and authorized client don't match").write(w)
		return
	}
	if oerr := checkRefreshDPoP(claims, req); oerr != nil {
		oerr.write(w)
		return
	}
	scopes, errScope := refreshScopes(c, claims, req.PostForm.Get("scope"), r.dynamicScope)
	if errScope != nil {
		errScope.write(w)
		return
	}

	r.mu.Lock()
	set, oerr := r.refreshLocked(s.issuerFor(req, r.name), claims, c, scopes, now, dpopJKTOf(req))
	r.mu.Unlock()
	if oerr != nil {
		oerr.write(w)
		return
	}
	r.writeTokenSet(s, w, set)
}

// refreshTokenUnexpired checks a refresh token's exp. Offline tokens have
// none (their session's idle timeout is checked instead).
func refreshTokenUnexpired(claims claimSet, now time.Time) bool {
	exp, ok := claims.num("exp")
	if !ok {
		_, present := claims["exp"]
		return !present && claims.str("typ") == typOffline
	}
	return now.Unix() < exp
}

// refreshScopes is the scope of a refresh: the refresh token's, or, with a
// scope parameter, the part of it the parameter names. As Keycloak 26.7
// does, a parameter naming a scope the client does not have is
// invalid_scope, while one the client has but the login was not granted
// is dropped silently (observed on Keycloak 26.7.3).
func refreshScopes(c *client, claims claimSet, param string, dyn scopeResolver) ([]string, *oauthErr) {
	held := strings.Fields(claims.str("scope"))
	names := held
	if param != "" {
		if _, ok := grantScopes(c, param, false, dyn); !ok {
			return nil, &oauthErr{http.StatusBadRequest, "invalid_scope", "Invalid scopes: " + param}
		}
		requested := strings.Fields(param)
		names = slices.DeleteFunc(slices.Clone(held), func(s string) bool { return !slices.Contains(requested, s) })
	}
	// Scopes the client lost since the login are left out, not refused.
	scopes, _ := clientScopes(c, names, false, dyn)
	return scopes, nil
}

// refreshLocked checks session, user and rotation state for a refresh
// token whose signature, type, expiry and client were already checked.
func (r *Realm) refreshLocked(issuer string, claims claimSet, c *client, scopes []string, now time.Time, dpopJKT string) (tokenSet, *oauthErr) {
	u := r.users[claims.str("sub")]
	if u == nil {
		return tokenSet{}, invalidGrant("Invalid refresh token")
	}
	// Keycloak checks the user before the session, so a disabled user's
	// refresh says "User disabled" even though disabling ended the session.
	if !u.enabled {
		return tokenSet{}, invalidGrant("User disabled")
	}
	s := r.sessions[claims.str("sid")]
	live := r.sessionLiveLocked(s, now)
	if claims.str("typ") == typOffline {
		live = r.offlineSessionLiveLocked(s, now)
	}
	if !live {
		return tokenSet{}, invalidGrant("Session not active")
	}
	cs := s.clients[c.cfg.ClientID]
	if cs == nil {
		return tokenSet{}, invalidGrant("Session doesn't have required client")
	}
	if r.cfg.RevokeRefreshToken {
		jti := claims.str("jti")
		if seq := cs.issued[jti]; jti != cs.current && seq < cs.lastRefresh {
			delete(s.clients, c.cfg.ClientID)
			return tokenSet{}, invalidGrant("Stale token")
		}
		if jti != cs.current {
			cs.current, cs.useCount = jti, 0
		}
		if cs.useCount > r.cfg.RefreshTokenMaxReuse {
			delete(s.clients, c.cfg.ClientID)
			return tokenSet{}, invalidGrant("Maximum allowed refresh token reuse exceeded")
		}
		cs.useCount++
	}
	r.seq++
	cs.lastRefresh = r.seq
	s.last = now
	g := grant{issuer: issuer, user: u, client: c, session: s, scopes: scopes, now: now, acr: cs.acr,
		granted: strings.Fields(claims.str("scope")), grantType: grantRefreshToken, dpopJKT: dpopJKT}
	if claims.str("typ") == typOffline && !g.offline() {
		// An offline token from before its scope was recorded still
		// refreshes into an offline token.
		g.granted = append(g.granted, "offline_access")
	}
	return r.buildTokenSetLocked(g, true), nil
}

// offlineSessionLiveLocked is sessionLiveLocked for offline tokens: they
// outlive the SSO timeouts and die after the offline idle timeout.
func (r *Realm) offlineSessionLiveLocked(s *userSession, now time.Time) bool {
	if s == nil || s.ended || now.After(s.last.Add(offlineSessionIdle)) {
		return false
	}
	_, userExists := r.users[s.userID]
	return userExists
}

// tokenSet holds claims built under the realm lock, signed after it.
type tokenSet struct {
	g       grant
	access  map[string]any
	id      bool
	refresh map[string]any
}

// buildTokenSetLocked builds the claims of a token response and records the
// refresh token with its session.
func (r *Realm) buildTokenSetLocked(g grant, withRefresh bool) tokenSet {
	set := tokenSet{g: g, access: r.accessClaims(g), id: g.idToken()}
	if withRefresh && g.session != nil {
		set.refresh = r.refreshClaims(g, set.access["aud"])
		r.registerRefreshLocked(g.session, g.client.cfg.ClientID, set.refresh["jti"].(string))
	}
	return set
}

// writeTokenSet signs the tokens and writes Keycloak's token response.
func (r *Realm) writeTokenSet(s *Server, w http.ResponseWriter, set tokenSet) {
	fail := func(err error) {
		s.logger.Error("keycloaktest: sign token", "realm", r.name, "error", err)
		writeFaultStatus(w, http.StatusInternalServerError)
	}
	access, err := r.signAccess(set.access, "JWT")
	if err != nil {
		fail(err)
		return
	}
	resp := map[string]any{
		"access_token":       access,
		"expires_in":         int64(r.accessLifespanFor(set.g.client) / time.Second),
		"refresh_expires_in": 0,
		"token_type":         tokenTypeOf(set.access),
		"not-before-policy":  0,
		"scope":              set.access["scope"],
	}
	if err := r.signCompanions(set, access, resp); err != nil {
		fail(err)
		return
	}
	if set.g.session != nil {
		resp["session_state"] = set.g.session.id
	}
	writeJSON(w, http.StatusOK, resp)
}

// signCompanions signs the ID and refresh tokens of set, if it has them,
// into resp (a token response whose access token is access).
func (r *Realm) signCompanions(set tokenSet, access string, resp map[string]any) error {
	if set.id {
		r.mu.RLock()
		idc := r.idClaims(set.g, access)
		r.mu.RUnlock()
		id, err := r.signAccess(idc, "JWT")
		if err != nil {
			return err
		}
		resp["id_token"] = id
	}
	if set.refresh != nil {
		rt, err := r.signRefresh(set.refresh, nil)
		if err != nil {
			return err
		}
		resp["refresh_token"] = rt
		if exp, ok := set.refresh["exp"].(int64); ok {
			resp["refresh_expires_in"] = exp - set.g.now.Unix()
		}
	}
	return nil
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
