package directory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

const testSecret = "directory-test-secret"

// backends lists the databases the tests run on: SQLite always,
// PostgreSQL when CLOAKROOM_TEST_POSTGRES is set.
func backends() []string {
	return []string{"sqlite", "postgres"}
}

// pgURL returns the test database URL or skips.
func pgURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CLOAKROOM_TEST_POSTGRES")
	if u == "" {
		t.Skip("set CLOAKROOM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL directory tests")
	}
	return u
}

// pgExec runs one statement on a connection of its own.
func pgExec(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL at CLOAKROOM_TEST_POSTGRES does not answer: %v (start it: see ../shared/docs/services.md)", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// location is where a test's directory lives: a SQLite file or a fresh
// PostgreSQL schema (dropped when the test ends).
type location struct {
	backend string
	path    string // sqlite
	url     string // postgres
	schema  string
}

func newLocation(t testing.TB, backend string) location {
	t.Helper()
	if backend == "sqlite" {
		return location{backend: backend, path: filepath.Join(t.TempDir(), "users.db")}
	}
	url := pgURL(t)
	schema := "cloakroom_dir_test_" + randomHex(6)
	pgExec(t, url, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { pgExec(t, url, `DROP SCHEMA `+schema+` CASCADE`) })
	return location{backend: backend, url: url, schema: schema}
}

// open opens a Directory at loc, closed when the test ends.
func (loc location) open(t testing.TB, opts ...Option) *Directory {
	t.Helper()
	d, err := loc.tryOpen(opts...)
	if err != nil {
		t.Fatalf("open %s directory: %v", loc.backend, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (loc location) tryOpen(opts ...Option) (*Directory, error) {
	if loc.backend == "sqlite" {
		return OpenSQLite(loc.path, opts...)
	}
	return OpenPostgres(context.Background(), loc.url, append([]Option{WithSchema(loc.schema)}, opts...)...)
}

// kcEnv is a keycloaktest server with the demo realm and an admin client
// of its "cloakroom" service account (manage-users, view-users, ...).
type kcEnv struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	realm *cloakroom.Realm
	admin *admin.Client
}

func newKC(t testing.TB) kcEnv {
	t.Helper()
	cfg := keycloaktest.DemoRealm(testSecret)
	cfg.Clients = append(cfg.Clients, keycloaktest.ClientConfig{ClientID: "nobody", Secret: testSecret, ServiceAccounts: true})
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg))
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := admin.New(admin.Config{
		Realm:          realm,
		Client:         cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: testSecret},
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return kcEnv{srv: srv, kc: srv.Realm("demo"), realm: realm, admin: ac}
}

// claims mints a token of kind for username and returns its claims
// (decoded without verification: the tests trust their own server).
func (e kcEnv) claims(t testing.TB, username string, opts ...keycloaktest.TokenOption) *cloakroom.Claims {
	t.Helper()
	tok := e.kc.MustToken(t, username, keycloaktest.DemoClientID, opts...)
	return parseToken(t, tok)
}

func parseToken(t testing.TB, tok string) *cloakroom.Claims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloakroom.ParseClaims(payload)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// addUsers creates n users user00000 ... in the realm.
func (e kcEnv) addUsers(t testing.TB, prefix string, n int) {
	t.Helper()
	for i := range n {
		name := prefix + pad(i)
		if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: name, Email: name + "@example.com", FirstName: "First" + pad(i), LastName: "Last"}); err != nil {
			t.Fatal(err)
		}
	}
}

func pad(i int) string { return fmt.Sprintf("%05d", i) }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
