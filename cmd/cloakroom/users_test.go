package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/directory"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

const usersSecret = "users-cli-secret-never-printed"

// usersFixture is a keycloaktest realm for the users command: the demo
// realm, a "nobody" service account without admin roles, client roles and
// groups.
type usersFixture struct {
	srv        *keycloaktest.Server
	kc         *keycloaktest.Realm
	iss        string
	secretFile string
	admin      *admin.Client
}

func newUsersFixture(t *testing.T) usersFixture {
	t.Helper()
	cfg := keycloaktest.DemoRealm(usersSecret)
	cfg.Clients[0].Roles = []string{"reader", "writer"}
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "nobody", Secret: usersSecret, ServiceAccounts: true})
	cfg.RealmRoles = append(cfg.RealmRoles, "editor")
	cfg.Groups = []keycloaktest.GroupConfig{
		{Name: "staff", SubGroups: []keycloaktest.GroupConfig{{Name: "editors"}}},
		{Name: "guests", SubGroups: []keycloaktest.GroupConfig{{Name: "editors"}}},
		{Name: "ops"},
	}
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg))
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(usersSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: usersSecret}})
	if err != nil {
		t.Fatal(err)
	}
	return usersFixture{srv: srv, kc: srv.Realm("demo"), iss: srv.Issuer("demo"), secretFile: secretFile, admin: ac}
}

// conn are the connection flags of the demo realm's service account.
func (f usersFixture) conn() []string {
	return []string{"--issuer", f.iss, "--client-id", keycloaktest.DemoClientID, "--client-secret-file", f.secretFile}
}

type usersRun struct {
	env       map[string]string
	stdin     string
	stdinTTY  bool
	stdoutTTY bool
}

// runUsersCLI runs `cloakroom users ARGS` as main would (exit status,
// messages on stderr) and checks that the secret was not printed.
func runUsersCLI(t *testing.T, r usersRun, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := usersEnv{stdin: strings.NewReader(r.stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return r.env[k] }, stdinTTY: r.stdinTTY, stdoutTTY: r.stdoutTTY}
	code := exitStatus(env.run(context.Background(), args), &errOut)
	if strings.Contains(out.String()+errOut.String(), usersSecret) {
		t.Fatalf("the client secret was printed: %q %q", out.String(), errOut.String())
	}
	return code, out.String(), errOut.String()
}

// exitStatus mirrors run's handling of a command's error.
func exitStatus(err error, stderr *bytes.Buffer) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "cloakroom users: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "cloakroom users: %v\n", err)
	return 1
}

