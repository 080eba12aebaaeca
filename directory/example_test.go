package directory_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/directory"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
)

// demo starts keycloaktest with the demo realm (users alice and bob; the
// "cloakroom" client's service account may manage users) and returns it
// with the realm and an admin client.
func demo() (*keycloaktest.Server, *cloakroom.Realm, *admin.Client) {
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
	ac, err := admin.New(admin.Config{
		Realm:  realm,
		Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret},
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, realm, ac
}

// verify checks a token minted by keycloaktest, as a service would.
func verify(realm *cloakroom.Realm, token string) *cloakroom.Claims {
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: keycloaktest.DemoClientID})
	if err != nil {
		log.Fatal(err)
	}
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func ExampleOpenSQLite() {
	srv, realm, ac := demo()
	defer srv.Close()
	dir, err := os.MkdirTemp("", "directory-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	users, err := directory.OpenSQLite(filepath.Join(dir, "users.db"), directory.WithAdmin(ac))
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	// Every login (or API call) keeps alice's row current.
	token, _ := srv.Realm("demo").Token("alice", keycloaktest.DemoClientID)
	u, err := users.UpsertFromClaims(context.Background(), verify(realm, token))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.ID, u.Username, u.Email, u.RealmRoles)
	// Output: 1 alice alice@example.com [admin default-roles-demo offline_access uma_authorization user]
}

func ExampleDirectory_Sync() {
	srv, _, ac := demo()
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "directory-example")
	defer os.RemoveAll(dir)
	users, err := directory.OpenSQLite(filepath.Join(dir, "users.db"), directory.WithAdmin(ac))
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()
	ctx := context.Background()
	for i := range 250 {
		srv.Realm("demo").AddUser(keycloaktest.UserConfig{Username: fmt.Sprintf("user%03d", i)})
	}

	rep, err := users.Sync(ctx, directory.SyncOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("seen %d, created %d\n", rep.Seen, rep.Created)

	// bob is deleted in Keycloak: the next run deactivates his row.
	srv.Realm("demo").DeleteUser("bob")
	rep, err = users.Sync(ctx, directory.SyncOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("seen %d, unchanged %d, deactivated %d: %s (%s)\n",
		rep.Seen, rep.Unchanged, rep.Deactivated, rep.DeactivatedUsers[0].Username, rep.DeactivatedUsers[0].Reason)
	// Output:
	// seen 252, created 252
	// seen 251, unchanged 251, deactivated 1: bob (not found in Keycloak)
}

// Wiring the directory into browser logins and API requests is one line
// each.
func ExampleDirectory_AfterLogin() {
	srv, realm, ac := demo()
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "directory-example")
	defer os.RemoveAll(dir)
	users, err := directory.OpenSQLite(filepath.Join(dir, "users.db"), directory.WithAdmin(ac))
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	// Browser logins: the profile and roles of every login, and the local
	// id in the session.
	cfg := login.Config{ /* Realm, ClientID, ... */ }
	cfg.AfterLogin = func(ctx context.Context, e *login.LoginEvent) error {
		return users.AfterLogin(ctx, e.IDClaims, e.AccessClaims, e.Values)
	}

	// API requests: the mapper puts the *directory.User in the principal.
	v, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: keycloaktest.DemoClientID})
	auth, err := bearer.New(v, bearer.WithUserMapper(func(ctx context.Context, p *bearer.Principal) (any, error) { return users.MapUser(ctx, p.Claims) }))
	if err != nil {
		log.Fatal(err)
	}
	api := auth.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := bearer.User[*directory.User](r.Context())
		fmt.Fprintf(w, "hello %s (local id %d)", u.Name(), u.ID)
	}))
	token, _ := srv.Realm("demo").Token("bob", keycloaktest.DemoClientID)
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	// Deactivating bob cuts him off at once, although his token is valid.
	bob, _ := users.BySubject(context.Background(), verify(realm, token).Subject())
	if _, err := users.Deactivate(context.Background(), bob.ID); err != nil {
		log.Fatal(err)
	}
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 200 hello Bob Builder (local id 1)
	// 403
}

func ExampleDirectory_UpsertFromClaims_deactivated() {
	srv, realm, ac := demo()
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "directory-example")
	defer os.RemoveAll(dir)
	users, _ := directory.OpenSQLite(filepath.Join(dir, "users.db"), directory.WithAdmin(ac))
	defer users.Close()
	ctx := context.Background()

	token, _ := srv.Realm("demo").Token("alice", keycloaktest.DemoClientID)
	claims := verify(realm, token)
	u, _ := users.UpsertFromClaims(ctx, claims)
	u, _ = users.Deactivate(ctx, u.ID)
	fmt.Println(u.Active(), u.Reason)

	_, err := users.UpsertFromClaims(ctx, claims)
	fmt.Println(errors.Is(err, directory.ErrDeactivated))
	// Output:
	// false deactivated
	// true
}
