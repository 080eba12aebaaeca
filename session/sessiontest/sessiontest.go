// Package sessiontest is the conformance suite every session.Store must
// pass. Store implementations (including third-party ones) run it from
// their tests:
//
//	func TestConformance(t *testing.T) {
//		sessiontest.Run(t, func(t *testing.T) session.Store { return openMyStore(t) })
//	}
package sessiontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

// Run runs the suite. open returns a fresh, empty store (or one whose keys
// cannot collide with other runs); Run closes it.
func Run(t *testing.T, open func(t *testing.T) session.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s session.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"CreateAndLoad", testCreateAndLoad},
		{"CreateTwiceConflicts", testCreateTwice},
		{"UpdateWithVersion", testUpdate},
		{"StaleUpdateConflicts", testStaleUpdate},
		{"UpdateMissingConflicts", testUpdateMissing},
		{"Delete", testDelete},
		{"DeleteBySID", testDeleteBySID},
		{"DeleteBySubject", testDeleteBySubject},
		{"IndexFollowsUpdates", testIndexFollowsUpdates},
		{"Expiry", testExpiry},
		{"BinaryAndLargePayload", testPayloads},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"CancelledContext", testCancelled},
		{"MarkOnce", testMarkOnce},
		{"MarkOnceExpiry", testMarkOnceExpiry},
		{"MarkOnceIsNotARecord", testMarkOnceNotRecord},
		{"MarkOnceConcurrent", testMarkOnceConcurrent},
		{"Touch", testTouch},
		{"LoadHeader", testLoadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tt.fn(t, s)
		})
	}
}

// Key returns a random store key shaped like the ones session.Manager uses.
func Key() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func record(sub, sid string) *session.Record {
	return &session.Record{
		Key:       Key(),
		Subject:   sub,
		SID:       sid,
		ExpiresAt: time.Now().Add(time.Hour),
		Payload:   []byte("payload-" + sub),
	}
}

func mustSave(t *testing.T, s session.Store, r *session.Record) {
	t.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatalf("Save(%s): %v", r.Key, err)
	}
}

func testLoadMissing(t *testing.T, s session.Store) {
	if _, err := s.Load(context.Background(), Key()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of a missing key: err = %v, want ErrNotFound", err)
	}
}

func testCreateAndLoad(t *testing.T, s session.Store) {
	r := record("sub-"+Key()[:8], "sid-"+Key()[:8])
	mustSave(t, s, r)
	if r.Version != 1 {
		t.Fatalf("Version after create = %d, want 1", r.Version)
	}
	got, err := s.Load(context.Background(), r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != r.Key || got.Subject != r.Subject || got.SID != r.SID || got.Version != 1 || !bytes.Equal(got.Payload, r.Payload) {
		t.Fatalf("Load = %+v, want %+v", got, r)
	}
	if d := got.ExpiresAt.Sub(r.ExpiresAt); d > time.Second || d < -time.Second {
		t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, r.ExpiresAt)
	}
}

func testCreateTwice(t *testing.T, s session.Store) {
	r := record("a", "")
	mustSave(t, s, r)
	again := *r
	again.Version = 0
	again.Payload = []byte("intruder")
	if err := s.Save(context.Background(), &again); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("second create: err = %v, want ErrConflict", err)
	}
	got, err := s.Load(context.Background(), r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != string(r.Payload) {
		t.Fatal("a failed create changed the record")
	}
}

func testUpdate(t *testing.T, s session.Store) {
	r := record("a", "s1")
	mustSave(t, s, r)
	r.Payload = []byte("second")
	mustSave(t, s, r)
	if r.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", r.Version)
	}
	got, _ := s.Load(context.Background(), r.Key)
	if string(got.Payload) != "second" || got.Version != 2 {
		t.Fatalf("Load after update = %+v", got)
	}
}

func testStaleUpdate(t *testing.T, s session.Store) {
	r := record("a", "")
	mustSave(t, s, r)
	a, _ := s.Load(context.Background(), r.Key)
	b, _ := s.Load(context.Background(), r.Key)
	a.Payload = []byte("from a")
	mustSave(t, s, a)
	b.Payload = []byte("from b")
	if err := s.Save(context.Background(), b); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale update: err = %v, want ErrConflict", err)
	}
	if b.Version != 1 {
		t.Fatalf("a failed Save changed Version to %d", b.Version)
	}
	got, _ := s.Load(context.Background(), r.Key)
	if string(got.Payload) != "from a" {
		t.Fatalf("payload = %q, want the first writer's", got.Payload)
	}
}

func testUpdateMissing(t *testing.T, s session.Store) {
	r := record("a", "")
	r.Version = 3
	if err := s.Save(context.Background(), r); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("update of a missing record: err = %v, want ErrConflict", err)
	}
	if _, err := s.Load(context.Background(), r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatal("a failed update created the record")
	}
}

