package bearer_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Protect an API: Authenticate on every route, Require* where needed.
func ExampleAuthenticator_Authenticate() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm())
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()

	realm, err := cloakroom.NewRealm(kc.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
	if err != nil {
		log.Fatal(err)
	}
	auth, err := bearer.New(verifier)
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/api/me", bearer.RequireAuthenticated()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := bearer.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", p.Username)
	})))
	mux.Handle("/api/admin", bearer.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin area")
	})))
	api := httptest.NewServer(auth.Authenticate(mux)) // with chi: r.Use(auth.Authenticate)
	defer api.Close()

	for _, user := range []string{"alice", "bob", ""} {
		for _, path := range []string{"/api/me", "/api/admin"} {
			req, _ := http.NewRequest("GET", api.URL+path, nil)
			if user != "" {
				token, _ := kc.Realm("demo").Token(user, "cloakroom")
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				body = []byte(resp.Header.Get("WWW-Authenticate"))
			}
			fmt.Printf("%-5s %-10s %d %s\n", user, path, resp.StatusCode, body)
		}
	}
	// Output:
	// alice /api/me    200 hello alice
	// alice /api/admin 200 admin area
	// bob   /api/me    200 hello bob
	// bob   /api/admin 403 Bearer realm="demo", error="insufficient_scope", error_description="This page requires the role 'admin'."
	//       /api/me    401 Bearer realm="demo"
	//       /api/admin 401 Bearer realm="demo"
}
