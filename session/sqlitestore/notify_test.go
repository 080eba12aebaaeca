package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/sqldb"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

// every is the notify interval of the tests; patience how long they wait
// for a delivery (generous: -race and parallel tests slow polls down).
const (
	every    = 20 * time.Millisecond
	patience = 5 * time.Second
)

// recorder is a subscriber's fn that keeps its calls (nil for fn(nil)) and
// fails the test if two calls overlap.
type recorder struct {
	t        testing.TB
	mu       sync.Mutex
	calls    [][]string
	signal   chan struct{}
	inFlight atomic.Int32
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, signal: make(chan struct{}, 1)}
}

func (r *recorder) fn(keys []string) {
	if r.inFlight.Add(1) != 1 {
		r.t.Error("fn called concurrently")
	}
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	r.calls = append(r.calls, keys)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// waitFor waits until a call satisfies ok and returns every call so far.
func (r *recorder) waitFor(t testing.TB, what string, ok func(keys []string) bool) [][]string {
	t.Helper()
	deadline := time.After(patience)
	for {
		calls := r.snapshot()
		if slices.ContainsFunc(calls, ok) {
			return calls
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no call with %s within %s; calls: %q", what, patience, calls)
		}
	}
}

// waitKey waits until key is delivered.
func (r *recorder) waitKey(t testing.TB, key string) [][]string {
	t.Helper()
	return r.waitFor(t, "key "+key, func(keys []string) bool { return slices.Contains(keys, key) })
}

// waitNil waits for an fn(nil).
func (r *recorder) waitNil(t testing.TB) [][]string {
	t.Helper()
	return r.waitFor(t, "nil", func(keys []string) bool { return keys == nil })
}

func quiet() Option { return WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) }

// pair opens two Stores on one file, as two processes would: a, which
// subscribes, and b, which deletes and never sweeps by itself.
func pair(t *testing.T, opts ...Option) (a, b *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessions.db")
	a = openT(t, path, append([]Option{WithNotifyInterval(every), quiet()}, opts...)...)
	b = openT(t, path, append([]Option{WithSweepInterval(0), quiet()}, opts...)...)
	return a, b
}

func subscribe(t *testing.T, s *Store) *recorder {
	t.Helper()
	r := newRecorder(t)
	if err := s.Subscribe(t.Context(), r.fn); err != nil {
		t.Fatal(err)
	}
	return r
}

// sentinel deletes a fresh session through s and returns its key: once a
// subscriber has it, it has everything deleted before.
func sentinel(t *testing.T, s *Store) string {
	t.Helper()
	r := rec("sentinel", "")
	mustSave(t, s, r)
	if err := s.Delete(context.Background(), r.Key); err != nil {
		t.Fatal(err)
	}
	return r.Key
}

