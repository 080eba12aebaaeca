package interop_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/Nerzal/gocloak/v13"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// masterRealm is a Keycloak-style administration realm: user "admin"
// holds the realm role "admin", which grants everything in every realm.
var masterRealm = keycloaktest.WithRealm(keycloaktest.RealmConfig{
	Name:       "master",
	RealmRoles: []string{"admin"},
	Users:      []keycloaktest.UserConfig{{Username: "admin", Password: "admin-pw", RealmRoles: []string{"admin"}}},
})

// adminDemo starts the demo realm with groups and a client role, plus the
// master realm, and returns a gocloak client with a master admin token.
func adminDemo(t *testing.T) (demo, *gocloak.GoCloak, string) {
	t.Helper()
	cfg := keycloaktest.DemoRealm(clientSecret)
	cfg.Clients[0].Roles = []string{"reader"}
	cfg.RealmRoles = append(cfg.RealmRoles, "editor")
	cfg.Groups = []keycloaktest.GroupConfig{{Name: "staff", SubGroups: []keycloaktest.GroupConfig{{Name: "editors"}}}}
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg), masterRealm)
	d := demo{srv: srv, realm: srv.Realm(demoRealm), issuer: srv.Issuer(demoRealm)}
	gc := newGocloak(d)
	jwt, err := gc.LoginAdmin(t.Context(), "admin", "admin-pw", "master")
	if err != nil {
		t.Fatalf("LoginAdmin: %v", err)
	}
	return d, gc, jwt.AccessToken
}

// TestGocloakAdminUsers runs gocloak's user operations against
// keycloaktest's admin API with a master-realm admin token.
func TestGocloakAdminUsers(t *testing.T) {
	t.Parallel()
	d, gc, tok := adminDemo(t)
	ctx := t.Context()
	// Keycloak 24+ drops custom attributes its user profile does not
	// declare unless unmanaged attributes are enabled (conformance:
	// admin-users/after-update-attributes.attributes = [] on 26.7.3).
	if err := d.realm.SetUnmanagedAttributePolicy(keycloaktest.UnmanagedAttributesEnabled); err != nil {
		t.Fatal(err)
	}

	id, err := gc.CreateUser(ctx, tok, demoRealm, gocloak.User{
		Username: gocloak.StringP("carol"), Email: gocloak.StringP("carol@example.com"),
		FirstName: gocloak.StringP("Carol"), Enabled: gocloak.BoolP(true),
		Attributes: &map[string][]string{"team": {"blue"}},
	})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if sub, _ := d.realm.UserID("carol"); id != sub {
		t.Fatalf("CreateUser id %q, want %q", id, sub)
	}
	_, err = gc.CreateUser(ctx, tok, demoRealm, gocloak.User{Username: gocloak.StringP("carol")})
	wantAPIError(t, err, 409, "User exists with same username")

	u, err := gc.GetUserByID(ctx, tok, demoRealm, id)
	if err != nil {
		t.Fatalf("GetUserByID: %v", err)
	}
	if gocloak.PString(u.Username) != "carol" || !gocloak.PBool(u.Enabled) || (*u.Attributes)["team"][0] != "blue" || gocloak.PInt64(u.CreatedTimestamp) == 0 {
		t.Errorf("GetUserByID = %+v", u)
	}
	u.LastName = gocloak.StringP("Danvers")
	if err := gc.UpdateUser(ctx, tok, demoRealm, *u); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if err := gc.SetPassword(ctx, tok, id, demoRealm, "carol-pw", false); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, err := gc.Login(ctx, clientID, clientSecret, demoRealm, "carol", "carol-pw"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}

	users, err := gc.GetUsers(ctx, tok, demoRealm, gocloak.GetUsersParams{Username: gocloak.StringP("carol"), Exact: gocloak.BoolP(true)})
	if err != nil || len(users) != 1 || gocloak.PString(users[0].LastName) != "Danvers" {
		t.Errorf("GetUsers = %v, %v", users, err)
	}
	users, err = gc.GetUsers(ctx, tok, demoRealm, gocloak.GetUsersParams{Search: gocloak.StringP("*o*"), Max: gocloak.IntP(2), BriefRepresentation: gocloak.BoolP(true)})
	if err != nil || len(users) != 2 {
		t.Errorf("GetUsers(search, max) = %v, %v", users, err)
	}
	users, err = gc.GetUsers(ctx, tok, demoRealm, gocloak.GetUsersParams{Q: gocloak.StringP("team:blue")})
	if err != nil || len(users) != 1 {
		t.Errorf("GetUsers(q) = %v, %v", users, err)
	}
	n, err := gc.GetUserCount(ctx, tok, demoRealm, gocloak.GetUsersParams{})
	if err != nil || n != 3 {
		t.Errorf("GetUserCount = %d, %v", n, err)
	}

	if err := gc.DeleteUser(ctx, tok, demoRealm, id); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = gc.GetUserByID(ctx, tok, demoRealm, id)
	wantAPIError(t, err, 404, "User not found")
}

