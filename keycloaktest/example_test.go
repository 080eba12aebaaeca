package keycloaktest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Serve the demo realm and log alice in with the password grant, as a client
// of a real Keycloak would.
func ExampleNew() {
	srv, err := keycloaktest.New(keycloaktest.WithDemoRealm())
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}, "scope": {"openid"}}
	req, _ := http.NewRequest(http.MethodPost, srv.Issuer("demo")+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(keycloaktest.DemoClientID, keycloaktest.DemoClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var body struct {
		TokenType string `json:"token_type"`
		ExpiresIn int    `json:"expires_in"`
		Scope     string `json:"scope"`
	}
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &body)
	fmt.Println(resp.StatusCode, body.TokenType, body.ExpiresIn, body.Scope)
	// Output: 200 Bearer 300 openid email profile
}

// Mint tokens directly, including ones a verifier must refuse.
func ExampleRealm_Token() {
	srv, err := keycloaktest.New(keycloaktest.WithDemoRealm(), keycloaktest.WithPublicURL("http://sso.example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	realm := srv.Realm("demo")
	good, _ := realm.Token("alice", keycloaktest.DemoClientID)
	expired, _ := realm.Token("alice", keycloaktest.DemoClientID, keycloaktest.WithExpired())
	forged, _ := realm.Token("alice", keycloaktest.DemoClientID, keycloaktest.WithKeyConfusion(keycloaktest.PEM))
	logout, _ := realm.Token("alice", keycloaktest.DemoClientID, keycloaktest.WithKind(keycloaktest.LogoutToken))
	fmt.Println(strings.Count(good, "."), strings.Count(expired, "."), strings.Count(forged, "."), strings.Count(logout, "."))
	fmt.Println(realm.Issuer())
	// Output:
	// 2 2 2 2
	// http://sso.example/realms/demo
}

// Load a Keycloak realm export.
func ExampleParseRealm() {
	cfg, err := keycloaktest.ParseRealm([]byte(`{
	  "realm": "shop",
	  "accessTokenLifespan": 60,
	  "users": [{"username": "ann", "enabled": true, "credentials": [{"type": "password", "value": "pw"}]}],
	  "clients": [{"clientId": "web", "publicClient": true, "directAccessGrantsEnabled": true}]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Name, cfg.AccessTokenLifespan, cfg.Users[0].Username, cfg.Clients[0].ClientID)

	_, err = keycloaktest.ParseRealm([]byte(`{"realm":"shop","users":[{"username":"ann","credentials":[{"type":"webauthn"}]}]}`))
	fmt.Println(err)
	// Output:
	// shop 1m0s ann web
	// realm file: users[0].credentials[0].type: unsupported credential type "webauthn"
}

// Rotate the realm's signing key: the old key stays published.
func ExampleRealm_RotateKey() {
	srv, err := keycloaktest.New(keycloaktest.WithDemoRealm())
	if err != nil {
		fmt.Println(err)
		return
	}
	realm := srv.Realm("demo")
	before := realm.ActiveKeyID()
	after := realm.RotateKey()
	fmt.Println(before != after, realm.ActiveKeyID() == after)
	fmt.Println(realm.RemoveKey(before))
	// Output:
	// true true
	// <nil>
}

// Make the server unreachable, then bring it back.
func ExampleServer_SetFault() {
	srv, err := keycloaktest.New(keycloaktest.WithDemoRealm())
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	certs := srv.Issuer("demo") + "/protocol/openid-connect/certs"

	srv.SetFault(keycloaktest.Fault{Status: http.StatusServiceUnavailable, Paths: []string{"/certs"}})
	resp, err := http.Get(certs)
	if err == nil {
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	srv.ClearFault()
	resp, err = http.Get(certs)
	if err == nil {
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	// Output:
	// 503
	// 200
}

// Start a realm for a test.
func ExampleNewServer() {
	// In a test function:
	//
	//	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	//	token := srv.Realm("demo").MustToken(t, "alice", keycloaktest.DemoClientID)
	//	issuer := srv.Issuer("demo")
	cfg := keycloaktest.DemoRealm("secret")
	fmt.Println(cfg.Name, cfg.Clients[0].ClientID, cfg.Clients[1].ClientID)
	// Output: demo cloakroom cloakroom-public
}
