package login_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/hostileop"
	"github.com/cloakroom/cloakroom/internal/realmx"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// slowTimeout bounds each request to the provider in the slow cases: short
// enough to keep the tests fast, long enough for an honest answer on a
// loaded machine (the slow endpoints wait 30 s).
const slowTimeout = time.Second

// hostileApp is a web application logging users in at a hostile provider.
type hostileApp struct {
	url    string
	realm  *cloakroom.Realm
	log    *logBuf
	logins atomic.Int64
	info   atomic.Pointer[cloakroom.Claims] // LoginEvent.Userinfo of the last login
}

func newHostileApp(t *testing.T, op *hostileop.Server, edit func(*login.Config), realmOpts ...cloakroom.RealmOption) *hostileApp {
	t.Helper()
	a := &hostileApp{log: &logBuf{}}
	logger := slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	realm, err := cloakroom.NewRealm(op.Issuer(), append([]cloakroom.RealmOption{cloakroom.WithLogger(logger)}, realmOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	a.realm = realm
	keys, _ := session.ParseKeys(testKey)
	ring, _ := session.NewKeyring(keys...)
	store := session.NewMemoryStore()
	t.Cleanup(func() { _ = store.Close() })
	mgr, err := session.NewManager(session.Config{Store: store, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	cfg := login.Config{
		Realm: realm, ClientID: op.ClientID(), ClientSecret: op.ClientSecret(),
		BaseURL: srv.URL, Sessions: mgr, Logger: logger,
		AfterLogin: func(ctx context.Context, e *login.LoginEvent) error {
			a.logins.Add(1)
			if e.Userinfo != nil {
				a.info.Store(e.Userinfo)
			}
			return nil
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	lh, err := login.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	lh.Mount(mux)
	mux.Handle("/private", lh.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		w.Write([]byte("private page of " + s.Subject))
	})))
	h = lh.Middleware(mux)
	return a
}

// checkLog fails unless the log matches re (quotes unescaped).
func (a *hostileApp) checkLog(t *testing.T, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(strings.ReplaceAll(a.log.String(), `\"`, `"`)) {
		t.Errorf("the log does not name the problem (want /%s/):\n%s", re, a.log.String())
	}
}

func withUserinfo(c *login.Config) { c.FetchUserinfo = true }

// TestHostileProviderLogin drives the code flow against a provider that
// misbehaves in one way per case: every case must end on an error page
// (400 for an answer that fails verification, 503 for a provider that
// cannot be used), with no session, and a log line naming the problem.
func TestHostileProviderLogin(t *testing.T) {
	t.Parallel()
	const (
		timeout = `context deadline exceeded|Client\.Timeout exceeded`
		tooBig  = `response larger than \d+ bytes`
	)
	tests := []struct {
		name   string
		c      hostileop.Case
		on     hostileop.Tokens
		status int
		reason string // regexp the log must match
		// rawClient gives the Realm an http.Client without a Timeout of
		// its own (the Slow cases get a short request timeout).
		rawClient bool
	}{
		{"ID token with an invalid signature", hostileop.InvalidSignature, hostileop.IDTokens, 400, `ID token: token signature invalid: does not verify with key`, false},
		{"access token with an invalid signature", hostileop.InvalidSignature, hostileop.AccessTokens, 400, `access token: token signature invalid`, false},
		{"ID token alg none", hostileop.AlgNone, hostileop.IDTokens, 400, `ID token: token algorithm not allowed: unsigned token \(alg .none.\) is never accepted`, false},
		{"access token alg none", hostileop.AlgNone, hostileop.AccessTokens, 400, `access token: token algorithm not allowed: unsigned token`, false},
		{"ID token HS256 with the public key as PEM secret", hostileop.HS256PublicKeyPEM, hostileop.IDTokens, 400, `ID token: token algorithm not allowed: HS256 is an HMAC algorithm and never accepted`, false},
		{"ID token HS256 with the public key as DER secret", hostileop.HS256PublicKeyDER, hostileop.IDTokens, 400, `ID token: token algorithm not allowed: HS256 is an HMAC algorithm`, false},
		{"ID token without kid, one key", hostileop.KIDAbsentSingleKey, hostileop.IDTokens, 400, `ID token: token signing key not found: token header has no kid`, false},
		{"ID token without kid, several keys", hostileop.KIDAbsentManyKeys, hostileop.IDTokens, 400, `ID token: token signing key not found: token header has no kid`, false},
		{"ID token from another issuer", hostileop.IssuerMismatch, hostileop.IDTokens, 400, `ID token: token issuer mismatch: token was issued by .https://impostor\.example/realms/hostile.`, false},
		{"access token from another issuer", hostileop.IssuerMismatch, hostileop.AccessTokens, 400, `access token: token issuer mismatch`, false},
		{"discovery names another issuer", hostileop.DiscoveryIssuerMismatch, 0, 500, `document names issuer .https://impostor\.example/realms/hostile., but the configured issuer is`, false},
		{"ID token for another client", hostileop.AudienceMismatch, hostileop.IDTokens, 400, `ID token: token audience not accepted: aud .*another-client.* does not include this client`, false},
		{"access token for another client", hostileop.AudienceMismatch, hostileop.AccessTokens, 400, `access token: token audience not accepted`, false},
		{"ID token with two audiences, no azp", hostileop.MultipleAudiencesNoAZP, hostileop.IDTokens, 400, `ID token: token audience not accepted: aud includes .another-client., an audience this client does not trust`, false},
		{"ID token with a wrong azp", hostileop.WrongAZP, hostileop.IDTokens, 400, `ID token: token audience not accepted: azp .another-client. is not this client`, false},
		{"ID token issued in the future", hostileop.IssuedInFuture, hostileop.IDTokens, 400, `ID token: token not yet valid: issued in the future`, false},
		{"expired ID token", hostileop.Expired, hostileop.IDTokens, 400, `ID token: token expired: expired at`, false},
		{"expired access token", hostileop.Expired, hostileop.AccessTokens, 400, `access token: token expired`, false},
		{"ID token without nonce", hostileop.NonceMissing, hostileop.IDTokens, 400, `ID token: nonce missing, though the login sent one`, false},
		{"ID token with a wrong nonce", hostileop.NonceWrong, hostileop.IDTokens, 400, `ID token: nonce does not match the one sent`, false},
		{"ID token with a wrong at_hash", hostileop.AtHashWrong, hostileop.IDTokens, 400, `ID token: at_hash does not match the access token`, false},
		{"userinfo about another user", hostileop.UserinfoSubMismatch, 0, 400, `userinfo: sub .` + hostileop.OtherSubject + `. is not the ID token's sub`, false},
		{"token_type mac", hostileop.TokenTypeMAC, 0, 400, `token_type .mac. is not Bearer`, false},
		{"token_type DPoP", hostileop.TokenTypeDPoP, 0, 400, `token_type .DPoP. is not Bearer`, false},
		{"authorization response from another issuer", hostileop.ForeignIssInAuthResponse, 0, 400, `authorization response refused: its iss is not the issuer the login was sent to`, false},
		{"8 MB discovery document", hostileop.HugeDiscovery, 0, 503, `discovery http://\S+ .*` + tooBig, false},
		{"8 MB JWKS", hostileop.HugeJWKS, 0, 503, `jwks http://\S+ .*` + tooBig, false},
		{"8 MB token response", hostileop.HugeTokenResponse, 0, 503, `token http://\S+ .*` + tooBig, false},
		{"slow discovery", hostileop.SlowDiscovery, 0, 503, `discovery http://\S+ .*(` + timeout + `)`, false},
		{"slow JWKS", hostileop.SlowJWKS, 0, 503, `jwks http://\S+ .*(` + timeout + `)`, false},
		{"slow token endpoint", hostileop.SlowToken, 0, 503, `token http://\S+ .*(` + timeout + `)`, false},
		{name: "slow token endpoint, client without timeout", c: hostileop.SlowToken, status: 503, reason: `token http://\S+ .*(` + timeout + `)`, rawClient: true},
		{"slow userinfo", hostileop.SlowUserinfo, 0, 503, `userinfo http://\S+ .*(` + timeout + `)`, false},
		{name: "slow userinfo, client without timeout", c: hostileop.SlowUserinfo, status: 503, reason: `userinfo http://\S+ .*(` + timeout + `)`, rawClient: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op := hostileop.New(t, hostileop.Options{})
			op.Misbehave(tt.c, tt.on)
			var opts []cloakroom.RealmOption
			switch tt.c {
			case hostileop.SlowDiscovery, hostileop.SlowJWKS, hostileop.SlowToken, hostileop.SlowUserinfo:
				opts = append(opts, cloakroom.WithRequestTimeout(slowTimeout))
			}
			if tt.rawClient {
				opts = append(opts, cloakroom.WithHTTPClient(&http.Client{}))
			}
			a := newHostileApp(t, op, withUserinfo, opts...)
			b := newBrowser(t)
			pg := b.get(a.url + "/private")
			if pg.status != tt.status {
				t.Errorf("status %d at %s, want %d: %.300s", pg.status, pg.url, tt.status, pg.body)
			}
			if strings.Contains(pg.body, "private page") || a.logins.Load() != 0 {
				t.Error("the login succeeded")
			}
			if c := b.cookie(a.url, "cloakroom"); c != nil {
				t.Error("the browser got a session cookie")
			}
			a.checkLog(t, tt.reason)
			if tt.c == hostileop.ForeignIssInAuthResponse && op.Hits(hostileop.EndpointToken) != 0 {
				t.Error("the code was sent to the token endpoint after an authorization response from another issuer (RFC 9207: abort before the token request)")
			}
		})
	}

	// The same harness, honest provider: the login works, with and without
	// userinfo, so the refusals above are the cases' doing.
	for _, fetch := range []bool{false, true} {
		t.Run("honest provider, userinfo "+map[bool]string{false: "off", true: "on"}[fetch], func(t *testing.T) {
			t.Parallel()
			op := hostileop.New(t, hostileop.Options{})
			a := newHostileApp(t, op, func(c *login.Config) { c.FetchUserinfo = fetch })
			b := newBrowser(t)
			pg := b.get(a.url + "/private")
			if pg.status != 200 || pg.body != "private page of "+op.Subject() {
				t.Fatalf("honest login: %d at %s: %.300s\n%s", pg.status, pg.url, pg.body, a.log.String())
			}
			if b.cookie(a.url, "cloakroom") == nil || a.logins.Load() != 1 {
				t.Fatal("no session after an honest login")
			}
			info := a.info.Load()
			switch {
			case !fetch && (info != nil || op.Hits(hostileop.EndpointUserinfo) != 0):
				t.Error("userinfo was fetched though FetchUserinfo is off")
			case fetch && (info == nil || info.Subject() != op.Subject() || info.Email() != "alice@example.com"):
				t.Errorf("LoginEvent.Userinfo = %v", info)
			}
			a.checkLog(t, `login: user logged in`)
		})
	}
}

// TestHostileProviderRefresh: the provider answers a refresh with tokens
// that fail verification. The session ends (the next request is anonymous)
// and the log names the problem; the user is never kept logged in on them.
func TestHostileProviderRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		c      hostileop.Case
		on     hostileop.Tokens
		reason string
	}{
		{"ID token with an invalid signature", hostileop.InvalidSignature, hostileop.IDTokens, `ID token: token signature invalid`},
		{"access token alg none", hostileop.AlgNone, hostileop.AccessTokens, `access token: token algorithm not allowed: unsigned token`},
		{"access token HS256 with the public key", hostileop.HS256PublicKeyDER, hostileop.AccessTokens, `access token: token algorithm not allowed: HS256 is an HMAC algorithm`},
		{"access token from another issuer", hostileop.IssuerMismatch, hostileop.AccessTokens, `access token: token issuer mismatch`},
		{"access token for another client", hostileop.AudienceMismatch, hostileop.AccessTokens, `access token: token audience not accepted`},
		{"expired ID token", hostileop.Expired, hostileop.IDTokens, `ID token: token expired`},
		{"ID token without kid", hostileop.KIDAbsentManyKeys, hostileop.IDTokens, `ID token: token signing key not found: token header has no kid`},
		{"token_type DPoP", hostileop.TokenTypeDPoP, 0, `token_type .DPoP. is not Bearer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Tokens live 20 s and are refreshed 30 s before they expire:
			// every request refreshes, no clock needs to move.
			op := hostileop.New(t, hostileop.Options{AccessTokenLifetime: 20 * time.Second})
			a := newHostileApp(t, op, nil)
			b := newBrowser(t)
			if pg := b.get(a.url + "/private"); pg.status != 200 {
				t.Fatalf("honest login: %d: %.300s\n%s", pg.status, pg.body, a.log.String())
			}
			op.Misbehave(tt.c, tt.on)
			refreshes := op.Hits(hostileop.EndpointToken)
			js := b.do(http.MethodGet, a.url+"/private", nil, http.Header{"Accept": {"application/json"}})
			if js.status != 401 || !strings.Contains(js.body, `"code":"not_authenticated"`) {
				t.Errorf("after a refused refresh: %d %.300s", js.status, js.body)
			}
			if op.Hits(hostileop.EndpointToken) == refreshes {
				t.Error("no refresh happened")
			}
			if c := b.cookie(a.url, "cloakroom"); c != nil {
				t.Error("the session cookie survived")
			}
			a.checkLog(t, `refreshed tokens did not pass verification; ending the session.*`+tt.reason)
		})
	}
}

// TestHostileProviderKeyRotation (rp-key-rotation-op-sign-key): a new kid
// is accepted after a refetch; once the old key leaves the JWKS, sessions
// holding tokens it signed end at the next fetch.
func TestHostileProviderKeyRotation(t *testing.T) {
	t.Parallel()
	op := hostileop.New(t, hostileop.Options{})
	a := newHostileApp(t, op, nil)
	asJSON := http.Header{"Accept": {"application/json"}}
	alice := newBrowser(t)
	if pg := alice.get(a.url + "/private"); pg.status != 200 {
		t.Fatalf("first login: %d: %.300s", pg.status, pg.body)
	}
	oldKID := op.KID()
	fetches := realmx.Of(a.realm).KeyFetches()

	// The provider signs with a new key; the old one stays published.
	if _, err := op.RotateKey(); err != nil {
		t.Fatal(err)
	}
	bob := newBrowser(t)
	if pg := bob.get(a.url + "/private"); pg.status != 200 {
		t.Fatalf("login with the new key: %d: %.300s\n%s", pg.status, pg.body, a.log.String())
	}
	if realmx.Of(a.realm).KeyFetches() != fetches+1 {
		t.Errorf("key fetches: %d, want %d (one refetch for the new kid)", realmx.Of(a.realm).KeyFetches(), fetches+1)
	}
	if pg := alice.do(http.MethodGet, a.url+"/private", nil, asJSON); pg.status != 200 {
		t.Fatalf("session on the old, still published key: %d", pg.status)
	}

	// The old key is removed: cached keys serve until the next fetch...
	if err := op.RetireKey(oldKID); err != nil {
		t.Fatal(err)
	}
	if pg := alice.do(http.MethodGet, a.url+"/private", nil, asJSON); pg.status != 200 {
		t.Fatalf("before the next fetch: %d", pg.status)
	}
	// ...and after it, the session on the old key ends.
	if err := a.realm.RefreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pg := alice.do(http.MethodGet, a.url+"/private", nil, asJSON); pg.status != 401 || !strings.Contains(pg.body, "not_authenticated") {
		t.Fatalf("session on a removed key: %d %.200s", pg.status, pg.body)
	}
	a.checkLog(t, `stored access token refused; ending the session.*the issuer publishes no signing key with kid .`+regexp.QuoteMeta(oldKID))
	if pg := bob.do(http.MethodGet, a.url+"/private", nil, asJSON); pg.status != 200 {
		t.Fatalf("session on the new key: %d", pg.status)
	}
}
