package cloakroom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a keycloaktest server with the demo realm and a Realm pointed at it.
type env struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	realm *cloakroom.Realm
}

func newEnv(t *testing.T, opts ...cloakroom.RealmOption) *env {
	t.Helper()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	realm, err := cloakroom.NewRealm(kc.Issuer(), append([]cloakroom.RealmOption{cloakroom.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, kc: kc, realm: realm}
}

func (e *env) verifier(t *testing.T, cfg cloakroom.VerifierConfig) *cloakroom.Verifier {
	t.Helper()
	if cfg.ClientID == "" && !cfg.SkipAudienceCheck {
		cfg.ClientID = "cloakroom"
	}
	v, err := e.realm.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) token(t *testing.T, opts ...keycloaktest.TokenOption) string {
	t.Helper()
	return e.kc.MustToken(t, "alice", "cloakroom", opts...)
}

// TestSecurityDefaults has one case per rule of the design's security
// defaults; each case fails if its rule is removed from the verifier.
func TestSecurityDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	kt := keycloaktest.WithKind
	// Give the realm its ES256 and PS256 keys before the first fetch, so
	// that the parallel cases below do not depend on refetch timing.
	e.token(t, keycloaktest.WithAlgorithm("ES256"))
	e.token(t, keycloaktest.WithAlgorithm("PS256"))
	if err := e.realm.RefreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     cloakroom.VerifierConfig
		opts    []keycloaktest.TokenOption
		wantErr error
		wantMsg string
	}{
		{name: "valid access token", opts: nil},
		{name: "alg none", opts: []keycloaktest.TokenOption{keycloaktest.WithUnsigned()}, wantErr: cloakroom.ErrAlgorithm, wantMsg: "unsigned"},
		{name: "HS256 with the RSA public key (PEM) as secret", opts: []keycloaktest.TokenOption{keycloaktest.WithKeyConfusion(keycloaktest.PEM)}, wantErr: cloakroom.ErrAlgorithm, wantMsg: "HMAC"},
		{name: "HS256 with the RSA public key (DER) as secret", opts: []keycloaktest.TokenOption{keycloaktest.WithKeyConfusion(keycloaktest.DER)}, wantErr: cloakroom.ErrAlgorithm},
		{name: "signed by an unknown key", opts: []keycloaktest.TokenOption{keycloaktest.WithUnknownKey()}, wantErr: cloakroom.ErrUnknownKey},
		{name: "wrong kid", opts: []keycloaktest.TokenOption{keycloaktest.WithKeyID("not-a-published-kid")}, wantErr: cloakroom.ErrUnknownKey},
		{name: "no kid", opts: []keycloaktest.TokenOption{keycloaktest.WithHeader("kid", nil)}, wantErr: cloakroom.ErrUnknownKey, wantMsg: "no kid"},
		{name: "wrong issuer", opts: []keycloaktest.TokenOption{keycloaktest.WithIssuer("http://evil.example/realms/demo")}, wantErr: cloakroom.ErrIssuer},
		{name: "issuer with trailing slash", opts: []keycloaktest.TokenOption{keycloaktest.WithIssuer(e.kc.Issuer() + "/")}, wantErr: cloakroom.ErrIssuer},
		{name: "no issuer", opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("iss")}, wantErr: cloakroom.ErrMissingClaim},
		{name: "wrong audience", opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("account")}, wantErr: cloakroom.ErrAudience, wantMsg: "Audience mapper"},
		{name: "wrong audience names the azp fix", opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("account")}, wantErr: cloakroom.ErrAudience, wantMsg: "AuthorizedParties"},
		{name: "no audience", opts: []keycloaktest.TokenOption{keycloaktest.WithoutAudience(), keycloaktest.WithAZP("")}, wantErr: cloakroom.ErrAudience},
		{name: "azp allow-list lets a token without our aud in", cfg: cloakroom.VerifierConfig{AuthorizedParties: []string{"cloakroom"}}, opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("account")}},
		{name: "azp not on the allow-list", cfg: cloakroom.VerifierConfig{AuthorizedParties: []string{"frontend"}}, opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("account")}, wantErr: cloakroom.ErrAudience},
		{name: "skip audience check", cfg: cloakroom.VerifierConfig{SkipAudienceCheck: true}, opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("account")}},
		{name: "custom audiences", cfg: cloakroom.VerifierConfig{Audiences: []string{"orders-api"}}, opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("orders-api", "account")}},
		{name: "custom audiences replace the client id", cfg: cloakroom.VerifierConfig{Audiences: []string{"orders-api"}}, opts: nil, wantErr: cloakroom.ErrAudience},
		{name: "ID token as access token", opts: []keycloaktest.TokenOption{kt(keycloaktest.IDToken)}, wantErr: cloakroom.ErrTokenType, wantMsg: "ID token"},
		{name: "refresh token as access token (HS512)", opts: []keycloaktest.TokenOption{kt(keycloaktest.RefreshToken)}, wantErr: cloakroom.ErrAlgorithm},
		{name: "refresh-typ token as access token (RS256)", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("typ", "Refresh")}, wantErr: cloakroom.ErrTokenType, wantMsg: "refresh token"},
		{name: "offline-typ token as access token", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("typ", "Offline")}, wantErr: cloakroom.ErrTokenType},
		{name: "logout token as access token", opts: []keycloaktest.TokenOption{kt(keycloaktest.LogoutToken)}, wantErr: cloakroom.ErrTokenType},
		{name: "events claim on an access token", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("events", map[string]any{cloakroom.BackchannelLogoutEvent: map[string]any{}})}, wantErr: cloakroom.ErrTokenType},
		{name: "JOSE typ logout+jwt", opts: []keycloaktest.TokenOption{keycloaktest.WithHeader("typ", "logout+jwt")}, wantErr: cloakroom.ErrTokenType},
		{name: "JOSE typ at+jwt", opts: []keycloaktest.TokenOption{keycloaktest.WithHeader("typ", "at+jwt")}},
		{name: "JOSE typ application/at+jwt", opts: []keycloaktest.TokenOption{keycloaktest.WithHeader("typ", "application/at+jwt")}},
		{name: "no typ claim (Keycloak profile)", opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("typ")}, wantErr: cloakroom.ErrTokenType, wantMsg: "GenericOIDC"},
		{name: "no typ claim (generic profile)", cfg: cloakroom.VerifierConfig{Profile: cloakroom.GenericOIDC}, opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("typ")}},
		{name: "ID typ refused in the generic profile too", cfg: cloakroom.VerifierConfig{Profile: cloakroom.GenericOIDC}, opts: []keycloaktest.TokenOption{kt(keycloaktest.IDToken)}, wantErr: cloakroom.ErrTokenType},
		{name: "DPoP-bound token", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("typ", "DPoP")}, wantErr: cloakroom.ErrTokenType, wantMsg: "DPoP"},
		{name: "cnf.jkt on a Bearer-typ token", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("cnf", map[string]any{"jkt": "abc"})}, wantErr: cloakroom.ErrTokenType, wantMsg: "proof of possession"},
		{name: "cnf with another confirmation method", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("cnf", map[string]any{"x5t#S256": "abc"})}},
		{name: "expired", opts: []keycloaktest.TokenOption{keycloaktest.WithExpired()}, wantErr: cloakroom.ErrExpired},
		{name: "no exp", opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("exp")}, wantErr: cloakroom.ErrMissingClaim},
		{name: "no iat", opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("iat")}, wantErr: cloakroom.ErrMissingClaim},
		{name: "no sub", opts: []keycloaktest.TokenOption{keycloaktest.WithoutClaim("sub")}, wantErr: cloakroom.ErrMissingClaim},
		{name: "nbf in the future", opts: []keycloaktest.TokenOption{keycloaktest.WithNotBefore(time.Now().Add(time.Hour))}, wantErr: cloakroom.ErrNotYetValid},
		{name: "nbf in the past", opts: []keycloaktest.TokenOption{keycloaktest.WithNotBefore(time.Now().Add(-time.Minute))}},
		{name: "iat in the future", opts: []keycloaktest.TokenOption{keycloaktest.WithIssuedAt(time.Now().Add(time.Hour))}, wantErr: cloakroom.ErrNotYetValid},
		{name: "ES256 refused by default", opts: []keycloaktest.TokenOption{keycloaktest.WithAlgorithm("ES256")}, wantErr: cloakroom.ErrAlgorithm},
		{name: "ES256 opt-in", cfg: cloakroom.VerifierConfig{Algorithms: []string{"RS256", "ES256"}}, opts: []keycloaktest.TokenOption{keycloaktest.WithAlgorithm("ES256")}},
		{name: "PS256 refused by default", opts: []keycloaktest.TokenOption{keycloaktest.WithAlgorithm("PS256")}, wantErr: cloakroom.ErrAlgorithm},
		{name: "PS256 opt-in", cfg: cloakroom.VerifierConfig{Algorithms: []string{"PS256"}}, opts: []keycloaktest.TokenOption{keycloaktest.WithAlgorithm("PS256")}},
		{name: "RS256 refused when only PS256 is allowed", cfg: cloakroom.VerifierConfig{Algorithms: []string{"PS256"}}, wantErr: cloakroom.ErrAlgorithm},
		{name: "sub of wrong type", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("sub", 42)}, wantErr: cloakroom.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.CacheEntries = -1
			v := e.verifier(t, cfg)
			token := e.token(t, tt.opts...)
			claims, err := v.Verify(context.Background(), token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if id, _ := e.kc.UserID("alice"); claims.Subject() != id {
					t.Fatalf("sub = %q, want alice's id %q", claims.Subject(), id)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Verify err = %q, want it to mention %q", err, tt.wantMsg)
			}
			for _, part := range strings.Split(token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Fatal("the error message contains part of the token")
				}
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Expired 60s ago (WithExpired); a 90s leeway accepts it, 30s does not.
	token := e.token(t, keycloaktest.WithExpired())
	for _, tt := range []struct {
		leeway time.Duration
		ok     bool
	}{{0, false}, {30 * time.Second, false}, {90 * time.Second, true}} {
		v := e.verifier(t, cloakroom.VerifierConfig{Leeway: tt.leeway, CacheEntries: -1})
		_, err := v.Verify(context.Background(), token)
		if (err == nil) != tt.ok {
			t.Errorf("leeway %v: err = %v, want ok=%v", tt.leeway, err, tt.ok)
		}
	}
	// iat slightly in the future is skew, tolerated by the leeway.
	skewed := e.token(t, keycloaktest.WithIssuedAt(time.Now().Add(20*time.Second)))
	if _, err := e.verifier(t, cloakroom.VerifierConfig{Leeway: 30 * time.Second}).Verify(context.Background(), skewed); err != nil {
		t.Errorf("iat 20s ahead with 30s leeway: %v", err)
	}
	if _, err := e.verifier(t, cloakroom.VerifierConfig{}).Verify(context.Background(), skewed); !errors.Is(err, cloakroom.ErrNotYetValid) {
		t.Errorf("iat 20s ahead without leeway: err = %v, want ErrNotYetValid", err)
	}
}

func TestIDTokenRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := keycloaktest.WithKind(keycloaktest.IDToken)
	tests := []struct {
		name    string
		opts    []keycloaktest.TokenOption
		wantErr error
	}{
		{"valid", []keycloaktest.TokenOption{id, keycloaktest.WithNonce("n-1")}, nil},
		{"access token as ID token", nil, cloakroom.ErrTokenType},
		{"logout token as ID token", []keycloaktest.TokenOption{keycloaktest.WithKind(keycloaktest.LogoutToken)}, cloakroom.ErrTokenType},
		{"for another client", []keycloaktest.TokenOption{id, keycloaktest.WithAudience("other-app"), keycloaktest.WithAZP("other-app")}, cloakroom.ErrAudience},
		{"extra untrusted audience", []keycloaktest.TokenOption{id, keycloaktest.WithAudience("cloakroom", "other-app")}, cloakroom.ErrAudience},
		{"azp of another client", []keycloaktest.TokenOption{id, keycloaktest.WithAZP("other-app")}, cloakroom.ErrAudience},
		{"JOSE typ at+jwt", []keycloaktest.TokenOption{id, keycloaktest.WithHeader("typ", "at+jwt")}, cloakroom.ErrTokenType},
		{"expired", []keycloaktest.TokenOption{id, keycloaktest.WithExpired()}, cloakroom.ErrExpired},
	}
	v := e.verifier(t, cloakroom.VerifierConfig{Kind: cloakroom.IDToken})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(context.Background(), e.token(t, tt.opts...))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && c.Nonce() != "n-1" {
				t.Fatalf("nonce = %q", c.Nonce())
			}
		})
	}
	// Several audiences (all trusted) need azp.
	v2 := e.verifier(t, cloakroom.VerifierConfig{Kind: cloakroom.IDToken, Audiences: []string{"other-app"}})
	tok := e.token(t, id, keycloaktest.WithAudience("cloakroom", "other-app"), keycloaktest.WithAZP(""))
	if _, err := v2.Verify(context.Background(), tok); !errors.Is(err, cloakroom.ErrMissingClaim) {
		t.Fatalf("several audiences without azp: err = %v, want ErrMissingClaim", err)
	}
}

func TestLogoutTokenRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lt := keycloaktest.WithKind(keycloaktest.LogoutToken)
	tests := []struct {
		name    string
		opts    []keycloaktest.TokenOption
		wantErr error
	}{
		{"valid", []keycloaktest.TokenOption{lt}, nil},
		{"JOSE typ JWT (older Keycloak)", []keycloaktest.TokenOption{lt, keycloaktest.WithHeader("typ", "JWT")}, nil},
		{"with a nonce", []keycloaktest.TokenOption{lt, keycloaktest.WithNonce("n")}, cloakroom.ErrInvalidClaim},
		{"without events", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("events")}, cloakroom.ErrMissingClaim},
		{"events without the back-channel member", []keycloaktest.TokenOption{lt, keycloaktest.WithClaim("events", map[string]any{"other": map[string]any{}})}, cloakroom.ErrInvalidClaim},
		{"events member not an object", []keycloaktest.TokenOption{lt, keycloaktest.WithClaim("events", map[string]any{cloakroom.BackchannelLogoutEvent: true})}, cloakroom.ErrInvalidClaim},
		{"neither sub nor sid", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("sub", "sid")}, cloakroom.ErrMissingClaim},
		{"sid only", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("sub")}, nil},
		{"no jti", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("jti")}, cloakroom.ErrMissingClaim},
		{"other issuer", []keycloaktest.TokenOption{lt, keycloaktest.WithIssuer("http://evil/realms/demo")}, cloakroom.ErrIssuer},
		{"other audience", []keycloaktest.TokenOption{lt, keycloaktest.WithAudience("other-app")}, cloakroom.ErrAudience},
		{"no exp, recent iat", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("exp")}, nil},
		{"no exp, old iat", []keycloaktest.TokenOption{lt, keycloaktest.WithoutClaim("exp"), keycloaktest.WithIssuedAt(time.Now().Add(-time.Hour))}, cloakroom.ErrExpired},
		{"JOSE typ at+jwt", []keycloaktest.TokenOption{lt, keycloaktest.WithHeader("typ", "at+jwt")}, cloakroom.ErrTokenType},
		{"access token as logout token", nil, cloakroom.ErrTokenType},
		{"ID token as logout token", []keycloaktest.TokenOption{keycloaktest.WithKind(keycloaktest.IDToken)}, cloakroom.ErrTokenType},
	}
	v := e.verifier(t, cloakroom.VerifierConfig{Kind: cloakroom.LogoutToken})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(context.Background(), e.token(t, tt.opts...))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	t.Parallel()
	realm, _ := cloakroom.NewRealm("http://127.0.0.1:1/realms/demo", cloakroom.WithLogger(quiet))
	tests := []struct {
		name string
		cfg  cloakroom.VerifierConfig
		want string
	}{
		{"no client id", cloakroom.VerifierConfig{}, "ClientID is required"},
		{"no client id for ID tokens", cloakroom.VerifierConfig{Kind: cloakroom.IDToken, SkipAudienceCheck: true}, "ClientID is required"},
		{"alg none", cloakroom.VerifierConfig{ClientID: "c", Algorithms: []string{"none"}}, `"none" is never allowed`},
		{"HS256", cloakroom.VerifierConfig{ClientID: "c", Algorithms: []string{"HS256"}}, "HMAC"},
		{"unknown alg", cloakroom.VerifierConfig{ClientID: "c", Algorithms: []string{"RS1"}}, "unknown algorithm"},
		{"negative leeway", cloakroom.VerifierConfig{ClientID: "c", Leeway: -time.Second}, "negative"},
		{"skip audience on ID tokens", cloakroom.VerifierConfig{ClientID: "c", Kind: cloakroom.IDToken, SkipAudienceCheck: true}, "only to access tokens"},
		{"unknown kind", cloakroom.VerifierConfig{ClientID: "c", Kind: 9}, "unknown token kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := realm.NewVerifier(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSkipAudienceCheckWarns(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	realm, _ := cloakroom.NewRealm("http://127.0.0.1:1/realms/demo", cloakroom.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	if _, err := realm.NewVerifier(cloakroom.VerifierConfig{SkipAudienceCheck: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "audience check is OFF") {
		t.Fatalf("no warning logged: %q", buf.String())
	}
}

