package login_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/genericop"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// genericApp is an application logging users in at a provider that is not
// Keycloak (internal/genericop).
type genericApp struct {
	op  *genericop.Server
	srv *httptest.Server
	h   *login.Handler
}

func newGenericApp(t *testing.T, o genericop.Options, edit func(*login.Config)) *genericApp {
	t.Helper()
	o.ClientID, o.ClientSecret = "web", "web-secret"
	if o.Claims == nil {
		o.Claims = map[string]any{"groups": []string{"staff", "admin"}, "preferred_username": "gina"}
	}
	a := &genericApp{op: genericop.New(t, o)}
	realm, err := cloakroom.NewRealm(a.op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(make([]byte, 32))
	store := session.NewMemoryStore()
	t.Cleanup(func() { _ = store.Close() })
	mgr, err := session.NewManager(session.Config{Store: store, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(a.srv.Close)
	cfg := login.Config{
		Realm: realm, ClientID: "web", ClientSecret: "web-secret", BaseURL: a.srv.URL,
		Sessions: mgr, Logger: quiet, Verifier: cloakroom.VerifierConfig{Profile: cloakroom.GenericOIDC, RolesClaim: "groups"},
	}
	if edit != nil {
		edit(&cfg)
	}
	if a.h, err = login.New(cfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.h.Mount(mux)
	mux.Handle("/private", a.h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		fmt.Fprintf(w, "private page of %s (%s) sid=%s access-claims=%v token=%s csrf=%s", s.Username, s.Subject, s.SID(), s.AccessClaims != nil, s.AccessToken, s.CSRFToken)
	})))
	mux.Handle("/admin", a.h.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin page")
	})))
	mux.Handle("/root", a.h.RequireAllRealmRoles("admin", "root")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "root page")
	})))
	handler = a.h.Middleware(mux)
	return a
}

func field(t *testing.T, body, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, name+"=")
	if !ok {
		t.Fatalf("no %s= in %q", name, body)
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// TestGenericProviderCodeFlow logs in at a provider that is not Keycloak:
// opaque or RFC 9068 access tokens, with or without expires_in, profile
// generic or detected; roles come from the groups claim.
func TestGenericProviderCodeFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		opts         genericop.Options
		profile      cloakroom.Profile
		accessClaims bool
	}{
		{name: "opaque access token", profile: cloakroom.GenericOIDC},
		{name: "opaque access token, detected profile", profile: cloakroom.AutoDetect},
		{name: "opaque access token without expires_in", opts: genericop.Options{ExpiresIn: -1}, profile: cloakroom.GenericOIDC},
		{name: "RFC 9068 access token", opts: genericop.Options{JWTAccessTokens: true}, profile: cloakroom.GenericOIDC, accessClaims: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newGenericApp(t, tt.opts, func(c *login.Config) {
				c.Verifier.Profile = tt.profile
				// Refresh on every request: the tokens live 5 minutes.
				c.RefreshBefore = time.Hour
			})
			b := newBrowser(t)
			p := b.get(a.srv.URL + "/private")
			if p.status != http.StatusOK || !strings.Contains(p.body, "private page of gina (user-1)") {
				t.Fatalf("after login: %d at %s: %.300s", p.status, p.url, p.body)
			}
			if got := field(t, p.body, "access-claims"); got != fmt.Sprint(tt.accessClaims) {
				t.Errorf("AccessClaims present = %s, want %v", got, tt.accessClaims)
			}
			if p := b.get(a.srv.URL + "/admin"); p.status != http.StatusOK {
				t.Errorf("/admin with group admin: %d %.200s", p.status, p.body)
			}
			if p := b.get(a.srv.URL + "/root"); p.status != http.StatusForbidden {
				t.Errorf("/root without group root: %d", p.status)
			}
			// Refresh: a new access token, the same session.
			before := a.op.Refreshes()
			first := field(t, p.body, "token")
			p = b.get(a.srv.URL + "/private")
			if a.op.Refreshes() <= before || field(t, p.body, "token") == first {
				t.Errorf("no refresh: %d refreshes, token changed %v", a.op.Refreshes()-before, field(t, p.body, "token") != first)
			}
			if !strings.Contains(p.body, "(user-1)") {
				t.Errorf("after refresh: %.200s", p.body)
			}
		})
	}
}

