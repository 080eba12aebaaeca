package admin

import (
	"encoding/json"
	"time"
)

// User is Keycloak's UserRepresentation as the Admin REST API returns it.
// ID is the token "sub": key local data on it, never on Username (usernames
// can be renamed and reused).
type User struct {
	ID                         string              `json:"id"`
	Username                   string              `json:"username"`
	Email                      string              `json:"email,omitempty"`
	FirstName                  string              `json:"firstName,omitempty"`
	LastName                   string              `json:"lastName,omitempty"`
	EmailVerified              bool                `json:"emailVerified"`
	Enabled                    bool                `json:"enabled"`
	CreatedTimestamp           int64               `json:"createdTimestamp,omitempty"`
	Attributes                 map[string][]string `json:"attributes,omitempty"`
	RequiredActions            []string            `json:"requiredActions,omitempty"`
	FederationLink             string              `json:"federationLink,omitempty"`
	ServiceAccountClientID     string              `json:"serviceAccountClientId,omitempty"`
	NotBefore                  int64               `json:"notBefore,omitempty"`
	TOTP                       bool                `json:"totp,omitempty"`
	DisableableCredentialTypes []string            `json:"disableableCredentialTypes,omitempty"`
	FederatedIdentities        []FederatedIdentity `json:"federatedIdentities,omitempty"`
	Groups                     []string            `json:"groups,omitempty"`
	Access                     map[string]bool     `json:"access,omitempty"`
}

// Created is CreatedTimestamp as a time (zero when unknown).
func (u User) Created() time.Time {
	if u.CreatedTimestamp == 0 {
		return time.Time{}
	}
	return time.UnixMilli(u.CreatedTimestamp)
}

// NewUser is what CreateUser sends. Unlike Keycloak's representation, the
// zero value creates an enabled user: Keycloak creates a user without
// "enabled" disabled, which is rarely what a caller means.
type NewUser struct {
	Username  string
	Email     string
	FirstName string
	LastName  string
	// EmailVerified marks the email as verified.
	EmailVerified bool
	// Disabled creates the user disabled.
	Disabled bool
	// Attributes are custom attributes. Keycloak 24+ silently drops those
	// the realm's user profile does not declare, unless its
	// unmanagedAttributePolicy is ENABLED or ADMIN_EDIT.
	Attributes map[string][]string
	// RequiredActions, e.g. "UPDATE_PASSWORD", "VERIFY_EMAIL".
	RequiredActions []string
	// Groups are group paths to join, e.g. "/staff".
	Groups []string
	// Password sets an initial password; TemporaryPassword makes the user
	// change it at the next login.
	Password          string
	TemporaryPassword bool
}

// MarshalJSON writes the UserRepresentation Keycloak expects, with the
// password as a credential.
func (n NewUser) MarshalJSON() ([]byte, error) {
	type cred struct {
		Type      string `json:"type"`
		Value     string `json:"value"`
		Temporary bool   `json:"temporary"`
	}
	rep := struct {
		Username        string              `json:"username"`
		Email           string              `json:"email,omitempty"`
		FirstName       string              `json:"firstName,omitempty"`
		LastName        string              `json:"lastName,omitempty"`
		EmailVerified   bool                `json:"emailVerified"`
		Enabled         bool                `json:"enabled"`
		Attributes      map[string][]string `json:"attributes,omitempty"`
		RequiredActions []string            `json:"requiredActions,omitempty"`
		Groups          []string            `json:"groups,omitempty"`
		Credentials     []cred              `json:"credentials,omitempty"`
	}{
		Username: n.Username, Email: n.Email, FirstName: n.FirstName, LastName: n.LastName,
		EmailVerified: n.EmailVerified, Enabled: !n.Disabled, Attributes: n.Attributes,
		RequiredActions: n.RequiredActions, Groups: n.Groups,
	}
	if n.Password != "" {
		rep.Credentials = []cred{{Type: "password", Value: n.Password, Temporary: n.TemporaryPassword}}
	}
	return json.Marshal(rep)
}

// UserUpdate is a partial update for UpdateUser: nil fields are left as
// they are. A non-nil Attributes map or RequiredActions slice (even empty)
// replaces the whole set: attributes missing from it are removed (custom
// attributes must be declared in the realm's user profile, or its
// unmanagedAttributePolicy must let admins edit them; Keycloak drops the
// others). An Email of "" removes the email; EmailVerified is not reset
// when the email changes. Username is read-only in Keycloak's default
// realm settings.
type UserUpdate struct {
	Username        *string
	Email           *string
	FirstName       *string
	LastName        *string
	EmailVerified   *bool
	Enabled         *bool
	Attributes      map[string][]string
	RequiredActions []string
}

// MarshalJSON writes only the fields that are set.
func (p UserUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for name, v := range map[string]*string{"username": p.Username, "email": p.Email, "firstName": p.FirstName, "lastName": p.LastName} {
		if v != nil {
			m[name] = *v
		}
	}
	for name, v := range map[string]*bool{"emailVerified": p.EmailVerified, "enabled": p.Enabled} {
		if v != nil {
			m[name] = *v
		}
	}
	if p.Attributes != nil {
		m["attributes"] = p.Attributes
	}
	if p.RequiredActions != nil {
		m["requiredActions"] = p.RequiredActions
	}
	return json.Marshal(m)
}

