package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyStore is a Store whose operations fail while down is set, as a
// shared store does when the network to it is cut. (The gateway's tests
// cut real Redis and PostgreSQL behind a fault proxy.)
type flakyStore struct {
	Store
	down atomic.Bool
	// deletesDown fails deletions alone: the store answers reads, but a
	// journal cannot apply what it holds.
	deletesDown atomic.Bool
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (f *flakyStore) err() error {
	if f.down.Load() {
		return errUnreachable
	}
	return nil
}

func (f *flakyStore) deleteErr() error {
	if f.deletesDown.Load() {
		return errUnreachable
	}
	return f.err()
}

func (f *flakyStore) Load(ctx context.Context, key string) (*Record, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.Load(ctx, key)
}

func (f *flakyStore) Save(ctx context.Context, r *Record) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.Save(ctx, r)
}

func (f *flakyStore) Delete(ctx context.Context, key string) error {
	if err := f.deleteErr(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *flakyStore) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	if err := f.deleteErr(); err != nil {
		return nil, err
	}
	return f.Store.DeleteBySID(ctx, sid)
}

func (f *flakyStore) DeleteBySubject(ctx context.Context, sub string) ([]string, error) {
	if err := f.deleteErr(); err != nil {
		return nil, err
	}
	return f.Store.DeleteBySubject(ctx, sub)
}

func saveRecord(t *testing.T, s Store, key, sub, sid string) {
	t.Helper()
	r := &Record{Key: key, Subject: sub, SID: sid, ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("sealed")}
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJournalDefersAndApplies: for each kind of deletion, a deletion the
// store refuses is journaled (ErrLogoutDeferred), the sessions it names
// are refused by Load at once, even when the store answers again before
// the journal is applied, and the journal reaches the store by itself.
func TestJournalDefersAndApplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		del  func(j *JournaledStore) error
	}{
		{"key", func(j *JournaledStore) error { return j.Delete(context.Background(), "k1") }},
		{"sid", func(j *JournaledStore) error { _, err := j.DeleteBySID(context.Background(), "sid-1"); return err }},
		{"sub", func(j *JournaledStore) error { _, err := j.DeleteBySubject(context.Background(), "alice"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner := &flakyStore{Store: NewMemoryStore()}
			saveRecord(t, inner, "k1", "alice", "sid-1")
			saveRecord(t, inner, "k2", "bob", "sid-2")
			path := filepath.Join(t.TempDir(), "j")
			// A long retry interval: the test decides when the store is back.
			j, err := NewJournaledStore(inner, JournalConfig{Path: path, RetryInterval: time.Hour, RecoveryHold: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()

			inner.down.Store(true)
			err = tt.del(j)
			if !errors.Is(err, ErrLogoutDeferred) || !errors.Is(err, errUnreachable) {
				t.Fatalf("deletion with the store down: %v, want ErrLogoutDeferred wrapping the store's error", err)
			}
			if data, _ := os.ReadFile(path); !strings.Contains(string(data), `"op":"`+tt.name+`"`) {
				t.Fatalf("journal file: %q", data)
			}
			inner.down.Store(false)
			if _, err := j.Load(context.Background(), "k1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a journaled session was loaded before the journal was applied: %v", err)
			}
			if _, err := j.Load(context.Background(), "k2"); err != nil {
				t.Fatalf("another user's session: %v", err)
			}
			if _, err := inner.Load(context.Background(), "k1"); err != nil {
				t.Fatalf("the store lost the record before the journal was applied: %v", err)
			}
			j.apply(context.Background())
			if _, err := inner.Load(context.Background(), "k1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after applying the journal the store still has the session: %v", err)
			}
			if j.Pending() != 0 {
				t.Fatalf("pending after apply: %d", j.Pending())
			}
			if data, _ := os.ReadFile(path); len(data) != 0 {
				t.Fatalf("journal after apply: %q", data)
			}
		})
	}
}

