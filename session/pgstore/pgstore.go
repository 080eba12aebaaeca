// Package pgstore is a session.Store in PostgreSQL (github.com/jackc/pgx/v5)
// for several instances sharing sessions.
//
// Sessions live in one table (default cloakroom_sessions in the connection's
// current schema; both configurable). The schema is versioned per component
// in cloakroom_schema_migrations; New migrates under a transaction-scoped
// advisory lock, so instances starting together do not race, and skips all
// DDL when the schema is current (the role then needs no CREATE privilege).
//
// Expired sessions are never returned (the database clock decides) and are
// deleted by a background sweep in every instance (every minute by default);
// no cron job is needed.
//
// MarkOnce marks share the table under keys starting with "once:"
// (session.Manager's keys never hold a colon), with no subject or sid and
// an empty payload, so the sweep removes them once expired; no schema
// change was needed for them.
//
// The Store is a session.Notifier: deletions (Delete, DeleteBySID,
// DeleteBySubject) send the deleted keys with pg_notify, in the deleting
// transaction, on a channel derived from the schema and table (see
// Channel); Subscribe LISTENs on it.
package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloakroom/cloakroom/internal/sessionstore"
	"github.com/cloakroom/cloakroom/internal/storeurl"
	"github.com/cloakroom/cloakroom/session"
)

// Linking this package in lets the gateway open its stores by URL.
func init() {
	storeurl.Register(storeurl.Postgres, func(ctx context.Context, url string) (session.Store, error) { return storeurl.Opened(Open(ctx, url)) })
}

// DefaultTable is the table sessions are kept in unless WithTable says
// otherwise.
const DefaultTable = "cloakroom_sessions"

// Option configures New and Open.
type Option func(*config)

type config struct {
	table      string
	schema     string
	sweepEvery time.Duration
	logger     *slog.Logger
}

// WithTable sets the table name (default DefaultTable): letters, digits and
// underscores, not starting with a digit, at most 48 characters.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithSchema sets the schema holding the table and the migrations table
// (default: the connection's current_schema(), usually public). The schema
// must exist.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithSweepInterval sets how often expired sessions are deleted (default one
// minute). Zero or a negative value turns the background sweep off; expired
// sessions are still never returned.
func WithSweepInterval(d time.Duration) Option { return func(c *config) { c.sweepEvery = d } }

// WithLogger sets where background failures (sweep, lost LISTEN
// connections) are reported (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Store is a session.Store and session.Notifier in PostgreSQL. It is safe
// for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	own     bool // Open made the pool: Close closes it
	schema  string
	table   string
	ident   string // "schema"."table"
	channel string
	log     *slog.Logger

	qLoad, qCreate, qUpdate, qTouch, qLoadHeader, qDeleteByKey, qDeleteBySID, qDeleteBySubject, qSweep, qMarkOnce string

	health time.Duration // HealthCheckInterval (shorter in tests)

	ctx    context.Context // cancelled by Close: stops the sweep and subscriptions
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var (
	_ session.Store    = (*Store)(nil)
	_ session.Notifier = (*Store)(nil)

	tableRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)
	schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// Open connects to the PostgreSQL database at url (postgres://... or a