func testDelete(t *testing.T, s session.Store) {
	r := record("a", "s")
	mustSave(t, s, r)
	if err := s.Delete(context.Background(), r.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background(), r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete: err = %v", err)
	}
	if err := s.Delete(context.Background(), r.Key); err != nil {
		t.Fatalf("Delete of a missing record: %v", err)
	}
	// A deleted key can be created again.
	r.Version = 0
	mustSave(t, s, r)
}

func testDeleteBySID(t *testing.T, s session.Store) {
	sid := "sid-" + Key()[:12]
	a, b, other := record("u1", sid), record("u1", sid), record("u1", "sid-other-"+Key()[:8])
	for _, r := range []*session.Record{a, b, other} {
		mustSave(t, s, r)
	}
	keys, err := s.DeleteBySID(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{a.Key, b.Key}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("DeleteBySID keys = %v, want %v", keys, want)
	}
	for _, r := range []*session.Record{a, b} {
		if _, err := s.Load(context.Background(), r.Key); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("session of the sid still loads: %v", err)
		}
	}
	if _, err := s.Load(context.Background(), other.Key); err != nil {
		t.Fatalf("session of another sid was removed: %v", err)
	}
	if keys, err := s.DeleteBySID(context.Background(), sid); err != nil || len(keys) != 0 {
		t.Fatalf("second DeleteBySID = %v, %v", keys, err)
	}
	if keys, err := s.DeleteBySID(context.Background(), ""); err != nil || len(keys) != 0 {
		t.Fatalf("DeleteBySID(\"\") = %v, %v; want nothing deleted", keys, err)
	}
}

func testDeleteBySubject(t *testing.T, s session.Store) {
	sub := "sub-" + Key()[:12]
	a, b, other := record(sub, "s1-"+Key()[:6]), record(sub, ""), record("sub-other-"+Key()[:8], "s1")
	for _, r := range []*session.Record{a, b, other} {
		mustSave(t, s, r)
	}
	keys, err := s.DeleteBySubject(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("DeleteBySubject deleted %d sessions, want 2", len(keys))
	}
	if _, err := s.Load(context.Background(), other.Key); err != nil {
		t.Fatalf("another user's session was removed: %v", err)
	}
	if keys, err := s.DeleteBySubject(context.Background(), ""); err != nil || len(keys) != 0 {
		t.Fatalf("DeleteBySubject(\"\") = %v, %v; want nothing deleted", keys, err)
	}
}

func testIndexFollowsUpdates(t *testing.T, s session.Store) {
	oldSID, newSID := "sid-old-"+Key()[:8], "sid-new-"+Key()[:8]
	r := record("u", oldSID)
	mustSave(t, s, r)
	r.SID = newSID
	mustSave(t, s, r)
	if keys, _ := s.DeleteBySID(context.Background(), oldSID); len(keys) != 0 {
		t.Fatalf("the old sid still finds the session: %v", keys)
	}
	if keys, _ := s.DeleteBySID(context.Background(), newSID); len(keys) != 1 {
		t.Fatalf("the new sid does not find the session: %v", keys)
	}
}

func testExpiry(t *testing.T, s session.Store) {
	r := record("u", "sid-exp-"+Key()[:8])
	r.ExpiresAt = time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, r)
	if _, err := s.Load(context.Background(), r.Key); err != nil {
		t.Fatalf("Load before expiry: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := s.Load(context.Background(), r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after expiry: err = %v, want ErrNotFound", err)
	}
	// An expired key counts as absent: it can be created again.
	r.Version = 0
	r.ExpiresAt = time.Now().Add(time.Hour)
	mustSave(t, s, r)
}

func testPayloads(t *testing.T, s session.Store) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := bytes.Repeat([]byte{0, 0xff, 'x'}, 64<<10/3)
	for _, p := range [][]byte{all, large} {
		r := record("u", "")
		r.Payload = p
		mustSave(t, s, r)
		got, err := s.Load(context.Background(), r.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Payload, p) {
			t.Fatalf("payload of %d bytes came back altered", len(p))
		}
	}
}

func testConcurrentCAS(t *testing.T, s session.Store) {
	r := record("u", "")
	mustSave(t, s, r)
	const workers, rounds = 8, 5
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				cur, err := s.Load(context.Background(), r.Key)
				if err != nil {
					t.Error(err)
					return
				}
				cur.Payload = append(cur.Payload, '+')
				switch err := s.Save(context.Background(), cur); {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, session.ErrConflict):
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Load(context.Background(), r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != int64(wins)+1 {
		t.Fatalf("version %d after %d successful saves, want %d: an update was lost or doubled", got.Version, wins, wins+1)
	}
	if n := bytes.Count(got.Payload, []byte("+")); n != wins {
		t.Fatalf("payload carries %d updates, want %d", n, wins)
	}
}

func testCancelled(t *testing.T, s session.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := record("u", "")
	if err := s.Save(ctx, r); err == nil {
		t.Fatal("Save with a cancelled context succeeded")
	}
	if _, err := s.Load(ctx, r.Key); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load with a cancelled context: err = %v, want the context error", err)
	}
}