func TestSubscribeDeliversDeletions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// act changes the store through b and returns the keys a's
		// subscriber must receive.
		act func(t *testing.T, b *Store) []string
	}{
		{"Delete", func(t *testing.T, b *Store) []string {
			r := rec("alice", "sid-1")
			mustSave(t, b, r)
			if err := b.Delete(ctx, r.Key); err != nil {
				t.Fatal(err)
			}
			return []string{r.Key}
		}},
		{"DeleteBySID", func(t *testing.T, b *Store) []string {
			x, y, other := rec("alice", "sid-1"), rec("bob", "sid-1"), rec("alice", "sid-2")
			for _, r := range []*session.Record{x, y, other} {
				mustSave(t, b, r)
			}
			keys, err := b.DeleteBySID(ctx, "sid-1")
			if err != nil || len(keys) != 2 {
				t.Fatalf("DeleteBySID = %v, %v", keys, err)
			}
			return []string{x.Key, y.Key}
		}},
		{"DeleteBySubject", func(t *testing.T, b *Store) []string {
			x, y, other := rec("alice", "sid-1"), rec("alice", ""), rec("bob", "sid-1")
			for _, r := range []*session.Record{x, y, other} {
				mustSave(t, b, r)
			}
			keys, err := b.DeleteBySubject(ctx, "alice")
			if err != nil || len(keys) != 2 {
				t.Fatalf("DeleteBySubject = %v, %v", keys, err)
			}
			return []string{x.Key, y.Key}
		}},
		{"deletions of nothing", func(t *testing.T, b *Store) []string {
			if err := b.Delete(ctx, sessiontest.Key()); err != nil {
				t.Fatal(err)
			}
			for _, del := range []func(context.Context, string) ([]string, error){b.DeleteBySID, b.DeleteBySubject} {
				if keys, err := del(ctx, "nobody"); err != nil || len(keys) != 0 {
					t.Fatalf("deletion of nothing = %v, %v", keys, err)
				}
				if keys, err := del(ctx, ""); err != nil || len(keys) != 0 {
					t.Fatalf("deletion of nothing = %v, %v", keys, err)
				}
			}
			return nil
		}},
		{"expired sessions", func(t *testing.T, b *Store) []string {
			r := rec("alice", "sid-1")
			r.ExpiresAt = time.Now().Add(-time.Second)
			mustSave(t, b, r)
			r2 := rec("alice", "sid-1")
			r2.ExpiresAt = r.ExpiresAt
			mustSave(t, b, r2)
			if err := b.Delete(ctx, r.Key); err != nil {
				t.Fatal(err)
			}
			if keys, err := b.DeleteBySID(ctx, "sid-1"); err != nil || len(keys) != 0 {
				t.Fatalf("DeleteBySID of expired sessions = %v, %v", keys, err)
			}
			if n := countRows(t, b.r, DefaultTable); n != 0 {
				t.Fatalf("%d expired rows left", n)
			}
			return nil
		}},
		{"MarkOnce and Save", func(t *testing.T, b *Store) []string {
			if first, err := b.MarkOnce(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil || !first {
				t.Fatalf("MarkOnce = %v, %v", first, err)
			}
			if first, err := b.MarkOnce(ctx, "jti-2", time.Now().Add(-time.Second)); err != nil || !first {
				t.Fatalf("MarkOnce = %v, %v", first, err)
			}
			if _, err := b.Sweep(ctx); err != nil { // removes the expired mark
				t.Fatal(err)
			}
			r := rec("alice", "sid-1")
			mustSave(t, b, r)
			mustSave(t, b, r)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := pair(t)
			got := subscribe(t, a)
			want := tt.act(t, b)
			last := sentinel(t, b)
			calls := got.waitKey(t, last)
			// The deletion's keys come in one call, before the
			// sentinel's or with it, and nothing else comes.
			var all []string
			for _, c := range calls {
				if c == nil {
					t.Fatalf("fn(nil) without a failure: %q", calls)
				}
				all = append(all, c...)
			}
			want = append(want, last)
			slices.Sort(all)
			slices.Sort(want)
			if !slices.Equal(all, want) {
				t.Fatalf("delivered %q, want %q", all, want)
			}
			if len(want) > 1 && !slices.ContainsFunc(calls, func(c []string) bool { return len(c) >= len(want)-1 }) {
				t.Fatalf("one deletion's keys came in several calls: %q", calls)
			}
		})
	}
}

// Deletions reach every subscription, also one on the deleting Store, and
// reach it within a few intervals.
func TestSubscribeLatency(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	fromA, fromB := subscribe(t, a), subscribe(t, b)
	r := rec("alice", "sid-1")
	mustSave(t, a, r)
	start := time.Now()
	if _, err := a.DeleteBySID(context.Background(), "sid-1"); err != nil {
		t.Fatal(err)
	}
	fromA.waitKey(t, r.Key)
	t.Logf("delivered after %s at a notify interval of %s", time.Since(start), every)
	fromB.waitKey(t, r.Key)
	t.Logf("delivered after %s at a notify interval of %s", time.Since(start), DefaultNotifyInterval)
}

