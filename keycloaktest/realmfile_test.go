package keycloaktest

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadRealmFile(t *testing.T) {
	t.Parallel()
	cfg, err := LoadRealmFile("testdata/realm-acme.json")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "acme" || cfg.AccessTokenLifespan != 600*time.Second || cfg.SSOSessionIdle != 900*time.Second ||
		cfg.SSOSessionMax != 2*time.Hour || !cfg.RevokeRefreshToken || cfg.RefreshTokenMaxReuse != 1 || cfg.DefaultSignatureAlgorithm != RS256 {
		t.Errorf("realm settings %+v", cfg)
	}
	if !slices.Equal(cfg.RealmRoles, []string{"admin", "editor"}) {
		t.Errorf("realm roles %v", cfg.RealmRoles)
	}
	byID := map[string]ClientConfig{}
	for _, c := range cfg.Clients {
		byID[c.ClientID] = c
	}
	api := byID["orders-api"]
	if api.Secret != "orders-secret" || !api.StandardFlow || !api.DirectAccessGrants || api.Public ||
		!slices.Equal(api.Audiences, []string{"orders-api"}) || !slices.Equal(api.Roles, []string{"read", "write"}) ||
		!slices.Equal(api.PostLogoutRedirectURIs, []string{"https://orders.acme.test/", "https://orders.acme.test/bye"}) ||
		api.BackchannelLogoutURL != "https://orders.acme.test/backchannel" || !api.BackchannelLogoutSessionRequired ||
		api.Attributes["pkce.code.challenge.method"] != "S256" || len(api.DefaultScopes) != 6 {
		t.Errorf("orders-api %+v", api)
	}
	if spa := byID["orders-spa"]; !spa.Public || !spa.StandardFlow {
		t.Errorf("orders-spa %+v", spa)
	}
	worker := byID["orders-worker"]
	if !worker.ServiceAccounts || !reflect.DeepEqual(worker.ServiceAccountClientRoles, map[string][]string{"realm-management": {"view-users"}}) {
		t.Errorf("orders-worker %+v", worker)
	}
	if _, ok := byID["realm-management"]; !ok {
		t.Error("built-in realm-management client not synthesised for its roles")
	}
	users := map[string]UserConfig{}
	for _, u := range cfg.Users {
		users[u.Username] = u
	}
	alice := users["Alice"]
	if alice.ID != "11111111-1111-4111-8111-111111111111" || alice.Password != "alice-pw" || alice.Disabled ||
		// A realm file's user gets exactly the roles it lists, as with
		// Keycloak's import (no default role added, none taken away).
		!slices.Equal(alice.RealmRoles, []string{"default-roles-acme", "admin"}) || !alice.NoDefaultRoles ||
		alice.Attributes["department"][0] != "research" ||
		!reflect.DeepEqual(alice.ClientRoles, map[string][]string{"orders-api": {"read", "write"}, "account": {"manage-account", "view-profile"}}) {
		t.Errorf("alice %+v", alice)
	}
	if !users["no-enabled-field"].Disabled {
		t.Error("a user without enabled must be disabled, as Keycloak imports it")
	}
	if h := users["hashed-sha256"].PasswordHash; h == nil || h.Algorithm != PBKDF2SHA256 || h.Iterations != 27500 {
		t.Errorf("hashed credential %+v", h)
	}

	s := NewServer(t, WithRealmFile("testdata/realm-acme.json"))
	logins := []struct{ user, pass string }{
		{"alice", "alice-pw"}, {"hashed-sha256", "pw-256"}, {"hashed-sha512", "pw-512"}, {"hashed-sha1", "pw-1"},
	}
	for _, l := range logins {
		form := url.Values{"grant_type": {"password"}, "username": {l.user}, "password": {l.pass}}
		resp := postForm(t, tokenURL(s, "acme"), form, "orders-api:orders-secret")
		if resp.status != 200 {
			t.Errorf("login %s: %d %s", l.user, resp.status, resp.body)
			continue
		}
		c := verifyWithJWKS(t, s, "acme", resp.json(t)["access_token"].(string))
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 600 {
			t.Errorf("lifespan %v", exp-iat)
		}
		bad := postForm(t, tokenURL(s, "acme"), withForm(form, "password", l.pass+"x"), "orders-api:orders-secret")
		if bad.json(t)["error_description"] != "Invalid user credentials" {
			t.Errorf("wrong password for %s: %s", l.user, bad.body)
		}
	}
	resp := postForm(t, tokenURL(s, "acme"), url.Values{"grant_type": {"client_credentials"}}, "orders-worker:worker-secret")
	if resp.status != 200 {
		t.Fatalf("service account: %d %s", resp.status, resp.body)
	}
	c := decode(t, resp.json(t)["access_token"].(string)).claims
	if ra := c["resource_access"].(map[string]any)["realm-management"]; ra == nil {
		t.Errorf("service account roles %v", c["resource_access"])
	}
	a := s.Realm("acme").MustToken(t, "alice", "orders-api")
	if got := aud(decode(t, a).claims); !slices.Equal(got, []string{"orders-api", "account"}) {
		t.Errorf("aud %v", got)
	}
}

func TestParseRealmErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, path, msg string
	}{
		{"not JSON", `{"realm":`, "", "invalid JSON"},
		{"not an object", `[1,2]`, "", "expected an object, got an array"},
		{"missing name", `{}`, "realm", "missing realm name"},
		{"name type", `{"realm":5}`, "realm", "expected a string, got a number"},
		{"bad name", `{"realm":"a b"}`, "realm", "not usable"},
		{"enabled type", `{"realm":"r","enabled":"yes"}`, "enabled", "expected a boolean"},
		{"negative lifespan", `{"realm":"r","accessTokenLifespan":-5}`, "accessTokenLifespan", "out of range"},
		{"fractional lifespan", `{"realm":"r","ssoSessionIdleTimeout":1.5}`, "ssoSessionIdleTimeout", "expected an integer"},
		{"bad algorithm", `{"realm":"r","defaultSignatureAlgorithm":"HS256"}`, "defaultSignatureAlgorithm", `unsupported algorithm "HS256"`},
		{"roles type", `{"realm":"r","roles":[]}`, "roles", "expected an object"},
		{"realm role without name", `{"realm":"r","roles":{"realm":[{"description":"x"}]}}`, "roles.realm[0].name", "missing role name"},
		{"client roles of unknown client", `{"realm":"r","roles":{"client":{"ghost":[{"name":"x"}]}}}`, "roles.client.ghost", `no client "ghost"`},
		{"odd client id path", `{"realm":"r","roles":{"client":{"a.b":[{"name":"x"}]}}}`, `roles.client["a.b"]`, `no client "a.b"`},
		{"users type", `{"realm":"r","users":{}}`, "users", "expected an array"},
		{"user not object", `{"realm":"r","users":[1]}`, "users[0]", "expected an object, got a number"},
		{"user without username", `{"realm":"r","users":[{"enabled":true}]}`, "users[0].username", "missing or invalid username"},
		{"webauthn credential", `{"realm":"r","users":[{"username":"a"},{"username":"b"},{"username":"c","credentials":[{"type":"password","value":"x"},{"type":"webauthn"}]}]}`,
			"users[2].credentials[1].type", `unsupported credential type "webauthn"`},
		{"otp without data", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"otp"}]}]}`,
			"users[0].credentials[0]", `otp credential needs "secretData" and "credentialData"`},
		{"hotp credential", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"otp","secretData":"{\"value\":\"abc\"}","credentialData":"{\"subType\":\"hotp\"}"}]}]}`,
			"users[0].credentials[0].credentialData.subType", `unsupported OTP type "hotp"`},
		{"otp sha256", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"otp","secretData":"{\"value\":\"abc\"}","credentialData":"{\"algorithm\":\"HmacSHA256\"}"}]}]}`,
			"users[0].credentials[0].credentialData.algorithm", `unsupported OTP algorithm`},
		{"otp bad base32", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"otp","secretData":"{\"value\":\"1!\"}","credentialData":"{\"secretEncoding\":\"BASE32\"}"}]}]}`,
			"users[0].credentials[0].secretData.value", `not base32`},
		{"acr map", `{"realm":"r","attributes":{"acr.loa.map":"[1]"}}`, `attributes["acr.loa.map"]`, "JSON object"},
		{"two passwords", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","value":"x"},{"type":"password","value":"y"}]}]}`,
			"users[0].credentials[1]", "more than one password credential"},
		{"password without value", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password"}]}]}`, "users[0].credentials[0]", `needs "value"`},
		{"argon2d", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"{\"value\":\"AA==\",\"salt\":\"AA==\"}","credentialData":"{\"hashIterations\":5,\"algorithm\":\"argon2\",\"additionalParameters\":{\"type\":[\"d\"]}}"}]}]}`,
			"users[0].credentials[0].credentialData.additionalParameters.type", `unsupported argon2 type "d"`},
		{"argon2 memory", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"{\"value\":\"AA==\",\"salt\":\"AA==\"}","credentialData":"{\"hashIterations\":5,\"algorithm\":\"argon2\",\"additionalParameters\":{\"memory\":[\"99999999\"]}}"}]}]}`,
			"users[0].credentials[0].credentialData.additionalParameters.memory", `want an integer from 1 to 1048576`},
		{"argon2 iterations", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"{\"value\":\"AA==\",\"salt\":\"AA==\"}","credentialData":"{\"hashIterations\":100000,\"algorithm\":\"argon2\"}"}]}]}`,
			"users[0].credentials[0].credentialData.hashIterations", `up to 64`},
		{"bad secretData", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"nope","credentialData":"{\"hashIterations\":5,\"algorithm\":\"pbkdf2-sha256\"}"}]}]}`,
			"users[0].credentials[0].secretData", "expected an object"},
		{"bad salt", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"{\"value\":\"AA==\",\"salt\":\"!!\"}","credentialData":"{\"hashIterations\":5,\"algorithm\":\"pbkdf2-sha256\"}"}]}]}`,
			"users[0].credentials[0].secretData.salt", "base64"},
		{"zero iterations", `{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","secretData":"{\"value\":\"AA==\",\"salt\":\"AA==\"}","credentialData":"{\"hashIterations\":0,\"algorithm\":\"pbkdf2-sha256\"}"}]}]}`,
			"users[0].credentials[0].credentialData.hashIterations", "positive"},
		{"duplicate username", `{"realm":"r","users":[{"username":"Bob"},{"username":"bob"}]}`, "users[1].username", `duplicate username "bob"`},
		{"reserved username", `{"realm":"r","users":[{"username":"service-account-x"}]}`, "users[0].username", "reserved"},
		{"service account of unknown client", `{"realm":"r","users":[{"username":"service-account-x","serviceAccountClientId":"x"}]}`, "users[0].serviceAccountClientId", `no client "x"`},
		{"user client roles unknown client", `{"realm":"r","users":[{"username":"a","clientRoles":{"ghost":["x"]}}]}`, "users[0].clientRoles.ghost", `no client "ghost"`},
		{"attributes type", `{"realm":"r","users":[{"username":"a","attributes":{"k":"v"}}]}`, "users[0].attributes", "expected an object of string arrays"},
		{"client without id", `{"realm":"r","clients":[{"secret":"x"}]}`, "clients[0].clientId", "missing or invalid clientId"},
		{"duplicate client", `{"realm":"r","clients":[{"clientId":"a"},{"clientId":"a"}]}`, "clients[1].clientId", "duplicate clientId"},
		{"public service account", `{"realm":"r","clients":[{"clientId":"a","publicClient":true,"serviceAccountsEnabled":true}]}`, "clients[0].serviceAccountsEnabled", "public client"},
		{"redirect uris type", `{"realm":"r","clients":[{"clientId":"a","redirectUris":"x"}]}`, "clients[0].redirectUris", "expected an array of strings"},
		{"attribute value type", `{"realm":"r","clients":[{"clientId":"a","attributes":{"x":true}}]}`, "clients[0].attributes", "expected an object of strings"},
		{"mapper flag", `{"realm":"r","clients":[{"clientId":"a","protocolMappers":[{"protocolMapper":"oidc-audience-mapper","config":{"access.token.claim":"maybe"}}]}]}`,
			`clients[0].protocolMappers[0].config["access.token.claim"]`, `expected "true" or "false"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRealm([]byte(tc.doc))
			var fe *RealmFileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidRealmFile) {
				t.Fatalf("err = %v, want a RealmFileError", err)
			}
			if fe.Path != tc.path || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q (path %q), want path %q and %q", err, fe.Path, tc.path, tc.msg)
			}
		})
	}
}

