package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Organizations (Keycloak 26+): the Admin REST API under
// /admin/realms/{realm}/organizations. The realm must have organizations
// enabled (the realm setting organizationsEnabled); otherwise every call
// fails with ErrOrganizationsDisabled.

// ErrOrganizationsDisabled is the 404 Keycloak answers when the realm does
// not have organizations enabled ("Organizations not enabled for this
// realm."), or a Keycloak older than 26 that has no organizations API at
// all. It also matches ErrNotFound, and the *APIError is in the chain.
var ErrOrganizationsDisabled = errors.New("admin: organizations are not enabled for this realm")

// The realm-management roles organization calls need (observed on
// Keycloak 26.7.3; manage-realm may stand in for manage-organizations).
const (
	roleQueryOrgs     = "query-organizations (or view-organizations)"
	roleViewOrgs      = "view-organizations"
	roleManageOrgs    = "manage-organizations"
	roleViewMembers   = "view-organizations and view-users"
	roleManageMembers = "manage-organizations and manage-users"
	roleViewOrgIdPs   = "view-organizations and view-identity-providers"
	roleManageOrgIdPs = "manage-organizations and manage-identity-providers"
)

// Realm-management roles of organizations, for Config and tests.
const (
	RoleQueryOrganizations  = "query-organizations"
	RoleViewOrganizations   = "view-organizations"
	RoleManageOrganizations = "manage-organizations"
)

// MembershipType values of OrganizationMember: a MANAGED member was
// created by the organization's identity provider and is deleted with
// the organization; an UNMANAGED one is an existing realm user added to it.
const (
	MembershipManaged   = "MANAGED"
	MembershipUnmanaged = "UNMANAGED"
)

// Organization is Keycloak's OrganizationRepresentation. Alias is the
// name tokens use (the organization claim) and cannot change after
// creation; Name is a display name, unique in the realm.
type Organization struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Alias       string `json:"alias,omitempty"`
	Enabled     bool   `json:"enabled"`
	Description string `json:"description,omitempty"`
	RedirectURL string `json:"redirectUrl,omitempty"`
	// Attributes are nil in brief representations (ListOrganizations
	// unless Full, UserOrganizations unless Full). UpdateOrganization
	// leaves the stored attributes alone when nil and replaces them when
	// not (an empty map clears them).
	Attributes map[string][]string  `json:"attributes"`
	Domains    []OrganizationDomain `json:"domains,omitempty"`
}

// MarshalJSON writes the representation, with "attributes" only when
// Attributes is not nil (Keycloak keeps the stored attributes when the
// member is absent and replaces them when present).
func (o Organization) MarshalJSON() ([]byte, error) {
	type rep Organization
	if o.Attributes != nil {
		return json.Marshal(rep(o))
	}
	// The outer member shadows rep's and is left out when nil.
	return json.Marshal(struct {
		rep
		Attributes *struct{} `json:"attributes,omitempty"`
	}{rep: rep(o)})
}

// HasDomain reports whether the organization has the domain (compared
// case-insensitively, as DNS names are).
func (o Organization) HasDomain(name string) bool {
	return slices.ContainsFunc(o.Domains, func(d OrganizationDomain) bool { return strings.EqualFold(d.Name, name) })
}

// OrganizationDomain is an internet domain of an organization. A domain
// belongs to at most one organization of the realm.
type OrganizationDomain struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
}

// NewOrganization is what CreateOrganization sends. Unlike Keycloak's
// representation, the zero value creates an enabled organization (as
// Keycloak does when "enabled" is left out).
type NewOrganization struct {
	// Name is required and unique in the realm.
	Name string
	// Alias defaults to Name, which then must be usable as an alias (no
	// spaces). It cannot be changed later.
	Alias       string
	Description string
	RedirectURL string
	// Domains are domain names (e.g. "acme.com"), each not yet taken by
	// another organization.
	Domains []OrganizationDomain
	// Attributes are free-form attributes (the organization claim carries
	// them when the mapper's "Add organization attributes" is on).
	Attributes map[string][]string
	// Disabled creates the organization disabled: its members get no
	// organization claim.
	Disabled bool
}

