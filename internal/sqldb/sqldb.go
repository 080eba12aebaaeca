// Package sqldb is the SQL plumbing that session/sqlitestore and directory
// share: opening a SQLite file (permissions, WAL and busy-timeout pragmas,
// one writer connection and a pool of readers) and versioned schema
// migrations, recorded per component in the cloakroom_schema_migrations
// table and applied in one transaction under a lock (SQLite's write lock,
// or PostgreSQL's advisory lock), so processes opening the same database
// together migrate it once.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// PrepareFile makes path absolute and creates its parent directories
// (0700) and the file (0600) before SQLite does, so that permissions are
// right and failures name the path and the fix. pkg starts the messages
// ("sqlitestore"), what names the file in them ("session database").
func PrepareFile(path, pkg, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s: no database path given", pkg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s: database path %q: %w", pkg, path, err)
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("%s: cannot create the directory %s for the %s: %w (create it, or make its parent writable by this process, uid %d)", pkg, dir, what, err, os.Geteuid())
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %s directory %s: %w", pkg, what, dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s: %s is not a directory: choose another path for the %s", pkg, dir, what)
	}
	fi, statErr := os.Stat(abs)
	existed := statErr == nil
	if existed && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file: choose another path for the %s", pkg, abs, what)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		switch {
		case existed && errors.Is(err, os.ErrPermission):
			return "", fmt.Errorf("%s: the %s %s is not writable by this process (uid %d): make it writable (chmod u+w, chown, or chattr -i) or choose another path: %w", pkg, what, abs, os.Geteuid(), err)
		case errors.Is(err, os.ErrPermission):
			return "", fmt.Errorf("%s: cannot create the %s %s: the directory %s does not allow this process (uid %d) to create files; make it writable or choose another path: %w", pkg, what, abs, dir, os.Geteuid(), err)
		default:
			return "", fmt.Errorf("%s: cannot open the %s %s: %w (check that the file system is mounted read-write and has space)", pkg, what, abs, err)
		}
	}
	return abs, f.Close()
}

// OpenSQLite opens the SQLite file at abs (see PrepareFile) in WAL mode:
// w has one connection, so that this process's writes queue in
// database/sql rather than fight over SQLite's lock (busy covers other
// processes), and begins IMMEDIATE transactions, which take the write lock
// at BEGIN, so two never deadlock on a lock upgrade; r is a pool of
// readers that run in parallel. Both are closed if the file cannot be
// used.
func OpenSQLite(abs string, busy time.Duration) (w, r *sql.DB, err error) {
	if w, err = sql.Open("sqlite", dsn(abs, busy, true)); err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if r, err = sql.Open("sqlite", dsn(abs, busy, false)); err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := w.PingContext(context.Background()); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, nil, err
	}
	return w, r, nil
}

// dsn is a file: URI (so that any character in the path is escaped) with
// the connection pragmas.
func dsn(abs string, busy time.Duration, writer bool) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // Windows drive letters
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", max(busy, 0).Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if writer {
		q.Set("_txlock", "immediate")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// MigrationsTable records the schema version of each cloakroom component
// kept in a database ("session:TABLE", "directory:cloakroom_users").
const MigrationsTable = "cloakroom_schema_migrations"

// migrationLock is the pg_advisory_xact_lock key every cloakroom component
// takes while migrating ("cloakroom" in ASCII, truncated to 8 bytes).
const migrationLock int64 = 0x636c6f616b726f6f

// Migration brings a schema from Version-1 to Version. Append new ones at
// the end; never edit one that has shipped.
type Migration struct {
	Version int
	What    string
	Stmts   []string
}

// Schema is one component's versioned schema.
type Schema struct {
	Component  string // its key in MigrationsTable
	Name       string // what messages call it, e.g. "table cloakroom_sessions"
	Migrations []Migration
}