func markOnce(t *testing.T, s session.Store, key string, until time.Time) bool {
	t.Helper()
	first, err := s.MarkOnce(context.Background(), key, until)
	if err != nil {
		t.Fatalf("MarkOnce(%s): %v", key, err)
	}
	return first
}

func testMarkOnce(t *testing.T, s session.Store) {
	a, b := Key(), Key()
	until := time.Now().Add(time.Hour)
	if !markOnce(t, s, a, until) {
		t.Fatal("the first MarkOnce of a key reported a replay")
	}
	if markOnce(t, s, a, until) {
		t.Fatal("the second MarkOnce of a key reported no replay")
	}
	if markOnce(t, s, a, until.Add(time.Hour)) {
		t.Fatal("a later until let a live mark be set again")
	}
	if !markOnce(t, s, b, until) {
		t.Fatal("a mark of one key made another key a replay")
	}
	if _, err := s.MarkOnce(context.Background(), "", until); err == nil {
		t.Fatal("MarkOnce of an empty key succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.MarkOnce(ctx, Key(), until); err == nil {
		t.Fatal("MarkOnce with a cancelled context succeeded")
	}
}

func testMarkOnceExpiry(t *testing.T, s session.Store) {
	k := Key()
	if !markOnce(t, s, k, time.Now().Add(1200*time.Millisecond)) {
		t.Fatal("first MarkOnce reported a replay")
	}
	if markOnce(t, s, k, time.Now().Add(time.Hour)) {
		t.Fatal("MarkOnce before the mark expired reported no replay")
	}
	time.Sleep(2500 * time.Millisecond)
	if !markOnce(t, s, k, time.Now().Add(time.Hour)) {
		t.Fatal("an expired mark still counts")
	}
	if markOnce(t, s, k, time.Now().Add(time.Hour)) {
		t.Fatal("the mark set again after expiry does not count")
	}
}

// testMarkOnceNotRecord: marks and records live apart, even under the
// same key string.
func testMarkOnceNotRecord(t *testing.T, s session.Store) {
	ctx := context.Background()
	sub, sid := "sub-"+Key()[:12], "sid-"+Key()[:12]
	r := record(sub, sid)
	mustSave(t, s, r)
	if !markOnce(t, s, r.Key, time.Now().Add(time.Hour)) {
		t.Fatal("a record made MarkOnce of its key report a replay")
	}
	got, err := s.Load(ctx, r.Key)
	if err != nil || got.Version != 1 || !bytes.Equal(got.Payload, r.Payload) || got.Subject != sub {
		t.Fatalf("MarkOnce changed the record under the same key: %+v, %v", got, err)
	}
	k := Key()
	markOnce(t, s, k, time.Now().Add(time.Hour))
	if _, err := s.Load(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of a marked key: err = %v, want ErrNotFound", err)
	}
	// A record can be created under a marked key, and deleting it leaves
	// the mark.
	nr := record("u", "")
	nr.Key = k
	mustSave(t, s, nr)
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if markOnce(t, s, k, time.Now().Add(time.Hour)) {
		t.Fatal("Delete of a record removed the mark under the same key")
	}
	for _, del := range []func() ([]string, error){
		func() ([]string, error) { return s.DeleteBySID(ctx, sid) },
		func() ([]string, error) { return s.DeleteBySubject(ctx, sub) },
		func() ([]string, error) { return s.DeleteBySID(ctx, "") },
		func() ([]string, error) { return s.DeleteBySubject(ctx, "") },
	} {
		keys, err := del()
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			if key != r.Key {
				t.Fatalf("a deletion returned %q, which is no record's key", key)
			}
		}
	}
	if markOnce(t, s, r.Key, time.Now().Add(time.Hour)) || markOnce(t, s, k, time.Now().Add(time.Hour)) {
		t.Fatal("a deletion of records removed marks")
	}
}

// testMarkOnceConcurrent: of callers racing for one key, exactly one wins.
func testMarkOnceConcurrent(t *testing.T, s session.Store) {
	const workers, rounds = 16, 5
	for range rounds {
		k := Key()
		until := time.Now().Add(time.Hour)
		var wins sync.WaitGroup
		var mu sync.Mutex
		n := 0
		start := make(chan struct{})
		for range workers {
			wins.Add(1)
			go func() {
				defer wins.Done()
				<-start
				first, err := s.MarkOnce(context.Background(), k, until)
				if err != nil {
					t.Error(err)
					return
				}
				if first {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wins.Wait()
		if n != 1 {
			t.Fatalf("%d of %d concurrent MarkOnce calls won, want exactly 1", n, workers)
		}
	}
}
