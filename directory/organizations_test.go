package directory

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// newOrgKC is the demo realm with organizations: alice in acme and
// globex, bob in acme. The "cloakroom" service account may also view
// organizations; "root" (realm-admin) changes them.
func newOrgKC(t *testing.T, enabled bool) (kcEnv, *admin.Client) {
	t.Helper()
	cfg := keycloaktest.DemoRealm(testSecret)
	cfg.Clients[0].ServiceAccountClientRoles["realm-management"] = append(cfg.Clients[0].ServiceAccountClientRoles["realm-management"], "view-organizations")
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "root", Secret: testSecret, ServiceAccounts: true,
		ServiceAccountClientRoles: map[string][]string{"realm-management": {"realm-admin"}}})
	cfg.OrganizationsEnabled = enabled
	cfg.Organizations = []keycloaktest.OrganizationConfig{
		{Name: "Acme", Alias: "acme", Members: []string{"alice", "bob"}},
		{Name: "Globex", Alias: "globex", Members: []string{"alice"}, Disabled: true},
	}
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg))
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		t.Fatal(err)
	}
	client := func(id string) *admin.Client {
		c, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: id, ClientSecret: testSecret},
			RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return kcEnv{srv: srv, kc: srv.Realm("demo"), realm: realm, admin: client(keycloaktest.DemoClientID)}, client("root")
}

func aliases(ms []Membership) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Alias)
	}
	return out
}

func TestSyncOrganizations(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e, root := newOrgKC(t, true)
			ctx := t.Context()
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			rep, err := d.Sync(ctx, SyncOptions{Organizations: true})
			if err != nil {
				t.Fatal(err)
			}
			if o := rep.Organizations; o == nil || !o.Enabled || o.Organizations != 2 || o.Memberships != 3 || o.Removed != 0 {
				t.Fatalf("Sync organizations report = %+v", rep.Organizations)
			}
			alice, _ := e.kc.UserID("alice")
			bob, _ := e.kc.UserID("bob")
			ms := must[[]Membership](t)(d.Organizations(ctx, alice))
			if !slices.Equal(aliases(ms), []string{"acme", "globex"}) || !ms[0].Enabled || ms[1].Enabled || ms[0].Name != "Acme" || ms[0].SyncedAt.IsZero() {
				t.Errorf("Organizations(alice) = %+v", ms)
			}
			members := must[[]*User](t)(d.OrganizationMembers(ctx, "acme"))
			if len(members) != 2 || members[0].Username != "alice" || members[1].Username != "bob" {
				t.Errorf("OrganizationMembers(acme) = %v", members)
			}
			if ms := must[[]Membership](t)(d.Organizations(ctx, "nobody")); len(ms) != 0 || ms == nil {
				t.Errorf("Organizations(unknown) = %#v", ms)
			}

			// Keycloak changes: bob leaves acme, globex goes away.
			acme := must[*admin.Organization](t)(root.OrganizationByAlias(ctx, "acme"))
			globex := must[*admin.Organization](t)(root.OrganizationByAlias(ctx, "globex"))
			if err := root.RemoveOrganizationMember(ctx, acme.ID, bob); err != nil {
				t.Fatal(err)
			}
			if err := root.DeleteOrganization(ctx, globex.ID); err != nil {
				t.Fatal(err)
			}
			orep, err := d.SyncOrganizations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if orep.Organizations != 1 || orep.Memberships != 1 || orep.Removed != 2 {
				t.Errorf("SyncOrganizations = %+v", orep)
			}
			if ms := must[[]Membership](t)(d.Organizations(ctx, alice)); !slices.Equal(aliases(ms), []string{"acme"}) {
				t.Errorf("after changes, Organizations(alice) = %+v", ms)
			}
			if ms := must[[]Membership](t)(d.Organizations(ctx, bob)); len(ms) != 0 {
				t.Errorf("after changes, Organizations(bob) = %+v", ms)
			}

			// Organizations turned off: no error, nothing stored.
			e.kc.SetOrganizationsEnabled(false)
			orep, err = d.SyncOrganizations(ctx)
			if err != nil || orep.Enabled || orep.Removed != 1 {
				t.Errorf("SyncOrganizations with organizations off = %+v, %v", orep, err)
			}
			if ms := must[[]Membership](t)(d.Organizations(ctx, alice)); len(ms) != 0 {
				t.Errorf("organizations off: Organizations(alice) = %+v", ms)
			}
		})
	}
}

// Without view-organizations, the organization sync fails with the
// admin error; the users are synced all the same.
func TestSyncOrganizationsForbidden(t *testing.T) {
	t.Parallel()
	e := newKC(t)
	d := newLocation(t, "sqlite").open(t, WithAdmin(e.admin))
	rep, err := d.Sync(t.Context(), SyncOptions{Organizations: true})
	if err == nil || !isForbidden(err) || rep.Seen == 0 {
		t.Fatalf("Sync = %+v, %v", rep, err)
	}
	if _, err := d.SyncOrganizations(t.Context()); !isForbidden(err) {
		t.Errorf("SyncOrganizations = %v", err)
	}
}

func isForbidden(err error) bool { return err != nil && errors.Is(err, admin.ErrForbidden) }
