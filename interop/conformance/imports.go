package conformance

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// ImportFixture is a realm file the suite loads into both servers, under
// the realm name "{conformance realm}-{Name}", to compare what each makes
// of it: realm import semantics.
type ImportFixture struct {
	// Name is the realm-name suffix and the observation prefix.
	Name string
	// File is the realm file, relative to this package's directory.
	File string
	// Clients maps each client the scenario logs in with to its secret
	// ("" for a public client).
	Clients map[string]string
	// Users maps each user the scenario logs in as to the password.
	Users map[string]string
}

// ImportFixtures are the realm files of testdata/exports:
//
//   - keycloak-24.0.5 and keycloak-26.7.3: what `kc.sh export` of those
//     versions wrote for source.json (scripts/keycloak.sh export): hashed
//     passwords (pbkdf2-sha512, argon2), every default scope, flow and
//     role spelled out; the 24 export has no "basic" client scope, and a
//     client that listed only optional scopes exported with none;
//   - hand-written: no keycloakVersion, no clientScopes, no default roles,
//     a client listing default scopes without basic, pbkdf2-sha256 and
//     argon2 hashes made outside Keycloak, a "temporary" password, a user
//     without "enabled" and one without email or names;
//   - scopes-no-basic: clientScopes with one custom scope and no
//     keycloakVersion, so Keycloak creates none of its built-in scopes
//     and does not migrate (no basic, so no sub);
//   - enabled-absent: a realm without "enabled".
var ImportFixtures = []ImportFixture{
	{
		Name: "kc24", File: "testdata/exports/keycloak-24.0.5.json",
		Clients: map[string]string{"exp-app": "exp-app-secret", "exp-public": ""},
		Users:   map[string]string{"erin": "erin-pw", "fred": "fred-pw", "tina": "tina-pw", "olly": "olly-pw"},
	},
	{
		Name: "kc26", File: "testdata/exports/keycloak-26.7.3.json",
		Clients: map[string]string{"exp-app": "exp-app-secret", "exp-public": ""},
		Users:   map[string]string{"erin": "erin-pw", "fred": "fred-pw", "tina": "tina-pw", "olly": "olly-pw"},
	},
	{
		Name: "hand", File: "testdata/exports/hand-written.json",
		Clients: map[string]string{"hand-app": "hand-app-secret", "hand-default": ""},
		Users: map[string]string{"plain": "plain-pw", "sha256": "hash-pw", "argon": "argon-pw",
			"temp": "temp-pw", "noflag": "noflag-pw", "noname": "noname-pw"},
	},
	{
		Name: "scopes", File: "testdata/exports/scopes-no-basic.json",
		Clients: map[string]string{"scoped": "", "unscoped": ""},
		Users:   map[string]string{"sam": "sam-pw"},
	},
	{
		Name: "disabled", File: "testdata/exports/enabled-absent.json",
		Clients: map[string]string{"c": ""},
		Users:   map[string]string{"u": "u-pw"},
	},
}

// importedRealms logs every fixture user in with every fixture client
// (password grant, scope openid) and records the outcome and the tokens'
// claims, including the values of the mappers the fixtures define.
func importedRealms(ctx context.Context, c *Client, r *Recorder) {
	for _, f := range ImportFixtures {
		sub := &Client{t: &Target{Base: c.t.Base, Realm: importName(c.t.Realm, f), HTTP: c.t.HTTP}}
		res, err := sub.Do(ctx, http.MethodGet, sub.RealmURL("/.well-known/openid-configuration"), nil, nil)
		if err != nil {
			r.Fail(f.Name+".discovery", err)
			continue
		}
		r.Set(f.Name+".discovery.status", res.Status)
		for _, client := range sortedNames(f.Clients) {
			for _, user := range sortedNames(f.Users) {
				form := url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {user},
					"password": {f.Users[user]}, "scope": {"openid"}}
				if s := f.Clients[client]; s != "" {
					form.Set("client_secret", s)
				}
				key := f.Name + "." + client + "." + user
				res, err := sub.Token(ctx, form)
				if err != nil {
					r.Fail(key, err)
					continue
				}
				r.Set(key+".status", res.Status)
				if res.Status != http.StatusOK {
					r.Set(key+".error", str(res.JSON, "error"))
					r.Set(key+".error_description", str(res.JSON, "error_description"))
					continue
				}
				for _, t := range []string{"access_token", "id_token"} {
					_, claims, err := Claims(str(res.JSON, t))
					if err != nil {
						r.Fail(key+"."+t, err)
						continue
					}
					claimsOf(r, key+"."+t, claims)
					for _, k := range []string{"groups", "department", "tier"} {
						if v, ok := claims[k]; ok {
							r.Set(key+"."+t+".value."+k, v)
						}
					}
				}
			}
		}
	}
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// importName is the realm name a fixture gets next to realm.
func importName(realm string, f ImportFixture) string {
	return realm + "-" + strings.ToLower(f.Name)
}

