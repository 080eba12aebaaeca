package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Put the gateway in front of an application that knows nothing of
// Keycloak: the application reads who is calling from X-Forwarded-*
// headers. The same Config is what `cloakroom serve` reads from YAML; a
// *Gateway is an http.Handler (Run or Serve listen for you).
func ExampleNew() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm()) // in production: your Keycloak
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Forwarded-Preferred-Username"))
	}))
	defer app.Close()

	g, err := gateway.New(context.Background(), gateway.Config{
		Issuer: kc.Issuer("demo"), ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret,
		Session: gateway.SessionConfig{Store: "memory:"}, // sqlite:PATH, redis://…, postgres://… (import the store package)
		Routes: []gateway.Route{
			{Name: "admin", Path: "/api/admin", Mode: "api", Upstream: app.URL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "api", Path: "/api", Mode: "api", Upstream: app.URL},
			{Name: "site", Path: "/", Upstream: app.URL}, // browser routes log in through Keycloak
		},
	}, gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	front := httptest.NewServer(g)
	defer front.Close()

	for _, user := range []string{"alice", "bob", ""} {
		for _, path := range []string{"/api/hello", "/api/admin/stats"} {
			req, _ := http.NewRequest("GET", front.URL+path, nil)
			if user != "" {
				token, _ := kc.Realm("demo").Token(user, keycloaktest.DemoClientID)
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%-5s %-16s %d %s\n", user, path, resp.StatusCode, bytes.TrimSpace(body))
		}
	}
	// Output:
	// alice /api/hello       200 hello alice
	// alice /api/admin/stats 200 hello alice
	// bob   /api/hello       200 hello bob
	// bob   /api/admin/stats 403 {"code":"permission_denied","detail":"This page requires the role \"admin\"."}
	//       /api/hello       401 {"code":"not_authenticated","detail":"Authentication credentials were not provided."}
	//       /api/admin/stats 401 {"code":"not_authenticated","detail":"Authentication credentials were not provided."}
}
