package keycloaktest

import (
	"net/http"
	"slices"
	"strings"
)

// Standard token exchange (RFC 8693; Keycloak 26.2+ "token exchange V2",
// StandardTokenExchangeProvider): a confidential client with the client
// attribute standard.token.exchange.enabled=true trades a user's access
// token for one meant for another audience. Every check, error code and
// description below was observed on Keycloak 26.7.3 (conformance:
// token-exchange/*, e2e/realkeycloak_exchange_test.go), in Keycloak's
// order:
//
//  1. parameters: requested_subject, requested_issuer and subject_issuer
//     are refused; the client must have standard token exchange enabled;
//     subject_token and subject_token_type must be present, the type the
//     access token type (400 invalid_request, "Parameter … ").
//  2. the subject token: an unexpired access token of this realm whose
//     user is enabled and whose session is live (400 invalid_request
//     "Invalid token"); a DPoP- or mTLS-bound one only from its holder.
//  3. requested_token_type: access_token (the default), id_token, and
//     refresh_token when the client attribute
//     standard.token.exchange.enableRefreshRequestedTokenType is
//     SAME_SESSION (400 invalid_request "requested_token_type unsupported").
//  4. every audience must be a client of the realm (400 invalid_client
//     "Audience not found"); a public requester is refused (400
//     invalid_client "Public client is not allowed to exchange token"), a
//     disabled audience too (400 invalid_client "Client disabled"); a
//     requester that is not the token's azp must be in its aud (403
//     access_denied "Client is not within the token audience").
//  5. scope: client scopes of the requester (400 invalid_scope "Invalid
//     scopes: …"); offline_access is dropped from access tokens.
//  6. the new token is the requester's (azp, its scopes, mappers, roles,
//     lifespan) in the subject's session (sid kept); with audience
//     parameters its aud is narrowed to them and resource_access to their
//     roles, and an audience the requester's token would not name is
//     refused (400 invalid_request "Requested audience not available: …").
//
// The requester gets no client session for an access or ID token (a
// transient one, Keycloak's "nt" jti prefix), unless it already has one in
// the user session.

const (
	grantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeID         = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeRefresh    = "urn:ietf:params:oauth:token-type:refresh_token"
	tokenTypeSAML2      = "urn:ietf:params:oauth:token-type:saml2"
	clientAttrStdTokenX = "standard.token.exchange.enabled"
	clientAttrStdTxRT   = "standard.token.exchange.enableRefreshRequestedTokenType"
)

// ClientAttrStandardTokenExchange is the client attribute that lets a
// client use standard token exchange (Keycloak's admin console: Settings →
// Capability config → Standard token exchange). Set it to "true" in
// ClientConfig.Attributes.
const ClientAttrStandardTokenExchange = clientAttrStdTokenX

func init() { grantHandlers[grantTokenExchange] = tokenExchangeGrant }

func exchangeRefusal(status int, code, desc string) *oauthErr {
	return &oauthErr{status, code, desc}
}

func badExchange(desc string) *oauthErr {
	return exchangeRefusal(http.StatusBadRequest, "invalid_request", desc)
}

// tokenExchangeGrant serves grant_type token-exchange after client
// authentication.
func tokenExchangeGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	set, issuedType, oerr := r.exchange(s, c, req)
	if oerr != nil {
		oerr.write(w)
		return
	}
	r.writeExchanged(s, w, set, issuedType)
}

// exchangeSupported is StandardTokenExchangeProvider.supports: the
// parameters it refuses before looking at the token.
func exchangeSupported(c *client, form map[string][]string) *oauthErr {
	for _, p := range []string{"requested_subject", "requested_issuer", "subject_issuer"} {
		if _, ok := form[p]; ok {
			return badExchange("Parameter '" + p + "' is not supported for standard token exchange")
		}
	}
	if c.cfg.Attributes[clientAttrStdTokenX] != "true" {
		return badExchange("Standard token exchange is not enabled for the requested client")
	}
	if _, ok := form["subject_token"]; !ok {
		return badExchange("Parameter 'subject_token' required for standard token exchange")
	}
	typ, ok := form["subject_token_type"]
	if !ok {
		return badExchange("Parameter 'subject_token_type' required for standard token exchange")
	}
	if typ[0] != tokenTypeAccess {
		return badExchange("Parameter 'subject_token' supports access tokens only")
	}
	return nil
}

