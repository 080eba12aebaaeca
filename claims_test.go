package cloakroom

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const keycloakPayload = `{"exp":1790000300,"iat":1790000000,"auth_time":1789999990,"jti":"onrtac:1","iss":"http://kc/realms/demo",
"aud":["cloakroom","account"],"sub":"7c9e6679-7425-40de-944b-e07fc1f90ae7","typ":"Bearer","azp":"cloakroom","sid":"s-1","acr":"1",
"allowed-origins":["http://127.0.0.1:8000"],"realm_access":{"roles":["admin","user"]},
"resource_access":{"account":{"roles":["manage-account","view-profile"]},"cloakroom":{"roles":["editor"]}},
"scope":"openid email profile","email_verified":true,"name":"Alice Liddell","preferred_username":"alice",
"given_name":"Alice","family_name":"Liddell","email":"alice@example.com","groups":["/staff"],
"https://example.com/roles":["x"],"tenant":{"id":"t1","tags":"single"}}`

func TestClaimsAccessors(t *testing.T) {
	t.Parallel()
	c, err := ParseClaims([]byte(keycloakPayload))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"Issuer", c.Issuer(), "http://kc/realms/demo"},
		{"Subject", c.Subject(), "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
		{"Audience", c.Audience(), []string{"cloakroom", "account"}},
		{"HasAudience", c.HasAudience("account"), true},
		{"Expiry", c.Expiry(), time.Unix(1790000300, 0)},
		{"IssuedAt", c.IssuedAt(), time.Unix(1790000000, 0)},
		{"AuthTime", c.AuthTime(), time.Unix(1789999990, 0)},
		{"NotBefore", c.NotBefore().IsZero(), true},
		{"ID", c.ID(), "onrtac:1"},
		{"Type", c.Type(), "Bearer"},
		{"AuthorizedParty", c.AuthorizedParty(), "cloakroom"},
		{"SessionID", c.SessionID(), "s-1"},
		{"ACR", c.ACR(), "1"},
		{"Nonce", c.HasNonce(), false},
		{"Username", c.Username(), "alice"},
		{"Email", c.Email(), "alice@example.com"},
		{"EmailVerified", c.EmailVerified(), true},
		{"Name", c.Name(), "Alice Liddell"},
		{"GivenName", c.GivenName(), "Alice"},
		{"FamilyName", c.FamilyName(), "Liddell"},
		{"Scopes", c.Scopes(), []string{"openid", "email", "profile"}},
		{"HasScope", c.HasScope("email"), true},
		{"HasScope partial", c.HasScope("mail"), false},
		{"RealmRoles", c.RealmRoles(), []string{"admin", "user"}},
		{"HasRealmRole", c.HasRealmRole("admin"), true},
		{"HasRealmRole missing", c.HasRealmRole("root"), false},
		{"ClientRoles", c.ClientRoles("cloakroom"), []string{"editor"}},
		{"HasClientRole", c.HasClientRole("account", "view-profile"), true},
		{"HasClientRole other client", c.HasClientRole("cloakroom", "view-profile"), false},
		{"Strings drf path", c.Strings("resource_access.account.roles"), []string{"manage-account", "view-profile"}},
		{"Strings groups", c.Strings("groups"), []string{"/staff"}},
		{"Strings dotted claim name", c.Strings("https://example.com/roles"), []string{"x"}},
		{"Strings single string", c.Strings("tenant.tags"), []string{"single"}},
		{"Strings missing", c.Strings("nope.nothing"), []string(nil)},
		{"Strings object", c.Strings("tenant"), []string(nil)},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			switch want := tc.want.(type) {
			case []string:
				if !slices.Equal(tc.got.([]string), want) {
					t.Fatalf("got %q, want %q", tc.got, want)
				}
			case time.Time:
				if !tc.got.(time.Time).Equal(want) {
					t.Fatalf("got %v, want %v", tc.got, want)
				}
			default:
				if tc.got != tc.want {
					t.Fatalf("got %v, want %v", tc.got, tc.want)
				}
			}
		})
	}
	if v, ok := c.Lookup("tenant.id"); !ok || v != "t1" {
		t.Fatalf("Lookup(tenant.id) = %v, %v", v, ok)
	}
	var own struct {
		Tenant struct{ ID string } `json:"tenant"`
	}
	if err := c.Decode(&own); err != nil || own.Tenant.ID != "t1" {
		t.Fatalf("Decode = %v, %+v", err, own)
	}
	// Returned slices and maps are copies: the shared Claims stay intact.
	c.RealmRoles()[0] = "mutated"
	c.ResourceAccess()["cloakroom"][0] = "mutated"
	c.Raw()["sub"] = "mutated"
	if !c.HasRealmRole("admin") || !c.HasClientRole("cloakroom", "editor") || c.Raw()["sub"] != c.Subject() {
		t.Fatal("mutating a returned value changed the claims")
	}
}

func TestClaimsFlexibleShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		check   func(*Claims) bool
	}{
		{"aud string", `{"aud":"api"}`, func(c *Claims) bool { return slices.Equal(c.Audience(), []string{"api"}) }},
		{"fractional exp", `{"exp":1790000300.75}`, func(c *Claims) bool { return c.Expiry().Unix() == 1790000300 }},
		{"email_verified string", `{"email_verified":"true"}`, func(c *Claims) bool { return c.EmailVerified() }},
		{"acr number", `{"acr":2}`, func(c *Claims) bool { return c.ACR() == "2" }},
		{"nonce present", `{"nonce":"n"}`, func(c *Claims) bool { return c.HasNonce() && c.Nonce() == "n" }},
		{"null aud", `{"aud":null}`, func(c *Claims) bool { return len(c.Audience()) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseClaims([]byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatal("unexpected value")
			}
		})
	}
}

func TestParseClaimsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"not JSON", `not json`, "not valid JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"duplicate sub", `{"sub":"alice","sub":"admin"}`, `"sub" appears more than once`},
		{"duplicate nested", `{"realm_access":{"roles":[],"roles":["admin"]}}`, "more than once"},
		{"invalid UTF-8", "{\"sub\":\"\xff\"}", "not valid JSON"},
		{"email_verified object", `{"email_verified":{}}`, "email_verified"},
		{"sub number", `{"sub":42}`, `"sub"`},
		{"aud number", `{"aud":42}`, "aud"},
		{"exp string", `{"exp":"tomorrow"}`, "exp"},
		{"exp huge", `{"exp":1e300}`, "exp"},
		{"roles not list", `{"realm_access":{"roles":"admin"}}`, "roles"},
		{"truncated", `{"sub":"a`, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseClaims([]byte(tt.payload))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// Lookup answers the same whether or not it decodes the payload: a
// claim is found however its name is written, and a missing one is
// missing.
func TestLookupWithoutDecoding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		payload, path string
		found         bool
	}{
		{`{"sub":"a","groups":["/g"]}`, "groups", true},
		{`{"sub":"a"}`, "groups", false},
		{`{"sub":"groups"}`, "groups", false},
		{`{"sub":"a","gr\u006fups":["/g"]}`, "groups", true},
		{`{"sub":"a","https://example.com/roles":["r"]}`, "https://example.com/roles", true},
		{`{"sub":"a","https:\/\/example.com\/roles":["r"]}`, "https://example.com/roles", true},
		{`{"sub":"a","resource_access":{"app":{"roles":["x"]}}}`, "resource_access.app.roles", true},
		{`{"sub":"a","resource_access":{"app":{"roles":["x"]}}}`, "resource_access.other.roles", false},
		{`{"sub":"a","xgroups":1,"groupsx":2}`, "groups", false},
	}
	for _, tc := range cases {
		c, err := ParseClaims([]byte(tc.payload))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Lookup(tc.path); ok != tc.found {
			t.Errorf("%s: Lookup(%q) found %v, want %v", tc.payload, tc.path, ok, tc.found)
		}
	}
}

// Decoded roles keep the difference between a missing list and an empty
// one, and each list stays its own after they are packed together.
func TestCompactRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		payload   string
		realm     []string
		account   []string
		resources int
	}{
		{`{}`, nil, nil, 0},
		{`{"realm_access":{"roles":[]}}`, []string{}, nil, 0},
		{`{"realm_access":{}}`, nil, nil, 0},
		{`{"resource_access":{"account":{"roles":[]},"b":{}}}`, nil, []string{}, 2},
		{`{"realm_access":{"roles":["x","y"]},"resource_access":{"z":{"roles":["q"]},"account":{"roles":["v","w"]}}}`, []string{"x", "y"}, []string{"v", "w"}, 2},
	}
	for _, tt := range tests {
		c, err := ParseClaims([]byte(tt.payload))
		if err != nil {
			t.Fatal(err)
		}
		r := c.loadRoles()
		if !reflect.DeepEqual(r.realm, tt.realm) || !reflect.DeepEqual(r.client("account"), tt.account) || len(c.ResourceAccess()) != tt.resources {
			t.Errorf("%s: realm %#v, account %#v, %d clients", tt.payload, r.realm, r.client("account"), len(c.ResourceAccess()))
		}
		if cap(r.realm) != len(r.realm) {
			t.Errorf("%s: realm roles have room to grow into the next list", tt.payload)
		}
		if !slices.IsSortedFunc(r.resource, func(a, b clientRoleList) int { return strings.Compare(a.client, b.client) }) {
			t.Errorf("%s: clients not sorted", tt.payload)
		}
	}
}
