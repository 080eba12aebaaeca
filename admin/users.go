package admin

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The realm-management client roles a 403 most likely means, per
// operation (named in APIError.Role and so in the error message). Keycloak
// itself answers only "HTTP 403 Forbidden".
const (
	roleQueryUsers   = "query-users (and view-users to see the users it finds)"
	roleViewUsers    = "view-users"
	roleManageUsers  = "manage-users"
	roleQueryGroups  = "query-groups (or view-users)"
	roleQueryClients = "query-clients"
	roleMapRealm     = "manage-users (and view-users to look up the user's available roles)"
	roleMapClient    = "manage-users (and view-clients to look up the client and its roles)"
)

// Realm-management roles, for Config and tests.
const (
	RoleManageUsers  = "manage-users"
	RoleViewUsers    = "view-users"
	RoleQueryUsers   = "query-users"
	RoleQueryGroups  = "query-groups"
	RoleQueryClients = "query-clients"
	RoleViewClients  = "view-clients"
	RoleViewRealm    = "view-realm"
	RoleRealmAdmin   = "realm-admin"
)

func (q UserQuery) values(paging bool) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	setBool := func(k string, b *bool) {
		if b != nil {
			v.Set(k, strconv.FormatBool(*b))
		}
	}
	set("search", q.Search)
	set("username", q.Username)
	set("email", q.Email)
	set("firstName", q.FirstName)
	set("lastName", q.LastName)
	setBool("exact", q.Exact)
	setBool("enabled", q.Enabled)
	setBool("emailVerified", q.EmailVerified)
	set("idpAlias", q.IDPAlias)
	set("idpUserId", q.IDPUserID)
	if len(q.Q) > 0 {
		keys := make([]string, 0, len(q.Q))
		for k := range q.Q {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + q.Q[k]
		}
		v.Set("q", strings.Join(parts, " "))
	}
	if paging {
		if q.First > 0 {
			v.Set("first", strconv.Itoa(q.First))
		}
		if q.Max > 0 {
			v.Set("max", strconv.Itoa(q.Max))
		}
		if q.BriefRepresentation {
			v.Set("briefRepresentation", "true")
		}
	}
	return v
}

// ListUsers returns one page of users matching q (GET /users). Keycloak
// returns at most 100 users unless q.Max says otherwise; AllUsers pages
// through everything. With query-users but not view-users Keycloak
// answers an empty list.
func (c *Client) ListUsers(ctx context.Context, q UserQuery) ([]User, error) {
	var out []User
	err := c.get(ctx, call{path: "/users", query: q.values(true), role: roleQueryUsers}, &out)
	return out, err
}

// AllUsers iterates over every user matching q, fetching pages of
// Config.PageSize (or q.Max) from q.First on. It stops at the first error,
// which it yields (ctx cancellation included); breaking out of the loop
// stops it too. Users created or deleted while iterating may be skipped or
// seen twice: first/max paging has no snapshot.
func (c *Client) AllUsers(ctx context.Context, q UserQuery) iter.Seq2[User, error] {
	return func(yield func(User, error) bool) {
		size := c.cfg.PageSize
		if q.Max > 0 {
			size = q.Max
		}
		q.Max = size
		for {
			if err := ctx.Err(); err != nil {
				yield(User{}, err)
				return
			}
			users, err := c.ListUsers(ctx, q)
			if err != nil {
				yield(User{}, err)
				return
			}
			for _, u := range users {
				if !yield(u, nil) {
					return
				}
			}
			if len(users) < size {
				return
			}
			q.First += len(users)
		}
	}
}

// CountUsers counts the users matching q (GET /users/count; paging fields
// are ignored).
func (c *Client) CountUsers(ctx context.Context, q UserQuery) (int, error) {
	var n int
	err := c.get(ctx, call{path: "/users/count", query: q.values(false), role: roleQueryUsers}, &n)
	return n, err
}

// GetUser returns a user by id. An unknown id is ErrNotFound for callers
// that may query users and ErrForbidden otherwise (Keycloak hides which
// ids exist).
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	if err := c.get(ctx, call{path: "/users/" + seg(id), role: roleViewUsers}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// FindUserByUsername returns the user with exactly this username
// (GET /users?username=..&exact=true, then comparing the answer, as
// Keycloak's search could still match others). No such user is
// ErrNotFound.
func (c *Client) FindUserByUsername(ctx context.Context, username string) (*User, error) {
	users, err := c.ListUsers(ctx, UserQuery{Username: username, Exact: Ptr(true), Max: 10})
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.EqualFold(u.Username, username) {
			return &u, nil
		}
	}
	return nil, fmt.Errorf("%w: no user with username %q in realm %q", ErrNotFound, username, c.realmName)
}

