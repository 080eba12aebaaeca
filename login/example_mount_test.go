package login_test

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// A web application with sign-in, a page only signed-in users see, and a
// sign-out button, run against keycloaktest and driven by a browser-like
// client: Mount serves the login routes at Config.Prefix, LoginURL and
// LogoutURL link to them, and Session.LogoutFormFields puts the CSRF token
// in the sign-out form.
func ExampleHandler_Mount() {
	kc, _ := keycloaktest.New(keycloaktest.WithDemoRealm()) // in production: your Keycloak
	_ = kc.Start("127.0.0.1:0")
	defer kc.Close()
	app := httptest.NewServer(nil) // the application; its handler is set below
	defer app.Close()

	realm, err := cloakroom.NewRealm(kc.Issuer("demo"))
	if err != nil {
		log.Fatal(err)
	}
	keys, _ := session.ParseKeys(session.GenerateKey()) // in production: from configuration
	ring, _ := session.NewKeyring(keys...)
	store := session.NewMemoryStore() // or sqlitestore.Open, redisstore.Open, pgstore.Open
	defer store.Close()
	sessions, _ := session.NewManager(session.Config{Store: store, Keyring: ring})
	auth, err := login.New(login.Config{
		Realm: realm, ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret,
		BaseURL: app.URL, Sessions: sessions,
	})
	if err != nil {
		log.Fatal(err)
	}

	page := template.Must(template.New("").Parse(`{{if .S}}Hello {{.S.Username}}. ` +
		`<form method="post" action="{{.Logout}}">{{.S.LogoutFormFields}}<button>Sign out</button></form>` +
		`{{else}}<a href="{{.Login}}">Sign in</a>{{end}}`))
	render := func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context()) // nil when nobody is signed in
		page.Execute(w, map[string]any{"S": s, "Login": auth.LoginURL("/profile"), "Logout": auth.LogoutURL("/")})
	}
	mux := http.NewServeMux()
	auth.Mount(mux) // /auth/: login, callback, logout, back-channel logout, register
	mux.HandleFunc("GET /{$}", render)
	mux.Handle("GET /profile", auth.RequireLogin(http.HandlerFunc(render)))
	app.Config.Handler = cloakroom.CanonicalPaths(auth.Middleware(mux))

	// A browser: it keeps cookies and follows redirects.
	csrfField := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	show := func(resp *http.Response, err error) string {
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		first, _, _ := strings.Cut(csrfField.ReplaceAllString(string(body), `name="csrf_token" value="…"`), "\n")
		fmt.Println(resp.Request.URL.Path, resp.StatusCode, first)
		return string(body)
	}
	show(browser.Get(app.URL + "/"))
	// /profile sends the browser to Keycloak's login form, and back.
	form := regexp.MustCompile(`id="kc-form-login"[^>]*action="([^"]+)"`).FindStringSubmatch(show(browser.Get(app.URL + "/profile")))
	body := show(browser.PostForm(html.UnescapeString(form[1]), url.Values{"username": {"alice"}, "password": {"alice"}}))
	// The sign-out button posts the CSRF token; Keycloak's session ends too.
	csrf := csrfField.FindStringSubmatch(body)
	show(browser.PostForm(app.URL+auth.LogoutURL("/"), url.Values{"csrf_token": {csrf[1]}}))
	// Output:
	// / 200 <a href="/auth/login?return_to=%2Fprofile">Sign in</a>
	// /realms/demo/protocol/openid-connect/auth 200 <!DOCTYPE html>
	// /profile 200 Hello alice. <form method="post" action="/auth/logout?return_to=%2F"><input type="hidden" name="csrf_token" value="…"><button>Sign out</button></form>
	// / 200 <a href="/auth/login?return_to=%2Fprofile">Sign in</a>
}
