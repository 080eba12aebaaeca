package bearer_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Accept Keycloak lightweight access tokens: the client "cloakroom"
// issues them ("Always use lightweight access token"), so they carry no
// sub and no roles; bearer gets those from token introspection, once per
// token, and the role check works unchanged.
func ExampleWithLightweightTokens() {
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	cfg.Clients[0].Attributes = map[string]string{"client.use.lightweight.access.token.enabled": "true"}
	kc, _ := keycloaktest.New(keycloaktest.WithRealm(cfg))
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
	auth, err := bearer.New(verifier, bearer.WithLightweightTokens(cloakroom.ClientCredentials{
		ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret, // a confidential client in the tokens' audience
	}))
	if err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(auth.Authenticate(bearer.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := bearer.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", p.Username)
	}))))
	defer api.Close()

	for _, user := range []string{"alice", "bob"} {
		// A real login at Keycloak's token endpoint.
		res, err := http.PostForm(kc.Issuer("demo")+"/protocol/openid-connect/token", url.Values{
			"grant_type": {"password"}, "client_id": {"cloakroom"}, "client_secret": {keycloaktest.DemoClientSecret},
			"username": {user}, "password": {user},
		})
		if err != nil {
			log.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(res.Body).Decode(&tok)
		res.Body.Close()
		claims, _ := cloakroom.ParseClaims(payload(tok.AccessToken))

		req, _ := http.NewRequest("GET", api.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: token has sub %q and roles %v; API answers %d %s\n", user, claims.Subject(), claims.RealmRoles(), resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// alice: token has sub "" and roles []; API answers 200 hello alice
	// bob: token has sub "" and roles []; API answers 403 {"code":"permission_denied","detail":"This page requires the role \"admin\"."}
}

// payload is a JWT's payload, for display only (never for checks: bearer
// verifies tokens).
func payload(token string) []byte {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return b
}
