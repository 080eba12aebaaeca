package keycloaktest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
)

// Protocol mapper types keycloaktest models (see MapperConfig).
const (
	mapperHardcodedClaim = "oidc-hardcoded-claim-mapper"
	mapperUserAttribute  = "oidc-usermodel-attribute-mapper"
	mapperUserProperty   = "oidc-usermodel-property-mapper"
	mapperGroups         = "oidc-group-membership-mapper"
	mapperRealmRoles     = "oidc-usermodel-realm-role-mapper"
	mapperClientRoles    = "oidc-usermodel-client-role-mapper"
	mapperAudience       = "oidc-audience-mapper"
	mapperOrganization   = "oidc-organization-membership-mapper"
)

var modelledMappers = []string{mapperHardcodedClaim, mapperUserAttribute, mapperUserProperty, mapperGroups,
	mapperRealmRoles, mapperClientRoles, mapperAudience, mapperOrganization}

// builtinScopesJSON are the client scopes Keycloak 26.7.3 creates in a new
// realm, as its admin API lists them (ids left out). keycloaktest computes
// their claims itself (claims.go); the definitions serve the realm file
// parser, to tell a built-in mapper from one added to a built-in scope, and
// the export, which must spell them out next to custom scopes because
// Keycloak's import creates no built-in scope when "clientScopes" is present
// (observed on 26.7.3).
//
//go:embed builtin_scopes.json
var builtinScopesJSON []byte

type exportClientScope struct {
	Name            string            `json:"name"`
	Description     string            `json:"description,omitempty"`
	Protocol        string            `json:"protocol"`
	Attributes      map[string]string `json:"attributes"`
	ProtocolMappers []exportMapper    `json:"protocolMappers,omitempty"`
}

var builtinScopes = sync.OnceValue(func() []exportClientScope {
	var out []exportClientScope
	if err := json.Unmarshal(builtinScopesJSON, &out); err != nil {
		panic("keycloaktest: builtin_scopes.json: " + err.Error())
	}
	return out
})

const protocolOIDC = "openid-connect"

// builtinScope returns Keycloak's built-in OIDC client scope of that name.
func builtinScope(name string) (exportClientScope, bool) {
	for _, s := range builtinScopes() {
		if s.Name == name && s.Protocol == protocolOIDC {
			return s, true
		}
	}
	return exportClientScope{}, false
}

// builtinMapper reports whether a mapper of that name is one Keycloak puts in
// its built-in scope of that name.
func builtinMapper(scope, mapper string) bool {
	s, ok := builtinScope(scope)
	return ok && slices.ContainsFunc(s.ProtocolMappers, func(m exportMapper) bool { return m.Name == mapper })
}

// clientScopeConfig returns the realm's configuration for a client scope.
func (r *Realm) clientScopeConfig(name string) (ClientScopeConfig, bool) {
	for _, sc := range r.cfg.ClientScopes {
		if sc.Name == name {
			return sc, true
		}
	}
	return ClientScopeConfig{}, false
}

// tokenScopes leaves out of scopes the custom client scopes whose
// include.in.token.scope is "false": they apply without being named in
// the scope claim.
func (r *Realm) tokenScopes(scopes []string) []string {
	return slices.DeleteFunc(slices.Clone(scopes), func(s string) bool {
		sc, ok := r.clientScopeConfig(s)
		_, builtin := builtinScope(s)
		return ok && !builtin && sc.Attributes["include.in.token.scope"] == "false"
	})
}

// mapperTarget is where a mapper's claim may go.
type mapperTarget int

const (
	toAccess mapperTarget = iota
	toID
	toUserinfo
	toIntrospection
)

// includedIn applies a mapper's flags. Keycloak wants "true" for access and
// ID tokens; an absent userinfo flag follows the ID token's and an absent
// introspection flag the access token's (observed on 26.7.3: a mapper with
// only id.token.claim "true" is in userinfo, one with only
// access.token.claim "true" in introspection, one without flags nowhere).
func (m MapperConfig) includedIn(t mapperTarget) bool {
	flag := func(key, fallback string) bool {
		if v, ok := m.Config[key]; ok {
			return v == "true"
		}
		return fallback != "" && m.Config[fallback] == "true"
	}
	switch t {
	case toAccess:
		return flag("access.token.claim", "")
	case toID:
		return flag("id.token.claim", "")
	case toUserinfo:
		return m.Type != mapperAudience && flag("userinfo.token.claim", "id.token.claim")
	case toIntrospection:
		return flag("introspection.token.claim", "access.token.claim")
	}
	return false
}

