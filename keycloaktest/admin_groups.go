package keycloaktest

import (
	"net/http"
	"slices"
	"strings"
)

// roleInput is a RoleRepresentation in a role-mapping body.
type roleInput struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// realmRoleNamesLocked lists every realm role, built-in ones included.
func (r *Realm) realmRoleNamesLocked() []string {
	names := append([]string{r.defaultRolesName()}, builtinRealmRoles...)
	return dedupe(append(names, r.realmRoles...))
}

// roleRep renders a RoleRepresentation of a realm role (c nil) or a client
// role; full adds the role's attributes (Keycloak's non-brief form).
func (a *adminReq) roleRep(c *client, name string, full bool) map[string]any {
	clientID, container := "", a.r.name
	if c != nil {
		clientID, container = c.cfg.ClientID, c.uuid
	}
	m := map[string]any{
		"id": a.r.roleIDLocked(clientID, name), "name": name, "composite": false,
		"clientRole": c != nil, "containerId": container,
	}
	if d := a.r.roleDefLocked(roleRef{clientID, name}); d != nil {
		m["composite"] = len(d.composites) > 0
		if d.description != "" {
			m["description"] = d.description
		}
	}
	if full {
		m["attributes"] = map[string][]string{}
	}
	return m
}

func (a *adminReq) roleReps(c *client, names []string) []map[string]any {
	full := a.get("briefRepresentation") == "false"
	out := []map[string]any{}
	for _, n := range dedupe(names) {
		out = append(out, a.roleRep(c, n, full))
	}
	return out
}

// resolveRoles checks a role-mapping body against the defined roles: each
// role must exist by name and, when an id is given, have that id.
func (a *adminReq) resolveRoles(c *client, body []byte) ([]string, *adminResp) {
	var in []roleInput
	if !decodeBody(body, &in) {
		r := respBadRequest()
		return nil, &r
	}
	defined := a.r.realmRoleNamesLocked()
	clientID := ""
	if c != nil {
		defined, clientID = c.roles, c.cfg.ClientID
	}
	var names []string
	for _, ri := range in {
		if !slices.Contains(defined, ri.Name) || (ri.ID != "" && ri.ID != a.r.roleIDLocked(clientID, ri.Name)) {
			r := respError(http.StatusNotFound, "Role not found")
			return nil, &r
		}
		names = append(names, ri.Name)
	}
	return names, nil
}

// roleMappingRoutes serves /users/{id}/role-mappings[/...].
func (a *adminReq) roleMappingRoutes(u *user, m string, rest []string, body []byte) adminResp {
	if m == http.MethodGet && !a.perms.viewUsers() || m != http.MethodGet && !a.perms.manageUsers() {
		return respForbidden()
	}
	if len(rest) == 0 {
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		out := map[string]any{}
		if len(u.realmRoles) > 0 {
			out["realmMappings"] = a.roleReps(nil, u.realmRoles)
		}
		cm := map[string]any{}
		for clientID, roles := range u.clientRoles {
			if c := a.r.clients[clientID]; c != nil && len(roles) > 0 {
				cm[clientID] = map[string]any{"id": c.uuid, "client": clientID, "mappings": a.roleReps(c, roles)}
			}
		}
		if len(cm) > 0 {
			out["clientMappings"] = cm
		}
		return respJSON(http.StatusOK, out)
	}
	var c *client
	switch {
	case rest[0] == "realm" && len(rest) <= 2:
		rest = rest[1:]
	case rest[0] == "clients" && len(rest) >= 2 && len(rest) <= 3:
		for _, cl := range a.r.clients {
			if cl.uuid == rest[1] {
				c = cl
			}
		}
		if c == nil {
			return respError(http.StatusNotFound, "Client not found")
		}
		rest = rest[2:]
	default:
		return respNoRoute()
	}
	if len(rest) == 1 {
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		switch rest[0] {
		case "composite":
			if c == nil {
				return respJSON(http.StatusOK, a.roleReps(nil, a.r.effectiveRealmRoles(u)))
			}
			return respJSON(http.StatusOK, a.roleReps(c, a.r.effectiveClientRoles(u)[c.cfg.ClientID]))
		case "available":
			// Roles not mapped directly, even those held through a
			// composite or a group (as Keycloak lists them).
			all, have := a.r.realmRoleNamesLocked(), u.realmRoles
			if c != nil {
				all, have = c.roles, u.clientRoles[c.cfg.ClientID]
			}
			return respJSON(http.StatusOK, a.roleReps(c, slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(have, n) })))
		}
		return respNoRoute()
	}
	switch m {
	case http.MethodGet:
		if c == nil {
			return respJSON(http.StatusOK, a.roleReps(nil, u.realmRoles))
		}
		return respJSON(http.StatusOK, a.roleReps(c, u.clientRoles[c.cfg.ClientID]))
	case http.MethodPost, http.MethodDelete:
		names, fail := a.resolveRoles(c, body)
		if fail != nil {
			return *fail
		}
		add := m == http.MethodPost
		if c == nil {
			u.realmRoles = editRoles(u.realmRoles, names, add)
		} else {
			if u.clientRoles == nil {
				u.clientRoles = map[string][]string{}
			}
			u.clientRoles[c.cfg.ClientID] = editRoles(u.clientRoles[c.cfg.ClientID], names, add)
			if len(u.clientRoles[c.cfg.ClientID]) == 0 {
				delete(u.clientRoles, c.cfg.ClientID)
			}
		}
		return respNoContent()
	}
	return respMethodNotAllowed()
}

