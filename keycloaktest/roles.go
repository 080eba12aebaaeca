package keycloaktest

import (
	"fmt"
	"slices"
	"strings"
)

// The role model. A user's role mappings are the realm roles (user.realmRoles)
// and client roles (user.clientRoles) mapped to the user itself; its groups
// (and their ancestors) add theirs. What a user holds — in tokens and in the
// admin API's "composite" mappings — is the closure of all these under the
// composite roles, as Keycloak computes it.
//
// Keycloak creates these roles with every realm (Keycloak 26.x):
//
//	default-roles-{realm}  composite: offline_access, uma_authorization,
//	                       account/view-profile, account/manage-account
//	account/manage-account composite: account/manage-account-links
//	account/manage-consent composite: account/view-consent
//	realm-management/realm-admin and view-users, view-clients,
//	view-organizations: see adminRoles and adminComposites
//
// default-roles-{realm} is mapped to the users the admin API, self
// registration and Go configuration create, and to the service accounts of
// clients, but not to the users (service accounts included) a realm file
// lists unless the file lists the role for them (UserConfig.NoDefaultRoles,
// ClientConfig.ServiceAccountNoDefaultRoles), as Keycloak 26.7.3 does.

// roleRef names a realm role (client "") or a client role.
type roleRef struct{ client, name string }

// roleDef is what a realm knows about a role besides its existence.
type roleDef struct {
	description string
	composites  []roleRef
}

// Keycloak's built-in realm roles besides default-roles-{realm}.
var builtinRealmRoles = []string{"offline_access", "uma_authorization"}

// offlineAccessRole is the realm role a user needs for offline tokens.
const offlineAccessRole = "offline_access"

// accountRoles are the roles of Keycloak's built-in "account" client.
var accountRoles = []string{
	"delete-account", "manage-account", "manage-account-links", "manage-consent",
	"view-applications", "view-consent", "view-groups", "view-profile",
}

// builtinDescription is the description Keycloak gives a built-in role: a
// message key of its admin console.
func builtinDescription(name string) string {
	if name == offlineAccessRole {
		return "${role_offline-access}"
	}
	if strings.HasPrefix(name, "default-roles-") {
		return "${role_default-roles}"
	}
	return "${role_" + name + "}"
}

// initRolesLocked records the built-in roles' descriptions and composites.
func (r *Realm) initRolesLocked() {
	r.roleDefs = builtinRoleDefs(r.defaultRolesName())
}

// builtinRoleDefs are the descriptions and composites Keycloak gives the
// roles it creates with a realm whose default role is defaultRole.
func builtinRoleDefs(defaultRole string) map[roleRef]*roleDef {
	defs := map[roleRef]*roleDef{}
	def := func(ref roleRef, composites ...roleRef) {
		defs[ref] = &roleDef{description: builtinDescription(ref.name), composites: composites}
	}
	for _, name := range builtinRealmRoles {
		def(roleRef{"", name})
	}
	def(roleRef{"", defaultRole},
		roleRef{"", offlineAccessRole}, roleRef{"", "uma_authorization"},
		roleRef{accountClientID, "view-profile"}, roleRef{accountClientID, "manage-account"})
	for _, name := range accountRoles {
		def(roleRef{accountClientID, name})
	}
	defs[roleRef{accountClientID, "manage-account"}].composites = []roleRef{{accountClientID, "manage-account-links"}}
	defs[roleRef{accountClientID, "manage-consent"}].composites = []roleRef{{accountClientID, "view-consent"}}
	for _, name := range adminRoles {
		var composites []roleRef
		if name == "realm-admin" {
			for _, other := range adminRoles {
				if other != name {
					composites = append(composites, roleRef{realmManagementClientID, other})
				}
			}
		}
		for _, c := range adminComposites[name] {
			composites = append(composites, roleRef{realmManagementClientID, c})
		}
		def(roleRef{realmManagementClientID, name}, composites...)
	}
	return defs
}

// sameRoleDef reports whether two role definitions are equal, composites
// in any order.
func sameRoleDef(a, b *roleDef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.description == b.description && len(a.composites) == len(b.composites) &&
		!slices.ContainsFunc(a.composites, func(c roleRef) bool { return !slices.Contains(b.composites, c) })
}

// clientRoleDefinedLocked reports whether a client role exists: a role of a
// client of the realm, or of the built-in account client.
func (r *Realm) clientRoleDefinedLocked(clientID, name string) bool {
	if c, ok := r.clients[clientID]; ok && slices.Contains(c.roles, name) {
		return true
	}
	return clientID == accountClientID && (slices.Contains(accountRoles, name) || slices.Contains(r.accountExtra, name))
}

// defineClientRolesLocked defines the roles on a client of the realm, or as
// custom roles of the built-in account client; roles of other clients are
// ignored (callers check the client exists).
func (r *Realm) defineClientRolesLocked(clientID string, roles []string) {
	c, ok := r.clients[clientID]
	for _, role := range roles {
		switch {
		case ok:
			if !slices.Contains(c.roles, role) {
				c.roles = append(c.roles, role)
			}
		case clientID == accountClientID && !r.clientRoleDefinedLocked(clientID, role):
			r.accountExtra = append(r.accountExtra, role)
		}
	}
}

