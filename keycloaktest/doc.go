// Package keycloaktest is a Keycloak-compatible OpenID Provider for tests and
// for `cloakroom dev`.
//
// It reproduces what Keycloak 26.x serves at its own paths
// ({base}/realms/{realm}/...): discovery, JWKS, the token endpoint (password,
// client_credentials, refresh_token and authorization_code grants),
// userinfo, introspection and revocation, with Keycloak's JSON shapes, error
// bodies and token claims. Realms are configured in Go (RealmConfig) or
// loaded from a Keycloak realm-export file, and can be exported again in a
// form a real Keycloak can import.
//
// # Browser side
//
// The authorization endpoint (.../protocol/openid-connect/auth) serves
// HTML login pages with the element ids and field names of Keycloak's base
// theme, so tests written for Keycloak work unchanged:
//
//	login          form#kc-form-login    username, password, submit #kc-login
//	OTP            form#kc-otp-login-form otp, submit #kc-login
//	update password form#kc-passwd-update-form password-new, password-confirm
//	update profile form#kc-update-profile-form email, firstName, lastName
//	configure OTP  form#kc-totp-settings-form totp (secret in #kc-totp-secret-key)
//	verify email   form#kc-verify-email-form (submit #kc-continue)
//	terms          form#kc-terms-form     accept / cancel
//	register       form#kc-register-form  firstName, lastName, email, username,
//	               password, password-confirm
//	logout confirm form.form-actions      session_code, submit #kc-logout
//
// Application-initiated actions (kc_action) add a Cancel button named
// cancel-aia. A successful login sets Keycloak's SSO cookies
// (KEYCLOAK_IDENTITY, KEYCLOAK_SESSION, AUTH_SESSION_ID) under
// /realms/{realm}/, so a second request of the same browser skips the form
// (acr "0") unless prompt=login or max_age says otherwise. Step-up to level
// of authentication 2 (RealmConfig.ACRLoA, UserConfig.TOTPSecret) asks for a
// TOTP code; TOTPCode computes one. Registration, required actions, the
// end-session endpoint with its confirmation page, back-channel logout
// delivery (Realm.LogoutDeliveries), an email outbox (Realm.Outbox) and the
// session-management iframe are there too. See ExampleServer_browserLogin
// for driving a login with net/http.
//
// Browser clients calling from another origin, such as Keycloak's own
// keycloak-js adapter, get Keycloak's CORS answers (cors.go): the token,
// revocation and userinfo endpoints let the client's web origins
// (ClientConfig.WebOrigins, "+" meaning the origins of its redirect URIs)
// read their answers with credentials, discovery and JWKS any origin, and
// pre-flight requests are answered. The Account REST API's profile
// (GET /realms/{realm}/account with Accept: application/json) serves
// keycloak-js loadUserProfile().
//
// # Admin REST API
//
// {base}/admin/realms/{realm}/... serves the user-management part of
// Keycloak's Admin REST API with its JSON shapes, status codes, Location
// headers and error bodies: users (list and search with Keycloak's
// search/exact/q/first/max semantics, count, get, create, partial update,
// delete, reset-password, execute-actions-email, logout), sessions, realm
// and client role mappings, groups (RealmConfig.Groups, UserConfig.Groups),
// federated identities (UserConfig.FederatedIdentities), realm roles and
// clients. Callers need a live access token of the realm, or of a realm
// named "master" (where the realm role "admin" grants everything), and the
// client roles of the built-in "realm-management" client that Keycloak
// requires (manage-users, view-users, query-users, query-groups,
// query-clients, view-realm, realm-admin ...); otherwise the answer is 401
// or 403. The built-in "admin-cli" public client exists for admin tools'
// password grants. Disabling or deleting a user through the API ends its
// sessions with back-channel logouts, like Realm.SetUserEnabled and
// Realm.DeleteUser; execute-actions emails land in Realm.Outbox with a
// link that runs the actions in a browser.
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
