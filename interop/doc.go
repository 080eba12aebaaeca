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
// The other direction is tested too: with CLOAKROOM_INTEROP_PEERS=1, real
// OpenID Providers that are not Keycloak (dex v2.45.1, the zitadel/oidc
// v3.49.2 example OP and ORY Hydra v2.3.0), built from the Go module proxy
// by peers/build.sh into ~/.cache/cloakroom-peers and started on
// 127.0.0.1, face cloakroom's login package, gateway and bearer
// verification with the generic profile (peers_test.go, dex_test.go,
// zitadel_test.go, hydra_test.go). Without the variable those tests skip.
//
// Run it from this directory:
//
//	cd interop && go test -race ./...
//	cd interop && CLOAKROOM_INTEROP_PEERS=1 go test -race ./...
//
// The tests need no network beyond the Go module proxy for the first peer
// build: every server listens on 127.0.0.1.
package interop
