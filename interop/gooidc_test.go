package interop_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// newProvider runs go-oidc discovery against the realm's issuer.
func newProvider(t *testing.T, issuer string) *oidc.Provider {
	t.Helper()
	p, err := oidc.NewProvider(t.Context(), issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery of %s: %v", issuer, err)
	}
	return p
}

// TestGoOIDCDiscovery: go-oidc accepts keycloaktest's discovery document
// (issuer matches exactly, with and without the legacy /auth prefix) and
// finds the endpoints at Keycloak's paths.
func TestGoOIDCDiscovery(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "/auth"} {
		t.Run("base="+base, func(t *testing.T) {
			t.Parallel()
			d := startDemo(t, keycloaktest.WithBasePath(base))
			if want := d.srv.URL() + "/realms/demo"; d.issuer != want || !strings.Contains(d.issuer, base+"/realms/") {
				t.Fatalf("issuer %q, want %q", d.issuer, want)
			}
			p := newProvider(t, d.issuer)
			oc := d.issuer + "/protocol/openid-connect"
			ep := p.Endpoint()
			if ep.AuthURL != oc+"/auth" || ep.TokenURL != oc+"/token" {
				t.Errorf("endpoint = %+v, want auth and token under %s", ep, oc)
			}
			if got := p.UserInfoEndpoint(); got != oc+"/userinfo" {
				t.Errorf("userinfo endpoint %q, want %q", got, oc+"/userinfo")
			}
			var meta struct {
				JWKSURI       string   `json:"jwks_uri"`
				EndSession    string   `json:"end_session_endpoint"`
				Introspection string   `json:"introspection_endpoint"`
				Revocation    string   `json:"revocation_endpoint"`
				Algs          []string `json:"id_token_signing_alg_values_supported"`
				Subjects      []string `json:"subject_types_supported"`
				Responses     []string `json:"response_types_supported"`
			}
			if err := p.Claims(&meta); err != nil {
				t.Fatalf("provider claims: %v", err)
			}
			for name, got := range map[string]string{
				oc + "/certs":            meta.JWKSURI,
				oc + "/logout":           meta.EndSession,
				oc + "/token/introspect": meta.Introspection,
				oc + "/revoke":           meta.Revocation,
			} {
				if got != name {
					t.Errorf("discovery has %q, want %q", got, name)
				}
			}
			if !slices.Contains(meta.Algs, "RS256") || !slices.Contains(meta.Subjects, "public") || !slices.Contains(meta.Responses, "code") {
				t.Errorf("required discovery values missing: algs %v subjects %v responses %v", meta.Algs, meta.Subjects, meta.Responses)
			}
		})
	}
}

