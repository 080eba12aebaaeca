package e2e

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// The pages cloakroom renders itself (access denied, logout confirmation,
// signed out, errors), as a person sees them in Chromium: the text they
// read (innerText), that the shared style applies under the pages'
// Content-Security-Policy, that the buttons lead where they say, and a
// screenshot of each. The screenshots go to CLOAKROOM_TEST_SCREENSHOTS
// when set (to look at them), else to a temporary directory.

// readPage returns the page's innerText as a person reads it: one line
// per block, blank lines dropped.
func readPage(t *testing.T, ctx context.Context) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("main > #message"))); err != nil {
		t.Fatalf("not one of cloakroom's pages: %v", err)
	}
	s, err := js[string](ctx, `document.body.innerText`)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// checkReads checks the page's text, that the stylesheet applied (an
// inline style the CSP refused would leave main without its border), and
// takes a screenshot.
func checkReads(t *testing.T, ctx context.Context, name, want string) {
	t.Helper()
	if got := readPage(t, ctx); got != want {
		t.Errorf("%s reads\n%s\n--- want\n%s", name, got, want)
	}
	if radius, err := js[string](ctx, `getComputedStyle(document.querySelector("main")).borderTopLeftRadius`); err != nil || radius != "8px" {
		t.Errorf("%s: the stylesheet did not apply (main's border radius %q, %v): refused by the Content-Security-Policy?", name, radius, err)
	}
	if lang, err := js[string](ctx, `document.documentElement.lang + "|" + document.title`); err != nil || !strings.HasPrefix(lang, "en|") || lang == "en|" {
		t.Errorf("%s: lang and title %q, %v", name, lang, err)
	}
	screenshot(t, ctx, name)
}

// screenshot saves a PNG of the viewport and checks it is a picture of
// the page, not a blank: the right size, several colours, the primary
// button's blue among them.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("CLOAKROOM_TEST_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 {
		t.Errorf("%s: %v, want the 900x650 viewport", path, b)
	}
	colours, blue := palette(img)
	if colours < 16 || !blue {
		t.Errorf("%s looks blank: %d colours, primary blue present %v", path, colours, blue)
	}
	t.Logf("screenshot %s (%d bytes, %d colours)", path, len(buf), colours)
}

func palette(img image.Image) (int, bool) {
	seen := map[uint32]bool{}
	blue := false
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			seen[r<<16|g<<8|bl] = true
			blue = blue || (r == 0x0b && g == 0x57 && bl == 0xd0)
		}
	}
	return len(seen), blue
}

func viewport(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(900, 650)); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayPages: through cloakroom serve, bob meets the 403 page (in
// words, with a way home and a way to sign in as someone else), the
// logout confirmation (Cancel keeps him signed in and takes him back) and
// the login-expired error; "Sign in as someone else" lets alice in.
func TestGatewayPages(t *testing.T) {
	e := newGatewayEnv(t)
	ctx := chromium(t)
	viewport(t, ctx)
	e.gatewayLogin(t, ctx, "/", "bob")

	// 403.
	if code, err := status(ctx, e.url+"/admin/settings"); err != nil || code != http.StatusForbidden {
		t.Fatalf("bob on /admin/settings: %d, %v", code, err)
	}
	checkReads(t, ctx, "gateway-403", `Access denied
You are signed in as bob, but this page requires the role "admin".
If you need access, ask the site's administrator.
Go to the home page
Sign in as someone else`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#home")), chromedp.WaitVisible(chromedp.CSS("#where"))); err != nil {
		t.Fatalf("home: %v", err)
	}
	if where, err := text(ctx, "#where"); err != nil || where != "/" {
		t.Errorf("home led to %q, %v", where, err)
	}

	// The logout confirmation; Cancel goes back to the page and keeps the
	// session.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/reports?month=11"), chromedp.WaitVisible(chromedp.CSS("#logout-link")), chromedp.Click(chromedp.CSS("#logout-link")), chromedp.WaitVisible(chromedp.CSS("#logout")), pageLoaded); err != nil {
		t.Fatalf("logout link: %v", err)
	}
	checkReads(t, ctx, "gateway-logout-confirmation", `Sign out
You are signed in as bob. Do you want to sign out?
This also ends your single sign-on session, so you will need your password to sign in again.
Sign out
Cancel`)
	if tag, err := js[string](ctx, `document.activeElement && document.querySelector("#logout").tagName + " " + document.querySelector("#logout").type + " " + document.querySelector("#cancel").tagName`); err != nil || tag != "BUTTON submit A" {
		t.Errorf("sign out and cancel are %q, %v; want a button and a link", tag, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#cancel")), chromedp.WaitVisible(chromedp.CSS("#where"))); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != e.url+"/reports?month=11" {
		t.Errorf("cancel led to %q, %v", loc, err)
	}
	if who, err := text(ctx, "#username"); err != nil || who != "bob" {
		t.Errorf("after cancel: %q, %v; want still bob", who, err)
	}
	if n := len(e.kc.SessionIDs("bob")); n != 1 {
		t.Errorf("%d Keycloak sessions for bob after cancel", n)
	}

	// An error: a callback this browser did not start.
	if code, err := status(ctx, e.url+"/_cloakroom/callback?state=unknown&code=x"); err != nil || code != http.StatusBadRequest {
		t.Fatalf("callback: %d, %v", code, err)
	}
	checkReads(t, ctx, "gateway-login-expired", `Login expired
This login was not started in this browser, was already completed, or took too long.
Sign in again
Go to the home page`)
	if href, err := js[string](ctx, `document.querySelector("#retry").getAttribute("href")`); err != nil || href != "/_cloakroom/login" {
		t.Errorf("sign in again: %q, %v", href, err)
	}

	// Sign in as someone else: bob is signed out (Keycloak too), and
	// alice comes back to the page bob could not see.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/admin/settings"), chromedp.WaitVisible(chromedp.CSS("#switch-user")), chromedp.Click(chromedp.CSS("#switch-user"))); err != nil {
		t.Fatalf("sign in as someone else: %v", err)
	}
	if err := loginForm(ctx, "alice"); err != nil {
		t.Fatalf("the login form after sign in as someone else: %v", err)
	}
	if where, err := text(ctx, "#where"); err != nil || where != "/admin/settings" {
		t.Errorf("alice landed on %q, %v", where, err)
	}
	if n := len(e.kc.SessionIDs("bob")); n != 0 {
		t.Errorf("%d Keycloak sessions for bob after sign in as someone else", n)
	}
}