func editRoles(have, names []string, add bool) []string {
	if add {
		return dedupe(append(slices.Clone(have), names...))
	}
	return slices.DeleteFunc(slices.Clone(have), func(n string) bool { return slices.Contains(names, n) })
}

// groupRep renders a GroupRepresentation; with tree, subGroups holds the
// whole subtree.
func (a *adminReq) groupRep(g *group, full, tree bool) map[string]any {
	return a.renderGroup(g, full, tree, false)
}

// groupRepAccess is groupRep with the caller's "access" object, which
// Keycloak adds to the groups of its /groups endpoints (brief or not, but
// not to group-by-path or /users/{id}/groups).
func (a *adminReq) groupRepAccess(g *group, full, tree bool) map[string]any {
	return a.renderGroup(g, full, tree, true)
}

func (a *adminReq) renderGroup(g *group, full, tree, access bool) map[string]any {
	m := map[string]any{"id": g.id, "name": g.name, "path": g.path, "subGroupCount": len(g.children), "subGroups": []any{}}
	if g.parent != "" {
		m["parentId"] = g.parent
	}
	if full {
		attrs := cloneMultiMap(g.attributes)
		if attrs == nil {
			attrs = map[string][]string{}
		}
		m["attributes"] = attrs
		m["realmRoles"] = nonNil(slices.Clone(g.realmRoles))
		cr := cloneMultiMap(g.clientRoles)
		if cr == nil {
			cr = map[string][]string{}
		}
		m["clientRoles"] = cr
	}
	if access {
		// Without fine-grained permissions, Keycloak's values are: view
		// and viewMembers need view-users (or manage-users), the others
		// manage-users.
		view, manage := a.perms.viewUsers(), a.perms.manageUsers()
		m["access"] = map[string]bool{"view": view, "viewMembers": view, "manage": manage,
			"manageMembers": manage, "manageMembership": manage}
	}
	if tree {
		subs := []any{}
		for _, id := range a.sortedGroups(g.children) {
			subs = append(subs, a.renderGroup(a.r.groups[id], full, true, access))
		}
		m["subGroups"] = subs
	}
	return m
}

// sortedGroups orders group ids by name, as Keycloak lists groups.
func (a *adminReq) sortedGroups(ids []string) []string {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(x, y string) int { return strings.Compare(a.r.groups[x].name, a.r.groups[y].name) })
	return out
}

