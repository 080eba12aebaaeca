package bearer_test

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
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/hostileop"
	"github.com/cloakroom/cloakroom/internal/realmx"
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

// String returns the log with JSON/text quote escapes undone, so that
// patterns can name quoted values plainly.
func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.ReplaceAll(l.b.String(), `\"`, `"`)
}

// hostileAPI is an API protected by bearer, trusting a hostile provider.
type hostileAPI struct {
	realm   *cloakroom.Realm
	handler http.Handler
	log     *logBuf
	served  atomic.Int64 // requests that reached the API
}

func newHostileAPI(t *testing.T, op *hostileop.Server, realmOpts ...cloakroom.RealmOption) *hostileAPI {
	t.Helper()
	a := &hostileAPI{log: &logBuf{}}
	logger := slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	realm, err := cloakroom.NewRealm(op.Issuer(), append([]cloakroom.RealmOption{cloakroom.WithLogger(logger)}, realmOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: op.ClientID()})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v, bearer.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	a.realm = realm
	a.handler = auth.Authenticate(bearer.RequireAuthenticated()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.served.Add(1)
		p, _ := bearer.FromContext(r.Context())
		w.Write([]byte("hello " + p.ID))
	})))
	return a
}

func (a *hostileAPI) call(token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec
}

// TestHostileProviderBearer presents access tokens of a provider that
// misbehaves in one way per case. Every case ends in 401 (the token is
// bad) or 503 (the provider cannot be used), never in a call of the API,
// and the body or the log names the problem. The ID-token-only cases
// (nonce, at_hash, azp, several audiences, token_type, userinfo, RFC 9207
// iss) concern the login flow, not access tokens.
func TestHostileProviderBearer(t *testing.T) {
	t.Parallel()
	const (
		timeout = `context deadline exceeded|Client\.Timeout exceeded`
		tooBig  = `response larger than \d+ bytes`
	)
	tests := []struct {
		name   string
		c      hostileop.Case
		status int
		code   string // the JSON body's code
		reason string // regexp the body's detail (401) or the log (503) must match
	}{
		{"invalid signature", hostileop.InvalidSignature, 401, "token_not_valid", `token signature invalid: does not verify with key`},
		{"alg none", hostileop.AlgNone, 401, "token_not_valid", `token algorithm not allowed: unsigned token \(alg "none"\) is never accepted`},
		{"HS256 with the public key as PEM secret", hostileop.HS256PublicKeyPEM, 401, "token_not_valid", `HS256 is an HMAC algorithm and never accepted`},
		{"HS256 with the public key as DER secret", hostileop.HS256PublicKeyDER, 401, "token_not_valid", `HS256 is an HMAC algorithm and never accepted`},
		{"kid absent, one key", hostileop.KIDAbsentSingleKey, 401, "token_not_valid", `token signing key not found: token header has no kid`},
		{"kid absent, several keys", hostileop.KIDAbsentManyKeys, 401, "token_not_valid", `token signing key not found: token header has no kid`},
		{"token from another issuer", hostileop.IssuerMismatch, 401, "token_not_valid", `token issuer mismatch: token was issued by "https://impostor\.example/realms/hostile"`},
		{"discovery names another issuer", hostileop.DiscoveryIssuerMismatch, 500, "idp_misconfigured", `document names issuer "https://impostor\.example/realms/hostile", but the configured issuer is`},
		{"token for another client", hostileop.AudienceMismatch, 401, "token_not_valid", `token audience not accepted: aud \["another-client"\] does not include "hostile-client", and azp "another-client" is not an allowed authorized party`},
		{"issued in the future", hostileop.IssuedInFuture, 401, "token_not_valid", `token not yet valid: issued in the future`},
		{"expired", hostileop.Expired, 401, "token_expired", `token expired: expired at`},
		{"8 MB discovery document", hostileop.HugeDiscovery, 503, "idp_unavailable", `discovery http://\S+ .*` + tooBig},
		{"8 MB JWKS", hostileop.HugeJWKS, 503, "idp_unavailable", `jwks http://\S+ .*` + tooBig},
		{"slow discovery", hostileop.SlowDiscovery, 503, "idp_unavailable", `discovery http://\S+ .*(` + timeout + `)`},
		{"slow JWKS", hostileop.SlowJWKS, 503, "idp_unavailable", `jwks http://\S+ .*(` + timeout + `)`},
		{"honest control", hostileop.Honest, 200, "", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op := hostileop.New(t, hostileop.Options{})
			op.Misbehave(tt.c, hostileop.AccessTokens)
			// A client without a Timeout of its own: the Realm's request
			// timeout alone must bound the slow cases.
			api := newHostileAPI(t, op, cloakroom.WithRequestTimeout(time.Second), cloakroom.WithHTTPClient(&http.Client{}))
			token, err := op.AccessToken()
			if err != nil {
				t.Fatal(err)
			}
			rec := api.call(token)
			body := rec.Body.String()
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s\n%s", rec.Code, tt.status, body, api.log.String())
			}
			if tt.status == 200 {
				if body != "hello "+op.Subject() || api.served.Load() != 1 {
					t.Fatalf("honest token: %q", body)
				}
				return
			}
			if api.served.Load() != 0 {
				t.Error("the API was called")
			}
			if !strings.Contains(body, `"code":"`+tt.code+`"`) {
				t.Errorf("body %s, want code %s", body, tt.code)
			}
			where := strings.ReplaceAll(body, `\"`, `"`)
			switch {
			case tt.status == 503:
				where = api.log.String()
				if rec.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			case tt.status == 500:
				// A misconfiguration: named in the ERROR log, not to the
				// client, and nothing to retry.
				where = api.log.String()
				if !strings.Contains(where, "level=ERROR") || rec.Header().Get("Retry-After") != "" {
					t.Errorf("misconfiguration: Retry-After %q, log:\n%s", rec.Header().Get("Retry-After"), where)
				}
			default:
				if h := rec.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q", h)
				}
			}
			if !regexp.MustCompile(tt.reason).MatchString(where) {
				t.Errorf("the refusal does not name the problem (want /%s/):\nbody %s\nlog:\n%s", tt.reason, body, api.log.String())
			}
			// Refusals are logged at debug level with the reason, 503s at warn.
			if !regexp.MustCompile(tt.reason).MatchString(api.log.String()) {
				t.Errorf("the log does not name the problem (want /%s/):\n%s", tt.reason, api.log.String())
			}
		})
	}
}

