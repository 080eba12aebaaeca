package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/internal/sqldb"
)

// Sentinel errors; compare with errors.Is. Errors returned by this package
// wrap them (and the admin or database error underneath) with a message
// naming the operation and the user.
var (
	// ErrNotFound means there is no local row for the id or sub.
	ErrNotFound = errors.New("directory: user not found")
	// ErrDeactivated refuses a token issued before the user was
	// deactivated (see the package documentation).
	ErrDeactivated = errors.New("directory: user deactivated")
	// ErrInvalidClaims refuses claims without a usable sub, or from
	// another issuer than WithIssuer's.
	ErrInvalidClaims = errors.New("directory: invalid claims")
	// ErrNoAdmin is returned by the operations that call Keycloak when
	// the Directory has no admin client (WithAdmin).
	ErrNoAdmin = errors.New("directory: no Keycloak admin client configured (use WithAdmin)")
	// ErrSyncRunning is returned by Sync while another Sync of the same
	// Directory runs.
	ErrSyncRunning = errors.New("directory: a sync is already running")
	// ErrSyncConflict stops a Sync whose checkpoint was taken over by a
	// newer run (another process started a sync on the same table).
	ErrSyncConflict = errors.New("directory: the sync checkpoint was taken over by another run")
	// ErrCorrupt reports a stored value this package cannot read back (a
	// JSON column or a checkpoint that is not what it writes).
	ErrCorrupt = errors.New("directory: corrupt stored value")
)

// Table names.
const (
	// UsersTable holds the users.
	UsersTable = "cloakroom_users"
	// SyncTable holds the checkpoint of the current or last Sync.
	SyncTable = "cloakroom_user_sync"
)

// DeletePolicy says what Delete does in Keycloak.
type DeletePolicy int

const (
	// DeleteInKeycloak deletes the Keycloak user (the default). Keycloak
	// ends the user's sessions.
	DeleteInKeycloak DeletePolicy = iota
	// DisableInKeycloak only disables the Keycloak user and ends the
	// user's sessions, keeping the account for audit or later restore.
	DisableInKeycloak
)

// String names the policy.
func (p DeletePolicy) String() string {
	switch p {
	case DeleteInKeycloak:
		return "delete"
	case DisableInKeycloak:
		return "disable"
	}
	return fmt.Sprintf("DeletePolicy(%d)", int(p))
}

// Option configures a Directory.
type Option func(*config)

type config struct {
	admin        *admin.Client
	issuer       string
	deletePolicy DeletePolicy
	extraClaims  []string
	extraSet     bool
	schema       string
	logger       *slog.Logger
	busyTimeout  time.Duration
	now          func() time.Time
}

// WithAdmin sets the Keycloak admin client used by RefreshFromKeycloak,
// PushToKeycloak, Deactivate, Delete, ResetPassword, EndSessions and Sync.
// Its account needs the realm-management roles view-users (reading) and
// manage-users (changing); without a client those operations return
// ErrNoAdmin.
func WithAdmin(c *admin.Client) Option { return func(cfg *config) { cfg.admin = c } }

// WithIssuer makes UpsertFromClaims refuse claims whose iss is not issuer
// (ErrInvalidClaims): a sub is only unique within its realm.
func WithIssuer(issuer string) Option { return func(cfg *config) { cfg.issuer = issuer } }

// WithDeletePolicy chooses what Delete does in Keycloak (default
// DeleteInKeycloak).
func WithDeletePolicy(p DeletePolicy) Option { return func(cfg *config) { cfg.deletePolicy = p } }

// WithExtraClaims chooses the top-level claims stored in User.Extra. By
// default every claim that is not a protocol claim (iss, exp, aud, nonce,
// ...) and not stored in a column of its own (preferred_username, email,
// roles, ...) is kept, e.g. the claims of the realm's attribute mappers.
// WithExtraClaims() with no names keeps none. At most 64 KiB of extra
// claims are stored per user; claims beyond that are skipped.
func WithExtraClaims(names ...string) Option {
	return func(cfg *config) {
		cfg.extraClaims = append([]string{}, names...)
		cfg.extraSet = true
	}
}

// WithSchema sets the PostgreSQL schema of the tables (default: the
// connection's current_schema(), usually public). The schema must exist.
// SQLite ignores it.
func WithSchema(name string) Option { return func(cfg *config) { cfg.schema = name } }

// WithLogger sets where per-user sync failures and skipped claims are
// reported (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(cfg *config) { cfg.logger = l } }

// WithBusyTimeout sets how long a SQLite write waits for another
// process's write lock (default 5s). PostgreSQL ignores it.
func WithBusyTimeout(d time.Duration) Option { return func(cfg *config) { cfg.busyTimeout = d } }

