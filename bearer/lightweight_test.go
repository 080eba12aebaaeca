package bearer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// lightweightRealm is the demo realm whose client "cloakroom" issues
// lightweight access tokens (as Keycloak's "Always use lightweight access
// token"), and a client "full-app" that issues full ones for the same
// audience.
func lightweightRealm() keycloaktest.RealmConfig {
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	cfg.Clients[0].Attributes = map[string]string{"client.use.lightweight.access.token.enabled": "true"}
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{
		ClientID: "full-app", Secret: "full-secret", DirectAccessGrants: true, Audiences: []string{keycloaktest.DemoClientID},
	})
	return cfg
}

// countingTransport counts the introspection requests it forwards.
type countingTransport struct{ introspections atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/introspect") {
		c.introspections.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type lwEnv struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	v     *cloakroom.Verifier
	count *countingTransport
	creds cloakroom.ClientCredentials
}

func newLightweightEnv(t testing.TB) *lwEnv {
	t.Helper()
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(lightweightRealm()))
	kc := srv.Realm("demo")
	count := &countingTransport{}
	realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet),
		cloakroom.WithHTTPClient(&http.Client{Transport: count, Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: keycloaktest.DemoClientID})
	if err != nil {
		t.Fatal(err)
	}
	return &lwEnv{srv: srv, kc: kc, v: v, count: count,
		creds: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret}}
}

func (e *lwEnv) auth(t testing.TB, opts ...bearer.Option) *bearer.Authenticator {
	t.Helper()
	a, err := bearer.New(e.v, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// password logs a user in at the token endpoint (as a real client would).
func (e *lwEnv) password(t testing.TB, client, secret, user string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.kc.Issuer()+"/protocol/openid-connect/token", strings.NewReader(url.Values{
		"grant_type": {"password"}, "username": {user}, "password": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("password grant for %s/%s: status %d, %v", client, user, res.StatusCode, err)
	}
	return body.AccessToken
}

// roles answers with the principal's id, username and realm roles.
var roles = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, _ := bearer.FromContext(r.Context())
	fmt.Fprintf(w, "%s %s %v %s", p.ID, p.Username, p.Claims.RealmRoles(), p.Claims.Email())
})

func TestLightweightTokens(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	aliceID, _ := e.kc.UserID("alice")
	alice := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")
	bob := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "bob")
	full := e.password(t, "full-app", "full-secret", "alice")

	plain := e.auth(t).Authenticate(bearer.RequireAuthenticated()(roles))
	lw := e.auth(t, bearer.WithLightweightTokens(e.creds))
	admin := lw.Authenticate(bearer.RequireAnyRealmRole("admin")(roles))
	editor := lw.Authenticate(bearer.Require(cloakroom.AnyClientRole(keycloaktest.DemoClientID, "editor"))(roles))

	tests := []struct {
		name       string
		h          http.Handler
		token      string
		wantStatus int
		wantCode   string
		wantBody   string
	}{
		{"without the option a lightweight token is refused", plain, alice, 401, "token_not_valid", ""},
		{"roles come from introspection", admin, alice, 200, "", aliceID + " alice [admin default-roles-demo offline_access uma_authorization user] alice@example.com"},
		{"a missing role is refused", admin, bob, 403, "permission_denied", ""},
		{"a missing client role is refused", editor, alice, 403, "permission_denied", ""},
		{"a full token is verified as before", admin, full, 200, "", aliceID + " alice [admin default-roles-demo offline_access uma_authorization user] alice@example.com"},
		{"garbage is still refused", admin, "a.b.c", 401, "token_not_valid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := do(t, tt.h, withToken(tt.token))
			if res.status != tt.wantStatus || res.code != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.wantCode)
			}
			if tt.wantBody != "" && res.body != tt.wantBody {
				t.Fatalf("body %q, want %q", res.body, tt.wantBody)
			}
		})
	}
}

