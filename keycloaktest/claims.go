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
	issuer     string
	user       *user
	client     *client
	session    *userSession // nil for service-account (client_credentials) tokens
	scopes     []string     // granted client scopes, "openid" included when requested
	nonce      string
	clientAddr string // remote address, for service-account claims
	acr        string // achieved authentication context; "" means "1"
	now        time.Time
}

func (g grant) has(scope string) bool { return slices.Contains(g.scopes, scope) }

// acrValue is the acr claim: "1" for a password login unless the browser
// flow recorded something else ("0" for an SSO login, a mapped ACR name).
func (g grant) acrValue() string {
	if g.acr == "" {
		return "1"
	}
	return g.acr
}

func (g grant) offline() bool { return g.has("offline_access") }

// grantScopes applies Keycloak's client-scope rules to a scope parameter:
// the client's default scopes always apply, optional ones only when
// requested, and anything else makes the request invalid (ok false).
func grantScopes(c *client, requested string, serviceAccount bool) (scopes []string, ok bool) {
	defaults := c.cfg.DefaultScopes
	if defaults == nil {
		defaults = keycloakDefaultScopes
	}
	optional := c.cfg.OptionalScopes
	if optional == nil {
		optional = keycloakOptionalScopes
	}
	granted := slices.Clone(defaults)
	if serviceAccount {
		// Keycloak 26.1+ applies the realm scope service_account to
		// client_credentials tokens.
		granted = append(granted, "service_account")
	}
	var invalid bool
	for _, s := range strings.Fields(requested) {
		switch {
		case s == "openid":
			granted = append(granted, s)
		case slices.Contains(defaults, s):
		case slices.Contains(optional, s):
			granted = append(granted, s)
		default:
			invalid = true
		}
	}
	if invalid {
		return nil, false
	}
	return dedupe(granted), true
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

// accessClaims builds an access token's claims (protocol doc 4.2).
func (r *Realm) accessClaims(g grant) map[string]any {
	c := map[string]any{
		"exp": g.now.Add(r.accessLifespanFor(g.client)).Unix(),
		"iat": g.now.Unix(),
		"jti": newUUID(),
		"iss": g.issuer,
		"typ": typBearer,
		"azp": g.client.cfg.ClientID,
	}
	if g.has("basic") {
		c["sub"] = g.user.id
		if g.session != nil {
			c["sid"] = g.session.id
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
		c["realm_access"] = map[string]any{"roles": r.effectiveRealmRoles(g.user)}
		ra := map[string]any{}
		for clientID, roles := range r.effectiveClientRoles(g.user) {
			if len(roles) == 0 {
				continue
			}
			ra[clientID] = map[string]any{"roles": roles}
			// Audience resolve: every client the user holds roles on, except
			// the client the token is issued to.
			if clientID != g.client.cfg.ClientID {
				resolved = append(resolved, clientID)
			}
		}
		c["resource_access"] = ra
	}
	setAudience(c, append(slices.Clone(g.client.cfg.Audiences), dedupe(resolved)...))
	c["scope"] = scopeClaim(g.scopes)
	r.userClaims(c, g)
	if g.has("microprofile-jwt") {
		c["upn"] = g.user.username
		c["groups"] = r.effectiveRealmRoles(g.user)
	}
	if g.user.serviceAccountOf != "" {
		c["client_id"] = g.client.cfg.ClientID
		host := g.clientAddr
		if host == "" {
			host = "127.0.0.1"
		}
		c["clientHost"] = host
		c["clientAddress"] = host
	}
	return c
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
		"acr": g.acrValue(),
	}
	if g.session != nil {
		c["sid"] = g.session.id
		c["auth_time"] = g.session.authTime
	}
	if g.nonce != "" {
		c["nonce"] = g.nonce
	}
	if accessToken != "" {
		c["at_hash"] = atHash(accessToken)
	}
	r.userClaims(c, g)
	return c
}

// atHash is the left half of SHA-256 of the token, base64url: the at_hash
// for the 256-bit algorithms a realm signs with.
func atHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// refreshExpiry is when a refresh token issued now dies: the session idle
// timeout capped by the session max (offline: the offline idle timeout).
func (r *Realm) refreshExpiry(g grant) time.Time {
	if g.offline() {
		return g.now.Add(offlineSessionIdle)
	}
	exp := g.now.Add(r.cfg.SSOSessionIdle)
	if g.session != nil {
		if limit := g.session.started.Add(r.cfg.SSOSessionMax); exp.After(limit) {
			exp = limit
		}
	}
	return exp
}

// refreshClaims builds a refresh (or offline) token's claims (4.4).
func (r *Realm) refreshClaims(g grant) map[string]any {
	typ := typRefresh
	if g.offline() {
		typ = typOffline
	}
	c := map[string]any{
		"exp":   r.refreshExpiry(g).Unix(),
		"iat":   g.now.Unix(),
		"jti":   newUUID(),
		"iss":   g.issuer,
		"aud":   g.issuer,
		"sub":   g.user.id,
		"typ":   typ,
		"azp":   g.client.cfg.ClientID,
		"scope": scopeClaim(g.scopes),
	}
	if g.session != nil {
		c["sid"] = g.session.id
	}
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