// TestHostileProviderBearerKeyRotation (rp-key-rotation-op-sign-key): a
// token with a new kid is accepted after one refetch; a token signed with
// a key the provider removed is refused after the next fetch, even though
// it was verified (and cached) before.
func TestHostileProviderBearerKeyRotation(t *testing.T) {
	t.Parallel()
	op := hostileop.New(t, hostileop.Options{})
	api := newHostileAPI(t, op)
	mint := func() string {
		tok, err := op.AccessToken()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldKID, oldToken := op.KID(), mint()
	if rec := api.call(oldToken); rec.Code != 200 {
		t.Fatalf("first token: %d %s", rec.Code, rec.Body)
	}
	fetches := realmx.Of(api.realm).KeyFetches()

	if _, err := op.RotateKey(); err != nil {
		t.Fatal(err)
	}
	if rec := api.call(mint()); rec.Code != 200 {
		t.Fatalf("token with the new kid: %d %s", rec.Code, rec.Body)
	}
	if n := realmx.Of(api.realm).KeyFetches(); n != fetches+1 {
		t.Errorf("key fetches %d, want %d", n, fetches+1)
	}
	if rec := api.call(oldToken); rec.Code != 200 {
		t.Fatalf("old token while its key is still published: %d %s", rec.Code, rec.Body)
	}

	if err := op.RetireKey(oldKID); err != nil {
		t.Fatal(err)
	}
	if err := api.realm.RefreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := api.call(oldToken)
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "the issuer publishes no signing key with kid") || !strings.Contains(rec.Body.String(), oldKID) {
		t.Fatalf("token of a removed key: %d %s", rec.Code, rec.Body)
	}
	if api.served.Load() != 3 {
		t.Errorf("the API served %d requests, want 3", api.served.Load())
	}
}