// TestGenericProviderAccessTokenFaults: a JWT access token of another
// audience is carried opaque, but one that fails as a token of this issuer
// (wrong issuer, expired) fails the login.
func TestGenericProviderAccessTokenFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		overrides map[string]any
		wantOK    bool
	}{
		{"another audience: opaque", map[string]any{"aud": "other-api", "client_id": "other"}, true},
		{"ID-token claims: opaque", map[string]any{"nonce": "n"}, true},
		{"another issuer: refused", map[string]any{"iss": "http://evil.example/op"}, false},
		{"expired: refused", map[string]any{"exp": 1000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newGenericApp(t, genericop.Options{JWTAccessTokens: true, AccessOverrides: tt.overrides}, nil)
			p := newBrowser(t).get(a.srv.URL + "/private")
			switch {
			case tt.wantOK && (p.status != http.StatusOK || field(t, p.body, "access-claims") != "false"):
				t.Errorf("want an opaque access token: %d %.300s", p.status, p.body)
			case !tt.wantOK && (p.status != http.StatusBadRequest || !strings.Contains(p.body, "did not pass verification")):
				t.Errorf("want the login refused: %d %.300s", p.status, p.body)
			}
		})
	}
}

// TestGenericProviderKeycloakProfileRefuses: an explicit Keycloak profile
// is not relaxed for a provider that is not Keycloak.
func TestGenericProviderKeycloakProfileRefuses(t *testing.T) {
	t.Parallel()
	for _, jwt := range []bool{false, true} {
		a := newGenericApp(t, genericop.Options{JWTAccessTokens: jwt}, func(c *login.Config) { c.Verifier.Profile = cloakroom.Keycloak })
		p := newBrowser(t).get(a.srv.URL + "/private")
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "did not pass verification") {
			t.Errorf("JWT access tokens %v: %d %.300s", jwt, p.status, p.body)
		}
	}
}

// TestGenericProviderLogout: RP-initiated logout goes through the
// provider's end_session_endpoint, and a back-channel logout token for the
// session's sid ends the session.
func TestGenericProviderLogout(t *testing.T) {
	t.Parallel()
	a := newGenericApp(t, genericop.Options{}, nil)

	b := newBrowser(t)
	p := b.get(a.srv.URL + "/private")
	csrf := field(t, p.body, "csrf")
	p = b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {csrf}}, http.Header{"Origin": {a.srv.URL}})
	if !hopsInclude(b.hops, a.op.Issuer()+"/logout") || !hopsInclude(b.hops, a.srv.URL+"/auth/logged-out") {
		t.Errorf("logout did not pass the provider's end-session endpoint: %v", b.hops)
	}
	if b.get(a.srv.URL + "/private"); a.op.Logins() != 2 {
		t.Errorf("after logout, /private did not start a new login (%d logins)", a.op.Logins())
	}

	b2 := newBrowser(t)
	p = b2.get(a.srv.URL + "/private")
	sid := field(t, p.body, "sid")
	tok, err := a.op.LogoutToken(sid)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(a.srv.URL+"/auth/backchannel-logout", url.Values{"logout_token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout: %d", resp.StatusCode)
	}
	logins := a.op.Logins()
	if b2.get(a.srv.URL + "/private"); a.op.Logins() != logins+1 {
		t.Errorf("the session survived the back-channel logout")
	}
}

func hopsInclude(hops []string, prefix string) bool {
	for _, h := range hops {
		if strings.HasPrefix(h, prefix) {
			return true
		}
	}
	return false
}
