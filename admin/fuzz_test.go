package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// errorSeeds are the error bodies the Admin REST API sends (protocol doc
// 6.4) and some garbage.
var errorSeeds = []struct {
	status int
	body   string
}{
	{401, `{"error":"HTTP 401 Unauthorized"}`},
	{403, `{"error":"HTTP 403 Forbidden"}`},
	{404, `{"error":"User not found"}`},
	{404, `{"error":"Sesssion not found"}`},
	{409, `{"errorMessage":"User exists with same username"}`},
	{409, `{"errorMessage":"User exists with same email"}`},
	{409, `{"errorMessage":"User exists with same username or email"}`},
	{400, `{"field":"email","errorMessage":"error-invalid-email","params":["email","x@"],"errors":[{"field":"email","errorMessage":"error-invalid-email","params":["email","x@"]}]}`},
	{400, `{"errors":[{"field":"username","errorMessage":"error-invalid-length","params":["username",3,255]},{"field":"email","errorMessage":"error-invalid-email","params":["email"]}]}`},
	{500, `{"error":"unknown_error","error_description":"For more on this error consult the server log."}`},
	{502, `<html><body>Bad gateway</body></html>`},
	{400, `{"error":`},
	{400, `[1,2,3]`},
	{400, `{"error":123,"errorMessage":null,"params":"x"}`},
	{400, "{\"errorMessage\":\"line1\\nforged log line\\u0000\"}"},
	{503, ``},
}

func TestDecodeError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		i       int
		want    error
		code    string
		msg     string
		field   string
		params  []string
		nErrors int
	}{
		{i: 0, want: ErrUnauthorized, code: "HTTP 401 Unauthorized"},
		{i: 1, want: ErrForbidden, code: "HTTP 403 Forbidden"},
		{i: 2, want: ErrNotFound, code: "User not found"},
		{i: 4, want: ErrDuplicateUsername, msg: "User exists with same username"},
		{i: 5, want: ErrDuplicateEmail, msg: "User exists with same email"},
		{i: 6, want: ErrConflict, msg: "User exists with same username or email"},
		{i: 7, want: ErrBadRequest, msg: "error-invalid-email", field: "email", params: []string{"email", "x@"}, nErrors: 1},
		{i: 8, want: ErrBadRequest, msg: "error-invalid-length", field: "username", params: []string{"username", "3", "255"}, nErrors: 2},
		{i: 9, want: ErrServer, code: "unknown_error", msg: "For more on this error consult the server log."},
		{i: 10, want: ErrServer, msg: "unexpected error body (37 bytes, not a JSON object)"},
		{i: 11, want: ErrBadRequest, msg: "unexpected error body (9 bytes, not valid JSON)"},
		{i: 14, want: ErrBadRequest, msg: "line1 forged log line "},
		{i: 15, want: ErrServer},
	}
	for _, tt := range tests {
		s := errorSeeds[tt.i]
		e := DecodeError(s.status, http.MethodGet, "/admin/realms/demo/users", []byte(s.body))
		if !errors.Is(e, tt.want) || e.Code != tt.code || e.Message != tt.msg || e.Field != tt.field ||
			strings.Join(e.Params, ",") != strings.Join(tt.params, ",") || len(e.Errors) != tt.nErrors {
			t.Errorf("seed %d: %+v (want %v)", tt.i, e, tt.want)
		}
		if tt.want == ErrConflict && (errors.Is(e, ErrDuplicateUsername) || errors.Is(e, ErrDuplicateEmail)) {
			t.Errorf("seed %d: the ambiguous %q matches a specific duplicate sentinel", tt.i, e.Message)
		}
	}
}

