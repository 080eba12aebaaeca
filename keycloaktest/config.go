package keycloaktest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Keycloak's realm defaults (protocol doc 3.3).
const (
	defaultAccessTokenLifespan = 300 * time.Second
	defaultSSOSessionIdle      = 1800 * time.Second
	defaultSSOSessionMax       = 36000 * time.Second
	// offlineSessionIdle is Keycloak's default offline session idle timeout
	// (30 days); it bounds refresh tokens issued for scope offline_access.
	offlineSessionIdle = 30 * 24 * time.Hour
	// logoutTokenLifetime is the exp-iat of Keycloak's logout tokens.
	logoutTokenLifetime = 120 * time.Second
)

// Signature algorithms a realm can use for its access and ID tokens.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	PS256 = "PS256"
)

// RealmConfig describes a realm. Zero durations take Keycloak's defaults.
type RealmConfig struct {
	// Name is the realm name, the last segment of the issuer URL. Required.
	Name string
	// Disabled makes the token, userinfo, introspection and revocation
	// endpoints answer 403 "Realm not enabled", like a disabled Keycloak realm.
	Disabled bool
	// AccessTokenLifespan is the access-token lifetime (default 300s).
	AccessTokenLifespan time.Duration
	// SSOSessionIdle is the idle timeout of user sessions and so the lifetime
	// of each refresh token (default 1800s).
	SSOSessionIdle time.Duration
	// SSOSessionMax caps a user session's total life (default 36000s).
	SSOSessionMax time.Duration
	// RevokeRefreshToken turns on refresh-token rotation: each refresh token
	// can be used RefreshTokenMaxReuse+1 times and replaying an older one
	// fails and detaches the client session.
	RevokeRefreshToken bool
	// RefreshTokenMaxReuse is how many extra times a refresh token may be
	// reused when RevokeRefreshToken is on.
	RefreshTokenMaxReuse int
	// RealmRoles are the realm roles defined in addition to Keycloak's
	// built-in ones (offline_access, uma_authorization, default-roles-{realm}).
	RealmRoles []string
	// Users are created after the clients.
	Users []UserConfig
	// Clients are the OIDC clients of the realm. The built-in "account"
	// client always exists.
	Clients []ClientConfig
	// DefaultSignatureAlgorithm signs access and ID tokens: RS256 (default),
	// ES256 or PS256.
	DefaultSignatureAlgorithm string
	// ACRLoA is Keycloak's realm "ACR to LoA mapping": ACR names (e.g.
	// "silver", "gold") to levels of authentication. The browser flow knows
	// level 1 (password) and level 2 (password and OTP); a requested level of
	// 2 or more makes a user with a TOTP secret enter an OTP code.
	ACRLoA map[string]int
	// RegistrationAllowed turns on user sign-up: the registrations endpoint,
	// prompt=create and the "Register" link on the login page.
	RegistrationAllowed bool
	// Groups are the realm's top-level groups (with their subgroups). Users
	// join them by path (UserConfig.Groups); members inherit their roles.
	Groups []GroupConfig
}

// GroupConfig describes a group of a realm. Its path is "/" followed by the
// names of its ancestors and its own, separated by "/", as in Keycloak.
type GroupConfig struct {
	// ID is the group id (default: a random UUID).
	ID string
	// Name is required and must not contain "/".
	Name string
	// Attributes are custom group attributes.
	Attributes map[string][]string
	// RealmRoles are granted to every member (undefined roles are defined).
	RealmRoles []string
	// ClientRoles maps a client id to roles granted to every member; the
	// client must exist.
	ClientRoles map[string][]string
	// SubGroups are the child groups.
	SubGroups []GroupConfig
}

// FederatedIdentity links a user to an account at an identity provider
// (Keycloak's FederatedIdentityRepresentation).
type FederatedIdentity struct {
	// IdentityProvider is the provider alias, e.g. "github".
	IdentityProvider string `json:"identityProvider"`
	// UserID is the user's id at the provider.
	UserID string `json:"userId"`
	// UserName is the user's name at the provider.
	UserName string `json:"userName"`
}

