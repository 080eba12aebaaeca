package keycloaktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The expectations of this file come from Keycloak 26.7.3 (scripts/keycloak.sh),
// with a realm imported through the admin API holding the same client,
// mappers, client scopes, groups and users, tokens from the password grant
// (scope "openid opt-scope") and the userinfo and introspection answers for
// them. "KC:" notes what was observed there beyond the value itself.

var mapAll = map[string]string{"access.token.claim": "true", "id.token.claim": "true", "userinfo.token.claim": "true"}

func mapper(name, typ string, conf ...map[string]string) MapperConfig {
	m := MapperConfig{Name: name, Type: typ, Config: map[string]string{}}
	for _, c := range conf {
		for k, v := range c {
			m.Config[k] = v
		}
	}
	return m
}

func hardcoded(claim, value, typ string, flags map[string]string) MapperConfig {
	return mapper("hc "+claim, mapperHardcodedClaim, map[string]string{"claim.name": claim, "claim.value": value, "jsonType.label": typ}, flags)
}

func attr(claim, attribute, typ string, extra ...map[string]string) MapperConfig {
	return mapper("ua "+claim, mapperUserAttribute, append([]map[string]string{{"claim.name": claim, "user.attribute": attribute, "jsonType.label": typ}, mapAll}, extra...)...)
}

