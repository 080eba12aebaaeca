// Package cloakroom is Keycloak single sign-on for Go services: it verifies
// Keycloak's tokens, and its sub-packages use that to protect APIs, log
// browser users in, manage Keycloak users and run a gateway.
//
// # Where each job lives
//
//	protect an API with bearer tokens     package bearer   (middleware; 401/403/503 per RFC 6750)
//	log browser users in and out          package login    (code flow, sessions, logout)
//	                                      package session  (encrypted server-side sessions and stores)
//	manage Keycloak users                 package admin    (Admin REST API client)
//	                                      package directory (your own user table, kept in step)
//	protect any HTTP application          package gateway  (the `cloakroom serve` reverse proxy)
//	test all of it without Keycloak       package keycloaktest (an in-process Keycloak twin)
//
// This package holds what they share: a [Realm] (one issuer: discovery,
// signing keys, introspection), a [Verifier] made from it with a
// [VerifierConfig] (every security check on access, ID and logout tokens),
// the verified [Claims] with Keycloak's helpers (roles, scopes, groups),
// and [Requirement], the one vocabulary for "who may do this" (realm and
// client roles, scopes, permissions, acr) that bearer, login and the
// gateway all use, with one wording for a refusal.
//
// # The shortest program
//
//	realm, err := cloakroom.NewRealm("https://sso.example.com/realms/myrealm")
//	verifier, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orders-api"})
//	claims, err := verifier.Verify(ctx, rawAccessToken)
//	if cloakroom.AnyRealmRole("admin").Allows(claims) { … }
//
// In an HTTP service, hand the verifier to bearer.New instead and let the
// middleware do this on every request. A VerifierConfig is the one place
// verification is configured (algorithms, leeway, profile, roles claim):
// login takes it as login.Config.Verifier, and the gateway builds it from
// its YAML settings.
//
// ExampleRealm_NewVerifier runs this program against keycloaktest. Every
// package has its one-screen program as a runnable example:
// ExampleAuthenticator_Authenticate in bearer, ExampleHandler_Mount in
// login, ExampleManager in session, Example in admin,
// ExampleDirectory_AfterLogin in directory, ExampleNew in gateway and in
// keycloaktest.
//
// # Errors
//
// Token problems are errors comparable with errors.Is against the
// sentinels (ErrExpired, ErrAudience, ErrSignature, …); a provider that
// cannot be reached is ErrUnavailable (fail closed: never treat it as
// anonymous), and one whose answer shows the configuration to be wrong
// (unknown realm, another issuer, a refused client) is also
// ErrMisconfigured, with a *ProviderError naming the setting to fix.
package cloakroom
