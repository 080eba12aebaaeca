package cloakroom

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Profile selects provider-specific rules. It is chosen in one place,
// VerifierConfig.Profile (login takes it in login.Config.Verifier, the
// gateway's YAML as profile:), and ParseProfile reads its name from
// configuration text. Whatever the profile, the security defaults hold:
// signature with an allow-listed algorithm, exact issuer, audience, times,
// and one kind of token never passing for another.
type Profile int

const (
	// Keycloak (the default) requires Keycloak's typ claim ("Bearer" for
	// access tokens, "ID" for ID tokens); roles are realm_access.roles.
	Keycloak Profile = iota
	// GenericOIDC relies on no Keycloak-only claim: a typ claim is checked
	// when present. Access tokens with claims only ID tokens carry (nonce,
	// at_hash, c_hash, s_hash, token_use "id") are refused; a JOSE typ
	// "at+jwt" (RFC 9068) is accepted. Roles come from
	// VerifierConfig.RolesClaim.
	GenericOIDC
	// AutoDetect chooses Keycloak or GenericOIDC from the provider's
	// discovery document the first time a token is verified: Keycloak
	// when the issuer's path ends in /realms/{name} and the authorization,
	// token or JWKS endpoint lies under {issuer path}/protocol/openid-connect/
	// (Keycloak's layout; hosts are not compared, as Keycloak may announce
	// its backend URL), GenericOIDC otherwise. Discovery failing fails
	// verification (closed), and a Keycloak-shaped provider always gets
	// the Keycloak rules.
	AutoDetect
)

// String returns the profile's configuration name: "keycloak", "generic"
// or "auto".
func (p Profile) String() string {
	switch p {
	case Keycloak:
		return "keycloak"
	case GenericOIDC:
		return "generic"
	case AutoDetect:
		return "auto"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// ParseProfile reads a profile name as String writes it ("keycloak",
// "generic" or "auto"; "oidc" is accepted for generic). The empty string
// is Keycloak, the default.
func ParseProfile(s string) (Profile, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "keycloak":
		return Keycloak, nil
	case "generic", "oidc":
		return GenericOIDC, nil
	case "auto":
		return AutoDetect, nil
	}
	return 0, fmt.Errorf("cloakroom: unknown profile %q (want keycloak, generic or auto)", s)
}

// DefaultRolesClaim is where roles are read unless VerifierConfig.RolesClaim
// says otherwise: Keycloak's realm roles. Tokens of other providers usually
// lack it, so role checks then fail closed until a RolesClaim is configured.
const DefaultRolesClaim = "realm_access.roles"

// detectProfile tells a Keycloak realm from another OpenID Provider by its
// discovery document (see AutoDetect). A nil document is GenericOIDC.
func detectProfile(m *Metadata) Profile {
	if m == nil {
		return GenericOIDC
	}
	iss, err := url.Parse(m.Issuer)
	if err != nil {
		return GenericOIDC
	}
	base := strings.TrimSuffix(iss.EscapedPath(), "/")
	i := strings.LastIndex(base, "/realms/")
	if i < 0 || i+len("/realms/") == len(base) || strings.Contains(base[i+len("/realms/"):], "/") {
		return GenericOIDC
	}
	prefix := base + "/protocol/openid-connect/"
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.JWKSURI} {
		if u, err := url.Parse(e); err == nil && e != "" && strings.HasPrefix(u.EscapedPath(), prefix) {
			return Keycloak
		}
	}
	return GenericOIDC
}

// resolveProfile returns p itself when it is Keycloak or GenericOIDC, and
// the profile detected from the realm's discovery document for AutoDetect:
// an explicit setting always wins. Errors wrap ErrUnavailable.
func (r *Realm) resolveProfile(ctx context.Context, p Profile) (Profile, error) {
	if p != AutoDetect {
		return p, nil
	}
	m, err := r.Discover(ctx)
	if err != nil {
		return 0, err
	}
	return detectProfile(m), nil
}
