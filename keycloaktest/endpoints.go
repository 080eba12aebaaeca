package keycloaktest

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// advertisedSigningAlgs is Keycloak 26's id_token_signing_alg_values_supported:
// every installed provider, HMAC included. It is a capability list, not an
// allow-list, and is reproduced so clients that trust it get caught.
var advertisedSigningAlgs = []string{"PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512", "RS512"}

// handleDiscovery serves .well-known/openid-configuration. Endpoint URLs
// follow the request's scheme and host, as Keycloak without a configured
// hostname does; the issuer stays the configured one.
func handleDiscovery(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	newCORS(w, req, false).allowAll()
	base := requestBase(req) + s.basePath + "/realms/" + r.name
	oidc := base + "/protocol/openid-connect"
	withNone := append(slices.Clone(advertisedSigningAlgs), "none")
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	r.mu.RLock()
	prompts := []string{"none", "login", "consent"}
	if r.cfg.RegistrationAllowed {
		prompts = append(prompts, "create")
	}
	acrs := []string{"0", "1"}
	if len(r.cfg.ACRLoA) > 0 {
		acrs = append(sortedKeys(r.cfg.ACRLoA), "0", "1", "2")
	}
	r.mu.RUnlock()
	doc := map[string]any{
		"issuer":                                s.issuerFor(req, r.name),
		"authorization_endpoint":                oidc + "/auth",
		"token_endpoint":                        oidc + "/token",
		"introspection_endpoint":                oidc + "/token/introspect",
		"userinfo_endpoint":                     oidc + "/userinfo",
		"end_session_endpoint":                  oidc + "/logout",
		"jwks_uri":                              oidc + "/certs",
		"check_session_iframe":                  oidc + "/login-status-iframe.html",
		"revocation_endpoint":                   oidc + "/revoke",
		"registration_endpoint":                 base + "/clients-registrations/openid-connect",
		"frontchannel_logout_session_supported": true,
		"frontchannel_logout_supported":         true,
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		// Only the grants this server implements (Keycloak's list is longer
		// and depends on enabled features).
		"grant_types_supported":                          []string{"authorization_code", "client_credentials", "password", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"acr_values_supported":                           acrs,
		"response_types_supported":                       []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		"subject_types_supported":                        []string{"public", "pairwise"},
		"prompt_values_supported":                        prompts,
		"id_token_signing_alg_values_supported":          advertisedSigningAlgs,
		"id_token_encryption_alg_values_supported":       []string{"RSA-OAEP", "RSA-OAEP-256", "RSA1_5"},
		"id_token_encryption_enc_values_supported":       []string{"A256GCM", "A192GCM", "A128GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"},
		"userinfo_signing_alg_values_supported":          withNone,
		"request_object_signing_alg_values_supported":    withNone,
		"response_modes_supported":                       []string{"query", "fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"},
		"token_endpoint_auth_methods_supported":          authMethods,
		"introspection_endpoint_auth_methods_supported":  authMethods,
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"claims_supported":                               []string{"aud", "sub", "iss", "auth_time", "name", "given_name", "family_name", "preferred_username", "email", "acr", "azp", "nonce"},
		"claim_types_supported":                          []string{"normal"},
		"claims_parameter_supported":                     true,
		"scopes_supported":                               []string{"openid", "acr", "address", "basic", "email", "microprofile-jwt", "offline_access", "organization", "phone", "profile", "roles", "service_account", "web-origins"},
		"code_challenge_methods_supported":               []string{"plain", "S256"},
		"authorization_response_iss_parameter_supported": true,
		"require_pushed_authorization_requests":          false,
		"tls_client_certificate_bound_access_tokens":     true,
		"mtls_endpoint_aliases": map[string]string{
			"token_endpoint":         oidc + "/token",
			"revocation_endpoint":    oidc + "/revoke",
			"introspection_endpoint": oidc + "/token/introspect",
			"userinfo_endpoint":      oidc + "/userinfo",
			"registration_endpoint":  base + "/clients-registrations/openid-connect",
		},
	}
	writeJSON(w, http.StatusOK, doc)
}

// handleCerts serves the realm's JWKS.
func handleCerts(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	newCORS(w, req, false).allowAll()
	set, err := r.jwks()
	if err != nil {
		s.logger.Error("keycloaktest: JWKS", "realm", r.name, "error", err)
		writeFaultStatus(w, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// handleRealmInfo serves GET /realms/{realm}, Keycloak's public realm info.
func handleRealmInfo(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	base := requestBase(req) + s.basePath + "/realms/" + r.name
	info := map[string]any{
		"realm":             r.name,
		"token-service":     base + "/protocol/openid-connect",
		"account-service":   base + "/account",
		"tokens-not-before": 0,
	}
	if k, err := r.keyFor(r.signatureAlgorithm()); err == nil {
		if pub, ok := k.priv.Public().(*rsa.PublicKey); ok {
			if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
				info["public_key"] = base64.StdEncoding.EncodeToString(der)
			}
		}
	}
	writeJSON(w, http.StatusOK, info)
}

// claimSet is a decoded JWT payload.
type claimSet map[string]any

func (c claimSet) str(name string) string {
	s, _ := c[name].(string)
	return s
}

func (c claimSet) num(name string) (int64, bool) {
	n, ok := c[name].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func decodeClaims(payload []byte) (claimSet, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var c claimSet
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if c == nil {
		return nil, fmt.Errorf("claims: not an object")
	}
	return c, nil
}

// verifySigned checks a token this realm signed: asymmetric tokens against
// the published key named by kid (alg must be that key's), HMAC tokens
// against the realm's refresh-token key. It returns the claims and whether
// the HMAC key signed them.
func (r *Realm) verifySigned(token string) (claimSet, bool, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.HS512})
	if err != nil {
		return nil, false, fmt.Errorf("parse: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, false, fmt.Errorf("want one signature, got %d", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	var payload []byte
	hmacSigned := h.Algorithm == string(jose.HS512)
	if hmacSigned {
		r.mu.RLock()
		hk := r.hmac
		r.mu.RUnlock()
		if h.KeyID != hk.kid {
			return nil, false, fmt.Errorf("unknown HMAC key id")
		}
		payload, err = jws.Verify(hk.secret)
	} else {
		k := r.publishedKey(h.KeyID)
		if k == nil {
			return nil, false, fmt.Errorf("unknown key id")
		}
		if k.alg != h.Algorithm {
			return nil, false, fmt.Errorf("algorithm %s does not match key", h.Algorithm)
		}
		payload, err = jws.Verify(k.priv.Public())
	}
	if err != nil {
		return nil, false, fmt.Errorf("signature: %w", err)
	}
	c, err := decodeClaims(payload)
	return c, hmacSigned, err
}

// tokenState is why a token is not usable, "" when it is.
type tokenState string

const (
	tokenOK          tokenState = ""
	tokenInvalid     tokenState = "invalid"
	tokenExpired     tokenState = "expired"
	tokenRevoked     tokenState = "revoked"
	tokenNoSession   tokenState = "no session"
	tokenUserInvalid tokenState = "user disabled or gone"
)

// checkLive applies the server-side checks of introspection and userinfo:
// issuer, expiry, revocation list, session (with the token's client still
// attached) and user. Callers hold no lock.
func (r *Realm) checkLive(c claimSet, issuer string) (*user, tokenState) {
	if c.str("iss") != issuer {
		return nil, tokenInvalid
	}
	now := r.now()
	if !refreshTokenUnexpired(c, now) {
		return nil, tokenExpired
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if jti := c.str("jti"); jti != "" {
		if _, revoked := r.revoked[jti]; revoked {
			return nil, tokenRevoked
		}
	}
	sub := c.str("sub")
	if _, ok := c["sub"]; !ok {
		// A lightweight token names its user through its session only
		// (lightweight.go).
		if s := r.sessions[c.str("sid")]; s != nil {
			sub = s.userID
		}
	}
	u := r.users[sub]
	if u == nil || !u.enabled {
		return nil, tokenUserInvalid
	}
	if sid := c.str("sid"); sid != "" {
		s := r.sessions[sid]
		live := r.sessionLiveLocked(s, now)
		if c.str("typ") == typOffline || strings.HasPrefix(c.str("jti"), "of") {
			live = r.offlineSessionLiveLocked(s, now)
		}
		// A token from token exchange has no client session of its
		// requester (Keycloak: a transient one, jti "nt…"); it lives
		// with the user session.
		if !live || (s.clients[c.str("azp")] == nil && !strings.HasPrefix(c.str("jti"), "nt")) {
			return nil, tokenNoSession
		}
	}
	return u, tokenOK
}

// bearerToken extracts the token of "Authorization: Bearer ...".
func bearerToken(req *http.Request) string {
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// handleUserinfo serves the userinfo endpoint (protocol doc 5.1). Keycloak
// 26.7 answers every refusal with an empty text/plain body and the reason
// in the WWW-Authenticate challenge only: 401 with just `Bearer realm=…`
// without a token, 401 invalid_token for a token it does not accept
// (conformance: userinfo/no-token, userinfo/garbage, userinfo/id-token),
// 403 insufficient_scope for an access token without openid, 401
// invalid_token for a lightweight one (observed on Keycloak 26.7.3).
func handleUserinfo(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	cors := newCORS(w, req, true)
	if r.disabled() {
		cors.allowAll()
	}
	if realmDisabled(r, w) {
		return
	}
	tok := bearerToken(req)
	if tok == "" && req.Method == http.MethodPost {
		if !parseForm(w, req) {
			return
		}
		tok = req.PostForm.Get("access_token")
	}
	refuse := func(status int, code, desc string) {
		challenge := fmt.Sprintf(`Bearer realm=%q`, r.name)
		if code != "" {
			challenge += fmt.Sprintf(`, error=%q, error_description=%q`, code, desc)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		// The reason is only in the challenge, so a cross-origin caller
		// that may read the answer may read it too (observed on Keycloak
		// 26.7.3; success answers do not expose it).
		if exposed := w.Header().Get("Access-Control-Expose-Headers"); exposed != "" {
			w.Header().Set("Access-Control-Expose-Headers", exposed+", WWW-Authenticate")
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain;charset=utf-8")
		w.WriteHeader(status)
	}
	if tok == "" {
		cors.allowAll()
		refuse(http.StatusUnauthorized, "", "")
		return
	}
	c, hmacSigned, err := r.verifySigned(tok)
	// Errors before the token's client is known may be read by any origin;
	// after that, only by the client's web origins.
	var cl *client
	if err == nil {
		cl = r.client(c.str("azp"))
	}
	if cl != nil {
		cors.allowClient(cl.cfg)
	} else {
		cors.allowAll()
	}
	if err != nil || hmacSigned || c.str("typ") != typBearer {
		refuse(http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	u, state := r.checkLive(c, s.issuerFor(req, r.name))
	switch state {
	case tokenOK:
	case tokenNoSession:
		refuse(http.StatusUnauthorized, "invalid_token", "user_session_not_found")
		return
	case tokenUserInvalid:
		refuse(http.StatusUnauthorized, "invalid_token", "User disabled")
		return
	default:
		refuse(http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	if !slices.Contains(strings.Fields(c.str("scope")), "openid") {
		refuse(http.StatusForbidden, "insufficient_scope", "Missing openid scope")
		return
	}
	// After the scope check (observed on Keycloak 26.7.3: a lightweight
	// token without openid gets the 403 above).
	if lightweightToken(c) {
		refuse(http.StatusUnauthorized, "invalid_token", "Lightweight access token not allowed for userinfo endpoint")
		return
	}
	r.mu.RLock()
	g := grant{user: u, scopes: strings.Fields(c.str("scope"))}
	out := map[string]any{"sub": u.id}
	r.userClaims(out, g)
	if cl != nil {
		// The client's mappers and those of the client scopes in effect
		// (its default ones included, whether the scope claim names them
		// or not) with their userinfo flags.
		mg := grant{user: u, client: cl, now: r.now()}
		mg.scopes, _ = clientScopes(cl, strings.Fields(c.str("scope")), u.serviceAccountOf != "", r.dynamicOrganizationScope)
		r.applyMappers(out, mg, toUserinfo)
	}
	r.mu.RUnlock()
	noStore(w)
	writeJSON(w, http.StatusOK, out)
}

// Token introspection providers, chosen by token_type_hint (absent means
// access_token).
const (
	hintAccessToken  = "access_token"
	hintRefreshToken = "refresh_token"
	hintRPT          = "requesting_party_token"
)

// clientAttrIntrospectWithoutAudience lets a client introspect tokens whose
// aud does not name it, as Keycloak's per-client setting of that name.
const clientAttrIntrospectWithoutAudience = "allow.token.introspection.without.audience.check"

// handleIntrospect serves token introspection (protocol doc 5.2), as
// Keycloak 26.7: client authentication failures are 401 invalid_client
// (conformance: introspection/no-client-auth); a token_type_hint selects
// the provider, refresh_token for refresh tokens of the introspecting
// client, access_token (the default) for any token whose aud names the
// introspecting client (conformance: introspection/access), anything else
// 400; an active answer is the token re-mapped from its session, as
// Keycloak's introspection mappers do (conformance:
// introspection/id.body, introspection/refresh.body).
func handleIntrospect(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	if realmDisabled(r, w) || !parseForm(w, req) {
		return
	}
	cl, aerr := r.authenticateClient(req)
	if aerr != nil {
		desc := aerr.descr
		if aerr == errClientCredentials {
			desc = "Client authentication failed."
		}
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", desc)
		return
	}
	if cl.cfg.Public {
		writeOAuthError(w, http.StatusForbidden, "invalid_request", "Client not allowed.")
		return
	}
	for _, v := range req.PostForm {
		if len(v) != 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "duplicated parameter")
			return
		}
	}
	hint := req.PostForm.Get("token_type_hint")
	if hint == "" {
		hint = hintAccessToken
	}
	if _, ok := req.PostForm["token"]; !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Token not provided.")
		return
	}
	if hint != hintAccessToken && hint != hintRefreshToken && hint != hintRPT {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Unsupported token type.")
		return
	}
	noStore(w)
	out := r.introspect(req.PostForm.Get("token"), hint == hintRefreshToken, cl, s.issuerFor(req, r.name))
	if out == nil {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// introspect returns the active answer for tok, or nil when it is
// inactive for the introspecting client cl.
func (r *Realm) introspect(tok string, refreshHint bool, cl *client, issuer string) map[string]any {
	c, _, err := r.verifySigned(tok)
	if err != nil {
		return nil
	}
	typ := c.str("typ")
	refresh := typ == typRefresh || typ == typOffline
	if refreshHint && !refresh || !refresh && typ != typBearer && typ != typDPoP && typ != typID {
		return nil
	}
	tc := r.client(c.str("azp"))
	if tc == nil || tc.cfg.Disabled {
		return nil
	}
	u, state := r.checkLive(c, issuer)
	if state != tokenOK {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if refreshHint && r.cfg.RevokeRefreshToken && !r.refreshReusableLocked(c) {
		return nil
	}
	out := r.introspectionClaimsLocked(c, u, tc)
	// The refresh_token provider accepts its own client's tokens; the
	// access_token provider those whose aud names the introspecting client,
	// azp not counting (Keycloak logs "Client '…' is not in the token
	// audience").
	if refreshHint {
		if cl.cfg.ClientID != tc.cfg.ClientID {
			return nil
		}
	} else if !slices.Contains(checkedAudience(c, out), cl.cfg.ClientID) &&
		cl.cfg.Attributes[clientAttrIntrospectWithoutAudience] != "true" {
		return nil
	}
	out["client_id"] = c.str("azp")
	if name, ok := out["preferred_username"].(string); ok {
		out["username"] = name
	} else {
		out["username"] = u.username
	}
	out["token_type"] = typ
	out["active"] = true
	return out
}

// introspectionClaimsLocked re-maps a token as Keycloak 26.7's
// introspection does: the token's own identifying claims (exp, iat, jti,
// iss, sub, typ, azp, sid, nonce, scope; its aud, joined by the audiences
// the mappers add) and the claims its session gives now through the
// client scopes of the token's scope (the client's defaults for an ID
// token, which has none): auth_time, acr, allowed-origins, roles, profile
// and email. Hashes such as at_hash, the refresh token's prov and aud_x,
// and the service account's client address are not repeated.
func (r *Realm) introspectionClaimsLocked(c claimSet, u *user, tc *client) map[string]any {
	scopes, _ := clientScopes(tc, strings.Fields(c.str("scope")), u.serviceAccountOf != "", r.dynamicOrganizationScope)
	g := grant{issuer: c.str("iss"), user: u, client: tc, scopes: scopes, now: r.now(), introspection: true}
	if s := r.sessions[c.str("sid")]; s != nil {
		g.session = s
		if cs := s.clients[tc.cfg.ClientID]; cs != nil {
			g.acr = cs.acr
		}
	}
	out := r.accessClaims(g)
	delete(out, "clientHost")
	delete(out, "clientAddress")
	mapped := out["aud"]
	for _, k := range []string{"exp", "iat", "jti", "iss", "sub", "typ", "azp", "sid", "nonce", "scope", "cnf", "aud"} {
		if v, ok := c[k]; ok {
			out[k] = v
		} else if k != "sub" {
			// A lightweight token's sub is the re-mapped one (the basic
			// scope's), as in Keycloak 26.7.3's answer (lightweight.go).
			delete(out, k)
		}
	}
	if strings.TrimSpace(c.str("scope")) == "" {
		delete(out, "scope")
	}
	setAudience(out, append(audienceOf(c["aud"]), audienceOf(mapped)...))
	return out
}

// checkedAudience is the aud the access_token provider checks: the
// token's own when it has one (what the mappers would add now does not
// count), else the re-mapped token's.
func checkedAudience(c claimSet, remapped map[string]any) []string {
	if _, ok := c["aud"]; ok {
		return audienceOf(c["aud"])
	}
	return audienceOf(remapped["aud"])
}

// audienceOf reads aud, a string or an array of strings.
func audienceOf(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []string:
		return a
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// refreshReusableLocked applies the refresh token rotation checks without
// counting a use, as Keycloak's refresh-token introspection does when the
// realm revokes refresh tokens: a superseded or over-used token is
// inactive.
func (r *Realm) refreshReusableLocked(c claimSet) bool {
	s := r.sessions[c.str("sid")]
	if s == nil {
		return false
	}
	cs := s.clients[c.str("azp")]
	if cs == nil {
		return false
	}
	jti := c.str("jti")
	if jti != cs.current {
		return cs.issued[jti] >= cs.lastRefresh
	}
	return cs.useCount <= r.cfg.RefreshTokenMaxReuse
}

// handleRevoke serves token revocation (protocol doc 5.3).
func handleRevoke(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	cors := newCORS(w, req, true)
	if r.disabled() {
		cors.allowAll()
	}
	if realmDisabled(r, w) || !parseForm(w, req) {
		return
	}
	cl, aerr := r.authenticateClient(req)
	if aerr != nil {
		aerr.write(w)
		return
	}
	cors.allowClient(cl.cfg)
	tok := req.PostForm.Get("token")
	if tok == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Token not provided")
		return
	}
	noStore(w)
	c, _, err := r.verifySigned(tok)
	if err != nil || c.str("iss") != s.issuerFor(req, r.name) {
		writeOAuthError(w, http.StatusOK, "invalid_token", "Invalid token")
		return
	}
	typ := c.str("typ")
	if typ != typBearer && typ != typRefresh && typ != typOffline {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_token_type", "Unsupported token type")
		return
	}
	if c.str("azp") != cl.cfg.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Unmatching clients")
		return
	}
	r.mu.Lock()
	var jobs []logoutJob
	if typ == typBearer {
		exp, _ := c.num("exp")
		r.revoked[c.str("jti")] = unixTime(exp)
	} else if s := r.sessions[c.str("sid")]; s != nil {
		// Revoking a refresh token ends the client's part of the session,
		// and the whole session (with back-channel logout to the clients it
		// had) when no other client is left in it.
		if _, only := s.clients[cl.cfg.ClientID]; only && len(s.clients) == 1 && !s.ended {
			jobs = r.endSessionLocked(s)
		}
		delete(s.clients, cl.cfg.ClientID)
		if len(s.clients) == 0 {
			s.ended = true
		}
	}
	r.mu.Unlock()
	r.deliverLogouts(jobs)
	w.WriteHeader(http.StatusOK)
}
