package directory

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/sqldb"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			loc := newLocation(t, backend)
			ctx := context.Background()
			d := loc.open(t)
			u := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, `{"sub":"s-1","preferred_username":"ann","iat":1700000000}`)))
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil { // idempotent
				t.Fatal(err)
			}
			// Re-open: no migration runs again, the data is there.
			d2 := loc.open(t)
			got := must[*User](t)(d2.Get(ctx, u.ID))
			if got.Username != "ann" || got.Subject != "s-1" {
				t.Fatalf("after re-open: %+v", got)
			}
			var version int
			q := d2.q.rebind(`SELECT version FROM ` + d2.migrationsIdent() + ` WHERE component = ?`)
			if err := d2.r.QueryRowContext(ctx, q, component).Scan(&version); err != nil || version != len(sqliteMigrations) {
				t.Fatalf("recorded version %d, %v", version, err)
			}
			// A newer schema than this code knows is refused.
			if _, err := d2.w.ExecContext(ctx, d2.q.rebind(`UPDATE `+d2.migrationsIdent()+` SET version = 99 WHERE component = ?`), component); err != nil {
				t.Fatal(err)
			}
			if _, err := loc.tryOpen(); err == nil || !strings.Contains(err.Error(), "newer than this cloakroom knows") {
				t.Fatalf("open of a newer schema: %v", err)
			}
		})
	}
}

func (d *Directory) migrationsIdent() string {
	if d.pg {
		return sqldb.Postgres{Schema: d.schema}.MigrationsTable()
	}
	return sqldb.MigrationsTable
}

// Concurrent first opens migrate once; the other waits and finds the
// schema current.
func TestMigrationsConcurrentOpen(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			loc := newLocation(t, backend)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() {
					d, err := loc.tryOpen()
					if err == nil {
						err = d.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The directory shares a SQLite file (and its migrations table) with the
// session store.
func TestSQLiteSharesFileWithSessionStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	st, err := sqlitestore.Open(path, sqlitestore.WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.r.QueryRow(`SELECT count(*) FROM ` + sqldb.MigrationsTable).Scan(&n); err != nil || n != 2 {
		t.Fatalf("components in %s: %d, %v", sqldb.MigrationsTable, n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := OpenSQLite(""); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := OpenSQLite(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as database: %v", err)
	}
	if _, err := NewPostgres(context.Background(), nil); err == nil {
		t.Error("nil pool accepted")
	}
	if _, err := OpenPostgres(context.Background(), "postgres://127.0.0.1:1/x?connect_timeout=1"); err == nil || !strings.Contains(err.Error(), "connect to PostgreSQL") {
		t.Errorf("unreachable PostgreSQL: %v", err)
	}
	if u := pgURLOrEmpty(); u != "" {
		if _, err := OpenPostgres(context.Background(), u, WithSchema("no_such_schema_"+randomHex(4))); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("missing schema: %v", err)
		}
		if _, err := OpenPostgres(context.Background(), u, WithSchema("bad-name")); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("bad schema name: %v", err)
		}
	}
}

func mustClaims(t testing.TB, payload string) *cloakroom.Claims {
	t.Helper()
	c, err := cloakroom.ParseClaims([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUpsertFromClaims(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := newLocation(t, backend).open(t)
			full := `{"iss":"https://kc/realms/demo","sub":"u-1","iat":1700000000,"auth_time":1699999990,"preferred_username":"ann",
				"email":"ann@example.com","email_verified":true,"given_name":"Ann","family_name":"Lee","name":"Ann Lee",
				"realm_access":{"roles":["user","admin","user"]},"resource_access":{"shop":{"roles":["buyer"]}},
				"department":"R&D","tenant":{"id":7},"scope":"openid email","sid":"x","typ":"Bearer"}`
			first := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, full)))
			tests := []struct {
				name    string
				payload string
				check   func(t *testing.T, u *User)
				written bool
			}{
				{"same token again writes nothing", full, func(t *testing.T, u *User) {}, false},
				{"claims absent keep stored values", `{"sub":"u-1","iat":1700000001,"auth_time":1699999990}`, func(t *testing.T, u *User) {
					if u.Email != "ann@example.com" || u.FirstName != "Ann" || !slices.Equal(u.RealmRoles, []string{"admin", "user"}) || u.Extra["department"] != "R&D" {
						t.Errorf("values lost: %+v", u)
					}
				}, false},
				{"changed profile and roles", `{"sub":"u-1","iat":1700000100,"auth_time":1700000100,"preferred_username":"ann2","email":"new@example.com",
					"realm_access":{"roles":["user"]},"resource_access":{},"department":"Ops"}`, func(t *testing.T, u *User) {
					if u.Username != "ann2" || u.Email != "new@example.com" || !slices.Equal(u.RealmRoles, []string{"user"}) ||
						len(u.ClientRoles) != 0 || u.Extra["department"] != "Ops" || u.Extra["tenant"] == nil {
						t.Errorf("not updated: %+v", u)
					}
					if !u.LastLogin.Equal(time.Unix(1700000100, 0)) {
						t.Errorf("last login %v", u.LastLogin)
					}
				}, true},
				{"older auth_time does not move last login back", `{"sub":"u-1","iat":1700000200,"auth_time":1600000000}`, func(t *testing.T, u *User) {
					if !u.LastLogin.Equal(time.Unix(1700000100, 0)) {
						t.Errorf("last login %v", u.LastLogin)
					}
				}, false},
			}
			for _, tt := range tests {
				before := must[*User](t)(d.BySubject(ctx, "u-1"))
				time.Sleep(2 * time.Millisecond)
				u := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, tt.payload)))
				after := must[*User](t)(d.BySubject(ctx, "u-1"))
				if u.ID != first.ID || after.ID != first.ID {
					t.Fatalf("%s: id changed: %d %d %d", tt.name, first.ID, u.ID, after.ID)
				}
				if wrote := !after.Updated.Equal(before.Updated); wrote != tt.written {
					t.Errorf("%s: wrote %v, want %v", tt.name, wrote, tt.written)
				}
				tt.check(t, after)
			}
			// What the first login stored.
			if first.Username != "ann" || !first.EmailVerified || !slices.Equal(first.RealmRoles, []string{"admin", "user"}) ||
				!slices.Equal(first.ClientRoles["shop"], []string{"buyer"}) || first.Extra["department"] != "R&D" ||
				first.Extra["sid"] != nil || first.Extra["scope"] != nil || first.Extra["name"] != nil || !first.Enabled || !first.Active() {
				t.Errorf("first login stored %+v", first)
			}
			if !first.LastLogin.Equal(time.Unix(1699999990, 0)) || first.Created.IsZero() {
				t.Errorf("times %v %v", first.LastLogin, first.Created)
			}
		})
	}
}

func TestUpsertRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loc := newLocation(t, "sqlite")
	d := loc.open(t, WithIssuer("https://kc/realms/demo"))
	tests := []struct {
		name, payload string
	}{
		{"no sub", `{"iss":"https://kc/realms/demo","preferred_username":"x"}`},
		{"other issuer", `{"iss":"https://kc/realms/other","sub":"a"}`},
		{"control characters in sub", `{"iss":"https://kc/realms/demo","sub":"a\nb"}`},
		{"huge sub", `{"iss":"https://kc/realms/demo","sub":"` + strings.Repeat("a", 300) + `"}`},
	}
	for _, tt := range tests {
		if _, err := d.UpsertFromClaims(ctx, mustClaims(t, tt.payload)); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if _, err := d.UpsertFromClaims(ctx, nil); !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("nil claims: %v", err)
	}
	// ID and access token of different users.
	err := d.AfterLogin(ctx, mustClaims(t, `{"iss":"https://kc/realms/demo","sub":"a"}`),
		mustClaims(t, `{"iss":"https://kc/realms/demo","sub":"b"}`), nil)
	if !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("mixed subjects: %v", err)
	}
}

func TestExtraClaimsOption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	big := strings.Repeat("x", 40<<10)
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{"default keeps non-standard claims", nil, []string{"a", "b", "locale"}},
		{"explicit list, dotted path", []Option{WithExtraClaims("locale", "org.unit")}, []string{"locale", "org.unit"}},
		{"none", []Option{WithExtraClaims()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newLocation(t, "sqlite").open(t, tt.opts...)
			u := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, `{"sub":"s","a":"`+big+`","b":"`+big+`","locale":"de","org":{"unit":"R"},"exp":1}`)))
			var keys []string
			for k := range u.Extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := tt.want
			if tt.name == "default keeps non-standard claims" {
				want = []string{"a", "locale", "org"} // b does not fit in the 64 KiB budget
			}
			if !slices.Equal(keys, want) {
				t.Errorf("extra keys %v, want %v", keys, want)
			}
		})
	}
}