// MarshalJSON writes the OrganizationRepresentation Keycloak expects.
func (n NewOrganization) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name        string               `json:"name"`
		Alias       string               `json:"alias,omitempty"`
		Enabled     bool                 `json:"enabled"`
		Description string               `json:"description,omitempty"`
		RedirectURL string               `json:"redirectUrl,omitempty"`
		Attributes  map[string][]string  `json:"attributes,omitempty"`
		Domains     []OrganizationDomain `json:"domains,omitempty"`
	}{n.Name, n.Alias, !n.Disabled, n.Description, n.RedirectURL, n.Attributes, n.Domains})
}

// OrganizationQuery filters ListOrganizations, AllOrganizations and
// CountOrganizations.
type OrganizationQuery struct {
	// Search matches the name or one of the domains: a case-insensitive
	// substring, or with Exact the whole name or domain (case-sensitive on
	// Keycloak 26.7.3).
	Search string
	Exact  bool
	// Q matches attributes, key -> value (all must match); it wins over
	// Search.
	Q map[string]string
	// First is the offset and Max the page size. Keycloak's default page
	// is 10 organizations, not 100 as for users: ListOrganizations sends
	// Config.PageSize when Max is 0.
	First, Max int
	// Full asks for the attributes (Keycloak's briefRepresentation=false).
	Full bool
}

func (q OrganizationQuery) values(paging bool, pageSize int) url.Values {
	v := url.Values{}
	if len(q.Q) > 0 {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range q.Q {
				if !yield(k) {
					return
				}
			}
		})
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + q.Q[k]
		}
		v.Set("q", strings.Join(parts, " "))
	}
	if q.Search != "" {
		v.Set("search", q.Search)
	}
	if q.Exact {
		v.Set("exact", "true")
	}
	if paging {
		if q.First > 0 {
			v.Set("first", strconv.Itoa(q.First))
		}
		max := q.Max
		if max <= 0 {
			max = pageSize
		}
		v.Set("max", strconv.Itoa(max))
		if q.Full {
			v.Set("briefRepresentation", "false")
		}
	}
	return v
}

// orgError turns Keycloak's "organizations are not enabled" 404 into
// ErrOrganizationsDisabled (wrapping the *APIError). listing marks the
// calls for which any 404 can only mean that (a Keycloak without the
// organizations API answers its generic 404).
func orgError(err error, listing bool) error {
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		return err
	}
	if strings.Contains(strings.ToLower(ae.Message), "organizations not enabled") ||
		(listing && ae.Message == "" && (ae.Code == "" || strings.HasPrefix(ae.Code, "HTTP 404") || strings.Contains(ae.Code, "Unable to find"))) {
		return fmt.Errorf("%w: %w", ErrOrganizationsDisabled, ae)
	}
	return err
}

func orgPath(id string) string { return "/organizations/" + seg(id) }

// ListOrganizations returns one page of the realm's organizations
// matching q (GET /organizations), ordered by name.
func (c *Client) ListOrganizations(ctx context.Context, q OrganizationQuery) ([]Organization, error) {
	var out []Organization
	err := c.get(ctx, call{path: "/organizations", query: q.values(true, c.cfg.PageSize), role: roleQueryOrgs}, &out)
	return out, orgError(err, true)
}

// AllOrganizations iterates over every organization matching q, in pages
// of Config.PageSize (or q.Max). It stops at the first error, which it
// yields.
func (c *Client) AllOrganizations(ctx context.Context, q OrganizationQuery) iter.Seq2[Organization, error] {
	size := c.cfg.PageSize
	if q.Max > 0 {
		size = q.Max
	}
	q.Max = size
	return pages(ctx, size, func(first int) ([]Organization, error) {
		q.First = first
		return c.ListOrganizations(ctx, q)
	}, q.First)
}

// CountOrganizations counts the organizations matching q
// (GET /organizations/count; paging fields are ignored).
func (c *Client) CountOrganizations(ctx context.Context, q OrganizationQuery) (int, error) {
	var n int
	err := c.get(ctx, call{path: "/organizations/count", query: q.values(false, 0), role: roleQueryOrgs}, &n)
	return n, orgError(err, true)
}

