package cloakroom_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/cloakroom/cloakroom"
)

// orgClaimShapes are the organization claims Keycloak 26.7.3 wrote for a
// user in the organizations "acme" (attribute tier=gold, domain acme.com
// matching the user's email) and "acme2", per mapper configuration.
var orgClaimShapes = []struct {
	name    string
	payload string
	want    []string
	acme    cloakroom.OrganizationClaim
}{
	{"absent", `{"sub":"u"}`, nil, cloakroom.OrganizationClaim{}},
	{"default list", `{"organization":["acme","acme2"]}`, []string{"acme", "acme2"}, cloakroom.OrganizationClaim{Alias: "acme"}},
	{"single string (not multivalued)", `{"organization":"acme"}`, []string{"acme"}, cloakroom.OrganizationClaim{Alias: "acme"}},
	{"JSON type, empty objects", `{"organization":{"acme2":{},"acme":{}}}`, []string{"acme", "acme2"}, cloakroom.OrganizationClaim{Alias: "acme"}},
	{"id, attributes and domain", `{"organization":{"acme":{"tier":["gold"],"id":"2fbd39d8","domain":"acme.com"},"acme2":{"id":"e60a"}}}`,
		[]string{"acme", "acme2"},
		cloakroom.OrganizationClaim{Alias: "acme", ID: "2fbd39d8", Domain: "acme.com", Attributes: map[string][]string{"tier": {"gold"}}}},
	{"junk entries skipped", `{"organization":["acme",1,null,"",{"x":1},"acme"]}`, []string{"acme"}, cloakroom.OrganizationClaim{Alias: "acme"}},
	{"object with odd details", `{"organization":{"acme":{"id":7,"tier":"gold","n":3},"b":"x"}}`, []string{"acme", "b"},
		cloakroom.OrganizationClaim{Alias: "acme", Attributes: map[string][]string{"tier": {"gold"}}}},
	{"wrong type", `{"organization":42}`, nil, cloakroom.OrganizationClaim{}},
	{"null", `{"organization":null}`, nil, cloakroom.OrganizationClaim{}},
}

func TestOrganizations(t *testing.T) {
	t.Parallel()
	for _, tc := range orgClaimShapes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := cloakroom.ParseClaims([]byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Organizations(); !slices.Equal(got, tc.want) {
				t.Errorf("Organizations() = %q, want %q", got, tc.want)
			}
			got, ok := c.Organization("acme")
			if ok != (tc.acme.Alias != "") || !reflect.DeepEqual(got, tc.acme) {
				t.Errorf("Organization(acme) = %+v, %v; want %+v", got, ok, tc.acme)
			}
			if c.InOrganization("acme") != ok || c.InOrganization("") || c.InOrganization("ACME") {
				t.Errorf("InOrganization disagrees with Organization")
			}
			member := cloakroom.MemberOf("globex", "acme")
			if member.Allows(c) != ok {
				t.Errorf("MemberOf(globex, acme).Allows = %v, want %v", member.Allows(c), ok)
			}
		})
	}
}

func TestMemberOf(t *testing.T) {
	t.Parallel()
	c, _ := cloakroom.ParseClaims([]byte(`{"organization":["acme"]}`))
	for _, tc := range []struct {
		req   cloakroom.Requirement
		allow bool
		what  string
	}{
		{cloakroom.MemberOf("acme"), true, `membership of the organization "acme"`},
		{cloakroom.MemberOf("globex", "acme"), true, `membership of the organization "globex" or "acme"`},
		{cloakroom.MemberOf("globex"), false, `membership of the organization "globex"`},
		{cloakroom.MemberOf(), false, `membership of an organization, but none is configured`},
		{cloakroom.AllOf(cloakroom.MemberOf("acme"), cloakroom.AnyScope("organization")), false,
			`membership of the organization "acme" and the scope "organization"`},
	} {
		if got := tc.req.Allows(c); got != tc.allow {
			t.Errorf("%s: Allows = %v", tc.what, got)
		}
		if tc.req.String() != tc.what {
			t.Errorf("String() = %q, want %q", tc.req.String(), tc.what)
		}
		if tc.req.Allows(nil) {
			t.Errorf("%s allows nil claims", tc.what)
		}
	}
}

// FuzzOrganizationClaim feeds arbitrary organization claim values to the
// accessors: they must not panic, and Organizations, Organization and
// MemberOf must agree.
func FuzzOrganizationClaim(f *testing.F) {
	for _, tc := range orgClaimShapes {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.payload), &m); err == nil && m["organization"] != nil {
			f.Add(string(m["organization"]))
		}
	}
	f.Add(`{"a":{"id":["x"],"domain":{},"":{}}}`)
	f.Add(`[[["acme"]]]`)
	f.Fuzz(func(t *testing.T, claim string) {
		c, err := cloakroom.ParseClaims([]byte(`{"sub":"u","organization":` + claim + `}`))
		if err != nil {
			return
		}
		aliases := c.Organizations()
		if !slices.IsSorted(aliases) || len(slices.Compact(slices.Clone(aliases))) != len(aliases) {
			t.Fatalf("Organizations() = %q: not sorted and distinct", aliases)
		}
		for _, a := range aliases {
			o, ok := c.Organization(a)
			if !ok || o.Alias != a || a == "" {
				t.Fatalf("Organization(%q) = %+v, %v", a, o, ok)
			}
			if !cloakroom.MemberOf(a).Allows(c) {
				t.Fatalf("MemberOf(%q) refuses claims naming it", a)
			}
		}
	})
}

// Keycloak 26 puts the organizations a user belongs to in the
// organization claim (scope "organization"): a list of aliases by
// default, an object with details when the mapper adds them. MemberOf is
// a Requirement like any other, for bearer.Require and login's Require.
func ExampleMemberOf() {
	list, _ := cloakroom.ParseClaims([]byte(`{"sub":"a1","organization":["acme"]}`))
	detailed, _ := cloakroom.ParseClaims([]byte(`{"sub":"b2",
		"organization":{"globex":{"id":"5785969d","tier":["silver"]}}}`))

	acmeOnly := cloakroom.MemberOf("acme")
	fmt.Println(list.Organizations(), acmeOnly.Allows(list))
	fmt.Println(detailed.Organizations(), acmeOnly.Allows(detailed))
	g, _ := detailed.Organization("globex")
	fmt.Println(g.ID, g.Attributes["tier"])
	fmt.Println(cloakroom.Refusal("You are signed in as b2", acmeOnly.String()))
	// Output:
	// [acme] true
	// [globex] false
	// 5785969d [silver]
	// You are signed in as b2, but this page requires membership of the organization "acme".
}
