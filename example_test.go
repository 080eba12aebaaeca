package cloakroom_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// A service verifies Keycloak access tokens with a Realm and a Verifier.
// keycloaktest stands in for Keycloak so the example runs anywhere.
func ExampleRealm_NewVerifier() {
	kc, err := keycloaktest.New(keycloaktest.WithDemoRealm())
	if err != nil {
		log.Fatal(err)
	}
	if err := kc.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer kc.Close()
	token, _ := kc.Realm("demo").Token("alice", "cloakroom")

	// In production: cloakroom.NewRealm("https://sso.example.com/realms/demo").
	realm, err := cloakroom.NewRealm(kc.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Username(), claims.HasRealmRole("admin"), claims.Subject() != "")
	// Output: alice true true
}

// Errors name what is wrong and compare with errors.Is.
func ExampleVerifier_Verify_errors() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm())
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()
	expired, _ := kc.Realm("demo").Token("alice", "cloakroom", keycloaktest.WithExpired())

	realm, _ := cloakroom.NewRealm(kc.Issuer("demo"))
	verifier, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
	_, err := verifier.Verify(context.Background(), expired)
	switch {
	case errors.Is(err, cloakroom.ErrExpired):
		fmt.Println("expired: ask the client to refresh")
	case errors.Is(err, cloakroom.ErrUnavailable):
		fmt.Println("Keycloak unreachable: answer 503")
	case err != nil:
		fmt.Println("invalid token")
	}
	// Output: expired: ask the client to refresh
}

// Keycloak puts only "account" in aud unless the issuing client has an
// Audience mapper; AuthorizedParties accepts tokens of named clients instead.
func ExampleVerifierConfig_authorizedParties() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm())
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()
	token, _ := kc.Realm("demo").Token("bob", "cloakroom", keycloaktest.WithAudience("account"))

	realm, _ := cloakroom.NewRealm(kc.Issuer("demo"))
	strict, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orders-api"})
	_, err := strict.Verify(context.Background(), token)
	fmt.Println(errors.Is(err, cloakroom.ErrAudience))

	lenient, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orders-api", AuthorizedParties: []string{"cloakroom"}})
	_, err = lenient.Verify(context.Background(), token)
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

// CanonicalPaths goes around the whole router, so the path a role check
// matched is the path every handler reads.
func ExampleCanonicalPaths() {
	mux := http.NewServeMux()
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "admin area") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "public: ", r.URL.Path) })
	h := cloakroom.CanonicalPaths(mux)

	for _, target := range []string{"/public/..%2fadmin/", "/public/../admin/", "/%70ublic/x"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		fmt.Println(target, "→", w.Code, w.Header().Get("Location"), strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// /public/..%2fadmin/ → 400  {"code":"bad_request_target","detail":"path: percent-encoded slash (%2f) inside a path segment: upstreams disagree on whether it separates segments"}
	// /public/../admin/ → 308 /admin/ <a href="/admin/">Permanent Redirect</a>.
	// /%70ublic/x → 200  public: /public/x
}