// The completed claims are cached until exp: Keycloak down does not
// refuse a token already completed; a token not yet completed gets 503,
// a token Keycloak says is inactive 401.
func TestLightweightFailsClosed(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	h := e.auth(t, bearer.WithLightweightTokens(e.creds)).Authenticate(bearer.RequireAnyRealmRole("user")(roles))
	seen := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")
	fresh := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "bob")
	full := e.password(t, "full-app", "full-secret", "bob")
	if res := do(t, h, withToken(seen)); res.status != 200 {
		t.Fatalf("first: %d %s", res.status, res.body)
	}
	if res := do(t, h, withToken(full)); res.status != 200 {
		t.Fatalf("full: %d %s", res.status, res.body)
	}
	calls := e.count.introspections.Load()
	for _, f := range []keycloaktest.Fault{{Refuse: true}, {Status: 500, Paths: []string{"/introspect"}}, {Status: 401, Paths: []string{"/introspect"}}} {
		e.srv.SetFault(f)
		if res := do(t, h, withToken(seen)); res.status != 200 {
			t.Errorf("fault %+v: cached token: %d %s", f, res.status, res.body)
		}
		if res := do(t, h, withToken(full)); res.status != 200 {
			t.Errorf("fault %+v: full token: %d %s", f, res.status, res.body)
		}
		res := do(t, h, withToken(fresh))
		if res.status != 503 || res.code != "idp_unavailable" {
			t.Errorf("fault %+v: uncompleted token: %d %s", f, res.status, res.body)
		}
		e.srv.ClearFault()
	}
	if n := e.count.introspections.Load() - calls; n != 3 {
		t.Errorf("%d introspections tried during the 3 faults, want 3: one for the uncompleted token each time, none for the full and the cached one", n)
	}
	// Inactive: the session ended before the token was ever seen.
	for _, sid := range e.kc.SessionIDs("bob") {
		e.kc.EndSession(sid)
	}
	if res := do(t, h, withToken(fresh)); res.status != 401 || res.code != "token_not_valid" {
		t.Fatalf("inactive: %d %s", res.status, res.body)
	}
}

// The introspecting client must be in the audience Keycloak computes for
// the token: otherwise Keycloak says "not active", and the refusal says
// why.
func TestLightweightAudienceHint(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	other := cloakroom.ClientCredentials{ClientID: "full-app", ClientSecret: "full-secret"}
	h := e.auth(t, bearer.WithLightweightTokens(other)).Authenticate(roles)
	res := do(t, h, withToken(e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")))
	if res.status != 401 || !strings.Contains(res.detail, "allow.token.introspection.without.audience.check") {
		t.Fatalf("%d %s", res.status, res.body)
	}
}

// Concurrent requests with one new token share one introspection; later
// ones use the cache.
func TestLightweightSingleIntrospection(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	h := e.auth(t, bearer.WithLightweightTokens(e.creds)).Authenticate(bearer.RequireAnyRealmRole("admin")(roles))
	tok := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests refused", failed.Load())
	}
	if n := e.count.introspections.Load(); n != 1 {
		t.Fatalf("%d introspections, want 1", n)
	}
}

// With WithIntrospection as well, a lightweight token's introspection is
// its revocation check too: one call, and CacheTTL bounds the completed
// claims.
func TestLightweightWithIntrospection(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	h := e.auth(t, bearer.WithLightweightTokens(e.creds),
		bearer.WithIntrospection(bearer.IntrospectionConfig{Client: e.creds})).Authenticate(roles)
	tok := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")
	for range 2 {
		if res := do(t, h, withToken(tok)); res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
	}
	if n := e.count.introspections.Load(); n != 2 {
		t.Fatalf("%d introspections for 2 requests with CacheTTL 0, want 2", n)
	}
	for _, sid := range e.kc.SessionIDs("alice") {
		e.kc.EndSession(sid)
	}
	if res := do(t, h, withToken(tok)); res.status != 401 {
		t.Fatalf("after logout: %d %s", res.status, res.body)
	}
}

func TestWithLightweightTokensConfig(t *testing.T) {
	t.Parallel()
	e := newLightweightEnv(t)
	for _, c := range []cloakroom.ClientCredentials{{}, {ClientID: "x"}, {ClientSecret: "y"}} {
		if _, err := bearer.New(e.v, bearer.WithLightweightTokens(c)); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
	a := e.auth(t)
	b, err := a.With(bearer.WithLightweightTokens(e.creds))
	if err != nil {
		t.Fatal(err)
	}
	tok := e.password(t, keycloaktest.DemoClientID, keycloaktest.DemoClientSecret, "alice")
	if res := do(t, a.Authenticate(roles), withToken(tok)); res.status != 401 {
		t.Errorf("original: %d", res.status)
	}
	if res := do(t, b.Authenticate(roles), withToken(tok)); res.status != 200 {
		t.Errorf("With: %d %s", res.status, res.body)
	}
}

// BenchmarkLightweight compares a request with a cached lightweight token
// with one with a (cached) full token: the cost per request of
// lightweight tokens once their introspection answer is cached.
func BenchmarkLightweight(b *testing.B) {
	e := newLightweightEnv(b)
	h := e.auth(b, bearer.WithLightweightTokens(e.creds)).Authenticate(bearer.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	for _, bc := range []struct{ name, client, secret string }{
		{"full", "full-app", "full-secret"},
		{"lightweight", keycloaktest.DemoClientID, keycloaktest.DemoClientSecret},
	} {
		tok := e.password(b, bc.client, bc.secret, "alice")
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(context.Background())
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.ServeHTTP(discard{}, r)
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return io.Discard.Write(p) }
func (discard) WriteHeader(int)             {}