// groupRoutes serves GET /groups[/...].
func (a *adminReq) groupRoutes() adminResp {
	seg := a.seg[1:]
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", -1)
	brief, ok3 := a.queryBool("briefRepresentation")
	if !ok1 || !ok2 || !ok3 {
		return respBadRequest()
	}
	full := brief != nil && !*brief
	switch {
	case len(seg) == 0 || len(seg) == 1 && seg[0] == "count":
		if !a.perms.queryGroups() {
			return respForbidden()
		}
		search, exact := a.get("search"), a.get("exact") == "true"
		match := func(g *group) bool {
			if exact {
				return g.name == search
			}
			return strings.Contains(strings.ToLower(g.name), strings.ToLower(search))
		}
		if len(seg) == 1 {
			n := 0
			for _, g := range a.r.groups {
				if (search == "" && (a.get("top") != "true" || g.parent == "")) || (search != "" && match(g)) {
					n++
				}
			}
			return respJSON(http.StatusOK, map[string]int{"count": n})
		}
		out := []any{}
		if !a.perms.viewUsers() {
			// Keycloak lists only the groups the caller may view: none
			// with query-groups alone, which still counts them.
			return respJSON(http.StatusOK, out)
		}
		for _, id := range pageOf(a.sortedGroups(a.r.topGroups), first, max) {
			g := a.r.groups[id]
			if !a.has("search") || search == "" {
				out = append(out, a.groupRepAccess(g, full, false))
				continue
			}
			if rep := a.searchTree(g, match, full); rep != nil {
				out = append(out, rep)
			}
		}
		return respJSON(http.StatusOK, out)
	}
	g := a.r.groups[seg[0]]
	if g == nil {
		return respError(http.StatusNotFound, "Could not find group by id")
	}
	if !a.perms.viewUsers() {
		return respForbidden()
	}
	switch {
	case len(seg) == 1:
		return respJSON(http.StatusOK, a.groupRepAccess(g, true, true))
	case len(seg) == 2 && seg[1] == "children":
		out := []any{}
		for _, id := range pageOf(a.sortedGroups(g.children), first, max) {
			out = append(out, a.groupRepAccess(a.r.groups[id], full, false))
		}
		return respJSON(http.StatusOK, out)
	case len(seg) == 2 && seg[1] == "members":
		if max < 0 && !a.has("max") {
			max = defaultUserMax
		}
		var members []*user
		for _, u := range a.r.users {
			if slices.Contains(u.groups, g.id) {
				members = append(members, u)
			}
		}
		slices.SortFunc(members, func(x, y *user) int { return strings.Compare(x.username, y.username) })
		out := []any{}
		for _, u := range pageOf(members, first, max) {
			out = append(out, a.userRep(u, brief != nil && *brief, false))
		}
		return respJSON(http.StatusOK, out)
	}
	return respNoRoute()
}

// searchTree is the group with only the branches holding a match, or nil.
func (a *adminReq) searchTree(g *group, match func(*group) bool, full bool) map[string]any {
	var subs []any
	for _, id := range a.sortedGroups(g.children) {
		if rep := a.searchTree(a.r.groups[id], match, full); rep != nil {
			subs = append(subs, rep)
		}
	}
	if !match(g) && len(subs) == 0 {
		return nil
	}
	rep := a.groupRepAccess(g, full, false)
	if subs != nil {
		rep["subGroups"] = subs
	}
	return rep
}

// userGroups serves GET /users/{id}/groups.
func (a *adminReq) userGroups(u *user) adminResp {
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", -1)
	brief, ok3 := a.queryBool("briefRepresentation")
	if !ok1 || !ok2 || !ok3 {
		return respBadRequest()
	}
	search := strings.ToLower(a.get("search"))
	var ids []string
	for _, id := range u.groups {
		if g := a.r.groups[id]; g != nil && strings.Contains(strings.ToLower(g.name), search) {
			ids = append(ids, id)
		}
	}
	out := []any{}
	for _, id := range pageOf(a.sortedGroups(ids), first, max) {
		rep := a.groupRep(a.r.groups[id], brief != nil && !*brief, false)
		delete(rep, "subGroupCount") // not in Keycloak's answer here
		out = append(out, rep)
	}
	return respJSON(http.StatusOK, out)
}

