package keycloaktest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Organizations (Keycloak 26+): B2B tenants of a realm, with members,
// internet domains and identity providers, behind the realm setting
// organizationsEnabled. keycloaktest models what Keycloak 26.7.3 does
// (observed; the interop conformance suite compares the two):
//
//   - the admin API under /admin/realms/{realm}/organizations: create
//     (201, Location), list with search/exact/q/first/max (max 10 by
//     default) and briefRepresentation, count, get, update (PUT replaces
//     name, enabled, description, redirectUrl and domains; attributes only
//     when present; the alias cannot change), delete; members (add an
//     existing user by id, list, count, get, remove, a user's
//     organizations); identity providers (link an alias, list, get,
//     unlink). Errors have Keycloak's statuses and messages.
//   - the organization claim of the built-in "organization" client scope
//     (mapper oidc-organization-membership-mapper): the aliases of the
//     user's enabled organizations when the user has exactly one (scope
//     "organization"), all of them with "organization:*", one with
//     "organization:{alias}"; an object keyed by alias when the mapper's
//     jsonType.label is JSON or addOrganizationId/addOrganizationAttributes
//     is "true", with "id", the attributes and "domain" (the organization
//     domain of the user's email, with addOrganizationDomain).
//   - realm files: organizationsEnabled, identityProviders (alias,
//     providerId, enabled, displayName, config) and organizations with
//     members (by username) and identityProviders (by alias).
//
// Not modelled: invitations (they need an SMTP server), managed members
// (created by brokering), organization groups and roles of later
// Keycloak versions, and the login page's organization selection.

// OrganizationConfig is an organization of a realm (Keycloak's
// OrganizationRepresentation as a realm file has it).
type OrganizationConfig struct {
	// ID is the organization id (default: a random UUID).
	ID string
	// Name is required and unique in the realm.
	Name string
	// Alias is the name in tokens (default: Name, which then must have no
	// white space).
	Alias string
	// Disabled organizations are left out of tokens.
	Disabled    bool
	Description string
	RedirectURL string
	// Domains are the organization's internet domains (unique in the realm).
	Domains []OrganizationDomainConfig
	// Attributes are free-form attributes.
	Attributes map[string][]string
	// Members are usernames of the realm's users.
	Members []string
	// IdentityProviders are aliases of RealmConfig.IdentityProviders.
	IdentityProviders []string
}

// OrganizationDomainConfig is a domain of an organization.
type OrganizationDomainConfig struct {
	Name     string
	Verified bool
}

// IdentityProviderConfig is an identity provider of a realm. keycloaktest
// does not broker logins: a provider exists to be linked to an
// organization and listed by the admin API.
type IdentityProviderConfig struct {
	// Alias is required and unique in the realm.
	Alias string
	// ProviderID is the provider type (default "oidc").
	ProviderID  string
	DisplayName string
	// Disabled providers are listed as disabled.
	Disabled bool
	// Config is the provider's configuration; values of keys naming
	// secrets are masked in admin answers, as Keycloak does.
	Config map[string]string
}

// organization is an organization of a realm.
type organization struct {
	id, name, alias          string
	enabled                  bool
	description, redirectURL string
	domains                  []OrganizationDomainConfig
	attributes               map[string][]string
	members                  []string // user ids, in joining order
	idps                     []string // aliases
}

// identityProvider is an identity provider of a realm.
type identityProvider struct {
	alias, providerID, displayName, internalID string
	enabled                                    bool
	config                                     map[string]string
	org                                        string // linked organization id
}

// orgState is a realm's organizations and identity providers.
type orgState struct {
	enabled bool
	byID    map[string]*organization
	idps    map[string]*identityProvider // alias -> provider
}

