// Package session keeps browser sessions on the server side. The cookie
// holds only a random id; everything else, tokens included, lives in a
// Store, and the tokens are encrypted there (AES-256-GCM) so that a leaked
// Redis dump or database backup holds no usable refresh token.
//
// Stores: NewMemoryStore (one process, tests), sqlitestore.Open (the
// embedded default, one file), redisstore.Open and pgstore.Open (several
// instances sharing sessions). All pass the same conformance suite
// (sessiontest.Run). Manager ties a Store to cookies; ExampleManager shows
// it. Web applications rarely call the Manager themselves: login.New takes
// it and does (see login's ExampleHandler_Mount).
package session

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores.
var (
	// ErrNotFound: no live record under that key (absent, deleted or expired).
	ErrNotFound = errors.New("session: not found")
	// ErrConflict: the record changed since it was loaded (Save's version
	// check failed), or a record to be created already exists.
	ErrConflict = errors.New("session: version conflict")
)

// Record is a session as a Store keeps it. Only Subject and SID are in
// clear text, because logout tokens look sessions up by them; Payload is
// sealed by a Keyring and opaque to the store.
type Record struct {
	// Key is the store key: a hash of the cookie value, never the value
	// itself, so the store cannot be used to forge cookies.
	Key string
	// Subject is the user's Keycloak id (sub) and SID the Keycloak session
	// id (sid); either may be empty.
	Subject string
	SID     string
	// ExpiresAt is when the record stops being valid (the earlier of the
	// idle and absolute timeouts); the store forgets it then.
	ExpiresAt time.Time
	// Version increases by one with every successful Save.
	Version int64
	// Payload is the sealed session.
	Payload []byte
}

// Store persists Records. Implementations must be safe for concurrent use,
// also from several processes sharing the same backend.
type Store interface {
	// Load returns the live record under key, or ErrNotFound. The Record
	// is the caller's, but its Payload may be shared with a cache: callers
	// never change the bytes of a loaded Payload (they replace it).
	Load(ctx context.Context, key string) (*Record, error)
	// Save writes r if the stored version is r.Version (0: the record must
	// not exist yet), and then sets r.Version to the new version (old + 1).
	// Otherwise it returns ErrConflict and changes nothing.
	Save(ctx context.Context, r *Record) error
	// Delete removes the record under key; deleting a missing record is not
	// an error.
	Delete(ctx context.Context, key string) error
	// DeleteBySID removes every record with this Keycloak session id and
	// returns their keys.
	DeleteBySID(ctx context.Context, sid string) ([]string, error)
	// DeleteBySubject removes every record of this user and returns their keys.
	DeleteBySubject(ctx context.Context, subject string) ([]string, error)
	// MarkOnce records key until the time until and reports whether it
	// was the first to do so: first is true when no live mark of key
	// existed, false when one did (a replay). Of concurrent callers, in one
	// process or several sharing the backend, exactly one gets true. A mark
	// whose until has passed counts as absent. Marks live in their own
	// namespace: they are never Records (Load, Delete and the DeleteBy
	// methods do not see them) and a Record under the same key does not
	// count as a mark. An empty key is an error.
	MarkOnce(ctx context.Context, key string, until time.Time) (first bool, err error)
	// Close releases the store's resources. Whoever opened the store
	// closes it, after everything using it has stopped (for a web app:
	// after http.Server.Shutdown returned). Manager and login.Handler never
	// close the store they are given; a CachedStore closes the store it
	// wraps.
	Close() error
}

// Notifier is implemented by stores shared between processes that can tell
// every process about deleted sessions (Redis pub/sub, PostgreSQL
// LISTEN/NOTIFY, SQLite's deletion log polled every 250 ms), so that
// instance-local caches are invalidated at once.
type Notifier interface {
	// Subscribe calls fn with the keys of sessions deleted by any process
	// until ctx ends. It calls fn(nil) when deletions may have been missed:
	// when the subscription's connection is lost and again when it is
	// re-established (a CachedStore then forgets every record and serves
	// none from memory until the store answers again).
	Subscribe(ctx context.Context, fn func(keys []string)) error
}
