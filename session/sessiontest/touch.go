package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

// testTouch checks session.Toucher on stores that implement it: the
// expiry only grows, nothing else of the record changes (a Save with the
// version loaded before still succeeds), the sid and subject indexes
// follow the longer life, and neither missing nor expired records nor
// marks come back to life.
func testTouch(t *testing.T, s session.Store) {
	ts, ok := s.(session.Toucher)
	if !ok {
		t.Skip("the store is not a session.Toucher")
	}
	ctx := context.Background()
	expiry := func(key string) time.Time {
		t.Helper()
		got, err := s.Load(ctx, key)
		if err != nil {
			t.Fatalf("Load after Touch: %v", err)
		}
		return got.ExpiresAt
	}
	near := func(got, want time.Time) bool { d := got.Sub(want); return d < time.Second && d > -time.Second }

	if err := ts.Touch(ctx, Key(), time.Now().Add(time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a missing key: err = %v, want ErrNotFound", err)
	}

	r := record("sub-touch-"+Key()[:8], "sid-touch-"+Key()[:8])
	r.ExpiresAt = time.Now().Add(1500 * time.Millisecond)
	mustSave(t, s, r)
	later := time.Now().Add(2 * time.Hour)
	if err := ts.Touch(ctx, r.Key, later); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	got, err := s.Load(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !near(got.ExpiresAt, later) || got.Version != r.Version || got.Subject != r.Subject || got.SID != r.SID || !bytes.Equal(got.Payload, r.Payload) {
		t.Fatalf("after Touch: %+v; want the record unchanged but for ExpiresAt %v", got, later)
	}
	// An earlier expiry is not taken.
	if err := ts.Touch(ctx, r.Key, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Touch with an earlier expiry: %v", err)
	}
	if e := expiry(r.Key); !near(e, later) {
		t.Fatalf("an earlier expiry shortened the record: %v, want %v", e, later)
	}
	// The version did not move: the writer that loaded it can still save.
	v := record("u", "")
	mustSave(t, s, v)
	if err := ts.Touch(ctx, v.Key, later); err != nil {
		t.Fatal(err)
	}
	v.Payload = []byte("after-touch")
	if err := s.Save(ctx, v); err != nil {
		t.Fatalf("Save with the version loaded before a Touch: %v, want success", err)
	}

	// Past the first expiry, the record and its indexes are alive.
	time.Sleep(2 * time.Second)
	if _, err := s.Load(ctx, r.Key); err != nil {
		t.Fatalf("Load after the expiry before Touch: %v (Touch did not extend the record)", err)
	}
	if keys, err := s.DeleteBySID(ctx, r.SID); err != nil || len(keys) != 1 || keys[0] != r.Key {
		t.Fatalf("DeleteBySID after the expiry before Touch = %v, %v; want [%s] (the sid index expired)", keys, err, r.Key)
	}
	if err := ts.Touch(ctx, r.Key, time.Now().Add(time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a deleted record: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch brought a deleted record back: %v", err)
	}

	sub := record("sub-touch2-"+Key()[:8], "")
	sub.ExpiresAt = time.Now().Add(1500 * time.Millisecond)
	mustSave(t, s, sub)
	if err := ts.Touch(ctx, sub.Key, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if keys, err := s.DeleteBySubject(ctx, sub.Subject); err != nil || len(keys) != 1 {
		t.Fatalf("DeleteBySubject after the expiry before Touch = %v, %v; want the touched record", keys, err)
	}

	// An expired record stays expired.
	gone := record("u", "")
	gone.ExpiresAt = time.Now().Add(500 * time.Millisecond)
	mustSave(t, s, gone)
	time.Sleep(1200 * time.Millisecond)
	if err := ts.Touch(ctx, gone.Key, time.Now().Add(time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of an expired record: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, gone.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch brought an expired record back: %v", err)
	}

	// A mark is not a record: Touch does not find it.
	mark := "touch-mark-" + Key()
	if first, err := s.MarkOnce(ctx, mark, time.Now().Add(time.Hour)); err != nil || !first {
		t.Fatalf("MarkOnce = %v, %v", first, err)
	}
	if err := ts.Touch(ctx, mark, time.Now().Add(2*time.Hour)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a mark's key: err = %v, want ErrNotFound", err)
	}
}

// testLoadHeader checks session.HeaderLoader on stores that implement it:
// the same answers as Load, without the payload.
func testLoadHeader(t *testing.T, s session.Store) {
	hl, ok := s.(session.HeaderLoader)
	if !ok {
		t.Skip("the store is not a session.HeaderLoader")
	}
	ctx := context.Background()
	_, err := hl.LoadHeader(ctx, Key())
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the store wraps one that is not a session.HeaderLoader")
	}
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("LoadHeader of a missing key: err = %v, want ErrNotFound", err)
	}
	r := record("sub-h-"+Key()[:8], "sid-h-"+Key()[:8])
	mustSave(t, s, r)
	mustSave(t, s, r) // version 2
	full, err := s.Load(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hl.LoadHeader(ctx, r.Key)
	if err != nil {
		t.Fatalf("LoadHeader: %v", err)
	}
	if h.Payload != nil || h.Key != full.Key || h.Subject != full.Subject || h.SID != full.SID || h.Version != 2 || !h.ExpiresAt.Equal(full.ExpiresAt) {
		t.Fatalf("LoadHeader = %+v; want %+v without its payload", h, full)
	}
	if err := s.Delete(ctx, r.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := hl.LoadHeader(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("LoadHeader of a deleted record: err = %v, want ErrNotFound", err)
	}
	gone := record("u", "")
	gone.ExpiresAt = time.Now().Add(500 * time.Millisecond)
	mustSave(t, s, gone)
	time.Sleep(1200 * time.Millisecond)
	if _, err := hl.LoadHeader(ctx, gone.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("LoadHeader of an expired record: err = %v, want ErrNotFound", err)
	}
	mark := Key()
	if first, err := s.MarkOnce(ctx, mark, time.Now().Add(time.Hour)); err != nil || !first {
		t.Fatalf("MarkOnce = %v, %v", first, err)
	}
	if _, err := hl.LoadHeader(ctx, mark); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("LoadHeader of a marked key: err = %v, want ErrNotFound", err)
	}
}
