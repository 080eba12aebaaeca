package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// passwordGrant logs a user in through the demo client; it returns the
// decoded answer and the HTTP status.
func passwordGrant(t *testing.T, e env, username, password string) (map[string]any, int) {
	t.Helper()
	return tokenRequest(t, e, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
}

func tokenRequest(t *testing.T, e env, form url.Values) (map[string]any, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.Issuer("demo")+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(keycloaktest.DemoClientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = jsonDecode(resp.Body, &out)
	return out, resp.StatusCode
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	ctx := t.Context()

	// Keycloak 24+ drops custom attributes the user profile does not
	// declare (conformance: admin-users/after-update-attributes.attributes
	// = [] on Keycloak 26.7.3); a realm that wants them says so.
	drop, err := c.CreateUser(ctx, admin.NewUser{Username: "dropped", Attributes: map[string][]string{"team": {"blue"}}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.GetUser(ctx, drop); err != nil || u.Attributes != nil {
		t.Errorf("unmanaged attribute kept by default: %+v, %v", u, err)
	}
	if err := e.kc.SetUnmanagedAttributePolicy(keycloaktest.UnmanagedAttributesEnabled); err != nil {
		t.Fatal(err)
	}

	id, err := c.CreateUser(ctx, admin.NewUser{
		Username: "Carol", Email: "carol@example.com", FirstName: "Carol", LastName: "Danvers",
		Attributes: map[string][]string{"team": {"blue"}}, Groups: []string{"/staff"}, Password: "carol-pw",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := e.kc.UserID("carol"); sub != id {
		t.Fatalf("CreateUser id %q, realm has %q", id, sub)
	}
	u, err := c.GetUser(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "carol" || !u.Enabled || u.Email != "carol@example.com" || u.Attributes["team"][0] != "blue" || u.Created().IsZero() {
		t.Errorf("GetUser = %+v", u)
	}
	if found, err := c.FindUserByUsername(ctx, "CAROL"); err != nil || found.ID != id {
		t.Errorf("FindUserByUsername = %+v, %v", found, err)
	}
	if _, code := passwordGrant(t, e, "carol", "carol-pw"); code != http.StatusOK {
		t.Errorf("login with the initial password: %d", code)
	}

	// Partial update: only the first name changes.
	if err := c.UpdateUser(ctx, id, admin.UserUpdate{FirstName: admin.Ptr("Caroline")}); err != nil {
		t.Fatal(err)
	}
	u, _ = c.GetUser(ctx, id)
	if u.FirstName != "Caroline" || u.LastName != "Danvers" || u.Email != "carol@example.com" || len(u.Attributes) != 1 {
		t.Errorf("after partial update: %+v", u)
	}
	// Attributes replace. Keycloak would remove the email and names the
	// body leaves out; UpdateUser sends them along.
	if err := c.UpdateUser(ctx, id, admin.UserUpdate{Attributes: map[string][]string{"floor": {"3"}}}); err != nil {
		t.Fatal(err)
	}
	if u, _ = c.GetUser(ctx, id); u.Attributes["team"] != nil || u.Attributes["floor"][0] != "3" {
		t.Errorf("attributes not replaced: %v", u.Attributes)
	} else if u.Email != "carol@example.com" || u.FirstName != "Caroline" || u.LastName != "Danvers" {
		t.Errorf("attribute update lost profile fields: %+v", u)
	}
	// An email change keeps emailVerified (Keycloak 24+; conformance:
	// admin-users/after-update-email.emailVerified = true).
	if err := c.UpdateUser(ctx, id, admin.UserUpdate{EmailVerified: admin.Ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateUser(ctx, id, admin.UserUpdate{Email: admin.Ptr("caroline@example.com")}); err != nil {
		t.Fatal(err)
	}
	if u, _ = c.GetUser(ctx, id); u.Email != "caroline@example.com" || !u.EmailVerified {
		t.Errorf("after email change: %+v", u)
	}
	if err := c.AddRequiredActions(ctx, id, "VERIFY_EMAIL", "CONFIGURE_TOTP"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRequiredActions(ctx, id, "VERIFY_EMAIL"); err != nil {
		t.Fatal(err)
	}
	if u, _ = c.GetUser(ctx, id); !slices.Equal(u.RequiredActions, []string{"VERIFY_EMAIL", "CONFIGURE_TOTP"}) {
		t.Errorf("required actions %v", u.RequiredActions)
	}
	if err := c.UpdateUser(ctx, id, admin.UserUpdate{RequiredActions: []string{}}); err != nil {
		t.Fatal(err)
	}

	// Temporary password: the user must change it.
	if err := c.ResetTemporaryPassword(ctx, id, "temp-pw"); err != nil {
		t.Fatal(err)
	}
	if u, _ = c.GetUser(ctx, id); !slices.Contains(u.RequiredActions, "UPDATE_PASSWORD") {
		t.Errorf("temporary password: required actions %v", u.RequiredActions)
	}
	if body, code := passwordGrant(t, e, "carol", "temp-pw"); code != http.StatusBadRequest || body["error_description"] != "Account is not fully set up" {
		t.Errorf("login with temporary password: %d %v", code, body)
	}
	if err := c.ResetPassword(ctx, id, "final-pw"); err != nil {
		t.Fatal(err)
	}
	if _, code := passwordGrant(t, e, "carol", "final-pw"); code != http.StatusOK {
		t.Errorf("login after reset: %d", code)
	}

	if err := c.DeleteUser(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUser(ctx, id); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("GetUser after delete: %v", err)
	}
	if err := c.DeleteUser(ctx, id); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("second DeleteUser: %v", err)
	}
}

func TestFailureAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	manager, reader, viewer, nobody := e.client(t, saManager), e.client(t, saReader), e.client(t, saViewer), e.client(t, saNobody)
	tests := []struct {
		name      string
		call      func() error
		want      []error
		status    int
		role      string // in the message of a 403
		code, msg string // Keycloak's error / errorMessage
		field     string
	}{
		{name: "list without any role", call: func() error { _, err := nobody.ListUsers(ctx, admin.UserQuery{}); return err },
			want: []error{admin.ErrForbidden}, status: 403, role: "query-users"},
		{name: "create with view-users only", call: func() error { _, err := viewer.CreateUser(ctx, admin.NewUser{Username: "x-user"}); return err },
			want: []error{admin.ErrForbidden}, status: 403, role: "manage-users"},
		{name: "get with query-users only", call: func() error { _, err := reader.GetUser(ctx, bob); return err },
			want: []error{admin.ErrForbidden}, status: 403, role: "view-users"},
		{name: "unknown id hidden from a caller that cannot query", call: func() error { _, err := nobody.GetUser(ctx, "no-such-id"); return err },
			want: []error{admin.ErrForbidden}, status: 403},
		{name: "unknown id is 404 for a caller that can query", call: func() error { _, err := reader.GetUser(ctx, "no-such-id"); return err },
			want: []error{admin.ErrNotFound}, status: 404, code: "User not found"},
		{name: "groups without query-groups", call: func() error { _, err := reader.ListGroups(ctx, admin.GroupQuery{}); return err },
			want: []error{admin.ErrForbidden}, status: 403, role: "query-groups"},
		{name: "client lookup without query-clients", call: func() error { _, err := viewer.ClientByClientID(ctx, "cloakroom"); return err },
			want: []error{admin.ErrForbidden}, status: 403, role: "query-clients"},
		{name: "reset password without manage-users", call: func() error { return viewer.ResetPassword(ctx, bob, "x") },
			want: []error{admin.ErrForbidden}, status: 403, role: "manage-users"},
		{name: "duplicate username", call: func() error { _, err := manager.CreateUser(ctx, admin.NewUser{Username: "BOB"}); return err },
			want: []error{admin.ErrConflict, admin.ErrDuplicateUsername}, status: 409, msg: "User exists with same username"},
		{name: "duplicate email", call: func() error {
			_, err := manager.CreateUser(ctx, admin.NewUser{Username: "bobby", Email: "bob@example.com"})
			return err
		}, want: []error{admin.ErrConflict, admin.ErrDuplicateEmail}, status: 409, msg: "User exists with same email"},
		{name: "duplicate email on update", call: func() error {
			return manager.UpdateUser(ctx, bob, admin.UserUpdate{Email: admin.Ptr("alice@example.com")})
		}, want: []error{admin.ErrDuplicateEmail}, status: 409},
		{name: "missing username", call: func() error {
			_, err := manager.CreateUser(ctx, admin.NewUser{Email: "nobody@example.com"})
			return err
		},
			want: []error{admin.ErrBadRequest}, status: 400, msg: "User name is missing"},
		{name: "invalid email", call: func() error {
			_, err := manager.CreateUser(ctx, admin.NewUser{Username: "dave", Email: "not-an-email"})
			return err
		},
			want: []error{admin.ErrBadRequest}, status: 400, msg: "error-invalid-email", field: "email"},
		{name: "username too short", call: func() error { _, err := manager.CreateUser(ctx, admin.NewUser{Username: "d"}); return err },
			want: []error{admin.ErrBadRequest}, status: 400, msg: "error-invalid-length", field: "username"},
		{name: "unknown session", call: func() error { return manager.DeleteSession(ctx, "no-such-session") },
			want: []error{admin.ErrNotFound}, status: 404, code: "Sesssion not found"},
		{name: "unknown group", call: func() error { return manager.JoinGroup(ctx, bob, "no-such-group") },
			want: []error{admin.ErrNotFound}, status: 404, code: "Group not found"},
		{name: "unknown group path", call: func() error { _, err := manager.GroupByPath(ctx, "/nope"); return err },
			want: []error{admin.ErrNotFound}, status: 404},
		{name: "actions email without address", call: func() error {
			id, err := manager.CreateUser(ctx, admin.NewUser{Username: "no-mail"})
			if err != nil {
				return err
			}
			return manager.ExecuteActionsEmail(ctx, id, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{})
		}, want: []error{admin.ErrBadRequest}, status: 400, msg: "User email missing"},
		{name: "actions email with unknown client", call: func() error {
			return manager.ExecuteActionsEmail(ctx, bob, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{ClientID: "nope"})
		}, want: []error{admin.ErrBadRequest}, status: 400, msg: "Client doesn't exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want errors.Is %v", err, w)
				}
			}
			var ae *admin.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *admin.APIError", err, err)
			}
			if ae.Status != tt.status || (tt.code != "" && ae.Code != tt.code) || (tt.msg != "" && ae.Message != tt.msg) || ae.Field != tt.field {
				t.Errorf("Error = %+v", ae)
			}
			if tt.role != "" && !strings.Contains(err.Error(), tt.role) {
				t.Errorf("message %q does not name role %q", err, tt.role)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Bearer") {
				t.Errorf("message leaks a secret: %q", err)
			}
			if errors.Is(err, admin.ErrDuplicateUsername) && errors.Is(err, admin.ErrDuplicateEmail) {
				t.Errorf("both duplicate kinds match: %v", err)
			}
		})
	}
}

// TestQueryUsersOnly: with query-users alone Keycloak lists nothing, but
// counts everyone (as Keycloak 26.7.3 does: GET /users/count answers the
// realm's user count to a caller with only query-users); view-users sees
// everyone.
func TestQueryUsersOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	for _, tt := range []struct {
		sa            string
		listed, count int
	}{{saReader, 0, 3}, {saViewer, 3, 3}, {saAdmin, 3, 3}} {
		c := e.client(t, tt.sa)
		users, err := c.ListUsers(ctx, admin.UserQuery{})
		if err != nil || len(users) != tt.listed {
			t.Errorf("%s: ListUsers = %d users, %v; want %d", tt.sa, len(users), err, tt.listed)
		}
		if n, err := c.CountUsers(ctx, admin.UserQuery{}); err != nil || n != tt.count {
			t.Errorf("%s: CountUsers = %d, %v; want %d", tt.sa, n, err, tt.count)
		}
	}
}

func TestSearchAndExactLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	for _, u := range []keycloaktest.UserConfig{
		{Username: "sam", Email: "sam@example.com", FirstName: "Sam", Attributes: map[string][]string{"dept": {"Sales"}}},
		{Username: "samantha", Email: "s.jones@example.com", LastName: "Jones", Disabled: true},
		{Username: "xsam", Email: "x@example.org", Attributes: map[string][]string{"dept": {"Research"}}},
	} {
		if _, err := e.kc.AddUser(u); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(t, saManager)
	names := func(q admin.UserQuery) []string {
		t.Helper()
		users, err := c.ListUsers(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range users {
			out = append(out, u.Username)
		}
		return out
	}
	tests := []struct {
		name string
		q    admin.UserQuery
		want []string
	}{
		{"username filter is a substring match", admin.UserQuery{Username: "sam"}, []string{"samantha", "sam", "xsam"}},
		{"exact username", admin.UserQuery{Username: "sam", Exact: admin.Ptr(true)}, []string{"sam"}},
		{"search is a prefix match", admin.UserQuery{Search: "sam"}, []string{"sam", "samantha"}},
		{"search infix", admin.UserQuery{Search: "*sam*"}, []string{"sam", "samantha", "xsam"}},
		{"search exact", admin.UserQuery{Search: `"sam"`}, []string{"sam"}},
		{"search on email domain", admin.UserQuery{Search: "*example.org"}, []string{"xsam"}},
		{"search last name", admin.UserQuery{Search: "jon"}, []string{"samantha"}},
		{"search with enabled", admin.UserQuery{Search: "sam", Enabled: admin.Ptr(true)}, []string{"sam"}},
		{"attribute search", admin.UserQuery{Q: map[string]string{"dept": "sales"}}, []string{"sam"}},
		{"email filter", admin.UserQuery{Email: "example.org"}, []string{"xsam"}},
		{"paging", admin.UserQuery{Search: "*", First: 1, Max: 2}, []string{"bob", "ops"}},
	}
	for _, tt := range tests {
		got := names(tt.q)
		slices.Sort(got)
		want := slices.Clone(tt.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, want)
		}
	}
	if u, err := c.FindUserByUsername(ctx, "sam"); err != nil || u.Username != "sam" {
		t.Errorf("FindUserByUsername(sam) = %+v, %v", u, err)
	}
	if _, err := c.FindUserByUsername(ctx, "sa"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("FindUserByUsername(sa) = %v, want ErrNotFound", err)
	}
	if n, err := c.CountUsers(ctx, admin.UserQuery{Username: "sam"}); err != nil || n != 3 {
		t.Errorf("CountUsers = %d, %v", n, err)
	}
	if u, err := c.ListUsers(ctx, admin.UserQuery{Username: "sam", Exact: admin.Ptr(true), BriefRepresentation: true}); err != nil || len(u) != 1 || u[0].Attributes != nil {
		t.Errorf("brief representation: %+v, %v", u, err)
	}
}

func TestAllUsersPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 250 {
		if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: fmt.Sprintf("user%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var pages atomic.Int32
	c := e.client(t, saManager, func(cfg *admin.Config) {
		cfg.PageSize = 100
		cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/users") {
				pages.Add(1)
			}
			return http.DefaultTransport.RoundTrip(r)
		})}
	})
	ctx := t.Context()
	seen := map[string]bool{}
	for u, err := range c.AllUsers(ctx, admin.UserQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[u.ID] {
			t.Fatalf("user %s twice", u.Username)
		}
		seen[u.ID] = true
	}
	if len(seen) != 253 || pages.Load() != 3 {
		t.Errorf("AllUsers: %d users in %d pages, want 253 in 3", len(seen), pages.Load())
	}
	if n, err := c.CountUsers(ctx, admin.UserQuery{}); err != nil || n != 253 {
		t.Errorf("CountUsers = %d, %v", n, err)
	}
	// Breaking out stops the iteration.
	n := 0
	for _, err := range c.AllUsers(ctx, admin.UserQuery{Search: "user"}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 150 {
			break
		}
	}
	// A cancelled context ends it with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n = 0
	var last error
	for _, err := range c.AllUsers(cctx, admin.UserQuery{}) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 100 {
			cancel()
		}
	}
	if !errors.Is(last, context.Canceled) || n != 100 {
		t.Errorf("after cancel: %d users, err %v", n, last)
	}
	// An error ends it.
	e.srv.SetFault(keycloaktest.Fault{Status: http.StatusForbidden, Paths: []string{"/admin/realms/demo/users"}})
	defer e.srv.ClearFault()
	for _, err := range c.AllUsers(ctx, admin.UserQuery{}) {
		if !errors.Is(err, admin.ErrForbidden) {
			t.Errorf("AllUsers under fault: %v", err)
		}
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	usersPath := "/admin/realms/demo/users"
	tests := []struct {
		name    string
		fault   keycloaktest.Fault
		post    bool
		wantErr error
		users   int // users named "retry-*" afterwards, for POST
	}{
		{name: "GET 503 twice then success", fault: keycloaktest.Fault{Status: 503, Paths: []string{usersPath}, Times: 2}},
		{name: "GET 429 then success", fault: keycloaktest.Fault{Status: 429, Paths: []string{usersPath}, Times: 1}},
		{name: "GET 500 three times", fault: keycloaktest.Fault{Status: 500, Paths: []string{usersPath}, Times: 3}, wantErr: admin.ErrServer},
		{name: "GET connection dropped then success", fault: keycloaktest.Fault{Refuse: true, Paths: []string{usersPath}, Times: 1}},
		{name: "POST 503 is not retried", fault: keycloaktest.Fault{Status: 503, Paths: []string{usersPath}, Times: 1}, post: true, wantErr: admin.ErrServer},
		{name: "POST connection dropped after sending is not retried", fault: keycloaktest.Fault{Refuse: true, Paths: []string{usersPath}, Times: 1}, post: true, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c := e.client(t, saManager)
			ctx := t.Context()
			if _, err := c.CountUsers(ctx, admin.UserQuery{}); err != nil { // caches the token
				t.Fatal(err)
			}
			e.srv.SetFault(tt.fault)
			var err error
			if tt.post {
				_, err = c.CreateUser(ctx, admin.NewUser{Username: "retry-user"})
			} else {
				_, err = c.ListUsers(ctx, admin.UserQuery{})
			}
			e.srv.ClearFault()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.post {
				if _, ok := e.kc.UserID("retry-user"); ok {
					t.Error("POST was retried: the user exists")
				}
			}
		})
	}
}