// initOrganizationsLocked adds the configuration's identity providers and
// organizations; users must exist already. Callers own r.
func (r *Realm) initOrganizationsLocked(cfg RealmConfig) error {
	r.orgs = orgState{enabled: cfg.OrganizationsEnabled, byID: map[string]*organization{}, idps: map[string]*identityProvider{}}
	for _, ic := range cfg.IdentityProviders {
		if ic.Alias == "" || strings.ContainsFunc(ic.Alias, isControl) {
			return fmt.Errorf("%w: identity provider without a usable alias", ErrInvalidConfig)
		}
		if r.orgs.idps[ic.Alias] != nil {
			return fmt.Errorf("%w: two identity providers with alias %q", ErrInvalidConfig, ic.Alias)
		}
		p := &identityProvider{alias: ic.Alias, providerID: ic.ProviderID, displayName: ic.DisplayName, internalID: newUUID(),
			enabled: !ic.Disabled, config: cloneStringMap(ic.Config)}
		if p.providerID == "" {
			p.providerID = "oidc"
		}
		r.orgs.idps[ic.Alias] = p
	}
	for _, oc := range cfg.Organizations {
		o := &organization{id: oc.ID, name: oc.Name, alias: oc.Alias, enabled: !oc.Disabled, description: oc.Description,
			redirectURL: oc.RedirectURL, domains: slices.Clone(oc.Domains), attributes: cloneAttrs(oc.Attributes)}
		if o.id == "" {
			o.id = newUUID()
		}
		if msg, _ := r.checkOrganizationLocked(o, nil); msg != "" {
			return fmt.Errorf("%w: organization %q: %s", ErrInvalidConfig, oc.Name, msg)
		}
		for _, name := range oc.Members {
			id, ok := r.byName[strings.ToLower(name)]
			if !ok {
				return fmt.Errorf("%w: organization %q: no user %q", ErrInvalidConfig, oc.Name, name)
			}
			if !slices.Contains(o.members, id) {
				o.members = append(o.members, id)
			}
		}
		for _, alias := range oc.IdentityProviders {
			p := r.orgs.idps[alias]
			if p == nil {
				return fmt.Errorf("%w: organization %q: no identity provider %q", ErrInvalidConfig, oc.Name, alias)
			}
			if p.org != "" {
				return fmt.Errorf("%w: organization %q: identity provider %q belongs to another organization", ErrInvalidConfig, oc.Name, alias)
			}
			p.org = o.id
			o.idps = append(o.idps, alias)
		}
		r.orgs.byID[o.id] = o
	}
	return nil
}

func cloneAttrs(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// SetOrganizationsEnabled turns the realm's organizations on or off (the
// realm setting organizationsEnabled).
func (r *Realm) SetOrganizationsEnabled(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.orgs.enabled = on
}

// domainPattern is what Keycloak 26.7.3 takes for an organization domain.
var domainPattern = regexp.MustCompile(`^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}$`)

// checkOrganizationLocked validates a new or changed organization against
// the others (self: the stored one being replaced). It returns Keycloak's
// message and status, or "".
func (r *Realm) checkOrganizationLocked(o *organization, self *organization) (string, int) {
	if o.name == "" {
		return "Name can not be null", http.StatusBadRequest
	}
	if o.alias == "" {
		if strings.ContainsFunc(o.name, unicode.IsSpace) {
			return "Name cannot be used as alias: Empty Space not allowed.", http.StatusBadRequest
		}
		o.alias = o.name
	}
	if strings.ContainsFunc(o.alias, unicode.IsSpace) {
		return "Alias cannot contain white spaces: Empty Space not allowed.", http.StatusBadRequest
	}
	for _, other := range r.orgs.byID {
		if other == self || other.id == o.id {
			continue
		}
		if other.name == o.name {
			return "A organization with the same name already exists.", http.StatusConflict
		}
		if other.alias == o.alias {
			return "A organization with the same alias already exists", http.StatusConflict
		}
	}
	seen := map[string]bool{}
	for _, d := range o.domains {
		name := strings.ToLower(d.Name)
		if !domainPattern.MatchString(d.Name) {
			return "Invalid domain format: " + d.Name, http.StatusBadRequest
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, other := range r.orgs.byID {
			if other == self || other.id == o.id {
				continue
			}
			for _, od := range other.domains {
				if strings.EqualFold(od.Name, d.Name) {
					return fmt.Sprintf("Domain %s is already linked to organization %s in realm %s", d.Name, other.name, r.name), http.StatusBadRequest
				}
			}
		}
	}
	return "", 0
}

// organizationsOfLocked are the organizations user id belongs to, by
// name.
func (r *Realm) organizationsOfLocked(id string) []*organization {
	var out []*organization
	for _, o := range r.orgs.byID {
		if slices.Contains(o.members, id) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *organization) int { return strings.Compare(a.name, b.name) })
	return out
}

// liveMembersLocked are the organization's members that are still users
// of the realm (deleting a user ends its memberships).
func (r *Realm) liveMembersLocked(o *organization) []*user {
	o.members = slices.DeleteFunc(o.members, func(id string) bool { return r.users[id] == nil })
	out := make([]*user, 0, len(o.members))
	for _, id := range o.members {
		out = append(out, r.users[id])
	}
	return out
}

// OrganizationMembers returns the usernames of the members of the
// organization alias, sorted; false when there is no such organization.
func (r *Realm) OrganizationMembers(alias string) ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.orgs.byID {
		if o.alias == alias {
			var out []string
			for _, u := range r.liveMembersLocked(o) {
				out = append(out, u.username)
			}
			slices.Sort(out)
			return out, true
		}
	}
	return nil, false
}