// Dialect is what differs between SQLite and PostgreSQL in migrating:
// SQLite or Postgres.
type Dialect interface {
	// MigrationsTable is the quoted name of MigrationsTable.
	MigrationsTable() string
	migrationsTableExists(ctx context.Context, q Querier) (bool, error)
	// lock serialises the migrations of concurrent processes (inside tx).
	lock(ctx context.Context, tx *sql.Tx) error
	createMigrationsTable() string
	// Rebind adapts the ? placeholders of a query.
	Rebind(string) string
	timeArg(time.Time) any
}

// Querier is a *sql.DB or *sql.Tx.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SQLite is the SQLite dialect. Its lock is the writer's IMMEDIATE
// transaction (see OpenSQLite).
type SQLite struct{}

func (SQLite) MigrationsTable() string { return MigrationsTable }
func (SQLite) migrationsTableExists(ctx context.Context, q Querier) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, MigrationsTable).Scan(&n)
	return n > 0, err
}
func (SQLite) lock(context.Context, *sql.Tx) error { return nil }
func (SQLite) createMigrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (
		component  TEXT    NOT NULL PRIMARY KEY,
		version    INTEGER NOT NULL,
		applied_at INTEGER NOT NULL -- Unix milliseconds
	)`
}
func (SQLite) Rebind(q string) string  { return q }
func (SQLite) timeArg(t time.Time) any { return t.UnixMilli() }

// Postgres is the PostgreSQL dialect for the tables of one schema, which
// must exist.
type Postgres struct{ Schema string }

func (p Postgres) MigrationsTable() string {
	return pgx.Identifier{p.Schema, MigrationsTable}.Sanitize()
}
func (p Postgres) migrationsTableExists(ctx context.Context, q Querier) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, p.MigrationsTable()).Scan(&ok)
	return ok, err
}
func (p Postgres) lock(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.Schema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("schema %q does not exist: create it (CREATE SCHEMA %s) or choose another with WithSchema", p.Schema, pgx.Identifier{p.Schema}.Sanitize())
	}
	return nil
}
func (p Postgres) createMigrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS ` + p.MigrationsTable() + ` (
		component  text        NOT NULL PRIMARY KEY,
		version    integer     NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
}
func (Postgres) Rebind(q string) string  { return Rebind(q) }
func (Postgres) timeArg(t time.Time) any { return t }

// Version reads the recorded version of a component (0: none yet).
func Version(ctx context.Context, q Querier, d Dialect, component string) (int, error) {
	ok, err := d.migrationsTableExists(ctx, q)
	if err != nil || !ok {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, d.Rebind(`SELECT version FROM `+d.MigrationsTable()+` WHERE component = ?`), component).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// Migrate brings s to version target (len(s.Migrations) in production;
// tests build older databases with a lower one). When it is current only
// reads run; otherwise one transaction, serialised across processes,
// applies what is missing. A version newer than s knows is refused.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, s Schema, target int) error {
	known := len(s.Migrations)
	newer := func(v int) error {
		return fmt.Errorf("%s has schema version %d, newer than this cloakroom knows (%d): upgrade cloakroom or use another database", s.Name, v, known)
	}
	v, err := Version(ctx, db, d, s.Component)
	if err != nil {
		return err
	}
	if v > known {
		return newer(v)
	}
	if v >= target {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := d.lock(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.createMigrationsTable()); err != nil {
		return err
	}
	// Read again under the lock: another process may have migrated.
	if v, err = Version(ctx, tx, d, s.Component); err != nil {
		return err
	}
	if v > known {
		return newer(v)
	}
	if v >= target {
		return nil
	}
	for _, m := range s.Migrations[v:target] {
		for _, q := range m.Stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.What, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+d.MigrationsTable()+` (component, version, applied_at) VALUES (?, ?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at`),
		s.Component, target, d.timeArg(time.Now().UTC())); err != nil {
		return err
	}
	return tx.Commit()
}

// Rebind turns the ? placeholders of q into $1, $2, ... (for queries that
// hold no ? in literals).
func Rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