// TestUsernameReuseIsANewPrincipal: a username deleted and created again in
// Keycloak gets a new sub, so it is a different identity.
func TestUsernameReuseIsANewPrincipal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{})
	if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: "carol", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(context.Background(), e.kc.MustToken(t, "carol", "cloakroom"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.kc.DeleteUser("carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: "carol", Password: "pw2"}); err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(context.Background(), e.kc.MustToken(t, "carol", "cloakroom"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Username() != second.Username() {
		t.Fatal("test setup: usernames differ")
	}
	if first.Subject() == second.Subject() {
		t.Fatal("a reused username got the same subject")
	}
}

// TestJWKSRefetchRateLimited: a burst of tokens with random unknown kids
// causes at most one JWKS fetch per refetch interval, shared by everyone.
func TestJWKSRefetchRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cloakroom.WithRefetchInterval(time.Hour))
	v := e.verifier(t, cloakroom.VerifierConfig{CacheEntries: -1})
	if _, err := v.Verify(context.Background(), e.token(t)); err != nil {
		t.Fatal(err)
	}
	before := e.kc.JWKSRequests()
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = e.token(t, keycloaktest.WithUnknownKey())
	}
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), tokens[i%len(tokens)]); !errors.Is(err, cloakroom.ErrUnknownKey) {
				t.Errorf("err = %v, want ErrUnknownKey", err)
			}
		}()
	}
	wg.Wait()
	if got := e.kc.JWKSRequests() - before; got > 1 {
		t.Fatalf("%d JWKS fetches for a burst of unknown kids, want at most 1", got)
	}
}

func TestRotatedKeyPickedUpAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{CacheEntries: -1})
	old := e.token(t)
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	e.kc.RotateKey()
	fresh := e.token(t)
	if _, err := v.Verify(context.Background(), fresh); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatalf("token signed with the passive old key: %v", err)
	}
}

func TestCachedKeysWhileProviderDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, cloakroom.WithRefetchInterval(time.Millisecond))
	v := e.verifier(t, cloakroom.VerifierConfig{CacheEntries: -1})
	if _, err := v.Verify(context.Background(), e.token(t)); err != nil {
		t.Fatal(err)
	}
	token := e.token(t)
	for _, f := range []keycloaktest.Fault{{Refuse: true}, {Status: 503}} {
		e.srv.SetFault(f)
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatalf("fault %+v: cached keys not used: %v", f, err)
		}
		// A token naming an unknown key cannot be checked: fail closed.
		time.Sleep(2 * time.Millisecond)
		_, err := v.Verify(context.Background(), e.kc.MustToken(t, "bob", "cloakroom", keycloaktest.WithUnknownKey()))
		if !errors.Is(err, cloakroom.ErrUnknownKey) || !errors.Is(err, cloakroom.ErrUnavailable) {
			t.Fatalf("fault %+v: unknown kid: err = %v, want ErrUnknownKey and ErrUnavailable", f, err)
		}
		e.srv.ClearFault()
	}
}

func TestProviderDownAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.token(t)
	e.srv.SetFault(keycloaktest.Fault{Refuse: true})
	v := e.verifier(t, cloakroom.VerifierConfig{CacheEntries: -1})
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, cloakroom.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	e.srv.ClearFault()
	// Recovery needs no restart (after the short failure backoff).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), token)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRemovedKeyStopsVerifying(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{})
	token := e.token(t)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	oldKid := e.kc.ActiveKeyID()
	e.kc.RotateKey()
	if err := e.kc.RemoveKey(oldKid); err != nil {
		t.Fatal(err)
	}
	if err := e.realm.RefreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Also the cached verification result is no longer trusted.
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, cloakroom.ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm(), keycloaktest.WithClock(clock))
	kc := srv.Realm("demo")
	realm, _ := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet), cloakroom.WithClock(clock))
	cached, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
	uncached, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom", CacheEntries: -1})
	token := kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithLifetime(10*time.Second))

	a, err := cached.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cached.Verify(context.Background(), token)
	if a != b {
		t.Fatal("second verification was not answered from the cache")
	}
	c, _ := uncached.Verify(context.Background(), token)
	d, _ := uncached.Verify(context.Background(), token)
	if c == d {
		t.Fatal("the uncached verifier returned a shared result")
	}
	// A cached entry never outlives exp.
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if _, err := cached.Verify(context.Background(), token); !errors.Is(err, cloakroom.ErrExpired) {
		t.Fatalf("after exp: err = %v, want ErrExpired", err)
	}
}

func TestMalformedTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{})
	good := e.token(t)
	parts := strings.Split(good, ".")
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", cloakroom.ErrMalformed},
		{"one part", "abc", cloakroom.ErrMalformed},
		{"two parts", "abc.def", cloakroom.ErrMalformed},
		{"JWE", "a.b.c.d.e", cloakroom.ErrMalformed},
		{"1 MB", strings.Repeat("a", 1<<20), cloakroom.ErrMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], cloakroom.ErrMalformed},
		{"header not JSON", "bm90IGpzb24." + parts[1] + "." + parts[2], cloakroom.ErrMalformed},
		{"payload not base64", parts[0] + ".!!!." + parts[2], cloakroom.ErrMalformed},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!!", cloakroom.ErrMalformed},
		{"truncated signature", good[:len(good)-10], cloakroom.ErrSignature},
		{"payload swapped", parts[0] + "." + strings.Split(e.token(t, keycloaktest.WithClaim("preferred_username", "mallory")), ".")[1] + "." + parts[2], cloakroom.ErrSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", cloakroom.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(err.Error()) > 500 {
				t.Fatalf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
}