// Directory is the local user table. It is safe for concurrent use.
type Directory struct {
	r, w   *sql.DB // reads and writes: the same pool on PostgreSQL
	pool   *pgxpool.Pool
	ownPG  bool
	pg     bool
	where  string // file path or schema, for messages
	schema string

	usersT, syncT string // quoted identifiers

	admin        *admin.Client
	issuer       string
	deletePolicy DeletePolicy
	extraClaims  []string // nil: the default set
	log          *slog.Logger
	now          func() time.Time

	q queries

	syncing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func newConfig(opts []Option) config {
	cfg := config{busyTimeout: 5 * time.Second}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.busyTimeout < 0 {
		cfg.busyTimeout = 0
	}
	return cfg
}

func (d *Directory) apply(cfg config) {
	d.admin = cfg.admin
	d.issuer = cfg.issuer
	d.deletePolicy = cfg.deletePolicy
	if cfg.extraSet {
		d.extraClaims = cfg.extraClaims
	}
	d.log = cfg.logger
	d.now = cfg.now
}

// OpenSQLite opens (or creates) the directory in the SQLite file at path,
// in WAL mode, and brings its schema up to date. The file is created with
// mode 0600 (missing parent directories 0700). Several processes may open
// the same file; writes are serialised by SQLite's lock.
func OpenSQLite(path string, opts ...Option) (*Directory, error) {
	cfg := newConfig(opts)
	abs, err := sqldb.PrepareFile(path, "directory", "user database")
	if err != nil {
		return nil, err
	}
	d := &Directory{where: abs, usersT: `"` + UsersTable + `"`, syncT: `"` + SyncTable + `"`}
	d.apply(cfg)
	if d.w, d.r, err = sqldb.OpenSQLite(abs, cfg.busyTimeout); err != nil {
		return nil, fmt.Errorf("directory: open %s: %w", abs, err)
	}
	d.q = buildQueries(false, d.usersT, d.syncT)
	if err := migrate(context.Background(), d.w, sqldb.SQLite{}); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("directory: migrate the schema of %s: %w", abs, err)
	}
	return d, nil
}

// OpenPostgres connects to PostgreSQL (a postgres:// URL or key=value
// string, as pgxpool.ParseConfig takes) and returns a Directory that owns
// the connection pool. The tables are created or migrated under a
// transaction-scoped advisory lock, so instances starting together do not
// race.
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (*Directory, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("directory: PostgreSQL connection string: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("directory: connect to PostgreSQL: %w", err)
	}
	d, err := NewPostgres(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	d.ownPG = true
	return d, nil
}

// NewPostgres returns a Directory on an existing pool, creating or
// migrating its tables first. Close does not close the pool.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Directory, error) {
	cfg := newConfig(opts)
	if pool == nil {
		return nil, errors.New("directory: nil PostgreSQL pool")
	}
	if cfg.schema != "" && !schemaRE.MatchString(cfg.schema) {
		return nil, fmt.Errorf("directory: schema name %q is not allowed: use letters, digits and underscores (not starting with a digit), at most 63 characters", cfg.schema)
	}
	if cfg.schema == "" {
		var cur *string
		if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return nil, fmt.Errorf("directory: find the current schema: %w", err)
		}
		if cur == nil {
			return nil, errors.New("directory: the connection has no current schema (no schema of search_path exists): create one, fix search_path, or pass WithSchema")
		}
		cfg.schema = *cur
	}
	db := stdlib.OpenDBFromPool(pool)
	d := &Directory{r: db, w: db, pool: pool, pg: true, schema: cfg.schema, where: "schema " + cfg.schema,
		usersT: pgx.Identifier{cfg.schema, UsersTable}.Sanitize(), syncT: pgx.Identifier{cfg.schema, SyncTable}.Sanitize()}
	d.apply(cfg)
	d.q = buildQueries(true, d.usersT, d.syncT)
	if err := migrate(ctx, db, sqldb.Postgres{Schema: cfg.schema}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("directory: migrate %s in PostgreSQL schema %q: %w", UsersTable, cfg.schema, err)
	}
	return d, nil
}

// Close closes the database (and the pool OpenPostgres made). It is safe
// to call more than once; the Directory must not be used afterwards.
func (d *Directory) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.r != nil && d.r != d.w {
			errs = append(errs, d.r.Close())
		}
		if d.w != nil {
			errs = append(errs, d.w.Close())
		}
		if d.ownPG && d.pool != nil {
			d.pool.Close()
		}
		if err := errors.Join(errs...); err != nil {
			d.closeErr = fmt.Errorf("directory: close %s: %w", d.where, err)
		}
	})
	return d.closeErr
}

// Admin returns the admin client set with WithAdmin (nil if none).
func (d *Directory) Admin() *admin.Client { return d.admin }

func (d *Directory) needAdmin(op string) error {
	if d.admin == nil {
		return fmt.Errorf("directory: %s: %w", op, ErrNoAdmin)
	}
	return nil
}

// stamp is a time truncated to the millisecond, the precision stored.
func (d *Directory) stamp() time.Time { return d.now().UTC().Truncate(time.Millisecond) }