// TestGoOIDCVerifiesRealTokens: tokens from keycloaktest's token endpoint
// (password grant through x/oauth2, both client authentication styles, and
// client_credentials) pass go-oidc's verifier; the ID token's claims,
// including at_hash, are what Keycloak puts there.
func TestGoOIDCVerifiesRealTokens(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	p := newProvider(t, d.issuer)
	// One verifier serves ID and access tokens: the demo client's audience
	// mapper puts "cloakroom" in the access tokens' aud too.
	verifier := p.Verifier(&oidc.Config{ClientID: clientID})

	tests := []struct {
		name     string
		user     string
		style    oauth2.AuthStyle
		fullName string
	}{
		{"alice/basic", "alice", oauth2.AuthStyleInHeader, "Alice Liddell"},
		{"bob/post", "bob", oauth2.AuthStyleInParams, "Bob Builder"},
		{"alice/autodetect", "alice", oauth2.AuthStyleAutoDetect, "Alice Liddell"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := p.Endpoint()
			ep.AuthStyle = tc.style
			tok := login(t, ep, clientID, clientSecret, tc.user, tc.user)
			sub, ok := d.realm.UserID(tc.user)
			if !ok {
				t.Fatalf("no user %q", tc.user)
			}

			id, err := verifier.Verify(t.Context(), idTokenOf(t, tok))
			if err != nil {
				t.Fatalf("go-oidc refused keycloaktest's ID token: %v", err)
			}
			if id.Issuer != d.issuer || id.Subject != sub || !slices.Equal(id.Audience, []string{clientID}) {
				t.Errorf("ID token iss %q sub %q aud %v; want %q %q [%s]", id.Issuer, id.Subject, id.Audience, d.issuer, sub, clientID)
			}
			if err := id.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash of the ID token does not match the access token: %v", err)
			}
			var claims struct {
				Typ      string `json:"typ"`
				AZP      string `json:"azp"`
				SID      string `json:"sid"`
				Username string `json:"preferred_username"`
				Name     string `json:"name"`
				Email    string `json:"email"`
			}
			if err := id.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if claims.Typ != "ID" || claims.AZP != clientID || claims.SID == "" || claims.Username != tc.user ||
				claims.Name != tc.fullName || claims.Email != tc.user+"@example.com" {
				t.Errorf("ID token claims %+v", claims)
			}
			if got, _ := tok.Extra("session_state").(string); got != claims.SID {
				t.Errorf("session_state %q differs from the ID token's sid %q", got, claims.SID)
			}

			at, err := verifier.Verify(t.Context(), tok.AccessToken)
			if err != nil {
				t.Fatalf("go-oidc refused keycloaktest's access token: %v", err)
			}
			if at.Subject != sub || !slices.Contains(at.Audience, clientID) || !slices.Contains(at.Audience, "account") {
				t.Errorf("access token sub %q aud %v; want sub %q and aud with %q and account", at.Subject, at.Audience, sub, clientID)
			}
		})
	}

	t.Run("client_credentials", func(t *testing.T) {
		t.Parallel()
		tok := serviceLogin(t, p.Endpoint().TokenURL)
		if tok.RefreshToken != "" {
			t.Error("client_credentials returned a refresh token; Keycloak does not by default")
		}
		at, err := verifier.Verify(t.Context(), tok.AccessToken)
		if err != nil {
			t.Fatalf("go-oidc refused a service-account access token: %v", err)
		}
		var claims struct {
			ClientID string `json:"client_id"`
			Username string `json:"preferred_username"`
		}
		if err := at.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.ClientID != clientID || claims.Username != "service-account-"+clientID {
			t.Errorf("service-account claims %+v", claims)
		}
	})
}