// Ptr returns a pointer to v, for UserUpdate fields.
func Ptr[T any](v T) *T { return &v }

// Credential is Keycloak's CredentialRepresentation (as returned: the
// secret is never included).
type Credential struct {
	ID             string `json:"id,omitempty"`
	Type           string `json:"type"`
	UserLabel      string `json:"userLabel,omitempty"`
	CreatedDate    int64  `json:"createdDate,omitempty"`
	CredentialData string `json:"credentialData,omitempty"`
	Priority       int    `json:"priority,omitempty"`
}

// Role is Keycloak's RoleRepresentation.
type Role struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Composite   bool   `json:"composite"`
	ClientRole  bool   `json:"clientRole"`
	ContainerID string `json:"containerId,omitempty"`
}

// Group is Keycloak's GroupRepresentation.
type Group struct {
	ID            string              `json:"id"`
	Name          string              `json:"name"`
	Path          string              `json:"path"`
	ParentID      string              `json:"parentId,omitempty"`
	SubGroupCount int                 `json:"subGroupCount,omitempty"`
	SubGroups     []Group             `json:"subGroups,omitempty"`
	Attributes    map[string][]string `json:"attributes,omitempty"`
	RealmRoles    []string            `json:"realmRoles,omitempty"`
	ClientRoles   map[string][]string `json:"clientRoles,omitempty"`
}

// UserSession is Keycloak's UserSessionRepresentation. Start and LastAccess
// are Unix milliseconds; Clients maps client UUIDs to client ids.
type UserSession struct {
	ID         string            `json:"id"`
	Username   string            `json:"username"`
	UserID     string            `json:"userId"`
	IPAddress  string            `json:"ipAddress"`
	Start      int64             `json:"start"`
	LastAccess int64             `json:"lastAccess"`
	RememberMe bool              `json:"rememberMe"`
	Clients    map[string]string `json:"clients"`
}

// Started is Start as a time.
func (s UserSession) Started() time.Time { return time.UnixMilli(s.Start) }

// LastAccessed is LastAccess as a time.
func (s UserSession) LastAccessed() time.Time { return time.UnixMilli(s.LastAccess) }

// FederatedIdentity links a user to an account at an identity provider.
type FederatedIdentity struct {
	IdentityProvider string `json:"identityProvider"`
	UserID           string `json:"userId"`
	UserName         string `json:"userName"`
}

// ClientRepresentation is Keycloak's ClientRepresentation (the fields this
// package uses; with only query-clients Keycloak fills just ID and
// ClientID). ID is the UUID the Admin REST API uses in paths.
type ClientRepresentation struct {
	ID                        string            `json:"id"`
	ClientID                  string            `json:"clientId"`
	Name                      string            `json:"name,omitempty"`
	Description               string            `json:"description,omitempty"`
	Enabled                   bool              `json:"enabled"`
	PublicClient              bool              `json:"publicClient"`
	BearerOnly                bool              `json:"bearerOnly"`
	Protocol                  string            `json:"protocol,omitempty"`
	RedirectURIs              []string          `json:"redirectUris,omitempty"`
	WebOrigins                []string          `json:"webOrigins,omitempty"`
	StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	Attributes                map[string]string `json:"attributes,omitempty"`
}

// UserQuery filters ListUsers, AllUsers and CountUsers (protocol doc 6.5).
// Search wins over the field filters: a prefix match on username, email,
// first and last name ("*x*" for infix, "\"x\"" for exact, "id:<uuid>" by
// id). Without Search, Username, Email, FirstName and LastName are
// case-insensitive substring matches unless Exact is true, and all filters
// are ANDed.
type UserQuery struct {
	Search    string
	Username  string
	Email     string
	FirstName string
	LastName  string
	// Exact makes the field filters (and Q) exact matches.
	Exact *bool
	// Enabled and EmailVerified filter on the flags.
	Enabled       *bool
	EmailVerified *bool
	// Q matches custom attributes: key -> value.
	Q map[string]string
	// IDPAlias and IDPUserID find users linked to an identity provider.
	IDPAlias, IDPUserID string
	// First is the offset and Max the page size (0: Keycloak's default,
	// 100). Count ignores both.
	First, Max int
	// BriefRepresentation asks for the short form (no attributes).
	BriefRepresentation bool
}

// GroupQuery filters ListGroups.
type GroupQuery struct {
	// Search matches group names (substring, case-insensitive); the result
	// is the top-level groups holding a match, with the matching branches.
	Search string
	// First and Max page the top-level groups (0: no limit).
	First, Max int
	// Full asks for attributes and role mappings.
	Full bool
}

// ExecuteActionsOptions tune ExecuteActionsEmail.
type ExecuteActionsOptions struct {
	// Lifespan of the link (0: the realm's admin action-token lifespan,
	// 12 hours by default). Keycloak counts whole seconds.
	Lifespan time.Duration
	// ClientID is the client the user returns to (default "account").
	ClientID string
	// RedirectURI is where "Back to application" leads; it requires
	// ClientID and must be a valid redirect URI of that client.
	RedirectURI string
}
