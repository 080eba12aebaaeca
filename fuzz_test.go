package cloakroom_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// FuzzVerify feeds arbitrary strings to a Verifier backed by keycloaktest:
// it must never panic, and whatever it accepts must be a token of the realm
// with a subject. The seeds (run by plain go test) are real tokens and the
// attack variants.
func FuzzVerify(f *testing.F) {
	srv := keycloaktest.NewServer(f, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		f.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom", CacheEntries: -1})
	if err != nil {
		f.Fatal(err)
	}
	for _, opts := range [][]keycloaktest.TokenOption{
		nil,
		{keycloaktest.WithUnsigned()},
		{keycloaktest.WithKeyConfusion(keycloaktest.PEM)},
		{keycloaktest.WithExpired()},
		{keycloaktest.WithKind(keycloaktest.IDToken)},
		{keycloaktest.WithKind(keycloaktest.RefreshToken)},
		{keycloaktest.WithKind(keycloaktest.LogoutToken)},
		{keycloaktest.WithClaim("aud", map[string]any{"x": 1})},
		{keycloaktest.WithClaim("exp", "soon")},
		{keycloaktest.WithHeader("crit", []string{"exp"})},
		{keycloaktest.WithHeader("jku", "http://evil/jwks")},
	} {
		f.Add(kc.MustToken(f, "alice", "cloakroom", opts...))
	}
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "a.b.c.d.e", "\x00.\xff.\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if errors.Is(err, cloakroom.ErrUnavailable) {
				t.Fatalf("provider reported unavailable: %v", err)
			}
			return
		}
		if c.Issuer() != kc.Issuer() || c.Subject() == "" || !c.HasAudience("cloakroom") {
			t.Fatalf("accepted a token with iss %q sub %q aud %q", c.Issuer(), c.Subject(), c.Audience())
		}
	})
}

// FuzzParseClaims: the claims decoder never panics on any payload.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"x","sub":"y","aud":["a","b"],"exp":1,"iat":1.5,"realm_access":{"roles":["r"]},"resource_access":{"c":{"roles":[]}}}`,
		`{"aud":"a","email_verified":"true","acr":1,"events":{"e":{}}}`,
		`{"exp":1e999}`, `{"exp":-1}`, `{"aud":[1]}`, `null`, `[]`, `"s"`, `{"a":`, `{"sub":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := cloakroom.ParseClaims(payload)
		if err != nil {
			return
		}
		_ = c.Expiry()
		_ = c.Strings("resource_access.c.roles")
		_ = c.ACR()
		_ = c.Raw()
		_, _ = c.Lookup("a.b.c")
	})
}