// groupMembership serves PUT and DELETE /users/{id}/groups/{groupId}.
func (a *adminReq) groupMembership(u *user, groupID string, join bool) adminResp {
	if a.r.groups[groupID] == nil {
		return respError(http.StatusNotFound, "Group not found")
	}
	if join {
		if !slices.Contains(u.groups, groupID) {
			u.groups = append(u.groups, groupID)
		}
	} else {
		u.groups = slices.DeleteFunc(u.groups, func(id string) bool { return id == groupID })
	}
	return respNoContent()
}

// federatedLink serves POST and DELETE /users/{id}/federated-identity/{alias}.
func (a *adminReq) federatedLink(u *user, alias string, link bool, body []byte) adminResp {
	i := slices.IndexFunc(u.federated, func(l FederatedIdentity) bool { return l.IdentityProvider == alias })
	if !link {
		if i < 0 {
			return respError(http.StatusNotFound, "Link not found")
		}
		u.federated = slices.Delete(u.federated, i, i+1)
		return respNoContent()
	}
	var in FederatedIdentity
	if !decodeBody(body, &in) || in.UserID == "" || strings.ContainsFunc(in.UserID+in.UserName, isControl) {
		return respBadRequest()
	}
	if i >= 0 {
		return respErrorMessage(http.StatusConflict, "User is already linked with provider")
	}
	u.federated = append(u.federated, FederatedIdentity{IdentityProvider: alias, UserID: in.UserID, UserName: in.UserName})
	return respNoContent()
}

// realmRoleRoutes serves GET /roles, /roles/{name} and /roles/{name}/users.
func (a *adminReq) realmRoleRoutes() adminResp {
	seg := a.seg[1:]
	switch {
	case len(seg) == 0:
		// GET /roles needs view-realm: the query-* roles are not enough
		// (conformance: admin-permissions/*.roles.list).
		if !a.perms.viewRealm() {
			return respForbidden()
		}
		return a.listRoles(nil, a.r.realmRoleNamesLocked())
	case len(seg) == 1:
		if !a.perms.viewRealm() {
			return respForbidden()
		}
		if !slices.Contains(a.r.realmRoleNamesLocked(), seg[0]) {
			return respError(http.StatusNotFound, "Could not find role")
		}
		return respJSON(http.StatusOK, a.roleRep(nil, seg[0], true))
	case len(seg) == 2 && seg[1] == "users":
		// Keycloak checks both before looking the role up.
		if !a.perms.viewRealm() || !a.perms.queryUsers() {
			return respForbidden()
		}
		if !slices.Contains(a.r.realmRoleNamesLocked(), seg[0]) {
			return respError(http.StatusNotFound, "Could not find role")
		}
		return a.roleUsers(roleRef{"", seg[0]})
	}
	return respNoRoute()
}

// roleUsers answers GET /roles/{name}/users: the users the role is mapped
// to directly, by username, paged with first (default 0) and max (default
// 100). Callers who may not view users get an empty list, as in Keycloak.
func (a *adminReq) roleUsers(ref roleRef) adminResp {
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", defaultUserMax)
	brief, ok3 := a.queryBool("briefRepresentation")
	if !ok1 || !ok2 || !ok3 {
		return respBadRequest()
	}
	out := []any{}
	if !a.perms.viewUsers() {
		return respJSON(http.StatusOK, out)
	}
	for _, u := range pageOf(a.r.usersWithRoleLocked(ref), first, max) {
		out = append(out, a.userRep(u, brief != nil && *brief, false))
	}
	return respJSON(http.StatusOK, out)
}

// listRoles answers a role list. Like Keycloak, it pages a search with
// first and max, but a plain list only when both are given.
func (a *adminReq) listRoles(c *client, names []string) adminResp {
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", -1)
	if !ok1 || !ok2 {
		return respBadRequest()
	}
	search := strings.ToLower(a.get("search"))
	var match []string
	for _, n := range dedupe(names) {
		if strings.Contains(strings.ToLower(n), search) {
			match = append(match, n)
		}
	}
	if search != "" || a.has("first") && a.has("max") {
		match = pageOf(match, first, max)
	}
	return respJSON(http.StatusOK, a.roleReps(c, match))
}