func TestParseRealmErrorsDoNotEchoSecrets(t *testing.T) {
	t.Parallel()
	_, err := ParseRealm([]byte(`{"realm":"r","users":[{"username":"a","credentials":[{"type":"password","value":"hunter2"}]}],"x":`))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadRealmFileMissing(t *testing.T) {
	t.Parallel()
	if _, err := LoadRealmFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{PBKDF2SHA256, PBKDF2SHA512, PBKDF2SHA1, Argon2} {
		iterations := 1000
		if alg == Argon2 {
			iterations = 2
		}
		h, err := HashPassword("s3cret", alg, iterations)
		if err != nil {
			t.Fatal(err)
		}
		if !h.verify("s3cret") || h.verify("s3cret!") {
			t.Errorf("%s: verify broken", alg)
		}
	}
	if _, err := HashPassword("x", "bcrypt", 1); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("bcrypt: %v", err)
	}
	if _, err := HashPassword("x", PBKDF2SHA256, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("zero iterations: %v", err)
	}
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	hash, err := HashPassword("carol-pw", PBKDF2SHA256, 1000)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DemoRealm("round-trip-secret")
	cfg.AccessTokenLifespan = 120 * time.Second
	cfg.RevokeRefreshToken = true
	cfg.RefreshTokenMaxReuse = 2
	cfg.DefaultSignatureAlgorithm = ES256
	cfg.Clients[0].BackchannelLogoutURL = "http://127.0.0.1:8000/backchannel"
	cfg.Clients[0].PostLogoutRedirectURIs = []string{"http://127.0.0.1:8000/", "http://localhost:8000/"}
	cfg.Clients[0].Roles = []string{"reader"}
	cfg.Clients[0].Audiences = []string{"cloakroom", "custom-aud"}
	cfg.Clients[0].ServiceAccountRealmRoles = []string{"admin"}
	cfg.Users = append(cfg.Users, UserConfig{Username: "carol", PasswordHash: hash, Disabled: true,
		ClientRoles: map[string][]string{"cloakroom": {"reader"}}, Attributes: map[string][]string{"team": {"a", "b"}}})
	s := NewServer(t, WithRealm(cfg))
	data, err := s.Realm("demo").Export()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRealm(data)
	if err != nil {
		t.Fatalf("ParseRealm(Export()): %v\n%s", err, data)
	}
	if back.Name != "demo" || back.AccessTokenLifespan != 120*time.Second || !back.RevokeRefreshToken ||
		back.RefreshTokenMaxReuse != 2 || back.DefaultSignatureAlgorithm != ES256 || !slices.Equal(back.RealmRoles, []string{"admin", "user"}) {
		t.Errorf("realm %+v", back)
	}
	c := back.Clients[0]
	if c.ClientID != "cloakroom" || c.Secret != "round-trip-secret" || !slices.Equal(c.Audiences, []string{"cloakroom", "custom-aud"}) ||
		c.BackchannelLogoutURL != cfg.Clients[0].BackchannelLogoutURL || !c.BackchannelLogoutSessionRequired ||
		!slices.Equal(c.PostLogoutRedirectURIs, cfg.Clients[0].PostLogoutRedirectURIs) || !slices.Equal(c.Roles, []string{"reader"}) ||
		// The export lists default-roles-demo, the realm's default role the
		// service account holds, as a real Keycloak export does; listed,
		// it is all the service account gets on import.
		!slices.Equal(c.ServiceAccountRealmRoles, []string{"admin", "default-roles-demo"}) || !c.ServiceAccountNoDefaultRoles ||
		!c.ServiceAccounts || !c.DirectAccessGrants || !c.StandardFlow {
		t.Errorf("client %+v", c)
	}
	if pub := back.Clients[1]; !pub.Public || pub.Secret != "" {
		t.Errorf("public client %+v", pub)
	}
	users := map[string]UserConfig{}
	for _, u := range back.Users {
		users[u.Username] = u
	}
	if len(users) != 3 {
		t.Fatalf("users %v", users)
	}
	wantAlice, _ := s.Realm("demo").UserID("alice")
	if a := users["alice"]; a.ID != wantAlice || a.Password != "alice" || a.Email != "alice@example.com" || !a.EmailVerified ||
		a.FirstName != "Alice" || a.LastName != "Liddell" || !slices.Equal(a.RealmRoles, []string{"admin", "default-roles-demo", "user"}) ||
		!a.NoDefaultRoles || a.Disabled {
		t.Errorf("alice %+v", a)
	}
	if c := users["carol"]; !c.Disabled || c.PasswordHash == nil || !c.PasswordHash.verify("carol-pw") ||
		!reflect.DeepEqual(c.ClientRoles, map[string][]string{"cloakroom": {"reader"}}) || !reflect.DeepEqual(c.Attributes, map[string][]string{"team": {"a", "b"}}) {
		t.Errorf("carol %+v", c)
	}
	// The export is stable and serves again.
	s2 := NewServer(t, WithRealm(back))
	again, err := s2.Realm("demo").Export()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Errorf("second export differs:\n%s\n---\n%s", data, again)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-pw"}}
	if resp := postForm(t, tokenURL(s2, "demo"), form, "cloakroom:round-trip-secret"); resp.json(t)["error_description"] != "Account disabled" {
		t.Errorf("carol: %s", resp.body)
	}
	form = url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}}
	if resp := postForm(t, tokenURL(s2, "demo"), form, "cloakroom:round-trip-secret"); resp.status != 200 {
		t.Errorf("alice: %d %s", resp.status, resp.body)
	}
}

