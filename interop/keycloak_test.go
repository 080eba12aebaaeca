package interop_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/interop/conformance"
	"golang.org/x/oauth2"
)

// The library against a real Keycloak (CLOAKROOM_TEST_KEYCLOAK, started by
// scripts/keycloak.sh and by .ci/run). Each test imports the conformance
// fixture realm under a name of its own, so the tests run in parallel.

// realKeycloak imports the fixture as realm name and returns the server.
func realKeycloak(t *testing.T, name string) (*conformance.Keycloak, string) {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	kc := &conformance.Keycloak{Base: base, Admin: os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN"), Password: os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD")}
	if kc.Admin == "" {
		kc.Admin, kc.Password = "admin", "admin"
	}
	data, err := os.ReadFile("conformance/testdata/conformance-realm.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.ImportRealm(t.Context(), name, data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kc.AdminCall(ctx, http.MethodDelete, "/admin/realms/"+name, nil)
	})
	return kc, base + "/realms/" + name
}

// addAudienceMapper puts audience into the access tokens of clientID.
func addAudienceMapper(t *testing.T, kc *conformance.Keycloak, realm, clientID, audience string) {
	t.Helper()
	res, err := kc.AdminCall(t.Context(), http.MethodGet, "/admin/realms/"+realm+"/clients?clientId="+clientID, nil)
	if err != nil || len(res.List) != 1 {
		t.Fatalf("finding client %s: %v", clientID, err)
	}
	id := res.List[0].(map[string]any)["id"].(string)
	mapper := map[string]any{
		"name": "audience-" + audience, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
		"config": map[string]string{"included.client.audience": audience, "access.token.claim": "true", "introspection.token.claim": "true", "id.token.claim": "false"},
	}
	res, err = kc.AdminCall(t.Context(), http.MethodPost, "/admin/realms/"+realm+"/clients/"+id+"/protocol-mappers/models", mapper)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("adding the audience mapper: %v %v", err, res)
	}
}

func realPasswordLogin(t *testing.T, issuer, user, password string) *oauth2.Token {
	t.Helper()
	cfg := oauth2.Config{ClientID: "conf-app", ClientSecret: "conf-app-secret", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{TokenURL: issuer + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := cfg.PasswordCredentialsToken(t.Context(), user, password)
	if err != nil {
		t.Fatalf("password grant for %s: %v", user, err)
	}
	return tok
}

// TestRealKeycloakVerification: cloakroom's verifier on tokens a real
// Keycloak issued — the audience default, the azp way in, token types,
// roles, and the Audience mapper that the refusal recommends.
func TestRealKeycloakVerification(t *testing.T) {
	t.Parallel()
	kc, issuer := realKeycloak(t, "lib-verify")
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	tok := realPasswordLogin(t, issuer, "alice", "alice-pw")
	strict, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app"})
	if err != nil {
		t.Fatal(err)
	}
	// Keycloak puts no aud in this token (no account roles, no mapper): the
	// default refuses it, naming both fixes.
	_, err = strict.Verify(t.Context(), tok.AccessToken)
	if !errors.Is(err, cloakroom.ErrAudience) || !strings.Contains(err.Error(), "Audience mapper") || !strings.Contains(err.Error(), "azp") {
		t.Fatalf("a token without aud: %v, want an audience refusal naming the Audience mapper and azp", err)
	}
	byAZP, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app", AuthorizedParties: []string{"conf-app"}})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := byAZP.Verify(t.Context(), tok.AccessToken)
	if err != nil {
		t.Fatalf("with conf-app as an authorized party: %v", err)
	}
	if claims.Username() != "alice" || claims.Subject() == "" || claims.Subject() == "alice" {
		t.Errorf("identity: sub %q, username %q", claims.Subject(), claims.Username())
	}
	if roles := claims.RealmRoles(); !slices.Contains(roles, "admin") || !slices.Contains(roles, "user") {
		t.Errorf("realm roles %v", roles)
	}
	if !slices.Contains(claims.ClientRoles("conf-app"), "editor") {
		t.Errorf("client roles %v", claims.ClientRoles("conf-app"))
	}
	// Token types never pass for one another.
	idToken, _ := tok.Extra("id_token").(string)
	if _, err := byAZP.Verify(t.Context(), idToken); !errors.Is(err, cloakroom.ErrTokenType) {
		t.Errorf("an ID token as an access token: %v", err)
	}
	if _, err := byAZP.Verify(t.Context(), tok.RefreshToken); err == nil {
		t.Errorf("a refresh token was accepted as an access token")
	}
	idv, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app", Kind: cloakroom.IDToken})
	if err != nil {
		t.Fatal(err)
	}
	if idc, err := idv.Verify(t.Context(), idToken); err != nil || idc.Subject() != claims.Subject() {
		t.Errorf("the ID token: %v", err)
	}
	if _, err := idv.Verify(t.Context(), tok.AccessToken); !errors.Is(err, cloakroom.ErrTokenType) {
		t.Errorf("an access token as an ID token: %v", err)
	}
	// The fix the refusal names: an Audience mapper.
	addAudienceMapper(t, kc, "lib-verify", "conf-app", "conf-app")
	tok = realPasswordLogin(t, issuer, "alice", "alice-pw")
	if _, err := strict.Verify(t.Context(), tok.AccessToken); err != nil {
		t.Errorf("with the Audience mapper: %v", err)
	}
}

// TestRealKeycloakIntrospection: bearer's introspection against Keycloak
// 26.7, which refuses to introspect tokens whose aud lacks the client; a
// logout is seen before exp once the mapper is there.
func TestRealKeycloakIntrospection(t *testing.T) {
	t.Parallel()
	kc, issuer := realKeycloak(t, "lib-introspect")
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app", AuthorizedParties: []string{"conf-app"}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	auth, err := bearer.New(v, bearer.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), bearer.WithIntrospection(bearer.IntrospectionConfig{
		Client: cloakroom.ClientCredentials{ClientID: "conf-app", ClientSecret: "conf-app-secret"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Authenticate(bearer.RequireAuthenticated()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))))
	defer srv.Close()
	call := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	tok := realPasswordLogin(t, issuer, "alice", "alice-pw")
	status, body := call(tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(body, "Audience mapper") {
		t.Fatalf("a live token without aud: %d %s; want 401 naming the Audience mapper", status, body)
	}
	if !strings.Contains(logs.String(), "Keycloak 26.7") {
		t.Errorf("no warning in the logs: %s", logs.String())
	}
	addAudienceMapper(t, kc, "lib-introspect", "conf-app", "conf-app")
	tok = realPasswordLogin(t, issuer, "alice", "alice-pw")
	if status, body := call(tok.AccessToken); status != 200 {
		t.Fatalf("a live token with aud: %d %s", status, body)
	}
	// Logging out in Keycloak makes the next call fail before exp.
	res, err := http.PostForm(issuer+"/protocol/openid-connect/logout", map[string][]string{
		"client_id": {"conf-app"}, "client_secret": {"conf-app-secret"}, "refresh_token": {tok.RefreshToken},
	})
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %v %v", err, res)
	}
	res.Body.Close()
	if status, body := call(tok.AccessToken); status != http.StatusUnauthorized || !strings.Contains(body, "no longer active") {
		t.Errorf("after logout: %d %s", status, body)
	}
}

