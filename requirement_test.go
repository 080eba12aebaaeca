package cloakroom_test

import (
	"slices"
	"testing"

	"github.com/cloakroom/cloakroom"
)

func mustClaims(t *testing.T, payload string) *cloakroom.Claims {
	t.Helper()
	c, err := cloakroom.ParseClaims([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRequirements: each constructor decides and describes as a person
// reads it, never as Go slice text; nothing configured refuses everyone.
func TestRequirements(t *testing.T) {
	t.Parallel()
	alice := mustClaims(t, `{
		"sub": "a1", "scope": "openid email orders:read", "acr": "silver",
		"realm_access": {"roles": ["admin", "user"]},
		"resource_access": {"orders": {"roles": ["refund"]}, "account": {"roles": ["view-profile"]}},
		"groups": ["staff", "finance"]
	}`)
	bare := mustClaims(t, `{"sub": "b1"}`)
	tests := []struct {
		name  string
		req   cloakroom.Requirement
		what  string
		alice bool
	}{
		{"any realm role, one", cloakroom.AnyRealmRole("admin"), `the role "admin"`, true},
		{"all realm roles, one", cloakroom.AllRealmRoles("admin"), `the role "admin"`, true},
		{"any realm role, two", cloakroom.AnyRealmRole("root", "user"), `the role "root" or "user"`, true},
		{"any realm role, three", cloakroom.AnyRealmRole("admin", "editor", "auditor"), `the role "admin", "editor" or "auditor"`, true},
		{"any realm role, none held", cloakroom.AnyRealmRole("root", "editor"), `the role "root" or "editor"`, false},
		{"all realm roles, two", cloakroom.AllRealmRoles("admin", "user"), `the roles "admin" and "user"`, true},
		{"all realm roles, three", cloakroom.AllRealmRoles("a", "b", "c"), `the roles "a", "b" and "c"`, false},
		{"all realm roles, one missing", cloakroom.AllRealmRoles("admin", "root"), `the roles "admin" and "root"`, false},
		{"any client role", cloakroom.AnyClientRole("orders", "refund"), `the role "refund" of client "orders"`, true},
		{"any client role, two", cloakroom.AnyClientRole("orders", "refund", "void"), `the role "refund" or "void" of client "orders"`, true},
		{"all client roles", cloakroom.AllClientRoles("orders", "refund", "void"), `the roles "refund" and "void" of client "orders"`, false},
		{"client role of another client", cloakroom.AnyClientRole("account", "refund"), `the role "refund" of client "account"`, false},
		{"realm role is no client role", cloakroom.AnyClientRole("orders", "admin"), `the role "admin" of client "orders"`, false},
		{"all scopes", cloakroom.AllScopes("email", "orders:read"), `the scopes "email" and "orders:read"`, true},
		{"all scopes, one missing", cloakroom.AllScopes("email", "orders:write"), `the scopes "email" and "orders:write"`, false},
		{"any scope", cloakroom.AnyScope("orders:write", "email"), `the scope "orders:write" or "email"`, true},
		{"any permission", cloakroom.AnyPermission("groups", "finance", "hr"), `the permission "finance" or "hr"`, true},
		{"all permissions", cloakroom.AllPermissions("resource_access.account.roles", "view-profile", "manage-account"), `the permissions "view-profile" and "manage-account"`, false},
		{"permission, absent claim", cloakroom.AnyPermission("missing.claim", "finance"), `the permission "finance"`, false},
		{"permission, no path", cloakroom.AnyPermission("", "finance"), `the permission "finance", but no permission claim is configured`, false},
		{"min acr, ordered", cloakroom.MinACR("silver", []string{"bronze", "silver", "gold"}), `authentication level "silver" or higher`, true},
		{"min acr, ordered, below", cloakroom.MinACR("gold", []string{"bronze", "silver", "gold"}), `authentication level "gold" or higher`, false},
		{"min acr, equal name", cloakroom.MinACR("silver", nil), `authentication level "silver" or higher`, true},
		{"min acr, unordered names", cloakroom.MinACR("bronze", nil), `authentication level "bronze" or higher`, false},
		{"all of", cloakroom.AllOf(cloakroom.AnyRealmRole("admin"), cloakroom.AllScopes("email")), `the role "admin" and the scope "email"`, true},
		{"all of, one unmet", cloakroom.AllOf(cloakroom.AnyRealmRole("admin"), cloakroom.AllScopes("write")), `the role "admin" and the scope "write"`, false},
		{"any of", cloakroom.AnyOf(cloakroom.AnyRealmRole("root"), cloakroom.AnyClientRole("orders", "refund")), `the role "root" or the role "refund" of client "orders"`, true},
		{"nested", cloakroom.AnyOf(cloakroom.AnyRealmRole("root"), cloakroom.AllOf(cloakroom.AnyRealmRole("user"), cloakroom.AnyScope("email"))), `the role "root" or (the role "user" and the scope "email")`, true},
		{"all of one", cloakroom.AllOf(cloakroom.AnyRealmRole("admin")), `the role "admin"`, true},
		{"custom", cloakroom.NewRequirement("a verified email address", func(c *cloakroom.Claims) bool { return c.EmailVerified() }), "a verified email address", false},
		{"quotes", cloakroom.AnyRealmRole(`say "hi"`), `the role "say \"hi\""`, false},
		// Nothing configured refuses everyone: AllRealmRoles() is not "all of
		// nothing, so anyone".
		{"no realm roles (any)", cloakroom.AnyRealmRole(), "a role, but none is configured", false},
		{"no realm roles (all)", cloakroom.AllRealmRoles(), "a role, but none is configured", false},
		{"no client roles", cloakroom.AllClientRoles("orders"), "a role, but none is configured", false},
		{"no client", cloakroom.AnyClientRole("", "refund"), "a client role, but no client is configured", false},
		{"no scopes", cloakroom.AllScopes(), "a scope, but none is configured", false},
		{"no permissions", cloakroom.AllPermissions("groups"), "a permission, but none is configured", false},
		{"no acr", cloakroom.MinACR("", nil), "an authentication level, but none is configured", false},
		{"all of nothing", cloakroom.AllOf(), "a requirement, but none is configured", false},
		{"any of nothing", cloakroom.AnyOf(), "a requirement, but none is configured", false},
		{"zero", cloakroom.Requirement{}, "a requirement, but none is configured", false},
		{"custom without predicate", cloakroom.NewRequirement("magic", nil), "magic", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.req.String(); got != tt.what {
				t.Errorf("String() = %s, want %s", got, tt.what)
			}
			if got := tt.req.Allows(alice); got != tt.alice {
				t.Errorf("Allows(alice) = %v, want %v", got, tt.alice)
			}
			// Nil and empty claims are refused by every requirement.
			if tt.req.Allows(nil) {
				t.Error("Allows(nil) = true")
			}
			if tt.req.Allows(bare) {
				t.Error("Allows(claims without roles, scopes or acr) = true")
			}
		})
	}
}

func TestRequirementScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		req  cloakroom.Requirement
		want []string
	}{
		{cloakroom.AllScopes("a", "b"), []string{"a", "b"}},
		{cloakroom.AnyScope("a"), []string{"a"}},
		{cloakroom.AnyRealmRole("admin"), nil},
		{cloakroom.AllOf(cloakroom.AnyRealmRole("admin"), cloakroom.AllScopes("a", "b"), cloakroom.AnyScope("b", "c")), []string{"a", "b", "c"}},
		{cloakroom.Requirement{}, nil},
	}
	for _, tt := range tests {
		if got := tt.req.Scopes(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Scopes() = %q, want %q", tt.req, got, tt.want)
		}
	}
	// The list handed out is a copy.
	r := cloakroom.AllScopes("a")
	r.Scopes()[0] = "mutated"
	if r.Scopes()[0] != "a" {
		t.Error("Scopes returned the requirement's own slice")
	}
}

