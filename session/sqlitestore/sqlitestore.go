// Package sqlitestore is the embedded session.Store: every session lives in
// one SQLite file (modernc.org/sqlite, pure Go, no cgo), in WAL mode so that
// requests read while another one writes.
//
// The file is created with mode 0600 (and missing parent directories with
// 0700): it holds sealed tokens. Expired sessions are never returned and are
// removed by a background sweep (every minute by default), so no cron job is
// needed. Several Store values, in one process or in several, may share the
// file; writes are serialised by SQLite's lock and a busy timeout.
//
// MarkOnce marks share the session table under keys starting with "once:"
// (session.Manager's keys never hold a colon), with no subject or sid and
// an empty payload, so the sweep removes them once expired; a Load of the
// key given to MarkOnce never finds them.
//
// The schema is versioned per component in the cloakroom_schema_migrations
// table of the same file, so later versions migrate older files in place when
// they open them.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/sessionstore"
	"github.com/cloakroom/cloakroom/internal/sqldb"
	"github.com/cloakroom/cloakroom/internal/storeurl"
	"github.com/cloakroom/cloakroom/session"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Linking this package in lets the gateway open its stores by URL.
func init() {
	storeurl.Register(storeurl.SQLite, func(_ context.Context, path string) (session.Store, error) { return storeurl.Opened(Open(path)) })
}

// DefaultTable is the table sessions are kept in unless WithTable says
// otherwise.
const DefaultTable = "cloakroom_sessions"

// Option configures Open.
type Option func(*config)

type config struct {
	table       string
	busyTimeout time.Duration
	sweepEvery  time.Duration
	logger      *slog.Logger
}

// WithTable sets the table name (default DefaultTable). It must be an SQL
// identifier: letters, digits and underscores, not starting with a digit, at
// most 48 characters.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithBusyTimeout sets how long a write waits for another connection's
// write lock before failing (default 5s).
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithSweepInterval sets how often expired sessions are deleted from the
// file (default one minute). Zero or a negative value turns the background
// sweep off; expired sessions are still never returned.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.sweepEvery = d } }

// WithLogger sets where failures of the background sweep are reported
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Store is a session.Store kept in a SQLite file. It is safe for concurrent
// use. Close stops its sweeper and closes the file.
type Store struct {
	path  string
	table string // quoted identifier
	w     *sql.DB
	r     *sql.DB
	now   func() time.Time
	log   *slog.Logger
	busy  time.Duration

	qLoad, qCreate, qUpdate, qDelete, qDeleteBySID, qDeleteBySubject, qSweep, qMarkOnce string
	// The statements of every request, prepared once: SQLite compiles a
	// statement given as text on every execution (~150 µs of CPU here
	// for a Load).
	load, create, update *sql.Stmt

	ctx       context.Context // cancelled by Close: stops the sweeper
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ session.Store = (*Store)(nil)

	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)
)

