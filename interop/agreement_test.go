package interop_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// verifiers holds go-oidc's and cloakroom's verifiers for one issuer, both
// configured for the demo client.
type verifiers struct {
	oidc   *oidc.IDTokenVerifier // go-oidc checks ID and access tokens alike
	access *cloakroom.Verifier
	id     *cloakroom.Verifier
}

// newVerifiers discovers the issuer with go-oidc and cloakroom and builds
// both verifiers.
func newVerifiers(t *testing.T, issuer string) verifiers {
	t.Helper()
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatalf("cloakroom.NewRealm: %v", err)
	}
	access, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: clientID})
	if err != nil {
		t.Fatal(err)
	}
	id, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: clientID, Kind: cloakroom.IDToken})
	if err != nil {
		t.Fatal(err)
	}
	return verifiers{oidc: newProvider(t, issuer).Verifier(&oidc.Config{ClientID: clientID}), access: access, id: id}
}

// verify runs both verifiers on the token, cloakroom's of the given kind.
func (v verifiers) verify(t *testing.T, kind cloakroom.TokenKind, token string) (*oidc.IDToken, error, *cloakroom.Claims, error) {
	t.Helper()
	cv := v.access
	if kind == cloakroom.IDToken {
		cv = v.id
	}
	ot, oerr := v.oidc.Verify(t.Context(), token)
	ct, cerr := cv.Verify(t.Context(), token)
	return ot, oerr, ct, cerr
}

// sameClaims checks that the two verifiers read the same identity.
func sameClaims(t *testing.T, ot *oidc.IDToken, ct *cloakroom.Claims) {
	t.Helper()
	if ot.Subject != ct.Subject() || ot.Issuer != ct.Issuer() || !slices.Equal(ot.Audience, ct.Audience()) ||
		!ot.Expiry.Equal(ct.Expiry()) || !ot.IssuedAt.Equal(ct.IssuedAt()) {
		t.Errorf("go-oidc read sub %q iss %q aud %v exp %v iat %v; cloakroom read %q %q %v %v %v",
			ot.Subject, ot.Issuer, ot.Audience, ot.Expiry, ot.IssuedAt,
			ct.Subject(), ct.Issuer(), ct.Audience(), ct.Expiry(), ct.IssuedAt())
	}
}

