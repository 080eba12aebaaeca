package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to read the PostgreSQL tables

	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/directory"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// The crash tests sync a realm of crashUsers users (plus alice and bob)
// with `cloakroom users sync`, run as a real process, SIGKILL it at chosen
// moments and check that --resume leaves the same table as one clean run.
const (
	crashUsers = 10000
	crashTotal = crashUsers + 2 // with alice and bob
	// Small batches: a run commits about 200 of them, so there are
	// moments to kill it at (a clean run takes about 2 s). Pages of the
	// default size: keycloaktest sorts the realm's users for every page,
	// which is slow under -race.
	crashPage  = 500
	crashBatch = 50
)

// TestUsersSyncCrash: `kill -9` at several moments of `users sync` (after
// the first committed batch, in the middle, near the end, while checking
// unseen rows, and again during the resumed run), then --resume, leaves
// the users table equal to a clean uninterrupted sync, also when users
// were added, deleted, renamed or disabled in Keycloak between the crash
// and the resumption. SQLite always; PostgreSQL with CLOAKROOM_TEST_POSTGRES.
func TestUsersSyncCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the cloakroom binary and syncs 10,000 users several times")
	}
	t.Parallel()
	bin := buildCloakroom(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			if backend == "postgres" && os.Getenv("CLOAKROOM_TEST_POSTGRES") == "" {
				t.Skip("CLOAKROOM_TEST_POSTGRES is unset: set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the crash tests against PostgreSQL")
			}
			t.Run("same state", func(t *testing.T) {
				t.Parallel()
				crashSameState(t, newCrashEnv(t, bin, backend))
			})
			t.Run("changed between crash and resume", func(t *testing.T) {
				t.Parallel()
				crashChanged(t, newCrashEnv(t, bin, backend))
			})
			t.Run("killed while verifying", func(t *testing.T) {
				t.Parallel()
				crashInVerify(t, newCrashEnv(t, bin, backend))
			})
		})
	}
}

// Killed after its first batch, killed again in the middle of the resumed
// run, and again near the end, then resumed to completion: the table and
// the counts of the run are those of one clean run.
func crashSameState(t *testing.T, e *crashEnv) {
	ref := e.newDB(t, "reference")
	refOut := e.sync(t, ref)

	db := e.newDB(t, "crashed")
	e.killAt(t, db, false, "after the first committed batch", func(p crashProgress) bool { return p.done >= crashBatch })
	e.killAt(t, db, true, "in the middle of the first resumed run", func(p crashProgress) bool { return p.done >= crashTotal/2 })
	e.killAt(t, db, true, "near the end of the listing", func(p crashProgress) bool {
		return p.cp.Phase == "users" && !p.cp.Wrapped && p.cp.First >= crashTotal*9/10
	})
	out := e.sync(t, db, "--resume")

	if !strings.Contains(out, "(resumed; counts of the whole run): 10002 Keycloak users") {
		t.Errorf("last resumed run:\n%s", out)
	}
	if got, want := countsLine(t, out), countsLine(t, refOut); got != want {
		t.Errorf("counts of the crashed and resumed run: %q\nclean run: %q", got, want)
	}
	sameTables(t, e.table(t, ref), e.table(t, db), true, 0)
	e.wantDone(t, db)
}

// Killed in the middle; meanwhile a user is added (sorting before every
// other), one the run already wrote is deleted, one renamed (its position
// in Keycloak's username order moves past the checkpoint), one gets a new
// first name and one is disabled. After --resume the table equals a clean
// sync of the new state (plus the deleted user's row, deactivated: rows
// are never deleted).
func crashChanged(t *testing.T, e *crashEnv) {
	db := e.newDB(t, "crashed")
	e.killAt(t, db, false, "in the middle", func(p crashProgress) bool { return p.done >= crashTotal/2 })
	cp := e.checkpoint(t, db)
	if cp.First < 2000 {
		t.Fatalf("killed at offset %d: the changes below need the first 2000 users written", cp.First)
	}
	e.change(t)
	e.sync(t, db, "--resume")

	ref := e.newDB(t, "reference")
	e.sync(t, ref)
	sameTables(t, e.table(t, ref), e.table(t, db), false, 1) // user01000
	e.wantDone(t, db)
}