// CreateUser creates a user and returns its id, read from the Location
// header of Keycloak's 201 answer. A taken username or email is
// ErrDuplicateUsername or ErrDuplicateEmail (both ErrConflict); invalid
// fields are ErrBadRequest with APIError.Field. POST is not retried once it
// may have reached Keycloak.
func (c *Client) CreateUser(ctx context.Context, u NewUser) (string, error) {
	cl := call{method: http.MethodPost, path: "/users", body: u, role: roleManageUsers}
	res, err := c.do(ctx, cl)
	if err != nil {
		return "", err
	}
	loc := res.header.Get("Location")
	lu, err := url.Parse(loc)
	if loc == "" || err != nil {
		return "", fmt.Errorf("%w: POST %s/users: 201 without a usable Location header", ErrInvalidResponse, c.basePath)
	}
	id := path.Base(lu.Path)
	if id == "" || id == "/" || id == "." || id == "users" {
		return "", fmt.Errorf("%w: POST %s/users: Location %q names no user id", ErrInvalidResponse, c.basePath, loc)
	}
	return id, nil
}

// UpdateUser applies a partial update (PUT /users/{id}); see UserUpdate
// for which fields replace and which are left alone.
//
// Keycloak 24+ (user profile) treats a body with "attributes" as the
// user's whole profile: email, firstName and lastName it leaves out are
// removed. So when p.Attributes is set and one of those fields is not,
// UpdateUser reads the user first and sends its current values along
// (a read-modify-write: a concurrent change to them can be lost).
func (c *Client) UpdateUser(ctx context.Context, id string, p UserUpdate) error {
	if p.Attributes != nil && (p.Email == nil || p.FirstName == nil || p.LastName == nil) {
		u, err := c.GetUser(ctx, id)
		if err != nil {
			return err
		}
		for _, f := range []struct {
			dst **string
			cur string
		}{{&p.Email, u.Email}, {&p.FirstName, u.FirstName}, {&p.LastName, u.LastName}} {
			if *f.dst == nil && f.cur != "" {
				*f.dst = Ptr(f.cur)
			}
		}
	}
	return c.exec(ctx, call{method: http.MethodPut, path: "/users/" + seg(id), body: p, role: roleManageUsers})
}

// DeleteUser deletes a user. Keycloak ends the user's sessions.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.exec(ctx, call{method: http.MethodDelete, path: "/users/" + seg(id), role: roleManageUsers})
}

// EnableUser enables a user.
func (c *Client) EnableUser(ctx context.Context, id string) error {
	return c.UpdateUser(ctx, id, UserUpdate{Enabled: Ptr(true)})
}

// DisableUser disables a user. It ends no session: see
// DisableUserAndLogout.
//
// The pitfall: disabling alone does not revoke anything already issued.
// Access tokens stay valid until their exp to every service that verifies
// them locally, and depending on the Keycloak version sessions may live on
// until their refresh fails. To cut a user off, use DisableUserAndLogout
// (and keep access tokens short-lived, or introspect).
func (c *Client) DisableUser(ctx context.Context, id string) error {
	return c.UpdateUser(ctx, id, UserUpdate{Enabled: Ptr(false)})
}

// DisableUserAndLogout disables a user, then ends every session of the
// user (LogoutUser).
func (c *Client) DisableUserAndLogout(ctx context.Context, id string) error {
	if err := c.DisableUser(ctx, id); err != nil {
		return err
	}
	return c.LogoutUser(ctx, id)
}

// AddRequiredActions adds required actions (e.g. "UPDATE_PASSWORD",
// "VERIFY_EMAIL", "CONFIGURE_TOTP") to those the user already has. It reads
// the user first, because Keycloak replaces the whole list on update.
func (c *Client) AddRequiredActions(ctx context.Context, id string, actions ...string) error {
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return err
	}
	list := slices.Clone(u.RequiredActions)
	for _, a := range actions {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	if list == nil {
		list = []string{}
	}
	return c.UpdateUser(ctx, id, UserUpdate{RequiredActions: list})
}

