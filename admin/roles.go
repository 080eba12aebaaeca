package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// RealmRoles lists the realm's roles (GET /roles). Keycloak 26 allows it
// with view-realm only.
func (c *Client) RealmRoles(ctx context.Context) ([]Role, error) {
	var out []Role
	err := c.get(ctx, call{path: "/roles", query: url.Values{"briefRepresentation": {"true"}}, role: "view-realm"}, &out)
	return out, err
}

// UserRealmRoles lists the realm roles mapped directly to the user
// (including default-roles-{realm}).
func (c *Client) UserRealmRoles(ctx context.Context, id string) ([]Role, error) {
	var out []Role
	err := c.get(ctx, call{path: "/users/" + seg(id) + "/role-mappings/realm", role: roleViewUsers}, &out)
	return out, err
}

// AddUserRealmRoles maps realm roles, by name, to the user. The role
// representations are looked up first (Keycloak wants id and name); an
// unknown name is ErrNotFound and nothing is mapped.
func (c *Client) AddUserRealmRoles(ctx context.Context, id string, names ...string) error {
	return c.editRealmRoles(ctx, http.MethodPost, id, names)
}

// RemoveUserRealmRoles removes realm-role mappings, by name, from the user.
func (c *Client) RemoveUserRealmRoles(ctx context.Context, id string, names ...string) error {
	return c.editRealmRoles(ctx, http.MethodDelete, id, names)
}

func (c *Client) editRealmRoles(ctx context.Context, method, id string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	// The roles are looked up through the user (the roles it has and the
	// roles it may get), which view-users allows: Keycloak 26 answers GET
	// /roles only to view-realm, not to the query-* roles.
	var all, mapped []Role
	if err := c.get(ctx, call{path: "/users/" + seg(id) + "/role-mappings/realm/available", role: roleViewUsers}, &all); err != nil {
		return err
	}
	if err := c.get(ctx, call{path: "/users/" + seg(id) + "/role-mappings/realm", role: roleViewUsers}, &mapped); err != nil {
		return err
	}
	roles, err := pick("realm", append(all, mapped...), names)
	if err != nil {
		return err
	}
	return c.exec(ctx, call{method: method, path: "/users/" + seg(id) + "/role-mappings/realm", body: roles, role: roleMapRealm})
}

// UserClientRoles lists the roles of a client (by clientId) mapped
// directly to the user.
func (c *Client) UserClientRoles(ctx context.Context, id, clientID string) ([]Role, error) {
	cl, err := c.ClientByClientID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	var out []Role
	err = c.get(ctx, call{path: "/users/" + seg(id) + "/role-mappings/clients/" + seg(cl.ID), role: "view-users and view-clients"}, &out)
	return out, err
}

// ClientRoles lists the roles defined on a client (by clientId).
func (c *Client) ClientRoles(ctx context.Context, clientID string) ([]Role, error) {
	cl, err := c.ClientByClientID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return c.clientRoles(ctx, cl.ID)
}

func (c *Client) clientRoles(ctx context.Context, uuid string) ([]Role, error) {
	var out []Role
	err := c.get(ctx, call{path: "/clients/" + seg(uuid) + "/roles", query: url.Values{"briefRepresentation": {"true"}}, role: "view-clients"}, &out)
	return out, err
}

// AddUserClientRoles maps roles of a client (by clientId) to the user. The
// client's UUID and role representations are looked up first.
func (c *Client) AddUserClientRoles(ctx context.Context, id, clientID string, names ...string) error {
	return c.editClientRoles(ctx, http.MethodPost, id, clientID, names)
}

// RemoveUserClientRoles removes client-role mappings from the user.
func (c *Client) RemoveUserClientRoles(ctx context.Context, id, clientID string, names ...string) error {
	return c.editClientRoles(ctx, http.MethodDelete, id, clientID, names)
}

