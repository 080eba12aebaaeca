package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Service accounts of the test realm and their realm-management roles.
const (
	saManager = keycloaktest.DemoClientID // manage-users, view-users, query-groups, query-clients
	saReader  = "reader"                  // query-users
	saViewer  = "viewer"                  // view-users
	saNobody  = "nobody"                  // no admin role
	saAdmin   = "root"                    // realm-admin
	secret    = "s3cret-for-tests"
)

// testRealm is the demo realm plus service accounts with various admin
// roles, groups, an admin user and a client role.
func testRealm(mutate ...func(*keycloaktest.RealmConfig)) keycloaktest.RealmConfig {
	cfg := keycloaktest.DemoRealm(secret)
	for id, roles := range map[string][]string{
		saReader: {"query-users"},
		saViewer: {"view-users"},
		saNobody: nil,
		saAdmin:  {"realm-admin"},
	} {
		c := keycloaktest.ClientConfig{ClientID: id, Secret: secret, ServiceAccounts: true}
		if roles != nil {
			c.ServiceAccountClientRoles = map[string][]string{"realm-management": roles}
		}
		cfg.Clients = append(cfg.Clients, c)
	}
	cfg.Clients[0].Roles = []string{"reader", "writer"}
	cfg.RealmRoles = append(cfg.RealmRoles, "editor")
	cfg.Groups = []keycloaktest.GroupConfig{
		{Name: "staff", SubGroups: []keycloaktest.GroupConfig{{Name: "editors", RealmRoles: []string{"editor"}}}},
		{Name: "guests"},
	}
	cfg.Users = append(cfg.Users, keycloaktest.UserConfig{
		Username: "ops", Password: "ops-pw", Email: "ops@example.com", FirstName: "Op", LastName: "Erator",
		ClientRoles: map[string][]string{"realm-management": {"manage-users", "view-users"}},
	})
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

type env struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	realm *cloakroom.Realm
}

func newEnv(t *testing.T, mutate ...func(*keycloaktest.RealmConfig)) env {
	t.Helper()
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(testRealm(mutate...)))
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		t.Fatal(err)
	}
	return env{srv: srv, kc: srv.Realm("demo"), realm: realm}
}

// client returns an admin client for a service account, with fast retries.
func (e env) client(t *testing.T, sa string, tweak ...func(*admin.Config)) *admin.Client {
	t.Helper()
	cfg := admin.Config{
		Realm:          e.realm,
		Client:         cloakroom.ClientCredentials{ClientID: sa, ClientSecret: secret},
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
	}
	if sa == saManager {
		cfg.Client.ClientSecret = secret
	}
	for _, f := range tweak {
		f(&cfg)
	}
	c, err := admin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