// FuzzDecodeError: any body gives an *APIError with the status, bounded
// printable strings, and no panic.
func FuzzDecodeError(f *testing.F) {
	for _, s := range errorSeeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := DecodeError(status, http.MethodPut, "/admin/realms/demo/users/x", body)
		if e.Status != status {
			t.Fatalf("status %d", e.Status)
		}
		msg := e.Error()
		if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\r\x00") {
			t.Fatalf("message not clean: %q", msg)
		}
		for _, s := range append([]string{e.Code, e.Message, e.Field}, e.Params...) {
			if len(s) > maxErrorText+len("…") {
				t.Fatalf("unbounded string of %d bytes", len(s))
			}
		}
	})
}

var userSeeds = []string{
	`{"id":"0f1e","username":"alice","email":"alice@example.com","firstName":"Alice","lastName":"Liddell","emailVerified":true,"enabled":true,"createdTimestamp":1700000000000,"attributes":{"team":["a","b"]},"requiredActions":["UPDATE_PASSWORD"],"totp":false,"disableableCredentialTypes":[],"notBefore":0,"access":{"view":true,"manage":true}}`,
	`{"id":"x","username":"sa","enabled":true,"serviceAccountClientId":"cloakroom","federatedIdentities":[{"identityProvider":"github","userId":"1","userName":"a"}],"unknownField":{"nested":[1,2]}}`,
	`{"id":"x","username":"u","attributes":null,"federationLink":"ldap-1","userProfileMetadata":{"attributes":[]}}`,
	`{"id":1}`,
	`{"id":"x"} trailing`,
	`not json`,
	``,
	`[{"id":"x"}]`,
	`{"createdTimestamp":"yesterday"}`,
}

func TestDecodeUser(t *testing.T) {
	t.Parallel()
	for i, seed := range userSeeds {
		var u User
		err := decodeJSON([]byte(seed), &u)
		if wantOK := i < 3; (err == nil) != wantOK {
			t.Errorf("seed %d: err = %v", i, err)
		}
	}
	var u User
	if err := decodeJSON([]byte(userSeeds[0]), &u); err != nil || u.Username != "alice" || u.Created().UnixMilli() != 1700000000000 || u.Attributes["team"][1] != "b" {
		t.Errorf("user %+v, %v", u, err)
	}
	err := decodeJSON([]byte(userSeeds[8]), &u)
	if err == nil || !strings.Contains(err.Error(), "createdTimestamp") {
		t.Errorf("type error does not name the field: %v", err)
	}
}

// FuzzDecodeUser: decoding arbitrary bytes as users never panics and a
// success yields a value that encodes again.
func FuzzDecodeUser(f *testing.F) {
	for _, s := range userSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u User
		if decodeJSON(data, &u) != nil {
			return
		}
		var list []User
		_ = decodeJSON(data, &list)
		if _, err := (NewUser{Username: u.Username, Attributes: u.Attributes}).MarshalJSON(); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestAdminBase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer, base, realm string
		ok                  bool
	}{
		{"https://kc.example.com/realms/demo", "https://kc.example.com/admin/realms/demo", "demo", true},
		{"http://127.0.0.1:8080/auth/realms/demo", "http://127.0.0.1:8080/auth/admin/realms/demo", "demo", true},
		{"https://kc.example.com/sso/realms/my%20realm/", "https://kc.example.com/sso/admin/realms/my%20realm", "my realm", true},
		{"https://kc.example.com/realms/", "", "", false},
		{"https://kc.example.com/oidc", "", "", false},
		{"ftp://kc.example.com/realms/demo", "", "", false},
		{"https://kc.example.com/realms/demo?x=1", "", "", false},
		{"https://kc.example.com/realms/demo/extra", "", "", false},
	}
	for _, tt := range tests {
		base, realm, err := adminBase(tt.issuer)
		if (err == nil) != tt.ok || base != tt.base || realm != tt.realm {
			t.Errorf("adminBase(%q) = %q, %q, %v", tt.issuer, base, realm, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("adminBase(%q): %v is not ErrInvalidConfig", tt.issuer, err)
		}
	}
}