// A table synced once; 1000 users are deleted in Keycloak; the next run
// is killed while it checks the rows the listing did not see (after the
// first of those checks committed); users change; --resume.
func crashInVerify(t *testing.T, e *crashEnv) {
	db := e.newDB(t, "crashed")
	e.sync(t, db)
	for i := 0; i < crashUsers; i += 10 {
		if i == 500 || i == 1000 || i == 300 || i == 700 {
			continue // changed below
		}
		if err := e.kc.DeleteUser(crashName(i)); err != nil {
			t.Fatal(err)
		}
	}
	e.killAt(t, db, false, "after the first batch of the verify phase", func(p crashProgress) bool {
		return p.cp.Phase == "verify" && p.cp.AfterID > 0
	})
	e.change(t)
	e.sync(t, db, "--resume")

	ref := e.newDB(t, "reference")
	e.sync(t, ref)
	sameTables(t, e.table(t, ref), e.table(t, db), false, crashUsers/10-4+1) // the 996 above and user01000
	e.wantDone(t, db)
}

// buildCloakroom builds the cloakroom binary (this package) into a
// temporary directory.
func buildCloakroom(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "cloakroom")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// crashEnv is a keycloaktest realm of crashTotal users, the built binary
// and a database backend.
type crashEnv struct {
	bin, backend string
	f            usersFixture
	kc           *keycloaktest.Realm
}

func crashName(i int) string { return fmt.Sprintf("user%05d", i) }

func newCrashEnv(t *testing.T, bin, backend string) *crashEnv {
	t.Helper()
	f := newUsersFixture(t)
	for i := range crashUsers {
		// Varied profiles: some verified, some without a name, some
		// disabled (their rows are created deactivated).
		u := keycloaktest.UserConfig{Username: crashName(i), Email: crashName(i) + "@example.com",
			FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i%7),
			EmailVerified: i%3 == 0, Disabled: i%97 == 5}
		if i%11 == 0 {
			u.FirstName, u.LastName = "", ""
		}
		if _, err := f.kc.AddUser(u); err != nil {
			t.Fatal(err)
		}
	}
	return &crashEnv{bin: bin, backend: backend, f: f, kc: f.kc}
}