// GetOrganization returns an organization by id, with its attributes.
// An unknown id is ErrNotFound.
func (c *Client) GetOrganization(ctx context.Context, id string) (*Organization, error) {
	var o Organization
	if err := c.get(ctx, call{path: orgPath(id), role: roleViewOrgs}, &o); err != nil {
		return nil, orgError(err, false)
	}
	return &o, nil
}

// OrganizationByAlias finds the organization with exactly this alias.
// Keycloak cannot search by alias, so it looks through every
// organization; none is ErrNotFound.
func (c *Client) OrganizationByAlias(ctx context.Context, alias string) (*Organization, error) {
	for o, err := range c.AllOrganizations(ctx, OrganizationQuery{}) {
		if err != nil {
			return nil, err
		}
		if o.Alias == alias {
			return c.GetOrganization(ctx, o.ID)
		}
	}
	return nil, fmt.Errorf("%w: no organization with alias %q in realm %q", ErrNotFound, alias, c.realmName)
}

// CreateOrganization creates an organization and returns its id (from the
// Location header). A name or alias already taken is ErrConflict; a
// domain another organization has, a name unusable as an alias, or a
// malformed domain is ErrBadRequest.
func (c *Client) CreateOrganization(ctx context.Context, o NewOrganization) (string, error) {
	if o.Name == "" {
		return "", fmt.Errorf("%w: organization name is required", ErrBadRequest)
	}
	cl := call{method: http.MethodPost, path: "/organizations", body: o, role: roleManageOrgs}
	res, err := c.do(ctx, cl)
	if err != nil {
		return "", orgError(err, true)
	}
	return c.createdID(res, "/organizations")
}

// createdID reads the id of a created object from the Location header.
func (c *Client) createdID(res *result, collection string) (string, error) {
	loc := res.header.Get("Location")
	lu, err := url.Parse(loc)
	if loc == "" || err != nil {
		return "", fmt.Errorf("%w: POST %s%s: 201 without a usable Location header", ErrInvalidResponse, c.basePath, collection)
	}
	id := path.Base(lu.Path)
	if id == "" || id == "/" || id == "." || id == path.Base(collection) {
		return "", fmt.Errorf("%w: POST %s%s: Location %q names no id", ErrInvalidResponse, c.basePath, collection, loc)
	}
	return id, nil
}

// UpdateOrganization replaces the organization o.ID with o (PUT
// /organizations/{id}): name, enabled, description, redirect URL and
// domains as given (empty ones are removed), attributes only when
// o.Attributes is not nil. The alias cannot change: o.Alias must be the
// current one. Start from GetOrganization's answer and change what you
// mean to change.
func (c *Client) UpdateOrganization(ctx context.Context, o Organization) error {
	if o.ID == "" {
		return fmt.Errorf("%w: organization id is required", ErrBadRequest)
	}
	return orgError(c.exec(ctx, call{method: http.MethodPut, path: orgPath(o.ID), body: o, role: roleManageOrgs}), false)
}

// DeleteOrganization deletes an organization. Its managed members
// (created through its identity providers) are deleted with it; other
// members stay realm users.
func (c *Client) DeleteOrganization(ctx context.Context, id string) error {
	return orgError(c.exec(ctx, call{method: http.MethodDelete, path: orgPath(id), role: roleManageOrgs}), false)
}

// AddOrganizationDomain adds a domain to an organization (a read and an
// update: Keycloak has no call of its own for it). A domain it already has
// gets the given Verified flag.
func (c *Client) AddOrganizationDomain(ctx context.Context, id string, d OrganizationDomain) error {
	o, err := c.GetOrganization(ctx, id)
	if err != nil {
		return err
	}
	o.Domains = slices.DeleteFunc(o.Domains, func(x OrganizationDomain) bool { return strings.EqualFold(x.Name, d.Name) })
	o.Domains = append(o.Domains, d)
	return c.UpdateOrganization(ctx, *o)
}

// RemoveOrganizationDomain removes a domain from an organization (a read
// and an update). A domain it does not have is ErrNotFound.
func (c *Client) RemoveOrganizationDomain(ctx context.Context, id, domain string) error {
	o, err := c.GetOrganization(ctx, id)
	if err != nil {
		return err
	}
	if !o.HasDomain(domain) {
		return fmt.Errorf("%w: organization %q has no domain %q", ErrNotFound, o.Alias, domain)
	}
	o.Domains = slices.DeleteFunc(o.Domains, func(x OrganizationDomain) bool { return strings.EqualFold(x.Name, domain) })
	if o.Domains == nil {
		o.Domains = []OrganizationDomain{}
	}
	return c.UpdateOrganization(ctx, *o)
}