// exchange runs the checks and builds the new token's claims.
func (r *Realm) exchange(s *Server, c *client, req *http.Request) (tokenSet, string, *oauthErr) {
	form := req.PostForm
	if oerr := exchangeSupported(c, form); oerr != nil {
		return tokenSet{}, "", oerr
	}
	issuer := s.issuerFor(req, r.name)
	subject, u, sess, oerr := r.exchangeSubject(form.Get("subject_token"), issuer)
	if oerr != nil {
		return tokenSet{}, "", oerr
	}
	if oerr := exchangeSenderConstraint(subject, c, req); oerr != nil {
		return tokenSet{}, "", oerr
	}
	requested := tokenTypeAccess
	if v, ok := form["requested_token_type"]; ok {
		requested = v[0]
	}
	switch requested {
	case tokenTypeAccess, tokenTypeID, tokenTypeSAML2:
	case tokenTypeRefresh:
		if c.cfg.Attributes["use.refresh.tokens"] == "false" || c.cfg.Attributes[clientAttrStdTxRT] != "SAME_SESSION" {
			return tokenSet{}, "", badExchange("requested_token_type unsupported")
		}
	default:
		return tokenSet{}, "", badExchange("requested_token_type unsupported")
	}

	audiences := form["audience"]
	r.mu.RLock()
	targets := make([]*client, 0, len(audiences))
	for _, a := range audiences {
		t := r.clients[a]
		if t == nil {
			r.mu.RUnlock()
			return tokenSet{}, "", exchangeRefusal(http.StatusBadRequest, "invalid_client", "Audience not found")
		}
		targets = append(targets, t)
	}
	r.mu.RUnlock()
	if c.cfg.Public {
		return tokenSet{}, "", exchangeRefusal(http.StatusBadRequest, "invalid_client", "Public client is not allowed to exchange token")
	}
	for _, t := range targets {
		if t.cfg.Disabled {
			return tokenSet{}, "", exchangeRefusal(http.StatusBadRequest, "invalid_client", "Client disabled")
		}
	}
	if subject.str("azp") != c.cfg.ClientID && !slices.Contains(audienceOf(subject["aud"]), c.cfg.ClientID) {
		return tokenSet{}, "", exchangeRefusal(http.StatusForbidden, "access_denied", "Client is not within the token audience")
	}
	scope := form.Get("scope")
	scopes, ok := grantScopes(c, scope, false, r.dynamicScope)
	if !ok {
		return tokenSet{}, "", exchangeRefusal(http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+scope)
	}
	if requested == tokenTypeSAML2 {
		return tokenSet{}, "", badExchange("requested_token_type unsupported")
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	g := grant{issuer: issuer, user: u, client: c, session: sess, scopes: scopes, now: r.now(),
		acr: subject.str("acr"), grantType: grantTokenExchange, dpopJKT: dpopJKTOf(req)}
	if g.has("offline_access") {
		if requested == tokenTypeRefresh {
			if !r.offlineTokensAllowedLocked(u) {
				return tokenSet{}, "", errOfflineNotAllowed
			}
			return tokenSet{}, "", badExchange("Scope offline_access not allowed for token exchange")
		}
		// A transient client session takes no offline scope.
		g.scopes = slices.DeleteFunc(slices.Clone(g.scopes), func(s string) bool { return s == "offline_access" })
	}
	// The session type of Keycloak's access token context: a subject from
	// an offline session gets a transient session (no sid); a requester
	// without a client session in the user session a transient client
	// session ("nt"), except for a refresh token, which needs a real one.
	sessionType := "on"
	switch {
	case sess == nil || strings.HasPrefix(subject.str("jti"), "of"):
		sessionType, g.session = "tr", nil
	case requested == tokenTypeRefresh:
		if sess.clients[c.cfg.ClientID] == nil {
			sess.clients[c.cfg.ClientID] = &clientSession{issued: map[string]uint64{}}
		}
	case sess.clients[c.cfg.ClientID] == nil:
		sessionType = "nt"
	}
	access := r.accessClaims(g)
	access["jti"] = sessionType + "rtte:" + newUUID()
	if len(audiences) > 0 {
		if missing := narrowAudience(access, audiences); len(missing) > 0 {
			return tokenSet{}, "", badExchange("Requested audience not available: " + strings.Join(javaHashSetOrder(missing), ", "))
		}
	}
	set := tokenSet{g: g, access: access, id: requested == tokenTypeID || g.idToken()}
	if requested == tokenTypeRefresh {
		set.refresh = r.refreshClaims(g, access["aud"])
		if len(audiences) > 0 {
			set.refresh["req-aud"] = slices.Clone(audiences)
		}
		r.registerRefreshLocked(sess, c.cfg.ClientID, set.refresh["jti"].(string))
	}
	return set, requested, nil
}

// exchangeSubject checks the subject token as Keycloak's
// AuthenticationManager.verifyIdentityToken does: signed by the realm, an
// access token of this issuer, unexpired, not revoked, its user enabled
// and its session live. The requester's client session is not needed: an
// exchanged token can be exchanged again.
func (r *Realm) exchangeSubject(raw, issuer string) (claimSet, *user, *userSession, *oauthErr) {
	invalid := badExchange("Invalid token")
	claims, hmacSigned, err := r.verifySigned(raw)
	if err != nil || hmacSigned || claims.str("typ") != typBearer || claims.str("iss") != issuer {
		return nil, nil, nil, invalid
	}
	now := r.now()
	if exp, ok := claims.num("exp"); !ok || now.Unix() >= exp {
		return nil, nil, nil, invalid
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, revoked := r.revoked[claims.str("jti")]; revoked {
		return nil, nil, nil, invalid
	}
	u := r.users[claims.str("sub")]
	if u == nil || !u.enabled {
		return nil, nil, nil, invalid
	}
	sid := claims.str("sid")
	if sid == "" {
		return claims, u, nil, nil
	}
	s := r.sessions[sid]
	live := r.sessionLiveLocked(s, now)
	if strings.HasPrefix(claims.str("jti"), "of") {
		live = r.offlineSessionLiveLocked(s, now)
	}
	if !live || s.userID != u.id {
		return nil, nil, nil, invalid
	}
	return claims, u, s, nil
}

// exchangeSenderConstraint refuses a DPoP- or certificate-bound subject
// token presented by another client than its holder, or by its holder
// without a DPoP proof.
func exchangeSenderConstraint(subject claimSet, c *client, req *http.Request) *oauthErr {
	cnf, ok := subject["cnf"].(map[string]any)
	if !ok {
		return nil
	}
	if subject.str("azp") != c.cfg.ClientID {
		return badExchange("Sender-constrained token exchange rejected as the token was not issued for the requesting client")
	}
	if _, bound := cnf["jkt"]; bound && dpopJKTOf(req) == "" {
		return badExchange("DPoP proof is missing")
	}
	return nil
}

// narrowAudience keeps in aud only the requested audiences and in resource_access only their roles, as Keycloak does with
// the requested audience clients; it returns the requested audiences aud
// did not contain.
func narrowAudience(c map[string]any, requested []string) (missing []string) {
	have := audienceOf(c["aud"])
	for _, a := range requested {
		if !slices.Contains(have, a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return missing
	}
	// Several requested audiences come out in a java.util.HashSet's order
	// (observed on Keycloak 26.7.3: orders-api and billing-api give
	// ["billing-api","orders-api"] whatever the order of the mappers or
	// of the parameters).
	setAudience(c, javaHashSetOrder(slices.DeleteFunc(have, func(a string) bool { return !slices.Contains(requested, a) })))
	if ra, ok := c["resource_access"].(map[string]any); ok {
		for id := range ra {
			if !slices.Contains(requested, id) {
				delete(ra, id)
			}
		}
	}
	return nil
}

// writeExchanged writes Keycloak's token exchange answer: the token
// response plus issued_token_type; an ID token requested as such is sent
// as access_token with token_type N_A (RFC 8693 2.2.1).
func (r *Realm) writeExchanged(s *Server, w http.ResponseWriter, set tokenSet, issuedType string) {
	fail := func(err error) {
		s.logger.Error("keycloaktest: sign token", "realm", r.name, "error", err)
		writeFaultStatus(w, http.StatusInternalServerError)
	}
	resp := map[string]any{
		"expires_in":         int64(r.accessLifespanFor(set.g.client).Seconds()),
		"refresh_expires_in": 0,
		"not-before-policy":  0,
		"scope":              set.access["scope"],
		"issued_token_type":  issuedType,
	}
	if set.g.session != nil {
		resp["session_state"] = set.g.session.id
	}
	if issuedType == tokenTypeID {
		r.mu.RLock()
		idc := r.idClaims(set.g, "")
		r.mu.RUnlock()
		id, err := r.signAccess(idc, "JWT")
		if err != nil {
			fail(err)
			return
		}
		resp["access_token"], resp["token_type"] = id, "N_A"
		writeJSON(w, http.StatusOK, resp)
		return
	}
	access, err := r.signAccess(set.access, "JWT")
	if err != nil {
		fail(err)
		return
	}
	resp["access_token"], resp["token_type"] = access, tokenTypeOf(set.access)
	if err := r.signCompanions(set, access, resp); err != nil {
		fail(err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