// TestRequirementCopiesArguments: changing the caller's slice later does
// not change the rule.
func TestRequirementCopiesArguments(t *testing.T) {
	t.Parallel()
	roles := []string{"admin"}
	r := cloakroom.AnyRealmRole(roles...)
	roles[0] = "user"
	c := mustClaims(t, `{"realm_access": {"roles": ["user"]}}`)
	if r.Allows(c) || r.String() != `the role "admin"` {
		t.Errorf("requirement followed the caller's slice: %s, %v", r, r.Allows(c))
	}
}

// TestRequirementRolesClaim: role requirements read the same roles as
// Claims.RealmRoles, from the claims' roles claim.
func TestRequirementRolesClaim(t *testing.T) {
	t.Parallel()
	c := mustClaims(t, `{
		"realm_access": {"roles": ["kc-user"]},
		"groups": ["staff", "admin"],
		"role": "editor",
		"urn:zitadel:iam:org:project:roles": {"reader": {"1": "org"}, "writer": {}}
	}`)
	tests := []struct {
		claim string
		roles []string
	}{
		{"", []string{"kc-user"}},
		{cloakroom.DefaultRolesClaim, []string{"kc-user"}},
		{"groups", []string{"staff", "admin"}},
		{"role", []string{"editor"}},
		{"urn:zitadel:iam:org:project:roles", []string{"reader", "writer"}},
		{"missing", nil},
	}
	all := []string{"kc-user", "staff", "admin", "editor", "reader", "writer"}
	for _, tt := range tests {
		cc := c.WithRolesClaim(tt.claim)
		if got := cc.RealmRoles(); !slices.Equal(got, tt.roles) {
			t.Errorf("%q: RealmRoles = %q, want %q", tt.claim, got, tt.roles)
		}
		for _, role := range all {
			want := slices.Contains(tt.roles, role)
			if got := cc.HasRealmRole(role); got != want {
				t.Errorf("%q: HasRealmRole(%q) = %v, want %v", tt.claim, role, got, want)
			}
			if got := cloakroom.AnyRealmRole(role).Allows(cc); got != want {
				t.Errorf("%q: AnyRealmRole(%q) = %v, want %v", tt.claim, role, got, want)
			}
		}
		if len(tt.roles) > 0 && !cloakroom.AllRealmRoles(tt.roles...).Allows(cc) {
			t.Errorf("%q: AllRealmRoles(%q) refuses", tt.claim, tt.roles)
		}
	}
}

