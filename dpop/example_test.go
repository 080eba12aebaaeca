package dpop_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/dpop"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// A Go client gets a DPoP-bound token from Keycloak (here keycloaktest)
// with x/oauth2 over a dpop.Transport, and calls an API protected by
// bearer: the token is useless without the key.
func Example() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm())
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()
	realm := kc.Realm("demo")

	// The API.
	r, err := cloakroom.NewRealm(realm.Issuer())
	if err != nil {
		log.Fatal(err)
	}
	v, err := r.NewVerifier(cloakroom.VerifierConfig{ClientID: keycloaktest.DemoClientID})
	if err != nil {
		log.Fatal(err)
	}
	auth, err := bearer.New(v, bearer.WithDPoP(bearer.DPoPConfig{Mode: bearer.DPoPRequire}))
	if err != nil {
		log.Fatal(err)
	}
	api := &http.Server{Handler: auth.Authenticate(bearer.RequireAuthenticated()(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			p, _ := bearer.FromContext(r.Context())
			fmt.Fprintf(w, "hello %s, key %t", p.Username, p.DPoPKey != "")
		})))}
	ln, base := listen()
	go api.Serve(ln)
	defer api.Close()

	// The client.
	key, _ := dpop.GenerateKey()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: &dpop.Transport{Key: key}})
	cfg := oauth2.Config{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: realm.Issuer() + "/protocol/openid-connect/token"}}
	tok, err := cfg.PasswordCredentialsToken(ctx, "alice", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("token type:", tok.TokenType)
	res, err := cfg.Client(ctx, tok).Get(base + "/things")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.StatusCode, string(body))

	// The same token without the key: refused.
	req, _ := http.NewRequest("GET", base+"/things", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, _ = http.DefaultClient.Do(req)
	res.Body.Close()
	fmt.Println(res.StatusCode, strings.Split(res.Header.Get("WWW-Authenticate"), " ")[0])
	// Output:
	// token type: DPoP
	// 200 hello alice, key true
	// 401 DPoP
}
