package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Keycloak's browser adapter, keycloak-js (interop/node/package.json pins
// the version), in headless Chromium against keycloaktest.

var (
	npmOnce sync.Once
	npmErr  error
)

// nodePackages returns interop/node with its npm packages installed,
// running `npm ci` once when node_modules is missing or older than
// package-lock.json (an installed tree needs no network). It skips the test
// unless CLOAKROOM_INTEROP_NODE is set.
func nodePackages(t *testing.T) string {
	t.Helper()
	if os.Getenv("CLOAKROOM_INTEROP_NODE") == "" {
		t.Skip("set CLOAKROOM_INTEROP_NODE=1 (needs node and npm) to run Keycloak's own JavaScript adapters")
	}
	dir, err := filepath.Abs(filepath.Join("..", "interop", "node"))
	if err != nil {
		t.Fatal(err)
	}
	npmOnce.Do(func() { npmErr = npmCI(dir) })
	if npmErr != nil {
		t.Fatal(npmErr)
	}
	return dir
}

func npmCI(dir string) error {
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// keycloakJSApp serves the keycloak-js test page on 127.0.0.1 with the
// adapter configuration (keycloak.json) of a public client "spa" of a
// keycloaktest demo realm (on 127.0.0.1 too). With crossSite the page is
// addressed as localhost, another site than Keycloak's.
func keycloakJSApp(t *testing.T, nodeDir string, crossSite bool) (appURL string, kc *keycloaktest.Realm) {
	t.Helper()
	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc = idp.Realm("demo")
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	appURL = app.URL
	if crossSite {
		appURL = strings.Replace(appURL, "//127.0.0.1:", "//localhost:", 1)
	}
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "spa", Public: true, StandardFlow: true,
		RedirectURIs: []string{appURL + "/*"}, WebOrigins: []string{"+"}, PostLogoutRedirectURIs: []string{"+"},
	}); err != nil {
		t.Fatal(err)
	}
	// The file Keycloak's admin console offers as "Keycloak OIDC JSON".
	adapterConfig, _ := json.Marshal(map[string]any{
		"realm": "demo", "auth-server-url": idp.URL() + "/", "resource": "spa",
		"public-client": true, "ssl-required": "external",
	})
	mux.HandleFunc("GET /keycloak.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(adapterConfig)
	})
	mux.Handle("GET /keycloak-js/", http.StripPrefix("/keycloak-js/",
		http.FileServer(http.Dir(filepath.Join(nodeDir, "node_modules", "keycloak-js", "lib")))))
	mux.Handle("GET /", http.FileServer(http.Dir(filepath.Join(nodeDir, "keycloak-js"))))
	return appURL, kc
}

