package e2e

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pageLoaded waits until the current document has finished loading. Tests
// put it between finding a button on a page reached by a link and
// clicking it: a click while Chromium is still replacing the document can
// fail with "Could not find node with given id" (it did once, on a loaded
// CI machine).
var pageLoaded = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := chromedp.Poll[bool](`document.readyState === "complete"`)(ctx, t)
	return err
})

// chromium returns a browser context for a headless Chromium, or skips the
// test when CLOAKROOM_TEST_CHROMIUM (the browser's path) is not set.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CLOAKROOM_TEST_CHROMIUM")
	if path == "" {
		t.Skip("set CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if _, err := chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatalf("starting Chromium at %s: %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

var privatePage = template.Must(template.New("p").Parse(`<!doctype html><title>private</title>
<p id="who">private page of {{.Username}}</p>
<form method="post" action="/auth/logout"><input type="hidden" name="csrf_token" value="{{.CSRFToken}}"><button id="logout">Log out</button></form>`))

// webapp starts keycloaktest with the demo realm and an application using
// the login package with the default SQLite session store.
func webapp(t *testing.T) (appURL string, kc *keycloaktest.Realm) {
	t.Helper()
	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc = idp.Realm("demo")
	var h http.Handler
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(app.Close)
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "webapp", Secret: "webapp-secret", StandardFlow: true,
		RedirectURIs: []string{app.URL + "/*"}, PostLogoutRedirectURIs: []string{app.URL + "/*"},
		BackchannelLogoutURL: app.URL + "/auth/backchannel-logout", BackchannelLogoutSessionRequired: true,
	}); err != nil {
		t.Fatal(err)
	}
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	mgr, _ := session.NewManager(session.Config{Store: store, Keyring: ring})
	realm, _ := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
	auth, err := login.New(login.Config{Realm: realm, ClientID: "webapp", ClientSecret: "webapp-secret", BaseURL: app.URL, Sessions: mgr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	auth.Mount(mux)
	mux.Handle("/private", auth.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		_ = privatePage.Execute(w, s)
	})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := login.FromContext(r.Context()); ok {
			fmt.Fprintf(w, "<p id=\"who\">home of %s</p>", template.HTMLEscapeString(s.Username))
			return
		}
		io.WriteString(w, `<p id="who">home of nobody</p>`)
	})
	h = auth.Middleware(mux)
	return app.URL, kc
}

func text(ctx context.Context, sel string) (string, error) {
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return "", err
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	return strings.TrimSpace(s), err
}

// TestBrowserLoginLogout: a real browser is sent from a protected page to
// the keycloaktest login form, logs in, lands back on the page; logging out
// ends the Keycloak session too, so the next visit asks for the password.
func TestBrowserLoginLogout(t *testing.T) {
	ctx := chromium(t)
	appURL, kc := webapp(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(appURL+"/private"),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice"),
		chromedp.Click(chromedp.CSS("#kc-login")),
	)
	if err != nil {
		t.Fatal(err)
	}
	who, err := text(ctx, "#who")
	if err != nil || who != "private page of alice" {
		t.Fatalf("after login: %q, %v", who, err)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != appURL+"/private" {
		t.Fatalf("landed on %q, %v", loc, err)
	}
	if len(kc.SessionIDs("alice")) != 1 {
		t.Fatal("no Keycloak session for alice")
	}

	// RunResponse waits for the page the logout ends on; a plain Click
	// would let the next query read the old page's #who.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	if who, err := text(ctx, "#who"); err != nil || who != "home of nobody" {
		t.Fatalf("after logout: %q, %v", who, err)
	}
	if n := len(kc.SessionIDs("alice")); n != 0 {
		t.Fatalf("%d Keycloak sessions left after logout", n)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(appURL+"/private"), chromedp.WaitVisible(chromedp.CSS("#kc-form-login"))); err != nil {
		t.Fatalf("the next visit did not ask for the password: %v", err)
	}
}

// TestBrowserWrongPassword: the keycloaktest form shows Keycloak's error.
func TestBrowserWrongPassword(t *testing.T) {
	ctx := chromium(t)
	appURL, _ := webapp(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(appURL+"/private"),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong"),
		chromedp.Click(chromedp.CSS("#kc-login")),
	)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := text(ctx, ".kc-feedback-text")
	if err != nil || msg != "Invalid username or password." {
		t.Fatalf("error message %q, %v", msg, err)
	}
}
