package admin_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// orgRealm turns organizations on and adds an identity provider.
func orgRealm(cfg *keycloaktest.RealmConfig) {
	cfg.OrganizationsEnabled = true
	cfg.IdentityProviders = []keycloaktest.IdentityProviderConfig{
		{Alias: "acme-idp", Config: map[string]string{"clientId": "x", "clientSecret": "y"}},
		{Alias: "other-idp"},
	}
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "orgs-only", Secret: secret, ServiceAccounts: true,
		ServiceAccountClientRoles: map[string][]string{"realm-management": {"view-organizations"}}})
}

func TestOrganizationLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, orgRealm)
	c := e.client(t, saAdmin)
	ctx := t.Context()

	id, err := c.CreateOrganization(ctx, admin.NewOrganization{Name: "Acme", Alias: "acme",
		Domains: []admin.OrganizationDomain{{Name: "acme.com"}}, Attributes: map[string][]string{"tier": {"gold"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateOrganization(ctx, admin.NewOrganization{Name: "globex"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		org  admin.NewOrganization
		want error
	}{
		{"same name", admin.NewOrganization{Name: "Acme", Alias: "acme-2"}, admin.ErrConflict},
		{"same alias", admin.NewOrganization{Name: "Other", Alias: "acme"}, admin.ErrConflict},
		{"name unusable as alias", admin.NewOrganization{Name: "Acme Inc"}, admin.ErrBadRequest},
		{"domain taken", admin.NewOrganization{Name: "dom", Domains: []admin.OrganizationDomain{{Name: "acme.com"}}}, admin.ErrBadRequest},
		{"bad domain", admin.NewOrganization{Name: "bad", Domains: []admin.OrganizationDomain{{Name: "not a domain"}}}, admin.ErrBadRequest},
		{"no name", admin.NewOrganization{}, admin.ErrBadRequest},
	} {
		if _, err := c.CreateOrganization(ctx, tc.org); !errors.Is(err, tc.want) {
			t.Errorf("%s: CreateOrganization = %v, want %v", tc.name, err, tc.want)
		}
	}

	o, err := c.GetOrganization(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if o.Alias != "acme" || !o.Enabled || !o.HasDomain("ACME.com") || o.Attributes["tier"][0] != "gold" {
		t.Errorf("GetOrganization = %+v", o)
	}
	list, err := c.ListOrganizations(ctx, admin.OrganizationQuery{Search: "acm"})
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Attributes != nil {
		t.Errorf("ListOrganizations(search acm) = %+v, %v", list, err)
	}
	if list, _ := c.ListOrganizations(ctx, admin.OrganizationQuery{Search: "acme.com", Exact: true, Full: true}); len(list) != 1 || list[0].Attributes == nil {
		t.Errorf("ListOrganizations(exact domain, full) = %+v", list)
	}
	if list, _ := c.ListOrganizations(ctx, admin.OrganizationQuery{Q: map[string]string{"tier": "gold"}}); len(list) != 1 {
		t.Errorf("ListOrganizations(q tier:gold) = %+v", list)
	}
	var all []string
	for o, err := range c.AllOrganizations(ctx, admin.OrganizationQuery{Max: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, o.Alias)
	}
	if !slices.Equal(all, []string{"acme", "globex"}) {
		t.Errorf("AllOrganizations = %q", all)
	}
	if n, err := c.CountOrganizations(ctx, admin.OrganizationQuery{}); err != nil || n != 2 {
		t.Errorf("CountOrganizations = %d, %v", n, err)
	}
	if got, err := c.OrganizationByAlias(ctx, "globex"); err != nil || got.Name != "globex" {
		t.Errorf("OrganizationByAlias = %+v, %v", got, err)
	}
	if _, err := c.OrganizationByAlias(ctx, "nope"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("OrganizationByAlias(nope) = %v", err)
	}

	// Update replaces; attributes only when given; the alias is fixed.
	o.Description = "Road runners"
	o.Attributes = nil
	if err := c.UpdateOrganization(ctx, *o); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.GetOrganization(ctx, id); o.Description != "Road runners" || o.Attributes["tier"] == nil {
		t.Errorf("after update: %+v", o)
	}
	bad := *o
	bad.Alias = "acme-x"
	if err := c.UpdateOrganization(ctx, bad); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("changing the alias: %v", err)
	}
	if err := c.AddOrganizationDomain(ctx, id, admin.OrganizationDomain{Name: "acme.org", Verified: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveOrganizationDomain(ctx, id, "acme.com"); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.GetOrganization(ctx, id); len(o.Domains) != 1 || o.Domains[0] != (admin.OrganizationDomain{Name: "acme.org", Verified: true}) {
		t.Errorf("domains = %+v", o.Domains)
	}
	if err := c.RemoveOrganizationDomain(ctx, id, "acme.com"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("removing a missing domain: %v", err)
	}

	// Members.
	alice, _ := e.kc.UserID("alice")
	bob, _ := e.kc.UserID("bob")
	for _, u := range []string{alice, bob} {
		if err := c.AddOrganizationMember(ctx, id, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AddOrganizationMember(ctx, id, alice); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("adding a member twice: %v", err)
	}
	if err := c.AddOrganizationMember(ctx, id, "no-such-user"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("adding an unknown user: %v", err)
	}
	var members []string
	for m, err := range c.AllOrganizationMembers(ctx, id, admin.MemberQuery{Max: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		if m.MembershipType != admin.MembershipUnmanaged {
			t.Errorf("membershipType = %q", m.MembershipType)
		}
		members = append(members, m.Username)
	}
	if !slices.Equal(members, []string{"alice", "bob"}) {
		t.Errorf("members = %q", members)
	}
	if n, err := c.CountOrganizationMembers(ctx, id); err != nil || n != 2 {
		t.Errorf("CountOrganizationMembers = %d, %v", n, err)
	}
	if m, err := c.GetOrganizationMember(ctx, id, alice); err != nil || m.Username != "alice" {
		t.Errorf("GetOrganizationMember = %+v, %v", m, err)
	}
	if orgs, err := c.UserOrganizations(ctx, alice, true); err != nil || len(orgs) != 1 || orgs[0].Alias != "acme" || orgs[0].Attributes == nil {
		t.Errorf("UserOrganizations = %+v, %v", orgs, err)
	}
	if err := c.RemoveOrganizationMember(ctx, id, bob); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveOrganizationMember(ctx, id, bob); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("removing a non-member: %v", err)
	}
	if _, err := c.GetOrganizationMember(ctx, id, bob); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("GetOrganizationMember(non-member) = %v", err)
	}

	// Identity providers.
	if err := c.LinkOrganizationIdentityProvider(ctx, id, "acme-idp"); err != nil {
		t.Fatal(err)
	}
	if err := c.LinkOrganizationIdentityProvider(ctx, id, "acme-idp"); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("linking twice: %v", err)
	}
	if err := c.LinkOrganizationIdentityProvider(ctx, id, "nope"); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("linking an unknown provider: %v", err)
	}
	idps, err := c.OrganizationIdentityProviders(ctx, id)
	if err != nil || len(idps) != 1 || idps[0].Alias != "acme-idp" || idps[0].OrganizationID != id || idps[0].Config["clientSecret"] == "y" {
		t.Errorf("OrganizationIdentityProviders = %+v, %v", idps, err)
	}
	if _, err := c.OrganizationIdentityProvider(ctx, id, "other-idp"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("unlinked provider: %v", err)
	}
	if err := c.UnlinkOrganizationIdentityProvider(ctx, id, "acme-idp"); err != nil {
		t.Fatal(err)
	}

	if err := c.DeleteOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrganization(ctx, id); !errors.Is(err, admin.ErrNotFound) || errors.Is(err, admin.ErrOrganizationsDisabled) {
		t.Errorf("GetOrganization after delete = %v", err)
	}
}

func TestOrganizationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, orgRealm)
	ctx := t.Context()

	// Roles: manage-users is not enough; the message names what is.
	_, err := e.client(t, saManager).ListOrganizations(ctx, admin.OrganizationQuery{})
	var ae *admin.APIError
	if !errors.Is(err, admin.ErrForbidden) || !errors.As(err, &ae) || !strings.Contains(err.Error(), "query-organizations") {
		t.Errorf("ListOrganizations as manager = %v", err)
	}
	viewer := e.client(t, "orgs-only")
	if _, err := viewer.ListOrganizations(ctx, admin.OrganizationQuery{}); err != nil {
		t.Errorf("view-organizations cannot list: %v", err)
	}
	if _, err := viewer.CreateOrganization(ctx, admin.NewOrganization{Name: "x"}); !errors.Is(err, admin.ErrForbidden) || !strings.Contains(err.Error(), "manage-organizations") {
		t.Errorf("CreateOrganization as viewer = %v", err)
	}

	// Organizations off: a sentinel of its own, still a 404.
	e.kc.SetOrganizationsEnabled(false)
	_, err = e.client(t, saAdmin).ListOrganizations(ctx, admin.OrganizationQuery{})
	if !errors.Is(err, admin.ErrOrganizationsDisabled) || !errors.Is(err, admin.ErrNotFound) || !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("ListOrganizations with organizations off = %v", err)
	}
}

// TestOrganizationClaim checks keycloaktest's organization claim through
// real password grants, as Keycloak 26.7.3 issues it.
func TestOrganizationClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t, orgRealm, func(cfg *keycloaktest.RealmConfig) {
		cfg.Organizations = []keycloaktest.OrganizationConfig{
			{Name: "Acme", Alias: "acme", Members: []string{"alice", "bob"}, Domains: []keycloaktest.OrganizationDomainConfig{{Name: "example.com"}}},
			{Name: "globex", Members: []string{"alice"}, Attributes: map[string][]string{"tier": {"silver"}}},
		}
	})
	claims := func(user, scope string) *cloakroom.Claims {
		t.Helper()
		out, status := tokenRequest(t, e, url.Values{"grant_type": {"password"}, "username": {user}, "password": {user}, "scope": {scope}})
		if status != http.StatusOK {
			t.Fatalf("token for %s (%s): %d %v", user, scope, status, out)
		}
		at, _ := out["access_token"].(string)
		parts := strings.Split(at, ".")
		c, err := cloakroom.ParseClaims(mustB64(t, parts[1]))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		user, scope string
		want        []string
	}{
		{"bob", "openid", nil},
		{"bob", "openid organization", []string{"acme"}},
		{"alice", "openid organization", nil}, // several: Keycloak picks none outside the browser
	} {
		if got := claims(tc.user, tc.scope).Organizations(); !slices.Equal(got, tc.want) {
			t.Errorf("%s %q: organization = %q, want %q", tc.user, tc.scope, got, tc.want)
		}
	}
	if !cloakroom.MemberOf("acme").Allows(claims("bob", "organization")) || cloakroom.MemberOf("globex").Allows(claims("bob", "organization")) {
		t.Error("MemberOf disagrees with the claim")
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	out, err := decodeSegment(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