// A username reused for a new Keycloak user (new sub) gets a new local
// row; the old row keeps its id and is deactivated once Keycloak is asked.
func TestUsernameReuse(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			old := must[*User](t)(d.UpsertFromClaims(ctx, e.claims(t, "alice")))
			if err := e.kc.DeleteUser("alice"); err != nil {
				t.Fatal(err)
			}
			newID := must[string](t)(e.kc.AddUser(keycloaktest.UserConfig{Username: "alice", Password: "pw", Email: "alice2@example.com"}))
			if newID == old.Subject {
				t.Fatal("keycloaktest reused the id")
			}
			fresh := must[*User](t)(d.UpsertFromClaims(ctx, e.claims(t, "alice")))
			if fresh.ID == old.ID || fresh.Subject != newID || fresh.Email != "alice2@example.com" {
				t.Fatalf("new user merged into the old row: old %+v new %+v", old, fresh)
			}
			still := must[*User](t)(d.Get(ctx, old.ID))
			if still.Subject != old.Subject || still.Email != "alice@example.com" || still.Username != "alice" {
				t.Fatalf("old row changed: %+v", still)
			}
			both := must[[]*User](t)(d.List(ctx, Query{Username: "alice"}))
			if len(both) != 2 {
				t.Fatalf("rows named alice: %d", len(both))
			}
			rep := must[SyncReport](t)(d.Sync(ctx, SyncOptions{}))
			if rep.Deactivated != 1 || len(rep.DeactivatedUsers) != 1 || rep.DeactivatedUsers[0].ID != old.ID {
				t.Fatalf("sync report %+v", rep)
			}
			active := must[[]*User](t)(d.List(ctx, Query{Username: "alice", Status: ActiveOnly}))
			if len(active) != 1 || active[0].ID != fresh.ID {
				t.Fatalf("active alice rows: %+v", active)
			}
			gone := must[*User](t)(d.Get(ctx, old.ID))
			if gone.Active() || gone.Reason != ReasonNotInKeycloak || gone.Enabled {
				t.Fatalf("old row after sync: %+v", gone)
			}
		})
	}
}

// Deactivation refuses tokens issued before it and is undone by a token
// issued after Keycloak re-enabled the user.
func TestDeactivateRefusesOlderTokens(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			oldToken := e.claims(t, "bob", keycloaktest.WithIssuedAt(time.Now().Add(-time.Minute)))
			u := must[*User](t)(d.UpsertFromClaims(ctx, oldToken))
			if len(e.kc.SessionIDs("bob")) == 0 {
				t.Fatal("no session to end")
			}
			dz := must[*User](t)(d.Deactivate(ctx, u.ID))
			if dz.Active() || dz.Reason != ReasonDeactivated || dz.Enabled {
				t.Fatalf("after Deactivate: %+v", dz)
			}
			ku := must[*admin.User](t)(e.admin.GetUser(ctx, u.Subject))
			if ku.Enabled || len(e.kc.SessionIDs("bob")) != 0 {
				t.Fatalf("Keycloak user enabled %v, sessions %v", ku.Enabled, e.kc.SessionIDs("bob"))
			}
			if _, err := d.UpsertFromClaims(ctx, oldToken); !errors.Is(err, ErrDeactivated) {
				t.Fatalf("old token: %v", err)
			}
			// The hooks turn it into their refusals.
			if _, err := d.MapUser(ctx, oldToken); !errors.Is(err, cloakroom.ErrRejected) || !errors.Is(err, ErrDeactivated) ||
				err.Error() != "user rejected: this account has been deactivated" {
				t.Fatalf("bearer mapper: %v", err)
			}
			err := d.AfterLogin(ctx, oldToken, oldToken, map[string]string{})
			if !errors.Is(err, cloakroom.ErrRejected) || err.Error() != "login rejected: this account has been deactivated" {
				t.Fatalf("login hook: %v", err)
			}
			// Re-enabled in Keycloak; a new token reactivates.
			if err := e.kc.SetUserEnabled("bob", true); err != nil {
				t.Fatal(err)
			}
			newer := e.claims(t, "bob", keycloaktest.WithIssuedAt(time.Now().Add(2*time.Second)))
			back := must[*User](t)(d.UpsertFromClaims(ctx, newer))
			if !back.Active() || !back.Enabled || back.ID != u.ID {
				t.Fatalf("not reactivated: %+v", back)
			}
		})
	}
}

