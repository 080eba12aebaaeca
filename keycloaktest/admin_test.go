package keycloaktest

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// adminCall makes an admin API request with a bearer token.
func adminCall(t *testing.T, s *Server, method, realm, path, token, body string) response {
	t.Helper()
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, s.URL()+"/admin/realms/"+realm+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, req)
}

func TestAdminAuthorization(t *testing.T) {
	t.Parallel()
	other := RealmConfig{Name: "other", Users: []UserConfig{{Username: "eve", Password: "eve",
		ClientRoles: map[string][]string{realmManagementClientID: {"realm-admin"}}}},
		Clients: []ClientConfig{{ClientID: "app", Public: true, DirectAccessGrants: true}}}
	s := NewServer(t, WithDemoRealm(), WithRealm(other))
	demo := s.Realm("demo")
	sa := demo.MustToken(t, "service-account-"+DemoClientID, DemoClientID)
	alice := demo.MustToken(t, "alice", DemoClientID) // no admin role
	eve := s.Realm("other").MustToken(t, "eve", "app")
	refresh := demo.MustToken(t, "alice", DemoClientID, WithKind(RefreshToken))
	expired := demo.MustToken(t, "service-account-"+DemoClientID, DemoClientID, WithExpired())
	tests := []struct {
		name, method, realm, path, token string
		status                           int
		body                             string
	}{
		{"no token", "GET", "demo", "/users", "", 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"garbage token", "GET", "demo", "/users", "abc.def.ghi", 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"refresh token", "GET", "demo", "/users", refresh, 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"expired token", "GET", "demo", "/users", expired, 401, `{"error":"HTTP 401 Unauthorized"}`},
		{"no admin role", "GET", "demo", "/users", alice, 403, `{"error":"HTTP 403 Forbidden"}`},
		{"admin of another realm", "GET", "demo", "/users", eve, 403, `{"error":"HTTP 403 Forbidden"}`},
		{"admin of its own realm", "GET", "other", "/users/count", eve, 200, `1`},
		{"unknown realm", "GET", "nope", "/users", sa, 404, `{"error":"Realm not found."}`},
		{"bare integer count", "GET", "demo", "/users/count", sa, 200, `2`},
		{"group count object", "GET", "demo", "/groups/count", sa, 200, `{"count":0}`},
		{"unknown path", "GET", "demo", "/nothing-here", sa, 404, `{"error":"Unable to find matching target resource method"}`},
		{"wrong method", "PATCH", "demo", "/users", sa, 405, `{"error":"HTTP 405 Method Not Allowed"}`},
		{"unknown user for a querying caller", "GET", "demo", "/users/nope", sa, 404, `{"error":"User not found"}`},
		{"unknown user for a caller that cannot query", "GET", "demo", "/users/nope", alice, 403, `{"error":"HTTP 403 Forbidden"}`},
		{"unknown group", "GET", "demo", "/groups/nope", sa, 404, `{"error":"Could not find group by id"}`},
		{"missing username", "POST", "demo", "/users", sa, 400, `{"errorMessage":"User name is missing"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"email":"x@example.com"}`
			}
			r := adminCall(t, s, tt.method, tt.realm, tt.path, tt.token, body)
			if r.status != tt.status || strings.TrimSpace(string(r.body)) != tt.body {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

func TestAdminCreateUserShapes(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	demo := s.Realm("demo")
	sa := demo.MustToken(t, "service-account-"+DemoClientID, DemoClientID)
	r := adminCall(t, s, "POST", "demo", "/users", sa, `{"username":"Zed","enabled":true,"credentials":[{"type":"password","value":"zed-pw","temporary":false}],"requiredActions":["VERIFY_EMAIL"]}`)
	id, _ := demo.UserID("zed")
	if r.status != 201 || len(r.body) != 0 || r.header.Get("Location") != s.URL()+"/admin/realms/demo/users/"+id {
		t.Fatalf("create = %d %q Location %q", r.status, r.body, r.header.Get("Location"))
	}
	// Two profile errors come as {"errors":[...]}.
	r = adminCall(t, s, "POST", "demo", "/users", sa, `{"username":"ab","email":"nope"}`)
	m := r.json(t)
	if errs, _ := m["errors"].([]any); r.status != 400 || len(errs) != 2 || m["field"] != nil {
		t.Errorf("two profile errors: %d %s", r.status, r.body)
	}
	// A user created without "enabled" is disabled, as in Keycloak.
	adminCall(t, s, "POST", "demo", "/users", sa, `{"username":"quiet"}`)
	r = adminCall(t, s, "GET", "demo", "/users?username=quiet&exact=true", sa, "")
	if !strings.Contains(string(r.body), `"enabled":false`) {
		t.Errorf("user created without enabled: %s", r.body)
	}
	// Not JSON.
	if r := adminCall(t, s, "PUT", "demo", "/users/"+id, sa, `{"firstName":`); r.status != 400 {
		t.Errorf("bad JSON: %d %s", r.status, r.body)
	}
	// Username is read-only.
	if r := adminCall(t, s, "PUT", "demo", "/users/"+id, sa, `{"username":"other"}`); r.status != 400 || !strings.Contains(string(r.body), "error-user-attribute-read-only") {
		t.Errorf("rename: %d %s", r.status, r.body)
	}
}

func TestRealmFileGroupsAndLinks(t *testing.T) {
	t.Parallel()
	doc := `{"realm":"g","enabled":true,
	  "roles":{"realm":[{"name":"editor"}]},
	  "groups":[{"name":"staff","path":"/staff","attributes":{"floor":["3"]},"subGroups":[
	     {"name":"editors","path":"/staff/editors","realmRoles":["editor"],"clientRoles":{"realm-management":["view-users"]}}]}],
	  "users":[{"username":"ann","enabled":true,"groups":["/staff/editors"],
	     "federatedIdentities":[{"identityProvider":"github","userId":"7","userName":"ann-gh"}]}]}`
	cfg, err := ParseRealm([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Groups) != 1 || cfg.Groups[0].SubGroups[0].Name != "editors" || cfg.Users[0].Groups[0] != "/staff/editors" ||
		cfg.Users[0].FederatedIdentities[0].UserName != "ann-gh" {
		t.Fatalf("parsed %+v", cfg)
	}
	s := NewServer(t, WithRealm(cfg))
	r := s.Realm("g")
	// Group roles reach the member's tokens, and realm-management roles
	// given through a group open the admin API.
	tok := r.MustToken(t, "ann", adminCLIClientID)
	c := decode(t, tok).claims
	if !slices.Contains(anyStrings(c["realm_access"].(map[string]any)["roles"]), "editor") {
		t.Errorf("realm_access %v", c["realm_access"])
	}
	if res := adminCall(t, s, "GET", "g", "/users/count", tok, ""); res.status != 200 || string(res.body) != "1" {
		t.Errorf("admin API through a group role: %d %s", res.status, res.body)
	}
	out, err := r.Export()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"path": "/staff/editors"`, `"/staff/editors"`, `"identityProvider": "github"`, `"floor"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("export lacks %s", want)
		}
	}
	back, err := ParseRealm(out)
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewServer(t, WithRealm(back))
	again, _ := s2.Realm("g").Export()
	if !bytes.Equal(out, again) {
		t.Errorf("export not stable:\n%s\n---\n%s", out, again)
	}
	// Bad references are reported.
	bad := strings.Replace(doc, `"groups":["/staff/editors"]`, `"groups":["/nope"]`, 1)
	if _, err := ParseRealm([]byte(bad)); err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Errorf("unknown group path: %v", err)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestFaultTimes(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	s.SetFault(Fault{Status: 503, Paths: []string{"/certs"}, Times: 2})
	u := s.Issuer("demo") + "/protocol/openid-connect/certs"
	var got []int
	for range 4 {
		got = append(got, get(t, u).status)
	}
	if !slices.Equal(got, []int{503, 503, 200, 200}) {
		t.Errorf("statuses %v", got)
	}
	// Other paths are not counted.
	s.SetFault(Fault{Status: 500, Paths: []string{"/certs"}, Times: 1})
	get(t, s.Issuer("demo")+"/.well-known/openid-configuration")
	if st := get(t, u).status; st != 500 {
		t.Errorf("first matching request: %d", st)
	}
}