// permissionRoles are the realm-management roles of the fixture's
// conf-perm-{role} service accounts ("none": no admin role at all).
var permissionRoles = []string{"none", "view-users", "query-users", "query-groups", "query-clients", "view-realm", "manage-users"}

// adminPermissions calls the admin endpoints cloakroom's admin package and
// python-keycloak/gocloak use with a service account holding exactly one
// realm-management role, and records each status: which role each
// endpoint needs. Writes are sent with bodies that change nothing.
func adminPermissions(ctx context.Context, c *Client, r *Recorder) {
	admin := adminToken(ctx, c, r)
	if admin == "" {
		return
	}
	alice := findUser(ctx, c, admin, "alice")
	group := firstID(ctx, c, admin, "/groups?search=staff")
	app := firstID(ctx, c, admin, "/clients?clientId="+appClient)
	if alice == nil || group == "" || app == "" {
		r.Fail("setup", errOr(nil, &Response{Status: 0}))
		return
	}
	uid := str(alice, "id")
	unchanged := map[string]any{"firstName": alice["firstName"]}
	calls := []struct {
		key, method, path string
		body              any
	}{
		{"users.list", "GET", "/users?max=1", nil},
		{"users.count", "GET", "/users/count", nil},
		{"users.get", "GET", "/users/" + uid, nil},
		{"users.update", "PUT", "/users/" + uid, unchanged},
		{"users.groups", "GET", "/users/" + uid + "/groups", nil},
		{"users.sessions", "GET", "/users/" + uid + "/sessions", nil},
		{"users.credentials", "GET", "/users/" + uid + "/credentials", nil},
		{"users.role-mappings", "GET", "/users/" + uid + "/role-mappings", nil},
		{"users.realm-mappings.add", "POST", "/users/" + uid + "/role-mappings/realm", []any{}},
		{"users.profile", "GET", "/users/profile", nil},
		{"roles.list", "GET", "/roles", nil},
		{"roles.get", "GET", "/roles/admin", nil},
		{"roles.users", "GET", "/roles/admin/users", nil},
		{"groups.list", "GET", "/groups", nil},
		{"groups.members", "GET", "/groups/" + group + "/members", nil},
		{"clients.list", "GET", "/clients?clientId=" + appClient, nil},
		{"clients.roles", "GET", "/clients/" + app + "/roles", nil},
	}
	for _, role := range permissionRoles {
		client := "conf-perm-" + role
		res, err := c.Token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {client + "-secret"}})
		if err != nil || res.Status != http.StatusOK {
			r.Fail(role+".token", errOr(err, res))
			continue
		}
		h := bearer(str(res.JSON, "access_token"))
		for _, call := range calls {
			res, err := c.Do(ctx, call.method, c.AdminURL(call.path), call.body, h)
			if err != nil {
				r.Fail(role+"."+call.key, err)
				continue
			}
			r.Set(role+"."+call.key, res.Status)
			if call.key == "clients.list" && res.Status == http.StatusOK {
				r.Set(role+".clients.found", len(res.List))
			}
		}
	}
}

// firstID is the id of the first element of an admin list.
func firstID(ctx context.Context, c *Client, tok, path string) string {
	res, err := c.Do(ctx, http.MethodGet, c.AdminURL(path), nil, bearer(tok))
	if err != nil || len(res.List) == 0 {
		return ""
	}
	m, _ := res.List[0].(map[string]any)
	return str(m, "id")
}

// disableUser disables bob while he has a session: Keycloak keeps the
// session (refreshes fail with "User disabled" meanwhile) and a refresh
// token works again once he is enabled.
func disableUser(ctx context.Context, c *Client, r *Recorder) {
	admin := adminToken(ctx, c, r)
	tokens := login(ctx, c, r, "bob")
	bob := findUser(ctx, c, admin, "bob")
	if admin == "" || tokens == nil || bob == nil {
		return
	}
	id := str(bob, "id")
	sessions := func(key string) {
		res, err := c.Do(ctx, http.MethodGet, c.AdminURL("/users/"+id+"/sessions"), nil, bearer(admin))
		if err != nil {
			r.Fail(key, err)
			return
		}
		r.Set(key, len(res.List))
	}
	refresh := func(key string) {
		res, err := c.Token(ctx, url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient},
			"client_secret": {appSecret}, "refresh_token": {str(tokens, "refresh_token")}})
		if err != nil {
			r.Fail(key, err)
			return
		}
		r.Set(key+".status", res.Status)
		r.Set(key+".error", str(res.JSON, "error"))
		r.Set(key+".error_description", str(res.JSON, "error_description"))
	}
	setEnabled := func(key string, on bool) {
		res, err := c.Do(ctx, http.MethodPut, c.AdminURL("/users/"+id), map[string]any{"enabled": on}, bearer(admin))
		if err != nil {
			r.Fail(key, err)
			return
		}
		r.Set(key+".status", res.Status)
	}
	sessions("sessions.before")
	setEnabled("disable", false)
	sessions("sessions.disabled")
	refresh("refresh.disabled")
	setEnabled("enable", true)
	refresh("refresh.enabled")
}
