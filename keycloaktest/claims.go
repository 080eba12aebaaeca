package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Keycloak's "typ" claim values (protocol doc 4.6).
const (
	typBearer  = "Bearer"
	typID      = "ID"
	typRefresh = "Refresh"
	typOffline = "Offline"
	typLogout  = "Logout"
)

const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// grant is everything token issuance needs, gathered under the realm lock.
type grant struct {
	issuer  string
	user    *user
	client  *client
	session *userSession // nil for service-account (client_credentials) tokens
	scopes  []string     // client scopes applied to the tokens, "openid" included when requested
	// granted is every client scope of the login (nil: scopes). A refresh
	// with a narrower scope parameter narrows scopes but not granted:
	// Keycloak 26.7 keeps the refresh token's scope claim, its offline
	// type and the ID token as they were at login (observed on 26.7.3).
	granted    []string
	grantType  string // the OAuth grant, for the access token's jti prefix
	nonce      string
	clientAddr string // remote address, for service-account claims
	acr        string // achieved authentication context; "" means "1"
	now        time.Time
	// introspection makes accessClaims apply the protocol mappers'
	// introspection flags instead of their access-token ones.
	introspection bool
	// dpopJKT is the thumbprint of the token request's DPoP key: the
	// tokens are bound to it (dpop.go).
	dpopJKT string
}

// Grant types, as the token endpoint's grant_type parameter names them.
const (
	grantAuthorizationCode = "authorization_code"
	grantPassword          = "password"
	grantClientCredentials = "client_credentials"
	grantRefreshToken      = "refresh_token"
)

func (g grant) has(scope string) bool { return slices.Contains(g.scopes, scope) }

// grantedScopes are the scopes of the login, which the refresh token lists.
func (g grant) grantedScopes() []string {
	if g.granted != nil {
		return g.granted
	}
	return g.scopes
}

// idToken reports whether the token response carries an ID token: the login
// asked for openid (a refresh keeps issuing it even when its own scope
// parameter leaves openid out, as Keycloak 26.7.3 does).
func (g grant) idToken() bool { return slices.Contains(g.grantedScopes(), "openid") }

// acrValue is the acr claim: "1" for a password login unless the browser
// flow recorded something else ("0" for an SSO login, a mapped ACR name).
func (g grant) acrValue() string {
	if g.acr == "" {
		return "1"
	}
	return g.acr
}

func (g grant) offline() bool { return slices.Contains(g.grantedScopes(), "offline_access") }

// grantScopes applies Keycloak's client-scope rules to a scope parameter:
// the client's default scopes always apply, optional ones only when
// requested, and anything else makes the request invalid (ok false).
func grantScopes(c *client, requested string, serviceAccount bool, dyn scopeResolver) (scopes []string, ok bool) {
	scopes, unknown := clientScopes(c, strings.Fields(requested), serviceAccount, dyn)
	if len(unknown) > 0 {
		return nil, false
	}
	return scopes, true
}

// clientScopes is grantScopes on a list, returning the names the client
// does not have instead of failing. Keycloak 26.1+ makes the realm scope
// service_account a default scope of every client with service accounts
// enabled, so it is granted to all of that client's logins, users'
// included: their refresh tokens list it (conformance:
// password/alice.refresh_token.value.scope), although it adds claims only
// to service-account tokens.
func clientScopes(c *client, names []string, serviceAccount bool, dyn scopeResolver) (granted, unknown []string) {
	defaults := c.cfg.DefaultScopes
	if defaults == nil {
		defaults = keycloakDefaultScopes
	}
	optional := c.cfg.OptionalScopes
	if optional == nil {
		optional = keycloakOptionalScopes
	}
	granted = slices.Clone(defaults)
	if serviceAccount || c.cfg.ServiceAccounts {
		granted = append(granted, "service_account")
	}
	for _, s := range names {
		switch {
		case s == "openid":
			granted = append(granted, s)
		case slices.Contains(granted, s):
		case slices.Contains(optional, s):
			granted = append(granted, s)
		default:
			// A dynamic scope (organization:ALIAS, organization:*) of a
			// scope the client has, naming something the realm knows.
			if dyn != nil {
				if base, _, ok := strings.Cut(s, ":"); ok && (slices.Contains(defaults, base) || slices.Contains(optional, base)) {
					if dynamic, known := dyn(s); dynamic && known {
						granted = append(granted, s)
						continue
					}
				}
			}
			unknown = append(unknown, s)
		}
	}
	return dedupe(granted), unknown
}