func (f usersFixture) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runUsersCLI(t, usersRun{}, append(args, f.conn()...)...)
	if code != 0 {
		t.Fatalf("users %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func TestUsersList(t *testing.T) {
	t.Parallel()
	f := newUsersFixture(t)
	// A tab in a name, to check the table's escaping. Keycloak's user
	// profile refuses one through the admin API (person-name-prohibited-
	// characters: error-person-name-invalid-character), so the user comes
	// in the way an imported one would.
	if _, err := f.kc.AddUser(keycloaktest.UserConfig{Username: "carol", Email: "carol@example.com", FirstName: "Carol", LastName: "Tab\tby", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		users []string
	}{
		{"all", []string{"list"}, []string{"alice", "bob", "carol"}},
		{"search prefix", []string{"search", "ali"}, []string{"alice"}},
		{"list with text", []string{"list", "bob@"}, []string{"bob"}},
		{"exact", []string{"search", "ali", "--exact"}, nil},
		{"exact match", []string{"search", "--exact", "alice"}, []string{"alice"}},
		{"disabled only", []string{"list", "--enabled=false"}, []string{"carol"}},
		{"enabled only", []string{"list", "--enabled"}, []string{"alice", "bob"}},
		{"first and max", []string{"list", "--first", "1", "--max", "1"}, []string{"bob"}},
		{"max 0 is all", []string{"list", "--max", "0"}, []string{"alice", "bob", "carol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := f.ok(t, append(tt.args, "--json")...)
			var users []admin.User
			if err := json.Unmarshal([]byte(out), &users); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			var names []string
			for _, u := range users {
				names = append(names, u.Username)
			}
			if !slices.Equal(names, tt.users) {
				t.Fatalf("users %v, want %v", names, tt.users)
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		t.Parallel()
		out := f.ok(t, "list")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 4 || !regexp.MustCompile(`^ID\s+USERNAME\s+EMAIL\s+NAME\s+ENABLED$`).MatchString(lines[0]) {
			t.Fatalf("table:\n%s", out)
		}
		col := strings.Index(lines[0], "EMAIL")
		for _, l := range lines[1:] {
			if !strings.Contains(l[col:], "@example.com") || strings.Contains(l, "\t") {
				t.Fatalf("misaligned row %q (EMAIL at %d)\n%s", l, col, out)
			}
		}
		if !strings.Contains(out, "Carol Tab by") || !strings.Contains(lines[3], "false") {
			t.Fatalf("carol's row:\n%s", out)
		}
	})
}

func TestUsersLifecycle(t *testing.T) {
	t.Parallel()
	f := newUsersFixture(t)
	ctx := context.Background()

	out := f.ok(t, "create", "--username", "dave", "--email", "dave@example.com", "--password", "pw-dave-1", "--temporary")
	id := strings.TrimSpace(out[strings.LastIndex(out, " "):])
	if !strings.HasPrefix(out, "created user dave with id ") || id == "" {
		t.Fatalf("create: %q", out)
	}
	code, _, errOut := runUsersCLI(t, usersRun{}, append([]string{"create", "--username", "dave"}, f.conn()...)...)
	if code != 1 || errOut != "cloakroom users: conflict: User exists with same username (POST /admin/realms/demo/users)\n" {
		t.Fatalf("duplicate create: %d %q", code, errOut)
	}

	// show by username and by id, table and JSON.
	out = f.ok(t, "show", "dave")
	for _, want := range []string{"id:", id, "username:", "dave@example.com (not verified)", "enabled:", "true", "UPDATE_PASSWORD", "default-roles-demo"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	var shown struct {
		ID         string   `json:"id"`
		Username   string   `json:"username"`
		RealmRoles []string `json:"realmRoles"`
		Groups     []string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(f.ok(t, "show", id, "--json")), &shown); err != nil || shown.Username != "dave" || shown.Groups == nil {
		t.Fatalf("show --json: %+v %v", shown, err)
	}
	code, _, errOut = runUsersCLI(t, usersRun{}, append([]string{"show", "nobody-here"}, f.conn()...)...)
	if code != 1 || !strings.Contains(errOut, `no user with id or username "nobody-here" in realm demo`) {
		t.Fatalf("show unknown: %d %q", code, errOut)
	}

	// update, enable, disable.
	f.ok(t, "update", "dave", "--first-name", "David", "--email-verified=true")
	u, _ := f.admin.GetUser(ctx, id)
	if u.FirstName != "David" || !u.EmailVerified || u.Email != "dave@example.com" {
		t.Fatalf("after update: %+v", u)
	}
	f.ok(t, "update", "--enabled=false", "dave")
	if u, _ := f.admin.GetUser(ctx, id); u.Enabled {
		t.Fatal("update --enabled=false left the user enabled")
	}
	f.ok(t, "enable", "dave")
	if u, _ := f.admin.GetUser(ctx, id); !u.Enabled {
		t.Fatal("enable did not enable")
	}
	f.kc.MustToken(t, "dave", keycloaktest.DemoClientID)
	if len(f.kc.SessionIDs("dave")) != 1 {
		t.Fatal("no session")
	}
	out = f.ok(t, "sessions", "dave")
	if !strings.Contains(out, "SESSION") || !strings.Contains(out, f.kc.SessionIDs("dave")[0]) || !strings.Contains(out, keycloaktest.DemoClientID) {
		t.Fatalf("sessions:\n%s", out)
	}
	out = f.ok(t, "disable", "dave", "--logout")
	if out != "disabled user dave and ended its sessions\n" || len(f.kc.SessionIDs("dave")) != 0 {
		t.Fatalf("disable --logout: %q, sessions %v", out, f.kc.SessionIDs("dave"))
	}
	f.ok(t, "enable", "dave")

	// reset-password in its three ways.
	f.ok(t, "reset-password", "dave", "--email")
	if box := f.kc.Outbox(); len(box) != 1 || box[0].To != "dave@example.com" {
		t.Fatalf("outbox %+v", box)
	}
	f.ok(t, "update", "dave", "--email", "dave2@example.com")
	f.ok(t, "reset-password", "--password", "pw-dave-2", "dave")
	f.ok(t, "reset-password", "dave", "--next-login")
	if u, _ := f.admin.GetUser(ctx, id); !slices.Contains(u.RequiredActions, "UPDATE_PASSWORD") || u.Email != "dave2@example.com" {
		t.Fatalf("after reset: %+v", u)
	}

	// logout.
	f.kc.MustToken(t, "dave", keycloaktest.DemoClientID)
	f.ok(t, "logout", "dave")
	if len(f.kc.SessionIDs("dave")) != 0 {
		t.Fatal("logout left sessions")
	}
	if out := f.ok(t, "sessions", "dave", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("sessions --json: %q", out)
	}

	// roles: realm and client.
	f.ok(t, "roles", "add", "dave", "editor", "user")
	f.ok(t, "roles", "add", "dave", "reader", "--client", keycloaktest.DemoClientID)
	realmRoles, _ := f.admin.UserRealmRoles(ctx, id)
	clientRoles, _ := f.admin.UserClientRoles(ctx, id, keycloaktest.DemoClientID)
	if !hasRole(realmRoles, "editor") || !hasRole(realmRoles, "user") || !hasRole(clientRoles, "reader") {
		t.Fatalf("roles %v %v", realmRoles, clientRoles)
	}
	f.ok(t, "roles", "remove", "dave", "editor")
	f.ok(t, "roles", "remove", "--client", keycloaktest.DemoClientID, "dave", "reader")
	realmRoles, _ = f.admin.UserRealmRoles(ctx, id)
	clientRoles, _ = f.admin.UserClientRoles(ctx, id, keycloaktest.DemoClientID)
	if hasRole(realmRoles, "editor") || hasRole(clientRoles, "reader") {
		t.Fatalf("roles after remove %v %v", realmRoles, clientRoles)
	}
	code, _, errOut = runUsersCLI(t, usersRun{}, append([]string{"roles", "add", "dave", "no-such-role"}, f.conn()...)...)
	if code != 1 || !strings.Contains(errOut, "no-such-role") {
		t.Fatalf("unknown role: %d %q", code, errOut)
	}

	// groups by path and by name.
	f.ok(t, "groups", "join", "dave", "/staff/editors")
	f.ok(t, "groups", "join", "dave", "ops")
	groups, _ := f.admin.UserGroups(ctx, id)
	if len(groups) != 2 {
		t.Fatalf("groups %+v", groups)
	}
	code, _, errOut = runUsersCLI(t, usersRun{}, append([]string{"groups", "join", "dave", "editors"}, f.conn()...)...)
	if code != 1 || !strings.Contains(errOut, `group name "editors" is ambiguous`) || !strings.Contains(errOut, "/guests/editors") {
		t.Fatalf("ambiguous group: %d %q", code, errOut)
	}
	f.ok(t, "groups", "leave", "dave", "/staff/editors")
	f.ok(t, "groups", "leave", "dave", "ops")
	if groups, _ := f.admin.UserGroups(ctx, id); len(groups) != 0 {
		t.Fatalf("groups after leave %+v", groups)
	}

	// delete: refused without a terminal, asked on one.
	code, out, errOut = runUsersCLI(t, usersRun{}, append([]string{"delete", "dave"}, f.conn()...)...)
	if code != 2 || out != "" || !strings.Contains(errOut, "refusing to delete user \"dave\" without confirmation: stdin is not a terminal; pass --yes") {
		t.Fatalf("delete without --yes: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runUsersCLI(t, usersRun{stdinTTY: true, stdin: "n\n"}, append([]string{"delete", "dave"}, f.conn()...)...)
	if code != 1 || !strings.Contains(errOut, "Delete user dave (id "+id+", dave2@example.com)? [y/N] ") || !strings.Contains(errOut, "not deleted") {
		t.Fatalf("delete answered no: %d %q", code, errOut)
	}
	if _, err := f.admin.GetUser(ctx, id); err != nil {
		t.Fatal("deleted although refused")
	}
	code, out, _ = runUsersCLI(t, usersRun{stdinTTY: true, stdin: "y\n"}, append([]string{"delete", "dave"}, f.conn()...)...)
	if code != 0 || !strings.Contains(out, "deleted user dave") {
		t.Fatalf("delete answered yes: %d %q", code, out)
	}
	if _, err := f.admin.GetUser(ctx, id); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("still there: %v", err)
	}
	f.ok(t, "delete", "bob", "--yes")
}

func hasRole(roles []admin.Role, name string) bool {
	return slices.ContainsFunc(roles, func(r admin.Role) bool { return r.Name == name })
}

func TestUsersErrors(t *testing.T) {
	t.Parallel()
	f := newUsersFixture(t)
	nobody := []string{"--issuer", f.iss, "--client-id", "nobody", "--client-secret", usersSecret}
	tests := []struct {
		name     string
		run      usersRun
		args     []string
		wantCode int
		wantErr  string // the exact message, or a part of it with "..."
	}{
		{"403 names the role", usersRun{}, append([]string{"create", "--username", "x"}, nobody...), 1,
			"cloakroom users: forbidden: the service account lacks the realm-management role manage-users (POST /admin/realms/demo/users)\n"},
		{"403 on list", usersRun{}, append([]string{"list"}, nobody...), 1,
			"cloakroom users: forbidden: the service account lacks the realm-management role query-users (and view-users to see the users it finds) (GET /admin/realms/demo/users)\n"},
		{"wrong secret", usersRun{}, []string{"list", "--issuer", f.iss, "--client-id", "cloakroom", "--client-secret", "wrong-" + usersSecret}, 1,
			// Keycloak 26.7 calls a wrong secret unauthorized_client
			// (conformance: token-errors/wrong-secret).
			"...unauthorized: token request refused (401 unauthorized_client..."},
		{"no issuer", usersRun{}, []string{"list", "--client-id", "x", "--client-secret", usersSecret}, 2, "...no issuer: pass --issuer..."},
		{"no secret", usersRun{}, []string{"list", "--issuer", f.iss, "--client-id", "x"}, 2, "...no client secret..."},
		{"both secrets", usersRun{}, append([]string{"list", "--client-secret", usersSecret}, f.conn()...), 2, "...exclude each other..."},
		{"missing secret file", usersRun{}, []string{"list", "--issuer", f.iss, "--client-id", "x", "--client-secret-file", "/nonexistent/secret"}, 1, "...client secret file: open /nonexistent/secret..."},
		{"bad issuer", usersRun{}, []string{"list", "--issuer", "ftp://x", "--client-id", "x", "--client-secret", usersSecret}, 2, "...--issuer:..."},
		{"unknown subcommand", usersRun{}, []string{"frobnicate"}, 2, "...unknown subcommand \"frobnicate\"..."},
		{"no subcommand", usersRun{}, nil, 2, "...missing subcommand..."},
		{"show without user", usersRun{}, append([]string{"show"}, f.conn()...), 2, "...want exactly one USER..."},
		{"search without text", usersRun{}, append([]string{"search"}, f.conn()...), 2, "...search needs a TEXT..."},
		{"update nothing", usersRun{}, append([]string{"update", "alice"}, f.conn()...), 2, "...nothing to update..."},
		{"reset two ways", usersRun{}, append([]string{"reset-password", "alice", "--email", "--next-login"}, f.conn()...), 2, "...exactly one of..."},
		{"reset no way", usersRun{}, append([]string{"reset-password", "alice"}, f.conn()...), 2, "...exactly one of..."},
		{"temporary without password", usersRun{}, append([]string{"create", "--username", "x", "--temporary"}, f.conn()...), 2, "...--temporary needs --password..."},
		{"bad enabled value", usersRun{}, append([]string{"list", "--enabled=maybe"}, f.conn()...), 2, "...\"maybe\" is not true or false..."},
		{"roles without op", usersRun{}, []string{"roles", "grant"}, 2, "...want add or remove..."},
		{"groups without group", usersRun{}, append([]string{"groups", "join", "alice"}, f.conn()...), 2, "...want USER and GROUP..."},
		{"no such group path", usersRun{}, append([]string{"groups", "join", "alice", "/nope"}, f.conn()...), 1, "...no group with path \"/nope\"..."},
		{"sync forbidden", usersRun{}, append([]string{"sync", "--db", "sqlite:" + filepath.Join(t.TempDir(), "u.db")}, nobody...), 1,
			"cloakroom users: forbidden: the service account lacks the realm-management role query-users (and view-users to see the users it finds) (GET /admin/realms/demo/users)\n"},
		{"sync without db", usersRun{}, append([]string{"sync"}, f.conn()...), 2, "...--db is required..."},
		{"sync bad db", usersRun{}, append([]string{"sync", "--db", "mysql://u:hunter2@h/db"}, f.conn()...), 2, "...--db must be sqlite:PATH or postgres://..., not \"mysql://…@h/db\"..."},
		{"help lists subcommands", usersRun{env: map[string]string{"CLOAKROOM_CLIENT_SECRET": usersSecret}}, []string{"--help"}, 0, "...reset-password USER..."},
		{"subcommand help shows no secret default", usersRun{env: map[string]string{"CLOAKROOM_CLIENT_SECRET": usersSecret}}, []string{"list", "--help"}, 0, "...-client-secret-file string..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runUsersCLI(t, tt.run, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if part, ok := strings.CutPrefix(tt.wantErr, "..."); ok {
				part = strings.TrimSuffix(part, "...")
				if !strings.Contains(errOut, part) {
					t.Fatalf("stderr %q lacks %q", errOut, part)
				}
			} else if errOut != tt.wantErr {
				t.Fatalf("stderr %q\nwant   %q", errOut, tt.wantErr)
			}
		})
	}
}

// Connection settings come from the gateway's YAML file, the environment
// and flags, in increasing precedence.
func TestUsersConnectionSources(t *testing.T) {
	t.Parallel()
	f := newUsersFixture(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "gateway.yaml")
	yamlText := fmt.Sprintf("listen: 127.0.0.1:4180\nissuer: %s\nclient_id: cloakroom\nclient_secret: %s\nroutes:\n  - path: /\n    upstream: http://127.0.0.1:9000\n", f.iss, usersSecret)
	if err := os.WriteFile(good, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("issuer: [\nclient_secret: "+usersSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	typed := filepath.Join(dir, "typed.yaml")
	if err := os.WriteFile(typed, []byte("client_secret:\n  nested: "+usersSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOAKROOM_ISSUER": f.iss, "CLOAKROOM_CLIENT_ID": "cloakroom", "CLOAKROOM_CLIENT_SECRET": usersSecret}
	tests := []struct {
		name     string
		run      usersRun
		args     []string
		wantCode int
		want     string
	}{
		{"config file", usersRun{}, []string{"list", "--config", good}, 0, "alice"},
		{"CLOAKROOM_CONFIG", usersRun{env: map[string]string{"CLOAKROOM_CONFIG": good}}, []string{"list"}, 0, "alice"},
		{"environment", usersRun{env: env}, []string{"list"}, 0, "alice"},
		{"secret file from the environment", usersRun{env: map[string]string{"CLOAKROOM_ISSUER": f.iss, "CLOAKROOM_CLIENT_ID": "cloakroom", "CLOAKROOM_CLIENT_SECRET_FILE": f.secretFile}}, []string{"list"}, 0, "alice"},
		{"flags win over the environment", usersRun{env: env}, []string{"list", "--client-id", "nobody"}, 1, "forbidden"},
		{"environment wins over the file", usersRun{env: map[string]string{"CLOAKROOM_CLIENT_ID": "nobody"}}, []string{"list", "--config", good}, 1, "forbidden"},
		{"broken file", usersRun{}, []string{"list", "--config", broken}, 1, "config file " + broken},
		{"value of the wrong type", usersRun{}, []string{"list", "--config", typed}, 1, "config file " + typed},
		{"missing file", usersRun{}, []string{"list", "--config", filepath.Join(dir, "none.yaml")}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runUsersCLI(t, tt.run, tt.args...)
			if code != tt.wantCode || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("exit %d (want %d), out %q, stderr %q; want %q", code, tt.wantCode, out, errOut, tt.want)
			}
		})
	}
}

func TestUsersSync(t *testing.T) {
	t.Parallel()
	dbs := map[string]string{"sqlite": "sqlite:" + filepath.Join(t.TempDir(), "users.db")}
	if u := os.Getenv("CLOAKROOM_TEST_POSTGRES"); u != "" {
		dbs["postgres"] = u + pgSearchPath(t, u)
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: sync into PostgreSQL not tested")
	}
	for name, db := range dbs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newUsersFixture(t)
			for i := range 700 {
				if _, err := f.kc.AddUser(keycloaktest.UserConfig{Username: fmt.Sprintf("u%04d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			out := f.ok(t, "sync", "--db", db, "--page-size", "100", "--batch-size", "300")
			for _, want := range []string{"sync: users: 300/702 users", "702 Keycloak users in", "created 702, updated 0, unchanged 0, reactivated 0, deactivated 0, errors 0"} {
				if !strings.Contains(out, want) {
					t.Fatalf("first sync lacks %q:\n%s", want, out)
				}
			}
			if err := f.kc.DeleteUser("bob"); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runUsersCLI(t, usersRun{stdoutTTY: true}, append([]string{"sync", "--db", db, "--resume"}, f.conn()...)...)
			if code != 0 || !strings.Contains(out, "\r[##############################] 100% 701/701 users") ||
				!strings.Contains(out, "unchanged 701, reactivated 0, deactivated 1, errors 0") || !strings.Contains(out, "deactivated: bob (id 2, sub ") {
				t.Fatalf("second sync: %d %q %q", code, out, errOut)
			}
			if out := f.ok(t, "sync", "--db", db, "--quiet"); strings.Contains(out, "sync: users") || !strings.Contains(out, "unchanged 701") {
				t.Fatalf("quiet sync:\n%s", out)
			}
		})
	}
}

// A run interrupted in the library (or by Ctrl-C) continues with --resume
// and reports the counts of the whole run.
func TestUsersSyncResume(t *testing.T) {
	t.Parallel()
	f := newUsersFixture(t)
	for i := range 700 {
		if _, err := f.kc.AddUser(keycloaktest.UserConfig{Username: fmt.Sprintf("u%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "users.db")
	dir, err := directory.OpenSQLite(path, directory.WithAdmin(f.admin))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = dir.Sync(ctx, directory.SyncOptions{BatchSize: 200, Progress: func(directory.SyncProgress) { cancel() }})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sync: %v", err)
	}
	if err := dir.Close(); err != nil {
		t.Fatal(err)
	}
	out := f.ok(t, "sync", "--db", "sqlite:"+path, "--resume")
	if !strings.Contains(out, "(resumed; counts of the whole run): 702 Keycloak users") || !strings.Contains(out, "created 702, updated 0, unchanged 0") {
		t.Fatalf("resumed sync:\n%s", out)
	}
}

// pgSearchPath creates a schema for the test and returns the URL
// parameter that makes it the connection's current schema.
func pgSearchPath(t *testing.T, url string) string {
	t.Helper()
	schema := "cloakroom_cli_test_" + strings.ReplaceAll(randomSecret()[:12], "-", "_")
	schema = strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9_]`).ReplaceAllString(schema, "_"))
	ctx := context.Background()
	pgExecCLI(t, ctx, url, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { pgExecCLI(t, ctx, url, `DROP SCHEMA `+schema+` CASCADE`) })
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return sep + "search_path=" + schema
}

func pgExecCLI(t *testing.T, ctx context.Context, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL at CLOAKROOM_TEST_POSTGRES does not answer: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