// key=value connection string, as pgxpool.ParseConfig takes) and returns a
// Store that owns the pool: Close closes it.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connection string: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connect to PostgreSQL: %w", err)
	}
	s, err := New(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// New returns a Store on pool, creating or migrating its table first.
// Close does not close the pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	cfg := config{table: DefaultTable, sweepEvery: time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if !tableRE.MatchString(cfg.table) {
		return nil, fmt.Errorf("pgstore: table name %q is not allowed: use letters, digits and underscores (not starting with a digit), at most 48 characters", cfg.table)
	}
	if cfg.schema != "" && !schemaRE.MatchString(cfg.schema) {
		return nil, fmt.Errorf("pgstore: schema name %q is not allowed: use letters, digits and underscores (not starting with a digit), at most 63 characters", cfg.schema)
	}
	if cfg.schema == "" {
		var cur *string
		if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return nil, fmt.Errorf("pgstore: find the current schema: %w", err)
		}
		if cur == nil {
			return nil, errors.New("pgstore: the connection has no current schema (no schema of search_path exists): create one, fix search_path, or pass WithSchema")
		}
		cfg.schema = *cur
	}
	s := &Store{
		pool:   pool,
		schema: cfg.schema,
		table:  cfg.table,
		ident:  pgx.Identifier{cfg.schema, cfg.table}.Sanitize(),
		log:    cfg.logger,
		health: HealthCheckInterval,
	}
	s.channel = channelName(cfg.schema, cfg.table)
	s.buildQueries()
	if err := migrate(ctx, pool, cfg.schema, cfg.table, len(migrations)); err != nil {
		return nil, fmt.Errorf("pgstore: migrate %s: %w", s.ident, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.sweepEvery > 0 {
		s.wg.Add(1)
		go s.sweepLoop(cfg.sweepEvery)
	}
	return s, nil
}

// channelName is schema.table.deleted, or a hash of it when that is longer
// than PostgreSQL's 63-byte identifier limit.
func channelName(schema, table string) string {
	c := schema + "." + table + ".deleted"
	if len(c) <= 63 {
		return c
	}
	sum := sha256.Sum256([]byte(schema + "." + table))
	return "cloakroom_deleted_" + hex.EncodeToString(sum[:16])
}

func (s *Store) buildQueries() {
	t := s.ident
	s.qLoad = `SELECT subject, sid, expires_at, version, payload FROM ` + t + ` WHERE key = $1 AND expires_at > now()`
	s.qCreate = `INSERT INTO ` + t + ` AS cur (key, subject, sid, expires_at, version, payload) VALUES ($1, $2, $3, $4, 1, $5)
		ON CONFLICT (key) DO UPDATE SET subject = EXCLUDED.subject, sid = EXCLUDED.sid, expires_at = EXCLUDED.expires_at,
			version = 1, payload = EXCLUDED.payload
		WHERE cur.expires_at <= now()`
	s.qUpdate = `UPDATE ` + t + ` SET subject = $3, sid = $4, expires_at = $5, version = version + 1, payload = $6
		WHERE key = $1 AND version = $2 AND expires_at > now()`
	s.qLoadHeader = `SELECT subject, sid, expires_at, version FROM ` + t + ` WHERE key = $1 AND expires_at > now()`
	s.qTouch = `UPDATE ` + t + ` SET expires_at = greatest(expires_at, $2) WHERE key = $1 AND expires_at > now()`
	s.qDeleteByKey = `DELETE FROM ` + t + ` WHERE key = $1 RETURNING key, expires_at > now()`
	s.qDeleteBySID = `DELETE FROM ` + t + ` WHERE sid = $1 RETURNING key, expires_at > now()`
	s.qDeleteBySubject = `DELETE FROM ` + t + ` WHERE subject = $1 RETURNING key, expires_at > now()`
	s.qSweep = `DELETE FROM ` + t + ` WHERE key IN (
		SELECT key FROM ` + t + ` WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`
	s.qMarkOnce = `INSERT INTO ` + t + ` AS cur (key, subject, sid, expires_at, version, payload) VALUES ($1, '', '', $2, 1, ''::bytea)
		ON CONFLICT (key) DO UPDATE SET subject = '', sid = '', expires_at = EXCLUDED.expires_at, version = 1, payload = EXCLUDED.payload
		WHERE cur.expires_at <= now()`
}

// Channel returns the LISTEN/NOTIFY channel deletions are announced on.
func (s *Store) Channel() string { return s.channel }

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &session.Record{Key: key}
	err := s.pool.QueryRow(ctx, s.qLoad, key).Scan(&r.Subject, &r.SID, &r.ExpiresAt, &r.Version, &r.Payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("load from", err)
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	return r, nil
}

// Save implements session.Store.
func (s *Store) Save(ctx context.Context, r *session.Record) error {
	payload, err := sessionstore.BeginSave(ctx, "pgstore", r)
	if err != nil {
		return err
	}
	var n int64
	if r.Version == 0 {
		tag, e := s.pool.Exec(ctx, s.qCreate, r.Key, r.Subject, r.SID, r.ExpiresAt, payload)
		n, err = tag.RowsAffected(), e
	} else {
		tag, e := s.pool.Exec(ctx, s.qUpdate, r.Key, r.Version, r.Subject, r.SID, r.ExpiresAt, payload)
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return s.wrap("save to", err)
	}
	return sessionstore.EndSave(r, n)
}

// Delete implements session.Store and notifies the key if a row was
// deleted.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.deleteWhere(ctx, s.qDeleteByKey, key)
	return err
}

// DeleteBySID implements session.Store and notifies the deleted keys. It
// returns the keys of the live sessions deleted (expired rows with that sid
// are deleted too).
func (s *Store) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	if sid == "" {
		return nil, ctx.Err()
	}
	return s.deleteWhere(ctx, s.qDeleteBySID, sid)
}

// DeleteBySubject implements session.Store like DeleteBySID.
func (s *Store) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	if subject == "" {
		return nil, ctx.Err()
	}
	return s.deleteWhere(ctx, s.qDeleteBySubject, subject)
}