func TestSubscribeStartsAtTheEnd(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	before := sentinel(t, b)
	got := subscribe(t, a)
	after := sentinel(t, b)
	calls := got.waitKey(t, after)
	if !sameCalls(calls, [][]string{{after}}) {
		t.Fatalf("calls %q, want only %q (not %q, deleted before Subscribe)", calls, after, before)
	}
}

// Cancelling ctx or closing the Store ends the subscription: its goroutine
// exits and fn is not called again.
func TestSubscribeStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stop func(a *Store, cancel context.CancelFunc) error
	}{
		{"ctx cancelled", func(_ *Store, cancel context.CancelFunc) error { cancel(); return nil }},
		{"store closed", func(a *Store, _ context.CancelFunc) error { return a.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := pair(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			got := newRecorder(t)
			if err := a.Subscribe(ctx, got.fn); err != nil {
				t.Fatal(err)
			}
			got.waitKey(t, sentinel(t, b))
			if err := tt.stop(a, cancel); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { a.subs.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(patience):
				t.Fatal("the subscription's goroutine did not exit")
			}
			n := len(got.snapshot())
			sentinel(t, b)
			time.Sleep(10 * every)
			if calls := got.snapshot(); len(calls) != n {
				t.Fatalf("fn called after the subscription ended: %q", calls[n:])
			}
		})
	}
}

