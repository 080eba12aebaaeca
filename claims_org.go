package cloakroom

import (
	"slices"
	"strings"
)

// OrganizationClaimName is the claim Keycloak's Organization Membership
// mapper writes by default (the built-in "organization" client scope,
// Keycloak 26+).
const OrganizationClaimName = "organization"

// OrganizationClaim is one organization of a token's organization claim.
//
// Keycloak writes the claim in one of two shapes, depending on the
// Organization Membership mapper's configuration:
//
//   - a list of aliases, ["acme","globex"] (the default: JSON type String,
//     multivalued), or a single alias "acme" when the mapper is not
//     multivalued;
//   - an object keyed by alias, {"acme":{"id":"…","domain":"acme.com",
//     "tier":["gold"]}}, when the mapper's JSON type is JSON or its
//     "Add organization id" or "Add organization attributes" option is on.
//
// Only the object shape carries ID, Domain and Attributes.
type OrganizationClaim struct {
	// Alias is the organization's alias (Keycloak's key in the claim).
	Alias string
	// ID is the organization id ("Add organization id"), else "".
	ID string
	// Domain is the organization domain that matches the user's email
	// ("Add organization domain"), else "".
	Domain string
	// Attributes are the organization's attributes ("Add organization
	// attributes"); nil when the claim has none.
	Attributes map[string][]string
}

// Organizations returns the aliases of the organizations in the token's
// organization claim, sorted, in either of Keycloak's shapes (see
// OrganizationClaim). It returns nil when the claim is absent or holds
// neither shape.
//
// Keycloak adds the claim only when the organization scope is granted: a
// user who belongs to exactly one organization gets it with scope
// "organization"; a member of several gets it with "organization:*"
// (all of them) or "organization:{alias}" (that one), and gets no claim at
// all from a plain "organization" outside the browser login (observed on
// Keycloak 26.7.3).
func (c *Claims) Organizations() []string {
	orgs := c.organizationClaims()
	if len(orgs) == 0 {
		return nil
	}
	out := make([]string, len(orgs))
	for i, o := range orgs {
		out[i] = o.Alias
	}
	return out
}

// Organization returns what the organization claim says about the
// organization alias; false when the token does not name it.
func (c *Claims) Organization(alias string) (OrganizationClaim, bool) {
	if alias == "" {
		return OrganizationClaim{}, false
	}
	for _, o := range c.organizationClaims() {
		if o.Alias == alias {
			return o, true
		}
	}
	return OrganizationClaim{}, false
}

// InOrganization reports whether the organization claim names the
// organization alias (case-sensitive, as Keycloak's aliases are).
func (c *Claims) InOrganization(alias string) bool {
	_, ok := c.Organization(alias)
	return ok
}

// organizationClaims decodes the organization claim, sorted by alias,
// without duplicates. Values of unexpected types are skipped.
func (c *Claims) organizationClaims() []OrganizationClaim {
	if c == nil {
		return nil
	}
	v, ok := c.shared()[OrganizationClaimName]
	if !ok {
		return nil
	}
	return parseOrganizationClaim(v)
}

// parseOrganizationClaim reads both shapes of the claim from a decoded
// JSON value.
func parseOrganizationClaim(v any) []OrganizationClaim {
	var out []OrganizationClaim
	add := func(o OrganizationClaim) {
		if o.Alias == "" || slices.ContainsFunc(out, func(x OrganizationClaim) bool { return x.Alias == o.Alias }) {
			return
		}
		out = append(out, o)
	}
	switch v := v.(type) {
	case string:
		add(OrganizationClaim{Alias: v})
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				add(OrganizationClaim{Alias: s})
			}
		}
	case map[string]any:
		for alias, details := range v {
			o := OrganizationClaim{Alias: alias}
			if m, ok := details.(map[string]any); ok {
				for k, val := range m {
					switch k {
					case "id":
						o.ID, _ = val.(string)
					case "domain":
						o.Domain, _ = val.(string)
					default:
						if vals, ok := attributeValues(val); ok {
							if o.Attributes == nil {
								o.Attributes = map[string][]string{}
							}
							o.Attributes[k] = vals
						}
					}
				}
			}
			add(o)
		}
	}
	slices.SortFunc(out, func(a, b OrganizationClaim) int { return strings.Compare(a.Alias, b.Alias) })
	return out
}

// attributeValues reads an organization attribute: Keycloak writes a list
// of strings; a single string is accepted as a list of one.
func attributeValues(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}