// mappersInEffect are the mappers of a grant: the client's own, then those
// of the client scopes it applies.
func (r *Realm) mappersInEffect(g grant) []MapperConfig {
	if g.client == nil {
		return nil
	}
	out := slices.Clone(g.client.cfg.Mappers)
	for _, s := range g.scopes {
		if sc, ok := r.clientScopeConfig(s); ok {
			out = append(out, sc.Mappers...)
		}
	}
	return append(out, r.organizationScopeMappers(g)...)
}

// mapperAudiences are the audiences the grant's audience mappers add to a
// token.
func (r *Realm) mapperAudiences(g grant, t mapperTarget) []string {
	var out []string
	for _, m := range r.mappersInEffect(g) {
		if m.Type != mapperAudience || !m.includedIn(t) {
			continue
		}
		for _, key := range []string{"included.client.audience", "included.custom.audience"} {
			if aud := m.Config[key]; aud != "" {
				out = append(out, aud)
			}
		}
	}
	return out
}

// reservedClaims are claims that Keycloak keeps in typed token fields: a
// mapper writing one makes Keycloak serialise the claim twice, a token its
// own endpoints then reject (observed on 26.7.3 with a hard-coded
// realm_access.extra). keycloaktest leaves them alone instead.
var reservedClaims = []string{"exp", "iat", "nbf", "jti", "iss", "aud", "sub", "typ", "azp", "sid", "auth_time",
	"nonce", "at_hash", "c_hash", "s_hash", "scope", "acr", "session_state", "cnf", "realm_access", "resource_access"}

// applyMappers adds the claims of the grant's mappers for target t. They
// are applied after the built-in scopes' claims and replace them: Keycloak
// runs its mappers in an order that varies with scope names (a hard-coded
// email won over the email scope's on 26.7.3, a hard-coded
// preferred_username lost to the profile scope's).
func (r *Realm) applyMappers(c map[string]any, g grant, t mapperTarget) {
	for _, m := range r.mappersInEffect(g) {
		if !m.includedIn(t) {
			continue
		}
		for _, cv := range r.mapperClaims(m, g) {
			setClaim(c, cv.name, cv.value)
		}
	}
}

type claimValue struct {
	name  string
	value any
}