var signedOutApp = template.Must(template.New("p").Parse(`<!doctype html><title>app</title>
<p id="who">page of {{.Username}}</p><p><a id="logout-link" href="/auth/logout">Sign out</a></p>`))

// TestSignedOutAndUnavailablePages: with login.Config.SignedOutPage, a
// logout ends on "You have been signed out", whose button asks for the
// password again; an identity provider that cannot be reached gives the
// "temporarily unavailable" page with Try again.
func TestSignedOutAndUnavailablePages(t *testing.T) {
	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := idp.Realm("demo")
	var h http.Handler
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(app.Close)
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "webapp", Secret: "webapp-secret", StandardFlow: true,
		RedirectURIs: []string{app.URL + "/*"}, PostLogoutRedirectURIs: []string{app.URL + "/auth/logged-out"},
	}); err != nil {
		t.Fatal(err)
	}
	auth := newLogin(t, kc.Issuer(), app.URL, func(c *login.Config) { c.SignedOutPage = true })
	mux := http.NewServeMux()
	auth.Mount(mux)
	mux.Handle("/", auth.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		_ = signedOutApp.Execute(w, s)
	})))
	h = auth.Middleware(mux)

	// An application whose identity provider is down.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadIssuer := dead.URL + "/realms/gone"
	dead.Close()
	var h2 http.Handler
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h2.ServeHTTP(w, r) }))
	t.Cleanup(down.Close)
	auth2 := newLogin(t, deadIssuer, down.URL, nil)
	h2 = auth2.Middleware(auth2.RequireLogin(http.NotFoundHandler()))

	// An application configured with a wrong client secret.
	var h3 http.Handler
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h3.ServeHTTP(w, r) }))
	t.Cleanup(wrong.Close)
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "misconfigured", Secret: "the-right-secret", StandardFlow: true, RedirectURIs: []string{wrong.URL + "/*"},
	}); err != nil {
		t.Fatal(err)
	}
	auth3 := newLogin(t, kc.Issuer(), wrong.URL, func(c *login.Config) { c.ClientID = "misconfigured" })
	mux3 := http.NewServeMux()
	auth3.Mount(mux3)
	mux3.Handle("/", auth3.RequireLogin(http.NotFoundHandler()))
	h3 = auth3.Middleware(mux3)

	ctx := chromium(t)
	viewport(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(app.URL+"/inbox")); err != nil {
		t.Fatal(err)
	}
	if err := loginForm(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if who, err := text(ctx, "#who"); err != nil || who != "page of alice" {
		t.Fatalf("after login: %q, %v", who, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout-link")), chromedp.WaitVisible(chromedp.CSS("#logout")), pageLoaded); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	checkReads(t, ctx, "signed-out", `Signed out
You have been signed out.
Sign in again`)
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, app.URL+"/auth/logged-out?") {
		t.Errorf("signed out at %q, %v", loc, err)
	}
	if n := len(kc.SessionIDs("alice")); n != 0 {
		t.Errorf("%d Keycloak sessions left after logout", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Errorf("sign in again does not ask for the password: %v", err)
	}

	if code, err := status(ctx, down.URL+"/reports?month=11"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("with the identity provider down: %d, %v", code, err)
	}
	checkReads(t, ctx, "unavailable", `Sign-in temporarily unavailable
The sign-in service cannot be reached right now. Please try again in a moment.
Try again
Go to the home page`)
	if href, err := js[string](ctx, `document.querySelector("#retry").getAttribute("href")`); err != nil || href != "/reports?month=11" {
		t.Errorf("try again: %q, %v", href, err)
	}
	// The identity provider refuses the application's client secret.
	if err := chromedp.Do(ctx, chromedp.Navigate(wrong.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if err := loginForm(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	checkReads(t, ctx, "misconfigured", `Sign-in is misconfigured
You cannot sign in to this site at the moment: its sign-in settings do not match those of the sign-in service.
This cannot be fixed from your browser. Please tell the site's administrator.
Go to the home page`)
}

func newLogin(t *testing.T, issuer, baseURL string, edit func(*login.Config)) *login.Handler {
	t.Helper()
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	mgr, err := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	realm, err := cloakroom.NewRealm(issuer, cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	cfg := login.Config{Realm: realm, ClientID: "webapp", ClientSecret: "webapp-secret", BaseURL: baseURL, Sessions: mgr, Logger: quiet}
	if edit != nil {
		edit(&cfg)
	}
	h, err := login.New(cfg)
	if err != nil {
		t.Fatal(fmt.Errorf("login.New: %w", err))
	}
	return h
}