// TestGoOIDCRefuses: go-oidc refuses every token a relying party must
// refuse, whether keycloaktest minted it or issued it for real.
func TestGoOIDCRefuses(t *testing.T) {
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
	p := newProvider(t, d.issuer)
	verifier := p.Verifier(&oidc.Config{ClientID: clientID})
	laggingVerifier := newProvider(t, lagging.issuer).Verifier(&oidc.Config{ClientID: clientID})

	realTok := login(t, d.endpoint(oauth2.AuthStyleInHeader), clientID, clientSecret, "alice", "alice")
	publicTok := login(t, d.endpoint(oauth2.AuthStyleInParams), publicClient, "", "alice", "alice")
	otherTok := login(t, oauth2.Endpoint{TokenURL: d.srv.Issuer("other") + "/protocol/openid-connect/token"}, clientID, "x", "alice", "alice")
	expiredTok := login(t, lagging.endpoint(oauth2.AuthStyleInHeader), clientID, clientSecret, "alice", "alice")
	mint := func(opts ...keycloaktest.TokenOption) string { return d.realm.MustToken(t, "alice", clientID, opts...) }
	idKind := keycloaktest.WithKind(keycloaktest.IDToken)

	tests := []struct {
		name     string
		verifier *oidc.IDTokenVerifier
		token    string
		expired  bool // want *oidc.TokenExpiredError
	}{
		{"real expired access token", laggingVerifier, expiredTok.AccessToken, true},
		{"real expired ID token", laggingVerifier, idTokenOf(t, expiredTok), true},
		{"minted expired access token", verifier, mint(keycloaktest.WithExpired()), true},
		{"minted expired ID token", verifier, mint(idKind, keycloaktest.WithExpired()), true},
		{"signed by an unknown key", verifier, mint(keycloaktest.WithUnknownKey()), false},
		{"ID token signed by an unknown key", verifier, mint(idKind, keycloaktest.WithUnknownKey()), false},
		{"kid not in the JWKS", verifier, mint(keycloaktest.WithKeyID("not-published")), false},
		{"real ID token of another client", verifier, idTokenOf(t, publicTok), false},
		{"real access token of another client (aud account only)", verifier, publicTok.AccessToken, false},
		{"minted token for another audience", verifier, mint(keycloaktest.WithAudience("orders-api")), false},
		{"token without aud", verifier, mint(keycloaktest.WithoutAudience()), false},
		{"real token of another realm", verifier, otherTok.AccessToken, false},
		{"real ID token of another realm", verifier, idTokenOf(t, otherTok), false},
		{"foreign issuer", verifier, mint(keycloaktest.WithIssuer(d.srv.Issuer("other"))), false},
		{"tampered subject", verifier, tamper(t, realTok.AccessToken, "sub", "someone-else"), false},
		{"tampered ID token audience", verifier, tamper(t, idTokenOf(t, publicTok), "aud", clientID), false},
		{"alg none", verifier, mint(keycloaktest.WithUnsigned()), false},
		{"HS256 signed with the public key (PEM)", verifier, mint(keycloaktest.WithKeyConfusion(keycloaktest.PEM)), false},
		{"HS256 signed with the public key (DER)", verifier, mint(keycloaktest.WithKeyConfusion(keycloaktest.DER)), false},
		{"nbf an hour ahead", verifier, mint(keycloaktest.WithNotBefore(time.Now().Add(time.Hour))), false},
		{"refresh token", verifier, realTok.RefreshToken, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.verifier.Verify(t.Context(), tc.token)
			if err == nil {
				t.Fatal("go-oidc accepted the token")
			}
			var expired *oidc.TokenExpiredError
			if got := errors.As(err, &expired); got != tc.expired {
				t.Errorf("TokenExpiredError = %v, want %v (err: %v)", got, tc.expired, err)
			}
		})
	}
}

// TestGoOIDCUserInfo: go-oidc reads keycloaktest's userinfo endpoint with a
// real access token, and gets an error once the session has ended or when
// it presents an ID token instead.
func TestGoOIDCUserInfo(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	p := newProvider(t, d.issuer)
	tok := login(t, p.Endpoint(), clientID, clientSecret, "alice", "alice")
	id, err := p.Verifier(&oidc.Config{ClientID: clientID}).Verify(t.Context(), idTokenOf(t, tok))
	if err != nil {
		t.Fatal(err)
	}

	ui, err := p.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("UserInfo: %v", err)
	}
	if ui.Subject != id.Subject || ui.Email != "alice@example.com" || !ui.EmailVerified {
		t.Errorf("userinfo sub %q email %q verified %v; want sub %q", ui.Subject, ui.Email, ui.EmailVerified, id.Subject)
	}
	var profile struct {
		Username   string `json:"preferred_username"`
		Name       string `json:"name"`
		GivenName  string `json:"given_name"`
		FamilyName string `json:"family_name"`
	}
	if err := ui.Claims(&profile); err != nil {
		t.Fatal(err)
	}
	if profile.Username != "alice" || profile.Name != "Alice Liddell" || profile.GivenName != "Alice" || profile.FamilyName != "Liddell" {
		t.Errorf("userinfo profile %+v", profile)
	}

	idAsBearer := &oauth2.Token{AccessToken: idTokenOf(t, tok), TokenType: "Bearer"}
	if _, err := p.UserInfo(t.Context(), oauth2.StaticTokenSource(idAsBearer)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("UserInfo with an ID token as bearer: err %v, want a 401", err)
	}

	var sid struct {
		SID string `json:"sid"`
	}
	if err := id.Claims(&sid); err != nil {
		t.Fatal(err)
	}
	d.realm.EndSession(sid.SID)
	if _, err := p.UserInfo(t.Context(), oauth2.StaticTokenSource(tok)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("UserInfo after the session ended: err %v, want a 401", err)
	}
}