// UserConfig describes a user of a realm.
type UserConfig struct {
	// ID is the user id and so the token "sub" (default: a random UUID).
	ID string
	// Username is required; Keycloak stores it lower-cased.
	Username string
	// Password is the plaintext password. Leave empty when PasswordHash is
	// set; a user with neither cannot use the password grant.
	Password string
	// PasswordHash is a Keycloak-style hashed password credential.
	PasswordHash *PasswordHash
	// Email, FirstName and LastName feed the email and profile claims.
	Email, FirstName, LastName string
	// EmailVerified is the email_verified claim.
	EmailVerified bool
	// Disabled users cannot log in or refresh, and their tokens introspect
	// inactive.
	Disabled bool
	// RequiredActions pending (e.g. "UPDATE_PASSWORD") make the password
	// grant fail with "Account is not fully set up"; the browser login runs
	// them after authentication and removes the ones completed.
	RequiredActions []string
	// TOTPSecret is the base32 secret of the user's OTP credential (RFC 6238:
	// HMAC-SHA1, 6 digits, 30-second steps), as authenticator apps take it.
	// A user with one is asked for an OTP code when a login requests level
	// of authentication 2 or more (see RealmConfig.ACRLoA and TOTPCode).
	TOTPSecret string
	// Attributes are custom user attributes (exported, not put in tokens).
	Attributes map[string][]string
	// RealmRoles are granted in addition to the realm's default roles.
	// Undefined roles are defined on the fly.
	RealmRoles []string
	// ClientRoles maps a client id to roles granted on that client. The
	// client must exist; undefined roles are defined on it. The built-in
	// "realm-management" client holds the admin API roles (manage-users,
	// view-users, query-users, query-groups, query-clients, ...).
	ClientRoles map[string][]string
	// Groups are paths of groups the user is a member of, e.g.
	// "/staff/editors"; the groups must exist (RealmConfig.Groups).
	Groups []string
	// FederatedIdentities link the user to identity-provider accounts.
	FederatedIdentities []FederatedIdentity
}

// ClientConfig describes an OIDC client of a realm.
type ClientConfig struct {
	// ClientID is required.
	ClientID string
	// Secret authenticates a confidential client.
	Secret string
	// Public clients authenticate with their client_id only.
	Public bool
	// Disabled clients cannot authenticate.
	Disabled bool
	// RedirectURIs are the valid redirect URIs ("*" suffix patterns allowed).
	RedirectURIs []string
	// WebOrigins become the allowed-origins claim; "+" means the origins of
	// RedirectURIs.
	WebOrigins []string
	// PostLogoutRedirectURIs are the valid post-logout redirect URIs.
	PostLogoutRedirectURIs []string
	// Roles are client roles defined on this client.
	Roles []string
	// StandardFlow enables the authorization code flow.
	StandardFlow bool
	// DirectAccessGrants enables the password grant.
	DirectAccessGrants bool
	// ServiceAccounts enables the client_credentials grant and creates the
	// service-account user "service-account-{clientId}".
	ServiceAccounts bool
	// Audiences are client ids (or custom strings) added to the aud of access
	// tokens issued to this client, as Keycloak's audience mapper does.
	Audiences []string
	// ServiceAccountRealmRoles and ServiceAccountClientRoles are granted to
	// the service-account user. Admin API access is granted with client
	// roles of "realm-management", e.g.
	// {"realm-management": {"manage-users", "view-users"}}.
	ServiceAccountRealmRoles  []string
	ServiceAccountClientRoles map[string][]string
	// ServiceAccountUserID is the id of the service-account user (default:
	// a random UUID).
	ServiceAccountUserID string
	// DefaultScopes and OptionalScopes replace Keycloak's default client
	// scope assignment when set (defaults: acr basic email profile roles
	// web-origins; address microprofile-jwt offline_access organization phone).
	DefaultScopes, OptionalScopes []string
	// BackchannelLogoutURL receives logout tokens when a session ends.
	BackchannelLogoutURL string
	// BackchannelLogoutSessionRequired puts sid in logout tokens.
	BackchannelLogoutSessionRequired bool
	// Attributes are further Keycloak client attributes, kept for export.
	// Two take effect: "pkce.code.challenge.method" (PKCE required with
	// that method) and "access.token.lifespan" (seconds; the lifespan of
	// the client's access and ID tokens instead of the realm's).
	Attributes map[string]string
}

// Keycloak's default client scope assignment for new clients (26.x).
var (
	keycloakDefaultScopes  = []string{"acr", "basic", "email", "profile", "roles", "web-origins"}
	keycloakOptionalScopes = []string{"address", "microprofile-jwt", "offline_access", "organization", "phone"}
)

// scopesOutsideTokenScope are client scopes Keycloak applies without listing
// them in the token's "scope" claim ("include in token scope" off).
var scopesOutsideTokenScope = []string{"acr", "basic", "roles", "web-origins", "service_account"}