// orgRep is an OrganizationRepresentation.
func orgRep(o *organization, brief bool) map[string]any {
	m := map[string]any{"id": o.id, "name": o.name, "alias": o.alias, "enabled": o.enabled}
	if o.description != "" {
		m["description"] = o.description
	}
	if o.redirectURL != "" {
		m["redirectUrl"] = o.redirectURL
	}
	if !brief {
		attrs := map[string][]string{}
		for k, v := range o.attributes {
			attrs[k] = slices.Clone(v)
		}
		m["attributes"] = attrs
	}
	if len(o.domains) > 0 {
		ds := slices.Clone(o.domains)
		slices.SortFunc(ds, func(a, b OrganizationDomainConfig) int { return strings.Compare(a.Name, b.Name) })
		list := make([]map[string]any, len(ds))
		for i, d := range ds {
			list[i] = map[string]any{"name": d.Name, "verified": d.Verified}
		}
		m["domains"] = list
	}
	return m
}

// idpTypes are what Keycloak 26.7.3 lists as an OIDC provider's "types".
var idpTypes = []string{"USER_AUTHENTICATION", "CLIENT_ASSERTION", "TRUST_MATERIAL", "EXCHANGE_EXTERNAL_TOKEN", "JWT_AUTHORIZATION_GRANT"}

// idpRep is an IdentityProviderRepresentation, secrets masked.
func idpRep(p *identityProvider) map[string]any {
	conf := map[string]string{}
	for k, v := range p.config {
		if strings.Contains(strings.ToLower(k), "secret") {
			v = "**********"
		}
		conf[k] = v
	}
	m := map[string]any{"alias": p.alias, "internalId": p.internalID, "providerId": p.providerID, "enabled": p.enabled,
		"config": conf, "types": idpTypes}
	if p.displayName != "" {
		m["displayName"] = p.displayName
	}
	if p.org != "" {
		m["organizationId"] = p.org
	}
	return m
}

// The organization permissions of Keycloak 26.7.3 (observed with service
// accounts holding single realm-management roles): manage-realm stands in
// for manage-organizations.
func (p adminPerms) viewOrgs() bool {
	return p.has("view-organizations", "manage-organizations", "manage-realm")
}
func (p adminPerms) queryOrgs() bool  { return p.has("query-organizations") || p.viewOrgs() }
func (p adminPerms) manageOrgs() bool { return p.has("manage-organizations", "manage-realm") }
func (p adminPerms) viewIdPs() bool {
	return p.has("view-identity-providers", "manage-identity-providers")
}

func respOrgNotFound() adminResp {
	return respErrorMessage(http.StatusNotFound, "Organization not found.")
}

func respPlainNotFound() adminResp { return respError(http.StatusNotFound, "HTTP 404 Not Found") }