// ExecuteActionsEmail emails the user a link that runs the actions (e.g.
// "UPDATE_PASSWORD") in the browser. The user must be enabled and have an
// email address.
func (c *Client) ExecuteActionsEmail(ctx context.Context, id string, actions []string, opts ExecuteActionsOptions) error {
	q := url.Values{}
	if opts.Lifespan > 0 {
		q.Set("lifespan", strconv.FormatInt(int64(opts.Lifespan.Seconds()), 10))
	}
	if opts.ClientID != "" {
		q.Set("client_id", opts.ClientID)
	}
	if opts.RedirectURI != "" {
		q.Set("redirect_uri", opts.RedirectURI)
	}
	if actions == nil {
		actions = []string{}
	}
	return c.exec(ctx, call{method: http.MethodPut, path: "/users/" + seg(id) + "/execute-actions-email", query: q,
		body: actions, role: roleManageUsers})
}

// ResetPassword sets the user's password for good.
func (c *Client) ResetPassword(ctx context.Context, id, password string) error {
	return c.resetPassword(ctx, id, password, false)
}

// ResetTemporaryPassword sets a password the user must change at the next
// login (required action UPDATE_PASSWORD).
func (c *Client) ResetTemporaryPassword(ctx context.Context, id, password string) error {
	return c.resetPassword(ctx, id, password, true)
}

func (c *Client) resetPassword(ctx context.Context, id, password string, temporary bool) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", ErrBadRequest)
	}
	body := struct {
		Type      string `json:"type"`
		Value     string `json:"value"`
		Temporary bool   `json:"temporary"`
	}{"password", password, temporary}
	return c.exec(ctx, call{method: http.MethodPut, path: "/users/" + seg(id) + "/reset-password", body: body, role: roleManageUsers})
}

// UserSessions lists the user's active sessions.
func (c *Client) UserSessions(ctx context.Context, id string) ([]UserSession, error) {
	var out []UserSession
	err := c.get(ctx, call{path: "/users/" + seg(id) + "/sessions", role: roleViewUsers}, &out)
	return out, err
}

// DeleteSession ends one session (DELETE /sessions/{id}); Keycloak sends
// back-channel logouts to its clients. An unknown or ended session is
// ErrNotFound.
func (c *Client) DeleteSession(ctx context.Context, sessionID string) error {
	return c.exec(ctx, call{method: http.MethodDelete, path: "/sessions/" + seg(sessionID), role: roleManageUsers})
}

// LogoutUser ends every session of the user (POST /users/{id}/logout),
// with back-channel logouts. Being a POST, it is not retried once sent.
func (c *Client) LogoutUser(ctx context.Context, id string) error {
	return c.exec(ctx, call{method: http.MethodPost, path: "/users/" + seg(id) + "/logout", role: roleManageUsers})
}

// FederatedIdentities lists the user's identity-provider links.
func (c *Client) FederatedIdentities(ctx context.Context, id string) ([]FederatedIdentity, error) {
	var out []FederatedIdentity
	err := c.get(ctx, call{path: "/users/" + seg(id) + "/federated-identity", role: roleViewUsers}, &out)
	return out, err
}

// LinkFederatedIdentity links the user to an account at fi.IdentityProvider.
// An existing link to that provider is ErrConflict.
func (c *Client) LinkFederatedIdentity(ctx context.Context, id string, fi FederatedIdentity) error {
	if fi.IdentityProvider == "" || fi.UserID == "" {
		return fmt.Errorf("%w: federated identity needs IdentityProvider and UserID", ErrBadRequest)
	}
	return c.exec(ctx, call{method: http.MethodPost, path: "/users/" + seg(id) + "/federated-identity/" + seg(fi.IdentityProvider),
		body: fi, role: roleManageUsers})
}

// UnlinkFederatedIdentity removes the user's link to a provider; no link
// is ErrNotFound.
func (c *Client) UnlinkFederatedIdentity(ctx context.Context, id, provider string) error {
	return c.exec(ctx, call{method: http.MethodDelete, path: "/users/" + seg(id) + "/federated-identity/" + seg(provider), role: roleManageUsers})
}

// errMissingRoles reports role names that do not exist.
func errMissingRoles(kind string, missing []string) error {
	return fmt.Errorf("%w: %s role(s) %q do not exist", ErrNotFound, kind, missing)
}

// pick returns the roles named, in the order of names, or an error naming
// the missing ones.
func pick(kind string, all []Role, names []string) ([]Role, error) {
	var out []Role
	var missing []string
	for _, n := range names {
		i := slices.IndexFunc(all, func(r Role) bool { return r.Name == n })
		if i < 0 {
			missing = append(missing, n)
			continue
		}
		out = append(out, all[i])
	}
	if len(missing) > 0 {
		return nil, errMissingRoles(kind, missing)
	}
	return out, nil
}
