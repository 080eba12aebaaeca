package session

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/internal/ttlcache"
)

// CachedStore keeps recently used records in process memory in front of a
// shared store, so that most requests need no round trip to Redis,
// PostgreSQL or SQLite. Deletions are seen at once on every instance when
// the store is a Notifier (Redis pub/sub, PostgreSQL LISTEN/NOTIFY, SQLite's
// polled deletion log): a back-channel logout received by one instance
// evicts the session from every instance's cache. Other changes made
// elsewhere (refreshed tokens, a longer expiry) are picked up after at
// most the TTL, or at once by a Save conflict or Manager.Reload; a record
// whose TTL has passed is checked by its header alone when the store is a
// HeaderLoader and a Manager holds it decoded. Once an operation on the
// store fails, the cache serves nothing until the store answers again:
// deletions made elsewhere meanwhile could not reach it. For a Manager,
// which keeps the sessions it uses decoded, the cache keeps only the
// records' headers (key, version, expiry, subject, sid), not a second
// copy of their sealed payloads; other callers get whole records.
type CachedStore struct {
	Store
	cache *ttlcache.Cache[cachedRecord]
	ttl   time.Duration
	now   func() time.Time

	mu       sync.Mutex
	cancel   context.CancelFunc
	notified bool

	// failing is set by a failed store operation and cleared by the next
	// success: while the store is unreachable, deletions made elsewhere
	// cannot reach this cache, so it serves nothing (fail closed).
	failing atomic.Bool
	// onMissed are told when deletions may have been missed (fn(nil)
	// from the Notifier): a JournaledStore around this cache counts that
	// as an outage of the store.
	onMissed atomic.Pointer[func()]
	// quiet (Unix ns) is until when nothing is cached after deletions may
	// have been missed: a record read during a failover may come from a
	// master about to be demoted, and must not be served from memory later.
	quiet atomic.Int64
}

// quietAfterMissed is how long a CachedStore caches nothing after its
// Notifier said deletions may have been missed (and again after it said
// the subscription is back): long enough for reads to have moved to the
// new master, and no longer than the TTL. It does not grow with the TTL:
// with a one-minute TTL, a minute without a cache after every failover
// would send every request to the store.
const quietAfterMissed = 5 * time.Second

// observe records whether the store answered: ErrNotFound and ErrConflict
// are answers; a cancelled caller says nothing about the store.
func (c *CachedStore) observe(err error) {
	switch {
	case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict):
		c.failing.Store(false)
	case errors.Is(err, context.Canceled):
	default:
		c.failing.Store(true)
	}
}

// CacheOptions configure a CachedStore.
type CacheOptions struct {
	// TTL bounds how long a record is served from memory without asking
	// the store again. Default: a minute over a Notifier, whose deletions
	// reach the cache at once (and which tells it when they may not have:
	// the cache is then emptied), 5 s over other stores, where the TTL is
	// also how long a deletion elsewhere can go unseen.
	TTL time.Duration
	// Entries and Bytes bound the cache (defaults 100,000 and 64 MiB).
	Entries, Bytes int
}

// Default TTLs of a CachedStore (CacheOptions.TTL).
const (
	DefaultCacheTTL         = 5 * time.Second
	DefaultNotifiedCacheTTL = time.Minute
)

// NewCachedStore wraps store. If store is a Notifier it subscribes to
// deletions; Close ends the subscription and closes store.
func NewCachedStore(ctx context.Context, store Store, o CacheOptions) (*CachedStore, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultCacheTTL
		if _, ok := store.(Notifier); ok {
			o.TTL = DefaultNotifiedCacheTTL
		}
	}
	if o.Entries <= 0 {
		o.Entries = 100_000
	}
	if o.Bytes <= 0 {
		o.Bytes = 64 << 20
	}
	c := &CachedStore{Store: store, cache: ttlcache.New[cachedRecord](o.Entries, o.Bytes), ttl: o.TTL, now: time.Now}
	if n, ok := store.(Notifier); ok {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if err := n.Subscribe(sctx, c.evict); err != nil {
			cancel()
			return nil, err
		}
		c.cancel, c.notified = cancel, true
	}
	return c, nil
}

// TTL returns how long a record is served from memory.
func (c *CachedStore) TTL() time.Duration { return c.ttl }

// Notified reports whether deletions by other instances reach this cache
// at once (the store is a Notifier).
func (c *CachedStore) Notified() bool { return c.notified }

func (c *CachedStore) evict(keys []string) {
	if keys == nil {
		// The subscription was lost or re-established: deletions may have
		// been missed. Forget everything and serve nothing from memory
		// until the store answers again.
		c.failing.Store(true)
		c.quiet.Store(c.now().Add(min(c.ttl, quietAfterMissed)).UnixNano())
		c.cache.Clear()
		if f := c.onMissed.Load(); f != nil {
			(*f)()
		}
		return
	}
	for _, k := range keys {
		c.cache.Delete(k)
	}
}

// clear forgets every cached record.
func (c *CachedStore) clear() { c.cache.Clear() }

