package bearer_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/genericop"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// TestGenericProviderTokens protects an API with tokens of a provider that
// is not Keycloak: roles from the groups claim through the realm-role
// helpers, scopes from scp, and ID tokens refused.
func TestGenericProviderTokens(t *testing.T) {
	t.Parallel()
	op := genericop.New(t, genericop.Options{ClientID: "web", ClientSecret: "s", Claims: map[string]any{"groups": []string{"staff"}}})
	realm, err := cloakroom.NewRealm(op.Issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "api", Profile: cloakroom.AutoDetect, RolesClaim: "groups"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v)
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
	idToken, err := op.IDToken(map[string]any{"aud": "api"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mw     bearer.Middleware
		token  string
		status int
	}{
		{"access token", bearer.RequireAuthenticated(), mint(nil), http.StatusOK},
		{"role from groups", bearer.RequireAnyRealmRole("staff"), mint(nil), http.StatusOK},
		{"all roles from groups", bearer.RequireAllRealmRoles("staff", "admin"), mint(nil), http.StatusForbidden},
		{"missing role", bearer.RequireAnyRealmRole("admin"), mint(nil), http.StatusForbidden},
		{"scope from scp", bearer.RequireScopes("read"), mint(nil), http.StatusOK},
		{"missing scope", bearer.RequireScopes("write"), mint(nil), http.StatusForbidden},
		{"ID token for this audience", bearer.RequireAuthenticated(), idToken, http.StatusUnauthorized},
		{"at_hash marks an ID token", bearer.RequireAuthenticated(), mint(map[string]any{"at_hash": "x"}), http.StatusUnauthorized},
		{"wrong audience", bearer.RequireAuthenticated(), mint(map[string]any{"aud": "other"}), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api", nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			auth.Authenticate(tt.mw(whoami)).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
}

// TestKeycloakTokensRolesClaim: the realm-role helpers read
// realm_access.roles by default, and the RolesClaim when one is set, on
// Keycloak tokens as well; typ is still required of them in the detected
// profile.
func TestKeycloakTokensRolesClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	withTyp := e.kc.MustToken(t, "alice", "cloakroom")
	withoutTyp := e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithoutClaim("typ"))
	groups := e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithClaim("groups", []string{"ops"}))
	tests := []struct {
		name   string
		cfg    cloakroom.VerifierConfig
		mw     bearer.Middleware
		token  string
		status int
	}{
		{name: "realm role, default claim", mw: bearer.RequireAnyRealmRole("admin"), token: withTyp, status: http.StatusOK},
		{name: "realm role, auto profile", cfg: cloakroom.VerifierConfig{Profile: cloakroom.AutoDetect}, mw: bearer.RequireAnyRealmRole("admin"), token: withTyp, status: http.StatusOK},
		{name: "no typ, auto profile detects Keycloak", cfg: cloakroom.VerifierConfig{Profile: cloakroom.AutoDetect}, mw: bearer.RequireAuthenticated(), token: withoutTyp, status: http.StatusUnauthorized},
		{name: "no typ, generic profile", cfg: cloakroom.VerifierConfig{Profile: cloakroom.GenericOIDC}, mw: bearer.RequireAuthenticated(), token: withoutTyp, status: http.StatusOK},
		{name: "groups as roles", cfg: cloakroom.VerifierConfig{RolesClaim: "groups"}, mw: bearer.RequireAnyRealmRole("ops"), token: groups, status: http.StatusOK},
		{name: "groups as roles, realm role no longer counts", cfg: cloakroom.VerifierConfig{RolesClaim: "groups"}, mw: bearer.RequireAnyRealmRole("admin"), token: groups, status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.ClientID = "cloakroom"
			v, err := e.realm.NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := bearer.New(v)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api", nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			auth.Authenticate(tt.mw(whoami)).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
}