// OrganizationMember is a member of an organization: Keycloak's
// MemberRepresentation, a user with its MembershipType.
type OrganizationMember struct {
	User
	// MembershipType is MembershipManaged or MembershipUnmanaged.
	MembershipType string `json:"membershipType"`
}

// MemberQuery filters ListOrganizationMembers.
type MemberQuery struct {
	// Search matches username, email, first or last name (substring;
	// Exact: whole, case-insensitive).
	Search string
	Exact  bool
	// MembershipType keeps only MembershipManaged or MembershipUnmanaged
	// members.
	MembershipType string
	// First and Max page (Max 0: Config.PageSize).
	First, Max int
	// Full asks for the full user representation.
	Full bool
}

func (q MemberQuery) values(pageSize int) url.Values {
	v := url.Values{}
	if q.Search != "" {
		v.Set("search", q.Search)
	}
	if q.Exact {
		v.Set("exact", "true")
	}
	if q.MembershipType != "" {
		v.Set("membershipType", q.MembershipType)
	}
	if q.First > 0 {
		v.Set("first", strconv.Itoa(q.First))
	}
	max := q.Max
	if max <= 0 {
		max = pageSize
	}
	v.Set("max", strconv.Itoa(max))
	if q.Full {
		v.Set("briefRepresentation", "false")
	}
	return v
}

// ListOrganizationMembers returns one page of an organization's members
// (GET /organizations/{id}/members).
func (c *Client) ListOrganizationMembers(ctx context.Context, orgID string, q MemberQuery) ([]OrganizationMember, error) {
	var out []OrganizationMember
	err := c.get(ctx, call{path: orgPath(orgID) + "/members", query: q.values(c.cfg.PageSize), role: roleViewMembers}, &out)
	return out, orgError(err, false)
}

// AllOrganizationMembers iterates over every member of an organization
// matching q, in pages of Config.PageSize (or q.Max).
func (c *Client) AllOrganizationMembers(ctx context.Context, orgID string, q MemberQuery) iter.Seq2[OrganizationMember, error] {
	size := c.cfg.PageSize
	if q.Max > 0 {
		size = q.Max
	}
	q.Max = size
	return pages(ctx, size, func(first int) ([]OrganizationMember, error) {
		q.First = first
		return c.ListOrganizationMembers(ctx, orgID, q)
	}, q.First)
}

// CountOrganizationMembers counts an organization's members.
func (c *Client) CountOrganizationMembers(ctx context.Context, orgID string) (int, error) {
	var n int
	err := c.get(ctx, call{path: orgPath(orgID) + "/members/count", role: roleViewMembers}, &n)
	return n, orgError(err, false)
}

// GetOrganizationMember returns one member; a user who is not a member is
// ErrNotFound.
func (c *Client) GetOrganizationMember(ctx context.Context, orgID, userID string) (*OrganizationMember, error) {
	var m OrganizationMember
	if err := c.get(ctx, call{path: orgPath(orgID) + "/members/" + seg(userID), role: roleViewMembers}, &m); err != nil {
		return nil, orgError(err, false)
	}
	return &m, nil
}

// AddOrganizationMember makes an existing realm user a member (an
// unmanaged one). A member already is ErrConflict; an unknown user or
// organization is ErrNotFound.
func (c *Client) AddOrganizationMember(ctx context.Context, orgID, userID string) error {
	if userID == "" {
		return fmt.Errorf("%w: user id is required", ErrBadRequest)
	}
	return orgError(c.exec(ctx, call{method: http.MethodPost, path: orgPath(orgID) + "/members", body: userID, role: roleManageMembers}), false)
}

// RemoveOrganizationMember removes a member. Keycloak deletes a managed
// member's user account; an unmanaged member stays a realm user. A user
// who is not a member is ErrNotFound.
func (c *Client) RemoveOrganizationMember(ctx context.Context, orgID, userID string) error {
	return orgError(c.exec(ctx, call{method: http.MethodDelete, path: orgPath(orgID) + "/members/" + seg(userID), role: roleManageMembers}), false)
}