// TestVerifiersAgree: on keycloaktest's real tokens (from its token
// endpoint) and on the standard bad ones, go-oidc and cloakroom reach the
// same verdict, and when both accept they read the same claims. A bug that
// keycloaktest and cloakroom shared (say, both getting a claim's encoding
// wrong) would make go-oidc disagree here.
func TestVerifiersAgree(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	if _, err := d.srv.AddRealm(keycloaktest.RealmConfig{
		Name:    "other",
		Clients: []keycloaktest.ClientConfig{{ClientID: clientID, Secret: "x", DirectAccessGrants: true, Audiences: []string{clientID}}},
		Users:   []keycloaktest.UserConfig{{Username: "alice", Password: "alice"}},
	}); err != nil {
		t.Fatal(err)
	}
	lagging := startDemo(t, keycloaktest.WithClock(laggingClock))
	v := newVerifiers(t, d.issuer)
	lv := newVerifiers(t, lagging.issuer)

	ep := d.endpoint(oauth2.AuthStyleInHeader)
	alice := login(t, ep, clientID, clientSecret, "alice", "alice")
	bob := login(t, d.endpoint(oauth2.AuthStyleInParams), clientID, clientSecret, "bob", "bob")
	service := serviceLogin(t, d.tokenURL())
	// Make x/oauth2 refresh: an expired copy of bob's token goes through
	// the refresh_token grant.
	stale := *bob
	stale.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := (&oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: ep}).TokenSource(t.Context(), &stale).Token()
	if err != nil {
		t.Fatalf("refresh through x/oauth2: %v", err)
	}
	if refreshed.AccessToken == bob.AccessToken {
		t.Fatal("x/oauth2 did not refresh")
	}
	public := login(t, d.endpoint(oauth2.AuthStyleInParams), publicClient, "", "alice", "alice")
	other := login(t, oauth2.Endpoint{TokenURL: d.srv.Issuer("other") + "/protocol/openid-connect/token"}, clientID, "x", "alice", "alice")
	expired := login(t, lagging.endpoint(oauth2.AuthStyleInHeader), clientID, clientSecret, "alice", "alice")
	mint := func(opts ...keycloaktest.TokenOption) string { return d.realm.MustToken(t, "alice", clientID, opts...) }
	idKind := keycloaktest.WithKind(keycloaktest.IDToken)
	access, id := cloakroom.AccessToken, cloakroom.IDToken

	tests := []struct {
		name   string
		v      verifiers
		kind   cloakroom.TokenKind
		token  string
		accept bool
		want   error // cloakroom's sentinel when refused; nil: any error
	}{
		{"real access token, password grant", v, access, alice.AccessToken, true, nil},
		{"real access token, second user", v, access, bob.AccessToken, true, nil},
		{"real access token, client_credentials", v, access, service.AccessToken, true, nil},
		{"real access token, refresh grant", v, access, refreshed.AccessToken, true, nil},
		{"real ID token, password grant", v, id, idTokenOf(t, alice), true, nil},
		{"real ID token, refresh grant", v, id, idTokenOf(t, refreshed), true, nil},
		{"minted access token", v, access, mint(), true, nil},
		{"minted ID token", v, id, mint(idKind), true, nil},

		{"real expired access token", lv, access, expired.AccessToken, false, cloakroom.ErrExpired},
		{"real expired ID token", lv, id, idTokenOf(t, expired), false, cloakroom.ErrExpired},
		{"minted expired access token", v, access, mint(keycloaktest.WithExpired()), false, cloakroom.ErrExpired},
		{"minted expired ID token", v, id, mint(idKind, keycloaktest.WithExpired()), false, cloakroom.ErrExpired},
		{"signed by an unknown key", v, access, mint(keycloaktest.WithUnknownKey()), false, cloakroom.ErrUnknownKey},
		{"kid not in the JWKS", v, access, mint(keycloaktest.WithKeyID("not-published")), false, cloakroom.ErrUnknownKey},
		{"real access token of another client", v, access, public.AccessToken, false, cloakroom.ErrAudience},
		{"real ID token of another client", v, id, idTokenOf(t, public), false, cloakroom.ErrAudience},
		{"minted token for another audience", v, access, mint(keycloaktest.WithAudience("orders-api")), false, cloakroom.ErrAudience},
		{"real access token of another realm", v, access, other.AccessToken, false, nil},
		{"real ID token of another realm", v, id, idTokenOf(t, other), false, nil},
		{"foreign issuer, realm key", v, access, mint(keycloaktest.WithIssuer(d.srv.Issuer("other"))), false, cloakroom.ErrIssuer},
		{"tampered access token", v, access, tamper(t, alice.AccessToken, "sub", "someone-else"), false, cloakroom.ErrSignature},
		{"tampered ID token", v, id, tamper(t, idTokenOf(t, alice), "exp", time.Now().Add(time.Hour).Unix()), false, cloakroom.ErrSignature},
		{"alg none", v, access, mint(keycloaktest.WithUnsigned()), false, cloakroom.ErrAlgorithm},
		{"HS256 signed with the public key", v, access, mint(keycloaktest.WithKeyConfusion(keycloaktest.DER)), false, cloakroom.ErrAlgorithm},
		{"nbf an hour ahead", v, access, mint(keycloaktest.WithNotBefore(time.Now().Add(time.Hour))), false, cloakroom.ErrNotYetValid},
		{"refresh token", v, access, alice.RefreshToken, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ot, oerr, ct, cerr := tc.v.verify(t, tc.kind, tc.token)
			if (oerr == nil) != tc.accept || (cerr == nil) != tc.accept {
				t.Fatalf("want accept=%v; go-oidc: %v; cloakroom: %v", tc.accept, oerr, cerr)
			}
			if tc.accept {
				sameClaims(t, ot, ct)
				return
			}
			if tc.want != nil && !errors.Is(cerr, tc.want) {
				t.Errorf("cloakroom refused with %v, want %v", cerr, tc.want)
			}
		})
	}
}