var errAny = errors.New("any error")

// TestPostRetriedWhenNotSent: a POST whose connection failed while dialing
// never reached Keycloak, so it is safe to try again.
func TestPostRetriedWhenNotSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var posts atomic.Int32
	fail := func(r *http.Request) error {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/users") && posts.Add(1) == 1 {
			return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return nil
	}
	c := e.client(t, saManager, func(cfg *admin.Config) {
		cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if err := fail(r); err != nil {
				return nil, err
			}
			return http.DefaultTransport.RoundTrip(r)
		})}
	})
	id, err := c.CreateUser(t.Context(), admin.NewUser{Username: "dialed"})
	if err != nil || id == "" || posts.Load() != 2 {
		t.Fatalf("CreateUser = %q, %v after %d POSTs", id, err, posts.Load())
	}
}

func TestTokenRenewedAfter401(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, err := admin.New(admin.Config{Realm: e.realm, Username: "ops", Password: "ops-pw"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.CountUsers(ctx, admin.UserQuery{}); err != nil {
		t.Fatal(err)
	}
	first := e.kc.SessionIDs("ops")
	if len(first) != 1 {
		t.Fatalf("sessions of ops: %v", first)
	}
	// The admin's session ends: its token answers 401 and a new password
	// grant is made.
	e.kc.EndSession(first[0])
	if _, err := c.CountUsers(ctx, admin.UserQuery{}); err != nil {
		t.Fatalf("after the session ended: %v", err)
	}
	if now := e.kc.SessionIDs("ops"); len(now) != 1 || now[0] == first[0] {
		t.Errorf("sessions after renewal: %v (before %v)", now, first)
	}
	// Wrong credentials: a clear ErrUnauthorized without the password.
	bad, _ := admin.New(admin.Config{Realm: e.realm, Username: "ops", Password: "wrong-pw"})
	_, err = bad.CountUsers(ctx, admin.UserQuery{})
	if !errors.Is(err, admin.ErrUnauthorized) || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("wrong password: %v", err)
	}
	badSA := e.client(t, saManager, func(cfg *admin.Config) { cfg.Client.ClientSecret = "nope-secret" })
	if _, err := badSA.CountUsers(ctx, admin.UserQuery{}); !errors.Is(err, admin.ErrUnauthorized) || strings.Contains(err.Error(), "nope-secret") {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestMasterRealmAdmin(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithBasePath("/auth"), keycloaktest.WithRealm(testRealm()),
		keycloaktest.WithRealm(keycloaktest.RealmConfig{Name: "master", RealmRoles: []string{"admin"}, Users: []keycloaktest.UserConfig{
			{Username: "admin", Password: "admin-pw", RealmRoles: []string{"admin"}},
			{Username: "peon", Password: "peon-pw"},
		}}))
	demo, _ := cloakroom.NewRealm(srv.Issuer("demo"))
	master, _ := cloakroom.NewRealm(srv.Issuer("master"))
	ctx := t.Context()
	c, err := admin.New(admin.Config{Realm: demo, AuthRealm: master, Username: "admin", Password: "admin-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.URL() + "/admin/realms/demo"; c.BaseURL() != want || !strings.Contains(want, "/auth/admin/") {
		t.Errorf("BaseURL = %q, want %q", c.BaseURL(), want)
	}
	if _, err := c.CreateUser(ctx, admin.NewUser{Username: "from-master"}); err != nil {
		t.Fatal(err)
	}
	peon, _ := admin.New(admin.Config{Realm: demo, AuthRealm: master, Username: "peon", Password: "peon-pw"})
	if _, err := peon.ListUsers(ctx, admin.UserQuery{}); !errors.Is(err, admin.ErrForbidden) {
		t.Errorf("master user without admin role: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	if _, err := c.CountUsers(t.Context(), admin.UserQuery{}); err != nil {
		t.Fatal(err)
	}
	e.srv.SetFault(keycloaktest.Fault{Delay: 5 * time.Second, Paths: []string{"/admin/"}})
	defer e.srv.ClearFault()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ListUsers(ctx, admin.UserQuery{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("ListUsers = %v after %v", err, time.Since(start))
	}
	done, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := c.GetUser(done, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	// Retries stop when the context ends during the backoff.
	e.srv.SetFault(keycloaktest.Fault{Status: 503, Paths: []string{"/admin/"}})
	slow := e.client(t, saManager, func(cfg *admin.Config) {
		cfg.RetryBaseDelay, cfg.RetryMaxDelay, cfg.MaxAttempts = 10*time.Second, 10*time.Second, 5
	})
	ctx3, cancel3 := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel3()
	e.srv.ClearFault()
	if _, err := slow.CountUsers(t.Context(), admin.UserQuery{}); err != nil {
		t.Fatal(err)
	}
	e.srv.SetFault(keycloaktest.Fault{Status: 503, Paths: []string{"/admin/"}})
	start = time.Now()
	if _, err := slow.ListUsers(ctx3, admin.UserQuery{}); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("during backoff: %v after %v", err, time.Since(start))
	}
}

func TestSessionsAndLogout(t *testing.T) {
	t.Parallel()
	var logouts atomic.Int32
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logouts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.Close)
	e := newEnv(t, func(cfg *keycloaktest.RealmConfig) { cfg.Clients[0].BackchannelLogoutURL = rp.URL })
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	var refresh []string
	for range 3 {
		tok, code := passwordGrant(t, e, "bob", "bob")
		if code != http.StatusOK {
			t.Fatal(code)
		}
		refresh = append(refresh, tok["refresh_token"].(string))
	}
	sessions, err := c.UserSessions(ctx, bob)
	if err != nil || len(sessions) != 3 {
		t.Fatalf("UserSessions = %+v, %v", sessions, err)
	}
	s := sessions[0]
	if s.UserID != bob || s.Username != "bob" || s.IPAddress == "" || s.Started().IsZero() || len(s.Clients) != 1 || !slices.Contains(mapValues(s.Clients), "cloakroom") {
		t.Errorf("session %+v", s)
	}
	if err := c.DeleteSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if logouts.Load() != 1 {
		t.Errorf("back-channel logouts after DeleteSession: %d", logouts.Load())
	}
	if err := c.DeleteSession(ctx, s.ID); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("second DeleteSession: %v", err)
	}
	if left, _ := c.UserSessions(ctx, bob); len(left) != 2 {
		t.Errorf("sessions left: %d", len(left))
	}
	if err := c.LogoutUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if left, _ := c.UserSessions(ctx, bob); len(left) != 0 || logouts.Load() != 3 {
		t.Errorf("after LogoutUser: %d sessions, %d back-channel logouts", len(left), logouts.Load())
	}
	for _, rt := range refresh {
		if body, code := tokenRequest(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); code != http.StatusBadRequest {
			t.Errorf("refresh after logout: %d %v", code, body)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestDisableUser(t *testing.T) {
	t.Parallel()
	var logouts atomic.Int32
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { logouts.Add(1) }))
	t.Cleanup(rp.Close)
	e := newEnv(t, func(cfg *keycloaktest.RealmConfig) { cfg.Clients[0].BackchannelLogoutURL = rp.URL })
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	tok, _ := passwordGrant(t, e, "bob", "bob")
	if err := c.DisableUserAndLogout(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.GetUser(ctx, bob); u.Enabled {
		t.Error("still enabled")
	}
	if n := len(e.kc.SessionIDs("bob")); n != 0 || logouts.Load() != 1 {
		t.Errorf("after disable: %d sessions, %d back-channel logouts", n, logouts.Load())
	}
	body, _ := tokenRequest(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if body["error_description"] != "User disabled" {
		t.Errorf("refresh of a disabled user: %v", body)
	}
	if _, code := passwordGrant(t, e, "bob", "bob"); code != http.StatusBadRequest {
		t.Errorf("login of a disabled user: %d", code)
	}
	if err := c.EnableUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, code := passwordGrant(t, e, "bob", "bob"); code != http.StatusOK {
		t.Errorf("login after enable: %d", code)
	}
	// Deleting a user ends its sessions too (the two logins above), with
	// back-channel logouts.
	passwordGrant(t, e, "bob", "bob")
	if err := c.DeleteUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if logouts.Load() != 3 {
		t.Errorf("back-channel logouts after delete: %d", logouts.Load())
	}
}

func TestRoleMappings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	roleNames := func(roles []admin.Role, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range roles {
			out = append(out, r.Name)
		}
		slices.Sort(out)
		return out
	}
	if err := c.AddUserRealmRoles(ctx, bob, "admin", "editor"); err != nil {
		t.Fatal(err)
	}
	if got := roleNames(c.UserRealmRoles(ctx, bob)); !slices.Equal(got, []string{"admin", "default-roles-demo", "editor", "user"}) {
		t.Errorf("realm roles %v", got)
	}
	if err := c.RemoveUserRealmRoles(ctx, bob, "editor"); err != nil {
		t.Fatal(err)
	}
	if got := roleNames(c.UserRealmRoles(ctx, bob)); slices.Contains(got, "editor") {
		t.Errorf("editor not removed: %v", got)
	}
	if err := c.AddUserRealmRoles(ctx, bob, "admin", "no-such-role"); !errors.Is(err, admin.ErrNotFound) || !strings.Contains(err.Error(), "no-such-role") {
		t.Errorf("unknown realm role: %v", err)
	}
	if err := c.AddUserClientRoles(ctx, bob, "cloakroom", "reader", "writer"); err != nil {
		t.Fatal(err)
	}
	if got := roleNames(c.UserClientRoles(ctx, bob, "cloakroom")); !slices.Equal(got, []string{"reader", "writer"}) {
		t.Errorf("client roles %v", got)
	}
	if err := c.RemoveUserClientRoles(ctx, bob, "cloakroom", "writer"); err != nil {
		t.Fatal(err)
	}
	if got := roleNames(c.UserClientRoles(ctx, bob, "cloakroom")); !slices.Equal(got, []string{"reader"}) {
		t.Errorf("client roles after remove %v", got)
	}
	if err := c.AddUserClientRoles(ctx, bob, "no-such-client", "x"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("unknown client: %v", err)
	}
	if got := roleNames(c.ClientRoles(ctx, "cloakroom")); !slices.Equal(got, []string{"reader", "writer"}) {
		t.Errorf("ClientRoles %v", got)
	}
	cl, err := c.ClientByClientID(ctx, "cloakroom")
	if err != nil || cl.ID == "" || cl.ClientID != "cloakroom" {
		t.Errorf("ClientByClientID = %+v, %v", cl, err)
	}
	// The mapping shows in new tokens.
	tok, _ := passwordGrant(t, e, "bob", "bob")
	claims := decodeJWT(t, tok["access_token"].(string))
	if !strings.Contains(fmt.Sprint(claims["realm_access"]), "admin") || !strings.Contains(fmt.Sprint(claims["resource_access"]), "reader") {
		t.Errorf("token roles: %v %v", claims["realm_access"], claims["resource_access"])
	}
}

func TestGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	groups, err := c.ListGroups(ctx, admin.GroupQuery{})
	if err != nil || len(groups) != 2 || groups[0].Name != "guests" || groups[1].SubGroupCount != 1 {
		t.Fatalf("ListGroups = %+v, %v", groups, err)
	}
	found, err := c.ListGroups(ctx, admin.GroupQuery{Search: "edit"})
	if err != nil || len(found) != 1 || len(found[0].SubGroups) != 1 || found[0].SubGroups[0].Path != "/staff/editors" {
		t.Fatalf("search = %+v, %v", found, err)
	}
	editors, err := c.GroupByPath(ctx, "staff/editors")
	if err != nil || editors.Path != "/staff/editors" || editors.ParentID == "" {
		t.Fatalf("GroupByPath = %+v, %v", editors, err)
	}
	for range 2 { // idempotent
		if err := c.JoinGroup(ctx, bob, editors.ID); err != nil {
			t.Fatal(err)
		}
	}
	ug, err := c.UserGroups(ctx, bob)
	if err != nil || len(ug) != 1 || ug[0].ID != editors.ID {
		t.Errorf("UserGroups = %+v, %v", ug, err)
	}
	members, err := c.GroupMembers(ctx, editors.ID, 0, 0)
	if err != nil || len(members) != 1 || members[0].ID != bob {
		t.Errorf("GroupMembers = %+v, %v", members, err)
	}
	// Members inherit the group's realm roles.
	tok, _ := passwordGrant(t, e, "bob", "bob")
	if claims := decodeJWT(t, tok["access_token"].(string)); !strings.Contains(fmt.Sprint(claims["realm_access"]), "editor") {
		t.Errorf("group role not in token: %v", claims["realm_access"])
	}
	for range 2 {
		if err := c.LeaveGroup(ctx, bob, editors.ID); err != nil {
			t.Fatal(err)
		}
	}
	if ug, _ := c.UserGroups(ctx, bob); len(ug) != 0 {
		t.Errorf("after LeaveGroup: %+v", ug)
	}
}

func TestFederatedIdentities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	link := admin.FederatedIdentity{IdentityProvider: "github", UserID: "4242", UserName: "bob-gh"}
	if err := c.LinkFederatedIdentity(ctx, bob, link); err != nil {
		t.Fatal(err)
	}
	if err := c.LinkFederatedIdentity(ctx, bob, link); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("second link: %v", err)
	}
	links, err := c.FederatedIdentities(ctx, bob)
	if err != nil || len(links) != 1 || links[0] != link {
		t.Errorf("FederatedIdentities = %+v, %v", links, err)
	}
	if users, err := c.ListUsers(ctx, admin.UserQuery{IDPAlias: "github", IDPUserID: "4242"}); err != nil || len(users) != 1 || users[0].ID != bob {
		t.Errorf("users by idp: %+v, %v", users, err)
	}
	if u, _ := c.GetUser(ctx, bob); len(u.FederatedIdentities) != 1 {
		t.Errorf("GetUser federatedIdentities: %+v", u.FederatedIdentities)
	}
	if err := c.UnlinkFederatedIdentity(ctx, bob, "github"); err != nil {
		t.Fatal(err)
	}
	if err := c.UnlinkFederatedIdentity(ctx, bob, "github"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("second unlink: %v", err)
	}
}