func mapperRealm() RealmConfig {
	multi := map[string]string{"multivalued": "true"}
	aggr := map[string]string{"aggregate.attrs": "true"}
	mappers := []MapperConfig{
		hardcoded("tier", "gold", "String", mapAll),
		hardcoded("n_long", "42", "long", mapAll),
		hardcoded("n_int", "7", "int", mapAll),
		hardcoded("b_true", "true", "boolean", mapAll),
		hardcoded("b_yes", "yes", "boolean", mapAll),
		hardcoded("j", `{"a":[1,2],"b":"c"}`, "JSON", mapAll),
		hardcoded("org.unit.name", "eng", "String", mapAll),
		hardcoded("org.unit.code", "E1", "String", mapAll),
		hardcoded(`a\.b`, "dotted", "String", mapAll),
		hardcoded("noflags", "v", "String", nil),
		hardcoded("id_only", "v", "String", map[string]string{"id.token.claim": "true"}),
		hardcoded("access_false", "v", "String", map[string]string{"access.token.claim": "false", "id.token.claim": "true"}),
		hardcoded("intro_false", "v", "String", map[string]string{"access.token.claim": "true", "introspection.token.claim": "false"}),
		hardcoded("intro_only", "v", "String", map[string]string{"access.token.claim": "false", "introspection.token.claim": "true"}),
		hardcoded("ui_only", "v", "String", map[string]string{"userinfo.token.claim": "true"}),
		hardcoded("bad_long", "abc", "long", mapAll),
		hardcoded("notype", "5", "", map[string]string{"access.token.claim": "true"}),
		hardcoded("empty_val", "", "String", mapAll),
		hardcoded("email", "overridden@example.com", "String", mapAll),
		hardcoded("sub", "nope", "String", mapAll),
		attr("department", "department", "String"),
		attr("tags_multi", "tags", "String", multi),
		attr("tags_single", "tags", "String"),
		attr("dept_multi", "department", "String", multi),
		attr("age", "age", "long"),
		attr("nums", "nums", "int", multi),
		attr("flag", "flag", "boolean"),
		attr("blob", "blob", "JSON"),
		attr("nosuch", "nosuch", "String"),
		attr("ua_username", "username", "String"),
		attr("ua_email", "email", "String"),
		attr("site_aggr", "site", "String", multi, aggr),
		attr("site_noaggr", "site", "String", multi),
		attr("site_aggr_single", "site", "String", aggr),
		attr("gonly_noaggr", "gonly", "String"),
		mapper("gm full", mapperGroups, map[string]string{"claim.name": "groups_full", "full.path": "true"}, mapAll),
		mapper("gm short", mapperGroups, map[string]string{"claim.name": "groups_short", "full.path": "false"}, mapAll),
		mapper("gm nofull", mapperGroups, map[string]string{"claim.name": "groups_nofull"}, mapAll),
		mapper("gm nested", mapperGroups, map[string]string{"claim.name": "g.nested", "full.path": "true"}, mapAll),
		mapper("up email", mapperUserProperty, map[string]string{"claim.name": "p_email", "user.attribute": "email"}, mapAll),
		mapper("up ev", mapperUserProperty, map[string]string{"claim.name": "p_ev", "user.attribute": "emailVerified", "jsonType.label": "boolean"}, mapAll),
		mapper("up ev str", mapperUserProperty, map[string]string{"claim.name": "p_ev_str", "user.attribute": "emailVerified", "jsonType.label": "String"}, mapAll),
		mapper("up enabled", mapperUserProperty, map[string]string{"claim.name": "p_enabled", "user.attribute": "enabled", "jsonType.label": "boolean"}, mapAll),
		mapper("up attr", mapperUserProperty, map[string]string{"claim.name": "p_department", "user.attribute": "department"}, mapAll),
		mapper("rr", mapperRealmRoles, map[string]string{"claim.name": "my_roles", "multivalued": "true"}, mapAll),
		mapper("rr prefix", mapperRealmRoles, map[string]string{"claim.name": "my_roles_prefixed", "multivalued": "true", "usermodel.realmRoleMapping.rolePrefix": "realm:"}, mapAll),
		mapper("cr", mapperClientRoles, map[string]string{"claim.name": "my_client_roles", "multivalued": "true", "usermodel.clientRoleMapping.clientId": "app"}, mapAll),
		mapper("cr all", mapperClientRoles, map[string]string{"claim.name": "all_client_roles", "multivalued": "true"}, mapAll),
		mapper("cr tmpl", mapperClientRoles, map[string]string{"claim.name": "cr.${client_id}.roles", "multivalued": "true", "usermodel.clientRoleMapping.clientId": "app"}, mapAll),
		mapper("aud noflags", mapperAudience, map[string]string{"included.custom.audience": "aud-noflags"}),
		mapper("aud id", mapperAudience, map[string]string{"included.custom.audience": "aud-id", "access.token.claim": "false", "id.token.claim": "true"}),
		mapper("pairwise", "oidc-sha256-pairwise-sub-mapper", map[string]string{"sectorIdentifierUri": ""}),
	}
	return RealmConfig{
		Name:       "mx",
		RealmRoles: []string{"reader", "writer"},
		Groups: []GroupConfig{
			{Name: "staff", Attributes: map[string][]string{"site": {"hq"}, "gonly": {"fromgroup"}}, SubGroups: []GroupConfig{
				{Name: "editors", Attributes: map[string][]string{"site": {"branch"}}, RealmRoles: []string{"writer"}},
			}},
			{Name: "ops", ClientRoles: map[string][]string{"app": {"operator"}}},
		},
		ClientScopes: []ClientScopeConfig{
			{Name: "team", Attributes: map[string]string{"include.in.token.scope": "true"}, Mappers: []MapperConfig{hardcoded("team", "red", "String", mapAll)}},
			{Name: "hidden-scope", Attributes: map[string]string{"include.in.token.scope": "false"}, Mappers: []MapperConfig{hardcoded("hidden", "h", "String", mapAll)}},
			{Name: "noattr-scope", Mappers: []MapperConfig{hardcoded("noattr", "n", "String", mapAll)}},
			{Name: "opt-scope", Mappers: []MapperConfig{hardcoded("opt", "o", "String", mapAll)}},
			{Name: "profile", Mappers: []MapperConfig{hardcoded("profile_extra", "p", "String", mapAll)}},
		},
		Clients: []ClientConfig{{
			ClientID: "app", Secret: "app-secret", DirectAccessGrants: true, Roles: []string{"operator", "viewer"},
			Audiences:      []string{"app"},
			Mappers:        mappers,
			DefaultScopes:  append(slices.Clone(keycloakDefaultScopes), "team", "hidden-scope", "noattr-scope"),
			OptionalScopes: []string{"offline_access", "opt-scope"},
		}, {ClientID: "other", Secret: "other-secret", Roles: []string{"o1"}}},
		Users: []UserConfig{
			{
				Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true, FirstName: "Alice", LastName: "L",
				RealmRoles: []string{"reader"}, ClientRoles: map[string][]string{"app": {"viewer"}, "other": {"o1"}},
				Groups: []string{"/staff/editors", "/ops"},
				Attributes: map[string][]string{"department": {"ops"}, "tags": {"a", "b"}, "age": {"42"}, "nums": {"1", "2"},
					"flag": {"true"}, "blob": {`{"x":1}`}, "site": {"home"}},
			},
			{Username: "bob", Password: "bob", Email: "bob@example.com", FirstName: "Bob", LastName: "B"},
		},
	}
}

