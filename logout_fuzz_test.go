package cloakroom_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// FuzzVerifyLogoutToken feeds arbitrary strings to a Verifier for
// back-channel logout tokens: it must never panic, and whatever it accepts
// must be a logout token of the realm as OIDC Back-Channel Logout 1.0
// section 2.6 describes it (issuer, audience, the back-channel event, no
// nonce, a jti, and a sid or a sub). The seeds are real logout tokens and
// the variants the rules refuse.
func FuzzVerifyLogoutToken(f *testing.F) {
	srv := keycloaktest.NewServer(f, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		f.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom", Kind: cloakroom.LogoutToken})
	if err != nil {
		f.Fatal(err)
	}
	lt := keycloaktest.WithKind(keycloaktest.LogoutToken)
	for _, opts := range [][]keycloaktest.TokenOption{
		{lt},
		{lt, keycloaktest.WithoutClaim("sub")},
		{lt, keycloaktest.WithoutClaim("exp")},
		{lt, keycloaktest.WithHeader("typ", "JWT")},
		{lt, keycloaktest.WithNonce("n")},
		{lt, keycloaktest.WithoutClaim("events")},
		{lt, keycloaktest.WithClaim("events", map[string]any{cloakroom.BackchannelLogoutEvent: true})},
		{lt, keycloaktest.WithoutClaim("sub", "sid")},
		{lt, keycloaktest.WithoutClaim("jti")},
		{lt, keycloaktest.WithAudience("other-app")},
		{lt, keycloaktest.WithoutClaim("exp"), keycloaktest.WithIssuedAt(time.Now().Add(-time.Hour))},
		{lt, keycloaktest.WithHeader("typ", "at+jwt")},
		{lt, keycloaktest.WithUnsigned()},
		{lt, keycloaktest.WithKeyConfusion(keycloaktest.PEM)},
		{lt, keycloaktest.WithExpired()},
		{keycloaktest.WithKind(keycloaktest.IDToken)},
		nil,
	} {
		f.Add(kc.MustToken(f, "alice", "cloakroom", opts...))
	}
	for _, s := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "e30.e30.e30"} {
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
		switch {
		case c.Issuer() != kc.Issuer():
			t.Fatalf("accepted a logout token of issuer %q", c.Issuer())
		case !c.HasAudience("cloakroom"):
			t.Fatalf("accepted a logout token for %q", c.Audience())
		case !c.HasEvent(cloakroom.BackchannelLogoutEvent):
			t.Fatal("accepted a logout token without the back-channel logout event")
		case c.HasNonce():
			t.Fatal("accepted a logout token with a nonce")
		case c.ID() == "":
			t.Fatal("accepted a logout token without jti")
		case c.SessionID() == "" && c.Subject() == "":
			t.Fatal("accepted a logout token with neither sid nor sub")
		}
	})
}
