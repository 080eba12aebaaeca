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

// startDemo serves keycloaktest's demo realm, whose "cloakroom" client's
// service account holds manage-users, view-users, query-groups and
// query-clients.
func startDemo() (*keycloaktest.Server, *admin.Client) {
	srv, err := keycloaktest.New(keycloaktest.WithDemoRealm())
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	c, err := admin.New(admin.Config{
		Realm:  realm,
		Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret},
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, c
}

func ExampleNew() {
	srv, _ := startDemo()
	defer srv.Close()

	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	// A service account of the managed realm...
	c, err := admin.New(admin.Config{
		Realm:  realm,
		Client: cloakroom.ClientCredentials{ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret},
	})
	if err != nil {
		log.Fatal(err)
	}
	n, err := c.CountUsers(context.Background(), admin.UserQuery{})
	fmt.Println(n, err)
	// Output: 2 <nil>
}

func ExampleClient_CreateUser() {
	srv, c := startDemo()
	defer srv.Close()
	ctx := context.Background()

	id, err := c.CreateUser(ctx, admin.NewUser{
		Username: "carol", Email: "carol@example.com", FirstName: "Carol",
		Password: "change-me", TemporaryPassword: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	u, err := c.FindUserByUsername(ctx, "carol")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.ID == id, u.Enabled, u.RequiredActions)

	_, err = c.CreateUser(ctx, admin.NewUser{Username: "dave", Email: "carol@example.com"})
	fmt.Println(errors.Is(err, admin.ErrDuplicateEmail), errors.Is(err, admin.ErrConflict))
	// Output:
	// true true [UPDATE_PASSWORD]
	// true true
}

func ExampleClient_AllUsers() {
	srv, c := startDemo()
	defer srv.Close()

	for u, err := range c.AllUsers(context.Background(), admin.UserQuery{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.Username, u.Email)
	}
	// Output:
	// alice alice@example.com
	// bob bob@example.com
}

func ExampleClient_DisableUserAndLogout() {
	srv, c := startDemo()
	defer srv.Close()
	ctx := context.Background()

	bob, err := c.FindUserByUsername(ctx, "bob")
	if err != nil {
		log.Fatal(err)
	}
	// Disable and end every session: disabling alone leaves issued tokens
	// and (in some Keycloak versions) sessions alive.
	if err := c.DisableUserAndLogout(ctx, bob.ID); err != nil {
		log.Fatal(err)
	}
	sessions, _ := c.UserSessions(ctx, bob.ID)
	u, _ := c.GetUser(ctx, bob.ID)
	fmt.Println(u.Enabled, len(sessions))
	// Output: false 0
}

func ExampleAPIError() {
	srv, c := startDemo()
	defer srv.Close()

	err := c.DeleteSession(context.Background(), "no-such-session")
	var ae *admin.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Code, errors.Is(err, admin.ErrNotFound))
	}
	// Output: 404 Sesssion not found true
}

// The README's program: a service account finds a user, changes them, pages
// through every user, and tells the errors apart.
func Example() {
	srv, _ := startDemo() // keycloaktest's demo realm; in production, your Keycloak
	defer srv.Close()
	ctx := context.Background()

	realm, err := cloakroom.NewRealm(srv.Issuer("demo")) // the realm to manage
	if err != nil {
		log.Fatal(err)
	}
	kc, err := admin.New(admin.Config{
		Realm:  realm,
		Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret}, // a service account
	})
	if err != nil {
		log.Fatal(err)
	}
	u, err := kc.FindUserByUsername(ctx, "alice") // exact match
	if err != nil {
		log.Fatal(err)
	}
	if err := kc.UpdateUser(ctx, u.ID, admin.UserUpdate{Email: admin.Ptr("alice@new.example")}); err != nil {
		log.Fatal(err)
	}
	for u, err := range kc.AllUsers(ctx, admin.UserQuery{}) { // pages under the hood
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.Username, u.Email)
	}
	_, err = kc.CreateUser(ctx, admin.NewUser{Username: "carol", Email: "alice@new.example"})
	var apiErr *admin.APIError
	switch {
	case errors.Is(err, admin.ErrDuplicateEmail) && errors.As(err, &apiErr): // 409, told apart from ErrDuplicateUsername
		fmt.Println(apiErr.Status, apiErr.Message)
	case errors.Is(err, admin.ErrForbidden): // the message names the missing realm-management role
		fmt.Println(err)
	}
	// Output:
	// alice alice@new.example
	// bob bob@example.com
	// 409 User exists with same email
}
