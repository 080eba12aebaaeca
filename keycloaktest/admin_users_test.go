package keycloaktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The expectations here are Keycloak 26.7.3's answers (checked against a
// real server; the admin-users/* observations of interop/conformance).

// rootUser holds realm-admin in the demo realm.
var rootUser = UserConfig{Username: "root", Password: "root", ClientRoles: map[string][]string{realmManagementClientID: {"realm-admin"}}}

// demoWithRoot is the demo realm with rootUser and more users.
func demoWithRoot(more ...UserConfig) Option {
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(append(cfg.Users, rootUser), more...)
	return WithRealm(cfg)
}

// adminSA is a realm-admin token of the demo realm (rootUser).
func adminSA(t *testing.T, s *Server) string {
	t.Helper()
	return s.Realm("demo").MustToken(t, "root", adminCLIClientID)
}

func getUserRep(t *testing.T, s *Server, tok, id, query string) map[string]any {
	t.Helper()
	r := adminCall(t, s, "GET", "demo", "/users/"+id+query, tok, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET user: %d %s", r.status, r.body)
	}
	return r.json(t)
}

func TestAdminUpdateUserProfileSemantics(t *testing.T) {
	t.Parallel()
	s := NewServer(t, demoWithRoot())
	demo := s.Realm("demo")
	tok := adminSA(t, s)
	id, _ := demo.UserID("alice")
	put := func(body string) {
		t.Helper()
		if r := adminCall(t, s, "PUT", "demo", "/users/"+id, tok, body); r.status != http.StatusNoContent {
			t.Fatalf("PUT %s: %d %s", body, r.status, r.body)
		}
	}
	pick := func(m map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	profile := func() string {
		t.Helper()
		b, _ := json.Marshal(pick(getUserRep(t, s, tok, id, ""), "username", "email", "emailVerified", "firstName", "lastName", "enabled", "attributes"))
		return string(b)
	}
	check := func(step, want string) {
		t.Helper()
		if got := profile(); got != want {
			t.Errorf("%s:\n got %s\nwant %s", step, got, want)
		}
	}

	// Without "attributes", what the body leaves out stays; a new email
	// keeps emailVerified (admin-users/after-update-email).
	put(`{"email":"Alice.New@Example.com"}`)
	check("email change", `{"email":"alice.new@example.com","emailVerified":true,"enabled":true,"firstName":"Alice","lastName":"Liddell","username":"alice"}`)
	put(`{"enabled":false}`)
	check("enabled only", `{"email":"alice.new@example.com","emailVerified":true,"enabled":false,"firstName":"Alice","lastName":"Liddell","username":"alice"}`)
	// With "attributes" the body is the whole profile: the email and names
	// it leaves out go, the username and emailVerified stay, an undeclared
	// attribute is dropped (admin-users/after-update-attributes).
	put(`{"attributes":{"dept":["sales"]}}`)
	check("attributes only", `{"emailVerified":true,"enabled":false,"username":"alice"}`)
	// firstName may come inside "attributes"; the root field wins.
	put(`{"lastName":"L","attributes":{"firstName":["B"],"lastName":["X"],"email":["ignored@example.com"]}}`)
	check("names in attributes", `{"emailVerified":true,"enabled":false,"firstName":"B","lastName":"L","username":"alice"}`)
	put(`{"email":"alice@example.com"}`)
	put(`{"email":""}`)
	check("empty email removes it", `{"emailVerified":true,"enabled":false,"firstName":"B","lastName":"L","username":"alice"}`)
	// null is absent; the username may be sent unchanged in any case.
	put(`{"firstName":null,"username":"ALICE","enabled":true}`)
	check("null and same username", `{"emailVerified":true,"enabled":true,"firstName":"B","lastName":"L","username":"alice"}`)

	// Unmanaged attributes, once the policy lets admins edit them, are
	// stored, shown and replaced; ADMIN_VIEW shows them read-only.
	if err := demo.SetUnmanagedAttributePolicy(UnmanagedAttributesEnabled); err != nil {
		t.Fatal(err)
	}
	put(`{"firstName":"B","attributes":{"dept":"sales","floor":["3",""]}}`)
	check("enabled policy", `{"attributes":{"dept":["sales"],"floor":["3"]},"emailVerified":true,"enabled":true,"firstName":"B","username":"alice"}`)
	put(`{"firstName":"B","attributes":{"dept":["ops"]}}`)
	check("replace", `{"attributes":{"dept":["ops"]},"emailVerified":true,"enabled":true,"firstName":"B","username":"alice"}`)
	_ = demo.SetUnmanagedAttributePolicy(UnmanagedAttributesAdminView)
	put(`{"firstName":"B","attributes":{"dept":["x"]}}`)
	check("admin view", `{"attributes":{"dept":["ops"]},"emailVerified":true,"enabled":true,"firstName":"B","username":"alice"}`)
	_ = demo.SetUnmanagedAttributePolicy(UnmanagedAttributesDisabled)
	check("hidden", `{"emailVerified":true,"enabled":true,"firstName":"B","username":"alice"}`)
	// Hidden is not gone: q still finds it, as in Keycloak.
	if r := adminCall(t, s, "GET", "demo", "/users?q=dept:ops", tok, ""); !strings.Contains(string(r.body), `"username":"alice"`) {
		t.Errorf("q on a hidden attribute: %s", r.body)
	}

	// Required actions: unknown ones are dropped, the list replaces.
	put(`{"requiredActions":["NOPE","VERIFY_EMAIL","update_password","CONFIGURE_TOTP","VERIFY_EMAIL"]}`)
	if got := getUserRep(t, s, tok, id, "")["requiredActions"]; !slices.Equal(anyStrings(got), []string{"VERIFY_EMAIL", "CONFIGURE_TOTP"}) {
		t.Errorf("requiredActions %v", got)
	}
	// credentials in a PUT set the password.
	put(`{"credentials":[{"type":"password","value":"new-pw","temporary":false}],"requiredActions":[]}`)
	passwordLogin(t, s, "alice", "new-pw", "")
}

func TestAdminUserErrorBodies(t *testing.T) {
	t.Parallel()
	s := NewServer(t, demoWithRoot())
	tok := adminSA(t, s)
	id, _ := s.Realm("demo").UserID("alice")
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"one error", "POST", "/users", `{"username":"erin","email":"Not-An-Email"}`, 400,
			`{"field":"email","errorMessage":"error-invalid-email","params":["email","not-an-email"]}`},
		{"two errors", "POST", "/users", `{"username":"ab","email":"nope"}`, 400,
			`{"errors":[{"field":"username","errorMessage":"error-invalid-length","params":["username",3,255]},{"field":"email","errorMessage":"error-invalid-email","params":["email","nope"]}]}`},
		{"username characters", "POST", "/users", `{"username":" padded "}`, 400,
			`{"field":"username","errorMessage":"error-username-invalid-character","params":["username"]}`},
		{"username script", "POST", "/users", `{"username":"иван"}`, 400,
			`{"field":"username","errorMessage":"error-username-invalid-character","params":["username"]}`},
		{"blank username", "POST", "/users", `{"username":"  "}`, 400, `{"errorMessage":"User name is missing"}`},
		{"name characters", "POST", "/users", `{"username":"ok1","firstName":"a<b"}`, 400,
			`{"field":"firstName","errorMessage":"error-person-name-invalid-character","params":["firstName"]}`},
		{"too long", "PUT", "/users/" + id, `{"lastName":"` + strings.Repeat("x", 256) + `"}`, 400,
			`{"field":"lastName","errorMessage":"error-invalid-length-too-long","params":["lastName",null,255]}`},
		{"multivalued", "PUT", "/users/" + id, `{"attributes":{"firstName":["B","C"]}}`, 400,
			`{"field":"firstName","errorMessage":"error-invalid-multivalued-size","params":["firstName",0,1]}`},
		{"rename", "PUT", "/users/" + id, `{"username":"zz"}`, 400,
			`{"errors":[{"field":"username","errorMessage":"error-user-attribute-read-only","params":["username"]},{"field":"username","errorMessage":"error-invalid-length","params":["username",3,255]}]}`},
		{"rename to a taken name", "PUT", "/users/" + id, `{"username":"bob"}`, 409, `{"errorMessage":"User exists with same username"}`},
		{"taken email", "PUT", "/users/" + id, `{"email":"BOB@example.com","firstName":"<"}`, 409, `{"errorMessage":"User exists with same email"}`},
		{"not JSON", "PUT", "/users/" + id, `{not json`, 400, `{"error":"invalid_request","error_description":"Cannot parse the JSON"}`},
		{"wrong shape", "PUT", "/users/" + id, `[1,2]`, 400, `{"error":"unknown_error","error_description":"Cannot parse the JSON"}`},
		{"wrong member type", "PUT", "/users/" + id, `{"requiredActions":"VERIFY_EMAIL"}`, 400, `{"error":"unknown_error","error_description":"Cannot parse the JSON"}`},
		{"unknown member", "PUT", "/users/" + id, `{"email":"alice@example.com","extra":1}`, 400,
			`{"error":"Invalid json representation for UserRepresentation. Unrecognized field \"extra\" at line 1 column 39."}`},
		{"unknown member, string value", "PUT", "/users/" + id, "{\n  \"enabled\": true,\n  \"extra\": \"x\"\n}", 400,
			`{"error":"Invalid json representation for UserRepresentation. Unrecognized field \"extra\" at line 3 column 13."}`},
		{"unknown nested member", "PUT", "/users/" + id, `{"credentials":[{"type":"password","foo":1}]}`, 400,
			`{"error":"Invalid json representation for CredentialRepresentation. Unrecognized field \"foo\" at line 1 column 43."}`},
		{"null body", "PUT", "/users/" + id, `null`, 400, `{"errorMessage":"Could not update user!"}`},
		{"null body create", "POST", "/users", `null`, 500, `{"error":"unknown_error","error_description":"For more on this error consult the server log."}`},
		{"unknown group", "POST", "/users", `{"username":"gina","groups":["/nope"]}`, 500, `{"error":"unknown_error","error_description":"For more on this error consult the server log."}`},
		{"no password", "PUT", "/users/" + id + "/reset-password", `{"type":"password"}`, 400, `{"error":"No password provided"}`},
		{"blank password", "PUT", "/users/" + id + "/reset-password", `{"type":"password","value":"  "}`, 400, `{"error":"Empty password not allowed"}`},
		{"reset not JSON", "PUT", "/users/" + id + "/reset-password", `{not`, 400, `{"error":"invalid_request","error_description":"Cannot parse the JSON"}`},
		{"actions not a list", "PUT", "/users/" + id + "/execute-actions-email", `{not`, 400, `{"error":"unknown_error","error_description":"Cannot parse the JSON"}`},
		{"Jackson leniency", "PUT", "/users/" + id, `{"emailVerified":"true","enabled":1} trailing`, 204, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := adminCall(t, s, tt.method, "demo", tt.path, tok, tt.body)
			if r.status != tt.status || !jsonEqual(string(r.body), tt.want) {
				t.Errorf("%s %s %s\n = %d %s\nwant %d %s", tt.method, tt.path, tt.body, r.status, r.body, tt.status, tt.want)
			}
		})
	}
}