// organizationRoutes serves /organizations[/...]; the realm lock is held.
func (a *adminReq) organizationRoutes(m string, body []byte) adminResp {
	seg := a.seg[1:]
	switch {
	case len(seg) == 0:
		switch m {
		case http.MethodGet:
			if !a.perms.queryOrgs() {
				return respForbidden()
			}
			if r, off := a.orgsOff(); off {
				return r
			}
			return a.listOrganizations(false)
		case http.MethodPost:
			if !a.perms.manageOrgs() {
				return respForbidden()
			}
			if r, off := a.orgsOff(); off {
				return r
			}
			return a.createOrganization(body)
		}
		return respMethodNotAllowed()
	case len(seg) == 1 && seg[0] == "count":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		if !a.perms.queryOrgs() {
			return respForbidden()
		}
		if r, off := a.orgsOff(); off {
			return r
		}
		return a.listOrganizations(true)
	case len(seg) == 3 && seg[0] == "members" && seg[2] == "organizations":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		if !a.perms.viewOrgs() || !a.perms.viewUsers() {
			return respForbidden()
		}
		if r, off := a.orgsOff(); off {
			return r
		}
		u := a.r.users[seg[1]]
		if u == nil {
			return respPlainNotFound()
		}
		brief := a.get("briefRepresentation") != "false"
		out := []map[string]any{}
		for _, o := range a.r.organizationsOfLocked(u.id) {
			out = append(out, orgRep(o, brief))
		}
		return respJSON(http.StatusOK, out)
	}
	// /organizations/{id}[/...]
	if !a.perms.viewOrgs() {
		return respForbidden()
	}
	if r, off := a.orgsOff(); off {
		return r
	}
	o := a.r.orgs.byID[seg[0]]
	if o == nil {
		return respOrgNotFound()
	}
	rest := seg[1:]
	if len(rest) == 0 {
		switch m {
		case http.MethodGet:
			return respJSON(http.StatusOK, orgRep(o, false))
		case http.MethodPut:
			if !a.perms.manageOrgs() {
				return respForbidden()
			}
			return a.updateOrganization(o, body)
		case http.MethodDelete:
			if !a.perms.manageOrgs() {
				return respForbidden()
			}
			for _, alias := range o.idps {
				if p := a.r.orgs.idps[alias]; p != nil {
					p.org = ""
				}
			}
			delete(a.r.orgs.byID, o.id)
			return respNoContent()
		}
		return respMethodNotAllowed()
	}
	switch rest[0] {
	case "members":
		return a.memberRoutes(o, m, rest[1:], body)
	case "identity-providers":
		return a.orgIdPRoutes(o, m, rest[1:], body)
	}
	return respNoRoute()
}

// orgsURL is the admin URL of an organization (and below it).
func orgsURL(req *http.Request, realm string, parts ...string) string {
	u := requestBase(req) + adminPrefix(req.URL.Path) + "/admin/realms/" + url.PathEscape(realm) + "/organizations"
	for _, p := range parts {
		u += "/" + url.PathEscape(p)
	}
	return u
}

// adminPrefix is the server's base path in front of /admin/realms/.
func adminPrefix(path string) string {
	i := strings.Index(path, "/admin/realms/")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// orgsOff answers Keycloak's 404 when the realm has organizations off.
func (a *adminReq) orgsOff() (adminResp, bool) {
	if a.r.orgs.enabled {
		return adminResp{}, false
	}
	return respErrorMessage(http.StatusNotFound, "Organizations not enabled for this realm."), true
}

// listOrganizations serves GET /organizations and /organizations/count.
func (a *adminReq) listOrganizations(count bool) adminResp {
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", 10)
	exact, ok3 := a.queryBool("exact")
	if !ok1 || !ok2 || !ok3 {
		return respPlainNotFound() // Keycloak's answer to a malformed number
	}
	search, q := a.get("search"), a.get("q")
	attrs := map[string]string{}
	for _, part := range strings.Fields(q) {
		k, v, _ := strings.Cut(part, ":")
		attrs[k] = v
	}
	var list []*organization
	for _, o := range a.r.orgs.byID {
		if q != "" {
			if !matchOrgAttrs(o, attrs) {
				continue
			}
		} else if search != "" && !matchOrgSearch(o, search, exact != nil && *exact) {
			continue
		}
		list = append(list, o)
	}
	if count {
		return respJSON(http.StatusOK, len(list))
	}
	slices.SortFunc(list, func(x, y *organization) int { return strings.Compare(x.name, y.name) })
	brief := a.get("briefRepresentation") != "false"
	out := []map[string]any{}
	for _, o := range pageOf(list, first, max) {
		out = append(out, orgRep(o, brief))
	}
	return respJSON(http.StatusOK, out)
}

func matchOrgSearch(o *organization, search string, exact bool) bool {
	names := []string{o.name}
	for _, d := range o.domains {
		names = append(names, d.Name)
	}
	for _, n := range names {
		if exact && n == search || !exact && strings.Contains(strings.ToLower(n), strings.ToLower(search)) {
			return true
		}
	}
	return false
}

func matchOrgAttrs(o *organization, attrs map[string]string) bool {
	for k, v := range attrs {
		if !slices.Contains(o.attributes[k], v) {
			return false
		}
	}
	return true
}

// orgInput is an OrganizationRepresentation in a request.
type orgInput struct {
	Name        *string             `json:"name"`
	Alias       *string             `json:"alias"`
	Enabled     *bool               `json:"enabled"`
	Description *string             `json:"description"`
	RedirectURL *string             `json:"redirectUrl"`
	Attributes  map[string][]string `json:"attributes"`
	Domains     []orgDomainInput    `json:"domains"`
	raw         map[string]json.RawMessage
}

type orgDomainInput struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
}

