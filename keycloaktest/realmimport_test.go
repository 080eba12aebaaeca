package keycloaktest

import (
	"net/url"
	"strings"
	"testing"
)

// Credentials exported by real Keycloak (scripts/keycloak.sh export of
// interop/conformance/testdata/exports/source.json): erin's password
// "erin-pw" as Keycloak 26.7.3 (argon2id) and 24.0.5 (pbkdf2-sha512,
// 210,000 iterations) hashed it.
const (
	kc26ArgonSecret  = `{"value":"fyDTcE1FFXpkBM/qzTNowAt7IMOSu6itEa3616SR5tM=","salt":"0gUZYysuYtUbW7888NwMTg==","additionalParameters":{}}`
	kc26ArgonData    = `{"hashIterations":5,"algorithm":"argon2","additionalParameters":{"hashLength":["32"],"memory":["7168"],"type":["id"],"version":["1.3"],"parallelism":["1"]}}`
	kc24PBKDF2Secret = `{"value":"KXIrTUYTzfHsg2W10LTyjv+46/mbBls0rWo62jtZabm1EAJbF8opryUivq4/ZV6WZMPHXuQ6QbErq/AjdxDvfg==","salt":"511mh+32uydVxWZcGvf7fQ==","additionalParameters":{}}`
	kc24PBKDF2Data   = `{"hashIterations":210000,"algorithm":"pbkdf2-sha512","additionalParameters":{}}`
)

// importRealmJSON is a realm file in the shape of hand-written ones, with
// the users and clients each case adds.
func importRealmJSON(extra string) string {
	return `{"realm":"imp","enabled":true,` + extra + `}`
}

