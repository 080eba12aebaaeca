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
// ExampleNew serves the demo realm and logs alice in with the password
// grant; ExampleServer_browserLogin drives the browser login; the other
// packages' examples (bearer, login, admin, directory, gateway) run
// against it too, with no network and no Java.
//
// # Roles
//
// Roles follow Keycloak's model. A realm has realm roles (RealmConfig.RealmRoles
// and Keycloak's built-in offline_access, uma_authorization and
// default-roles-{realm}) and client roles (ClientConfig.Roles, the built-in
// realm-management admin roles, the built-in account client's roles). A
// composite role contains other roles (RealmConfig.Roles, or "composites"
// in a realm file): default-roles-{realm} contains offline_access,
// uma_authorization and the account roles view-profile and manage-account,
// which contains manage-account-links; realm-admin contains every admin
// role. Users and groups have roles mapped to them; what a user holds — the
// realm_access and resource_access claims, the aud "account" that follows
// from holding account roles, the admin API's role-mappings/.../composite —
// is the closure of its own mappings and its groups' under composition.
//
// default-roles-{realm} is mapped to users created in Go (UserConfig, unless
// NoDefaultRoles), through the admin API or by self-registration, and to the
// service accounts of clients, as Keycloak does. Users of a realm file get
// exactly the roles the file lists, as with Keycloak's import: real exports
// list default-roles-{realm} in each user's realmRoles, hand-written files
// must too for their users to hold offline_access (needed for scope
// offline_access) and the account roles.
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
// search/exact/q/first/max semantics, count, get, create, update, delete,
// reset-password, credentials, execute-actions-email, logout), the realm's
// user profile (/users/profile), sessions, realm and client role mappings,
// groups (RealmConfig.Groups, UserConfig.Groups), federated identities
// (UserConfig.FederatedIdentities), realm roles and clients. Request bodies
// are read as Keycloak's Jackson binding reads them: a body that is not
// JSON is {"error":"invalid_request","error_description":"Cannot parse the
// JSON"}, JSON of the wrong shape "unknown_error", a member the
// representation does not have names it with Jackson's line and column.
// Callers need a live access token of the realm, or of a realm
// named "master" (where the realm role "admin" grants everything), and the
// client roles of the built-in "realm-management" client that Keycloak
// requires (manage-users, view-users, query-users, query-groups,
// query-clients, view-realm, realm-admin ...); otherwise the answer is 401
// or 403. The built-in "admin-cli" public client exists for admin tools'
// password grants. Deleting a user through the API ends its sessions with
// back-channel logouts, like Realm.DeleteUser; disabling one, through the
// API or Realm.SetUserEnabled, ends none (as in Keycloak: refreshes fail
// until the user is enabled again); execute-actions emails land in Realm.Outbox with a
// link that runs the actions in a browser.
//
// # User profile
//
// Users are created and updated through the realm's user profile, as in
// Keycloak 24+. The default profile (GET /users/profile) declares
// username (3 to 255 characters, none of Keycloak's prohibited ones,
// Latin and common scripts only), email (Keycloak's address syntax, stored
// lower-cased), firstName and lastName (at most 255 characters, no
// prohibited ones), and has no unmanagedAttributePolicy. Its rules:
//
//   - PUT /users/{id} without "attributes" changes only what the body
//     holds. With "attributes" (even {}) the body is the whole profile:
//     email, firstName, lastName and custom attributes it leaves out are
//     removed; the username stays. An email of "" removes it; a changed
//     email keeps emailVerified.
//   - The username is read-only once the user exists (a different one is
//     error-user-attribute-read-only, a taken one 409).
//   - Custom attributes the profile does not declare ("unmanaged") are
//     dropped from what is sent and hidden from what is served, though
//     still stored and still found by the q search, unless the policy
//     (Realm.SetUnmanagedAttributePolicy or PUT /users/profile) is ENABLED
//     or ADMIN_EDIT (admins edit them) or ADMIN_VIEW (admins see them).
//   - Validation errors answer 400 with one ErrorRepresentation
//     {"field","errorMessage","params"}, or {"errors":[...]} when there
//     are several; "User name is missing", a taken username or email are
//     {"errorMessage"} answers as before.
//   - requiredActions keep only Keycloak's required-action ids;
//     credentials with a value set the password whatever their type.
//
// A custom profile (PUT /users/profile, Realm.SetUserProfile) may declare
// more attributes with permissions (what "admin" and "user" may view and
// edit), required roles, multivalued, and the validators length, email,
// pattern, options, integer, double, multivalued and the character
// validators; other validators and selectors are ignored, and errors come
// in the profile's order where Keycloak's order is its own.
// GET /users/{id}?userProfileMetadata=true adds the profile's metadata for
// an admin; the Account REST API (GET /realms/{realm}/account) adds it for
// the user unless userProfileMetadata=false. Lists and brief
// representations never carry it, and their "access" is only {"manage"}.
//
// GET /users/{id}/credentials lists the password and OTP credentials with
// stable ids, createdDate, userLabel (PUT .../userLabel) and Keycloak's
// credentialData (a plaintext password is shown as Keycloak 26 stores it,
// argon2); DELETE /users/{id}/credentials/{id} removes one.
//
// Redirect and post-logout redirect URIs match as in Keycloak, including
// its loopback rule: a URI registered on http://127.0.0.1, http://localhost
// or http://[::1] without a port accepts any port on that same host
// (RFC 8252 §7.3), so an application on any loopback port logs in to the
// demo realm. A refused redirect_uri is logged at WARN with the client.
//
// # Realm files
//
// ParseRealm and LoadRealmFile read what `kc.sh export` writes (Keycloak 24
// and 26 exports are test fixtures) and hand-written files, and apply them
// as Keycloak's import does (all observed on Keycloak 26.7.3):
//
//   - a realm or user without "enabled" is disabled; a client without it
//     is enabled;
//   - users get exactly the roles the file lists (see Roles);
//   - password credentials may be plaintext or hashed (argon2id/argon2i
//     with Keycloak's additionalParameters, pbkdf2-sha256, pbkdf2-sha512,
//     pbkdf2); "temporary" adds no UPDATE_PASSWORD (POST /users does);
//   - VERIFY_PROFILE is on unless the file's requiredActions disable it: a
//     user without email, first or last name cannot use the password
//     grant ("Account is not fully set up") and completes the profile at
//     the next browser login (RealmConfig.VerifyProfile);
//   - a client listing neither defaultClientScopes nor
//     optionalClientScopes gets the realm's defaults; one listing only
//     one kind gets none of the other (so a client with only optional
//     scopes issues tokens without sub); a file whose clientScopes lack
//     "basic" (Keycloak 24 and older) gets it added as a default scope of
//     every client, as Keycloak 25's migration does.
//
// # Protocol mappers and client scopes
//
// Besides the built-in client scopes' claims, tokens carry the claims of
// protocol mappers (MapperConfig): the client's own (ClientConfig.Mappers,
// "protocolMappers" of a client in a realm file) and those of the client
// scopes in effect for the grant (RealmConfig.ClientScopes, a realm file's
// "clientScopes": a client's default scopes, and its optional ones the
// scope parameter asks for). Modelled are hard-coded claims, user
// attributes (multivalued, aggregated with the groups' attributes), user
// properties, group membership (full paths or names), realm and client
// roles and audiences, with Keycloak's claim names (nested "a.b",
// escaped "a\.b"), JSON types and per-token flags: access and ID
// tokens, userinfo (absent flag: as the ID token) and introspection
// (absent flag: as the access token). A custom scope with
// include.in.token.scope "false" applies without appearing in the scope
// claim. Mappers of other types are ignored and logged by the server
// ("protocol mapper is not modelled"); Keycloak's own mappers of its
// built-in scopes in an export are left to the built-in claims. Lists
// of roles are sorted, where Keycloak's order varies; aggregated
// attributes follow Keycloak's (Java HashSet) order. Lightweight access
// tokens (lightweight.claim) are not modelled. Export writes mappers and
// custom scopes back, with Keycloak's built-in scopes, because Keycloak's
// import of a file with "clientScopes" creates no built-in scope itself.
//
// # How faithful
//
// The conformance suite (interop/conformance) runs one list of scenarios
// against keycloaktest and against a real Keycloak 26.7.3 on every CI run
// and compares about 2,400 normalized observations: status codes, error
// codes and messages, JSON field names and types, claim names, types and
// values, header presence. Every difference fails the run unless
// interop/conformance/allowlist.txt names it with a reason; today it lists
// only discovery-document entries for features keycloaktest does not
// implement (implicit, device and CIBA grants, token exchange, PAR, JWT
// and mTLS client authentication, request objects). Where this
// package and Keycloak disagree outside what the suite observes, Keycloak
// is right: report it.
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