func TestRealmManagement(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	id, err := r.AddUser(UserConfig{Username: "Eve", Password: "eve", ID: "eve-id", ClientRoles: map[string][]string{"cloakroom": {"auditor"}}})
	if err != nil || id != "eve-id" {
		t.Fatalf("AddUser = %q, %v", id, err)
	}
	if got, ok := r.UserID("EVE"); !ok || got != "eve-id" {
		t.Errorf("UserID is case-insensitive: %q %v", got, ok)
	}
	c := decode(t, r.MustToken(t, "eve", DemoClientID)).claims
	if roles := c["resource_access"].(map[string]any)["cloakroom"].(map[string]any)["roles"].([]any); !slices.Equal(roles, []any{"auditor"}) {
		t.Errorf("roles %v", roles)
	}
	errs := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate username", second(r.AddUser(UserConfig{Username: "eve"})), ErrUserExists},
		{"duplicate id", second(r.AddUser(UserConfig{Username: "x", ID: "eve-id"})), ErrUserExists},
		{"empty username", second(r.AddUser(UserConfig{})), ErrInvalidConfig},
		{"reserved username", second(r.AddUser(UserConfig{Username: "service-account-x"})), ErrInvalidConfig},
		{"roles of unknown client", second(r.AddUser(UserConfig{Username: "y", ClientRoles: map[string][]string{"ghost": {"r"}}})), ErrUnknownClient},
		{"bad hash", second(r.AddUser(UserConfig{Username: "z", PasswordHash: &PasswordHash{Algorithm: "md5"}})), ErrUnsupportedAlgorithm},
		{"duplicate client", r.AddClient(ClientConfig{ClientID: DemoClientID}), ErrClientExists},
		{"empty client id", r.AddClient(ClientConfig{}), ErrInvalidConfig},
		{"public service account", r.AddClient(ClientConfig{ClientID: "p", Public: true, ServiceAccounts: true}), ErrInvalidConfig},
		{"enable unknown", r.SetUserEnabled("ghost", true), ErrUnknownUser},
		{"delete unknown", r.DeleteUser("ghost"), ErrUnknownUser},
		{"delete service account", r.DeleteUser("service-account-cloakroom"), ErrInvalidConfig},
	}
	for _, tc := range errs {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, ok := r.UserID("y"); ok {
		t.Error("a failed AddUser left a user behind")
	}
	if err := r.AddClient(ClientConfig{ClientID: "worker", Secret: "w", ServiceAccounts: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.UserID("service-account-worker"); !ok {
		t.Error("service account user not created")
	}
	first := passwordLogin(t, s, "bob", "bob", "")
	passwordLogin(t, s, "bob", "bob", "")
	if ids := r.SessionIDs("bob"); len(ids) != 2 || ids[0] != first["session_state"] {
		t.Errorf("sessions %v", ids)
	}
	if err := r.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if ids := r.SessionIDs("bob"); ids != nil {
		t.Errorf("sessions of a deleted user %v", ids)
	}
	if r.Name() != "demo" || r.Issuer() != s.Issuer("demo") {
		t.Errorf("Name/Issuer %q %q", r.Name(), r.Issuer())
	}
}

func second[T any](_ T, err error) error { return err }

func FuzzParseRealm(f *testing.F) {
	if data, err := os.ReadFile("testdata/realm-acme.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"realm":"r","users":[{"username":"a","enabled":true,"credentials":[{"type":"password","value":"x"}]}]}`))
	// Protocol mappers and client scopes (mappers_test.go).
	f.Add([]byte(`{"realm":"r","clientScopes":[{"name":"t","protocol":"openid-connect","attributes":{"include.in.token.scope":"false"},"protocolMappers":[{"name":"h","protocol":"openid-connect","protocolMapper":"oidc-hardcoded-claim-mapper","config":{"claim.name":"a\\.b.c","claim.value":"{\"x\":1}","jsonType.label":"JSON","access.token.claim":true}}]},{"name":"role_list","protocol":"saml"}],"defaultDefaultClientScopes":["t"],"clients":[{"clientId":"c","protocolMappers":[{"name":"g","protocolMapper":"oidc-group-membership-mapper","config":{"claim.name":"groups","full.path":"true","access.token.claim":"true"}},{"name":"u","protocolMapper":"oidc-unknown","config":{"k":null}}]}]}`))
	f.Add([]byte(`{"realm":"r","clients":[{"clientId":"c","defaultClientScopes":["profile","nosuch"],"protocolMappers":[{"name":"a","protocolMapper":"oidc-usermodel-attribute-mapper","config":{"user.attribute":"x","claim.name":"x","multivalued":"true","aggregate.attrs":"true","jsonType.label":"long"}},{"name":"r","protocolMapper":"oidc-usermodel-client-role-mapper","config":{"claim.name":"r.${client_id}","usermodel.clientRoleMapping.clientId":"c"}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseRealm(data)
		if err != nil {
			var fe *RealmFileError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a RealmFileError: %v", err)
			}
			return
		}
		s, err := New(WithRealm(cfg))
		if err != nil {
			t.Fatalf("ParseRealm accepted a realm AddRealm refuses: %v", err)
		}
		out, err := s.Realm(cfg.Name).Export()
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		if _, err := ParseRealm(out); err != nil {
			t.Fatalf("ParseRealm(Export()) = %v\n%s", err, out)
		}
	})
}
