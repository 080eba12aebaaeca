package keycloaktest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// orgDemoRealm is the demo realm with two organizations: alice belongs to
// both, bob (email at example.com, acme's domain) to acme only.
func orgDemoRealm(mapperConf map[string]string) RealmConfig {
	cfg := DemoRealm(DemoClientSecret)
	cfg.OrganizationsEnabled = true
	cfg.Organizations = []OrganizationConfig{
		{ID: "id-acme", Name: "Acme", Alias: "acme", Members: []string{"alice", "bob"},
			Domains: []OrganizationDomainConfig{{Name: "example.com"}}, Attributes: map[string][]string{"tier": {"gold"}}},
		{ID: "id-acme2", Name: "acme2", Members: []string{"alice"}},
		{ID: "id-off", Name: "off", Disabled: true, Members: []string{"bob"}},
	}
	if mapperConf != nil {
		conf := map[string]string{"id.token.claim": "true", "access.token.claim": "true", "introspection.token.claim": "true", "claim.name": "organization"}
		for k, v := range mapperConf {
			conf[k] = v
		}
		cfg.ClientScopes = []ClientScopeConfig{{Name: "organization", Mappers: []MapperConfig{{Name: "organization", Type: mapperOrganization, Config: conf}}}}
	}
	return cfg
}

// TestOrganizationClaimShapes compares the organization claim with what
// Keycloak 26.7.3 issued for the same memberships and mapper settings
// (recorded with scope "openid organization" for bob; alice, in two
// organizations, gets the claim only with organization:* on Keycloak,
// which keycloaktest's scope parsing does not accept yet).
func TestOrganizationClaimShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		conf map[string]string
		want string // bob's claim, JSON; "" absent
	}{
		{"built-in", nil, `["acme"]`},
		{"String multivalued", map[string]string{"jsonType.label": "String", "multivalued": "true"}, `["acme"]`},
		{"not multivalued", map[string]string{"jsonType.label": "String", "multivalued": "false"}, `"acme"`},
		{"JSON", map[string]string{"jsonType.label": "JSON", "multivalued": "true"}, `{"acme":{}}`},
		{"JSON not multivalued", map[string]string{"jsonType.label": "JSON", "multivalued": "false"}, ``},
		{"id", map[string]string{"jsonType.label": "String", "multivalued": "true", "addOrganizationId": "true"}, `{"acme":{"id":"id-acme"}}`},
		{"attributes", map[string]string{"jsonType.label": "String", "multivalued": "true", "addOrganizationAttributes": "true"}, `{"acme":{"tier":["gold"]}}`},
		{"domain alone", map[string]string{"jsonType.label": "String", "multivalued": "true", "addOrganizationDomain": "true"}, `["acme"]`},
		{"everything", map[string]string{"jsonType.label": "JSON", "multivalued": "true", "addOrganizationId": "true",
			"addOrganizationAttributes": "true", "addOrganizationDomain": "true"}, `{"acme":{"domain":"example.com","id":"id-acme","tier":["gold"]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, WithRealm(orgDemoRealm(tc.conf)))
			for _, scope := range []string{"openid organization", "openid"} {
				tok := passwordLogin(t, s, "bob", "bob", scope)
				for _, kind := range []string{"access_token", "id_token"} {
					c := decode(t, tok[kind].(string)).claims
					v, ok := c["organization"]
					want := tc.want
					if scope == "openid" {
						want = ""
					}
					if want == "" {
						if ok {
							t.Errorf("%s %s: organization = %v, want none", scope, kind, v)
						}
						continue
					}
					var w any
					_ = json.Unmarshal([]byte(want), &w)
					if !reflect.DeepEqual(v, w) {
						t.Errorf("%s %s: organization = %#v, want %s", scope, kind, v, want)
					}
				}
			}
			// alice is in two organizations: no claim from a plain
			// "organization" outside the browser.
			if c := decode(t, passwordLogin(t, s, "alice", "alice", "openid organization")["access_token"].(string)).claims; c["organization"] != nil {
				t.Errorf("alice: organization = %v", c["organization"])
			}
		})
	}
}

func TestOrganizationsDisabledNoClaim(t *testing.T) {
	t.Parallel()
	cfg := orgDemoRealm(nil)
	cfg.OrganizationsEnabled = false
	s := NewServer(t, WithRealm(cfg))
	if c := decode(t, passwordLogin(t, s, "bob", "bob", "openid organization")["access_token"].(string)).claims; c["organization"] != nil {
		t.Errorf("organizations off: organization = %v", c["organization"])
	}
}

func TestParseRealmOrganizations(t *testing.T) {
	t.Parallel()
	doc := `{"realm":"orgs","enabled":true,"organizationsEnabled":true,
		"users":[{"username":"carol","enabled":true,"email":"carol@globex.com"}],
		"identityProviders":[{"alias":"globex-idp","providerId":"oidc","enabled":true,"config":{"clientId":"x"}}],
		"organizations":[{"name":"Globex","alias":"globex","domains":[{"name":"globex.com","verified":true}],
			"attributes":{"tier":["silver"]},"members":[{"username":"carol"}],"identityProviders":[{"alias":"globex-idp"}]}]}`
	cfg, err := ParseRealm([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []OrganizationConfig{{Name: "Globex", Alias: "globex", Domains: []OrganizationDomainConfig{{Name: "globex.com", Verified: true}},
		Attributes: map[string][]string{"tier": {"silver"}}, Members: []string{"carol"}, IdentityProviders: []string{"globex-idp"}}}
	if !cfg.OrganizationsEnabled || !reflect.DeepEqual(cfg.Organizations, want) || len(cfg.IdentityProviders) != 1 {
		t.Fatalf("ParseRealm = %v %+v %+v", cfg.OrganizationsEnabled, cfg.Organizations, cfg.IdentityProviders)
	}
	s := NewServer(t, WithRealm(cfg))
	if members, ok := s.Realm("orgs").OrganizationMembers("globex"); !ok || !reflect.DeepEqual(members, []string{"carol"}) {
		t.Errorf("OrganizationMembers = %q, %v", members, ok)
	}
	for _, bad := range []string{
		`{"realm":"x","organizations":[{"alias":"a"}]}`,
		`{"realm":"x","organizations":[{"name":"a","members":[{"username":"ghost"}]}]}`,
		`{"realm":"x","organizations":[{"name":"a","identityProviders":[{"alias":"ghost"}]}]}`,
		`{"realm":"x","organizations":[{"name":"a b"}]}`,
		`{"realm":"x","organizations":[{"name":"a","domains":"a.com"}]}`,
		`{"realm":"x","organizations":[{"name":"a"},{"name":"a"}]}`,
		`{"realm":"x","identityProviders":[{"providerId":"oidc"}]}`,
	} {
		if _, err := ParseRealm([]byte(bad)); err == nil {
			t.Errorf("ParseRealm(%s) accepted", bad)
		}
	}
}