// mapped is what one login shows: the access and ID token claims, the
// userinfo answer and the introspection answer.
type mapped map[string]map[string]any

func mapperLogin(t *testing.T, s *Server, user, scope string) mapped {
	t.Helper()
	resp := postForm(t, tokenURL(s, "mx"), url.Values{"grant_type": {"password"}, "username": {user}, "password": {user}, "scope": {scope}}, "app:app-secret")
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", resp.status, resp.body)
	}
	tok := resp.json(t)
	at := tok["access_token"].(string)
	out := mapped{"access": decode(t, at).claims, "id": decode(t, tok["id_token"].(string)).claims}
	req, _ := http.NewRequest(http.MethodGet, s.Issuer("mx")+"/protocol/openid-connect/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	ui := do(t, req)
	if ui.status != http.StatusOK {
		t.Fatalf("userinfo: %d %s", ui.status, ui.body)
	}
	out["userinfo"] = ui.json(t)
	out["introspection"] = postForm(t, s.Issuer("mx")+"/protocol/openid-connect/token/introspect", url.Values{"token": {at}}, "app:app-secret").json(t)
	if out["introspection"]["active"] != true {
		t.Fatalf("introspection: %v", out["introspection"])
	}
	return out
}

func TestProtocolMappers(t *testing.T) {
	s := NewServer(t, WithRealm(mapperRealm()))
	logins := map[string]mapped{
		"alice": mapperLogin(t, s, "alice", "openid opt-scope"),
		"bob":   mapperLogin(t, s, "bob", "openid"),
	}
	const absent = "-"
	// want holds the JSON of the claim in access token, ID token, userinfo
	// and introspection, absent for a missing claim.
	tests := []struct {
		user, claim string
		want        [4]string
		note        string
	}{
		{"alice", "tier", [4]string{`"gold"`, `"gold"`, `"gold"`, `"gold"`}, "hard-coded String"},
		{"alice", "n_long", [4]string{"42", "42", "42", "42"}, "long"},
		{"alice", "n_int", [4]string{"7", "7", "7", "7"}, "int"},
		{"alice", "b_true", [4]string{"true", "true", "true", "true"}, "boolean"},
		{"alice", "b_yes", [4]string{"false", "false", "false", "false"}, `KC: boolean "yes" is false`},
		{"alice", "j", [4]string{`{"a":[1,2],"b":"c"}`, `{"a":[1,2],"b":"c"}`, `{"a":[1,2],"b":"c"}`, `{"a":[1,2],"b":"c"}`}, "JSON"},
		{"alice", "org", [4]string{`{"unit":{"code":"E1","name":"eng"}}`, `{"unit":{"code":"E1","name":"eng"}}`, `{"unit":{"code":"E1","name":"eng"}}`, `{"unit":{"code":"E1","name":"eng"}}`}, "dotted names nest and merge"},
		{"alice", "a.b", [4]string{`"dotted"`, `"dotted"`, `"dotted"`, `"dotted"`}, `KC: a\.b is the claim "a.b"`},
		{"alice", "noflags", [4]string{absent, absent, absent, absent}, "KC: no flags, no claim anywhere"},
		{"alice", "id_only", [4]string{absent, `"v"`, `"v"`, absent}, "KC: absent userinfo flag follows id.token.claim"},
		{"alice", "access_false", [4]string{absent, `"v"`, `"v"`, absent}, "KC: absent introspection flag follows access.token.claim"},
		{"alice", "intro_false", [4]string{`"v"`, absent, absent, absent}, ""},
		{"alice", "intro_only", [4]string{absent, absent, absent, `"v"`}, ""},
		{"alice", "ui_only", [4]string{absent, absent, `"v"`, absent}, ""},
		{"alice", "bad_long", [4]string{absent, absent, absent, absent}, `KC: long "abc" leaves the claim out`},
		{"alice", "notype", [4]string{`"5"`, absent, absent, `"5"`}, "no jsonType.label: String"},
		{"alice", "empty_val", [4]string{absent, absent, absent, absent}, `KC: hard-coded "" leaves the claim out`},
		{"alice", "email", [4]string{`"overridden@example.com"`, `"overridden@example.com"`, `"overridden@example.com"`, `"overridden@example.com"`}, "KC: the client's mapper won over the email scope's"},
		{"alice", "department", [4]string{`"ops"`, `"ops"`, `"ops"`, `"ops"`}, "user attribute"},
		{"alice", "tags_multi", [4]string{`["a","b"]`, `["a","b"]`, `["a","b"]`, `["a","b"]`}, "multivalued"},
		{"alice", "tags_single", [4]string{`"a"`, `"a"`, `"a"`, `"a"`}, "KC: not multivalued, first value"},
		{"alice", "dept_multi", [4]string{`["ops"]`, `["ops"]`, `["ops"]`, `["ops"]`}, "multivalued, one value"},
		{"alice", "age", [4]string{"42", "42", "42", "42"}, ""},
		{"alice", "nums", [4]string{"[1,2]", "[1,2]", "[1,2]", "[1,2]"}, ""},
		{"alice", "flag", [4]string{"true", "true", "true", "true"}, ""},
		{"alice", "blob", [4]string{`{"x":1}`, `{"x":1}`, `{"x":1}`, `{"x":1}`}, ""},
		{"alice", "nosuch", [4]string{absent, absent, absent, absent}, ""},
		{"alice", "ua_username", [4]string{`"alice"`, `"alice"`, `"alice"`, `"alice"`}, "KC: username is an attribute"},
		{"alice", "ua_email", [4]string{`"alice@example.com"`, `"alice@example.com"`, `"alice@example.com"`, `"alice@example.com"`}, ""},
		{"alice", "site_aggr", [4]string{`["hq","branch","home"]`, `["hq","branch","home"]`, `["hq","branch","home"]`, `["hq","branch","home"]`}, "KC: groups and ancestors, HashSet order"},
		{"alice", "site_noaggr", [4]string{`["home"]`, `["home"]`, `["home"]`, `["home"]`}, ""},
		{"alice", "site_aggr_single", [4]string{`"hq"`, `"hq"`, `"hq"`, `"hq"`}, ""},
		{"alice", "gonly_noaggr", [4]string{`"fromgroup"`, `"fromgroup"`, `"fromgroup"`, `"fromgroup"`}, "KC: falls back to the parent group's"},
		{"alice", "groups_full", [4]string{`["/staff/editors","/ops"]`, `["/staff/editors","/ops"]`, `["/staff/editors","/ops"]`, `["/staff/editors","/ops"]`}, "KC: direct groups, by name"},
		{"alice", "groups_short", [4]string{`["editors","ops"]`, `["editors","ops"]`, `["editors","ops"]`, `["editors","ops"]`}, ""},
		{"alice", "groups_nofull", [4]string{`["editors","ops"]`, `["editors","ops"]`, `["editors","ops"]`, `["editors","ops"]`}, "KC: full.path absent is false"},
		{"alice", "g", [4]string{`{"nested":["/staff/editors","/ops"]}`, `{"nested":["/staff/editors","/ops"]}`, `{"nested":["/staff/editors","/ops"]}`, `{"nested":["/staff/editors","/ops"]}`}, ""},
		{"bob", "groups_full", [4]string{absent, absent, absent, absent}, "KC: no groups, no claim"},
		{"alice", "p_email", [4]string{`"alice@example.com"`, `"alice@example.com"`, `"alice@example.com"`, `"alice@example.com"`}, ""},
		{"alice", "p_ev", [4]string{"true", "true", "true", "true"}, ""},
		{"alice", "p_ev_str", [4]string{`"true"`, `"true"`, `"true"`, `"true"`}, ""},
		{"bob", "p_ev", [4]string{"false", "false", "false", "false"}, ""},
		{"alice", "p_enabled", [4]string{"true", "true", "true", "true"}, ""},
		{"alice", "p_department", [4]string{absent, absent, absent, absent}, "KC: the property mapper reads no attributes"},
		// Keycloak lists roles in no stable order; keycloaktest sorts them.
		{"alice", "my_roles", [4]string{`["default-roles-mx","offline_access","reader","uma_authorization","writer"]`, `["default-roles-mx","offline_access","reader","uma_authorization","writer"]`, `["default-roles-mx","offline_access","reader","uma_authorization","writer"]`, `["default-roles-mx","offline_access","reader","uma_authorization","writer"]`}, ""},
		{"alice", "my_roles_prefixed", [4]string{`["realm:default-roles-mx","realm:offline_access","realm:reader","realm:uma_authorization","realm:writer"]`, `["realm:default-roles-mx","realm:offline_access","realm:reader","realm:uma_authorization","realm:writer"]`, `["realm:default-roles-mx","realm:offline_access","realm:reader","realm:uma_authorization","realm:writer"]`, `["realm:default-roles-mx","realm:offline_access","realm:reader","realm:uma_authorization","realm:writer"]`}, ""},
		{"alice", "my_client_roles", [4]string{`["operator","viewer"]`, `["operator","viewer"]`, `["operator","viewer"]`, `["operator","viewer"]`}, ""},
		{"bob", "my_client_roles", [4]string{absent, absent, absent, absent}, "KC: no roles, no claim"},
		{"alice", "cr", [4]string{`{"app":{"roles":["operator","viewer"]}}`, `{"app":{"roles":["operator","viewer"]}}`, `{"app":{"roles":["operator","viewer"]}}`, `{"app":{"roles":["operator","viewer"]}}`}, "KC: ${client_id} is the role's client"},
		{"alice", "team", [4]string{`"red"`, `"red"`, `"red"`, `"red"`}, "default client scope"},
		{"alice", "hidden", [4]string{`"h"`, `"h"`, `"h"`, `"h"`}, "KC: applies though not in the scope claim"},
		{"alice", "noattr", [4]string{`"n"`, `"n"`, `"n"`, `"n"`}, ""},
		{"alice", "opt", [4]string{`"o"`, `"o"`, `"o"`, `"o"`}, "optional scope requested"},
		{"bob", "opt", [4]string{absent, absent, absent, absent}, "optional scope not requested"},
		{"alice", "profile_extra", [4]string{`"p"`, `"p"`, `"p"`, `"p"`}, "mapper added to a built-in scope"},
	}
	targets := []string{"access", "id", "userinfo", "introspection"}
	for _, tt := range tests {
		for i, target := range targets {
			got := absent
			if v, ok := logins[tt.user][target][tt.claim]; ok {
				b, _ := json.Marshal(v)
				got = string(b)
			}
			if got != tt.want[i] {
				t.Errorf("%s %s.%s = %s, want %s (%s)", tt.user, target, tt.claim, got, tt.want[i], tt.note)
			}
		}
	}

	alice := logins["alice"]
	if got := alice["access"]["sub"]; got != alice["userinfo"]["sub"] || got == "nope" {
		t.Errorf("a mapper replaced sub: %v", got)
	}
	// KC: all_client_roles flattens every client's roles.
	var flat []string
	for _, r := range alice["access"]["all_client_roles"].([]any) {
		flat = append(flat, r.(string))
	}
	slices.Sort(flat)
	if want := []string{"manage-account", "manage-account-links", "o1", "operator", "view-profile", "viewer"}; !slices.Equal(flat, want) {
		t.Errorf("all_client_roles = %v, want %v", flat, want)
	}
	// KC: access aud ["app","other","account"] (aud-noflags left out), ID
	// token aud ["app","aud-id"].
	if got := aud(alice["access"]); !slices.Equal(got, []string{"app", "account", "other"}) {
		t.Errorf("access aud = %v", got)
	}
	if got := aud(alice["id"]); !slices.Equal(got, []string{"app", "aud-id"}) {
		t.Errorf("id aud = %v", got)
	}
	// KC: scope claim "openid team opt-scope noattr-scope email profile"
	// (in another order); hidden-scope has include.in.token.scope false,
	// noattr-scope no attribute.
	scope := strings.Fields(alice["access"]["scope"].(string))
	slices.Sort(scope)
	if want := []string{"email", "noattr-scope", "openid", "opt-scope", "profile", "team"}; !slices.Equal(scope, want) {
		t.Errorf("scope = %v, want %v", scope, want)
	}
}