// TestGocloakAdminRolesGroupsSessions: role mappings, groups, client
// lookup, federated identities, sessions and logout through gocloak.
func TestGocloakAdminRolesGroupsSessions(t *testing.T) {
	t.Parallel()
	d, gc, tok := adminDemo(t)
	ctx := t.Context()
	bob, _ := d.realm.UserID("bob")

	role, err := gc.GetRealmRole(ctx, tok, demoRealm, "editor")
	if err != nil {
		t.Fatalf("GetRealmRole: %v", err)
	}
	if err := gc.AddRealmRoleToUser(ctx, tok, demoRealm, bob, []gocloak.Role{*role}); err != nil {
		t.Fatalf("AddRealmRoleToUser: %v", err)
	}
	roles, err := gc.GetRealmRolesByUserID(ctx, tok, demoRealm, bob)
	if err != nil || !slices.ContainsFunc(roles, func(r *gocloak.Role) bool { return gocloak.PString(r.Name) == "editor" }) {
		t.Errorf("GetRealmRolesByUserID = %v, %v", roles, err)
	}
	if err := gc.DeleteRealmRoleFromUser(ctx, tok, demoRealm, bob, []gocloak.Role{*role}); err != nil {
		t.Errorf("DeleteRealmRoleFromUser: %v", err)
	}

	clients, err := gc.GetClients(ctx, tok, demoRealm, gocloak.GetClientsParams{ClientID: gocloak.StringP(clientID)})
	if err != nil || len(clients) != 1 || gocloak.PString(clients[0].ClientID) != clientID {
		t.Fatalf("GetClients = %v, %v", clients, err)
	}
	idOfClient := gocloak.PString(clients[0].ID)
	reader, err := gc.GetClientRole(ctx, tok, demoRealm, idOfClient, "reader")
	if err != nil {
		t.Fatalf("GetClientRole: %v", err)
	}
	if err := gc.AddClientRolesToUser(ctx, tok, demoRealm, idOfClient, bob, []gocloak.Role{*reader}); err != nil {
		t.Fatalf("AddClientRolesToUser: %v", err)
	}
	croles, err := gc.GetClientRolesByUserID(ctx, tok, demoRealm, idOfClient, bob)
	if err != nil || len(croles) != 1 || gocloak.PString(croles[0].Name) != "reader" {
		t.Errorf("GetClientRolesByUserID = %v, %v", croles, err)
	}

	groups, err := gc.GetGroups(ctx, tok, demoRealm, gocloak.GetGroupsParams{})
	if err != nil || len(groups) != 1 || gocloak.PString(groups[0].Name) != "staff" {
		t.Fatalf("GetGroups = %v, %v", groups, err)
	}
	if n, err := gc.GetGroupsCount(ctx, tok, demoRealm, gocloak.GetGroupsParams{}); err != nil || n != 2 {
		t.Errorf("GetGroupsCount = %d, %v", n, err)
	}
	editors, err := gc.GetGroupByPath(ctx, tok, demoRealm, "/staff/editors")
	if err != nil || gocloak.PString(editors.Path) != "/staff/editors" {
		t.Fatalf("GetGroupByPath = %+v, %v", editors, err)
	}
	if err := gc.AddUserToGroup(ctx, tok, demoRealm, bob, gocloak.PString(editors.ID)); err != nil {
		t.Fatalf("AddUserToGroup: %v", err)
	}
	ug, err := gc.GetUserGroups(ctx, tok, demoRealm, bob, gocloak.GetGroupsParams{})
	if err != nil || len(ug) != 1 || gocloak.PString(ug[0].Path) != "/staff/editors" {
		t.Errorf("GetUserGroups = %v, %v", ug, err)
	}
	members, err := gc.GetGroupMembers(ctx, tok, demoRealm, gocloak.PString(editors.ID), gocloak.GetGroupsParams{})
	if err != nil || len(members) != 1 || gocloak.PString(members[0].ID) != bob {
		t.Errorf("GetGroupMembers = %v, %v", members, err)
	}
	if err := gc.DeleteUserFromGroup(ctx, tok, demoRealm, bob, gocloak.PString(editors.ID)); err != nil {
		t.Errorf("DeleteUserFromGroup: %v", err)
	}

	fi := gocloak.FederatedIdentityRepresentation{IdentityProvider: gocloak.StringP("github"), UserID: gocloak.StringP("42"), UserName: gocloak.StringP("bob-gh")}
	if err := gc.CreateUserFederatedIdentity(ctx, tok, demoRealm, bob, "github", fi); err != nil {
		t.Fatalf("CreateUserFederatedIdentity: %v", err)
	}
	links, err := gc.GetUserFederatedIdentities(ctx, tok, demoRealm, bob)
	if err != nil || len(links) != 1 || gocloak.PString(links[0].UserName) != "bob-gh" {
		t.Errorf("GetUserFederatedIdentities = %v, %v", links, err)
	}
	if err := gc.DeleteUserFederatedIdentity(ctx, tok, demoRealm, bob, "github"); err != nil {
		t.Errorf("DeleteUserFederatedIdentity: %v", err)
	}

	for range 2 {
		if _, err := gc.Login(ctx, clientID, clientSecret, demoRealm, "bob", "bob"); err != nil {
			t.Fatal(err)
		}
	}
	sessions, err := gc.GetUserSessions(ctx, tok, demoRealm, bob)
	if err != nil || len(sessions) != 2 || gocloak.PString(sessions[0].Username) != "bob" || gocloak.PInt64(sessions[0].Start) == 0 {
		t.Fatalf("GetUserSessions = %v, %v", sessions, err)
	}
	if (*sessions[0].Clients)[idOfClient] != clientID {
		t.Errorf("session clients %v", *sessions[0].Clients)
	}
	if err := gc.LogoutUserSession(ctx, tok, demoRealm, gocloak.PString(sessions[0].ID)); err != nil {
		t.Errorf("LogoutUserSession: %v", err)
	}
	err = gc.LogoutUserSession(ctx, tok, demoRealm, gocloak.PString(sessions[0].ID))
	wantAPIError(t, err, 404, "Sesssion not found")
	if err := gc.LogoutAllSessions(ctx, tok, demoRealm, bob); err != nil {
		t.Errorf("LogoutAllSessions: %v", err)
	}
	if left := d.realm.SessionIDs("bob"); len(left) != 0 {
		t.Errorf("sessions left: %v", left)
	}
}