// pageStatus waits until the page's #status reads want; "error: ..." or
// another final state fails at once. It survives navigations.
func pageStatus(ctx context.Context, want string) error {
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status")?.textContent ?? ""`))
		if err == nil {
			last = s
			switch {
			case s == want:
				return nil
			case strings.HasPrefix(s, "error"), s == "authenticated", s == "not authenticated":
				return fmt.Errorf("page status %q, want %q", s, want)
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("page status %q after 30s, want %q", last, want)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// js evaluates an expression in the page, awaiting a promise.
func js[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// loginForm fills the keycloaktest login form.
func loginForm(ctx context.Context, user string) error {
	return chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), user),
		chromedp.Click(chromedp.CSS("#kc-login")),
	)
}

// TestKeycloakJS: the official browser adapter logs in with
// onLoad=login-required (authorization code, PKCE S256, response_mode
// fragment; the token request is a credentialed cross-origin fetch), with
// and without the session status iframe; then it refreshes the token,
// loads userinfo and the account profile, finds the SSO session with
// check-sso (by redirect, by the session iframe and by a silent iframe),
// and logs out, after which check-sso reports not authenticated.
func TestKeycloakJS(t *testing.T) {
	for _, tc := range []struct {
		name       string
		query      string // init options of the page (see app.js)
		crossSite  bool
		wantIframe bool // keycloak-js keeps a session status iframe
	}{
		{"redirect", "iframe=0", false, false},
		{"session iframe", "iframe=1&interval=1", false, true},
		// Keycloak's SameSite=Lax cookies (plain HTTP) are not readable in
		// a frame of another site: the 3p-cookies check says so and
		// keycloak-js falls back to redirects.
		{"cross-site", "iframe=1&interval=1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodeDir := nodePackages(t)
			ctx := chromium(t)
			appURL, kc := keycloakJSApp(t, nodeDir, tc.crossSite)
			page := func(query string) string { return appURL + "/?" + query + "&" + tc.query }

			if err := chromedp.Do(ctx, chromedp.Navigate(page("onLoad=login-required"))); err != nil {
				t.Fatal(err)
			}
			if err := loginForm(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			if err := pageStatus(ctx, "authenticated"); err != nil {
				t.Fatal(err)
			}
			if who, err := text(ctx, "#user"); err != nil || who != "alice" {
				t.Fatalf("user %q, %v", who, err)
			}
			if len(kc.SessionIDs("alice")) != 1 {
				t.Fatal("no Keycloak session for alice")
			}
			// keycloak-js removed the response from the URL.
			if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != page("onLoad=login-required") {
				t.Errorf("location after login %q, %v", loc, err)
			}
			if azp, err := js[string](ctx, `keycloak.tokenParsed.azp + " " + keycloak.idTokenParsed.aud`); err != nil || azp != "spa spa" {
				t.Errorf("azp and ID token aud %q, %v", azp, err)
			}
			if iframe, err := js[bool](ctx, `document.querySelector('iframe[title="keycloak-session-iframe"]') !== null`); err != nil || iframe != tc.wantIframe {
				t.Errorf("session status iframe present: %v, %v; want %v", iframe, err, tc.wantIframe)
			}

			// A forced refresh: a new access token for the same session.
			refreshed, err := js[string](ctx, `(async () => {
				const before = keycloak.token
				const done = await keycloak.updateToken(-1)
				return done && keycloak.token !== before ? keycloak.tokenParsed.preferred_username : "not refreshed"
			})()`)
			if err != nil || refreshed != "alice" {
				t.Fatalf("updateToken(-1): %q, %v", refreshed, err)
			}
			info, err := js[string](ctx, `keycloak.loadUserInfo().then(u => u.preferred_username + " " + u.email)`)
			if err != nil || info != "alice alice@example.com" {
				t.Fatalf("loadUserInfo: %q, %v", info, err)
			}
			profile, err := js[string](ctx, `keycloak.loadUserProfile().then(p => [p.username, p.firstName, p.lastName, p.email].join(" "))`)
			if err != nil || profile != "alice Alice Liddell alice@example.com" {
				t.Fatalf("loadUserProfile: %q, %v", profile, err)
			}

			// A new page load finds the SSO session without the login form.
			for _, q := range []string{"onLoad=check-sso", "onLoad=check-sso&silent=1"} {
				if err := chromedp.Do(ctx, chromedp.Navigate(page(q))); err != nil {
					t.Fatal(err)
				}
				if err := pageStatus(ctx, "authenticated"); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			// Logout ends the Keycloak session and comes back to a
			// check-sso page, which is not authenticated.
			// (The old page's status is cleared first, so that it cannot be
			// mistaken for the next page's.)
			logout := fmt.Sprintf(`document.getElementById("status").textContent = "logging out"; keycloak.logout({redirectUri: %q})`, page("onLoad=check-sso"))
			if _, err := js[any](ctx, logout); err != nil {
				t.Fatal(err)
			}
			if err := pageStatus(ctx, "not authenticated"); err != nil {
				t.Fatal(err)
			}
			if n := len(kc.SessionIDs("alice")); n != 0 {
				t.Fatalf("%d Keycloak sessions left after logout", n)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(page("onLoad=check-sso&silent=1"))); err != nil {
				t.Fatal(err)
			}
			if err := pageStatus(ctx, "not authenticated"); err != nil {
				t.Fatalf("silent check-sso after logout: %v", err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(page("onLoad=login-required")), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
				t.Fatalf("login-required after logout did not show the login form: %v", err)
			}
		})
	}
}

// TestKeycloakJSSessionIframe: with the session status iframe, a logout in
// another tab of the same browser is noticed by the first tab (the
// KEYCLOAK_SESSION cookie is gone), which drops its tokens and, being
// login-required, goes back to the login form.
func TestKeycloakJSSessionIframe(t *testing.T) {
	nodeDir := nodePackages(t)
	ctx := chromium(t)
	appURL, kc := keycloakJSApp(t, nodeDir, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(appURL+"/?onLoad=login-required&iframe=1&interval=1")); err != nil {
		t.Fatal(err)
	}
	if err := loginForm(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := pageStatus(ctx, "authenticated"); err != nil {
		t.Fatal(err)
	}
	idToken, err := js[string](ctx, `keycloak.idToken`)
	if err != nil {
		t.Fatal(err)
	}

	tab, cancel := chromedp.NewContext(ctx)
	defer cancel()
	logout := kc.Issuer() + "/protocol/openid-connect/logout?" + url.Values{
		"client_id": {"spa"}, "id_token_hint": {idToken}, "post_logout_redirect_uri": {appURL + "/?onLoad=check-sso"},
	}.Encode()
	if err := chromedp.Do(tab, chromedp.Navigate(logout)); err != nil {
		t.Fatal(err)
	}
	if err := pageStatus(tab, "not authenticated"); err != nil {
		t.Fatalf("second tab after logout: %v", err)
	}
	if n := len(kc.SessionIDs("bob")); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Fatalf("the first tab did not notice the logout: %v", err)
	}
}