// Open opens (or creates) the session database at path and brings its
// schema up to date.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{table: DefaultTable, busyTimeout: 5 * time.Second, sweepEvery: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if !identRE.MatchString(cfg.table) {
		return nil, fmt.Errorf("sqlitestore: table name %q is not allowed: use letters, digits and underscores (not starting with a digit), at most 48 characters", cfg.table)
	}
	if cfg.busyTimeout < 0 {
		cfg.busyTimeout = 0
	}
	abs, err := sqldb.PrepareFile(path, "sqlitestore", "session database")
	if err != nil {
		return nil, err
	}

	s := &Store{
		path:  abs,
		table: `"` + cfg.table + `"`,
		now:   time.Now,
		log:   cfg.logger,
		busy:  cfg.busyTimeout,
		done:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.buildQueries()
	if s.w, s.r, err = sqldb.OpenSQLite(abs, cfg.busyTimeout); err != nil {
		s.cancel()
		return nil, s.wrap("open", err)
	}
	if err := migrate(context.Background(), s.w, cfg.table, len(migrations)); err != nil {
		s.cancel()
		_ = s.closeDBs()
		return nil, s.wrap("migrate the schema of", err)
	}

	if err := s.prepare(context.Background()); err != nil {
		s.cancel()
		_ = s.closeDBs()
		return nil, s.wrap("prepare the statements of", err)
	}
	if cfg.sweepEvery > 0 {
		go s.sweepLoop(cfg.sweepEvery)
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) buildQueries() {
	t := s.table
	const cols = `"key", subject, sid, expires_at, version, payload`
	s.qLoad = `SELECT subject, sid, expires_at, version, payload FROM ` + t + ` WHERE "key" = ? AND expires_at > ?`
	s.qCreate = `INSERT INTO ` + t + ` (` + cols + `) VALUES (?, ?, ?, ?, 1, ?) ` +
		`ON CONFLICT ("key") DO UPDATE SET subject = excluded.subject, sid = excluded.sid, ` +
		`expires_at = excluded.expires_at, version = 1, payload = excluded.payload WHERE expires_at <= ?`
	s.qUpdate = `UPDATE ` + t + ` SET subject = ?, sid = ?, expires_at = ?, version = version + 1, payload = ? ` +
		`WHERE "key" = ? AND version = ? AND expires_at > ?`
	s.qDelete = `DELETE FROM ` + t + ` WHERE "key" = ?`
	s.qDeleteBySID = `DELETE FROM ` + t + ` WHERE sid = ? RETURNING "key", expires_at`
	s.qDeleteBySubject = `DELETE FROM ` + t + ` WHERE subject = ? RETURNING "key", expires_at`
	s.qSweep = `DELETE FROM ` + t + ` WHERE rowid IN (SELECT rowid FROM ` + t + ` WHERE expires_at <= ? LIMIT ?)`
	s.qMarkOnce = `INSERT INTO ` + t + ` (` + cols + `) VALUES (?, '', '', ?, 1, x'') ` +
		`ON CONFLICT ("key") DO UPDATE SET subject = '', sid = '', expires_at = excluded.expires_at, version = 1, payload = x'' ` +
		`WHERE expires_at <= ?`
}

// prepare compiles the statements of Load and Save once (database/sql
// prepares them again on each new connection by itself).
func (s *Store) prepare(ctx context.Context) (err error) {
	if s.load, err = s.r.PrepareContext(ctx, s.qLoad); err != nil {
		return err
	}
	if s.create, err = s.w.PrepareContext(ctx, s.qCreate); err != nil {
		return err
	}
	s.update, err = s.w.PrepareContext(ctx, s.qUpdate)
	return err
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &session.Record{Key: key}
	var exp int64
	err := s.load.QueryRowContext(ctx, key, s.now().UnixMilli()).Scan(&r.Subject, &r.SID, &exp, &r.Version, &r.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("load from", err)
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	r.ExpiresAt = time.UnixMilli(exp)
	return r, nil
}

// Save implements session.Store.
func (s *Store) Save(ctx context.Context, r *session.Record) error {
	payload, err := sessionstore.BeginSave(ctx, "sqlitestore", r)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	exp := r.ExpiresAt.UnixMilli()
	var res sql.Result
	if r.Version == 0 {
		res, err = s.create.ExecContext(ctx, r.Key, r.Subject, r.SID, exp, payload, now)
	} else {
		res, err = s.update.ExecContext(ctx, r.Subject, r.SID, exp, payload, r.Key, r.Version, now)
	}
	if err != nil {
		return s.wrap("save to", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap("save to", err)
	}
	return sessionstore.EndSave(r, n)
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, s.qDelete, key); err != nil {
		return s.wrap("delete from", err)
	}
	return nil
}

// DeleteBySID implements session.Store. The keys returned are those of the
// live sessions removed; expired ones are removed too but not reported.
func (s *Store) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	return s.deleteReturning(ctx, s.qDeleteBySID, sid)
}

// DeleteBySubject implements session.Store, like DeleteBySID.
func (s *Store) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	return s.deleteReturning(ctx, s.qDeleteBySubject, subject)
}