func TestKeycloakOperations(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			loc := newLocation(t, backend)
			d := loc.open(t, WithAdmin(e.admin))
			alice := must[*User](t)(d.UpsertFromClaims(ctx, e.claims(t, "alice")))

			t.Run("refresh reads Keycloak", func(t *testing.T) {
				if err := e.admin.UpdateUser(ctx, alice.Subject, admin.UserUpdate{FirstName: admin.Ptr("Alicia")}); err != nil {
					t.Fatal(err)
				}
				u := must[*User](t)(d.RefreshFromKeycloak(ctx, alice.Subject))
				if u.FirstName != "Alicia" || u.SyncedAt.IsZero() || !slices.Equal(u.RealmRoles, alice.RealmRoles) {
					t.Fatalf("refreshed %+v", u)
				}
			})
			t.Run("refresh creates a row", func(t *testing.T) {
				id := must[string](t)(e.admin.CreateUser(ctx, admin.NewUser{Username: "carol", Email: "carol@example.com"}))
				u := must[*User](t)(d.RefreshFromKeycloak(ctx, id))
				if u.ID == 0 || u.Username != "carol" || !u.Active() {
					t.Fatalf("created %+v", u)
				}
			})
			t.Run("push", func(t *testing.T) {
				u := must[*User](t)(d.PushToKeycloak(ctx, alice.ID, Changes{Email: admin.Ptr("ALICE@new.example.com"), LastName: admin.Ptr("L.")}))
				ku := must[*admin.User](t)(e.admin.GetUser(ctx, alice.Subject))
				if ku.LastName != "L." || u.LastName != "L." || !strings.EqualFold(u.Email, "alice@new.example.com") || u.Email != ku.Email {
					t.Fatalf("pushed: row %+v, Keycloak %+v", u, ku)
				}
				_, err := d.PushToKeycloak(ctx, alice.ID, Changes{Email: admin.Ptr("bob@example.com")})
				if !errors.Is(err, admin.ErrDuplicateEmail) || !strings.Contains(err.Error(), "push changes of user") {
					t.Fatalf("duplicate email: %v", err)
				}
				off := must[*User](t)(d.PushToKeycloak(ctx, alice.ID, Changes{Enabled: admin.Ptr(false)}))
				if off.Active() || off.Reason != ReasonDisabled {
					t.Fatalf("disabled by push: %+v", off)
				}
				on := must[*User](t)(d.PushToKeycloak(ctx, alice.ID, Changes{Enabled: admin.Ptr(true)}))
				if !on.Active() || !on.Enabled {
					t.Fatalf("enabled by push: %+v", on)
				}
				same := must[*User](t)(d.PushToKeycloak(ctx, alice.ID, Changes{}))
				if same.ID != alice.ID {
					t.Fatal(same)
				}
			})
			t.Run("reset password", func(t *testing.T) {
				if err := d.ResetPassword(ctx, alice.ID, ByEmail); err != nil {
					t.Fatal(err)
				}
				box := e.kc.Outbox()
				if len(box) == 0 || !strings.EqualFold(box[len(box)-1].To, "alice@new.example.com") {
					t.Fatalf("outbox %+v", box)
				}
				if err := d.ResetPassword(ctx, alice.ID, AtNextLogin); err != nil {
					t.Fatal(err)
				}
				ku := must[*admin.User](t)(e.admin.GetUser(ctx, alice.Subject))
				if !slices.Contains(ku.RequiredActions, "UPDATE_PASSWORD") {
					t.Fatalf("required actions %v", ku.RequiredActions)
				}
				if err := d.ResetPassword(ctx, alice.ID, 0); err == nil {
					t.Fatal("unknown method accepted")
				}
			})
			t.Run("end sessions", func(t *testing.T) {
				e.kc.MustToken(t, "alice", keycloaktest.DemoClientID)
				if len(e.kc.SessionIDs("alice")) == 0 {
					t.Fatal("no session")
				}
				if err := d.EndSessions(ctx, alice.ID); err != nil {
					t.Fatal(err)
				}
				if n := len(e.kc.SessionIDs("alice")); n != 0 {
					t.Fatalf("%d sessions left", n)
				}
			})
			t.Run("delete policies", func(t *testing.T) {
				for _, policy := range []DeletePolicy{DeleteInKeycloak, DisableInKeycloak} {
					name := "del-" + policy.String()
					id := must[string](t)(e.admin.CreateUser(ctx, admin.NewUser{Username: name}))
					u := must[*User](t)(d.RefreshFromKeycloak(ctx, id))
					dp := loc.open(t, WithAdmin(e.admin), WithDeletePolicy(policy))
					got := must[*User](t)(dp.Delete(ctx, u.ID))
					if got.Active() || got.Reason != ReasonDeleted {
						t.Fatalf("%s: row %+v", policy, got)
					}
					ku, err := e.admin.GetUser(ctx, id)
					switch policy {
					case DeleteInKeycloak:
						if !errors.Is(err, admin.ErrNotFound) {
							t.Fatalf("still in Keycloak: %v", err)
						}
					case DisableInKeycloak:
						if err != nil || ku.Enabled {
							t.Fatalf("Keycloak user %+v, %v", ku, err)
						}
					}
					// Deleting again is fine: Keycloak has nothing left.
					if _, err := dp.Delete(ctx, u.ID); err != nil {
						t.Fatalf("second delete: %v", err)
					}
				}
			})
			t.Run("refresh of a deleted user deactivates", func(t *testing.T) {
				id := must[string](t)(e.admin.CreateUser(ctx, admin.NewUser{Username: "dave"}))
				u := must[*User](t)(d.RefreshFromKeycloak(ctx, id))
				if err := e.admin.DeleteUser(ctx, id); err != nil {
					t.Fatal(err)
				}
				got := must[*User](t)(d.RefreshFromKeycloak(ctx, id))
				if got.ID != u.ID || got.Active() || got.Reason != ReasonNotInKeycloak {
					t.Fatalf("after refresh: %+v", got)
				}
				_, err := d.RefreshFromKeycloak(ctx, "no-such-user")
				if !errors.Is(err, ErrNotFound) || !errors.Is(err, admin.ErrNotFound) {
					t.Fatalf("unknown everywhere: %v", err)
				}
			})
			t.Run("unknown local id", func(t *testing.T) {
				for name, err := range map[string]error{
					"deactivate": second(d.Deactivate(ctx, 99999)),
					"delete":     second(d.Delete(ctx, 99999)),
					"push":       second(d.PushToKeycloak(ctx, 99999, Changes{})),
					"reset":      d.ResetPassword(ctx, 99999, ByEmail),
					"end":        d.EndSessions(ctx, 99999),
					"get":        second(d.Get(ctx, 99999)),
				} {
					if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "99999") {
						t.Errorf("%s: %v", name, err)
					}
				}
			})
			t.Run("no admin client", func(t *testing.T) {
				plain := loc.open(t)
				for name, err := range map[string]error{
					"refresh":    second(plain.RefreshFromKeycloak(ctx, alice.Subject)),
					"push":       second(plain.PushToKeycloak(ctx, alice.ID, Changes{})),
					"deactivate": second(plain.Deactivate(ctx, alice.ID)),
					"delete":     second(plain.Delete(ctx, alice.ID)),
					"reset":      plain.ResetPassword(ctx, alice.ID, ByEmail),
					"end":        plain.EndSessions(ctx, alice.ID),
					"sync":       second(plain.Sync(ctx, SyncOptions{})),
				} {
					if !errors.Is(err, ErrNoAdmin) {
						t.Errorf("%s: %v", name, err)
					}
				}
			})
		})
	}
}