func TestMinACR(t *testing.T) {
	t.Parallel()
	ordered := []string{"0", "1", "silver", "gold"}
	tests := []struct {
		levels     []string
		have, want string
		ok         bool
	}{
		{ordered, "gold", "silver", true},
		{ordered, "silver", "gold", false},
		{ordered, "1", "silver", false},
		{ordered, "unknown", "1", false},
		{ordered, "gold", "gold", true},
		{nil, "2", "1", true},
		{nil, "1", "2", false},
		{nil, "0", "1", false},
		{nil, "gold", "gold", true},
		{nil, "", "1", false},
	}
	for _, tt := range tests {
		payload := `{"sub":"x"}`
		if tt.have != "" {
			payload = `{"sub":"x","acr":"` + tt.have + `"}`
		}
		if got := cloakroom.MinACR(tt.want, tt.levels).Allows(mustClaims(t, payload)); got != tt.ok {
			t.Errorf("MinACR(%q, %q) with acr %q = %v", tt.want, tt.levels, tt.have, got)
		}
	}
	// Some providers send acr as a number.
	if !cloakroom.MinACR("1", nil).Allows(mustClaims(t, `{"acr": 2}`)) {
		t.Error("numeric acr 2 does not reach 1")
	}
}

func TestRefusal(t *testing.T) {
	t.Parallel()
	what := cloakroom.AnyRealmRole("admin").String()
	if got, want := cloakroom.Refusal("", what), `This page requires the role "admin".`; got != want {
		t.Errorf("Refusal = %s, want %s", got, want)
	}
	if got, want := cloakroom.Refusal("You are signed in as bob", what), `You are signed in as bob, but this page requires the role "admin".`; got != want {
		t.Errorf("Refusal = %s, want %s", got, want)
	}
}