// mapperClaims computes a mapper's claims for the grant's user.
func (r *Realm) mapperClaims(m MapperConfig, g grant) []claimValue {
	conf := m.Config
	name, typ := conf["claim.name"], conf["jsonType.label"]
	if name == "" || g.user == nil {
		return nil
	}
	u := g.user
	multi := conf["multivalued"] == "true"
	one := func(values []string, multivalued bool) []claimValue {
		if v, ok := claimValues(values, typ, multivalued); ok {
			return []claimValue{{name, v}}
		}
		return nil
	}
	switch m.Type {
	case mapperHardcodedClaim:
		return one([]string{conf["claim.value"]}, false)
	case mapperUserAttribute:
		return one(r.userAttributeLocked(u, conf["user.attribute"], conf["aggregate.attrs"] == "true"), multi)
	case mapperUserProperty:
		if v, ok := userProperty(u, conf["user.attribute"]); ok {
			return one([]string{v}, false)
		}
	case mapperGroups:
		var groups []string
		for _, grp := range r.directGroupsLocked(u) {
			if conf["full.path"] == "true" {
				groups = append(groups, grp.path)
			} else {
				groups = append(groups, grp.name)
			}
		}
		// Always a list (observed on 26.7.3 without "multivalued").
		return one(groups, true)
	case mapperRealmRoles:
		var roles []string
		for _, role := range r.effectiveRealmRoles(u) {
			roles = append(roles, conf["usermodel.realmRoleMapping.rolePrefix"]+role)
		}
		return one(roles, multi)
	case mapperOrganization:
		if v, ok := r.organizationClaimLocked(m, g); ok {
			return []claimValue{{name, v}}
		}
		return nil
	case mapperClientRoles:
		only, prefix := conf["usermodel.clientRoleMapping.clientId"], conf["usermodel.clientRoleMapping.rolePrefix"]
		byClient := r.effectiveClientRoles(u)
		var ids []string
		for id := range byClient {
			if only == "" || id == only {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		var out []claimValue
		var flat []string
		for _, id := range ids {
			var roles []string
			for _, role := range byClient[id] {
				roles = append(roles, prefix+role)
			}
			// "${client_id}" in the claim name is each role's client
			// (observed on 26.7.3: cr.${client_id}.roles became
			// {"cr":{"app":{"roles":[...]}}}).
			if strings.Contains(name, "${client_id}") {
				if v, ok := claimValues(roles, typ, multi); ok {
					out = append(out, claimValue{strings.ReplaceAll(name, "${client_id}", id), v})
				}
				continue
			}
			flat = append(flat, roles...)
		}
		if len(flat) > 0 {
			out = append(out, one(flat, multi)...)
		}
		return out
	}
	return nil
}

// claimValues converts mapped values to the claim's JSON type: a list when
// multivalued, else the first value. Nothing (ok false) when there is no
// value, or a single value that does not convert (observed on 26.7.3: a
// hard-coded "" or a long "abc" leaves the claim out).
func claimValues(values []string, typ string, multivalued bool) (any, bool) {
	var out []any
	for _, v := range values {
		if v == "" && !multivalued {
			continue
		}
		if x, ok := convertClaim(v, typ); ok {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	if multivalued {
		return out, true
	}
	return out[0], true
}

// convertClaim converts one value by Keycloak's jsonType.label: String
// (and absent or unknown labels) keep it, long and int parse it, boolean is
// true only for "true" in any case (observed: "yes" gave false), JSON
// parses it.
func convertClaim(v, typ string) (any, bool) {
	switch typ {
	case "long":
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case "int":
		n, err := strconv.ParseInt(v, 10, 32)
		return n, err == nil
	case "boolean":
		return strings.EqualFold(v, "true"), true
	case "JSON":
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil || dec.More() {
			return nil, false
		}
		return x, true
	}
	return v, true
}

// splitClaimName splits a claim name at the dots not escaped with a
// backslash, as Keycloak does: "a.b" is [a b], `a\.b` is [a.b].
func splitClaimName(name string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(name); i++ {
		switch {
		case name[i] == '\\' && i+1 < len(name) && name[i+1] == '.':
			cur.WriteByte('.')
			i++
		case name[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(name[i])
		}
	}
	return append(parts, cur.String())
}

// setClaim stores a claim under its (possibly nested) name, creating the
// objects on the way; claims of reservedClaims are left alone.
func setClaim(c map[string]any, name string, v any) {
	parts := splitClaimName(name)
	if slices.Contains(reservedClaims, parts[0]) || slices.Contains(parts, "") {
		return
	}
	cur := c
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

// directGroupsLocked are the groups a user is a member of (not their
// ancestors), by name, the order of Keycloak's group membership mapper
// (observed on 26.7.3: /staff/editors before /ops).
func (r *Realm) directGroupsLocked(u *user) []*group {
	var out []*group
	for _, id := range u.groups {
		if g := r.groups[id]; g != nil {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b *group) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	return out
}

// userAttributeLocked resolves a user attribute as Keycloak's attribute
// mapper does: the user's values; without any, those of the first of its
// groups (or their ancestors) that has the attribute; with aggregate, the
// distinct values of the user and all its groups and their ancestors, in
// the order of a Java HashSet (observed on 26.7.3: ["hq","branch","home"]).
// username, email, firstName and lastName read the user's fields.
func (r *Realm) userAttributeLocked(u *user, name string, aggregate bool) []string {
	var values []string
	switch name {
	case "":
		return nil
	case "username":
		values = []string{u.username}
	case "email", "firstName", "lastName":
		if v := map[string]string{"email": u.email, "firstName": u.firstName, "lastName": u.lastName}[name]; v != "" {
			values = []string{v}
		}
	default:
		values = slices.Clone(u.attributes[name])
	}
	if len(values) > 0 && !aggregate {
		return values
	}
	for _, g := range r.directGroupsLocked(u) {
		for a := g; a != nil; a = r.groups[a.parent] {
			if v := a.attributes[name]; len(v) > 0 {
				if !aggregate {
					return slices.Clone(v)
				}
				values = append(values, v...)
			}
			if a.parent == "" {
				break
			}
		}
	}
	return javaHashSetOrder(values)
}

// userProperty reads a UserModel property, as Keycloak's property mapper
// does through the getter of that name.
func userProperty(u *user, prop string) (string, bool) {
	if prop == "" {
		return "", false
	}
	prop = strings.ToLower(prop[:1]) + prop[1:]
	var v string
	switch prop {
	case "id":
		v = u.id
	case "username":
		v = u.username
	case "email":
		v = u.email
	case "firstName":
		v = u.firstName
	case "lastName":
		v = u.lastName
	case "emailVerified":
		v = strconv.FormatBool(u.emailVerified)
	case "enabled":
		v = strconv.FormatBool(u.enabled)
	case "createdTimestamp":
		v = strconv.FormatInt(u.created.UnixMilli(), 10)
	}
	return v, v != ""
}

// javaHashSetOrder returns the distinct values in the iteration order of a
// java.util.HashSet they were added to in order: by bucket of their
// String.hashCode in a table of 16 (doubled while more than 3/4 full),
// insertion order within a bucket.
func javaHashSetOrder(values []string) []string {
	var uniq []string
	for _, v := range values {
		if !slices.Contains(uniq, v) {
			uniq = append(uniq, v)
		}
	}
	n := uint32(16)
	for uint32(len(uniq))*4 > n*3 {
		n *= 2
	}
	bucket := func(s string) uint32 {
		var h uint32
		for _, c := range utf16.Encode([]rune(s)) {
			h = 31*h + uint32(c)
		}
		return (h ^ h>>16) & (n - 1)
	}
	slices.SortStableFunc(uniq, func(a, b string) int { return int(bucket(a)) - int(bucket(b)) })
	return uniq
}

// unmodelledMappers describes the mappers of a realm configuration that
// keycloaktest ignores, for a warning.
func unmodelledMappers(scopes []ClientScopeConfig, clients []ClientConfig) []string {
	var out []string
	check := func(owner string, ms []MapperConfig) {
		for _, m := range ms {
			if slices.Contains(modelledMappers, m.Type) || serviceAccountNoteMapper(m) {
				continue
			}
			out = append(out, owner+": mapper "+strconv.Quote(m.Name)+" of type "+strconv.Quote(m.Type))
		}
	}
	for _, c := range clients {
		check("client "+strconv.Quote(c.ClientID), c.Mappers)
	}
	for _, s := range scopes {
		check("client scope "+strconv.Quote(s.Name), s.Mappers)
	}
	return out
}

// serviceAccountNoteMapper reports the session-note mappers older Keycloak
// versions put on clients with service accounts (client_id, clientHost,
// clientAddress), whose claims keycloaktest adds itself.
func serviceAccountNoteMapper(m MapperConfig) bool {
	return m.Type == "oidc-usersessionmodel-note-mapper" &&
		slices.Contains([]string{"clientId", "client_id", "clientHost", "clientAddress"}, m.Config["user.session.note"])
}

func cloneMappers(ms []MapperConfig) []MapperConfig {
	if ms == nil {
		return nil
	}
	out := make([]MapperConfig, len(ms))
	for i, m := range ms {
		m.Config = cloneStringMap(m.Config)
		out[i] = m
	}
	return out
}

func cloneStringMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mapperConfigValue reads a mapper config value as Jackson binds it to a
// String: strings as they are, booleans and numbers as their JSON text.
func mapperConfigValue(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return string(raw), true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return string(raw), true
	}
	return "", false
}