func TestConvertClaim(t *testing.T) {
	for _, tt := range []struct {
		v, typ string
		want   string // JSON, "-" when the value does not convert
	}{
		{"42", "long", "42"}, {"-1", "int", "-1"}, {"3000000000", "int", "-"}, {"3000000000", "long", "3000000000"},
		{"x", "int", "-"}, {"TRUE", "boolean", "true"}, {"1", "boolean", "false"}, {"[1,", "JSON", "-"},
		{"12345678901234567890", "JSON", "12345678901234567890"}, {"s", "String", `"s"`}, {"s", "Other", `"s"`},
	} {
		got := "-"
		if v, ok := convertClaim(tt.v, tt.typ); ok {
			b, _ := json.Marshal(v)
			got = string(b)
		}
		if got != tt.want {
			t.Errorf("convertClaim(%q, %q) = %s, want %s", tt.v, tt.typ, got, tt.want)
		}
	}
	for name, want := range map[string][]string{"a": {"a"}, "a.b.c": {"a", "b", "c"}, `a\.b`: {"a.b"}, `x.a\.b.c`: {"x", "a.b", "c"}} {
		if got := splitClaimName(name); !slices.Equal(got, want) {
			t.Errorf("splitClaimName(%q) = %q, want %q", name, got, want)
		}
	}
}

