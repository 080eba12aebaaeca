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
	// VerifyProfile is Keycloak's VERIFY_PROFILE required action: a user
	// without an email, first or last name (the default user profile's
	// required attributes) cannot use the password grant ("Account is not
	// fully set up") and must complete the profile at the next browser
	// login. Keycloak 24+ turns it on in every realm, and ParseRealm sets it
	// unless the file's requiredActions disable it; a RealmConfig built in
	// Go has it off unless set, so that test users need no names.
	VerifyProfile bool
	// RealmRoles are the realm roles defined in addition to Keycloak's
	// built-in ones (offline_access, uma_authorization, default-roles-{realm}).
	RealmRoles []string
	// Roles describe realm and client roles beyond their names: a
	// description, and the roles a composite role contains. An entry defines
	// its role when RealmRoles or ClientConfig.Roles do not. An entry for
	// default-roles-{realm} adds to what that role contains (offline_access,
	// uma_authorization and the account roles view-profile and
	// manage-account), as importing a realm file into Keycloak does.
	Roles []RoleConfig
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
	// LoginNote is a line of text the login page shows under the form, such
	// as the users of DemoRealm. Keycloak has no such setting: ParseRealm
	// never sets it and Realm.Export leaves it out.
	LoginNote string
	// ClientScopes are client scopes beyond Keycloak's built-in ones (acr,
	// basic, email, profile, roles, web-origins, address, phone,
	// microprofile-jwt, offline_access, organization, service_account),
	// which always exist. A client uses one by listing it in its
	// DefaultScopes or OptionalScopes (set both to keep Keycloak's default
	// assignment, e.g. append "my-scope" to acr basic email profile roles
	// web-origins). An entry named like a built-in scope adds its Mappers to
	// that scope; its other fields are ignored.
	ClientScopes []ClientScopeConfig
	// OrganizationsEnabled is Keycloak 26's realm setting
	// organizationsEnabled: the organizations admin API and the
	// organization claim (organizations.go).
	OrganizationsEnabled bool
	// Organizations are the realm's organizations (Keycloak 26+).
	Organizations []OrganizationConfig
	// IdentityProviders are identity providers organizations can link.
	IdentityProviders []IdentityProviderConfig
}

// ClientScopeConfig is a client scope (Keycloak's ClientScopeRepresentation)
// whose protocol mappers add claims to the tokens of grants it is part of:
// always as a default scope of the client, when requested in the scope
// parameter as an optional one.
type ClientScopeConfig struct {
	// Name is the scope's name, as the scope parameter and the scope claim
	// spell it. Required.
	Name string
	// Attributes are Keycloak's client-scope attributes. One takes effect:
	// "include.in.token.scope" "false" keeps the scope out of the access
	// token's scope claim (absent means true, as in Keycloak 26.7.3).
	Attributes map[string]string
	// Mappers add claims when the scope is in effect.
	Mappers []MapperConfig
}