// applyRoleConfigsLocked defines the roles of cfgs and then sets their
// descriptions and composites, so that a composite may name a role defined
// by a later entry.
func (r *Realm) applyRoleConfigsLocked(cfgs []RoleConfig) error {
	for _, rc := range cfgs {
		if rc.Name == "" || strings.ContainsFunc(rc.Name, isControl) {
			return fmt.Errorf("%w: role name %q is empty or has control characters", ErrInvalidConfig, rc.Name)
		}
		if rc.Client == "" {
			if err := r.defineRealmRole(rc.Name); err != nil {
				return err
			}
			continue
		}
		if _, ok := r.clients[rc.Client]; !ok && rc.Client != accountClientID {
			return fmt.Errorf("role %q: %w %q", rc.Name, ErrUnknownClient, rc.Client)
		}
		r.defineClientRolesLocked(rc.Client, []string{rc.Name})
	}
	for _, rc := range cfgs {
		ref := roleRef{rc.Client, rc.Name}
		label := rc.Name
		if rc.Client != "" {
			label = rc.Client + "/" + rc.Name
		}
		var composites []roleRef
		for _, name := range rc.RealmComposites {
			if !slices.Contains(r.realmRoleNamesLocked(), name) {
				return fmt.Errorf("%w: role %q: composite realm role %q is not defined", ErrInvalidConfig, label, name)
			}
			composites = append(composites, roleRef{"", name})
		}
		for _, clientID := range sortedKeys(rc.ClientComposites) {
			if _, ok := r.clients[clientID]; !ok && clientID != accountClientID {
				return fmt.Errorf("role %q: composite roles of %w %q", label, ErrUnknownClient, clientID)
			}
			for _, name := range rc.ClientComposites[clientID] {
				if !r.clientRoleDefinedLocked(clientID, name) {
					return fmt.Errorf("%w: role %q: composite role %q of client %q is not defined", ErrInvalidConfig, label, name, clientID)
				}
				composites = append(composites, roleRef{clientID, name})
			}
		}
		d := r.roleDefs[ref]
		if d == nil {
			d = &roleDef{}
			r.roleDefs[ref] = d
		}
		// As Keycloak's import: the description is replaced, composites
		// are added to those the role has.
		d.description = rc.Description
		for _, c := range composites {
			if c != ref && !slices.Contains(d.composites, c) {
				d.composites = append(d.composites, c)
			}
		}
	}
	return nil
}

// roleDefLocked returns what the realm knows about a role (nil: a plain role
// without description).
func (r *Realm) roleDefLocked(ref roleRef) *roleDef { return r.roleDefs[ref] }

// effectiveRolesLocked is the set of roles a user holds: its role mappings
// and its groups', expanded through composite roles.
func (r *Realm) effectiveRolesLocked(u *user) map[roleRef]bool {
	held := map[roleRef]bool{}
	var visit func(ref roleRef)
	visit = func(ref roleRef) {
		if held[ref] {
			return
		}
		held[ref] = true
		if d := r.roleDefs[ref]; d != nil {
			for _, c := range d.composites {
				visit(c)
			}
		}
	}
	add := func(realm []string, byClient map[string][]string) {
		for _, name := range realm {
			visit(roleRef{"", name})
		}
		for clientID, names := range byClient {
			for _, name := range names {
				visit(roleRef{clientID, name})
			}
		}
	}
	add(u.realmRoles, u.clientRoles)
	for _, g := range r.memberGroupsLocked(u) {
		add(g.realmRoles, g.clientRoles)
	}
	return held
}

// effectiveRealmRoles are the realm roles the user holds (mapped to it or to
// its groups, and what composite roles contain), sorted.
func (r *Realm) effectiveRealmRoles(u *user) []string {
	var out []string
	for ref := range r.effectiveRolesLocked(u) {
		if ref.client == "" {
			out = append(out, ref.name)
		}
	}
	return dedupe(out)
}

// effectiveClientRoles are the client roles the user holds, sorted per
// client; clients on which it holds none are absent.
func (r *Realm) effectiveClientRoles(u *user) map[string][]string {
	out := map[string][]string{}
	for ref := range r.effectiveRolesLocked(u) {
		if ref.client != "" {
			out[ref.client] = append(out[ref.client], ref.name)
		}
	}
	for clientID, roles := range out {
		out[clientID] = dedupe(roles)
	}
	return out
}

// usersWithRoleLocked lists the users a role is mapped to directly (not
// through a group or a composite role), sorted by username, as Keycloak's
// GET /roles/{name}/users does.
func (r *Realm) usersWithRoleLocked(ref roleRef) []*user {
	var out []*user
	for _, u := range r.users {
		if ref.client == "" && slices.Contains(u.realmRoles, ref.name) ||
			ref.client != "" && slices.Contains(u.clientRoles[ref.client], ref.name) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(x, y *user) int { return strings.Compare(x.username, y.username) })
	return out
}

// roleClaims sets an access token's realm_access and resource_access
// claims from the roles the user holds, leaving either out when empty, as
// Keycloak does (a service account with only realm-management roles has no
// realm_access). It returns the audience those roles resolve to: every
// client other than the token's own (clientID) on which the user holds a
// role, as Keycloak's audience resolve mapper does — so "account" for a
// user holding default-roles-{realm}.
func (r *Realm) roleClaims(c map[string]any, u *user, clientID string) (audience []string) {
	if roles := r.effectiveRealmRoles(u); len(roles) > 0 {
		c["realm_access"] = map[string]any{"roles": roles}
	}
	ra := map[string]any{}
	for id, roles := range r.effectiveClientRoles(u) {
		ra[id] = map[string]any{"roles": roles}
		if id != clientID {
			audience = append(audience, id)
		}
	}
	if len(ra) > 0 {
		c["resource_access"] = ra
	}
	return dedupe(audience)
}
