package keycloaktest

// Lightweight access tokens (Keycloak 24+), as Keycloak 26.7.3 issues
// them (observed on 26.7.3, e2e/realkeycloak_lightweight_test.go and the
// conformance scenario lightweight/*):
//
//   - the client attribute client.use.lightweight.access.token.enabled
//     "true" (the admin console's "Always use lightweight access token")
//     makes every access token of the client lightweight: password, code,
//     refresh and client_credentials grants alike; ID and refresh tokens
//     are unchanged;
//   - a lightweight token carries exp, iat, jti, iss, typ, azp, sid (with
//     a user session) and scope; sub only without a user session (a
//     service account's transient one); cnf when DPoP-bound; and the
//     claims of the mappers whose lightweight.claim is "true", whatever
//     their access.token.claim says — audience mappers' aud included. No
//     built-in mapper has lightweight.claim, so no sub, aud, acr,
//     auth_time, allowed-origins, roles, profile or email claim;
//   - its jti names the token type "lt" ("onltro:…") instead of "rt";
//   - introspection answers the full claims, as for a full token (the
//     mappers' introspection flags), and checks the audience on the
//     token's own aud when it has one, else on the aud the introspection
//     mappers give (handleIntrospect, checkedAudience);
//   - introspection finds the user of a token without sub through its
//     session (checkLive); userinfo refuses lightweight tokens, 401
//     invalid_token "Lightweight access token not allowed for userinfo
//     endpoint", after its openid scope check;
//   - the refresh token issued with a lightweight access token has no sub
//     either, and its aud_x is the lightweight token's aud. keycloaktest
//     keeps sub there: its refresh grant and token exchange find the user
//     by sub (listed in interop/conformance/lightweight-allowlist.txt).

// clientAttrLightweight is the client attribute that makes a client's
// access tokens lightweight.
const clientAttrLightweight = "client.use.lightweight.access.token.enabled"

// mapperLightweight is the mapper option "Add to lightweight access
// token".
const mapperLightweight = "lightweight.claim"

// lightweight reports whether the grant's access token is lightweight:
// its client says so, and it is not the full claims introspection
// computes.
func (g grant) lightweight() bool {
	return !g.introspection && g.client != nil && g.client.cfg.Attributes[clientAttrLightweight] == "true"
}

// lightweightAccessClaims builds a lightweight access token's claims.
func (r *Realm) lightweightAccessClaims(g grant) map[string]any {
	c := map[string]any{
		"exp": g.now.Add(r.accessLifespanFor(g.client)).Unix(),
		"iat": g.now.Unix(),
		"jti": accessTokenID(g),
		"iss": g.issuer,
		"typ": typBearer,
		"azp": g.client.cfg.ClientID,
	}
	if g.session != nil {
		c["sid"] = g.session.id
	} else {
		// No session to find the user by: a service account's token
		// names it (observed on 26.7.3: "trltcc:…" tokens carry sub).
		c["sub"] = g.user.id
	}
	var aud []string
	for _, m := range r.mappersInEffect(g) {
		if m.Config[mapperLightweight] != "true" {
			continue
		}
		if m.Type == mapperAudience {
			for _, key := range []string{"included.client.audience", "included.custom.audience"} {
				if a := m.Config[key]; a != "" {
					aud = append(aud, a)
				}
			}
			continue
		}
		for _, cv := range r.mapperClaims(m, g) {
			setClaim(c, cv.name, cv.value)
		}
	}
	setAudience(c, aud)
	c["scope"] = scopeClaim(r.tokenScopes(r.memberScopesLocked(g.scopes, g.user)))
	dpopBind(c, g, true)
	return c
}

// lightweightToken reports whether an issued access token is lightweight:
// its jti names the token type "lt".
func lightweightToken(c claimSet) bool {
	jti := c.str("jti")
	return len(jti) > 7 && jti[6] == ':' && jti[2:4] == "lt"
}
