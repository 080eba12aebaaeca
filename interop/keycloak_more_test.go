package interop_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/directory"
	"github.com/cloakroom/cloakroom/interop/conformance"
	weblogin "github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
	"golang.org/x/oauth2"
)

// More of the library against a real Keycloak (see keycloak_test.go):
// refresh-token rotation through x/oauth2 and through the login package,
// introspection after a revocation made with the admin API, directory.Sync
// and the `cloakroom users` command. Each test has a realm of its own.

// realAdmin is the library's admin client on realm issuer, as the fixture's
// service account conf-admin (realm-admin).
func realAdmin(t *testing.T, issuer string) *admin.Client {
	t.Helper()
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: "conf-admin", ClientSecret: "conf-admin-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustAdminCall sends an admin request as the master administrator and
// fails the test unless Keycloak answers want.
func mustAdminCall(t *testing.T, kc *conformance.Keycloak, method, path string, body any, want int) *conformance.Response {
	t.Helper()
	var res *conformance.Response
	var err error
	// Keycloak 26.7.3's role cache sometimes throws a NullPointerException
	// (DefaultLazyLoader) while other realms change in parallel, answering
	// 500 unknown_error; the setup calls made here are idempotent, so a
	// 500 is tried again.
	for try := 0; try < 3; try++ {
		res, err = kc.AdminCall(t.Context(), method, path, body)
		if err != nil || res.Status != http.StatusInternalServerError {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if res.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %.300s", method, path, res.Status, want, res.Body)
	}
	return res
}

// clientUUID returns Keycloak's internal id of the client clientID.
func clientUUID(t *testing.T, kc *conformance.Keycloak, realm, clientID string) string {
	t.Helper()
	res := mustAdminCall(t, kc, http.MethodGet, "/admin/realms/"+realm+"/clients?clientId="+url.QueryEscape(clientID), nil, http.StatusOK)
	if len(res.List) != 1 {
		t.Fatalf("client %s: %d matches", clientID, len(res.List))
	}
	return res.List[0].(map[string]any)["id"].(string)
}

var kcLoginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// codeFlowLogin runs the authorization code flow the way a browser does,
// over plain HTTP: start is the application URL that sends the client to
// Keycloak; the login form Keycloak renders is filled in and posted, and
// the redirects are followed back to the application. It returns the last
// response's status and body.
func codeFlowLogin(t *testing.T, client *http.Client, issuer, start, user, password string) (int, string) {
	t.Helper()
	res, err := client.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.HasPrefix(res.Request.URL.String(), issuer+"/protocol/openid-connect/auth?") {
		t.Fatalf("%s did not lead to the realm's authorization endpoint but to %s (%d)", start, res.Request.URL, res.StatusCode)
	}
	m := kcLoginForm.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no Keycloak login form at %s (%d): %.300s", res.Request.URL, res.StatusCode, body)
	}
	res, err = client.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {user}, "password": {password}, "credentialId": {""}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ = io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// rewindStore is a session.Store that keeps the first record saved under
// each key, so a test can put a session back as it was at login: what a
// restored backup or an instance with a stale copy would hold.
type rewindStore struct {
	session.Store
	mu    sync.Mutex
	first map[string]session.Record
}

func (s *rewindStore) Save(ctx context.Context, r *session.Record) error {
	s.mu.Lock()
	if _, ok := s.first[r.Key]; !ok {
		c := *r
		c.Payload = slices.Clone(r.Payload)
		s.first[r.Key] = c
	}
	s.mu.Unlock()
	return s.Store.Save(ctx, r)
}

// rewind replaces every stored session by its first saved version.
func (s *rewindStore) rewind(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, r := range s.first {
		if err := s.Store.Delete(ctx, key); err != nil {
			return err
		}
		c := r
		c.Payload, c.Version = slices.Clone(r.Payload), 0
		if err := s.Store.Save(ctx, &c); err != nil {
			return err
		}
	}
	return nil
}

// TestRealKeycloakRefreshRotation: with refresh-token rotation on
// (revokeRefreshToken, refreshTokenMaxReuse 0) Keycloak hands out a new
// refresh token on every refresh and refuses a second use of an old one
// with invalid_grant. Through x/oauth2, the refreshed access token passes
// cloakroom's verifier. Through the login package, concurrent requests of
// one session never spend a refresh token twice (every one of them stays
// logged in), and a session holding an already spent refresh token (a
// stale copy) is ended cleanly — cookie cleared, no 503 — rather than
// kept alive.
func TestRealKeycloakRefreshRotation(t *testing.T) {
	t.Parallel()
	const realmName = "lib-refresh"
	kc, issuer := realKeycloak(t, realmName)
	mustAdminCall(t, kc, http.MethodPut, "/admin/realms/"+realmName, map[string]any{"revokeRefreshToken": true, "refreshTokenMaxReuse": 0}, http.StatusNoContent)
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("oauth2", func(t *testing.T) {
		v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app", AuthorizedParties: []string{"conf-app"}})
		if err != nil {
			t.Fatal(err)
		}
		cfg := oauth2.Config{ClientID: "conf-app", ClientSecret: "conf-app-secret",
			Endpoint: oauth2.Endpoint{TokenURL: issuer + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInParams}}
		refresh := func(rt string) (*oauth2.Token, error) {
			return cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
		}
		first := realPasswordLogin(t, issuer, "alice", "alice-pw")
		c1, err := v.Verify(t.Context(), first.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		second, err := refresh(first.RefreshToken)
		if err != nil {
			t.Fatalf("first refresh: %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("rotation is on, but the refresh returned the same (or no) refresh token")
		}
		c2, err := v.Verify(t.Context(), second.AccessToken)
		if err != nil {
			t.Fatalf("the refreshed access token: %v", err)
		}
		if c2.Subject() != c1.Subject() || c2.Username() != "alice" {
			t.Errorf("refreshed token: sub %q username %q, want sub %q", c2.Subject(), c2.Username(), c1.Subject())
		}
		_, err = refresh(first.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("second use of a rotated refresh token: %v; want invalid_grant", err)
		}
		t.Logf("Keycloak on the reused refresh token: %s: %s", re.ErrorCode, re.ErrorDescription)
	})

	t.Run("login", func(t *testing.T) {
		keys, err := session.ParseKeys(session.GenerateKey())
		if err != nil {
			t.Fatal(err)
		}
		ring, err := session.NewKeyring(keys...)
		if err != nil {
			t.Fatal(err)
		}
		store := &rewindStore{Store: session.NewMemoryStore(), first: map[string]session.Record{}}
		sessions, err := session.NewManager(session.Config{Store: store, Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		appURL := "http://" + ln.Addr().String()
		mustAdminCall(t, kc, http.MethodPost, "/admin/realms/"+realmName+"/clients", map[string]any{
			"clientId": "refresh-app", "enabled": true, "publicClient": false, "secret": "refresh-app-secret",
			"standardFlowEnabled": true, "directAccessGrantsEnabled": false, "redirectUris": []string{appURL + "/*"},
		}, http.StatusCreated)

		var mu sync.Mutex
		var refreshErrs []error
		logs := &lockedBuffer{}
		auth, err := weblogin.New(weblogin.Config{
			Realm: realm, ClientID: "refresh-app", ClientSecret: "refresh-app-secret", BaseURL: appURL, Sessions: sessions,
			// Keycloak's access tokens live 5 minutes: every request refreshes.
			RefreshBefore: time.Hour,
			OnRefresh: func(_ context.Context, err error) {
				mu.Lock()
				refreshErrs = append(refreshErrs, err)
				mu.Unlock()
			},
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			t.Fatal(err)
		}
		refreshes := func() (ok, failed int, last error) {
			mu.Lock()
			defer mu.Unlock()
			for _, err := range refreshErrs {
				if err == nil {
					ok++
				} else {
					failed, last = failed+1, err
				}
			}
			return
		}
		mux := http.NewServeMux()
		auth.Mount(mux)
		mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
			s, ok := weblogin.FromContext(r.Context())
			if !ok {
				io.WriteString(w, "anonymous")
				return
			}
			fmt.Fprintf(w, "%s %x", s.Subject, sha256.Sum256([]byte(s.AccessToken)))
		})
		srv := httptest.NewUnstartedServer(auth.Middleware(mux))
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)

		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		status, body := codeFlowLogin(t, client, issuer, appURL+"/auth/login?return_to=/me", "alice", "alice-pw")
		sub, _, _ := strings.Cut(body, " ")
		if status != http.StatusOK || len(sub) != 36 {
			t.Fatalf("after the login: %d %q; want alice's session", status, body)
		}
		get := func() (*http.Response, string) {
			res, err := client.Get(appURL + "/me")
			if err != nil {
				t.Error(err)
				return nil, ""
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res, string(b)
		}

		// Concurrent requests of one session: each refreshes, none may
		// spend a refresh token another has spent, or Keycloak ends them.
		const parallel = 8
		bodies := make([]string, parallel)
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Go(func() {
				if res, b := get(); res != nil && res.StatusCode == http.StatusOK {
					bodies[i] = b
				}
			})
		}
		wg.Wait()
		for i, b := range bodies {
			if !strings.HasPrefix(b, sub+" ") {
				t.Errorf("concurrent request %d: %q, want alice's session", i, b)
			}
		}
		if ok, failed, last := refreshes(); ok < 2 || failed != 0 {
			t.Fatalf("refreshes: %d ok, %d failed (last %v); want every refresh to pass", ok, failed, last)
		}
		// Keycloak refuses an old refresh token as stale only if it was
		// issued before the client session's last refresh, compared in
		// whole seconds: the refreshes below must fall in a later second
		// than the login, or Keycloak would accept the stale token again.
		time.Sleep(1100 * time.Millisecond)
		_, before := get()
		_, after := get()
		if !strings.HasPrefix(after, sub+" ") || after == before {
			t.Fatalf("sequential refreshes: %q then %q; want alice with a new access token each time", before, after)
		}

		// The session as it was at login holds the first refresh token,
		// spent long ago: Keycloak refuses it and the session ends.
		if err := store.rewind(t.Context()); err != nil {
			t.Fatal(err)
		}
		res, b := get()
		if res == nil {
			t.FailNow()
		}
		if res.StatusCode != http.StatusOK || b != "anonymous" {
			t.Errorf("with a spent refresh token: %d %q; want the session ended (200 anonymous), not an outage", res.StatusCode, b)
		}
		cleared := false
		for _, c := range res.Cookies() {
			if c.Name == "cloakroom" && c.MaxAge < 0 {
				cleared = true
			}
		}
		if !cleared {
			t.Errorf("the session cookie was not cleared: %v", res.Header.Values("Set-Cookie"))
		}
		if _, failed, last := refreshes(); failed != 1 || last == nil || !strings.Contains(last.Error(), "session ended") {
			t.Errorf("OnRefresh: %d failures, last %v; want one, the session ended", failed, last)
		}
		if l := logs.String(); !strings.Contains(l, "refresh refused") || !strings.Contains(l, "invalid_grant") {
			t.Errorf("the log does not show Keycloak's invalid_grant:\n%s", l)
		}
		if _, b := get(); b != "anonymous" {
			t.Errorf("the next request: %q, want anonymous", b)
		}
	})
}

// TestRealKeycloakIntrospectionRevocation: tokens that still verify
// locally (signature, exp) are refused by bearer's introspection once an
// administrator ended the user's sessions (POST /users/{id}/logout through
// admin.LogoutUser), disabled the user, or deleted it. The logout through
// the OIDC logout endpoint is TestRealKeycloakIntrospection's.
func TestRealKeycloakIntrospectionRevocation(t *testing.T) {
	t.Parallel()
	const realmName = "lib-revoke"
	kc, issuer := realKeycloak(t, realmName)
	addAudienceMapper(t, kc, realmName, "conf-app", "conf-app")
	ac := realAdmin(t, issuer)
	ctx := t.Context()
	if _, err := ac.CreateUser(ctx, admin.NewUser{Username: "erin", Email: "erin@example.com", FirstName: "Erin", LastName: "E", Password: "erin-pw-1"}); err != nil {
		t.Fatal(err)
	}
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "conf-app"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v, bearer.WithLogger(slog.New(slog.DiscardHandler)), bearer.WithIntrospection(bearer.IntrospectionConfig{
		Client: cloakroom.ClientCredentials{ClientID: "conf-app", ClientSecret: "conf-app-secret"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(auth.Authenticate(bearer.RequireAuthenticated()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := bearer.FromContext(r.Context())
		io.WriteString(w, p.ID)
	}))))
	t.Cleanup(srv.Close)
	call := func(token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name, user, password string
		revoke               func(id string) error
	}{
		{"sessions ended by the admin API", "alice", "alice-pw", func(id string) error { return ac.LogoutUser(ctx, id) }},
		{"user disabled (sessions kept)", "bob", "bob-pw", func(id string) error { return ac.DisableUser(ctx, id) }},
		{"user deleted", "erin", "erin-pw-1", func(id string) error { return ac.DeleteUser(ctx, id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := realPasswordLogin(t, issuer, tc.user, tc.password)
			u, err := ac.FindUserByUsername(ctx, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if status, body := call(tok.AccessToken); status != http.StatusOK || body != u.ID {
				t.Fatalf("before: %d %q; want 200 with sub %s", status, body, u.ID)
			}
			if err := tc.revoke(u.ID); err != nil {
				t.Fatal(err)
			}
			// Without introspection the token still passes: only Keycloak
			// knows it is revoked.
			if _, err := v.Verify(ctx, tok.AccessToken); err != nil {
				t.Fatalf("local verification after the revocation: %v (the test needs a token that is still valid locally)", err)
			}
			status, body := call(tok.AccessToken)
			if status != http.StatusUnauthorized || !strings.Contains(body, "token_not_valid") || !strings.Contains(body, "no longer active") {
				t.Errorf("after: %d %s; want 401 token_not_valid, no longer active", status, body)
			}
		})
	}
}

// TestRealKeycloakDirectorySync: directory.Sync against a real Keycloak
// with 50 users created through the admin API (SQLite in a temporary
// directory), paging in pages of 20. Every Keycloak user gets a row keyed
// by its Keycloak id; after a user is disabled, another deleted and a
// third renamed in Keycloak, the next Sync deactivates the first two with
// the right reasons, updates the third and leaves the rest unchanged.
func TestRealKeycloakDirectorySync(t *testing.T) {
	t.Parallel()
	const realmName, n = "lib-directory", 50
	_, issuer := realKeycloak(t, realmName)
	ac := realAdmin(t, issuer)
	ctx := t.Context()

	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 6 {
		wg.Go(func() {
			for i := range next {
				ids[i], errs[i] = ac.CreateUser(ctx, admin.NewUser{Username: fmt.Sprintf("sync-%02d", i), Email: fmt.Sprintf("sync-%02d@example.com", i), FirstName: "Sync", LastName: fmt.Sprintf("User %02d", i)})
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total, err := ac.CountUsers(ctx, admin.UserQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if total < n+3 {
		t.Fatalf("Keycloak counts %d users, want at least %d (the fixture's alice, bob, dave and ours)", total, n+3)
	}

	dir, err := directory.OpenSQLite(filepath.Join(t.TempDir(), "users.db"), directory.WithAdmin(ac), directory.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	opts := directory.SyncOptions{PageSize: 20, BatchSize: 15}
	rep, err := dir.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// dave is disabled in the fixture: his row is created deactivated.
	if rep.Seen != total || rep.Created+rep.Deactivated != total || rep.Errors != 0 {
		t.Errorf("first sync: %+v; want %d users seen and created", rep.SyncCounts, total)
	}
	for i, id := range ids {
		u, err := dir.BySubject(ctx, id)
		if err != nil {
			t.Fatalf("row of sync-%02d: %v", i, err)
		}
		if u.Username != fmt.Sprintf("sync-%02d", i) || u.Email != fmt.Sprintf("sync-%02d@example.com", i) || u.LastName != fmt.Sprintf("User %02d", i) || !u.Enabled || !u.Active() {
			t.Fatalf("row of sync-%02d: %+v", i, u)
		}
	}
	dave, err := ac.FindUserByUsername(ctx, "dave")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := dir.BySubject(ctx, dave.ID); err != nil || u.Active() || u.Reason != directory.ReasonDisabled {
		t.Errorf("dave (disabled in Keycloak): %+v %v", u, err)
	}

	disabled, deleted, renamed := ids[7], ids[13], ids[21]
	if err := ac.DisableUser(ctx, disabled); err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteUser(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	newEmail := "renamed@example.com"
	if err := ac.UpdateUser(ctx, renamed, admin.UserUpdate{Email: &newEmail}); err != nil {
		t.Fatal(err)
	}
	rep, err = dir.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := directory.SyncCounts{Seen: total - 1, Updated: 1, Deactivated: 2, Unchanged: total - 3}
	if rep.SyncCounts != want {
		t.Errorf("second sync: %+v, want %+v", rep.SyncCounts, want)
	}
	for _, tc := range []struct {
		name, sub string
		active    bool
		reason    directory.Reason
		enabled   bool
		email     string
	}{
		{name: "disabled in Keycloak", sub: disabled, reason: directory.ReasonDisabled, email: "sync-07@example.com"},
		{name: "deleted in Keycloak", sub: deleted, reason: directory.ReasonNotInKeycloak, email: "sync-13@example.com"},
		{name: "email changed in Keycloak", sub: renamed, active: true, enabled: true, email: newEmail},
		{name: "untouched", sub: ids[0], active: true, enabled: true, email: "sync-00@example.com"},
	} {
		u, err := dir.BySubject(ctx, tc.sub)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if u.Active() != tc.active || u.Reason != tc.reason || u.Enabled != tc.enabled || u.Email != tc.email {
			t.Errorf("%s: active %v reason %q enabled %v email %q; want %v %q %v %q", tc.name, u.Active(), u.Reason, u.Enabled, u.Email, tc.active, tc.reason, tc.enabled, tc.email)
		}
	}
	active, err := dir.List(ctx, directory.Query{Status: directory.ActiveOnly, Search: "sync-", Limit: directory.MaxListLimit})
	if err != nil || len(active) != n-2 {
		t.Errorf("active sync- rows: %d %v, want %d", len(active), err, n-2)
	}
}

// TestRealKeycloakUsersCLI: the `cloakroom users` subcommands, as a built
// binary, against a real Keycloak, with a service account holding only the
// realm-management roles the command documents (manage-users, view-users,
// query-groups, view-clients). Each step checks the output and what
// Keycloak then holds, e.g. that a created user can log in with the
// password given, that logout ends the sessions and that --next-login
// blocks the password grant. A service account without those roles gets
// the message naming the missing role.
func TestRealKeycloakUsersCLI(t *testing.T) {
	t.Parallel()
	const realmName = "lib-cli"
	kc, issuer := realKeycloak(t, realmName)
	bin := filepath.Join(t.TempDir(), "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cloakroom")
	build.Dir = ".." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// A service account with exactly the documented roles.
	mustAdminCall(t, kc, http.MethodPost, "/admin/realms/"+realmName+"/clients", map[string]any{
		"clientId": "cli-admin", "enabled": true, "publicClient": false, "secret": "cli-admin-secret",
		"standardFlowEnabled": false, "directAccessGrantsEnabled": false, "serviceAccountsEnabled": true,
	}, http.StatusCreated)
	cliUUID := clientUUID(t, kc, realmName, "cli-admin")
	sa := mustAdminCall(t, kc, http.MethodGet, "/admin/realms/"+realmName+"/clients/"+cliUUID+"/service-account-user", nil, http.StatusOK)
	rm := clientUUID(t, kc, realmName, "realm-management")
	var roles []any
	for _, name := range []string{"manage-users", "view-users", "query-groups", "view-clients"} {
		roles = append(roles, mustAdminCall(t, kc, http.MethodGet, "/admin/realms/"+realmName+"/clients/"+rm+"/roles/"+name, nil, http.StatusOK).JSON)
	}
	mustAdminCall(t, kc, http.MethodPost, "/admin/realms/"+realmName+"/users/"+sa.JSON["id"].(string)+"/role-mappings/clients/"+rm, roles, http.StatusNoContent)

	dbPath := filepath.Join(t.TempDir(), "users.db")
	run := func(clientID, secret string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"users"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
			"CLOAKROOM_ISSUER=" + issuer, "CLOAKROOM_CLIENT_ID=" + clientID, "CLOAKROOM_CLIENT_SECRET=" + secret}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("cloakroom users %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	ac := realAdmin(t, issuer)
	ctx := t.Context()
	passwordGrant := func(user, password string) error {
		cfg := oauth2.Config{ClientID: "conf-app", ClientSecret: "conf-app-secret", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{TokenURL: issuer + "/protocol/openid-connect/token", AuthStyle: oauth2.AuthStyleInParams}}
		_, err := cfg.PasswordCredentialsToken(ctx, user, password)
		return err
	}
	carol := func() *admin.User {
		t.Helper()
		u, err := ac.FindUserByUsername(ctx, "carol")
		if err != nil {
			t.Fatalf("carol in Keycloak: %v", err)
		}
		return u
	}
	usernames := func(jsonList string) []string {
		var users []admin.User
		if err := json.Unmarshal([]byte(jsonList), &users); err != nil {
			t.Fatalf("not a JSON list of users: %v: %.300s", err, jsonList)
		}
		var names []string
		for _, u := range users {
			names = append(names, u.Username)
		}
		slices.Sort(names)
		return names
	}

	steps := []struct {
		args     []string
		code     int
		stdout   string // a substring of stdout (regexp)
		stderr   string // a substring of stderr (regexp)
		check    func(t *testing.T, stdout string)
		asClient string // default cli-admin
	}{
		{args: []string{"--help"}, stderr: `Subcommands:`},
		{args: []string{"list", "--json"}, check: func(t *testing.T, out string) {
			if got := usernames(out); !slices.Equal(got, []string{"alice", "bob", "dave"}) {
				t.Errorf("users: %v, want alice, bob, dave (no service accounts)", got)
			}
		}},
		{args: []string{"list", "--enabled=false", "--json"}, check: func(t *testing.T, out string) {
			if got := usernames(out); !slices.Equal(got, []string{"dave"}) {
				t.Errorf("disabled users: %v", got)
			}
		}},
		{args: []string{"search", "ali"}, stdout: `(?m)^ID +USERNAME +EMAIL +NAME +ENABLED\n[0-9a-f-]{36} +alice +alice@example\.com +Alice Liddell +true\n$`},
		{args: []string{"show", "bob"}, stdout: `(?s)username: +bob\n.*email: +bob@example\.com \(not verified\).*realm roles: +.*auditor`},
		{args: []string{"create", "--username", "carol", "--email", "carol@example.com", "--first-name", "Carol", "--last-name", "Cole", "--password", "Carol-pw-1"},
			stdout: `^created user carol with id [0-9a-f-]{36}\n$`, check: func(t *testing.T, _ string) {
				if err := passwordGrant("carol", "Carol-pw-1"); err != nil {
					t.Errorf("carol cannot log in with the password the command set: %v", err)
				}
			}},
		{args: []string{"create", "--username", "carol"}, code: 1, stderr: `conflict`},
		{args: []string{"update", "carol", "--email", "carol.cole@example.com", "--email-verified=true"}, stdout: `^updated user carol\n$`, check: func(t *testing.T, _ string) {
			if u := carol(); u.Email != "carol.cole@example.com" || !u.EmailVerified || u.FirstName != "Carol" || u.LastName != "Cole" {
				t.Errorf("carol after update: %+v", u)
			}
		}},
		{args: []string{"roles", "add", "carol", "admin"}, stdout: `granted realm role\(s\) admin: user carol`},
		{args: []string{"roles", "add", "carol", "editor", "--client", "conf-app"}, stdout: `granted role\(s\) of client conf-app editor: user carol`},
		{args: []string{"groups", "join", "carol", "/staff"}, stdout: `added user carol to group /staff`},
		{args: []string{"show", "carol", "--json"}, check: func(t *testing.T, out string) {
			var u struct {
				Username   string   `json:"username"`
				Email      string   `json:"email"`
				RealmRoles []string `json:"realmRoles"`
				Groups     []string `json:"groups"`
			}
			if err := json.Unmarshal([]byte(out), &u); err != nil {
				t.Fatal(err)
			}
			if u.Username != "carol" || u.Email != "carol.cole@example.com" || !slices.Contains(u.RealmRoles, "admin") || !slices.Equal(u.Groups, []string{"/staff"}) {
				t.Errorf("show carol: %+v", u)
			}
			cr, err := ac.UserClientRoles(ctx, carol().ID, "conf-app")
			if err != nil || !slices.ContainsFunc(cr, func(r admin.Role) bool { return r.Name == "editor" }) {
				t.Errorf("carol's conf-app roles: %v %v", cr, err)
			}
		}},
		{args: []string{"groups", "leave", "carol", "staff"}, stdout: `removed user carol from group /staff`},
		{args: []string{"roles", "remove", "carol", "admin"}, stdout: `removed realm role\(s\) admin: user carol`, check: func(t *testing.T, _ string) {
			if r, err := ac.UserRealmRoles(ctx, carol().ID); err != nil || slices.ContainsFunc(r, func(r admin.Role) bool { return r.Name == "admin" }) {
				t.Errorf("carol's realm roles after remove: %v %v", r, err)
			}
			if g, err := ac.UserGroups(ctx, carol().ID); err != nil || len(g) != 0 {
				t.Errorf("carol's groups after leave: %v %v", g, err)
			}
			// A session for the next steps.
			if err := passwordGrant("carol", "Carol-pw-1"); err != nil {
				t.Fatal(err)
			}
		}},
		{args: []string{"sessions", "carol", "--json"}, check: func(t *testing.T, out string) {
			var list []admin.UserSession
			if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
				t.Errorf("carol's sessions: %d %v, want the two logins so far", len(list), err)
			}
		}},
		{args: []string{"logout", "carol"}, stdout: `ended every session of user carol`, check: func(t *testing.T, _ string) {
			if s, err := ac.UserSessions(ctx, carol().ID); err != nil || len(s) != 0 {
				t.Errorf("sessions after logout: %d %v", len(s), err)
			}
		}},
		{args: []string{"disable", "carol"}, stdout: `^disabled user carol\n$`, check: func(t *testing.T, _ string) {
			if err := passwordGrant("carol", "Carol-pw-1"); err == nil {
				t.Errorf("a disabled user logged in")
			}
		}},
		{args: []string{"enable", "carol"}, stdout: `^enabled user carol\n$`},
		{args: []string{"reset-password", "carol", "--password", "Carol-pw-2"}, stdout: `set the password of user carol`, check: func(t *testing.T, _ string) {
			if err := passwordGrant("carol", "Carol-pw-1"); err == nil {
				t.Errorf("the old password still works")
			}
			if err := passwordGrant("carol", "Carol-pw-2"); err != nil {
				t.Errorf("the new password: %v", err)
			}
		}},
		{args: []string{"reset-password", "carol", "--next-login"}, stdout: `must choose a new password`, check: func(t *testing.T, _ string) {
			var re *oauth2.RetrieveError
			if err := passwordGrant("carol", "Carol-pw-2"); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Errorf("password grant with UPDATE_PASSWORD pending: %v, want invalid_grant", err)
			}
			if u := carol(); !slices.Contains(u.RequiredActions, "UPDATE_PASSWORD") {
				t.Errorf("required actions: %v", u.RequiredActions)
			}
		}},
		{args: []string{"sync", "--db", "sqlite:" + dbPath, "--quiet"}, check: func(t *testing.T, _ string) {
			dir, err := directory.OpenSQLite(dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer dir.Close()
			rows, err := dir.List(ctx, directory.Query{Status: directory.ActiveOnly})
			var names []string
			for _, u := range rows {
				names = append(names, u.Username)
			}
			slices.Sort(names)
			if err != nil || !slices.Equal(names, []string{"alice", "bob", "carol"}) {
				t.Errorf("active rows after sync: %v %v", names, err)
			}
		}},
		{args: []string{"delete", "carol"}, code: 2, stderr: `pass --yes`},
		{args: []string{"delete", "carol", "--yes"}, stdout: `^deleted user carol \(id [0-9a-f-]{36}\)\n$`},
		{args: []string{"show", "carol"}, code: 1, stderr: `no user with id or username "carol"`},
		{args: []string{"list"}, asClient: "conf-app", code: 1, stderr: `forbidden: the service account lacks`},
	}
	for i, s := range steps {
		client, secret := "cli-admin", "cli-admin-secret"
		if s.asClient == "conf-app" {
			client, secret = "conf-app", "conf-app-secret"
		}
		code, stdout, stderr := run(client, secret, s.args...)
		name := strings.Join(s.args, " ")
		if code != s.code {
			t.Fatalf("users %s (as %s): exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, client, code, s.code, stdout, stderr)
		}
		if s.stdout != "" && !regexp.MustCompile(s.stdout).MatchString(stdout) {
			t.Errorf("users %s: stdout does not match %s:\n%s", name, s.stdout, stdout)
		}
		if s.stderr != "" && !regexp.MustCompile(s.stderr).MatchString(stderr) {
			t.Errorf("users %s: stderr does not match %s:\n%s", name, s.stderr, stderr)
		}
		if s.check != nil {
			t.Run(fmt.Sprintf("%02d-%s", i, s.args[0]), func(t *testing.T) { s.check(t, stdout) })
		}
	}
}