// TestNoTokenInLogs runs refusals and successes at debug level and checks
// that no token or token part reaches the log.
func TestNoTokenInLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, cloakroom.WithLogger(logger))
	v := e.verifier(t, cloakroom.VerifierConfig{})
	var tokens []string
	for _, opts := range [][]keycloaktest.TokenOption{
		nil, {keycloaktest.WithExpired()}, {keycloaktest.WithAudience("x")}, {keycloaktest.WithUnknownKey()},
		{keycloaktest.WithUnsigned()}, {keycloaktest.WithKeyConfusion(keycloaktest.PEM)}, {keycloaktest.WithKind(keycloaktest.RefreshToken)},
	} {
		tok := e.token(t, opts...)
		tokens = append(tokens, tok)
		_, _ = v.Verify(context.Background(), tok)
	}
	e.srv.SetFault(keycloaktest.Fault{Status: 503})
	_, _ = v.Verify(context.Background(), e.token(t, keycloaktest.WithKeyID("other")))
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if !strings.Contains(logs, "token refused") {
		t.Fatalf("expected debug logs of refusals, got %q", logs)
	}
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 16 && strings.Contains(logs, part) {
				t.Fatalf("a token part appears in the logs")
			}
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestSeveralRealmsInOneProcess(t *testing.T) {
	t.Parallel()
	a, b := newEnv(t), newEnv(t)
	va, vb := a.verifier(t, cloakroom.VerifierConfig{}), b.verifier(t, cloakroom.VerifierConfig{})
	ta, tb := a.token(t), b.token(t)
	if _, err := va.Verify(context.Background(), ta); err != nil {
		t.Fatal(err)
	}
	if _, err := vb.Verify(context.Background(), tb); err != nil {
		t.Fatal(err)
	}
	if _, err := va.Verify(context.Background(), tb); !errors.Is(err, cloakroom.ErrIssuer) && !errors.Is(err, cloakroom.ErrUnknownKey) && !errors.Is(err, cloakroom.ErrSignature) {
		t.Fatalf("realm A accepted realm B's token: %v", err)
	}
}