func parseOrgInput(body []byte) (orgInput, bool) {
	var in orgInput
	if !decodeBody(body, &in) || !decodeBody(body, &in.raw) {
		return in, false
	}
	return in, true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (in orgInput) domains() []OrganizationDomainConfig {
	var out []OrganizationDomainConfig
	for _, d := range in.Domains {
		if strings.TrimSpace(d.Name) == "" || slices.ContainsFunc(out, func(x OrganizationDomainConfig) bool { return strings.EqualFold(x.Name, d.Name) }) {
			continue
		}
		out = append(out, OrganizationDomainConfig{Name: d.Name, Verified: d.Verified})
	}
	return out
}

func (a *adminReq) createOrganization(body []byte) adminResp {
	in, ok := parseOrgInput(body)
	if !ok {
		return respBadRequest()
	}
	o := &organization{id: newUUID(), name: deref(in.Name), alias: deref(in.Alias), enabled: in.Enabled == nil || *in.Enabled,
		description: deref(in.Description), redirectURL: deref(in.RedirectURL), domains: in.domains(), attributes: cloneAttrs(in.Attributes)}
	if msg, status := a.r.checkOrganizationLocked(o, nil); msg != "" {
		return respErrorMessage(status, msg)
	}
	a.r.orgs.byID[o.id] = o
	return adminResp{status: http.StatusCreated, location: orgsURL(a.req, a.r.name, o.id)}
}

func (a *adminReq) updateOrganization(o *organization, body []byte) adminResp {
	in, ok := parseOrgInput(body)
	if !ok {
		return respBadRequest()
	}
	if deref(in.Name) == "" {
		// Keycloak 26.7.3 answers a nameless update this way.
		return respErrorMessage(http.StatusConflict, "A organization with the same name already exists.")
	}
	if deref(in.Alias) != o.alias {
		return respErrorMessage(http.StatusBadRequest, "Cannot change the alias")
	}
	next := &organization{id: o.id, name: *in.Name, alias: o.alias, enabled: in.Enabled == nil || *in.Enabled,
		description: deref(in.Description), redirectURL: deref(in.RedirectURL), domains: in.domains(), attributes: o.attributes,
		members: o.members, idps: o.idps}
	if _, has := in.raw["attributes"]; has && in.Attributes != nil {
		next.attributes = cloneAttrs(in.Attributes)
	}
	if msg, status := a.r.checkOrganizationLocked(next, o); msg != "" {
		return respErrorMessage(status, msg)
	}
	*o = *next
	return respNoContent()
}

// memberRoutes serves /organizations/{id}/members[/...].
func (a *adminReq) memberRoutes(o *organization, m string, rest []string, body []byte) adminResp {
	view := a.perms.viewOrgs() && a.perms.viewUsers()
	manage := a.perms.manageOrgs() && a.perms.manageUsers()
	switch {
	case len(rest) == 0 && m == http.MethodGet:
		if !view {
			return respForbidden()
		}
		return a.listMembers(o)
	case len(rest) == 0 && m == http.MethodPost:
		if !manage {
			return respForbidden()
		}
		id := strings.TrimSpace(string(body))
		var s string
		if json.Unmarshal(body, &s) == nil {
			id = s
		}
		u := a.r.users[id]
		if u == nil {
			return respPlainNotFound()
		}
		if slices.Contains(a.r.liveMembersLocked(o), u) {
			return respErrorMessage(http.StatusConflict, "User is already a member of the organization.")
		}
		o.members = append(o.members, u.id)
		return adminResp{status: http.StatusCreated, location: orgsURL(a.req, a.r.name, o.id, "members", u.id)}
	case len(rest) == 0:
		return respMethodNotAllowed()
	case len(rest) == 1 && rest[0] == "count":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		if !view {
			return respForbidden()
		}
		return respJSON(http.StatusOK, len(a.r.liveMembersLocked(o)))
	case len(rest) == 1:
		u := a.r.users[rest[0]]
		switch m {
		case http.MethodGet:
			if !view {
				return respForbidden()
			}
			if u == nil || !slices.Contains(a.r.liveMembersLocked(o), u) {
				return respPlainNotFound()
			}
			return respJSON(http.StatusOK, a.memberRep(u, false))
		case http.MethodDelete:
			if !manage {
				return respForbidden()
			}
			if u == nil || !slices.Contains(a.r.liveMembersLocked(o), u) {
				return respPlainNotFound()
			}
			o.members = slices.DeleteFunc(o.members, func(id string) bool { return id == u.id })
			return respNoContent()
		}
		return respMethodNotAllowed()
	case len(rest) == 2 && rest[1] == "organizations":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		if !view {
			return respForbidden()
		}
		u := a.r.users[rest[0]]
		if u == nil {
			return respPlainNotFound()
		}
		brief := a.get("briefRepresentation") != "false"
		out := []map[string]any{}
		for _, org := range a.r.organizationsOfLocked(u.id) {
			out = append(out, orgRep(org, brief))
		}
		return respJSON(http.StatusOK, out)
	}
	return respNoRoute()
}

// memberRep is a MemberRepresentation: the user and its membershipType.
func (a *adminReq) memberRep(u *user, brief bool) map[string]any {
	rep := a.userRep(u, brief, false)
	delete(rep, "access")
	rep["membershipType"] = "UNMANAGED"
	return rep
}

func (a *adminReq) listMembers(o *organization) adminResp {
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", 10)
	exact, ok3 := a.queryBool("exact")
	if !ok1 || !ok2 || !ok3 {
		return respPlainNotFound()
	}
	search := strings.ToLower(a.get("search"))
	mt := a.get("membershipType")
	var list []*user
	for _, u := range a.r.liveMembersLocked(o) {
		if mt != "" && !strings.EqualFold(mt, "UNMANAGED") {
			continue
		}
		if search != "" {
			hit := false
			for _, f := range []string{u.username, u.email, u.firstName, u.lastName} {
				f = strings.ToLower(f)
				if exact != nil && *exact && f == search || !(exact != nil && *exact) && strings.Contains(f, search) {
					hit = true
				}
			}
			if !hit {
				continue
			}
		}
		list = append(list, u)
	}
	slices.SortFunc(list, func(x, y *user) int { return strings.Compare(x.username, y.username) })
	brief := a.get("briefRepresentation") != "false"
	out := []map[string]any{}
	for _, u := range pageOf(list, first, max) {
		out = append(out, a.memberRep(u, brief))
	}
	return respJSON(http.StatusOK, out)
}

// orgIdPRoutes serves /organizations/{id}/identity-providers[/alias].
func (a *adminReq) orgIdPRoutes(o *organization, m string, rest []string, body []byte) adminResp {
	view := a.perms.viewOrgs() && a.perms.viewIdPs()
	manage := a.perms.manageOrgs() && a.perms.has("manage-identity-providers")
	switch {
	case len(rest) == 0 && m == http.MethodGet:
		if !view {
			return respForbidden()
		}
		out := []map[string]any{}
		aliases := slices.Clone(o.idps)
		slices.Sort(aliases)
		for _, alias := range aliases {
			if p := a.r.orgs.idps[alias]; p != nil {
				out = append(out, idpRep(p))
			}
		}
		return respJSON(http.StatusOK, out)
	case len(rest) == 0 && m == http.MethodPost:
		if !manage {
			return respForbidden()
		}
		alias := strings.TrimSpace(string(body))
		var s string
		if json.Unmarshal(body, &s) == nil {
			alias = s
		}
		p := a.r.orgs.idps[alias]
		switch {
		case p == nil:
			return respErrorMessage(http.StatusBadRequest, "Identity provider not found with the given alias")
		case p.org == o.id:
			return respErrorMessage(http.StatusConflict, "Identity provider already associated to the organization")
		case p.org != "":
			return respErrorMessage(http.StatusBadRequest, "Identity provider already associated with a different organization")
		}
		p.org = o.id
		o.idps = append(o.idps, alias)
		return respNoContent()
	case len(rest) == 0:
		return respMethodNotAllowed()
	case len(rest) == 1:
		p := a.r.orgs.idps[rest[0]]
		linked := p != nil && p.org == o.id
		switch m {
		case http.MethodGet:
			if !view {
				return respForbidden()
			}
			if !linked {
				return respErrorMessage(http.StatusNotFound, "Identity provider not associated with the organization")
			}
			return respJSON(http.StatusOK, idpRep(p))
		case http.MethodDelete:
			if !manage {
				return respForbidden()
			}
			if !linked {
				// Keycloak 26.7.3's words for DELETE differ from GET's.
				return respErrorMessage(http.StatusNotFound, "Identity provider not found with the given alias")
			}
			p.org = ""
			o.idps = slices.DeleteFunc(o.idps, func(s string) bool { return s == p.alias })
			return respNoContent()
		}
		return respMethodNotAllowed()
	}
	return respNoRoute()
}

// organizationScope is Keycloak's built-in client scope of the
// organization claim.
const organizationScope = "organization"

// builtinOrganizationMapper is the organization scope's built-in mapper.
func builtinOrganizationMapper() (MapperConfig, bool) {
	sc, ok := builtinScope(organizationScope)
	if !ok {
		return MapperConfig{}, false
	}
	for _, m := range sc.ProtocolMappers {
		if m.ProtocolMapper == mapperOrganization {
			return MapperConfig{Name: m.Name, Type: m.ProtocolMapper, Config: cloneStringMap(m.Config)}, true
		}
	}
	return MapperConfig{}, false
}

// changedOrganizationMapper reports whether a realm file's mapper of the
// built-in organization scope differs from Keycloak's (e.g.
// addOrganizationId turned on): the realm file parser keeps it then.
func changedOrganizationMapper(scope string, m MapperConfig) bool {
	if scope != organizationScope || m.Type != mapperOrganization {
		return false
	}
	b, ok := builtinOrganizationMapper()
	return !ok || !maps.Equal(b.Config, m.Config)
}

// organizationRequest is what the grant's scopes ask of the organization
// claim: "organization" (the user's organization when there is one),
// "organization:*" (all) or "organization:{alias}".
func organizationRequest(scopes []string) (all bool, alias string, ok bool) {
	for _, s := range scopes {
		switch {
		case s == organizationScope:
			ok = true
		case s == organizationScope+":*":
			return true, "", true
		case strings.HasPrefix(s, organizationScope+":"):
			return false, strings.TrimPrefix(s, organizationScope+":"), true
		}
	}
	return false, "", ok
}

// organizationScopeMappers is the built-in organization mapper when the
// grant asks for the organization scope and the realm does not configure
// that scope's mapper itself.
func (r *Realm) organizationScopeMappers(g grant) []MapperConfig {
	if _, _, ok := organizationRequest(g.scopes); !ok || !r.orgs.enabled {
		return nil
	}
	if sc, ok := r.clientScopeConfig(organizationScope); ok && slices.ContainsFunc(sc.Mappers, func(m MapperConfig) bool { return m.Type == mapperOrganization }) {
		if !slices.Contains(g.scopes, organizationScope) {
			// organization:* and organization:{alias} apply the scope's
			// mappers too.
			return sc.Mappers
		}
		return nil
	}
	if m, ok := builtinOrganizationMapper(); ok {
		return []MapperConfig{m}
	}
	return nil
}

// organizationClaimLocked computes the organization claim of mapper m
// (observed on Keycloak 26.7.3): nothing for a user in no enabled
// organization, or in several when the scope names none; multivalued
// (the default): an object keyed by alias when jsonType.label is JSON or
// addOrganizationId/addOrganizationAttributes is on, else a list of
// aliases; not multivalued: one alias as a string, nothing with JSON.
func (r *Realm) organizationClaimLocked(m MapperConfig, g grant) (any, bool) {
	all, alias, ok := organizationRequest(g.scopes)
	if !ok || !r.orgs.enabled || g.user == nil {
		return nil, false
	}
	var orgs []*organization
	for _, o := range r.organizationsOfLocked(g.user.id) {
		if o.enabled && (alias == "" || o.alias == alias) {
			orgs = append(orgs, o)
		}
	}
	if len(orgs) == 0 || (!all && alias == "" && len(orgs) > 1) {
		return nil, false
	}
	slices.SortFunc(orgs, func(a, b *organization) int { return strings.Compare(a.alias, b.alias) })
	conf := m.Config
	jsonType := conf["jsonType.label"] == "JSON"
	if conf["multivalued"] == "false" {
		if jsonType {
			return nil, false
		}
		return orgs[len(orgs)-1].alias, true
	}
	addID, addAttrs, addDomain := conf["addOrganizationId"] == "true", conf["addOrganizationAttributes"] == "true", conf["addOrganizationDomain"] == "true"
	if !jsonType && !addID && !addAttrs {
		out := make([]any, len(orgs))
		for i, o := range orgs {
			out[i] = o.alias
		}
		return out, true
	}
	_, emailDomain, _ := strings.Cut(g.user.email, "@")
	out := map[string]any{}
	for _, o := range orgs {
		d := map[string]any{}
		if addAttrs {
			for k, v := range o.attributes {
				d[k] = slices.Clone(v)
			}
		}
		if addID {
			d["id"] = o.id
		}
		if addDomain && emailDomain != "" {
			for _, dom := range o.domains {
				if strings.EqualFold(dom.Name, emailDomain) {
					d["domain"] = dom.Name
				}
			}
		}
		out[o.alias] = d
	}
	return out, true
}

// dynamicOrganizationScope classifies a requested scope for the token
// endpoint's scope check (claims.go clientScopes): dynamic reports whether name is organization:{x}, known whether
// Keycloak 26.7.3 accepts it ("*" or the alias of an organization of the
// realm; anything else is invalid_scope). Callers hold r.mu.
func (r *Realm) dynamicOrganizationScope(name string) (dynamic, known bool) {
	arg, ok := strings.CutPrefix(name, organizationScope+":")
	if !ok {
		return false, false
	}
	if !r.orgs.enabled {
		return true, false
	}
	if arg == "*" {
		return true, true
	}
	for _, o := range r.orgs.byID {
		if o.alias == arg {
			return true, true
		}
	}
	return true, false
}

// organizationScopeInToken reports whether a granted organization:{alias}
// scope stays in the access token's scope claim: Keycloak 26.7.3 drops it
// when the user is not a member of that (enabled) organization. Callers
// hold r.mu.
func (r *Realm) organizationScopeInToken(name string, u *user) bool {
	arg, ok := strings.CutPrefix(name, organizationScope+":")
	if !ok || arg == "*" || u == nil {
		return true
	}
	for _, o := range r.organizationsOfLocked(u.id) {
		if o.alias == arg && o.enabled {
			return true
		}
	}
	return false
}

// scopeResolver tells the scope check about dynamic scopes: whether name
// is one (dynamic) and names something the realm knows (known).
type scopeResolver func(name string) (dynamic, known bool)

// dynamicScope is dynamicOrganizationScope for callers that do not hold
// r.mu.
func (r *Realm) dynamicScope(name string) (dynamic, known bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.dynamicOrganizationScope(name)
}

// memberScopesLocked leaves out of a token's scope claim the
// organization:ALIAS scopes of organizations u is not a member of, as
// Keycloak 26.7.3 does. Callers hold r.mu.
func (r *Realm) memberScopesLocked(scopes []string, u *user) []string {
	return slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return !r.organizationScopeInToken(s, u) })
}
