package keycloaktest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// realmManagementClientID is Keycloak's built-in client whose roles grant
// access to a realm's admin REST API.
const realmManagementClientID = "realm-management"

// adminCLIClientID is Keycloak's built-in public client for admin tools
// (password grant).
const adminCLIClientID = "admin-cli"

// Keycloak's admin roles (AdminRoles), the client roles of realm-management
// (Keycloak 26.x, organizations included).
var adminRoles = []string{
	"create-client", "impersonation", "manage-authorization", "manage-clients", "manage-events",
	"manage-identity-providers", "manage-organizations", "manage-realm", "manage-users", "query-clients",
	"query-groups", "query-organizations", "query-realms", "query-users", "realm-admin", "view-authorization",
	"view-clients", "view-events", "view-identity-providers", "view-organizations", "view-realm", "view-users",
}

// adminComposites are the composite admin roles and what they contain.
// realm-admin contains every other admin role.
var adminComposites = map[string][]string{
	"view-users":         {"query-users", "query-groups"},
	"view-clients":       {"query-clients"},
	"view-organizations": {"query-organizations"},
}

// addBuiltinClientsLocked creates Keycloak's realm-management and admin-cli
// clients unless the configuration has them, and makes sure
// realm-management defines the admin roles.
func (r *Realm) addBuiltinClientsLocked() {
	for _, id := range []string{realmManagementClientID, adminCLIClientID} {
		// A realm file that only refers to the roles of a built-in client
		// gets a bare entry for it (ParseRealm): that is the built-in one.
		if c, ok := r.clients[id]; ok && isBareClient(c.cfg) {
			c.builtin = true
			r.clientSeq = slices.DeleteFunc(r.clientSeq, func(s string) bool { return s == id })
			if id == adminCLIClientID {
				c.cfg.Public, c.cfg.DirectAccessGrants = true, true
			} else {
				c.cfg.Attributes = map[string]string{"bearerOnly": "true"}
			}
		}
	}
	if c, ok := r.clients[realmManagementClientID]; ok {
		for _, role := range adminRoles {
			if !slices.Contains(c.roles, role) {
				c.roles = append(c.roles, role)
			}
		}
	} else {
		r.clients[realmManagementClientID] = &client{
			cfg:     ClientConfig{ClientID: realmManagementClientID, Attributes: map[string]string{"bearerOnly": "true"}},
			roles:   slices.Clone(adminRoles),
			uuid:    newUUID(),
			builtin: true,
		}
	}
	if _, ok := r.clients[adminCLIClientID]; !ok {
		r.clients[adminCLIClientID] = &client{
			cfg:     ClientConfig{ClientID: adminCLIClientID, Public: true, DirectAccessGrants: true},
			uuid:    newUUID(),
			builtin: true,
		}
	}
}

// isBareClient reports whether a client configuration names only the
// client and its roles.
func isBareClient(c ClientConfig) bool {
	c.Roles = nil
	return reflect.DeepEqual(c, ClientConfig{ClientID: c.ClientID})
}

// group is a realm group.
type group struct {
	id, name, path string
	parent         string // parent id, "" for top-level groups
	children       []string
	attributes     map[string][]string
	realmRoles     []string
	clientRoles    map[string][]string
}

// addGroupLocked adds a group and its subgroups under parent (nil: top level).
func (r *Realm) addGroupLocked(gc GroupConfig, parent *group) error {
	if gc.Name == "" || strings.Contains(gc.Name, "/") || strings.ContainsFunc(gc.Name, isControl) {
		return fmt.Errorf("%w: group name %q is empty or has \"/\" or control characters", ErrInvalidConfig, gc.Name)
	}
	path := "/" + gc.Name
	if parent != nil {
		path = parent.path + path
	}
	if r.groupByPathLocked(path) != nil {
		return fmt.Errorf("%w: two groups with path %q", ErrInvalidConfig, path)
	}
	id := gc.ID
	if id == "" {
		id = newUUID()
	}
	if _, dup := r.groups[id]; dup || strings.ContainsFunc(id, isControl) || strings.Contains(id, "/") {
		return fmt.Errorf("%w: group %q: duplicate or invalid id %q", ErrInvalidConfig, path, id)
	}
	for _, role := range gc.RealmRoles {
		if role == "" {
			return fmt.Errorf("%w: group %q: empty realm role name", ErrInvalidConfig, path)
		}
	}
	for clientID, roles := range gc.ClientRoles {
		if _, ok := r.clients[clientID]; !ok && clientID != accountClientID {
			return fmt.Errorf("group %q: client roles for %w %q", path, ErrUnknownClient, clientID)
		}
		for _, role := range roles {
			if role == "" {
				return fmt.Errorf("%w: group %q: empty client role name", ErrInvalidConfig, path)
			}
		}
	}
	for clientID, roles := range gc.ClientRoles {
		r.defineClientRolesLocked(clientID, roles)
	}
	for _, role := range gc.RealmRoles {
		_ = r.defineRealmRole(role)
	}
	g := &group{
		id: id, name: gc.Name, path: path,
		attributes:  cloneMultiMap(gc.Attributes),
		realmRoles:  dedupe(gc.RealmRoles),
		clientRoles: cloneMultiMap(gc.ClientRoles),
	}
	r.groups[id] = g
	if parent == nil {
		r.topGroups = append(r.topGroups, id)
	} else {
		g.parent = parent.id
		parent.children = append(parent.children, id)
	}
	for _, sub := range gc.SubGroups {
		if err := r.addGroupLocked(sub, g); err != nil {
			return err
		}
	}
	return nil
}

// groupByPathLocked finds a group by path; the leading "/" is optional.
func (r *Realm) groupByPathLocked(path string) *group {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	path = strings.TrimSuffix(path, "/")
	for _, g := range r.groups {
		if g.path == path {
			return g
		}
	}
	return nil
}

// memberGroupsLocked returns the user's groups and all their ancestors.
func (r *Realm) memberGroupsLocked(u *user) []*group {
	var out []*group
	seen := map[string]bool{}
	for _, id := range u.groups {
		for g := r.groups[id]; g != nil && !seen[g.id]; g = r.groups[g.parent] {
			seen[g.id] = true
			out = append(out, g)
		}
	}
	return out
}

// groupConfigLocked turns a group back into its configuration, for export.
func (r *Realm) groupConfigLocked(g *group) GroupConfig {
	gc := GroupConfig{
		ID: g.id, Name: g.name,
		Attributes:  cloneMultiMap(g.attributes),
		RealmRoles:  slices.Clone(g.realmRoles),
		ClientRoles: cloneMultiMap(g.clientRoles),
	}
	for _, id := range g.children {
		gc.SubGroups = append(gc.SubGroups, r.groupConfigLocked(r.groups[id]))
	}
	return gc
}

// roleID returns the stable id of a realm role (clientID "") or client role.
func (r *Realm) roleIDLocked(clientID, name string) string {
	key := clientID + "\x00" + name
	id, ok := r.roleIDs[key]
	if !ok {
		id = newUUID()
		r.roleIDs[key] = id
	}
	return id
}