// UserOrganizations lists the organizations a user belongs to
// (GET /organizations/members/{id}/organizations); full asks for their
// attributes. An unknown user is ErrNotFound.
func (c *Client) UserOrganizations(ctx context.Context, userID string, full bool) ([]Organization, error) {
	var q url.Values
	if full {
		q = url.Values{"briefRepresentation": {"false"}}
	}
	var out []Organization
	err := c.get(ctx, call{path: "/organizations/members/" + seg(userID) + "/organizations", query: q, role: roleViewMembers}, &out)
	return out, orgError(err, false)
}

// IdentityProvider is Keycloak's IdentityProviderRepresentation (the
// fields this package uses). Secrets in Config come back masked.
type IdentityProvider struct {
	Alias          string            `json:"alias"`
	DisplayName    string            `json:"displayName,omitempty"`
	InternalID     string            `json:"internalId,omitempty"`
	ProviderID     string            `json:"providerId"`
	Enabled        bool              `json:"enabled"`
	HideOnLogin    bool              `json:"hideOnLogin,omitempty"`
	OrganizationID string            `json:"organizationId,omitempty"`
	Config         map[string]string `json:"config,omitempty"`
}

// Keys of IdentityProvider.Config that tie a provider to its
// organization (set them with the realm's identity-provider API).
const (
	// IdPConfigOrgDomain is the organization domain the provider serves
	// ("ANY" for any of them).
	IdPConfigOrgDomain = "kc.org.domain"
	// IdPConfigOrgRedirectEmailMatches "true" sends a user whose email
	// (or login_hint) is in that domain straight to the provider.
	IdPConfigOrgRedirectEmailMatches = "kc.org.broker.redirect.mode.email-matches"
)

// OrganizationIdentityProviders lists the identity providers linked to an
// organization.
func (c *Client) OrganizationIdentityProviders(ctx context.Context, orgID string) ([]IdentityProvider, error) {
	var out []IdentityProvider
	err := c.get(ctx, call{path: orgPath(orgID) + "/identity-providers", role: roleViewOrgIdPs}, &out)
	return out, orgError(err, false)
}

// OrganizationIdentityProvider returns one linked identity provider; a
// provider not linked to the organization is ErrNotFound.
func (c *Client) OrganizationIdentityProvider(ctx context.Context, orgID, alias string) (*IdentityProvider, error) {
	var out IdentityProvider
	if err := c.get(ctx, call{path: orgPath(orgID) + "/identity-providers/" + seg(alias), role: roleViewOrgIdPs}, &out); err != nil {
		return nil, orgError(err, false)
	}
	return &out, nil
}

// LinkOrganizationIdentityProvider links an existing identity provider of
// the realm (by alias) to an organization. Already linked to it is
// ErrConflict; an unknown alias or a provider linked to another
// organization is ErrBadRequest (Keycloak's answers).
func (c *Client) LinkOrganizationIdentityProvider(ctx context.Context, orgID, alias string) error {
	if alias == "" {
		return fmt.Errorf("%w: identity provider alias is required", ErrBadRequest)
	}
	return orgError(c.exec(ctx, call{method: http.MethodPost, path: orgPath(orgID) + "/identity-providers", body: alias, role: roleManageOrgIdPs}), false)
}

// UnlinkOrganizationIdentityProvider unlinks an identity provider from an
// organization (the provider stays in the realm). Not linked is
// ErrNotFound.
func (c *Client) UnlinkOrganizationIdentityProvider(ctx context.Context, orgID, alias string) error {
	return orgError(c.exec(ctx, call{method: http.MethodDelete, path: orgPath(orgID) + "/identity-providers/" + seg(alias), role: roleManageOrgIdPs}), false)
}

// pages iterates over first/max pages of size from offset first.
func pages[T any](ctx context.Context, size int, page func(first int) ([]T, error), first int) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			if err := ctx.Err(); err != nil {
				yield(zero, err)
				return
			}
			items, err := page(first)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if len(items) < size {
				return
			}
			first += len(items)
		}
	}
}
