// Package keycloaktest is a Keycloak-compatible OpenID Provider for tests and
// for `cloakroom dev`.
//
// It reproduces what Keycloak 26.x serves at its own paths
// ({base}/realms/{realm}/...): discovery, JWKS, the token endpoint (password,
// client_credentials and refresh_token grants), userinfo, introspection and
// revocation, with Keycloak's JSON shapes, error bodies and token claims.
// Realms are configured in Go (RealmConfig) or loaded from a Keycloak
// realm-export file, and can be exported again in a form a real Keycloak can
// import.
//
// Besides serving real flows, a Realm mints tokens directly (Realm.Token) with
// options that produce the malformed and hostile tokens a verifier must
// refuse: expired, wrong audience or issuer, unsigned, signed by an unknown
// key, HS256 signed with the public key, and so on. A Fault switch makes the
// server refuse connections, answer with an error status or respond slowly.
//
// The package deliberately depends on no other cloakroom package: it is the
// independent peer the verifier is tested against, so a verifier bug cannot
// hide on both sides.
package keycloaktest
