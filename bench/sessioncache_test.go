package bench

// Tests of the session caches that BenchmarkGatewaySessions relies on,
// through the session package's public API only. (They belong with the
// session package; they are here because the change that needed them
// could add files only to this module.)

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

// countingStore counts the loads that reach the store.
type countingStore struct {
	session.Store
	loads atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, key string) (*session.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, key)
}

// hookStore calls after, once, when the next Load of the store it wraps
// has returned; with strip, it takes the payload off the next record
// loaded.
type hookStore struct {
	session.Store
	after func()
	strip bool
}

func (h *hookStore) Load(ctx context.Context, key string) (*session.Record, error) {
	r, err := h.Store.Load(ctx, key)
	if f := h.after; f != nil {
		h.after = nil
		f()
	}
	if h.strip && r != nil {
		h.strip = false
		cp := *r
		cp.Payload = nil
		r = &cp
	}
	return r, err
}

func newRing(t *testing.T) *session.Keyring {
	t.Helper()
	keys, err := session.ParseKeys(session.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := session.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// TestCachedStoreUnderManager: in front of a store, a CachedStore used by
// a Manager keeps record headers only (the Manager keeps the session
// decoded); the Manager is served from memory, any other caller gets
// whole records, and a Manager that no longer holds the version decoded
// reads it from the store instead of taking the header for a corrupt
// session.
func TestCachedStoreUnderManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backend := &countingStore{Store: session.NewMemoryStore()}
	cached, err := session.NewCachedStore(ctx, backend, session.CacheOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cached.Close()
	ring := newRing(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	hook := &hookStore{Store: cached}
	mgr, err := session.NewManager(session.Config{Store: hook, Keyring: ring, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s := &session.State{Subject: "alice", SID: "sid-1", AccessToken: "at", RefreshToken: "rt", IDToken: "it"}
	if err := mgr.Create(ctx, httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}

	for range 5 {
		got, err := mgr.Load(ctx, s.ID)
		if err != nil || got.Subject != "alice" || got.RefreshToken != "rt" {
			t.Fatalf("Load = %+v, %v", got, err)
		}
	}
	if n := backend.loads.Load(); n != 0 {
		t.Fatalf("%d loads reached the store, want 0", n)
	}

	// The decoded session expires between the cache's answer (a header,
	// for the version the Manager held when it asked) and its decoding:
	// what the Manager held is still that version.
	hook.after = func() { clock.Add(int64(10 * time.Minute)) }
	got, err := mgr.Load(ctx, s.ID)
	if err != nil || got.Subject != "alice" || got.IDToken != "it" {
		t.Fatalf("Load after the decoded session expired = %+v, %v", got, err)
	}
	if n := backend.loads.Load(); n != 0 {
		t.Fatalf("%d loads reached the store, want 0", n)
	}
	// Then it is decoded again, from the store.
	if got, err := mgr.Load(ctx, s.ID); err != nil || got.RefreshToken != "rt" {
		t.Fatalf("Load after the decoded session expired = %+v, %v", got, err)
	}
	if n := backend.loads.Load(); n != 1 {
		t.Fatalf("%d loads reached the store, want 1", n)
	}

	// A header without payload for a version the Manager does not hold
	// (no cache sends one, but a store might): the Manager reads the
	// whole record instead of ending the session as undecryptable.
	strip := &hookStore{Store: backend}
	strip.strip = true
	fresh, _ := session.NewManager(session.Config{Store: strip, Keyring: ring, Now: now})
	if got, err := fresh.Load(ctx, s.ID); err != nil || got.Subject != "alice" {
		t.Fatalf("Load of a header = %+v, %v", got, err)
	}
	if n := backend.loads.Load(); n != 3 {
		t.Fatalf("%d loads reached the store, want 3", n)
	}

	// Another Manager (another decoded cache) over the same cache: the
	// header is not for it; it reads the record from the store.
	other, _ := session.NewManager(session.Config{Store: cached, Keyring: ring, Now: now})
	if got, err := other.Load(ctx, s.ID); err != nil || got.Subject != "alice" {
		t.Fatalf("other Manager: %+v, %v", got, err)
	}
	if n := backend.loads.Load(); n != 4 {
		t.Fatalf("%d loads reached the store, want 4", n)
	}

	// Another caller of the cache: a whole record, from the store.
	rec, err := cached.Load(ctx, s.Key())
	if err != nil || len(rec.Payload) == 0 {
		t.Fatalf("cache Load without a Manager = %+v, %v; want the payload", rec, err)
	}
	if n := backend.loads.Load(); n != 5 {
		t.Fatalf("%d loads reached the store, want 5", n)
	}

	// A deletion through the Manager is seen at once.
	if err := mgr.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Load(ctx, s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
}

// TestMemoryStoreIndexes: a subject's sessions stay findable whichever of
// them ends first (the store keeps the first key of each sid and subject
// inline), and a loaded payload can be appended to without changing the
// stored one.
func TestMemoryStoreIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := session.NewMemoryStore()
	defer s.Close()
	exp := time.Now().Add(time.Hour)
	keys := []string{"k1", "k2", "k3", "k4"}
	for i, k := range keys {
		r := &session.Record{Key: k, Subject: "alice", SID: "sid-" + k, ExpiresAt: exp, Payload: []byte{byte(i)}}
		if err := s.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	// k2's sid moves: the old sid no longer finds it.
	r, err := s.Load(ctx, "k2")
	if err != nil {
		t.Fatal(err)
	}
	grown := append(r.Payload, 'x')
	grown[0] = 9
	if again, _ := s.Load(ctx, "k2"); len(again.Payload) != 1 || again.Payload[0] != 1 {
		t.Fatalf("an append to a loaded payload changed the stored one: %v", again.Payload)
	}
	r.SID = "sid-moved"
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DeleteBySID(ctx, "sid-k2"); len(got) != 0 {
		t.Fatalf("old sid: %v", got)
	}
	got, err := s.DeleteBySubject(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"k2", "k3", "k4"}) {
		t.Fatalf("DeleteBySubject = %v, want [k2 k3 k4]", got)
	}
	if got, _ := s.DeleteBySID(ctx, "sid-moved"); len(got) != 0 {
		t.Fatalf("a deleted session is still indexed: %v", got)
	}
	if s.Len() != 0 {
		t.Fatalf("%d records left", s.Len())
	}
}