// TestGoOIDCPicksUpRotatedKey: after RotateKey, tokens carry the new kid and
// go-oidc verifies them by refetching the JWKS; tokens signed by the old
// (now passive) key still verify.
func TestGoOIDCPicksUpRotatedKey(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	p := newProvider(t, d.issuer)
	verifier := p.Verifier(&oidc.Config{ClientID: clientID})

	before := login(t, p.Endpoint(), clientID, clientSecret, "alice", "alice")
	if _, err := verifier.Verify(t.Context(), before.AccessToken); err != nil {
		t.Fatal(err)
	}
	oldKid := d.realm.ActiveKeyID()
	fetches := d.realm.JWKSRequests()

	newKid := d.realm.RotateKey()
	if newKid == "" || newKid == oldKid {
		t.Fatalf("RotateKey returned %q (old %q)", newKid, oldKid)
	}
	after := login(t, p.Endpoint(), clientID, clientSecret, "alice", "alice")
	for _, raw := range []string{after.AccessToken, idTokenOf(t, after)} {
		if kid := unverifiedHeader(t, raw)["kid"]; kid != newKid {
			t.Fatalf("token after rotation has kid %v, want %q", kid, newKid)
		}
		if _, err := verifier.Verify(t.Context(), raw); err != nil {
			t.Fatalf("go-oidc refused a token signed by the rotated key: %v", err)
		}
	}
	if got := d.realm.JWKSRequests(); got <= fetches {
		t.Errorf("JWKS requests %d -> %d: go-oidc verified the new kid without refetching?", fetches, got)
	}
	if _, err := verifier.Verify(t.Context(), before.AccessToken); err != nil {
		t.Errorf("token of the passive key refused after rotation: %v", err)
	}
}

// TestGoOIDCVerifiesLogoutTokens: keycloaktest's back-channel logout tokens
// pass go-oidc's VerifyLogout (events, jti, exp, no nonce, sid), and the
// bad ones do not.
func TestGoOIDCVerifiesLogoutTokens(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	verifier := newProvider(t, d.issuer).Verifier(&oidc.Config{ClientID: clientID})
	sub, _ := d.realm.UserID("alice")
	d.realm.MustToken(t, "alice", clientID) // starts a session
	sid := d.realm.SessionIDs("alice")[0]
	logoutKind := keycloaktest.WithKind(keycloaktest.LogoutToken)

	lt, err := verifier.VerifyLogout(t.Context(), d.realm.MustToken(t, "alice", clientID, logoutKind, keycloaktest.WithSID(sid)))
	if err != nil {
		t.Fatalf("go-oidc refused keycloaktest's logout token: %v", err)
	}
	if lt.Subject != sub || lt.SessionID != sid || lt.TokenID == "" || lt.Expiry.Sub(lt.IssuedAt) != 120*time.Second {
		t.Errorf("logout token sub %q sid %q jti %q lifetime %v", lt.Subject, lt.SessionID, lt.TokenID, lt.Expiry.Sub(lt.IssuedAt))
	}

	bad := map[string]string{
		"expired":        d.realm.MustToken(t, "alice", clientID, logoutKind, keycloaktest.WithExpired()),
		"with nonce":     d.realm.MustToken(t, "alice", clientID, logoutKind, keycloaktest.WithClaim("nonce", "n")),
		"without events": d.realm.MustToken(t, "alice", clientID, logoutKind, keycloaktest.WithoutClaim("events")),
		"an ID token":    d.realm.MustToken(t, "alice", clientID, keycloaktest.WithKind(keycloaktest.IDToken)),
		"other audience": d.realm.MustToken(t, "alice", clientID, logoutKind, keycloaktest.WithAudience("orders-api")),
	}
	for name, raw := range bad {
		if _, err := verifier.VerifyLogout(t.Context(), raw); err == nil {
			t.Errorf("go-oidc accepted a logout token %s", name)
		}
	}
}
