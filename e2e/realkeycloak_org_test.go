package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/directory"
)

// Keycloak 26 organizations against a real Keycloak (CLOAKROOM_TEST_KEYCLOAK):
// the admin package's organization calls, the organization claim in real
// tokens, cloakroom.MemberOf through bearer, and the directory's
// organization sync. The realm is the conformance suite's organizations
// fixture (organizationsEnabled, acme with olga and tom, globex with olga,
// the disabled dormant with nina).
func TestRealKeycloakOrganizations(t *testing.T) {
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	ctx := t.Context()
	k := &realKC{t: t, base: base, realm: "e2e-orgs"}
	data, err := os.ReadFile("../interop/conformance/testdata/organizations-realm.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	rep["realm"] = k.realm
	k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", rep, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0) })

	realm, err := cloakroom.NewRealm(k.issuer())
	if err != nil {
		t.Fatal(err)
	}
	ac, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: "orgs-admin", ClientSecret: "orgs-admin-secret"}})
	if err != nil {
		t.Fatal(err)
	}

	// Admin: create, read, update, members, identity providers.
	id, err := ac.CreateOrganization(ctx, admin.NewOrganization{Name: "Initech", Domains: []admin.OrganizationDomain{{Name: "initech.test"}},
		Attributes: map[string][]string{"tier": {"bronze"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateOrganization(ctx, admin.NewOrganization{Name: "Initech"}); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("duplicate name: %v", err)
	}
	o, err := ac.GetOrganization(ctx, id)
	if err != nil || o.Alias != "Initech" || !o.HasDomain("initech.test") || o.Attributes["tier"][0] != "bronze" {
		t.Fatalf("GetOrganization = %+v, %v", o, err)
	}
	o.Description = "TPS reports"
	o.Attributes = nil // kept as they are
	if err := ac.UpdateOrganization(ctx, *o); err != nil {
		t.Fatal(err)
	}
	if o, _ := ac.GetOrganization(ctx, id); o.Description != "TPS reports" || o.Attributes["tier"] == nil {
		t.Errorf("after update: %+v", o)
	}
	var all []string
	for org, err := range ac.AllOrganizations(ctx, admin.OrganizationQuery{Max: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, org.Alias)
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"Initech", "acme", "dormant", "globex"}) {
		t.Errorf("AllOrganizations = %q", all)
	}
	tom := k.userID("tom")
	nina := k.userID("nina")
	if err := ac.AddOrganizationMember(ctx, id, tom); err != nil {
		t.Fatal(err)
	}
	if err := ac.AddOrganizationMember(ctx, id, tom); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("second add: %v", err)
	}
	if n, err := ac.CountOrganizationMembers(ctx, id); err != nil || n != 1 {
		t.Errorf("CountOrganizationMembers = %d, %v", n, err)
	}
	if orgs, err := ac.UserOrganizations(ctx, tom, false); err != nil || len(orgs) != 2 {
		t.Errorf("UserOrganizations(tom) = %+v, %v", orgs, err)
	}
	if err := ac.LinkOrganizationIdentityProvider(ctx, id, "spare-idp"); err != nil {
		t.Fatal(err)
	}
	if idps, err := ac.OrganizationIdentityProviders(ctx, id); err != nil || len(idps) != 1 || idps[0].OrganizationID != id {
		t.Errorf("OrganizationIdentityProviders = %+v, %v", idps, err)
	}
	if err := ac.UnlinkOrganizationIdentityProvider(ctx, id, "spare-idp"); err != nil {
		t.Fatal(err)
	}
	if err := ac.RemoveOrganizationMember(ctx, id, tom); err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteOrganization(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.GetOrganization(ctx, id); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("GetOrganization after delete: %v", err)
	}

	// The claim in real tokens, and MemberOf through bearer.
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orgs-app", AuthorizedParties: []string{"orgs-app"}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(auth.Authenticate(bearer.Require(cloakroom.MemberOf("acme"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("welcome"))
	}))))
	defer api.Close()
	token := func(user, pw, scope string) string {
		res, err := http.PostForm(k.issuer()+"/protocol/openid-connect/token", url.Values{"grant_type": {"password"}, "client_id": {"orgs-app"},
			"client_secret": {"orgs-app-secret"}, "username": {user}, "password": {pw}, "scope": {scope}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.AccessToken == "" {
			t.Fatalf("token for %s (%s): status %d, %v", user, scope, res.StatusCode, err)
		}
		return out.AccessToken
	}
	for _, tc := range []struct {
		user, pw, scope string
		orgs            []string
		status          int
	}{
		{"tom", "tom-pw", "openid organization", []string{"acme"}, http.StatusOK},
		{"tom", "tom-pw", "openid", nil, http.StatusForbidden},
		{"olga", "olga-pw", "openid organization:*", []string{"acme", "globex"}, http.StatusOK},
		{"olga", "olga-pw", "openid organization:globex", []string{"globex"}, http.StatusForbidden},
		{"nina", "nina-pw", "openid organization", nil, http.StatusForbidden}, // dormant is disabled
	} {
		tok := token(tc.user, tc.pw, tc.scope)
		claims, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("%s: %v", tc.user, err)
		}
		if got := claims.Organizations(); !slices.Equal(got, tc.orgs) {
			t.Errorf("%s %q: Organizations() = %q, want %q", tc.user, tc.scope, got, tc.orgs)
		}
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s %q: API answered %d, want %d", tc.user, tc.scope, res.StatusCode, tc.status)
		}
	}

	// The directory keeps the memberships.
	dir, err := directory.OpenSQLite(filepath.Join(t.TempDir(), "users.db"), directory.WithAdmin(ac))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	srep, err := dir.Sync(ctx, directory.SyncOptions{Organizations: true})
	if err != nil {
		t.Fatal(err)
	}
	if o := srep.Organizations; o == nil || !o.Enabled || o.Organizations != 3 || o.Memberships != 4 {
		t.Errorf("Sync organizations = %+v", srep.Organizations)
	}
	ms, err := dir.Organizations(ctx, k.userID("olga"))
	if err != nil || len(ms) != 2 || ms[0].Alias != "acme" || ms[1].Alias != "globex" {
		t.Errorf("Organizations(olga) = %+v, %v", ms, err)
	}
	if ms, _ := dir.Organizations(ctx, nina); len(ms) != 1 || ms[0].Enabled {
		t.Errorf("Organizations(nina) = %+v", ms)
	}
	members, err := dir.OrganizationMembers(ctx, "acme")
	if err != nil || len(members) != 2 {
		t.Errorf("OrganizationMembers(acme) = %v, %v", members, err)
	}
}