func (c *CachedStore) forget(keys []string) {
	for _, k := range keys {
		c.cache.Delete(k)
	}
}

type bypassKey struct{}

// WithoutCache marks ctx so that a CachedStore reads from the shared store.
func WithoutCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, bypassKey{}, true)
}

// decodedKey is the context key of a decodedHint.
type decodedKey struct{}

// decodedHint is how a Manager tells a CachedStore that it keeps the
// records it loads and saves decoded, by key and version (its decoded
// cache), and which version of key it holds now (-1: none). The cache then
// keeps only the record's header, not a second copy of its sealed
// payload, and answers a Load with the header alone (Payload nil) when the
// Manager holds that version. Only Managers set it: every other caller
// gets whole records.
type decodedHint struct {
	context.Context
	key     string
	version int64
}

// Value answers decodedKey itself: the hint is its own context value, one
// allocation per session lookup instead of WithValue's two.
func (h *decodedHint) Value(key any) any {
	if key == (decodedKey{}) {
		return h
	}
	return h.Context.Value(key)
}

// withDecoded returns ctx carrying a decodedHint.
func withDecoded(ctx context.Context, key string, version int64) context.Context {
	return &decodedHint{Context: ctx, key: key, version: version}
}

// cachedRecord is a record as the cache holds it; headerOnly: without its
// payload, which the Manager that loaded or saved it keeps decoded.
type cachedRecord struct {
	Record
	headerOnly bool
	// until is when the cache lets the record go (Unix s): Touch keeps it.
	until int64
}

// size is what the record counts for against the cache's byte bound.
func (r *cachedRecord) size() int {
	return len(r.Payload) + len(r.Key) + len(r.SID) + len(r.Subject) + cachedRecordSize
}

// cachedRecordSize approximates the memory of a cached record beyond its
// payload and strings: the Record in its map slot, the key's header and
// the entry's bookkeeping.
const cachedRecordSize = 160

func (c *CachedStore) remember(ctx context.Context, r *Record) {
	now := c.now()
	if now.UnixNano() < c.quiet.Load() {
		return
	}
	exp := now.Add(c.ttl)
	if r.ExpiresAt.Before(exp) {
		exp = r.ExpiresAt
	}
	cp := cachedRecord{Record: *r, until: exp.Unix()}
	if _, ok := ctx.Value(decodedKey{}).(*decodedHint); ok {
		cp.Payload, cp.headerOnly = nil, true
	} else {
		// The caller keeps r; clipped, so that an append to a Payload
		// handed out below never writes into the cached array.
		cp.Payload = slices.Clip(bytes.Clone(r.Payload))
	}
	c.cache.Put(r.Key, cp, cp.until, cp.size(), now.Unix())
}

// Load implements Store.
func (c *CachedStore) Load(ctx context.Context, key string) (*Record, error) {
	if ctx.Value(bypassKey{}) == nil && !c.failing.Load() {
		now := c.now()
		if r, ok := c.cache.Get(key, now.Unix()); ok && now.Before(r.ExpiresAt) && (!r.headerOnly || c.holds(ctx, key, r.Version)) {
			// The payload is shared with the cache, not cloned: a Record's
			// Payload is read-only (Store.Load). A header alone goes only
			// to the Manager that holds this version decoded.
			cp := r.Record
			return &cp, nil
		}
	}
	r, err := c.reload(ctx, key)
	c.observe(err)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			c.cache.Delete(key)
		}
		return nil, err
	}
	c.remember(ctx, r)
	return r, nil
}

// holds reports whether ctx says its caller holds version of key decoded.
func (c *CachedStore) holds(ctx context.Context, key string, version int64) bool {
	h, ok := ctx.Value(decodedKey{}).(*decodedHint)
	return ok && h.key == key && h.version == version
}

// Save implements Store: write-through; a conflict evicts the stale copy.
func (c *CachedStore) Save(ctx context.Context, r *Record) error {
	err := c.Store.Save(ctx, r)
	c.observe(err)
	if err != nil {
		c.cache.Delete(r.Key)
		return err
	}
	c.remember(ctx, r)
	return nil
}

// Delete implements Store.
func (c *CachedStore) Delete(ctx context.Context, key string) error {
	c.cache.Delete(key)
	err := c.Store.Delete(ctx, key)
	c.observe(err)
	return err
}

// DeleteBySID implements Store.
func (c *CachedStore) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	keys, err := c.Store.DeleteBySID(ctx, sid)
	c.observe(err)
	c.forget(keys)
	return keys, err
}

// DeleteBySubject implements Store.
func (c *CachedStore) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	keys, err := c.Store.DeleteBySubject(ctx, subject)
	c.observe(err)
	c.forget(keys)
	return keys, err
}

// MarkOnce implements Store: marks are never cached, so that every
// instance asks the shared store and a replay is seen by all of them.
func (c *CachedStore) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	first, err := c.Store.MarkOnce(ctx, key, until)
	c.observe(err)
	return first, err
}

// Close ends the subscription and closes the wrapped store.
func (c *CachedStore) Close() error {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	c.mu.Unlock()
	return c.Store.Close()
}