func quoteJSON(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// TestRealmImportSemantics checks what Keycloak's import makes of realm
// files, each case as observed on Keycloak 26.7.3 (the conformance suite's
// "import" scenario compares the same files with the real server).
func TestRealmImportSemantics(t *testing.T) {
	t.Parallel()
	profile := `"email":"%s@example.com","firstName":"F","lastName":"L",`
	user := func(name, extra string) string {
		return `{"username":"` + name + `","enabled":true,` + strings.ReplaceAll(profile, "%s", name) + extra + `}`
	}
	hashed := func(secret, data string) string {
		return `"credentials":[{"type":"password","secretData":` + quoteJSON(secret) + `,"credentialData":` + quoteJSON(data) + `}]`
	}
	public := `{"clientId":"c","publicClient":true,"directAccessGrantsEnabled":true,"redirectUris":["http://127.0.0.1/*"]}`
	for _, tc := range []struct {
		name, file   string
		client       string
		user, pass   string
		wantStatus   int
		wantError    string // error_description
		wantClaims   []string
		absentClaims []string
	}{
		{name: "argon2 hash from Keycloak 26",
			file: importRealmJSON(`"clients":[` + public + `],"users":[` + user("erin", hashed(kc26ArgonSecret, kc26ArgonData)) + `]`),
			user: "erin", pass: "erin-pw", wantStatus: 200, wantClaims: []string{"sub", "sid"}},
		{name: "argon2 hash, wrong password",
			file: importRealmJSON(`"clients":[` + public + `],"users":[` + user("erin", hashed(kc26ArgonSecret, kc26ArgonData)) + `]`),
			user: "erin", pass: "erin-pw!", wantStatus: 400, wantError: "Invalid user credentials"},
		{name: "pbkdf2-sha512 hash from Keycloak 24",
			file: importRealmJSON(`"clients":[` + public + `],"users":[` + user("erin", hashed(kc24PBKDF2Secret, kc24PBKDF2Data)) + `]`),
			user: "erin", pass: "erin-pw", wantStatus: 200},
		{name: "realm without enabled is imported disabled",
			file: `{"realm":"imp","clients":[` + public + `],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw"}]`) + `]}`,
			user: "u", pass: "pw", wantStatus: 403, wantError: "Realm not enabled"},
		{name: "user without enabled is imported disabled",
			file: importRealmJSON(`"clients":[` + public + `],"users":[{"username":"u",` + strings.ReplaceAll(profile, "%s", "u") + `"credentials":[{"type":"password","value":"pw"}]}]`),
			user: "u", pass: "pw", wantStatus: 400, wantError: "Account disabled"},
		{name: "temporary is ignored by the import",
			file: importRealmJSON(`"clients":[` + public + `],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw","temporary":true}]`) + `]`),
			user: "u", pass: "pw", wantStatus: 200},
		{name: "incomplete profile: VERIFY_PROFILE",
			file: importRealmJSON(`"clients":[` + public + `],"users":[{"username":"u","enabled":true,"email":"u@example.com","firstName":"F","credentials":[{"type":"password","value":"pw"}]}]`),
			user: "u", pass: "pw", wantStatus: 400, wantError: "Account is not fully set up"},
		{name: "VERIFY_PROFILE disabled by the file",
			file: importRealmJSON(`"requiredActions":[{"alias":"VERIFY_PROFILE","providerId":"VERIFY_PROFILE","enabled":false}],"clients":[` + public + `],"users":[{"username":"u","enabled":true,"credentials":[{"type":"password","value":"pw"}]}]`),
			user: "u", pass: "pw", wantStatus: 200},
		{name: "default scopes without basic: no sub, still sid",
			file: importRealmJSON(`"clients":[{"clientId":"c","publicClient":true,"directAccessGrantsEnabled":true,"defaultClientScopes":["profile","email","roles"]}],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw"}]`) + `]`),
			user: "u", pass: "pw", wantStatus: 200, wantClaims: []string{"sid", "email"}, absentClaims: []string{"sub", "acr"}},
		{name: "only optional scopes: no default scope at all",
			file: importRealmJSON(`"clients":[{"clientId":"c","publicClient":true,"directAccessGrantsEnabled":true,"optionalClientScopes":["phone"]}],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw"}]`) + `]`),
			user: "u", pass: "pw", wantStatus: 200, wantClaims: []string{"sid"}, absentClaims: []string{"sub", "email", "realm_access", "acr"}},
		{name: "clientScopes without basic (Keycloak 24 export): basic added",
			file: importRealmJSON(`"keycloakVersion":"24.0.5","clientScopes":[{"name":"profile","protocol":"openid-connect"}],"clients":[{"clientId":"c","publicClient":true,"directAccessGrantsEnabled":true,"defaultClientScopes":["profile"],"optionalClientScopes":[]}],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw"}]`) + `]`),
			user: "u", pass: "pw", wantStatus: 200, wantClaims: []string{"sub", "sid"}},
		{name: "clientScopes without basic, no keycloakVersion: not migrated",
			file: importRealmJSON(`"clientScopes":[{"name":"profile","protocol":"openid-connect"}],"clients":[{"clientId":"c","publicClient":true,"directAccessGrantsEnabled":true,"defaultClientScopes":["profile"],"optionalClientScopes":[]}],"users":[` + user("u", `"credentials":[{"type":"password","value":"pw"}]`) + `]`),
			user: "u", pass: "pw", wantStatus: 200, wantClaims: []string{"sid"}, absentClaims: []string{"sub"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseRealm([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			s := NewServer(t, WithRealm(cfg))
			res := postForm(t, tokenURL(s, "imp"), url.Values{"grant_type": {"password"}, "client_id": {"c"},
				"username": {tc.user}, "password": {tc.pass}, "scope": {"openid"}})
			if res.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tc.wantStatus, res.body)
			}
			body := res.json(t)
			if tc.wantError != "" && body["error_description"] != tc.wantError {
				t.Errorf("error_description %q, want %q", body["error_description"], tc.wantError)
			}
			if res.status != 200 {
				return
			}
			claims := decode(t, body["access_token"].(string)).claims
			for _, c := range tc.wantClaims {
				if _, ok := claims[c]; !ok {
					t.Errorf("access token lacks %s: %v", c, claims)
				}
			}
			for _, c := range tc.absentClaims {
				if _, ok := claims[c]; ok {
					t.Errorf("access token has %s: %v", c, claims[c])
				}
			}
		})
	}
}

// TestVerifyProfileAtBrowserLogin: a user whose profile is incomplete is
// asked for it once at the browser login, as Keycloak's VERIFY_PROFILE
// does, and can use the password grant afterwards.
func TestVerifyProfileAtBrowserLogin(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.VerifyProfile = true
	cfg.Users = append(cfg.Users, UserConfig{Username: "nora", Password: "nora"})
	s := NewServer(t, WithRealm(cfg))
	grant := func() response {
		return postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"nora"}, "password": {"nora"}},
			DemoClientID+":"+DemoClientSecret)
	}
	if r := grant(); r.status != 400 || !strings.Contains(string(r.body), "Account is not fully set up") {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	b := newBrowser(t)
	login := b.get(authURL(s, "demo", url.Values{"client_id": {DemoClientID}, "response_type": {"code"},
		"redirect_uri": {"http://127.0.0.1:8000/cb"}, "scope": {"openid"}}))
	p := b.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"nora"}, "password": {"nora"}})
	if !strings.Contains(string(p.body), "Update Account Information") {
		t.Fatalf("no profile page: %s", p.body)
	}
	b.post(formAction(t, p.body, "kc-update-profile-form"), url.Values{"email": {"nora@example.com"}, "firstName": {"Nora"}, "lastName": {"N"}})
	if r := grant(); r.status != 200 {
		t.Fatalf("after: %d %s", r.status, r.body)
	}
}