func (c *Client) editClientRoles(ctx context.Context, method, id, clientID string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	cl, err := c.ClientByClientID(ctx, clientID)
	if err != nil {
		return err
	}
	all, err := c.clientRoles(ctx, cl.ID)
	if err != nil {
		return err
	}
	roles, err := pick("client "+strconv.Quote(clientID), all, names)
	if err != nil {
		return err
	}
	return c.exec(ctx, call{method: method, path: "/users/" + seg(id) + "/role-mappings/clients/" + seg(cl.ID), body: roles, role: roleMapClient})
}

// ClientByClientID looks a client up by its clientId (the name in tokens'
// azp), which gives its UUID (ID) for the admin paths. No such client is
// ErrNotFound.
func (c *Client) ClientByClientID(ctx context.Context, clientID string) (*ClientRepresentation, error) {
	var out []ClientRepresentation
	if err := c.get(ctx, call{path: "/clients", query: url.Values{"clientId": {clientID}}, role: roleQueryClients}, &out); err != nil {
		return nil, err
	}
	for _, cl := range out {
		if cl.ClientID == clientID {
			return &cl, nil
		}
	}
	// Keycloak 26 answers this search with an empty list, not 403, to a
	// caller with query-clients but without view-clients.
	return nil, fmt.Errorf("%w: no client %q in realm %q (or the service account lacks the realm-management role view-clients, without which Keycloak lists no clients)", ErrNotFound, clientID, c.realmName)
}

// ListGroups lists top-level groups (with the matching branches when
// q.Search is set).
func (c *Client) ListGroups(ctx context.Context, q GroupQuery) ([]Group, error) {
	v := url.Values{}
	if q.Search != "" {
		v.Set("search", q.Search)
	}
	if q.First > 0 {
		v.Set("first", strconv.Itoa(q.First))
	}
	if q.Max > 0 {
		v.Set("max", strconv.Itoa(q.Max))
	}
	v.Set("briefRepresentation", strconv.FormatBool(!q.Full))
	var out []Group
	err := c.get(ctx, call{path: "/groups", query: v, role: roleQueryGroups}, &out)
	return out, err
}

// GroupByPath finds a group by its path, e.g. "/staff/editors" (the
// leading "/" is optional). No such group is ErrNotFound.
func (c *Client) GroupByPath(ctx context.Context, groupPath string) (*Group, error) {
	parts := strings.Split(strings.Trim(groupPath, "/"), "/")
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%w: group path %q has an empty segment", ErrBadRequest, groupPath)
		}
		parts[i] = seg(p)
	}
	var g Group
	if err := c.get(ctx, call{path: "/group-by-path/" + strings.Join(parts, "/"), role: roleViewUsers}, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// GroupMembers lists a group's members, one page (first offset, max page
// size; 0 means Keycloak's default of 100).
func (c *Client) GroupMembers(ctx context.Context, groupID string, first, max int) ([]User, error) {
	v := url.Values{}
	if first > 0 {
		v.Set("first", strconv.Itoa(first))
	}
	if max > 0 {
		v.Set("max", strconv.Itoa(max))
	}
	var out []User
	err := c.get(ctx, call{path: "/groups/" + seg(groupID) + "/members", query: v, role: roleViewUsers}, &out)
	return out, err
}

// UserGroups lists the groups the user is a direct member of.
func (c *Client) UserGroups(ctx context.Context, id string) ([]Group, error) {
	var out []Group
	err := c.get(ctx, call{path: "/users/" + seg(id) + "/groups", role: roleViewUsers}, &out)
	return out, err
}

// JoinGroup makes the user a member of the group (idempotent). An unknown
// group is ErrNotFound.
func (c *Client) JoinGroup(ctx context.Context, userID, groupID string) error {
	return c.exec(ctx, call{method: http.MethodPut, path: "/users/" + seg(userID) + "/groups/" + seg(groupID), role: roleManageUsers})
}

// LeaveGroup removes the user from the group (idempotent).
func (c *Client) LeaveGroup(ctx context.Context, userID, groupID string) error {
	return c.exec(ctx, call{method: http.MethodDelete, path: "/users/" + seg(userID) + "/groups/" + seg(groupID), role: roleManageUsers})
}
