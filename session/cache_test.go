package session_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/redisstore"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

func TestCachedStoreConformance(t *testing.T) {
	t.Parallel()
	sessiontest.Run(t, func(t *testing.T) session.Store {
		c, err := session.NewCachedStore(context.Background(), session.NewMemoryStore(), session.CacheOptions{TTL: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// countingStore counts backend loads.
type countingStore struct {
	session.Store
	loads int
}

func (c *countingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads++
	return c.Store.Load(ctx, key)
}

func TestCachedStoreServesFromMemory(t *testing.T) {
	t.Parallel()
	backend := &countingStore{Store: session.NewMemoryStore()}
	c, _ := session.NewCachedStore(context.Background(), backend, session.CacheOptions{TTL: time.Hour})
	r := &session.Record{Key: sessiontest.Key(), ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("p")}
	if err := c.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := c.Load(context.Background(), r.Key); err != nil {
			t.Fatal(err)
		}
	}
	if backend.loads != 0 {
		t.Fatalf("%d backend loads, want 0", backend.loads)
	}
	if _, err := c.Load(session.WithoutCache(context.Background()), r.Key); err != nil || backend.loads != 1 {
		t.Fatalf("WithoutCache did not reach the backend: %v, %d loads", err, backend.loads)
	}
	// Another writer changes the record behind the cache: the next Save
	// conflicts and evicts, so the following Load sees the new version.
	fresh, _ := backend.Store.Load(context.Background(), r.Key)
	fresh.Payload = []byte("elsewhere")
	_ = backend.Store.Save(context.Background(), fresh)
	stale, _ := c.Load(context.Background(), r.Key)
	if err := c.Save(context.Background(), stale); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale save: %v", err)
	}
	if got, _ := c.Load(context.Background(), r.Key); string(got.Payload) != "elsewhere" {
		t.Fatalf("after conflict: %q", got.Payload)
	}
}

// TestCachedStoreInvalidationAcrossInstances: two instances with local
// caches over one Redis; a deletion on one is seen by the other at once.
func TestCachedStoreInvalidationAcrossInstances(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("CLOAKROOM_TEST_REDIS")
	if addr == "" {
		t.Skip("set CLOAKROOM_TEST_REDIS=127.0.0.1:6379 to run the Redis invalidation test")
	}
	prefix := "cloakroom-cache-test:" + sessiontest.Key()[:10] + ":"
	open := func() *session.CachedStore {
		rs, err := redisstore.Open("redis://"+addr, redisstore.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		c, err := session.NewCachedStore(context.Background(), rs, session.CacheOptions{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	if !a.Notified() {
		t.Fatal("a Redis-backed cache must be notified of deletions")
	}
	r := &session.Record{Key: sessiontest.Key(), SID: "sid-" + sessiontest.Key()[:8], ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("p")}
	if err := a.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(context.Background(), r.Key); err != nil { // now cached in b
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.DeleteBySID(context.Background(), r.SID); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := b.Load(context.Background(), r.Key)
		if errors.Is(err, session.ErrNotFound) {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("instance b still serves the deleted session from its cache")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("deletion visible on the other instance after %v", time.Since(start))
}

// headerCounting counts whole loads and header loads of a store that can
// read headers.
type headerCounting struct {
	*session.MemoryStore
	loads, headers int
}

func (c *headerCounting) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads++
	return c.MemoryStore.Load(ctx, key)
}

func (c *headerCounting) LoadHeader(ctx context.Context, key string) (*session.Record, error) {
	c.headers++
	return c.MemoryStore.LoadHeader(ctx, key)
}

// TestCachedStoreChecksHeadersAgain: once the cache's TTL has passed, a
// Manager that holds the session decoded has the record checked by its
// header alone; a version written elsewhere is read whole, and a deleted
// record is gone.
func TestCachedStoreChecksHeadersAgain(t *testing.T) {
	t.Parallel()
	backend := &headerCounting{MemoryStore: session.NewMemoryStore()}
	c, err := session.NewCachedStore(context.Background(), backend, session.CacheOptions{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kr := keyring(t, session.GenerateKey())
	clk := &clock{now: time.Now()}
	m := newManager(t, c, kr, clk, false)
	s := &session.State{Subject: "u", AccessToken: "at-1"}
	if err := m.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	load := func() *session.State {
		t.Helper()
		got, err := m.Load(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	load()
	if backend.loads+backend.headers != 0 {
		t.Fatalf("within the TTL: %d loads, %d header loads; want none", backend.loads, backend.headers)
	}
	time.Sleep(2100 * time.Millisecond) // the cache counts whole seconds
	if got := load(); got.AccessToken != "at-1" || backend.loads != 0 || backend.headers != 1 {
		t.Fatalf("after the TTL: %q, %d loads, %d header loads; want at-1, 0 and 1", got.AccessToken, backend.loads, backend.headers)
	}
	// Another instance writes a new version.
	other := newManager(t, backend.MemoryStore, kr, clk, false)
	o, err := other.Load(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	o.AccessToken = "at-2"
	if err := other.Save(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if got := load(); got.AccessToken != "at-2" || backend.loads != 1 || backend.headers != 2 {
		t.Fatalf("after a write elsewhere: %q, %d loads, %d header loads; want at-2, 1 and 2", got.AccessToken, backend.loads, backend.headers)
	}
	if err := backend.MemoryStore.Delete(context.Background(), s.Key()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := m.Load(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after a deletion elsewhere: err = %v, want ErrNotFound", err)
	}
}

// notifying is a store that says it notifies deletions.
type notifying struct{ session.Store }

func (notifying) Subscribe(context.Context, func([]string)) error { return nil }

// The default TTL is long only where deletions are pushed to the cache.
func TestCachedStoreDefaultTTL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		store session.Store
		want  time.Duration
	}{
		{"notifier", notifying{session.NewMemoryStore()}, session.DefaultNotifiedCacheTTL},
		{"no notifier", session.NewMemoryStore(), session.DefaultCacheTTL},
	} {
		c, err := session.NewCachedStore(context.Background(), tt.store, session.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.TTL() != tt.want || c.Notified() != (tt.want == session.DefaultNotifiedCacheTTL) {
			t.Errorf("%s: TTL %v, notified %v; want %v", tt.name, c.TTL(), c.Notified(), tt.want)
		}
	}
}