// A realm file's clientScopes, as Keycloak 26.7.3 imports them: with the
// section present, only its scopes (and offline_access) exist, so the
// client's references to profile and to SAML's role_list are dropped; a
// client without scope lists gets the realm's defaultDefaultClientScopes.
func TestParseRealmClientScopes(t *testing.T) {
	doc := `{"realm":"cs","enabled":true,
	 "clientScopes":[
	  {"name":"team","protocol":"openid-connect","attributes":{"include.in.token.scope":"true"},
	   "protocolMappers":[{"name":"team","protocol":"openid-connect","protocolMapper":"oidc-hardcoded-claim-mapper",
	     "config":{"claim.name":"team","claim.value":"red","jsonType.label":"String","access.token.claim":"true","id.token.claim":true}}]},
	  {"name":"hidden","protocol":"openid-connect","attributes":{"include.in.token.scope":"false"},
	   "protocolMappers":[{"name":"h","protocol":"openid-connect","protocolMapper":"oidc-hardcoded-claim-mapper",
	     "config":{"claim.name":"hidden","claim.value":"h","access.token.claim":"true"}}]},
	  {"name":"email","protocol":"openid-connect","protocolMappers":[
	    {"name":"email","protocol":"openid-connect","protocolMapper":"oidc-usermodel-attribute-mapper","config":{"user.attribute":"email","claim.name":"email"}},
	    {"name":"extra","protocol":"openid-connect","protocolMapper":"oidc-hardcoded-claim-mapper","config":{"claim.name":"extra","claim.value":"x","access.token.claim":"true"}}]},
	  {"name":"role_list","protocol":"saml","protocolMappers":[{"name":"role list","protocol":"saml","protocolMapper":"saml-role-list-mapper","config":{}}]}],
	 "defaultDefaultClientScopes":["team","nosuch"],
	 "clients":[
	  {"clientId":"app","secret":"s","directAccessGrantsEnabled":true,
	   "defaultClientScopes":["profile","email","team","hidden","role_list"],"optionalClientScopes":["offline_access"],
	   "protocolMappers":[
	    {"name":"aud","protocol":"openid-connect","protocolMapper":"oidc-audience-mapper","config":{"included.custom.audience":"api","access.token.claim":"true"}},
	    {"name":"aud-id","protocol":"openid-connect","protocolMapper":"oidc-audience-mapper","config":{"included.custom.audience":"api2","access.token.claim":"true","id.token.claim":"true"}},
	    {"name":"odd","protocol":"openid-connect","protocolMapper":"oidc-something-else","config":{"k":"v"}}]},
	  {"clientId":"plain","secret":"s","directAccessGrantsEnabled":true}],
	 "users":[{"username":"u","enabled":true,"email":"u@example.com","firstName":"U","lastName":"U",
	   "credentials":[{"type":"password","value":"u"}]}]}`
	cfg, err := ParseRealm([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	names := func(scs []ClientScopeConfig) (out []string) {
		for _, sc := range scs {
			out = append(out, sc.Name)
		}
		return out
	}
	if got := names(cfg.ClientScopes); !slices.Equal(got, []string{"team", "hidden", "email"}) {
		t.Fatalf("ClientScopes = %v", got)
	}
	if m := cfg.ClientScopes[0].Mappers[0]; m.Config["id.token.claim"] != "true" || m.Config["claim.value"] != "red" {
		t.Errorf("team mapper config = %v (a JSON boolean is read as Jackson does)", m.Config)
	}
	if ms := cfg.ClientScopes[2].Mappers; len(ms) != 1 || ms[0].Name != "extra" {
		t.Errorf("email scope keeps %v, want only the mapper added to it", ms)
	}
	app, plain := cfg.Clients[0], cfg.Clients[1]
	for _, s := range []string{"profile", "role_list"} {
		if slices.Contains(app.DefaultScopes, s) {
			t.Errorf("DefaultScopes %v keeps %s", app.DefaultScopes, s)
		}
	}
	if !slices.Contains(app.DefaultScopes, "team") || !slices.Contains(app.DefaultScopes, "email") {
		t.Errorf("DefaultScopes = %v", app.DefaultScopes)
	}
	if !slices.Contains(plain.DefaultScopes, "team") || slices.Contains(plain.DefaultScopes, "nosuch") || !slices.Equal(plain.OptionalScopes, []string{"offline_access"}) {
		t.Errorf("plain: default %v optional %v", plain.DefaultScopes, plain.OptionalScopes)
	}
	if !slices.Equal(app.Audiences, []string{"api"}) || len(app.Mappers) != 2 || app.Mappers[0].Name != "aud-id" || app.Mappers[1].Type != "oidc-something-else" {
		t.Errorf("Audiences %v Mappers %v", app.Audiences, app.Mappers)
	}

	s := NewServer(t, WithRealm(cfg))
	resp := postForm(t, tokenURL(s, "cs"), url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"u"}, "scope": {"openid"}}, "app:s")
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", resp.status, resp.body)
	}
	tok := resp.json(t)
	at, id := decode(t, tok["access_token"].(string)).claims, decode(t, tok["id_token"].(string)).claims
	if at["team"] != "red" || at["hidden"] != "h" || at["extra"] != "x" || at["preferred_username"] != nil {
		t.Errorf("access claims %v", at)
	}
	if id["team"] != "red" || id["hidden"] != nil {
		t.Errorf("id claims %v", id)
	}
	if sc := strings.Fields(at["scope"].(string)); slices.Contains(sc, "hidden") || !slices.Contains(sc, "team") {
		t.Errorf("scope %v", sc)
	}
	if got := aud(id); !slices.Equal(got, []string{"app", "api2"}) {
		t.Errorf("id aud %v", got)
	}

	// Export writes the scopes (with Keycloak's built-in ones) and mappers
	// back, and ParseRealm reads the same configuration.
	data, err := s.Realm("cs").Export()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRealm(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(back.ClientScopes); !slices.Equal(got, []string{"email", "team", "hidden"}) {
		t.Errorf("exported ClientScopes = %v", got)
	}
	for _, c := range back.Clients {
		if c.ClientID == "app" && (len(c.Mappers) != 2 || !slices.Contains(c.DefaultScopes, "team")) {
			t.Errorf("exported app: mappers %v scopes %v", c.Mappers, c.DefaultScopes)
		}
	}
}

func TestUnmodelledMapperLogged(t *testing.T) {
	got := unmodelledMappers(
		[]ClientScopeConfig{{Name: "s", Mappers: []MapperConfig{{Name: "full", Type: "oidc-full-name-mapper"}}}},
		[]ClientConfig{{ClientID: "c", Mappers: []MapperConfig{
			{Name: "ok", Type: mapperHardcodedClaim},
			{Name: "Client ID", Type: "oidc-usersessionmodel-note-mapper", Config: map[string]string{"user.session.note": "client_id"}},
		}}})
	if len(got) != 1 || !strings.Contains(got[0], "oidc-full-name-mapper") {
		t.Errorf("unmodelledMappers = %q", got)
	}
}