// deleteWhere deletes and notifies in one transaction: listeners hear of
// exactly the deletions that committed.
func (s *Store) deleteWhere(ctx context.Context, q, arg string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.wrap("delete from", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	rows, err := tx.Query(ctx, q, arg)
	if err != nil {
		return nil, s.wrap("delete from", err)
	}
	var deleted, live []string
	for rows.Next() {
		var k string
		var isLive bool
		if err := rows.Scan(&k, &isLive); err != nil {
			rows.Close()
			return nil, s.wrap("delete from", err)
		}
		deleted = append(deleted, k)
		if isLive {
			live = append(live, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("delete from", err)
	}
	// Expired rows are announced too: a cache may still hold them.
	for _, payload := range notifyPayloads(deleted, s.log) {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, payload); err != nil {
			return nil, s.wrap("notify deletions from", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.wrap("delete from", err)
	}
	return live, nil
}

// MarkOnce implements session.Store: one INSERT ... ON CONFLICT that
// writes only when no live mark exists; concurrent callers wait on the
// key's index entry, so exactly one of them writes.
func (s *Store) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := sessionstore.BeginMarkOnce(ctx, "pgstore", key); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, s.qMarkOnce, "once:"+key, until)
	if err != nil {
		return false, s.wrap("mark once in", err)
	}
	return tag.RowsAffected() == 1, nil
}

// maxNotifyPayload stays under PostgreSQL's 8000-byte NOTIFY payload limit.
const maxNotifyPayload = 7900

// notifyPayloads packs keys into JSON arrays of at most maxNotifyPayload
// bytes. A key too long to fit alone is left out (and logged).
func notifyPayloads(keys []string, log *slog.Logger) []string {
	var out []string
	buf := []byte{'['}
	for _, k := range keys {
		enc, _ := json.Marshal(k)
		if len(enc)+2 > maxNotifyPayload {
			log.Warn("pgstore: a deleted session key is too long to notify", "bytes", len(k))
			continue
		}
		if len(buf)+len(enc)+2 > maxNotifyPayload {
			out = append(out, string(append(buf, ']')))
			buf = []byte{'['}
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, enc...)
	}
	if len(buf) > 1 {
		out = append(out, string(append(buf, ']')))
	}
	return out
}

const sweepBatch = 1000

// Sweep deletes expired sessions now and returns how many it removed. The
// background sweep calls it; it is exported for tools and tests. Several
// instances may sweep at once: rows another one is deleting are skipped.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.qSweep, sweepBatch)
		if err != nil {
			return total, s.wrap("sweep expired sessions from", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < sweepBatch {
			return total, nil
		}
	}
}

func (s *Store) sweepLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("pgstore: sweeping expired sessions failed", "error", err)
			}
		}
	}
}

// Subscribe implements session.Notifier. It returns once LISTEN is active
// (so deletions committed after it returns are delivered), then calls fn,
// one call at a time, with the keys every Store on this table deletes,
// until ctx ends or the Store is closed. The listening connection is taken
// out of the pool; if it breaks, Subscribe reconnects (notifications sent
// meanwhile are missed) and logs the failure.
func (s *Store) Subscribe(ctx context.Context, fn func(keys []string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	subCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	conn, err := s.listen(subCtx)
	if err != nil {
		stop()
		cancel()
		return fmt.Errorf("pgstore: listen on %q: %w", s.channel, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		stop()
		cancel()
		_ = conn.Close(context.Background())
		return errors.New("pgstore: subscribe: the store is closed")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		s.receive(subCtx, conn, fn)
	}()
	return nil
}

// HealthCheckInterval is how long a subscription waits for a notification
// before it checks its connection with a ping, and then for the answer: a
// connection that answers nothing (a silent network partition, which
// fails no read or write) counts as lost after at most twice this, and
// is replaced.
const HealthCheckInterval = 2 * time.Second

func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	// Bounded: a server that takes the connection and never answers must
	// not hold the subscriber forever.
	ctx, cancel := context.WithTimeout(ctx, 2*s.health)
	defer cancel()
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := pc.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		pc.Release()
		return nil, err
	}
	return pc.Hijack(), nil
}

func (s *Store) receive(ctx context.Context, conn *pgx.Conn, fn func([]string)) {
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}
	for {
		n, err := s.wait(ctx, conn)
		if err != nil {
			closeConn()
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("pgstore: lost the LISTEN connection; reconnecting", "channel", s.channel, "error", err)
			fn(nil) // notifications may be missed until LISTEN is back
			if conn = s.relisten(ctx); conn == nil {
				return
			}
			fn(nil) // and were, between the loss and now
			continue
		}
		sessionstore.Deleted(s.log, "pgstore", n.Channel, n.Payload, fn)
	}
}

// wait waits for the next notification on conn. After a health-check
// interval without one it pings the server, which must answer within
// another: otherwise the connection is as good as lost.
func (s *Store) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, s.health)
		n, err := conn.WaitForNotification(wctx)
		timedOut := err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded)
		cancel()
		if !timedOut {
			return n, err
		}
		// pgx leaves a connection usable after a read deadline.
		pctx, cancel := context.WithTimeout(ctx, s.health)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("the LISTEN connection did not answer a ping: %w", err)
		}
	}
}

// relisten retries listen with backoff until it works or ctx ends (nil).
func (s *Store) relisten(ctx context.Context) *pgx.Conn {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		conn, err := s.listen(ctx)
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("pgstore: LISTEN again failed", "channel", s.channel, "error", err)
		wait = min(2*wait, 5*time.Second)
	}
}

// Close stops the sweep and the subscriptions and, if Open made the pool,
// closes it. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.own {
		s.pool.Close()
	}
	return nil
}

// wrap names the operation and the table; pgx errors carry no parameter
// values, so payloads never appear.
func (s *Store) wrap(op string, err error) error {
	return fmt.Errorf("pgstore: %s %s: %w", op, s.ident, err)
}
