package login_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// FuzzBackchannelLogout posts arbitrary bodies (and content types) to the
// back-channel logout endpoint: it never panics, answers only 200 or 400,
// and 200 only for a body carrying exactly one logout token that an
// independent logout-token verifier accepts.
func FuzzBackchannelLogout(f *testing.F) {
	store := session.NewMemoryStore()
	f.Cleanup(func() { store.Close() })
	app := faulttest.NewLoginApp(f, store)
	realm, err := cloakroom.NewRealm(app.KC.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		f.Fatal(err)
	}
	oracle, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "webapp", Kind: cloakroom.LogoutToken})
	if err != nil {
		f.Fatal(err)
	}
	const form = "application/x-www-form-urlencoded"
	lt := keycloaktest.WithKind(keycloaktest.LogoutToken)
	for _, opts := range [][]keycloaktest.TokenOption{
		{lt},
		{lt, keycloaktest.WithoutClaim("sub")},
		{lt, keycloaktest.WithNonce("n")},
		{lt, keycloaktest.WithAudience("cloakroom")},
		{lt, keycloaktest.WithExpired()},
		{lt, keycloaktest.WithUnsigned()},
		nil,
	} {
		tok := app.KC.MustToken(f, "alice", "webapp", opts...)
		f.Add(form, "logout_token="+tok)
		f.Add(form+"; charset=utf-8", "logout_token="+tok+"&other=1")
		f.Add(form, "logout_token="+tok+"&logout_token="+tok)
	}
	f.Add(form, "")
	f.Add(form, "logout_token=")
	f.Add(form, "logout_token=%zz")
	f.Add(form, "logout_token=a.b.c;x=1")
	f.Add("application/json", `{"logout_token":"a.b.c"}`)
	f.Add("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"logout_token\"\r\n\r\na.b.c\r\n--b--\r\n")
	f.Add("", "logout_token=a.b.c")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		req := httptest.NewRequest(http.MethodPost, "/auth/backchannel-logout", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			vals, err := url.ParseQuery(body)
			if err != nil || len(vals["logout_token"]) != 1 {
				t.Fatalf("200 for a body without exactly one logout_token: %q", body)
			}
			if _, err := oracle.Verify(context.Background(), vals["logout_token"][0]); err != nil {
				t.Fatalf("200 for a logout token the verifier refuses: %v", err)
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	})
}

// FuzzCallback calls the login callback with arbitrary query strings and
// Cookie headers, seeded with the state and sealed cookie of real logins
// in progress: it never panics, never answers 5xx (Keycloak is up), and
// never creates a session (no fuzzed input carries a code Keycloak issued).
func FuzzCallback(f *testing.F) {
	store := session.NewMemoryStore()
	f.Cleanup(func() { store.Close() })
	app := faulttest.NewLoginApp(f, store)
	iss := url.QueryEscape(app.KC.Issuer())
	for i := range 2 {
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/auth/login?return_to=/private", nil))
		loc, err := url.Parse(w.Header().Get("Location"))
		cookies := w.Result().Cookies()
		if err != nil || len(cookies) != 1 {
			f.Fatalf("login start: %d %v %v", w.Code, err, cookies)
		}
		state := loc.Query().Get("state")
		pending := cookies[0].Name + "=" + cookies[0].Value
		f.Add("state="+state+"&code=forged&iss="+iss+"&session_state=x", pending)
		f.Add("state="+state+"&code=forged", pending+"; "+faulttest.AppCookie+"=planted")
		f.Add("state="+state+"&error=access_denied&iss="+iss, pending)
		f.Add("state="+state+"&error=temporarily_unavailable&error_description=authentication_expired", pending)
		f.Add("state="+state+"&code=forged&iss=http://evil.example/realms/demo", pending)
		f.Add("state="+state+"&state=other&code=a&code=b", pending)
		f.Add("state="+state+"&code=forged", "")
		if i == 0 {
			f.Add("state=other&code=forged", pending)
		}
	}
	f.Add("", "")
	f.Add("state=%zz&code=%", "a=b; c")
	f.Add("code=forged", "cloakroom-login-x=y")
	f.Fuzz(func(t *testing.T, query, cookies string) {
		req := httptest.NewRequest(http.MethodGet, "/auth/callback", nil)
		req.URL.RawQuery = query
		if cookies != "" {
			req.Header.Set("Cookie", cookies)
		}
		w := httptest.NewRecorder()
		app.Handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		for _, c := range w.Result().Cookies() {
			if c.Name == faulttest.AppCookie && c.Value != "" {
				t.Fatal("the callback set a session cookie")
			}
		}
		if n := store.Len(); n != 0 {
			t.Fatalf("%d sessions stored", n)
		}
	})
}
