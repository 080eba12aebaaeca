package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// notifyingCounter is a memory store that counts loads and hands its
// subscriber's fn to the test.
type notifyingCounter struct {
	*MemoryStore
	loads atomic.Int64
	mu    sync.Mutex
	fn    func([]string)
}

func (n *notifyingCounter) Load(ctx context.Context, key string) (*Record, error) {
	n.loads.Add(1)
	return n.MemoryStore.Load(ctx, key)
}

func (n *notifyingCounter) Subscribe(_ context.Context, fn func([]string)) error {
	n.mu.Lock()
	n.fn = fn
	n.mu.Unlock()
	return nil
}

// After the Notifier says deletions may have been missed, the cache
// caches nothing for a while (records read meanwhile may come from a
// master about to be demoted), and then caches again: for 5 s, or the TTL
// if shorter, not for a whole one-minute TTL.
func TestCachedStoreQuietAfterMissedDeletions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		ttl   time.Duration
		quiet time.Duration
	}{
		{"default TTL (1 minute)", 0, quietAfterMissed},
		{"TTL shorter than the quiet time", 2 * time.Second, 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := &notifyingCounter{MemoryStore: NewMemoryStore()}
			c, err := NewCachedStore(context.Background(), store, CacheOptions{TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			now := time.Now()
			c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			ctx := context.Background()
			r := &Record{Key: "k", ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("p")}
			if err := c.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
			load := func() {
				t.Helper()
				if _, err := c.Load(ctx, "k"); err != nil {
					t.Fatal(err)
				}
			}
			reads := func(what string, want int64) {
				t.Helper()
				if got := store.loads.Swap(0); got != want {
					t.Fatalf("%s: %d reads from the store, want %d", what, got, want)
				}
			}
			load()
			reads("cached", 0)

			store.mu.Lock()
			fn := store.fn
			store.mu.Unlock()
			fn(nil) // deletions may have been missed
			load()
			load()
			reads("right after", 2)
			advance(tt.quiet - time.Second)
			load()
			load()
			reads("just before the quiet time ends", 2)
			advance(2 * time.Second)
			load() // read, and cached again
			load()
			load()
			reads("after the quiet time", 1)
		})
	}
}
