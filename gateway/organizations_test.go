package gateway_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// A route with organizations admits members of one of them only, in
// either of Keycloak's claim shapes.
func TestRouteOrganizations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Routes = []gateway.Route{{Name: "acme", Path: "/acme", Upstream: e.upstream.URL, Mode: "api", Organizations: []string{"acme", "globex"}}}
	})
	tok := func(org any) string {
		if org == nil {
			return e.kc.MustToken(t, "alice", "gateway")
		}
		return e.kc.MustToken(t, "alice", "gateway", keycloaktest.WithClaim("organization", org))
	}
	b := newBrowser(t)
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"member (list of aliases)", tok([]string{"acme"}), 200},
		{"member of the other one", tok([]string{"initech", "globex"}), 200},
		{"member (map shape)", tok(map[string]any{"acme": map[string]any{"id": "1"}}), 200},
		{"not a member", tok([]string{"initech"}), 403},
		{"no organization claim", tok(nil), 403},
		{"alias only as a prefix", tok([]string{"acme-evil"}), 403},
	} {
		r := b.get(g.url+"/acme/x", "Authorization", "Bearer "+tc.token)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
		if tc.status == 403 && !strings.Contains(r.body, "organization") {
			t.Errorf("%s: the refusal does not name the organization: %s", tc.name, r.body)
		}
	}
}

func TestConfigOrganizationsAndScopes(t *testing.T) {
	t.Parallel()
	base := func() gateway.Config {
		return gateway.Config{Listen: "127.0.0.1:1", PublicURL: "http://127.0.0.1:1", Issuer: "http://kc.example/realms/x", ClientID: "c", ClientSecret: "s",
			Routes: []gateway.Route{{Name: "a", Path: "/", Upstream: "http://127.0.0.1:2"}}}
	}
	for _, tc := range []struct {
		name string
		edit func(*gateway.Config)
		want string // "" = valid
	}{
		{"organizations", func(c *gateway.Config) { c.Routes[0].Organizations = []string{"acme"} }, ""},
		{"empty alias", func(c *gateway.Config) { c.Routes[0].Organizations = []string{""} }, "organizations"},
		{"alias with a space", func(c *gateway.Config) { c.Routes[0].Organizations = []string{"ac me"} }, "not an organization alias"},
		{"public route with organizations", func(c *gateway.Config) {
			c.Routes[0].Organizations = []string{"acme"}
			c.Routes[0].Public = true
		}, "public route cannot also require"},
		{"scopes", func(c *gateway.Config) { c.Scopes = []string{"openid", "profile", "organization:*"} }, ""},
		{"scopes without openid", func(c *gateway.Config) { c.Scopes = []string{"profile"} }, "must include openid"},
		{"scope with a space", func(c *gateway.Config) { c.Scopes = []string{"openid", "a b"} }, "not a scope value"},
	} {
		c := base()
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

// lightweight_tokens: an api route's role rule works on Keycloak's
// lightweight access tokens (no roles in the token), whose claims the
// gateway gets by introspection; without the setting they are refused.
func TestLightweightTokensRoute(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		e := newEnvWith(t, func(c *keycloaktest.RealmConfig) {
			c.Clients[0].Attributes = map[string]string{"client.use.lightweight.access.token.enabled": "true"}
		})
		g := e.start(func(c *gateway.Config) {
			c.ClientID, c.ClientSecret = keycloaktest.DemoClientID, keycloaktest.DemoClientSecret
			c.LightweightTokens = on
			c.Routes = []gateway.Route{{Name: "admin", Path: "/admin", Upstream: e.upstream.URL, Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}}}
		})
		b := newBrowser(t)
		alice := e.kc.MustToken(t, "alice", keycloaktest.DemoClientID)
		bob := e.kc.MustToken(t, "bob", keycloaktest.DemoClientID)
		if payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(alice, ".")[1]); strings.Contains(string(payload), "realm_access") {
			t.Fatalf("not a lightweight token: %s", payload)
		}
		want := map[string]int{"alice": 200, "bob": 403}
		if !on {
			want = map[string]int{"alice": 401, "bob": 401}
		}
		for user, tok := range map[string]string{"alice": alice, "bob": bob} {
			r := b.get(g.url+"/admin/x", "Authorization", "Bearer "+tok)
			if r.status != want[user] {
				t.Errorf("lightweight_tokens %v, %s: status %d, want %d: %s", on, user, r.status, want[user], r.body)
			}
			if r.status == 200 && !strings.Contains(r.body, "admin") {
				t.Errorf("%s: no roles forwarded: %s", user, r.body)
			}
		}
	}
}

// lightweight_tokens on a browser route: the session's lightweight access
// token is completed by introspection at login and on every request, so
// the route's role rule and the identity headers work on it.
func TestLightweightTokensBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "gateway", Secret: "gateway-secret", StandardFlow: true,
		RedirectURIs: []string{"http://127.0.0.1:*"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1:*"},
		Audiences: []string{"gateway"}, Roles: []string{"auditor"},
		Attributes: map[string]string{"client.use.lightweight.access.token.enabled": "true"},
	}); err != nil {
		t.Fatal(err)
	}
	g := e.start(func(c *gateway.Config) {
		c.LightweightTokens = true
		c.Routes = []gateway.Route{{Name: "admin", Path: "/", Upstream: e.upstream.URL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}}}
	})
	b := newBrowser(t)
	r := b.login(g, "/x", "alice")
	if r.status != 200 {
		t.Fatalf("alice: %d %s", r.status, r.body)
	}
	if got := header(echo(t, r), "X-Forwarded-Roles"); !strings.Contains(got, "admin") {
		t.Errorf("roles header %q", got)
	}
	bob := newBrowser(t)
	if r := bob.login(g, "/x", "bob"); r.status != 403 {
		t.Errorf("bob (no admin role): %d", r.status)
	}
}
