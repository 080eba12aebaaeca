package login_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// Wiring login into an application, and the URLs to register for its
// client in Keycloak.
func ExampleNew() {
	realm, err := cloakroom.NewRealm("https://sso.example.com/realms/demo")
	if err != nil {
		log.Fatal(err)
	}
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	sessions, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring}) // Secure follows BaseURL
	auth, err := login.New(login.Config{
		Realm:        realm,
		ClientID:     "webapp",
		ClientSecret: "from-your-secret-store",
		BaseURL:      "https://app.example.com",
		Sessions:     sessions,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	auth.Mount(mux)
	mux.Handle("/account", auth.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", s.Username)
	})))
	_ = auth.Middleware(mux) // serve this

	fmt.Println("redirect URI:        ", auth.RedirectURI())
	fmt.Println("back-channel logout: ", auth.BackchannelLogoutURL())
	fmt.Println("login link:          ", auth.LoginURL("/account"))
	// Output:
	// redirect URI:         https://app.example.com/auth/callback
	// back-channel logout:  https://app.example.com/auth/backchannel-logout
	// login link:           /auth/login?return_to=%2Faccount
}
