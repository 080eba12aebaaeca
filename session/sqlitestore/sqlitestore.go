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
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

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

	qLoad, qCreate, qUpdate, qDelete, qDeleteBySID, qDeleteBySubject, qSweep string

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
	if path == "" {
		return nil, errors.New("sqlitestore: no database path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: database path %q: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
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

	// One writer connection: writes from this Store queue in database/sql
	// instead of fighting over SQLite's lock; the busy timeout covers other
	// Stores and processes on the same file. Readers run in parallel (WAL).
	s.w, err = sql.Open("sqlite", dsn(abs, cfg.busyTimeout, true))
	if err != nil {
		return nil, s.wrap("open", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	s.r, err = sql.Open("sqlite", dsn(abs, cfg.busyTimeout, false))
	if err != nil {
		s.cancel()
		_ = s.w.Close()
		return nil, s.wrap("open", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := s.w.PingContext(ctx); err != nil {
		s.cancel()
		_ = s.closeDBs()
		return nil, s.wrap("open", err)
	}
	if err := migrate(ctx, s.w, cfg.table, len(migrations)); err != nil {
		s.cancel()
		_ = s.closeDBs()
		return nil, s.wrap("migrate the schema of", err)
	}

	if cfg.sweepEvery > 0 {
		go s.sweepLoop(cfg.sweepEvery)
	} else {
		close(s.done)
	}
	return s, nil
}

// dsn builds the driver's data source name: a file: URI (so that any
// character in the path is escaped) plus the connection pragmas.
func dsn(abs string, busy time.Duration, writer bool) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // Windows drive letters
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if writer {
		// Transactions (migrations) take the write lock at BEGIN, so two
		// of them never deadlock on a lock upgrade.
		q.Set("_txlock", "immediate")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// prepareFile creates the parent directories (0700) and the file (0600)
// ahead of SQLite so that permissions are right and failures name the path
// and the fix.
func prepareFile(abs string) error {
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sqlitestore: cannot create the directory %s for the session database: %w (create it, or make its parent writable by this process, uid %d)", dir, err, os.Geteuid())
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("sqlitestore: session database directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("sqlitestore: %s is not a directory: choose another path for the session database", dir)
	}
	fi, statErr := os.Stat(abs)
	existed := statErr == nil
	if existed && !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlitestore: %s is not a regular file: choose another path for the session database", abs)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		switch {
		case existed && errors.Is(err, os.ErrPermission):
			return fmt.Errorf("sqlitestore: the session database %s is not writable by this process (uid %d): make it writable (chmod u+w, chown, or chattr -i) or choose another path: %w", abs, os.Geteuid(), err)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("sqlitestore: cannot create the session database %s: the directory %s does not allow this process (uid %d) to create files; make it writable or choose another path: %w", abs, dir, os.Geteuid(), err)
		default:
			return fmt.Errorf("sqlitestore: cannot open the session database %s: %w (check that the file system is mounted read-write and has space)", abs, err)
		}
	}
	return f.Close()
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
	err := s.r.QueryRowContext(ctx, s.qLoad, key, s.now().UnixMilli()).Scan(&r.Subject, &r.SID, &exp, &r.Version, &r.Payload)
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Key == "" {
		return errors.New("sqlitestore: save: the record has no key")
	}
	if r.Version < 0 {
		return session.ErrConflict
	}
	payload := r.Payload
	if payload == nil {
		payload = []byte{}
	}
	now := s.now().UnixMilli()
	exp := r.ExpiresAt.UnixMilli()
	var res sql.Result
	var err error
	if r.Version == 0 {
		res, err = s.w.ExecContext(ctx, s.qCreate, r.Key, r.Subject, r.SID, exp, payload, now)
	} else {
		res, err = s.w.ExecContext(ctx, s.qUpdate, r.Subject, r.SID, exp, payload, r.Key, r.Version, now)
	}
	if err != nil {
		return s.wrap("save to", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap("save to", err)
	}
	if n != 1 {
		return session.ErrConflict
	}
	r.Version++
	return nil
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
