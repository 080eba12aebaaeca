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

var errBadClient = &oauthErr{http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials"}

// authenticateClient implements client_secret_basic (credentials
// form-urlencoded inside Basic, RFC 6749 2.3.1), client_secret_post and
// public clients. The form must already be parsed.
func (r *Realm) authenticateClient(req *http.Request) (*client, *oauthErr) {
	id, secret, fromBasic := "", "", false
	if scheme, payload, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Basic") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
		if err != nil {
			return nil, errBadClient
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errBadClient
		}
		if id, err = url.QueryUnescape(u); err != nil {
			return nil, errBadClient
		}
		if secret, err = url.QueryUnescape(p); err != nil {
			return nil, errBadClient
		}
		fromBasic = true
		if formID := req.PostForm.Get("client_id"); formID != "" && formID != id {
			return nil, errBadClient
		}
	} else {
		id, secret = req.PostForm.Get("client_id"), req.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_client", "Missing client_id parameter"}
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
	if secret == "" && !fromBasic {
		return nil, errBadClient
	}
	if c.cfg.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.cfg.Secret)) != 1 {
		return nil, errBadClient
	}
	return c, nil
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
	h(s, r, c, w, req)
}

func passwordGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	if !c.cfg.DirectAccessGrants {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants")
		return
	}
	username, password := req.PostForm.Get("username"), req.PostForm.Get("password")
	r.mu.RLock()
	u, _ := r.userLocked(username)
	var (
		enabled  bool
		plain    string
		hash     *PasswordHash
		required bool
	)
	if u != nil {
		enabled, plain, hash, required = u.enabled, u.password, u.hash, len(u.requiredActions) > 0
	}
	r.mu.RUnlock()
	if u == nil || u.serviceAccountOf != "" {
		invalidGrant("Invalid user credentials").write(w)
		return
	}
	// Keycloak's direct-grant flow checks the account before the password.
	if !enabled {
		invalidGrant("Account disabled").write(w)
		return
	}
	if !checkPassword(password, plain, hash) {
		invalidGrant("Invalid user credentials").write(w)
		return
	}
	if required {
		invalidGrant("Account is not fully set up").write(w)
		return
	}
	scope := req.PostForm.Get("scope")
	scopes, ok := grantScopes(c, scope, false)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
		return
	}
	r.mu.Lock()
	now := r.now()
	g := grant{issuer: s.issuerFor(req, r.name), user: u, client: c, scopes: scopes, now: now,
		nonce: req.PostForm.Get("nonce")}
	g.session = r.newSessionLocked(u, c.cfg.ClientID, now)
	g.session.issuer = g.issuer
	g.session.ip = remoteHost(req)
	set := r.buildTokenSetLocked(g, true)
	r.mu.Unlock()
	r.writeTokenSet(s, w, set)
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

func clientCredentialsGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	if c.cfg.Public {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "Public client not allowed to retrieve service account")
		return
	}
	if !c.cfg.ServiceAccounts {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "Client not enabled to retrieve service account")
		return
	}
	scope := req.PostForm.Get("scope")
	scopes, ok := grantScopes(c, scope, true)
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
	g := grant{issuer: s.issuerFor(req, r.name), user: u, client: c, scopes: scopes, now: r.now(), clientAddr: host}
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
	if exp, ok := claims.num("exp"); !ok || now.Unix() >= exp {
		invalidGrant("Token is not active").write(w)
		return
	}
	if claims.str("azp") != c.cfg.ClientID {
		invalidGrant("Invalid refresh token. Token client and authorized client don't match").write(w)
		return
	}
	scope := req.PostForm.Get("scope")
	tokenScope := strings.Fields(claims.str("scope"))
	if scope != "" {
		for _, sc := range strings.Fields(scope) {
			if !slices.Contains(tokenScope, sc) {
				writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
				return
			}
		}
	} else {
		scope = strings.Join(tokenScope, " ")
	}
	scopes, ok := grantScopes(c, scope, false)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
		return
	}

	r.mu.Lock()
	set, oerr := r.refreshLocked(s.issuerFor(req, r.name), claims, c, scopes, now)
	r.mu.Unlock()
	if oerr != nil {
		oerr.write(w)
		return
	}
	r.writeTokenSet(s, w, set)
}

// refreshLocked checks session, user and rotation state for a refresh
// token whose signature, type, expiry and client were already checked.
func (r *Realm) refreshLocked(issuer string, claims claimSet, c *client, scopes []string, now time.Time) (tokenSet, *oauthErr) {
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
	if claims.str("typ") == typOffline && s != nil && !s.ended {
		live = true
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
	g := grant{issuer: issuer, user: u, client: c, session: s, scopes: scopes, now: now, acr: cs.acr}
	return r.buildTokenSetLocked(g, true), nil
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
	set := tokenSet{g: g, access: r.accessClaims(g), id: g.has("openid")}
	if withRefresh && g.session != nil {
		set.refresh = r.refreshClaims(g)
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
		"token_type":         "Bearer",
		"not-before-policy":  0,
		"scope":              set.access["scope"],
	}
	if set.id {
		r.mu.RLock()
		idc := r.idClaims(set.g, access)
		r.mu.RUnlock()
		id, err := r.signAccess(idc, "JWT")
		if err != nil {
			fail(err)
			return
		}
		resp["id_token"] = id
	}
	if set.refresh != nil {
		rt, err := r.signRefresh(set.refresh, nil)
		if err != nil {
			fail(err)
			return
		}
		resp["refresh_token"] = rt
		exp, _ := set.refresh["exp"].(int64)
		resp["refresh_expires_in"] = exp - set.g.now.Unix()
	}
	if set.g.session != nil {
		resp["session_state"] = set.g.session.id
	}
	writeJSON(w, http.StatusOK, resp)
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
