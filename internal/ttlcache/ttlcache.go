// Package ttlcache is a sharded, size-bounded map whose entries expire at a
// fixed time. Lookups of present entries do not allocate.
package ttlcache

import (
	"hash/maphash"
	"sync"
)

const shards = 16

// Cache maps strings to values of type V until each entry's expiry. It is
// bounded in entries and in (caller-estimated) bytes; when full it drops
// expired entries first, then arbitrary ones. Expired entries are also
// dropped by the first Put to a shard at least sweepEvery after its last
// sweep, so that under steady traffic memory follows the live entries
// rather than climbing to the bounds.
//
// Entries are found by a seeded 64-bit hash of the key, computed once per
// call (it also picks the shard), and answer only for the very key they
// were put with: keys that share a hash (2⁻⁶⁴ for any two, and not
// chosen by whoever picks the keys, who does not know the seed) take each
// other's place, costing a miss, never a wrong answer. Long keys (tokens)
// are thus read once per lookup rather than twice, and the shard maps
// hold no pointers to follow when probing.
type Cache[V any] struct {
	seed       maphash.Seed
	maxEntries int // per shard
	maxBytes   int // per shard
	shards     [shards]shard[V]
}

type shard[V any] struct {
	mu    sync.RWMutex
	m     map[uint64]entry[V] // by hash of the key
	bytes int
	swept int64    // unix seconds of the last sweep of expired entries
	_     [32]byte // keep shards on separate cache lines
}

// sweepEvery is the minimum time, in seconds, between two sweeps of a
// shard's expired entries.
const sweepEvery = 30

type entry[V any] struct {
	key  string
	val  V
	exp  int64 // unix seconds: the entry is gone from this second on
	size int
}

// New returns a cache holding at most maxEntries entries and about maxBytes
// bytes (both at least 1 per shard).
func New[V any](maxEntries, maxBytes int) *Cache[V] {
	c := &Cache[V]{
		seed:       maphash.MakeSeed(),
		maxEntries: max(1, maxEntries/shards),
		maxBytes:   max(1, maxBytes/shards),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]entry[V])
	}
	return c
}

// locate returns key's hash and shard.
func (c *Cache[V]) locate(key string) (uint64, *shard[V]) {
	h := maphash.String(c.seed, key)
	return h, &c.shards[h%shards]
}

// Get returns the value for key if it has not expired at now (unix seconds).
func (c *Cache[V]) Get(key string, now int64) (V, bool) {
	h, s := c.locate(key)
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	// The same string as put (the usual case: the caller's) compares by
	// pointer, without reading it.
	if !ok || e.key != key || now >= e.exp {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Update calls fn with a pointer to key's value, if key has an entry
// (expired or not), under the shard's lock; the entry keeps what fn did
// to the value if fn returns true. Its expiry and size stay as they were.
func (c *Cache[V]) Update(key string, fn func(*V) bool) {
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok || e.key != key {
		return
	}
	if fn(&e.val) {
		s.m[h] = e
	}
}

// Delete removes key.
func (c *Cache[V]) Delete(key string) {
	h, s := c.locate(key)
	s.mu.Lock()
	if e, ok := s.m[h]; ok && e.key == key {
		delete(s.m, h)
		s.bytes -= e.size
	}
	s.mu.Unlock()
}

// Clear removes every entry.
func (c *Cache[V]) Clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// Put stores val under key until exp (unix seconds). size estimates the
// entry's memory in bytes; an entry larger than a shard's budget is not
// stored.
func (c *Cache[V]) Put(key string, val V, exp int64, size int, now int64) {
	if size > c.maxBytes || exp <= now {
		return
	}
	h, s := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[h]; ok {
		// key's own entry, or another key's with the same hash: either
		// way this one takes its place.
		delete(s.m, h)
		s.bytes -= old.size
	}
	if len(s.m) >= c.maxEntries || s.bytes+size > c.maxBytes {
		s.evict(now, c.maxEntries, c.maxBytes-size)
	} else if now-s.swept >= sweepEvery {
		s.dropExpired(now)
	}
	s.m[h] = entry[V]{key: key, val: val, exp: exp, size: size}
	s.bytes += size
}

// evict drops expired entries, then arbitrary ones (map iteration order is
// randomised) until an eighth of the shard is free, so that a full shard is
// not scanned on every insert; s.mu must be held.
func (s *shard[V]) evict(now int64, maxEntries, maxBytes int) {
	s.dropExpired(now)
	targetEntries := maxEntries - max(1, maxEntries/8)
	targetBytes := maxBytes - maxBytes/8
	for k, e := range s.m {
		if len(s.m) <= targetEntries && s.bytes <= targetBytes {
			break
		}
		delete(s.m, k)
		s.bytes -= e.size
	}
}

// dropExpired removes the entries expired at now; s.mu must be held.
func (s *shard[V]) dropExpired(now int64) {
	for k, e := range s.m {
		if e.exp <= now {
			delete(s.m, k)
			s.bytes -= e.size
		}
	}
	s.swept = now
}

// Len returns the number of entries, expired or not.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Bytes returns the estimated memory of all entries.
func (c *Cache[V]) Bytes() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += s.bytes
		s.mu.RUnlock()
	}
	return n
}