func second[T any](_ T, err error) error { return err }

// Admin errors keep their type and role through the directory's wrapping.
func TestForbiddenAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKC(t)
	weak, err := admin.New(admin.Config{Realm: e.realm, Client: cloakroom.ClientCredentials{ClientID: "nobody", ClientSecret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	d := newLocation(t, "sqlite").open(t, WithAdmin(weak))
	u := must[*User](t)(d.UpsertFromClaims(ctx, e.claims(t, "alice")))
	_, err = d.Deactivate(ctx, u.ID)
	var ae *admin.APIError
	if !errors.Is(err, admin.ErrForbidden) || !errors.As(err, &ae) || ae.Role != "manage-users" {
		t.Fatalf("deactivate without roles: %v", err)
	}
	if got := must[*User](t)(d.Get(ctx, u.ID)); !got.Active() {
		t.Fatal("row deactivated although Keycloak refused")
	}
	if _, err := d.Sync(ctx, SyncOptions{}); !errors.Is(err, admin.ErrForbidden) {
		t.Fatalf("sync without roles: %v", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := newLocation(t, backend).open(t)
			for i, p := range []string{
				`{"sub":"a","preferred_username":"ann","email":"Ann@Example.com","given_name":"Ann","family_name":"O_Neil"}`,
				`{"sub":"b","preferred_username":"bob","email":"bob@example.com","given_name":"Bob","family_name":"100%"}`,
				`{"sub":"c","preferred_username":"cat","email":"cat@other.org","given_name":"Cathy","family_name":"Ann"}`,
			} {
				if _, err := d.UpsertFromClaims(ctx, mustClaims(t, p)); err != nil {
					t.Fatal(i, err)
				}
			}
			c := must[*User](t)(d.BySubject(ctx, "c"))
			if _, err := d.markDeactivated(ctx, c.ID, ReasonDeleted, "test"); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name string
				q    Query
				want []string
			}{
				{"all", Query{}, []string{"a", "b", "c"}},
				{"search any field, case-insensitive", Query{Search: "ANN"}, []string{"a", "c"}},
				{"search escapes LIKE wildcards", Query{Search: "o_n"}, []string{"a"}},
				{"percent literal", Query{Search: "100%"}, []string{"b"}},
				{"username exact", Query{Username: "bob"}, []string{"b"}},
				{"email case-insensitive", Query{Email: "ann@example.COM"}, []string{"a"}},
				{"active", Query{Status: ActiveOnly}, []string{"a", "b"}},
				{"deactivated", Query{Status: DeactivatedOnly}, []string{"c"}},
				{"page", Query{Limit: 2}, []string{"a", "b"}},
				{"next page", Query{AfterID: must[*User](t)(d.BySubject(ctx, "b")).ID}, []string{"c"}},
				{"combined", Query{Search: "example", Status: ActiveOnly, Limit: 1}, []string{"a"}},
			}
			for _, tt := range tests {
				got := must[[]*User](t)(d.List(ctx, tt.q))
				var subs []string
				for _, u := range got {
					subs = append(subs, u.Subject)
				}
				if !slices.Equal(subs, tt.want) {
					t.Errorf("%s: %v, want %v", tt.name, subs, tt.want)
				}
			}
		})
	}
}