// TestJournalLoopApplies: the background loop applies an entry once the
// store answers, without anyone asking.
func TestJournalLoopApplies(t *testing.T) {
	t.Parallel()
	inner := &flakyStore{Store: NewMemoryStore()}
	saveRecord(t, inner, "k1", "alice", "sid-1")
	j, err := NewJournaledStore(inner, JournalConfig{Path: filepath.Join(t.TempDir(), "j"), RetryInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	inner.down.Store(true)
	if _, err := j.DeleteBySID(context.Background(), "sid-1"); !errors.Is(err, ErrLogoutDeferred) {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if j.Pending() != 1 {
		t.Fatalf("applied while the store was down? pending %d", j.Pending())
	}
	inner.down.Store(false)
	waitFor(t, "the loop to apply the journal", func() bool { return j.Pending() == 0 })
	if _, err := inner.Load(context.Background(), "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store after the loop: %v", err)
	}
}

// TestJournalSurvivesCrash: an entry written before the process died
// (no Close) is applied by the next instance on the same file.
func TestJournalSurvivesCrash(t *testing.T) {
	t.Parallel()
	inner := &flakyStore{Store: NewMemoryStore()}
	saveRecord(t, inner, "k1", "alice", "sid-1")
	path := filepath.Join(t.TempDir(), "j")
	j, err := NewJournaledStore(inner, JournalConfig{Path: path, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	inner.down.Store(true)
	if _, err := j.DeleteBySID(context.Background(), "sid-1"); !errors.Is(err, ErrLogoutDeferred) {
		t.Fatal(err)
	}
	// The crash: the loop stops, the file and its lock go, nothing else.
	j.stop()
	<-j.done
	j.file.Close()

	// The store is back for reads, but the restarted journal cannot apply
	// its entry yet: it must still refuse the session (before, its loop
	// could apply the entry before this test looked, on a busy machine).
	inner.deletesDown.Store(true)
	inner.down.Store(false)
	j2, err := NewJournaledStore(inner, JournalConfig{Path: path, RetryInterval: 10 * time.Millisecond, RecoveryHold: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if j2.Pending() != 1 {
		t.Fatalf("pending after restart: %d", j2.Pending())
	}
	if _, err := j2.Load(context.Background(), "k1"); err == nil {
		t.Fatal("the restarted instance served a journaled session")
	}
	inner.deletesDown.Store(false)
	waitFor(t, "the restarted instance to apply the journal", func() bool { return j2.Pending() == 0 })
	if _, err := inner.Load(context.Background(), "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store after restart: %v", err)
	}
}

// TestJournalFile: what the journal does with the files it may find.
func TestJournalFile(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	line := func(op, v string, at time.Time) string {
		return `{"op":"` + op + `","v":"` + v + `","at":"` + at.Format(time.RFC3339Nano) + `"}` + "\n"
	}
	tests := []struct {
		name    string
		content string
		pending int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"two entries", line("sid", "a", now) + line("sub", "b", now), 2, ""},
		{"torn last line is dropped", line("sid", "a", now) + `{"op":"sid","v":"b`, 1, ""},
		{"expired entries are dropped", line("sid", "old", now.Add(-11*time.Hour)) + line("sid", "new", now), 1, ""},
		{"damaged line", line("sid", "a", now) + "garbage\n" + line("sid", "b", now), 0, "line 2 is not a journal entry"},
		{"unknown op", `{"op":"drop","v":"x","at":"` + now.Format(time.RFC3339) + `"}` + "\n" + line("sid", "b", now), 0, `unknown op "drop"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "j")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			inner := &flakyStore{Store: NewMemoryStore()}
			inner.down.Store(true) // keep entries pending
			j, err := NewJournaledStore(inner, JournalConfig{Path: path, RetryInterval: time.Hour})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if j.Pending() != tt.pending {
				t.Fatalf("pending %d, want %d", j.Pending(), tt.pending)
			}
		})
	}
}

// TestJournalLocked: two instances cannot share one journal file.
func TestJournalLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j")
	j, err := NewJournaledStore(NewMemoryStore(), JournalConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewJournaledStore(NewMemoryStore(), JournalConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second journal on one file: %v", err)
	}
	j.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an empty journal is removed on Close: %v", err)
	}
	j2, err := NewJournaledStore(NewMemoryStore(), JournalConfig{Path: path})
	if err != nil {
		t.Fatalf("after Close the file is free: %v", err)
	}
	j2.Close()
}

// TestJournalWriteFails: when the journal cannot be written either, the
// deletion is not acknowledged: the store's error comes back, without
// ErrLogoutDeferred.
func TestJournalWriteFails(t *testing.T) {
	t.Parallel()
	inner := &flakyStore{Store: NewMemoryStore()}
	j, err := NewJournaledStore(inner, JournalConfig{Path: filepath.Join(t.TempDir(), "j"), RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	j.mu.Lock()
	j.file.Close() // every write now fails
	j.mu.Unlock()
	inner.down.Store(true)
	_, err = j.DeleteBySID(context.Background(), "sid-1")
	if err == nil || errors.Is(err, ErrLogoutDeferred) || !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "logout journal failed") {
		t.Fatalf("deletion with store and journal failing: %v", err)
	}
	if j.Pending() != 0 {
		t.Fatal("an entry that was not written counts as pending")
	}
}

// TestJournalRecoveryHold: after the store failed, Load refuses every
// session for RecoveryHold from the store's first answer, then serves again.
func TestJournalRecoveryHold(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	inner := &flakyStore{Store: NewMemoryStore()}
	saveRecord(t, inner, "k1", "alice", "sid-1")
	j, err := NewJournaledStore(inner, JournalConfig{Path: filepath.Join(t.TempDir(), "j"), RetryInterval: time.Hour, RecoveryHold: 3 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Load(context.Background(), "k1"); err != nil {
		t.Fatalf("before any failure: %v", err)
	}
	inner.down.Store(true)
	if _, err := j.Load(context.Background(), "k1"); !errors.Is(err, errUnreachable) {
		t.Fatalf("store down: %v", err)
	}
	advance(time.Minute)
	inner.down.Store(false)
	if _, err := j.Load(context.Background(), "k1"); !errors.Is(err, ErrRecovering) {
		t.Fatalf("first answer after the outage: %v, want ErrRecovering", err)
	}
	advance(2 * time.Second)
	if _, err := j.Load(context.Background(), "k1"); !errors.Is(err, ErrRecovering) {
		t.Fatalf("within the hold: %v, want ErrRecovering", err)
	}
	advance(2 * time.Second)
	if _, err := j.Load(context.Background(), "k1"); err != nil {
		t.Fatalf("after the hold: %v", err)
	}
	// A cancelled caller is not an outage.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j.observe(ctx.Err())
	if _, err := j.Load(context.Background(), "k1"); err != nil {
		t.Fatalf("after a cancelled call: %v", err)
	}
}

// TestCachedStoreFailsClosed: once the store fails, the cache serves
// nothing (deletions made elsewhere meanwhile cannot reach it) until the
// store answers again.
func TestCachedStoreFailsClosed(t *testing.T) {
	t.Parallel()
	inner, c := cachedOverFlaky(t)
	inner.down.Store(true)
	if _, err := c.Load(context.Background(), "k1"); err != nil {
		t.Fatalf("a cached record before the cache knows of the outage: %v", err)
	}
	if err := c.Save(context.Background(), &Record{Key: "k2", ExpiresAt: time.Now().Add(time.Hour)}); !errors.Is(err, errUnreachable) {
		t.Fatal(err)
	}
	if _, err := c.Load(context.Background(), "k1"); !errors.Is(err, errUnreachable) {
		t.Fatalf("the cache served a record while the store was known to be down: %v", err)
	}
	inner.down.Store(false)
	if _, err := c.Load(context.Background(), "k1"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestCachedStoreMissedDeletions: fn(nil) from a Notifier (its
// subscription was lost) empties the cache, and nothing is served from
// memory until the store answers again.
func TestCachedStoreMissedDeletions(t *testing.T) {
	t.Parallel()
	inner, c := cachedOverFlaky(t)
	inner.down.Store(true)
	c.evict(nil)
	if _, err := c.Load(context.Background(), "k1"); !errors.Is(err, errUnreachable) {
		t.Fatalf("served from memory after the subscription was lost: %v", err)
	}
	inner.down.Store(false)
	// Deleted elsewhere while the subscription was down: not served.
	if err := inner.Delete(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(context.Background(), "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after recovery: %v, want ErrNotFound", err)
	}
}

// cachedOverFlaky returns a flaky store holding alice's record k1 and a
// one-hour CachedStore over it that has already cached k1.
func cachedOverFlaky(t *testing.T) (*flakyStore, *CachedStore) {
	t.Helper()
	inner := &flakyStore{Store: NewMemoryStore()}
	saveRecord(t, inner, "k1", "alice", "sid-1")
	c, err := NewCachedStore(context.Background(), inner, CacheOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Load(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	return inner, c
}
