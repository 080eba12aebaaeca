package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Toucher is implemented by stores that can extend a record's life
// without rewriting it. Manager.Touch uses it to keep a session in use
// alive: extending an expiry is a small write, where a Save re-encrypts
// and rewrites the whole sealed payload (a few kilobytes), once a minute
// for every session in use. Wrappers (CachedStore, JournaledStore)
// implement it over any store and return an error wrapping
// errors.ErrUnsupported when the store below does not.
type Toucher interface {
	// Touch sets the expiry of the live record under key to expiresAt if
	// that is later than the one stored, leaving its version, payload,
	// subject and sid as they are. It returns ErrNotFound if no live
	// record is under key. A record's version says which payload it holds,
	// so a Touch does not change it: copies of the record cached elsewhere
	// stay valid, and a concurrent Save is not turned into a conflict.
	Touch(ctx context.Context, key string, expiresAt time.Time) error
}

// touch calls store's Touch, or says it has none (errors.ErrUnsupported).
func touch(ctx context.Context, store Store, key string, expiresAt time.Time) error {
	t, ok := store.(Toucher)
	if !ok {
		return fmt.Errorf("session: the store cannot extend a record's expiry (no Touch): %w", errors.ErrUnsupported)
	}
	return t.Touch(ctx, key, expiresAt)
}

// Touch implements Toucher.
func (s *MemoryStore) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok || !s.now().Before(r.ExpiresAt) {
		return ErrNotFound
	}
	if expiresAt.After(r.ExpiresAt) {
		r.ExpiresAt = expiresAt
		s.records[key] = r
	}
	return nil
}

// Touch implements Toucher over the wrapped store. A cached copy of the
// record gets the new expiry but keeps its time in the cache: the TTL
// still bounds how long changes made elsewhere can go unseen.
func (c *CachedStore) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	err := touch(ctx, c.Store, key, expiresAt)
	if errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	c.observe(err)
	if err != nil {
		c.cache.Delete(key)
		return err
	}
	now := c.now().Unix()
	if r, ok := c.cache.Get(key, now); ok && expiresAt.After(r.ExpiresAt) {
		r.ExpiresAt = expiresAt
		c.cache.Put(key, r, r.until, r.size(), now)
	}
	return nil
}

// Touch implements Toucher over the wrapped store.
func (j *JournaledStore) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	err := touch(ctx, j.Store, key, expiresAt)
	if !errors.Is(err, errors.ErrUnsupported) {
		j.observe(err)
	}
	return err
}
