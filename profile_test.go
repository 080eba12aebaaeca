package cloakroom_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/genericop"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

func TestParseProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    cloakroom.Profile
		wantErr bool
	}{
		{"", cloakroom.Keycloak, false},
		{"keycloak", cloakroom.Keycloak, false},
		{"generic", cloakroom.GenericOIDC, false},
		{"OIDC", cloakroom.GenericOIDC, false},
		{"auto", cloakroom.AutoDetect, false},
		{"okta", 0, true},
	}
	for _, tt := range tests {
		got, err := cloakroom.ParseProfile(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseProfile(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && tt.in != "" && tt.in != "OIDC" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestDetectProfile(t *testing.T) {
	t.Parallel()
	kc := func(iss, endpointBase string) *cloakroom.Metadata {
		return &cloakroom.Metadata{
			Issuer:                iss,
			AuthorizationEndpoint: endpointBase + "/protocol/openid-connect/auth",
			TokenEndpoint:         endpointBase + "/protocol/openid-connect/token",
			JWKSURI:               endpointBase + "/protocol/openid-connect/certs",
		}
	}
	tests := []struct {
		name string
		meta *cloakroom.Metadata
		want cloakroom.Profile
	}{
		{"Keycloak 17+", kc("https://sso.example.com/realms/demo", "https://sso.example.com/realms/demo"), cloakroom.Keycloak},
		{"legacy /auth prefix", kc("https://sso.example.com/auth/realms/demo", "https://sso.example.com/auth/realms/demo"), cloakroom.Keycloak},
		{"backend URL on another host", kc("https://sso.example.com/realms/demo", "http://keycloak:8080/realms/demo"), cloakroom.Keycloak},
		{"realm name with an escaped space", kc("https://sso.example.com/realms/my%20realm", "https://sso.example.com/realms/my%20realm"), cloakroom.Keycloak},
		{"endpoints of another realm", kc("https://sso.example.com/realms/demo", "https://sso.example.com/realms/other"), cloakroom.GenericOIDC},
		{"Keycloak layout without /realms/ in the issuer", kc("https://sso.example.com/demo", "https://sso.example.com/demo"), cloakroom.GenericOIDC},
		{"issuer ends in /realms/", kc("https://sso.example.com/realms/", "https://sso.example.com/realms/"), cloakroom.GenericOIDC},
		{"dex", &cloakroom.Metadata{Issuer: "http://127.0.0.1:5556/dex", AuthorizationEndpoint: "http://127.0.0.1:5556/dex/auth", TokenEndpoint: "http://127.0.0.1:5556/dex/token", JWKSURI: "http://127.0.0.1:5556/dex/keys"}, cloakroom.GenericOIDC},
		{"Hydra", &cloakroom.Metadata{Issuer: "http://127.0.0.1:4444/", AuthorizationEndpoint: "http://127.0.0.1:4444/oauth2/auth", TokenEndpoint: "http://127.0.0.1:4444/oauth2/token", JWKSURI: "http://127.0.0.1:4444/.well-known/jwks.json"}, cloakroom.GenericOIDC},
		{"realms in the issuer, other layout", &cloakroom.Metadata{Issuer: "https://idp.example.com/realms/demo", AuthorizationEndpoint: "https://idp.example.com/realms/demo/authorize", JWKSURI: "https://idp.example.com/realms/demo/keys"}, cloakroom.GenericOIDC},
		{"nil", nil, cloakroom.GenericOIDC},
	}
	for _, tt := range tests {
		if got := cloakroom.DetectProfile(tt.meta); got != tt.want {
			t.Errorf("%s: DetectProfile = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestRealmProfile detects keycloaktest as Keycloak and a provider of
// another layout as generic; an explicit profile always wins.
func TestRealmProfile(t *testing.T) {
	t.Parallel()
	kc := newEnv(t)
	op := genericop.New(t, genericop.Options{ClientID: "web", ClientSecret: "s"})
	generic, err := cloakroom.NewRealm(op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		realm      *cloakroom.Realm
		configured cloakroom.Profile
		want       cloakroom.Profile
	}{
		{"keycloaktest detected", kc.realm, cloakroom.AutoDetect, cloakroom.Keycloak},
		{"generic OP detected", generic, cloakroom.AutoDetect, cloakroom.GenericOIDC},
		{"explicit generic wins over Keycloak layout", kc.realm, cloakroom.GenericOIDC, cloakroom.GenericOIDC},
		{"explicit keycloak wins over generic layout", generic, cloakroom.Keycloak, cloakroom.Keycloak},
	} {
		got, err := tt.realm.ResolveProfile(t.Context(), tt.configured)
		if err != nil || got != tt.want {
			t.Errorf("%s: ResolveProfile = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestGenericProfileTokenTypes: without Keycloak's typ claim an ID token
// still never passes for an access token, and the checks every profile
// shares still hold.
func TestGenericProfileTokenTypes(t *testing.T) {
	t.Parallel()
	op := genericop.New(t, genericop.Options{ClientID: "web", ClientSecret: "s", Claims: map[string]any{"groups": []string{"staff", "admin"}}})
	realm, err := cloakroom.NewRealm(op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(extra map[string]any) string {
		tok, err := op.AccessToken(extra)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	idToken, err := op.IDToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	plainHeader, err := op.Sign(map[string]any{"iss": op.Issuer(), "sub": "user-1", "aud": "api", "iat": 1, "exp": 1 << 40}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idTypHeader, err := op.Sign(map[string]any{"iss": op.Issuer(), "sub": "user-1", "aud": "api", "iat": 1, "exp": 1 << 40}, map[string]any{"typ": "id_token+jwt"})
	if err != nil {
		t.Fatal(err)
	}
	logout, err := op.LogoutToken("sid-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		profile cloakroom.Profile
		cfg     cloakroom.VerifierConfig
		token   string
		wantErr error
		wantMsg string
	}{
		{name: "RFC 9068 access token", token: mint(nil)},
		{name: "auto detects the generic provider", profile: cloakroom.AutoDetect, token: mint(nil)},
		{name: "the Keycloak profile wants typ", profile: cloakroom.Keycloak, token: mint(nil), wantErr: cloakroom.ErrTokenType, wantMsg: "typ"},
		{name: "no JOSE typ either", token: plainHeader},
		{name: "ID token of the provider", token: idToken, cfg: cloakroom.VerifierConfig{ClientID: "web"}, wantErr: cloakroom.ErrTokenType, wantMsg: "nonce"},
		{name: "nonce", token: mint(map[string]any{"nonce": "n"}), wantErr: cloakroom.ErrTokenType, wantMsg: "ID token"},
		{name: "empty nonce", token: mint(map[string]any{"nonce": ""}), wantErr: cloakroom.ErrTokenType},
		{name: "at_hash", token: mint(map[string]any{"at_hash": "x"}), wantErr: cloakroom.ErrTokenType, wantMsg: "at_hash"},
		{name: "c_hash", token: mint(map[string]any{"c_hash": "x"}), wantErr: cloakroom.ErrTokenType},
		{name: "s_hash", token: mint(map[string]any{"s_hash": "x"}), wantErr: cloakroom.ErrTokenType},
		{name: "token_use id (Cognito)", token: mint(map[string]any{"token_use": "id"}), wantErr: cloakroom.ErrTokenType},
		{name: "token_use access (Cognito)", token: mint(map[string]any{"token_use": "access"})},
		{name: "typ claim ID checked when present", token: mint(map[string]any{"typ": "ID"}), wantErr: cloakroom.ErrTokenType},
		{name: "typ claim Refresh checked when present", token: mint(map[string]any{"typ": "Refresh"}), wantErr: cloakroom.ErrTokenType},
		{name: "typ claim Bearer", token: mint(map[string]any{"typ": "Bearer"})},
		{name: "JOSE typ of an ID token", token: idTypHeader, wantErr: cloakroom.ErrTokenType},
		{name: "logout token", token: logout, cfg: cloakroom.VerifierConfig{ClientID: "web"}, wantErr: cloakroom.ErrTokenType},
		{name: "audience still checked", token: mint(map[string]any{"aud": "other", "client_id": nil}), wantErr: cloakroom.ErrAudience},
		{name: "client_id as authorized party", cfg: cloakroom.VerifierConfig{ClientID: "gateway", AuthorizedParties: []string{"web"}}, token: mint(map[string]any{"aud": "other"})},
		{name: "client_id not an authorized party", cfg: cloakroom.VerifierConfig{ClientID: "gateway", AuthorizedParties: []string{"mobile"}}, token: mint(map[string]any{"aud": "other"}), wantErr: cloakroom.ErrAudience},
		{name: "azp wins over client_id", cfg: cloakroom.VerifierConfig{ClientID: "gateway", AuthorizedParties: []string{"web"}}, token: mint(map[string]any{"aud": "other", "azp": "mobile"}), wantErr: cloakroom.ErrAudience},
		{name: "issuer still checked", token: mint(map[string]any{"iss": "http://evil.example/op"}), wantErr: cloakroom.ErrIssuer},
		{name: "expiry still checked", token: mint(map[string]any{"exp": 1000}), wantErr: cloakroom.ErrExpired},
		{name: "sub still required", token: mint(map[string]any{"sub": nil}), wantErr: cloakroom.ErrMissingClaim},
		{name: "algorithms still allow-listed", cfg: cloakroom.VerifierConfig{ClientID: "api", Algorithms: []string{"ES256"}}, token: mint(nil), wantErr: cloakroom.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			if cfg.ClientID == "" {
				cfg.ClientID = "api"
			}
			cfg.Profile = tt.profile
			if tt.profile == cloakroom.Keycloak && !strings.HasPrefix(tt.name, "the Keycloak") {
				cfg.Profile = cloakroom.GenericOIDC
			}
			cfg.CacheEntries = -1
			v, err := realm.NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(t.Context(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Verify err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

// TestGenericProfileIDTokens: ID tokens without typ pass in the generic
// profile only; an access token never passes for one.
func TestGenericProfileIDTokens(t *testing.T) {
	t.Parallel()
	op := genericop.New(t, genericop.Options{ClientID: "web", ClientSecret: "s"})
	realm, err := cloakroom.NewRealm(op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	id, err := op.IDToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	accessForWeb, err := op.AccessToken(map[string]any{"aud": "web"})
	if err != nil {
		t.Fatal(err)
	}
	cognitoAccess, err := op.IDToken(map[string]any{"token_use": "access"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		profile cloakroom.Profile
		token   string
		wantErr error
	}{
		{"generic", cloakroom.GenericOIDC, id, nil},
		{"auto", cloakroom.AutoDetect, id, nil},
		{"keycloak wants typ ID", cloakroom.Keycloak, id, cloakroom.ErrTokenType},
		{"access token (JOSE typ at+jwt)", cloakroom.GenericOIDC, accessForWeb, cloakroom.ErrTokenType},
		{"token_use access", cloakroom.GenericOIDC, cognitoAccess, cloakroom.ErrTokenType},
	} {
		v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "web", Kind: cloakroom.IDToken, Profile: tt.profile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tt.token); !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
			t.Errorf("%s: Verify err = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestAutoDetectNeverWeakens: a Keycloak-shaped provider detected
// automatically keeps the Keycloak rules (typ required), and a provider
// that cannot be reached fails verification closed.
func TestAutoDetectNeverWeakens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t, cloakroom.VerifierConfig{Profile: cloakroom.AutoDetect})
	if _, err := v.Verify(t.Context(), e.token(t)); err != nil {
		t.Fatalf("Keycloak access token: %v", err)
	}
	noTyp := e.token(t, keycloaktest.WithoutClaim("typ"))
	if _, err := v.Verify(t.Context(), noTyp); !errors.Is(err, cloakroom.ErrTokenType) {
		t.Fatalf("token without typ from a Keycloak realm, auto profile: err = %v, want ErrTokenType", err)
	}
	idTok := e.token(t, keycloaktest.WithKind(keycloaktest.IDToken))
	if _, err := v.Verify(t.Context(), idTok); !errors.Is(err, cloakroom.ErrTokenType) {
		t.Fatalf("ID token as access token, auto profile: err = %v", err)
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer down.Close()
	realm, err := cloakroom.NewRealm(down.URL+"/op", cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := realm.ResolveProfile(context.Background(), cloakroom.AutoDetect); !errors.Is(err, cloakroom.ErrUnavailable) {
		t.Fatalf("ResolveProfile with the provider down: err = %v, want ErrUnavailable", err)
	}
}

// TestRolesClaim: Roles and HasRole read the configured claim, whatever
// its shape; RealmRoles keeps Keycloak's meaning.
func TestRolesClaim(t *testing.T) {
	t.Parallel()
	op := genericop.New(t, genericop.Options{ClientID: "web", ClientSecret: "s", Claims: map[string]any{
		"groups":       []string{"staff", "admin"},
		"role":         "editor",
		"realm_access": map[string]any{"roles": []string{"kc-user"}},
		"urn:zitadel:iam:org:project:roles": map[string]any{
			"reader": map[string]string{"org1": "example.com"},
			"writer": map[string]string{"org1": "example.com"},
		},
		"nested": map[string]any{"roles": []any{"a", 7, "b"}},
	}})
	realm, err := cloakroom.NewRealm(op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	token, err := op.AccessToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		claim string
		want  []string
	}{
		{"", []string{"kc-user"}},
		{"realm_access.roles", []string{"kc-user"}},
		{"groups", []string{"staff", "admin"}},
		{"role", []string{"editor"}},
		{"urn:zitadel:iam:org:project:roles", []string{"reader", "writer"}},
		{"nested.roles", []string{"a", "b"}},
		{"missing", nil},
	} {
		v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "api", Profile: cloakroom.GenericOIDC, RolesClaim: tt.claim})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(t.Context(), token)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RealmRoles(); !slices.Equal(got, tt.want) {
			t.Errorf("RolesClaim %q: RealmRoles = %q, want %q", tt.claim, got, tt.want)
		}
		for _, r := range tt.want {
			if !c.HasRealmRole(r) {
				t.Errorf("RolesClaim %q: HasRealmRole(%q) = false", tt.claim, r)
			}
			if !cloakroom.AnyRealmRole(r).Allows(c) {
				t.Errorf("RolesClaim %q: AnyRealmRole(%q) refuses", tt.claim, r)
			}
		}
		if c.HasRealmRole("nobody") || cloakroom.AnyRealmRole("nobody").Allows(c) {
			t.Errorf("RolesClaim %q: HasRealmRole(nobody) = true", tt.claim)
		}
		if got := c.WithRolesClaim("groups").RealmRoles(); !slices.Equal(got, []string{"staff", "admin"}) {
			t.Errorf("WithRolesClaim(groups).RealmRoles = %q", got)
		}
		if got := c.Scopes(); !slices.Equal(got, []string{"openid", "read"}) || !c.HasScope("read") || c.HasScope("write") {
			t.Errorf("scopes from scp = %q", got)
		}
	}
	for _, bad := range []string{".groups", "groups.", " groups"} {
		if _, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "api", RolesClaim: bad}); err == nil {
			t.Errorf("RolesClaim %q accepted", bad)
		}
	}
}
