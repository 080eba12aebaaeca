package session

import (
	"context"
	"errors"
	"fmt"
)

// HeaderLoader is implemented by stores that can read a record without its
// payload. A CachedStore under a Manager uses it when a cached record's
// TTL has passed: the Manager still holds the session decoded, and only
// needs to know that the record is alive and at the same version. That
// spares the store and the network the sealed payload (a few kilobytes)
// for every session in use, every TTL.
type HeaderLoader interface {
	// LoadHeader returns the live record under key with a nil Payload, or
	// ErrNotFound, exactly as Load would but for the payload.
	LoadHeader(ctx context.Context, key string) (*Record, error)
}

// loadHeader calls store's LoadHeader, or says it has none
// (errors.ErrUnsupported).
func loadHeader(ctx context.Context, store Store, key string) (*Record, error) {
	h, ok := store.(HeaderLoader)
	if !ok {
		return nil, fmt.Errorf("session: the store cannot read a record without its payload (no LoadHeader): %w", errors.ErrUnsupported)
	}
	return h.LoadHeader(ctx, key)
}

// LoadHeader implements HeaderLoader.
func (s *MemoryStore) LoadHeader(ctx context.Context, key string) (*Record, error) {
	r, err := s.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	r.Payload = nil
	return r, nil
}

// reload reads key from the store for Load. A Manager holding a version
// decoded (ctx's decodedHint) gets the header alone when the record is
// still at that version; otherwise, or when the store cannot read
// headers, the whole record.
func (c *CachedStore) reload(ctx context.Context, key string) (*Record, error) {
	if h, ok := ctx.Value(decodedKey{}).(*decodedHint); ok && h.key == key && h.version > 0 && ctx.Value(bypassKey{}) == nil {
		r, err := loadHeader(ctx, c.Store, key)
		if err == nil && r.Version == h.version {
			return r, nil
		}
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return nil, err
		}
	}
	return c.Store.Load(ctx, key)
}

// LoadHeader implements HeaderLoader over the wrapped store (an error
// wrapping errors.ErrUnsupported when it has none). It always asks the
// store: a caller that wants a header wants to know the record is there.
func (c *CachedStore) LoadHeader(ctx context.Context, key string) (*Record, error) {
	r, err := loadHeader(ctx, c.Store, key)
	if !errors.Is(err, errors.ErrUnsupported) {
		c.observe(err)
	}
	return r, err
}
