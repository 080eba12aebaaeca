// Package interop runs clients that nobody on the cloakroom project wrote
// against keycloaktest, cloakroom's Keycloak-compatible test server, so that
// a bug shared by cloakroom's client code and keycloaktest cannot hide.
//
// The peers are github.com/coreos/go-oidc/v3 (discovery, ID and access token
// verification, UserInfo, back-channel logout tokens, key rotation),
// golang.org/x/oauth2 (the token endpoint) and github.com/Nerzal/gocloak/v13
// (login, client credentials, refresh, userinfo, introspection, logout,
// certs, realm info, token decoding and the legacy /auth prefix). A last
// group of tests runs cloakroom's own Verifier side by side with go-oidc on
// the same real keycloaktest tokens and checks that the two reach the same
// verdict, and documents the few cases where cloakroom is deliberately
// stricter.
//
// Everything lives in _test.go files; this package has no API. It is a
// separate Go module (github.com/cloakroom/cloakroom/interop, with a replace
// directive pointing at the repository root) so that these third-party
// clients never become dependencies of the cloakroom library itself.
//
// Run it from this directory:
//
//	cd interop && go test -race ./...
//
// The tests need no network: keycloaktest listens on 127.0.0.1.
package interop