// MapperConfig is an OIDC protocol mapper, as Keycloak's
// ProtocolMapperRepresentation: Type is its "protocolMapper" and Config its
// "config", with Keycloak's keys and string values. Modelled types:
//
//	oidc-hardcoded-claim-mapper       claim.value
//	oidc-usermodel-attribute-mapper   user.attribute, multivalued, aggregate.attrs
//	oidc-usermodel-property-mapper    user.attribute (id, username, email, firstName,
//	                                  lastName, emailVerified, enabled, createdTimestamp)
//	oidc-group-membership-mapper      full.path
//	oidc-usermodel-realm-role-mapper  usermodel.realmRoleMapping.rolePrefix, multivalued
//	oidc-usermodel-client-role-mapper usermodel.clientRoleMapping.clientId,
//	                                  usermodel.clientRoleMapping.rolePrefix, multivalued
//	oidc-audience-mapper              included.client.audience, included.custom.audience
//
// Claims are named by claim.name ("a.b" is claim b of object a, "a\.b" the
// claim "a.b"; "${client_id}" in a client-role mapper's is the role's
// client) and typed by jsonType.label: String (default), long, int,
// boolean or JSON; a value that does not convert leaves the claim out.
// Where they go: access.token.claim and id.token.claim "true" put them in
// access and ID tokens; userinfo.token.claim in the userinfo answer (absent:
// as id.token.claim); introspection.token.claim in introspection answers
// (absent: as access.token.claim). Other types are ignored (the server
// logs them), as is lightweight.claim: lightweight access tokens are not
// modelled.
type MapperConfig struct {
	// Name names the mapper (unique per client or scope in Keycloak).
	Name string
	// Type is Keycloak's mapper type id, e.g. "oidc-hardcoded-claim-mapper".
	Type string
	// Config is the mapper's configuration.
	Config map[string]string
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

// RoleConfig describes a realm role (Client empty) or a client role, as
// Keycloak's RoleRepresentation does. A user holding a composite role holds
// the roles it contains too, recursively: in the realm_access and
// resource_access claims of its tokens, and in the admin API's effective
// ("composite") role mappings.
type RoleConfig struct {
	// Client is the client id of a client role: a client of the realm, or
	// one of Keycloak's built-in "account" and "realm-management". Empty for
	// a realm role.
	Client string
	// Name is required.
	Name string
	// Description replaces the role's description, which the admin API
	// returns (Keycloak's built-in roles have ones like
	// "${role_offline-access}"; empty leaves the field out, as in Keycloak).
	Description string
	// RealmComposites are the realm roles this role contains. They must be
	// defined (RealmConfig.RealmRoles, Roles or a built-in role).
	RealmComposites []string
	// ClientComposites maps a client id to the roles of that client this
	// role contains. The roles must be defined on the client.
	ClientComposites map[string][]string
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
	// RealmRoles are mapped to the user, in addition to the realm's
	// composite default role default-roles-{realm} (see NoDefaultRoles).
	// Undefined roles are defined on the fly.
	RealmRoles []string
	// NoDefaultRoles leaves out default-roles-{realm}, which a user gets
	// otherwise, as users that Keycloak's admin API (POST /users) or
	// self-registration creates do; that role brings offline_access,
	// uma_authorization and the account roles (and so aud "account"). A user
	// of a realm file (ParseRealm) has it set: Keycloak's import maps only
	// the roles the file lists, and real exports list default-roles-{realm}
	// explicitly.
	NoDefaultRoles bool
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
	// Mappers are the client's own protocol mappers (see MapperConfig),
	// applied to all its tokens, whatever the scope.
	Mappers []MapperConfig
	// ServiceAccountRealmRoles and ServiceAccountClientRoles are granted to
	// the service-account user. Admin API access is granted with client
	// roles of "realm-management", e.g.
	// {"realm-management": {"manage-users", "view-users"}}.
	ServiceAccountRealmRoles  []string
	ServiceAccountClientRoles map[string][]string
	// ServiceAccountNoDefaultRoles leaves default-roles-{realm} out of the
	// service-account user's roles. Keycloak maps it to the service
	// account it creates for a client, but not to one a realm file lists
	// with its roles (ParseRealm sets this then).
	ServiceAccountNoDefaultRoles bool
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
// (user), both also holding default-roles-demo like users Keycloak's admin
// API creates, the confidential client "cloakroom" with the given secret
// (standard flow, direct access grants and service account on, an audience mapper
// adding "cloakroom" to aud, and a service account holding the
// realm-management roles manage-users, view-users, query-groups and
// view-clients for the admin API) and the public client "cloakroom-public".
// Both clients have the valid redirect URIs http://127.0.0.1:8000/*,
// http://localhost:8000/*, http://127.0.0.1/*, http://localhost/* and
// http://[::1]/*: any path on those three hosts, on any port, as in a
// Keycloak realm with these redirect URIs. The login page names the users
// (RealmConfig.LoginNote).
func DemoRealm(clientSecret string) RealmConfig {
	redirects := demoRedirectURIs()
	return RealmConfig{
		Name:       "demo",
		LoginNote:  "Demo users: alice / alice (roles admin, user) and bob / bob (role user).",
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
					realmManagementClientID: {"manage-users", "view-users", "query-groups", "view-clients"},
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

// demoRedirectURIs returns the valid redirect URIs of DemoRealm's clients.
// Keycloak matches an http redirect URI on localhost, 127.0.0.1 or [::1]
// that no valid redirect URI matches a second time without its port, so
// the port-less patterns accept those hosts on any port (RFC 8252 section
// 7.3). The port-8000 patterns are there for their web origins ("+"):
// CORS origins are compared with their port.
func demoRedirectURIs() []string {
	return []string{
		"http://127.0.0.1:8000/*", "http://localhost:8000/*",
		"http://127.0.0.1/*", "http://localhost/*", "http://[::1]/*",
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
	scopes := make([]ClientScopeConfig, 0, len(c.ClientScopes))
	for _, sc := range c.ClientScopes {
		if sc.Name == "" || strings.ContainsFunc(sc.Name, isControl) || strings.ContainsAny(sc.Name, " ") {
			return c, fmt.Errorf("%w: realm %q: client scope name %q is empty or has spaces or control characters", ErrInvalidConfig, c.Name, sc.Name)
		}
		if slices.ContainsFunc(scopes, func(o ClientScopeConfig) bool { return o.Name == sc.Name }) {
			return c, fmt.Errorf("%w: realm %q: duplicate client scope %q", ErrInvalidConfig, c.Name, sc.Name)
		}
		sc.Attributes = maps.Clone(sc.Attributes)
		sc.Mappers = cloneMappers(sc.Mappers)
		scopes = append(scopes, sc)
	}
	c.ClientScopes = scopes
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