func jsonEqual(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func TestAdminUserRepresentations(t *testing.T) {
	t.Parallel()
	viewer := UserConfig{Username: "vera", Password: "vera", ClientRoles: map[string][]string{realmManagementClientID: {"view-users"}}}
	querier := UserConfig{Username: "quinn", Password: "quinn", ClientRoles: map[string][]string{realmManagementClientID: {"query-users"}}}
	s := NewServer(t, demoWithRoot(viewer, querier))
	demo := s.Realm("demo")
	tok := adminSA(t, s)
	id, _ := demo.UserID("alice")

	// Lists say only whether the caller may manage the user; GET /users/{id}
	// says everything.
	list := adminCall(t, s, "GET", "demo", "/users?username=alice&exact=true", tok, "")
	var users []map[string]any
	_ = json.Unmarshal(list.body, &users)
	if len(users) != 1 || !jsonEqual(mustJSON(users[0]["access"]), `{"manage":true}`) || users[0]["userProfileMetadata"] != nil {
		t.Errorf("list: %s", list.body)
	}
	one := getUserRep(t, s, tok, id, "")
	if !jsonEqual(mustJSON(one["access"]), `{"view":true,"manage":true,"manageGroupMembership":true,"mapRoles":true,"impersonate":true,"resetPassword":true}`) ||
		one["userProfileMetadata"] != nil || !jsonEqual(mustJSON(one["disableableCredentialTypes"]), `[]`) {
		t.Errorf("single: %v", one)
	}
	// userProfileMetadata only when asked for, with the username read-only.
	meta, _ := getUserRep(t, s, tok, id, "?userProfileMetadata=true")["userProfileMetadata"].(map[string]any)
	attrs, _ := meta["attributes"].([]any)
	if len(attrs) != 4 {
		t.Fatalf("metadata %v", meta)
	}
	if u := attrs[0].(map[string]any); u["name"] != "username" || u["readOnly"] != true || u["required"] != true ||
		!jsonEqual(mustJSON(u["validators"]), `{"multivalued":{"max":"1"},"length":{"min":3,"max":255,"ignore.empty.value":true},"username-prohibited-characters":{"ignore.empty.value":true},"up-username-not-idn-homograph":{"ignore.empty.value":true}}`) {
		t.Errorf("username metadata %v", u)
	}
	if e := attrs[1].(map[string]any); e["name"] != "email" || e["readOnly"] != false || e["required"] != false || e["displayName"] != "${email}" {
		t.Errorf("email metadata %v", e)
	}
	if r := adminCall(t, s, "GET", "demo", "/users/profile/metadata", tok, ""); !strings.Contains(string(r.body), `"name":"username","displayName":"${username}","required":true,"readOnly":false`) {
		t.Errorf("profile metadata: %s", r.body)
	}

	vtok := demo.MustToken(t, "vera", adminCLIClientID)
	if got := getUserRep(t, s, vtok, id, "")["access"]; !jsonEqual(mustJSON(got), `{"view":true,"manage":false,"manageGroupMembership":false,"mapRoles":false,"impersonate":false,"resetPassword":false}`) {
		t.Errorf("viewer access %v", got)
	}
	// query-users alone: an empty list, but the full count.
	qtok := demo.MustToken(t, "quinn", adminCLIClientID)
	if r := adminCall(t, s, "GET", "demo", "/users", qtok, ""); string(r.body) != "[]" {
		t.Errorf("querier list %s", r.body)
	}
	if r := adminCall(t, s, "GET", "demo", "/users/count", qtok, ""); string(r.body) != "5" {
		t.Errorf("querier count %s", r.body)
	}
	if r := adminCall(t, s, "GET", "demo", "/users/count?search=id:"+id, qtok, ""); string(r.body) != "0" {
		t.Errorf("querier id count %s", r.body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAdminUserProfileConfig(t *testing.T) {
	t.Parallel()
	s := NewServer(t, demoWithRoot())
	demo := s.Realm("demo")
	tok := adminSA(t, s)
	id, _ := demo.UserID("alice")
	r := adminCall(t, s, "GET", "demo", "/users/profile", tok, "")
	if r.status != 200 || !jsonEqual(string(r.body), strings.ReplaceAll(defaultUserProfile, "\n", "")) {
		t.Fatalf("default profile: %d %s", r.status, r.body)
	}
	for body, want := range map[string]string{
		`{"attributes":[]}`: `{"errorMessage":"[The attribute 'username' can not be removed, The attribute 'email' can not be removed]"}`,
		`{"attributes":[{"name":"username"},{"name":"email"}],"unmanagedAttributePolicy":"BOGUS"}`: `{"error":"unknown_error","error_description":"Cannot parse the JSON"}`,
		`{not`: `{"error":"invalid_request","error_description":"Cannot parse the JSON"}`,
	} {
		if r := adminCall(t, s, "PUT", "demo", "/users/profile", tok, body); r.status != 400 || !jsonEqual(string(r.body), want) {
			t.Errorf("PUT profile %s = %d %s", body, r.status, r.body)
		}
	}
	// A declared attribute: admins edit it, its validators and required
	// apply, and it shows in the metadata; permissions come normalized.
	cfg := `{"attributes":[{"name":"username"},{"name":"email"},
	  {"name":"firstName","permissions":{"view":["admin"],"edit":["admin"]}},
	  {"name":"lastName","permissions":{"view":["admin"],"edit":["user"]}},
	  {"name":"dept","displayName":"Department","permissions":{"edit":["admin"]},"required":{"roles":["admin"]},
	   "validations":{"options":{"options":["sales","ops"]}}}]}`
	r = adminCall(t, s, "PUT", "demo", "/users/profile", tok, cfg)
	if r.status != 200 || !strings.Contains(string(r.body), `"permissions":{"view":[],"edit":["admin"]}`) || !strings.Contains(string(r.body), `"groups":[]`) {
		t.Fatalf("PUT profile: %d %s", r.status, r.body)
	}
	put := func(body string) response { return adminCall(t, s, "PUT", "demo", "/users/"+id, tok, body) }
	if r := put(`{"firstName":"A"}`); r.status != 400 || !jsonEqual(string(r.body), `{"field":"dept","errorMessage":"error-user-attribute-required","params":["dept"]}`) {
		t.Errorf("required: %d %s", r.status, r.body)
	}
	if r := put(`{"attributes":{"dept":["hr"]}}`); r.status != 400 || !jsonEqual(string(r.body), `{"field":"dept","errorMessage":"error-invalid-value","params":["dept"]}`) {
		t.Errorf("options: %d %s", r.status, r.body)
	}
	if r := put(`{"lastName":"Other","attributes":{"dept":["ops"]}}`); r.status != 400 || !jsonEqual(string(r.body), `{"field":"lastName","errorMessage":"error-user-attribute-read-only","params":["lastName"]}`) {
		t.Errorf("read-only: %d %s", r.status, r.body)
	}
	if r := put(`{"attributes":{"dept":["ops"]}}`); r.status != 204 {
		t.Fatalf("valid update: %d %s", r.status, r.body)
	}
	u := getUserRep(t, s, tok, id, "?userProfileMetadata=true")
	// lastName is kept (admins may only view it); firstName, editable and
	// left out, is removed; email is too.
	if u["lastName"] != "Liddell" || u["firstName"] != nil || u["email"] != nil || !jsonEqual(mustJSON(u["attributes"]), `{"dept":["ops"]}`) {
		t.Errorf("after update: %v", u)
	}
	byName := map[string]string{}
	for _, a := range u["userProfileMetadata"].(map[string]any)["attributes"].([]any) {
		byName[a.(map[string]any)["name"].(string)] = mustJSON(a)
	}
	if !jsonEqual(byName["dept"], `{"name":"dept","displayName":"Department","required":true,"readOnly":false,"validators":{"multivalued":{"max":"1"},"options":{"options":["sales","ops"],"ignore.empty.value":true}},"multivalued":false}`) ||
		!jsonEqual(byName["lastName"], `{"name":"lastName","displayName":"lastName","required":false,"readOnly":true,"validators":{"multivalued":{"max":"1"}},"multivalued":false}`) {
		t.Errorf("metadata %v", byName)
	}
	// The same through Go.
	if err := demo.SetUserProfile([]byte(`{"attributes":[{"name":"username"}]}`)); err == nil {
		t.Error("SetUserProfile without email")
	}
	if err := demo.SetUserProfile([]byte(defaultUserProfile)); err != nil || !jsonEqual(string(demo.UserProfile()), strings.ReplaceAll(defaultUserProfile, "\n", "")) {
		t.Errorf("SetUserProfile: %v %s", err, demo.UserProfile())
	}
}

func TestAdminCredentials(t *testing.T) {
	t.Parallel()
	s := NewServer(t, demoWithRoot(UserConfig{Username: "otto", Password: "otto", TOTPSecret: "JBSWY3DPEHPK3PXP"}))
	demo := s.Realm("demo")
	tok := adminSA(t, s)
	creds := func(id string) []map[string]any {
		t.Helper()
		r := adminCall(t, s, "GET", "demo", "/users/"+id+"/credentials", tok, "")
		var out []map[string]any
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
			t.Fatalf("credentials: %d %s", r.status, r.body)
		}
		return out
	}
	otto, _ := demo.UserID("otto")
	list := creds(otto)
	if len(list) != 2 || list[0]["type"] != "password" || list[1]["type"] != "otp" ||
		!slices.Equal(keysOf(list[0]), []string{"createdDate", "credentialData", "id", "type"}) ||
		list[0]["credentialData"] != argon2CredentialData ||
		list[1]["credentialData"] != `{"subType":"totp","digits":6,"counter":0,"period":30,"algorithm":"HmacSHA1"}` {
		t.Fatalf("otto's credentials %v", list)
	}
	if u := getUserRep(t, s, tok, otto, ""); u["totp"] != true || !jsonEqual(mustJSON(u["disableableCredentialTypes"]), `[]`) {
		t.Errorf("otto %v", u)
	}
	// Stable ids; a label; deleting the OTP credential.
	if again := creds(otto); again[0]["id"] != list[0]["id"] || again[1]["id"] != list[1]["id"] {
		t.Errorf("ids changed: %v then %v", list, again)
	}
	otp := list[1]["id"].(string)
	if r := adminCall(t, s, "PUT", "demo", "/users/"+otto+"/credentials/"+otp+"/userLabel", tok, "phone"); r.status != 204 {
		t.Errorf("label: %d %s", r.status, r.body)
	}
	if l := creds(otto); l[1]["userLabel"] != "phone" {
		t.Errorf("label not shown: %v", l)
	}
	if r := adminCall(t, s, "DELETE", "demo", "/users/"+otto+"/credentials/"+otp, tok, ""); r.status != 204 {
		t.Errorf("delete otp: %d %s", r.status, r.body)
	}
	if r := adminCall(t, s, "DELETE", "demo", "/users/"+otto+"/credentials/"+otp, tok, ""); r.status != 404 || !jsonEqual(string(r.body), `{"error":"Credential not found"}`) {
		t.Errorf("delete again: %d %s", r.status, r.body)
	}
	if u := getUserRep(t, s, tok, otto, ""); u["totp"] != false || len(creds(otto)) != 1 {
		t.Errorf("after deleting otp: %v", u)
	}
	// A reset password keeps the credential id and dates it anew; deleting
	// the password credential ends password logins.
	pw := list[0]["id"].(string)
	if r := adminCall(t, s, "PUT", "demo", "/users/"+otto+"/reset-password", tok, `{"type":"otp","value":"otto-2"}`); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if l := creds(otto); l[0]["id"] != pw || l[0]["createdDate"].(float64) < list[0]["createdDate"].(float64) {
		t.Errorf("after reset %v", l)
	}
	if r := adminCall(t, s, "DELETE", "demo", "/users/"+otto+"/credentials/"+pw, tok, ""); r.status != 204 {
		t.Errorf("delete password: %d %s", r.status, r.body)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"otto"}, "password": {"otto-2"}}
	if r := postForm(t, tokenURL(s, "demo"), form, DemoClientID+":"+DemoClientSecret); r.status == http.StatusOK || !strings.Contains(string(r.body), "invalid_grant") {
		t.Errorf("login without a password credential: %d %s", r.status, r.body)
	}
	if l := creds(otto); len(l) != 0 {
		t.Errorf("credentials left %v", l)
	}

	// Hashed credentials in POST /users, as migrations send them.
	body := `{"username":"mig","enabled":true,"credentials":[{"type":"password",
	  "secretData":"{\"value\":\"Yq7oq3Dp1NhWkUbtJcvuX8oSqGwz1p0nUvEjWj0n0vA=\",\"salt\":\"c2FsdHNhbHRzYWx0c2FsdA==\",\"additionalParameters\":{}}",
	  "credentialData":"{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\",\"additionalParameters\":{}}"}]}`
	if r := adminCall(t, s, "POST", "demo", "/users", tok, body); r.status != 201 {
		t.Fatalf("hashed create: %d %s", r.status, r.body)
	}
	mig, _ := demo.UserID("mig")
	if l := creds(mig); len(l) != 1 || l[0]["credentialData"] != `{"hashIterations":27500,"algorithm":"pbkdf2-sha256","additionalParameters":{}}` {
		t.Errorf("hashed credential %v", l)
	}
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