// change applies the changes of the "changed" cases to Keycloak: every
// user it touches is among the first 2000 in username order, which the
// killed run has written.
func (e *crashEnv) change(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: "a-newcomer", Email: "newcomer@example.com", FirstName: "New", LastName: "Comer"}); err != nil {
		t.Fatal(err)
	}
	if err := e.kc.DeleteUser(crashName(1000)); err != nil {
		t.Fatal(err)
	}
	// A rename: keycloaktest's admin API keeps usernames (as Keycloak does
	// unless the realm allows editing them), so the user is put back under
	// the same id (the token sub) with a new name, which sorts last.
	id, ok := e.kc.UserID(crashName(500))
	if !ok {
		t.Fatal("no user00500")
	}
	if err := e.kc.DeleteUser(crashName(500)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kc.AddUser(keycloaktest.UserConfig{ID: id, Username: "zz-renamed-00500", Email: "renamed@example.com",
		FirstName: "Re", LastName: "Named", EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	id, _ = e.kc.UserID(crashName(300))
	if err := e.f.admin.UpdateUser(ctx, id, admin.UserUpdate{FirstName: admin.Ptr("Renamed"), LastName: admin.Ptr("Person")}); err != nil {
		t.Fatal(err)
	}
	if err := e.kc.SetUserEnabled(crashName(700), false); err != nil {
		t.Fatal(err)
	}
}

// crashDB is one database the binary syncs into.
type crashDB struct {
	name string
	arg  string // --db
	// driver and dsn open it for the test's own reads.
	driver, dsn string
	path        string // sqlite: the file, which the binary creates
}

func (e *crashEnv) newDB(t *testing.T, name string) crashDB {
	t.Helper()
	if e.backend == "sqlite" {
		path := filepath.Join(t.TempDir(), name+".db")
		return crashDB{name: name, arg: "sqlite:" + path, driver: "sqlite", dsn: "file:" + path + "?_pragma=busy_timeout(10000)", path: path}
	}
	u := os.Getenv("CLOAKROOM_TEST_POSTGRES")
	u += pgSearchPath(t, u)
	return crashDB{name: name, arg: u, driver: "pgx", dsn: u}
}

func (db crashDB) open(t *testing.T) *sql.DB {
	t.Helper()
	c, err := sql.Open(db.driver, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// command is `cloakroom users sync` into db.
func (e *crashEnv) command(ctx context.Context, db crashDB, extra ...string) *exec.Cmd {
	args := append([]string{"users", "sync", "--db", db.arg,
		"--page-size", fmt.Sprint(crashPage), "--batch-size", fmt.Sprint(crashBatch)}, extra...)
	cmd := exec.CommandContext(ctx, e.bin, append(args, e.f.conn()...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOAKROOM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// sync runs the command to completion and returns its output.
func (e *crashEnv) sync(t *testing.T, db crashDB, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.command(ctx, db, extra...).CombinedOutput()
	if err != nil {
		t.Fatalf("sync %s %v: %v\n%s", db.name, extra, err, out)
	}
	t.Logf("sync %s %v: %v", db.name, extra, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// crashCheckpoint is the part of the stored checkpoint the test watches.
type crashCheckpoint struct {
	Run     string `json:"run"`
	Phase   string `json:"phase"`
	Pass    int    `json:"pass"`
	First   int    `json:"first"`
	Start   int    `json:"start"`
	Wrapped bool   `json:"wrapped"`
	AfterID int64  `json:"after_id"`
	Counts  struct {
		Seen int `json:"seen"`
	} `json:"counts"`
}

// crashProgress is what a kill condition looks at.
type crashProgress struct {
	cp crashCheckpoint
	// done is how many users this process has listed and committed.
	done int
}

// readCheckpoint returns the stored checkpoint; ok is false when there is
// none yet (or the tables do not exist yet).
func readCheckpoint(c *sql.DB) (crashCheckpoint, bool) {
	var cp crashCheckpoint
	var data string
	err := c.QueryRow(`SELECT CAST(checkpoint AS TEXT) FROM ` + directory.SyncTable + ` WHERE name = 'users'`).Scan(&data)
	if err != nil {
		return cp, false
	}
	return cp, json.Unmarshal([]byte(data), &cp) == nil
}

func (e *crashEnv) checkpoint(t *testing.T, db crashDB) crashCheckpoint {
	t.Helper()
	cp, ok := readCheckpoint(db.open(t))
	if !ok {
		t.Fatalf("%s: no checkpoint", db.name)
	}
	return cp
}

// killAt runs the command and SIGKILLs it as soon as the checkpoint it
// commits satisfies at (polled every millisecond or so). The process must
// die by the signal before its run is done.
func (e *crashEnv) killAt(t *testing.T, db crashDB, resume bool, what string, at func(crashProgress) bool) {
	t.Helper()
	var before crashCheckpoint
	var watch *sql.DB
	if db.path == "" || fileExists(db.path) {
		watch = db.open(t)
		before, _ = readCheckpoint(watch)
	}
	var extra []string
	if resume {
		extra = append(extra, "--resume")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, db, extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// base is the listing offset this process starts from.
	base := 0
	if resume && before.Phase == "users" {
		base = before.First
	}
	var last crashCheckpoint
	for {
		select {
		case err := <-exited:
			t.Fatalf("%s: the run ended (%v) before the kill point %q; last checkpoint %+v\n%s", db.name, err, what, last, out.String())
		case <-time.After(5 * time.Millisecond):
		}
		if watch == nil {
			if !fileExists(db.path) {
				continue
			}
			watch = db.open(t)
		}
		cp, ok := readCheckpoint(watch)
		if !ok || cp == before {
			continue
		}
		last = cp
		p := crashProgress{cp: cp, done: cp.First - base}
		if cp.Wrapped {
			p.done = crashTotal - base + cp.First
		}
		if cp.Phase != "users" {
			p.done = crashTotal - base
		}
		if at(p) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("%s: the process was not killed (%v); kill point %q\n%s", db.name, err, what, out.String())
	}
	after := e.checkpoint(t, db)
	if after.Phase == "done" {
		t.Fatalf("%s: killed %q after the run was done", db.name, what)
	}
	t.Logf("%s: killed %s after %v: checkpoint %+v (watched %+v)", db.name, what, time.Since(start).Round(time.Millisecond), after, last)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// wantDone checks that the last run finished.
func (e *crashEnv) wantDone(t *testing.T, db crashDB) {
	t.Helper()
	if cp := e.checkpoint(t, db); cp.Phase != "done" {
		t.Errorf("%s: checkpoint %+v, want phase done", db.name, cp)
	}
}

var countsRE = regexp.MustCompile(`(?m)^  created \d+, updated \d+, unchanged \d+, reactivated \d+, deactivated \d+, errors \d+$`)

func countsLine(t *testing.T, out string) string {
	t.Helper()
	m := countsRE.FindString(out)
	if m == "" {
		t.Fatalf("no counts in:\n%s", out)
	}
	return m
}

// crashRow is one row of the users table: every column of the user's data
// as text. Left out: id (sameTables compares the order of the ids instead:
// PostgreSQL's identity hands out values to inserts that a kill rolls
// back, so values differ after a crash), created_at, updated_at, synced_at
// and the time of deactivated_at (when this database was written, which
// differs between any two runs; deactivated_at is compared as set or not)
// and sync_run (the random id of the run that last saw the row).
type crashRow struct {
	Sub, Username, Email, FirstName, LastName string
	EmailVerified, Enabled                    string
	RealmRoles, ClientRoles, Extra            string
	LastLogin, Deactivated, Reason            string
}

func (e *crashEnv) table(t *testing.T, db crashDB) []crashRow {
	t.Helper()
	c := db.open(t)
	rows, err := c.Query(`SELECT sub, username, email, first_name, last_name, CAST(email_verified AS TEXT), CAST(enabled AS TEXT),
		CAST(realm_roles AS TEXT), CAST(client_roles AS TEXT), CAST(extra AS TEXT), COALESCE(CAST(last_login AS TEXT), ''),
		CASE WHEN deactivated_at IS NULL THEN 'active' ELSE 'deactivated' END, deactivated_reason
		FROM ` + directory.UsersTable + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []crashRow
	for rows.Next() {
		var r crashRow
		if err := rows.Scan(&r.Sub, &r.Username, &r.Email, &r.FirstName, &r.LastName, &r.EmailVerified, &r.Enabled,
			&r.RealmRoles, &r.ClientRoles, &r.Extra, &r.LastLogin, &r.Deactivated, &r.Reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTables compares the table of a crashed and resumed sync with that of
// a clean sync into a new table. With sameOrder, the rows must also have
// been created in the same order. The resumed table must have gone rows
// more: rows of users Keycloak no longer has, which a clean sync into a
// new table never sees. They must be deactivated: "not found in Keycloak"
// if they were active, else still "disabled in Keycloak".
func sameTables(t *testing.T, clean, resumed []crashRow, sameOrder bool, gone int) {
	t.Helper()
	if len(clean) < crashUsers*8/10 {
		t.Fatalf("the clean sync wrote %d rows", len(clean))
	}
	bySub := make(map[string]crashRow, len(resumed))
	for _, r := range resumed {
		bySub[r.Sub] = r
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, want := range clean {
		got, ok := bySub[want.Sub]
		switch {
		case !ok:
			report("user %s (%s) has no row after the resumed sync", want.Username, want.Sub)
		case got != want:
			report("user %s:\n  resumed %+v\n  clean   %+v", want.Username, got, want)
		}
		delete(bySub, want.Sub)
	}
	for _, r := range bySub {
		wasDisabled := r.Enabled == "0" || r.Enabled == "false"
		if r.Deactivated != "deactivated" || r.Reason != string(directory.ReasonNotInKeycloak) &&
			!(wasDisabled && r.Reason == string(directory.ReasonDisabled)) {
			report("row %+v is not in the clean sync and not deactivated as gone from Keycloak", r)
		}
	}
	if len(bySub) != gone {
		t.Errorf("%d rows of users gone from Keycloak, want %d", len(bySub), gone)
	}
	if sameOrder && bad == 0 {
		if len(clean) != len(resumed) {
			t.Errorf("%d rows, clean sync %d", len(resumed), len(clean))
		}
		subs := func(rows []crashRow) []string {
			out := make([]string, len(rows))
			for i, r := range rows {
				out[i] = r.Sub
			}
			return out
		}
		if !slices.Equal(subs(clean), subs(resumed)) {
			t.Error("the rows were created in another order than by the clean sync")
		}
	}
	if bad > 10 {
		t.Errorf("... %d differences in all", bad)
	}
}
