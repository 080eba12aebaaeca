package admin_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Organizations (Keycloak 26): create one, add a member, read a user's
// organizations. The account needs manage-organizations, and
// manage-users for members. Here keycloaktest plays Keycloak, with
// organizations enabled and a realm-admin service account.
func ExampleClient_CreateOrganization() {
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	cfg.OrganizationsEnabled = true
	cfg.Clients[0].ServiceAccountClientRoles["realm-management"] = []string{"realm-admin"}
	srv, err := keycloaktest.New(keycloaktest.WithRealm(cfg))
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	c, err := admin.New(admin.Config{Realm: realm,
		Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	id, err := c.CreateOrganization(ctx, admin.NewOrganization{Name: "Acme", Alias: "acme",
		Domains: []admin.OrganizationDomain{{Name: "acme.com"}}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreateOrganization(ctx, admin.NewOrganization{Name: "Acme"})
	fmt.Println("same name again is a conflict:", errors.Is(err, admin.ErrConflict))

	alice, err := c.FindUserByUsername(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	if err := c.AddOrganizationMember(ctx, id, alice.ID); err != nil {
		log.Fatal(err)
	}
	orgs, err := c.UserOrganizations(ctx, alice.ID, false)
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range orgs {
		fmt.Println(o.Alias, o.Name, o.HasDomain("acme.com"))
	}
	// Output:
	// same name again is a conflict: true
	// acme Acme true
}