// clientRep renders a ClientRepresentation; callers with query-clients
// only get the id and clientId, as in Keycloak.
func (a *adminReq) clientRep(c *client) map[string]any {
	if !a.perms.viewClients() {
		return map[string]any{"id": c.uuid, "clientId": c.cfg.ClientID}
	}
	cfg := c.cfg
	attrs := map[string]string{}
	for k, v := range cfg.Attributes {
		if k != "bearerOnly" {
			attrs[k] = v
		}
	}
	if len(cfg.PostLogoutRedirectURIs) > 0 {
		attrs["post.logout.redirect.uris"] = strings.Join(cfg.PostLogoutRedirectURIs, "##")
	}
	if cfg.BackchannelLogoutURL != "" {
		attrs["backchannel.logout.url"] = cfg.BackchannelLogoutURL
	}
	manage := a.perms.has("manage-clients")
	m := map[string]any{
		"id": c.uuid, "clientId": cfg.ClientID, "enabled": !cfg.Disabled, "protocol": "openid-connect",
		"publicClient": cfg.Public, "bearerOnly": cfg.Attributes["bearerOnly"] == "true",
		"redirectUris": nonNil(slices.Clone(cfg.RedirectURIs)), "webOrigins": nonNil(slices.Clone(cfg.WebOrigins)),
		"standardFlowEnabled": cfg.StandardFlow, "implicitFlowEnabled": false,
		"directAccessGrantsEnabled": cfg.DirectAccessGrants, "serviceAccountsEnabled": cfg.ServiceAccounts,
		"fullScopeAllowed": true, "frontchannelLogout": false, "attributes": attrs,
		"access": map[string]bool{"view": true, "configure": manage, "manage": manage},
	}
	if !cfg.Public {
		m["clientAuthenticatorType"] = "client-secret"
	}
	return m
}

// sortedClients lists the realm's clients by clientId.
func (a *adminReq) sortedClients() []*client {
	out := make([]*client, 0, len(a.r.clients))
	for _, c := range a.r.clients {
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y *client) int { return strings.Compare(x.cfg.ClientID, y.cfg.ClientID) })
	return out
}

// clientRoutes serves GET /clients[/...].
func (a *adminReq) clientRoutes() adminResp {
	seg := a.seg[1:]
	if len(seg) == 0 {
		if !a.perms.queryClients() {
			return respForbidden()
		}
		first, ok1 := a.queryInt("first", 0)
		max, ok2 := a.queryInt("max", -1)
		if !ok1 || !ok2 {
			return respBadRequest()
		}
		want, substring := a.get("clientId"), a.get("search") == "true"
		var match []*client
		for _, c := range a.sortedClients() {
			switch {
			case want == "":
			case substring && !strings.Contains(strings.ToLower(c.cfg.ClientID), strings.ToLower(want)):
				continue
			case !substring && c.cfg.ClientID != want:
				continue
			}
			match = append(match, c)
		}
		out := []any{}
		// query-clients may list, but only clients the caller may view are
		// in the answer: without view-clients it is empty (observed on
		// Keycloak 26.7.3; conformance: admin-permissions/*.clients.found).
		if !a.perms.viewClients() {
			match = nil
		}
		for _, c := range pageOf(match, first, max) {
			out = append(out, a.clientRep(c))
		}
		return respJSON(http.StatusOK, out)
	}
	var c *client
	for _, cl := range a.r.clients {
		if cl.uuid == seg[0] {
			c = cl
		}
	}
	if c == nil {
		return respError(http.StatusNotFound, "Could not find client")
	}
	switch {
	case len(seg) == 1:
		if !a.perms.viewClients() {
			return respForbidden()
		}
		return respJSON(http.StatusOK, a.clientRep(c))
	case len(seg) == 2 && seg[1] == "roles":
		// conformance: admin-permissions/query-clients.clients.roles
		if !a.perms.viewClients() {
			return respForbidden()
		}
		return a.listRoles(c, c.roles)
	case len(seg) == 3 && seg[1] == "roles":
		if !a.perms.viewClients() {
			return respForbidden()
		}
		if !slices.Contains(c.roles, seg[2]) {
			return respError(http.StatusNotFound, "Could not find role")
		}
		return respJSON(http.StatusOK, a.roleRep(c, seg[2], true))
	}
	return respNoRoute()
}