// TestVerifiersAgreeAfterKeyRotation: after RotateKey both verifiers pick
// up the new key for new real tokens and keep accepting tokens of the old,
// now passive, key.
func TestVerifiersAgreeAfterKeyRotation(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	v := newVerifiers(t, d.issuer)
	ep := d.endpoint(oauth2.AuthStyleInHeader)
	before := login(t, ep, clientID, clientSecret, "alice", "alice")
	if _, oerr, _, cerr := v.verify(t, cloakroom.AccessToken, before.AccessToken); oerr != nil || cerr != nil {
		t.Fatalf("before rotation: go-oidc %v, cloakroom %v", oerr, cerr)
	}
	d.realm.RotateKey()
	after := login(t, ep, clientID, clientSecret, "alice", "alice")
	for _, tc := range []struct {
		name  string
		kind  cloakroom.TokenKind
		token string
	}{
		{"new access token", cloakroom.AccessToken, after.AccessToken},
		{"new ID token", cloakroom.IDToken, idTokenOf(t, after)},
		{"old ID token", cloakroom.IDToken, idTokenOf(t, before)},
	} {
		ot, oerr, ct, cerr := v.verify(t, tc.kind, tc.token)
		if oerr != nil || cerr != nil {
			t.Errorf("%s: go-oidc %v, cloakroom %v", tc.name, oerr, cerr)
			continue
		}
		sameClaims(t, ot, ct)
	}
}

// TestVerifiersDiverge documents, and pins, where cloakroom is stricter
// than go-oidc by design (design.md, security defaults): go-oidc checks
// signature, iss, aud, exp and nbf (with five minutes of leeway) for every
// JWT alike, while cloakroom also tells token kinds apart by Keycloak's typ
// claim, checks iat, trusts no extra audience in ID tokens and allows no
// leeway by default. If either side changes, this test says so.
func TestVerifiersDiverge(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	v := newVerifiers(t, d.issuer)
	tok := login(t, d.endpoint(oauth2.AuthStyleInHeader), clientID, clientSecret, "alice", "alice")
	mint := func(opts ...keycloaktest.TokenOption) string { return d.realm.MustToken(t, "alice", clientID, opts...) }

	tests := []struct {
		name  string
		kind  cloakroom.TokenKind
		token string
		want  error
	}{
		{"real access token as ID token", cloakroom.IDToken, tok.AccessToken, cloakroom.ErrTokenType},
		{"real ID token as access token", cloakroom.AccessToken, idTokenOf(t, tok), cloakroom.ErrTokenType},
		{"logout token as ID token", cloakroom.IDToken, mint(keycloaktest.WithKind(keycloaktest.LogoutToken)), cloakroom.ErrTokenType},
		{"access token without typ", cloakroom.AccessToken, mint(keycloaktest.WithoutClaim("typ")), cloakroom.ErrTokenType},
		{"iat an hour ahead", cloakroom.AccessToken, mint(keycloaktest.WithIssuedAt(time.Now().Add(time.Hour))), cloakroom.ErrNotYetValid},
		{"nbf two minutes ahead", cloakroom.AccessToken, mint(keycloaktest.WithNotBefore(time.Now().Add(2 * time.Minute))), cloakroom.ErrNotYetValid},
		{"ID token with an extra untrusted audience", cloakroom.IDToken,
			mint(keycloaktest.WithKind(keycloaktest.IDToken), keycloaktest.WithAudience(clientID, "orders-api")), cloakroom.ErrAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, oerr, _, cerr := v.verify(t, tc.kind, tc.token)
			if oerr != nil {
				t.Errorf("go-oidc refused (%v); this row expects it to be the more lenient one", oerr)
			}
			if !errors.Is(cerr, tc.want) {
				t.Errorf("cloakroom: %v, want %v", cerr, tc.want)
			}
		})
	}
}
