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
// The Store is a session.Notifier, so that a session.CachedStore in front of
// it learns of logouts at once instead of after its TTL: Delete, DeleteBySID
// and DeleteBySubject write the keys of the live sessions they remove to a
// deletion log (the table TABLE_deleted) in the same transaction, and
// Subscribe polls that log (every 250 ms by default, WithNotifyInterval).
// Deletions thereby reach every Store on the same file, in this process or
// another, within about the notify interval. The sweep prunes the log after
// one minute (or ten notify intervals, if longer); a subscriber that falls
// further behind is told it may have missed deletions.
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
	"strconv"
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
	notifyEvery time.Duration
	logger      *slog.Logger
}

// WithTable sets the table name (default DefaultTable). It must be an SQL
// identifier: letters, digits and underscores, not starting with a digit, at
// most 48 characters. The deletion log is the table NAME_deleted, so no
// other table in the file may have that name.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithBusyTimeout sets how long a write waits for another connection's
// write lock before failing (default 5s).
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithSweepInterval sets how often expired sessions are deleted from the
// file and old entries from the deletion log (default one minute). Zero or
// a negative value turns the background sweep off; expired sessions are
// still never returned, but the file then only shrinks when something
// calls Sweep.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.sweepEvery = d } }

// DefaultNotifyInterval is how often a subscription reads the deletion log
// unless WithNotifyInterval says otherwise.
const DefaultNotifyInterval = 250 * time.Millisecond

// WithNotifyInterval sets how often a Subscribe polls the deletion log
// (default DefaultNotifyInterval; zero or a negative value means the
// default): the delay with which deletions reach subscribers, against one
// small indexed read per interval and subscription. The log keeps entries
// for one minute or ten intervals, whichever is longer.
func WithNotifyInterval(d time.Duration) Option { return func(c *config) { c.notifyEvery = d } }

// WithLogger sets where failures of the background sweep and of
// subscriptions' polls are reported (default slog.Default()).
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
	// Touch and LoadHeader (touch.go): the expiry alone, the row without
	// its payload.
	qTouch, qLoadHeader string
	touch, loadHeader   *sql.Stmt

	// The deletion log (see Subscribe): logName is its name as
	// sqlite_sequence knows it. A deletion runs its log statement
	// (INSERT ... SELECT of the live rows it is about to remove) and its
	// delete statement in one transaction; pollLog is a subscription's
	// read.
	logName                                 string
	qLog, qLogBySID, qLogBySubject, qPoll   string
	qHead, qPrune                           string
	del, delBySID, delBySubject             *sql.Stmt
	logDel, logBySID, logBySubject, pollLog *sql.Stmt
	notifyEvery                             time.Duration
	retention                               time.Duration // log entries older than this are pruned

	mu     sync.Mutex
	closed bool           // set by Close: Subscribe refuses
	subs   sync.WaitGroup // running subscriptions; Close waits for them

	ctx       context.Context // cancelled by Close: stops the sweeper
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ session.Store    = (*Store)(nil)
	_ session.Notifier = (*Store)(nil)

	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)
)

// Open opens (or creates) the session database at path and brings its
// schema up to date.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{table: DefaultTable, busyTimeout: 5 * time.Second, sweepEvery: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.notifyEvery <= 0 {
		cfg.notifyEvery = DefaultNotifyInterval
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
		path:        abs,
		table:       `"` + cfg.table + `"`,
		logName:     cfg.table + "_deleted",
		now:         time.Now,
		log:         cfg.logger,
		busy:        cfg.busyTimeout,
		notifyEvery: cfg.notifyEvery,
		// A subscriber polling every interval reads each entry long
		// before it is pruned, even behind a few slow polls.
		retention: max(time.Minute, 10*cfg.notifyEvery),
		done:      make(chan struct{}),
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
	s.qTouch = `UPDATE ` + t + ` SET expires_at = max(expires_at, ?) WHERE "key" = ? AND expires_at > ?`
	s.qLoadHeader = `SELECT subject, sid, expires_at, version FROM ` + t + ` WHERE "key" = ? AND expires_at > ?`
	s.qDelete = `DELETE FROM ` + t + ` WHERE "key" = ?`
	s.qDeleteBySID = `DELETE FROM ` + t + ` WHERE sid = ? RETURNING "key", expires_at`
	s.qDeleteBySubject = `DELETE FROM ` + t + ` WHERE subject = ? RETURNING "key", expires_at`
	s.qSweep = `DELETE FROM ` + t + ` WHERE rowid IN (SELECT rowid FROM ` + t + ` WHERE expires_at <= ? LIMIT ?)`
	s.qMarkOnce = `INSERT INTO ` + t + ` (` + cols + `) VALUES (?, '', '', ?, 1, x'') ` +
		`ON CONFLICT ("key") DO UPDATE SET subject = '', sid = '', expires_at = excluded.expires_at, version = 1, payload = x'' ` +
		`WHERE expires_at <= ?`

	l := `"` + s.logName + `"`
	// Parameters: at, the key (sid, subject), now. Only live sessions are
	// logged: caches check ExpiresAt themselves. OR IGNORE, although no
	// constraint can fail, lets SQLite skip the statement journal it
	// keeps for a statement that may abort inside a transaction (about a
	// third of what the logging costs a Delete).
	logLive := `INSERT OR IGNORE INTO ` + l + ` ("key", at) SELECT "key", ? FROM ` + t + ` WHERE `
	s.qLog = logLive + `"key" = ? AND expires_at > ?`
	s.qLogBySID = logLive + `sid = ? AND expires_at > ?`
	s.qLogBySubject = logLive + `subject = ? AND expires_at > ?`
	// One page of entries after a position, and the highest seq ever
	// handed out (sqlite_sequence, key NULL) from the same snapshot: seqs
	// are contiguous (AUTOINCREMENT, one writer at a time, rollbacks roll
	// the sequence back too), so a hole, or an end beyond the last entry
	// read, means entries were pruned before this subscriber read them.
	s.qPoll = `SELECT seq, "key" FROM (SELECT seq, "key" FROM ` + l + ` WHERE seq > ? ORDER BY seq LIMIT ` + strconv.Itoa(pollPage) + `) ` +
		`UNION ALL SELECT seq, NULL FROM sqlite_sequence WHERE name = ?`
	s.qHead = `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0)`
	// Entries in seq order up to the first one younger than the
	// retention: the scan stops there, so the log needs no index on at.
	s.qPrune = `DELETE FROM ` + l + ` WHERE seq < coalesce((SELECT seq FROM ` + l + ` WHERE at >= ? ORDER BY seq LIMIT 1), ` +
		`(SELECT max(seq) + 1 FROM ` + l + `))`
}