func (s *Store) deleteReturning(ctx context.Context, q, v string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if v == "" {
		return nil, nil
	}
	now := s.now().UnixMilli()
	rows, err := s.w.QueryContext(ctx, q, v)
	if err != nil {
		return nil, s.wrap("delete from", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		var exp int64
		if err := rows.Scan(&k, &exp); err != nil {
			return nil, s.wrap("delete from", err)
		}
		if exp > now {
			keys = append(keys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("delete from", err)
	}
	if err := rows.Close(); err != nil {
		return nil, s.wrap("delete from", err)
	}
	return keys, nil
}

// MarkOnce implements session.Store: one upsert that succeeds only when no
// live mark exists, serialised by SQLite's write lock.
func (s *Store) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := sessionstore.BeginMarkOnce(ctx, "sqlitestore", key); err != nil {
		return false, err
	}
	res, err := s.w.ExecContext(ctx, s.qMarkOnce, "once:"+key, until.UnixMilli(), s.now().UnixMilli())
	if err != nil {
		return false, s.wrap("mark once in", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.wrap("mark once in", err)
	}
	return n == 1, nil
}

const sweepBatch = 500

// Sweep deletes expired sessions now and returns how many it removed. The
// background sweeper calls it; it is exported for tools and tests.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var total int64
	now := s.now().UnixMilli()
	for {
		// Small batches keep each write transaction (and the lock) short.
		res, err := s.w.ExecContext(ctx, s.qSweep, now, sweepBatch)
		if err != nil {
			return total, s.wrap("sweep expired sessions from", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.wrap("sweep expired sessions from", err)
		}
		total += n
		if n < sweepBatch {
			return total, nil
		}
	}
}

func (s *Store) sweepLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("sqlitestore: sweeping expired sessions failed", "error", err)
			}
		}
	}
}

// Close stops the sweeper and closes the database. It is safe to call more
// than once; the Store must not be used afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return s.wrap("close", err)
	}
	return nil
}

// wrap turns a driver error into one that names the operation, the file and,
// for the failures an operator can fix, what to do. It never includes
// record contents.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlitestore: %s %s: %w", op, s.path, err)
	}
	if hint := s.hint(err); hint != "" {
		return fmt.Errorf("sqlitestore: %s %s: %s: %w", op, s.path, hint, err)
	}
	return fmt.Errorf("sqlitestore: %s %s: %w", op, s.path, err)
}

func (s *Store) hint(err error) string {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return ""
	}
	dir := filepath.Dir(s.path)
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_READONLY:
		return fmt.Sprintf("the database is read-only for this process (uid %d): make the file, its -wal and -shm files and the directory %s writable, and check the file system is mounted read-write", os.Geteuid(), dir)
	case sqlite3.SQLITE_CANTOPEN:
		return fmt.Sprintf("SQLite cannot open the file: check that the directory %s exists and is writable by this process (uid %d); SQLite creates -wal and -shm files next to the database", dir, os.Geteuid())
	case sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		return fmt.Sprintf("access denied: make the file and the directory %s writable by this process (uid %d)", dir, os.Geteuid())
	case sqlite3.SQLITE_FULL:
		return "the disk (or the database's size limit) is full: free space on that file system; the failed write changed nothing"
	case sqlite3.SQLITE_IOERR:
		return "I/O error: check the disk and the file system; the failed write changed nothing"
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return "the file is not a SQLite database or is damaged: restore it from a backup or point cloakroom at another path"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Sprintf("the database stayed locked longer than the busy timeout (%s): another process holds a long transaction on it; raise WithBusyTimeout or find that process", s.busy)
	}
	return ""
}
