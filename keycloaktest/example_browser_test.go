package keycloaktest_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Drive the browser login of the authorization code flow with net/http: a
// cookie jar, no redirect following (the redirect URI need not run), and
// the login form found by Keycloak's element ids.
func ExampleServer_browserLogin() {
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

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	redirectURI := "http://127.0.0.1:8000/callback"
	auth := srv.Issuer("demo") + "/protocol/openid-connect/auth?" + url.Values{
		"client_id": {keycloaktest.DemoClientID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"xyz"},
	}.Encode()

	// 1. The login page.
	resp, err := browser.Get(auth)
	if err != nil {
		fmt.Println(err)
		return
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		fmt.Println("no login form")
		return
	}

	// 2. Submit it; the answer is a redirect to the client with a code.
	resp, err = browser.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {"alice"}, "password": {"alice"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	fmt.Println(resp.StatusCode, strings.HasPrefix(loc.String(), redirectURI), loc.Query().Get("state"), loc.Query().Get("iss") == srv.Issuer("demo"))

	// 3. Exchange the code at the token endpoint.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirectURI}}
	req, _ := http.NewRequest(http.MethodPost, srv.Issuer("demo")+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(keycloaktest.DemoClientID, keycloaktest.DemoClientSecret)
	tok, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok.Body.Close()
	fmt.Println(tok.StatusCode)
	// Output:
	// 302 true xyz true
	// 200
}