// A corrupt JSON column is an error naming it, not a panic or a guess.
func TestCorruptColumn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newLocation(t, "sqlite").open(t)
	u := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, `{"sub":"s"}`)))
	if _, err := d.w.ExecContext(ctx, `UPDATE `+UsersTable+` SET extra = '[1,2' WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, u.ID); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("corrupt extra: %v", err)
	}
}

// The hooks plug into login and bearer in one line.
func TestHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKC(t)
	d := newLocation(t, "sqlite").open(t, WithIssuer(e.kc.Issuer()))

	// login.Config.AfterLogin: the ID token's profile, the access token's roles.
	ev := &login.LoginEvent{
		IDClaims:     e.claims(t, "alice", keycloaktest.WithKind(keycloaktest.IDToken)),
		AccessClaims: e.claims(t, "alice"),
	}
	var cfg login.Config
	cfg.AfterLogin = func(ctx context.Context, e *login.LoginEvent) error {
		return d.AfterLogin(ctx, e.IDClaims, e.AccessClaims, e.Values)
	}
	ev.Values = map[string]string{}
	if err := cfg.AfterLogin(ctx, ev); err != nil {
		t.Fatal(err)
	}
	u := must[*User](t)(d.BySubject(ctx, ev.IDClaims.Subject()))
	if ev.Values[SessionUserID] != itoa64(u.ID) || !slices.Contains(u.RealmRoles, "admin") || u.Email != "alice@example.com" {
		t.Fatalf("login stored %+v, values %v", u, ev.Values)
	}

	// bearer.WithUserMapper over a real request.
	v, err := e.realm.NewVerifier(cloakroom.VerifierConfig{ClientID: keycloaktest.DemoClientID})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v, bearer.WithUserMapper(func(ctx context.Context, p *bearer.Principal) (any, error) { return d.MapUser(ctx, p.Claims) }))
	if err != nil {
		t.Fatal(err)
	}
	var seen *User
	h := auth.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = bearer.User[*User](r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+e.kc.MustToken(t, "bob", keycloaktest.DemoClientID))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || seen == nil || seen.Username != "bob" || seen.ID == u.ID {
		t.Fatalf("bearer: %d %+v", rec.Code, seen)
	}
}

func itoa64(i int64) string { return strconv.FormatInt(i, 10) }

func pgURLOrEmpty() string { return os.Getenv("CLOAKROOM_TEST_POSTGRES") }
