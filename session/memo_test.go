package session

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/cloakroom/cloakroom/internal/sessionmemo"
)

// What login keeps with a session (internal/sessionmemo) comes back with
// the session's next Load, stays through a Touch or Save of the session
// by this Manager, and never outlives the decoded session it was kept
// with: not its deletion, not a version saved elsewhere, and a copy loaded
// before either cannot put it back.
func TestManagerKeepsMemoWithDecodedSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr, err := NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore()
	newManager := func() *Manager {
		m, err := NewManager(Config{Store: store, Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := newManager()
	w := httptest.NewRecorder()
	if err := m.Create(ctx, w, &State{Subject: "u", AccessToken: "access", RefreshToken: "refresh"}); err != nil {
		t.Fatal(err)
	}
	id := w.Result().Cookies()[0].Value
	load := func(m *Manager) *State {
		t.Helper()
		s, err := m.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	memoOf := func(s *State) string {
		v, _ := sessionmemo.Load(s).(string)
		return v
	}

	s := load(m)
	if v := memoOf(s); v != "" {
		t.Fatalf("a session never given a memo has %q", v)
	}
	sessionmemo.Store(m, s, "one")
	if v := memoOf(s); v != "one" {
		t.Errorf("the state the memo was stored on has %q, want one", v)
	}
	if v := memoOf(load(m)); v != "one" {
		t.Errorf("the next Load has memo %q, want one", v)
	}

	// Saved again by this Manager (as Touch does once a minute): the memo
	// goes on, and a copy loaded before the save cannot replace it.
	stale := load(m)
	s = load(m)
	s.Values = map[string]string{"k": "v"}
	if err := m.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	if v := memoOf(load(m)); v != "one" {
		t.Errorf("after a Save the next Load has memo %q, want one", v)
	}
	sessionmemo.Store(m, stale, "stale")
	if v := memoOf(load(m)); v != "one" {
		t.Errorf("a copy loaded before the Save replaced the memo: %q", v)
	}
	sessionmemo.Store(m, s, "two") // the state that was saved: its own version
	if v := memoOf(load(m)); v != "two" {
		t.Errorf("the saved state's memo did not reach the next Load: %q", v)
	}

	// A version saved by another instance is decoded anew, without it.
	other := newManager()
	o := load(other)
	o.Values = map[string]string{"k": "elsewhere"}
	if err := other.Save(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got := load(m); memoOf(got) != "" || got.Values["k"] != "elsewhere" {
		t.Errorf("a version saved elsewhere came with memo %q (values %v), want none", memoOf(got), got.Values)
	}

	// Deleted: a copy loaded before cannot give the memo back to a
	// session created again under another cookie, nor to the deleted one.
	s = load(m)
	sessionmemo.Store(m, s, "three")
	before := load(m)
	if err := m.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	sessionmemo.Store(m, before, "after delete")
	if _, ok := m.decoded.Get(s.key, m.now().Unix()); ok {
		t.Error("storing a memo on a deleted session's copy put the session back in the decoded cache")
	}
	if _, err := m.Load(ctx, id); err == nil {
		t.Error("the deleted session still loads")
	}
}