// TestVerifyClaimShapes: the claims decoding refuses and accepts, at
// verification, the same payloads as before the fast decoder (claims the
// verifier does not check itself, such as realm_access, included).
func TestVerifyClaimShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{CacheEntries: -1})
	exp := float64(time.Now().Add(time.Hour).Unix())
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name    string
		opts    []keycloaktest.TokenOption
		wantErr error
		check   func(*cloakroom.Claims) bool
	}{
		{name: "aud as a string", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("aud", "cloakroom")},
			check: func(c *cloakroom.Claims) bool { return slices.Equal(c.Audience(), []string{"cloakroom"}) }},
		{name: "aud as an array of three", opts: []keycloaktest.TokenOption{keycloaktest.WithAudience("a", "b", "cloakroom")},
			check: func(c *cloakroom.Claims) bool { return slices.Equal(c.Audience(), []string{"a", "b", "cloakroom"}) }},
		{name: "aud with a null member", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("aud", raw(`[null,"cloakroom"]`))},
			check: func(c *cloakroom.Claims) bool { return slices.Equal(c.Audience(), []string{"", "cloakroom"}) }},
		{name: "aud of another type", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("aud", 1)}, wantErr: cloakroom.ErrMalformed},
		{name: "exp fractional", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", exp+0.75)},
			check: func(c *cloakroom.Claims) bool { return c.Expiry().Unix() == int64(exp) }},
		{name: "exp with an exponent", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", raw(fmt.Sprintf("%de0", int64(exp))))},
			check: func(c *cloakroom.Claims) bool { return c.Expiry().Unix() == int64(exp) }},
		{name: "exp far away (16 digits)", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", int64(1e15))},
			check: func(c *cloakroom.Claims) bool { return c.Expiry().Unix() == 1e15 }},
		{name: "exp huge", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", 1e300)}, wantErr: cloakroom.ErrMalformed},
		{name: "exp a string", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", "soon")}, wantErr: cloakroom.ErrMalformed},
		{name: "exp null", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("exp", nil)}, wantErr: cloakroom.ErrMissingClaim},
		{name: "duplicate member in another claim", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("tenant", raw(`{"id":"a","id":"b"}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "duplicate member deep in another claim", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("tenant", raw(`[{"x":{"id":1,"id":1}}]`))}, wantErr: cloakroom.ErrMalformed},
		{name: "duplicate roles", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("realm_access", raw(`{"roles":["user"],"roles":["admin"]}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "duplicate client", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("resource_access", raw(`{"a":{"roles":[]},"a":{"roles":["admin"]}}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "roles not a list", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("realm_access", raw(`{"roles":"admin"}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "client roles not a list", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("resource_access", raw(`{"a":{"roles":{"admin":true}}}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "roles with a null member", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("realm_access", raw(`{"roles":[null,"admin"]}`))},
			check: func(c *cloakroom.Claims) bool { return slices.Equal(c.RealmRoles(), []string{"", "admin"}) }},
		{name: "roles with escapes", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("realm_access", raw(`{"roles":["caf\u00e9","a\"b"],"other":{"k":[1]}}`))},
			check: func(c *cloakroom.Claims) bool { return slices.Equal(c.RealmRoles(), []string{"café", `a"b`}) }},
		{name: "email_verified a string", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("email_verified", "true")},
			check: func(c *cloakroom.Claims) bool { return c.EmailVerified() }},
		{name: "email_verified an object", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("email_verified", raw(`{}`))}, wantErr: cloakroom.ErrMalformed},
		{name: "acr a number", opts: []keycloaktest.TokenOption{keycloaktest.WithClaim("acr", 2)},
			check: func(c *cloakroom.Claims) bool { return c.ACR() == "2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(context.Background(), e.token(t, tt.opts...))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatal("unexpected claims")
			}
		})
	}
}

// VerifyBound accepts DPoP-bound tokens, whose proof its caller checks;
// Verify refuses them, from the cache too.
func TestVerifyBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{})
	for _, opts := range [][]keycloaktest.TokenOption{
		{keycloaktest.WithClaim("typ", "DPoP"), keycloaktest.WithClaim("cnf", map[string]any{"jkt": "k1"})},
		{keycloaktest.WithClaim("cnf", map[string]any{"jkt": "k2"})},
	} {
		tok := e.token(t, opts...)
		c, err := v.VerifyBound(context.Background(), tok)
		if err != nil || !c.IsDPoPBound() || c.ConfirmationJKT() == "" {
			t.Fatalf("VerifyBound: %v %v", c, err)
		}
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, cloakroom.ErrTokenType) {
			t.Fatalf("Verify after VerifyBound (cached): %v, want ErrTokenType", err)
		}
	}
}

// A cnf member is found however its name is written.
func TestIsDPoPBoundEscapedName(t *testing.T) {
	t.Parallel()
	for payload, want := range map[string]bool{
		`{"sub":"a","cnf":{"jkt":"x"}}`:      true,
		`{"sub":"a","\u0063nf":{"jkt":"x"}}`: true,
		`{"sub":"a","c\u006ef":{"jkt":"x"}}`: true,
		`{"sub":"a","name":"cnf"}`:           false,
		`{"sub":"\u0063nf"}`:                 false,
		`{"sub":"a","cnf":{"x5t#S256":"x"}}`: false,
		`{"sub":"a","typ":"DPoP"}`:           true,
	} {
		c, err := cloakroom.ParseClaims([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.IsDPoPBound(); got != want {
			t.Errorf("%s: IsDPoPBound = %v, want %v", payload, got, want)
		}
	}
}