// prepare compiles the statements of Load, Save, the deletions and the
// subscriptions' poll once (database/sql prepares them again on each new
// connection by itself).
func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db   *sql.DB
		q    string
		stmt **sql.Stmt
	}{
		{s.r, s.qLoad, &s.load},
		{s.w, s.qCreate, &s.create},
		{s.w, s.qUpdate, &s.update},
		{s.w, s.qTouch, &s.touch},
		{s.r, s.qLoadHeader, &s.loadHeader},
		{s.w, s.qDelete, &s.del},
		{s.w, s.qDeleteBySID, &s.delBySID},
		{s.w, s.qDeleteBySubject, &s.delBySubject},
		{s.w, s.qLog, &s.logDel},
		{s.w, s.qLogBySID, &s.logBySID},
		{s.w, s.qLogBySubject, &s.logBySubject},
		{s.r, s.qPoll, &s.pollLog},
	} {
		st, err := p.db.PrepareContext(ctx, p.q)
		if err != nil {
			return err
		}
		*p.stmt = st
	}
	return nil
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

// Delete implements session.Store. Deleting a live session logs its key
// for subscribers (see Subscribe).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.logged(ctx, s.logDel, key, func(tx *sql.Tx, _ int64) error {
		_, err := tx.StmtContext(ctx, s.del).ExecContext(ctx, key)
		return err
	})
	if err != nil {
		return s.wrap("delete from", err)
	}
	return nil
}

// logged runs a deletion in one write transaction with its log
// statement, which copies the keys of the live rows about to go into the
// deletion log: the log then holds exactly the deletions that committed,
// and nothing for one that found nothing. now (Unix ms, read under the
// write lock so that entries' times follow their seqs) is both the
// entries' time and the liveness cut-off; del gets it for the same use.
func (s *Store) logged(ctx context.Context, log *sql.Stmt, v string, del func(tx *sql.Tx, now int64) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	now := s.now().UnixMilli()
	if _, err := tx.StmtContext(ctx, log).ExecContext(ctx, now, v, now); err != nil {
		return err
	}
	if err := del(tx, now); err != nil {
		return err
	}
	return tx.Commit()
}

// DeleteBySID implements session.Store. The keys returned are those of the
// live sessions removed, and are logged for subscribers; expired ones are
// removed too but neither reported nor logged.
func (s *Store) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	return s.deleteReturning(ctx, s.logBySID, s.delBySID, sid)
}

// DeleteBySubject implements session.Store, like DeleteBySID.
func (s *Store) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	return s.deleteReturning(ctx, s.logBySubject, s.delBySubject, subject)
}

func (s *Store) deleteReturning(ctx context.Context, log, del *sql.Stmt, v string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if v == "" {
		return nil, nil
	}
	var keys []string
	err := s.logged(ctx, log, v, func(tx *sql.Tx, now int64) error {
		rows, err := tx.StmtContext(ctx, del).QueryContext(ctx, v)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var exp int64
			if err := rows.Scan(&k, &exp); err != nil {
				return err
			}
			if exp > now {
				keys = append(keys, k)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return rows.Close()
	})
	if err != nil {
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

// Sweep deletes expired sessions, and deletion-log entries older than the
// retention (one minute or ten notify intervals), now, and returns how
// many sessions it removed. The background sweeper calls it; it is
// exported for tools and tests.
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
			break
		}
	}
	// One statement: the log holds a retention's worth of deletions,
	// rows of a few dozen bytes.
	if _, err := s.w.ExecContext(ctx, s.qPrune, now-s.retention.Milliseconds()); err != nil {
		return total, s.wrap("prune the deletion log in", err)
	}
	return total, nil
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

// Close stops the sweeper and the subscriptions (it waits for a call to
// a subscriber's fn in progress, so fn must not call Close) and closes the
// database. It is safe to call more than once; the Store must not be used
// afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		<-s.done
		s.subs.Wait()
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
