package cloakroom_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// A service ("requester") that received alice's access token calls the
// orders API on her behalf with a token only that API accepts. In
// Keycloak the requester has Standard token exchange enabled and an
// Audience mapper for orders-api, and the users' client ("frontend") an
// Audience mapper for the requester. keycloaktest stands in for Keycloak.
func ExampleExchanger_Exchange() {
	audience := func(client string) keycloaktest.MapperConfig {
		return keycloaktest.MapperConfig{Name: "aud-" + client, Type: "oidc-audience-mapper",
			Config: map[string]string{"included.client.audience": client, "access.token.claim": "true"}}
	}
	kc, err := keycloaktest.New(keycloaktest.WithRealm(keycloaktest.RealmConfig{
		Name: "shop",
		Clients: []keycloaktest.ClientConfig{
			{ClientID: "frontend", Secret: "frontend-secret", DirectAccessGrants: true, Mappers: []keycloaktest.MapperConfig{audience("requester")}},
			{ClientID: "requester", Secret: "requester-secret", Mappers: []keycloaktest.MapperConfig{audience("orders-api")},
				Attributes: map[string]string{keycloaktest.ClientAttrStandardTokenExchange: "true"}},
			{ClientID: "orders-api", Secret: "orders-secret"},
		},
		Users: []keycloaktest.UserConfig{{Username: "alice", Password: "alice"}},
	}))
	if err != nil {
		log.Fatal(err)
	}
	if err := kc.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer kc.Close()
	resp, err := http.PostForm(kc.Issuer("shop")+"/protocol/openid-connect/token", url.Values{"grant_type": {"password"},
		"client_id": {"frontend"}, "client_secret": {"frontend-secret"}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		log.Fatal(err)
	}
	usersToken, err := readAccessToken(resp)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}

	// In production: cloakroom.NewRealm("https://sso.example.com/realms/shop").
	realm, err := cloakroom.NewRealm(kc.Issuer("shop"))
	if err != nil {
		log.Fatal(err)
	}
	exchanger, err := cloakroom.NewExchanger(realm, cloakroom.ExchangerConfig{
		Credentials: cloakroom.ClientCredentials{ClientID: "requester", ClientSecret: "requester-secret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := exchanger.Exchange(context.Background(), usersToken, "orders-api")
	if err != nil {
		log.Fatal(err)
	}
	// Send it: req.Header.Set("Authorization", "Bearer "+tok.AccessToken),
	// or oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok)).

	// The orders API accepts it as alice's, issued to the requester.
	verifier, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orders-api"})
	claims, err := verifier.Verify(context.Background(), tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.AuthorizedParty(), claims.Audience())

	// An audience the requester's tokens cannot name is a configuration
	// error that says what to change in Keycloak.
	_, err = exchanger.Exchange(context.Background(), usersToken, "frontend")
	fmt.Println(errors.Is(err, cloakroom.ErrMisconfigured))
	// Output:
	// requester [orders-api]
	// true
}