// TestRealKeycloakAdmin: the admin client with a service account holding
// realm-admin, on the operations applications use most.
func TestRealKeycloakAdmin(t *testing.T) {
	t.Parallel()
	_, issuer := realKeycloak(t, "lib-admin")
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: "conf-admin", ClientSecret: "conf-admin-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bob, err := c.FindUserByUsername(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Email != "bob@example.com" || bob.FirstName != "Bob" {
		t.Fatalf("bob: %+v", bob)
	}
	n, err := c.CountUsers(ctx, admin.UserQuery{})
	if err != nil || n < 3 {
		t.Errorf("count: %d %v", n, err)
	}
	// Disabling a user must not wipe the profile: Keycloak 24+ removes
	// the profile fields a PUT leaves out.
	if err := c.DisableUserAndLogout(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	after, err := c.GetUser(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Enabled || after.Email != "bob@example.com" || after.FirstName != "Bob" || after.LastName != "Builder" {
		t.Errorf("after DisableUser: enabled %v, email %q, name %q %q: the profile must survive", after.Enabled, after.Email, after.FirstName, after.LastName)
	}
	if err := c.EnableUser(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	newEmail := "bob.new@example.com"
	if err := c.UpdateUser(ctx, bob.ID, admin.UserUpdate{Email: &newEmail}); err != nil {
		t.Fatal(err)
	}
	after, err = c.GetUser(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Email != newEmail || after.FirstName != "Bob" || !after.Enabled {
		t.Errorf("after UpdateUser(email): %+v", after)
	}
	// The same with attributes: Keycloak 24+ reads a body with attributes
	// as the whole user profile.
	if err := c.UpdateUser(ctx, bob.ID, admin.UserUpdate{Attributes: map[string][]string{}}); err != nil {
		t.Fatal(err)
	}
	after, err = c.GetUser(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Email != newEmail || after.FirstName != "Bob" || after.LastName != "Builder" {
		t.Errorf("after UpdateUser(attributes): email %q, name %q %q: the profile must survive", after.Email, after.FirstName, after.LastName)
	}
	if err := c.AddUserRealmRoles(ctx, bob.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	roles, err := c.UserRealmRoles(ctx, bob.ID)
	if err != nil || !slices.ContainsFunc(roles, func(r admin.Role) bool { return r.Name == "admin" }) {
		t.Errorf("roles after adding admin: %v %v", roles, err)
	}
	id, err := c.CreateUser(ctx, admin.NewUser{Username: "zoe", Email: "zoe@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, admin.NewUser{Username: "zoe"}); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("a duplicate username: %v, want ErrConflict", err)
	}
	if err := c.ResetPassword(ctx, id, "Zoe-password-1"); err != nil {
		t.Errorf("reset password: %v", err)
	}
	if err := c.DeleteUser(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUser(ctx, id); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("a deleted user: %v, want ErrNotFound", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