func TestSubscribeRefuses(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Subscribe(cancelled, func([]string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a cancelled ctx: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(context.Background(), func([]string) {}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

// While the log cannot be read, the subscriber hears fn(nil) once; when it
// can again, fn(nil) once more, and then the entries written meanwhile.
func TestSubscribeOutage(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	path := filepath.Join(t.TempDir(), "sessions.db")
	a := openT(t, path, WithNotifyInterval(every), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	b := openT(t, path, WithSweepInterval(0), quiet())
	got := subscribe(t, a)
	first := sentinel(t, b)
	got.waitKey(t, first)

	// The log disappears under its name, as when an operator moves it
	// away with the sqlite3 tool; entries keep being written to it.
	raw := rawDB(t, path)
	logTable := `"` + DefaultTable + `_deleted"`
	if _, err := raw.Exec(`ALTER TABLE ` + logTable + ` RENAME TO moved`); err != nil {
		t.Fatal(err)
	}
	got.waitNil(t)
	time.Sleep(5 * every) // several failed polls: still one fn(nil)
	if _, err := raw.Exec(`INSERT INTO moved ("key", at) VALUES ('deleted-meanwhile', ?)`, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`ALTER TABLE moved RENAME TO ` + logTable); err != nil {
		t.Fatal(err)
	}
	got.waitKey(t, "deleted-meanwhile")
	last := sentinel(t, b)
	calls := got.waitKey(t, last)
	if want := [][]string{{first}, nil, nil, {"deleted-meanwhile"}, {last}}; !sameCalls(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	if !strings.Contains(logs.String(), "reading the deletion log failed") || !strings.Contains(logs.String(), "works again") {
		t.Errorf("the outage was not logged: %s", logs.String())
	}
}

// A subscriber stuck in fn for longer than the retention has entries
// pruned from under it: it is told so (fn(nil)) and resumes at the end.
func TestSubscribePrunedPast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// newer: deletions after the prune and before the subscriber
		// wakes (covered by its fn(nil), not delivered).
		newer int
	}{
		{"everything pruned", 0},
		{"newer entries kept", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := pair(t)
			got := newRecorder(t)
			stuck, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			if err := a.Subscribe(t.Context(), func(keys []string) {
				got.fn(keys)
				once.Do(func() { close(stuck); <-release })
			}); err != nil {
				t.Fatal(err)
			}
			first := sentinel(t, b)
			<-stuck
			for range 3 {
				sentinel(t, b)
			}
			// Age the entries past the retention, and sweep.
			if _, err := b.w.Exec(`UPDATE "`+b.logName+`" SET at = at - ?`, (2 * b.retention).Milliseconds()); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if n := countRows(t, b.r, b.logName); n != 0 {
				t.Fatalf("%d log entries left after the sweep", n)
			}
			for range tt.newer {
				sentinel(t, b)
			}
			close(release)
			got.waitNil(t)
			last := sentinel(t, b)
			calls := got.waitKey(t, last)
			if want := [][]string{{first}, nil, {last}}; !sameCalls(calls, want) {
				t.Fatalf("calls %q, want %q", calls, want)
			}
		})
	}
}

func TestSweepPrunesTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b := pair(t)
	var keys []string
	for range 5 {
		keys = append(keys, sentinel(t, b))
	}
	// The first three are older than the retention.
	if _, err := b.w.Exec(`UPDATE "`+b.logName+`" SET at = at - ? WHERE seq <= 3`, b.retention.Milliseconds()+1000); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, err := b.r.Query(`SELECT "key" FROM "` + b.logName + `" ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		left = append(left, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, keys[3:]) {
		t.Fatalf("log after the sweep: %q, want %q", left, keys[3:])
	}
	// An empty log stays empty, and seqs are not handed out again.
	if _, err := b.w.Exec(`UPDATE "` + b.logName + `" SET at = 0`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sentinel(t, b)
	var seq int64
	if err := b.r.QueryRow(`SELECT seq FROM "` + b.logName + `"`).Scan(&seq); err != nil || seq != 6 {
		t.Fatalf("seq after pruning everything = %d, %v; want 6", seq, err)
	}
}

func TestNotifyIntervalAndRetention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opt                 time.Duration
		interval, retention time.Duration
	}{
		{0, DefaultNotifyInterval, time.Minute},
		{-time.Second, DefaultNotifyInterval, time.Minute},
		{time.Second, time.Second, time.Minute},
		{30 * time.Second, 30 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.opt), func(t *testing.T) {
			t.Parallel()
			s := openT(t, filepath.Join(t.TempDir(), "sessions.db"), WithNotifyInterval(tt.opt))
			if s.notifyEvery != tt.interval || s.retention != tt.retention {
				t.Fatalf("interval %s, retention %s; want %s, %s", s.notifyEvery, s.retention, tt.interval, tt.retention)
			}
		})
	}
}

// notNotifier hides the Store's Subscribe, as the SQLite store was before
// it had one.
type notNotifier struct{ session.Store }

// A logout through one process evicts the session from another process's
// cache, long before the cache's TTL.
func TestCachedStoreEvictedByAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := pair(t)
	cached, err := session.NewCachedStore(ctx, a, session.CacheOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cached.Close() })
	if !cached.Notified() {
		t.Fatal("the CachedStore did not subscribe")
	}
	blind, err := session.NewCachedStore(ctx, notNotifier{a}, session.CacheOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	r := rec("alice", "sid-1")
	mustSave(t, cached, r)
	mustLoad(t, blind, r.Key)
	if keys, err := b.DeleteBySID(ctx, "sid-1"); err != nil || len(keys) != 1 {
		t.Fatalf("DeleteBySID through the other process = %v, %v", keys, err)
	}
	start := time.Now()
	for {
		_, err := cached.Load(ctx, r.Key)
		if errors.Is(err, session.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > patience {
			t.Fatalf("the cache still serves the session %s after the deletion", patience)
		}
		time.Sleep(every / 4)
	}
	t.Logf("evicted after %s (notify interval %s)", time.Since(start), every)
	// Without notifications the cache would have served it for its TTL.
	if got, err := blind.Load(ctx, r.Key); err != nil || !bytes.Equal(got.Payload, r.Payload) {
		t.Fatalf("a cache without notifications: %v, %v; want the stale record", got, err)
	}
}

// A file at schema version 2 gets the deletion log when opened, and keeps
// its sessions.
func TestMigratesToDeletionLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	if _, err := sqldb.PrepareFile(path, "sqlitestore", "session database"); err != nil {
		t.Fatal(err)
	}
	old := rawDB(t, path)
	if err := migrate(ctx, old, DefaultTable, 2); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	if _, err := old.Exec(`INSERT INTO `+DefaultTable+` ("key", subject, sid, expires_at, version, payload) VALUES ('k1', 'alice', 'sid-1', ?, 1, x'00')`, exp); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := old.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = ?`, DefaultTable+"_deleted").Scan(&n); err != nil || n != 0 {
		t.Fatalf("version 2 has a deletion log: %d, %v", n, err)
	}
	_ = old.Close()

	a := openT(t, path, WithNotifyInterval(every), quiet())
	if v, err := sqldb.Version(ctx, a.r, sqldb.SQLite{}, component(DefaultTable)); err != nil || v != 3 {
		t.Fatalf("schema version after Open = %d, %v; want 3", v, err)
	}
	got := subscribe(t, a)
	b := openT(t, path, quiet())
	if keys, err := b.DeleteBySubject(ctx, "alice"); err != nil || !slices.Equal(keys, []string{"k1"}) {
		t.Fatalf("DeleteBySubject of the old session = %v, %v", keys, err)
	}
	got.waitKey(t, "k1")
}

// sameCalls compares calls, telling fn(nil) from fn([]string{}).
func sameCalls(got, want [][]string) bool {
	return slices.EqualFunc(got, want, func(g, w []string) bool { return (g == nil) == (w == nil) && slices.Equal(g, w) })
}

// syncBuffer is a bytes.Buffer for a logger written from a goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BenchmarkDeleteLogged: Delete of a live session now (with its log entry,
// in a transaction) against the single statement it was before ("unlogged"),
// and the same for a missing session.
func BenchmarkDeleteLogged(b *testing.B) {
	ctx := context.Background()
	for _, bb := range []struct {
		name string
		live bool
		del  func(s *Store, key string) error
	}{
		{"logged", true, func(s *Store, key string) error { return s.Delete(ctx, key) }},
		{"unlogged", true, func(s *Store, key string) error { _, err := s.w.ExecContext(ctx, s.qDelete, key); return err }},
		{"missing", false, func(s *Store, key string) error { return s.Delete(ctx, key) }},
		{"missing-unlogged", false, func(s *Store, key string) error { _, err := s.w.ExecContext(ctx, s.qDelete, key); return err }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s := openT(b, filepath.Join(b.TempDir(), "sessions.db"), WithSweepInterval(0))
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%09d", i)
			}
			if bb.live {
				insertSessions(b, s, keys)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := bb.del(s, keys[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// insertSessions saves live sessions under keys in one transaction.
func insertSessions(b *testing.B, s *Store, keys []string) {
	b.Helper()
	tx, err := s.w.Begin()
	if err != nil {
		b.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	for _, k := range keys {
		if _, err := tx.Exec(`INSERT INTO `+s.table+` ("key", subject, sid, expires_at, version, payload) VALUES (?, 'u', 's', ?, 1, x'00')`, k, exp); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPoll: one poll of a subscription when nothing was deleted, with
// a retention's worth of entries in the log.
func BenchmarkPoll(b *testing.B) {
	ctx := context.Background()
	s := openT(b, filepath.Join(b.TempDir(), "sessions.db"), WithSweepInterval(0))
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%09d", i)
	}
	insertSessions(b, s, keys)
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	var last int64
	if err := s.r.QueryRowContext(ctx, s.qHead, s.logName).Scan(&last); err != nil || last != 1000 {
		b.Fatalf("end of the log = %d, %v", last, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		keys, missed, err := s.poll(ctx, &last)
		if err != nil || missed || len(keys) != 0 {
			b.Fatal(keys, missed, err)
		}
	}
}