// DemoClientID is the confidential client of DemoRealm.
const DemoClientID = "cloakroom"

// DemoPublicClientID is the public client of DemoRealm.
const DemoPublicClientID = "cloakroom-public"

// DemoRealm returns the realm `cloakroom dev` serves by default: realm "demo"
// with realm roles admin and user, users alice/alice (admin, user) and bob/bob
// (user), the confidential client "cloakroom" with the given secret (standard
// flow, direct access grants and service account on, an audience mapper
// adding "cloakroom" to aud, and a service account holding the
// realm-management roles manage-users, view-users, query-groups and
// query-clients for the admin API) and the public client "cloakroom-public".
func DemoRealm(clientSecret string) RealmConfig {
	redirects := []string{"http://127.0.0.1:8000/*", "http://localhost:8000/*"}
	return RealmConfig{
		Name:       "demo",
		RealmRoles: []string{"admin", "user"},
		Clients: []ClientConfig{
			{
				ClientID:                         DemoClientID,
				Secret:                           clientSecret,
				RedirectURIs:                     redirects,
				WebOrigins:                       []string{"+"},
				PostLogoutRedirectURIs:           []string{"+"},
				StandardFlow:                     true,
				DirectAccessGrants:               true,
				ServiceAccounts:                  true,
				Audiences:                        []string{DemoClientID},
				BackchannelLogoutSessionRequired: true,
				ServiceAccountClientRoles: map[string][]string{
					realmManagementClientID: {"manage-users", "view-users", "query-groups", "query-clients"},
				},
			},
			{
				ClientID:           DemoPublicClientID,
				Public:             true,
				RedirectURIs:       redirects,
				WebOrigins:         []string{"+"},
				StandardFlow:       true,
				DirectAccessGrants: true,
			},
		},
		Users: []UserConfig{
			{
				Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true,
				FirstName: "Alice", LastName: "Liddell", RealmRoles: []string{"admin", "user"},
			},
			{
				Username: "bob", Password: "bob", Email: "bob@example.com", EmailVerified: true,
				FirstName: "Bob", LastName: "Builder", RealmRoles: []string{"user"},
			},
		},
	}
}

// withDefaults fills Keycloak's defaults and validates realm-wide settings.
func (c RealmConfig) withDefaults() (RealmConfig, error) {
	if c.Name == "" {
		return c, fmt.Errorf("%w: realm name is empty", ErrInvalidConfig)
	}
	if !validName(c.Name) {
		return c, fmt.Errorf("%w: realm name %q contains characters not allowed in a URL path segment", ErrInvalidConfig, c.Name)
	}
	if c.AccessTokenLifespan < 0 || c.SSOSessionIdle < 0 || c.SSOSessionMax < 0 || c.RefreshTokenMaxReuse < 0 {
		return c, fmt.Errorf("%w: realm %q: negative lifespan or reuse count", ErrInvalidConfig, c.Name)
	}
	if c.AccessTokenLifespan == 0 {
		c.AccessTokenLifespan = defaultAccessTokenLifespan
	}
	if c.SSOSessionIdle == 0 {
		c.SSOSessionIdle = defaultSSOSessionIdle
	}
	if c.SSOSessionMax == 0 {
		c.SSOSessionMax = defaultSSOSessionMax
	}
	if c.DefaultSignatureAlgorithm == "" {
		c.DefaultSignatureAlgorithm = RS256
	}
	if !slices.Contains([]string{RS256, ES256, PS256}, c.DefaultSignatureAlgorithm) {
		return c, fmt.Errorf("%w: realm %q: signature algorithm %q (want RS256, ES256 or PS256)", ErrUnsupportedAlgorithm, c.Name, c.DefaultSignatureAlgorithm)
	}
	for name, loa := range c.ACRLoA {
		if name == "" || strings.ContainsFunc(name, isControl) || strings.ContainsAny(name, " ") {
			return c, fmt.Errorf("%w: realm %q: ACR name %q is empty or has spaces or control characters", ErrInvalidConfig, c.Name, name)
		}
		if loa < 0 {
			return c, fmt.Errorf("%w: realm %q: ACR %q maps to negative level %d", ErrInvalidConfig, c.Name, name, loa)
		}
	}
	c.ACRLoA = maps.Clone(c.ACRLoA)
	return c, nil
}

// validName accepts names that can be used as one URL path segment without
// escaping, which is what Keycloak realm names and client ids are in practice.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.' || r == '~':
		default:
			return false
		}
	}
	return true
}