// TestGocloakAdminServiceAccount: the demo client's service account
// (manage-users, view-users, query-groups, query-clients) works through
// gocloak's LoginClient; without view-realm, reading a realm role is 403.
func TestGocloakAdminServiceAccount(t *testing.T) {
	t.Parallel()
	d, gc, _ := adminDemo(t)
	ctx := t.Context()
	jwt, err := gc.LoginClient(ctx, clientID, clientSecret, demoRealm)
	if err != nil {
		t.Fatalf("LoginClient: %v", err)
	}
	users, err := gc.GetUsers(ctx, jwt.AccessToken, demoRealm, gocloak.GetUsersParams{})
	if err != nil || len(users) != 2 {
		t.Errorf("GetUsers = %v, %v", users, err)
	}
	_, err = gc.GetRealmRole(ctx, jwt.AccessToken, demoRealm, "editor")
	wantAPIError(t, err, 403)
	_, err = gc.GetUsers(ctx, "not-a-token", demoRealm, gocloak.GetUsersParams{})
	wantAPIError(t, err, 401)
	var apiErr *gocloak.APIError
	_, err = gc.GetUserByID(ctx, jwt.AccessToken, "no-such-realm", "x")
	if !errors.As(err, &apiErr) || apiErr.Code != 404 {
		t.Errorf("unknown realm: %v", err)
	}
	_ = d
}