// scopeClaim renders granted scopes as Keycloak's "scope" claim: openid
// first, then the scopes that are included in the token scope.
func scopeClaim(scopes []string) string {
	var out []string
	if slices.Contains(scopes, "openid") {
		out = append(out, "openid")
	}
	for _, s := range scopes {
		if s != "openid" && !slices.Contains(scopesOutsideTokenScope, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// refreshScopeClaim renders granted scopes as the refresh token's "scope"
// claim: openid first, then every client scope granted, those kept out of
// the access token's scope included (conformance:
// password/alice-openid.refresh_token.value.scope lists acr, basic, roles,
// service_account and web-origins).
func refreshScopeClaim(scopes []string) string {
	var out []string
	if slices.Contains(scopes, "openid") {
		out = append(out, "openid")
	}
	for _, s := range scopes {
		if s != "openid" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// accessTokenID is the jti of an access token. Keycloak 26.2+ prefixes the
// id with the token's context: the session type (on online, of offline,
// tr transient, for client_credentials), the token type (rt regular) and
// the grant (ac authorization code, ro password, rt refresh, cc client
// credentials), e.g. "onrtac:…", and "lt" for a lightweight token
// ("onltro:…", lightweight.go) (observed on Keycloak 26.7.3).
func accessTokenID(g grant) string {
	session := "tr"
	if g.session != nil {
		session = "on"
		if g.offline() {
			session = "of"
		}
	}
	shortcut := "na"
	switch g.grantType {
	case grantAuthorizationCode:
		shortcut = "ac"
	case grantPassword:
		shortcut = "ro"
	case grantRefreshToken:
		shortcut = "rt"
	case grantClientCredentials:
		shortcut = "cc"
	}
	kind := "rt"
	if g.lightweight() {
		kind = "lt"
	}
	return session + kind + shortcut + ":" + newUUID()
}

func (r *Realm) accessLifespan() time.Duration { return r.cfg.AccessTokenLifespan }

// clientAccessTokenLifespan is the client attribute Keycloak's admin
// console calls "Access Token Lifespan" (advanced settings): seconds,
// overriding the realm's lifespan when positive.
const clientAccessTokenLifespan = "access.token.lifespan"

// accessLifespanFor is the access (and ID) token lifespan for a client.
func (r *Realm) accessLifespanFor(c *client) time.Duration {
	if c != nil {
		if n, err := strconv.Atoi(c.cfg.Attributes[clientAccessTokenLifespan]); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return r.accessLifespan()
}

// accessClaims builds an access token's claims (protocol doc 4.2): a
// lightweight one's for a client that asks for them (lightweight.go).
func (r *Realm) accessClaims(g grant) map[string]any {
	if g.lightweight() {
		return r.lightweightAccessClaims(g)
	}
	c := map[string]any{
		"exp": g.now.Add(r.accessLifespanFor(g.client)).Unix(),
		"iat": g.now.Unix(),
		"jti": accessTokenID(g),
		"iss": g.issuer,
		"typ": typBearer,
		"azp": g.client.cfg.ClientID,
	}
	// sid comes with every session; sub and auth_time only from the basic
	// scope (conformance: import/hand.hand-app.*, a client without basic).
	if g.session != nil {
		c["sid"] = g.session.id
	}
	if g.has("basic") {
		c["sub"] = g.user.id
		if g.session != nil && g.session.authTime != 0 {
			c["auth_time"] = g.session.authTime
		}
	}
	if g.has("acr") {
		c["acr"] = g.acrValue()
	}
	if g.has("web-origins") {
		if origins := allowedOrigins(g.client.cfg); len(origins) > 0 {
			c["allowed-origins"] = origins
		}
	}
	var resolved []string
	if g.has("roles") {
		// realm_access and resource_access, each left out when empty
		// (conformance: password/bob-openid), and the audience they
		// resolve to (roles.go).
		resolved = r.roleClaims(c, g.user, g.client.cfg.ClientID)
	}
	target := toAccess
	if g.introspection {
		target = toIntrospection
	}
	aud := append(slices.Clone(g.client.cfg.Audiences), r.mapperAudiences(g, target)...)
	setAudience(c, append(aud, dedupe(resolved)...))
	c["scope"] = scopeClaim(r.tokenScopes(r.memberScopesLocked(g.scopes, g.user)))
	r.userClaims(c, g)
	if g.has("microprofile-jwt") {
		c["upn"] = g.user.username
		c["groups"] = r.effectiveRealmRoles(g.user)
	}
	serviceAccountClaims(c, g)
	r.applyMappers(c, g, target)
	dpopBind(c, g, true)
	return c
}

// serviceAccountClaims adds the claims of the service_account scope's
// mappers, which read notes only a client_credentials session has: access
// and ID tokens both carry them (observed on Keycloak 26.7.3).
func serviceAccountClaims(c map[string]any, g grant) {
	if g.user.serviceAccountOf == "" {
		return
	}
	c["client_id"] = g.client.cfg.ClientID
	host := g.clientAddr
	if host == "" {
		host = "127.0.0.1"
	}
	c["clientHost"] = host
	c["clientAddress"] = host
}

// userClaims adds the email and profile scope claims.
func (r *Realm) userClaims(c map[string]any, g grant) {
	u := g.user
	if g.has("email") {
		c["email_verified"] = u.emailVerified
		if u.email != "" {
			c["email"] = u.email
		}
	}
	if g.has("profile") {
		c["preferred_username"] = u.username
		if name := strings.TrimSpace(u.firstName + " " + u.lastName); name != "" {
			c["name"] = name
		}
		if u.firstName != "" {
			c["given_name"] = u.firstName
		}
		if u.lastName != "" {
			c["family_name"] = u.lastName
		}
	}
}

// idClaims builds an ID token's claims (protocol doc 4.3). accessToken, when
// not empty, is hashed into at_hash.
func (r *Realm) idClaims(g grant, accessToken string) map[string]any {
	c := map[string]any{
		"exp": g.now.Add(r.accessLifespanFor(g.client)).Unix(),
		"iat": g.now.Unix(),
		"jti": newUUID(),
		"iss": g.issuer,
		"aud": g.client.cfg.ClientID,
		"sub": g.user.id,
		"typ": typID,
		"azp": g.client.cfg.ClientID,
	}
	// acr is the acr scope's mapper, in ID tokens as in access tokens
	// (conformance: import/kc26.exp-app.*, a client without default scopes).
	if g.has("acr") {
		c["acr"] = g.acrValue()
	}
	if g.session != nil {
		c["sid"] = g.session.id
		if g.session.authTime != 0 {
			c["auth_time"] = g.session.authTime
		}
	}
	if g.nonce != "" {
		c["nonce"] = g.nonce
	}
	if accessToken != "" {
		c["at_hash"] = atHash(accessToken)
	}
	r.userClaims(c, g)
	serviceAccountClaims(c, g)
	// Audience mappers with id.token.claim add to the ID token's aud, after
	// the client (observed on 26.7.3: ["app","aud-id"]).
	setAudience(c, append([]string{g.client.cfg.ClientID}, r.mapperAudiences(g, toID)...))
	r.applyMappers(c, g, toID)
	return c
}

// atHash is the left half of SHA-256 of the token, base64url: the at_hash
// for the 256-bit algorithms a realm signs with.
func atHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// refreshExpiry is when a refresh token issued now dies: the session idle
// timeout capped by the session max. Offline tokens are not called here:
// they carry no exp (see refreshClaims).
func (r *Realm) refreshExpiry(g grant) time.Time {
	exp := g.now.Add(r.cfg.SSOSessionIdle)
	if g.session != nil {
		if limit := g.session.started.Add(r.cfg.SSOSessionMax); exp.After(limit) {
			exp = limit
		}
	}
	return exp
}

// refreshClaims builds a refresh (or offline) token's claims (4.4).
// accessAud is the aud of the access token issued with it (nil if none),
// which Keycloak 26.7 keeps in the refresh token as "aud_x", next to "prov",
// the refresh-token provider that issued it, always "default" (observed on
// Keycloak 26.7.3; conformance: password/alice.refresh_token.claims.prov).
// An offline token has no exp: with offline session max lifespan off, as by
// default, Keycloak enforces only the offline idle timeout, server-side,
// and answers refresh_expires_in 0 (observed on Keycloak 26.7.3).
func (r *Realm) refreshClaims(g grant, accessAud any) map[string]any {
	typ := typRefresh
	if g.offline() {
		typ = typOffline
	}
	c := map[string]any{
		"iat":   g.now.Unix(),
		"jti":   newUUID(),
		"iss":   g.issuer,
		"aud":   g.issuer,
		"sub":   g.user.id,
		"typ":   typ,
		"azp":   g.client.cfg.ClientID,
		"scope": refreshScopeClaim(g.grantedScopes()),
		"prov":  "default",
	}
	if typ != typOffline {
		c["exp"] = r.refreshExpiry(g).Unix()
	}
	if g.session != nil {
		c["sid"] = g.session.id
	}
	if accessAud != nil {
		c["aud_x"] = accessAud
	}
	dpopBind(c, g, false)
	return c
}

// logoutClaims builds a back-channel logout token's claims (4.5).
func (r *Realm) logoutClaims(g grant) map[string]any {
	c := map[string]any{
		"iat":    g.now.Unix(),
		"exp":    g.now.Add(logoutTokenLifetime).Unix(),
		"jti":    newUUID(),
		"iss":    g.issuer,
		"aud":    g.client.cfg.ClientID,
		"sub":    g.user.id,
		"typ":    typLogout,
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}
	if g.session != nil && g.client.cfg.BackchannelLogoutSessionRequired {
		c["sid"] = g.session.id
	}
	return c
}

// setAudience stores aud as Keycloak does: absent, a string, or an array.
func setAudience(c map[string]any, aud []string) {
	var uniq []string
	for _, a := range aud {
		if a != "" && !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	switch len(uniq) {
	case 0:
		delete(c, "aud")
	case 1:
		c["aud"] = uniq[0]
	default:
		c["aud"] = uniq
	}
}
