package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

// TestLegacyValuesUpgrade: a session saved by a version that kept login's
// state in Values (cloakroom.opaque_at, .stepup, .userinfo) loads with the
// typed fields set and only the application's values left; the next Save
// writes the new form.
func TestLegacyValuesUpgrade(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	kr := keyring(t, session.GenerateKey())
	clk := &clock{now: time.Now()}
	old := newManager(t, store, kr, clk, false)
	w := httptest.NewRecorder()
	// What the previous version wrote: the payload format is unchanged
	// but for these Values keys.
	legacy := &session.State{Subject: "u", Values: map[string]string{
		"cloakroom.opaque_at": "1",
		"cloakroom.stepup":    "urn:mfa@x@1700000000",
		"cloakroom.userinfo":  `{"email":"a@example.com"}`,
		"directory_user_id":   "42",
	}}
	if err := old.Create(context.Background(), w, legacy); err != nil {
		t.Fatal(err)
	}
	// A new process: nothing decoded in memory.
	m := newManager(t, store, kr, clk, false)
	s, err := m.Get(requestWith(w))
	if err != nil {
		t.Fatal(err)
	}
	if !s.OpaqueAccessToken || s.StepUpACR != "urn:mfa@x" || !s.StepUpAt.Equal(time.Unix(1700000000, 0)) || string(s.UserinfoClaims) != `{"email":"a@example.com"}` {
		t.Fatalf("typed fields after upgrade: opaque %v, step-up %q at %v, userinfo %s", s.OpaqueAccessToken, s.StepUpACR, s.StepUpAt, s.UserinfoClaims)
	}
	if len(s.Values) != 1 || s.Values["directory_user_id"] != "42" {
		t.Fatalf("Values after upgrade: %v", s.Values)
	}
	if err := m.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	again, err := newManager(t, store, kr, clk, false).Get(requestWith(w))
	if err != nil || !again.OpaqueAccessToken || again.StepUpACR != "urn:mfa@x" || len(again.Values) != 1 {
		t.Fatalf("after Save in the new form: %+v, %v", again, err)
	}

	// Malformed legacy values are dropped, not trusted.
	bad := &session.State{Subject: "u", Values: map[string]string{"cloakroom.stepup": "gold", "cloakroom.userinfo": "{"}}
	w2 := httptest.NewRecorder()
	if err := old.Create(context.Background(), w2, bad); err != nil {
		t.Fatal(err)
	}
	s2, err := newManager(t, store, kr, clk, false).Get(requestWith(w2))
	if err != nil || s2.StepUpACR != "" || s2.UserinfoClaims != nil || s2.OpaqueAccessToken || s2.Values != nil {
		t.Fatalf("malformed legacy values: %+v, %v", s2, err)
	}
}

// TestTypedStateRoundTrip: the typed fields survive the store.
func TestTypedStateRoundTrip(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	kr := keyring(t, session.GenerateKey())
	clk := &clock{now: time.Now()}
	m := newManager(t, store, kr, clk, true)
	at := time.Unix(1800000000, 0)
	in := &session.State{Subject: "u", OpaqueAccessToken: true, StepUpACR: "gold", StepUpAt: at, UserinfoClaims: json.RawMessage(`{"name":"A"}`)}
	w := httptest.NewRecorder()
	if err := m.Create(context.Background(), w, in); err != nil {
		t.Fatal(err)
	}
	s, err := newManager(t, store, kr, clk, true).Get(requestWith(w))
	if err != nil || !s.OpaqueAccessToken || s.StepUpACR != "gold" || !s.StepUpAt.Equal(at) || string(s.UserinfoClaims) != `{"name":"A"}` || s.Values != nil {
		t.Fatalf("round trip: %+v, %v", s, err)
	}
}

// TestWithSecure: the derived Manager serves the same sessions under the
// cookie its Secure flag calls for; the original is unchanged.
func TestWithSecure(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	clk := &clock{now: time.Now()}
	plain := newManager(t, store, keyring(t, session.GenerateKey()), clk, false)
	if plain.WithSecure(false) != plain {
		t.Fatal("WithSecure(false) of a plain Manager made a copy")
	}
	secure := plain.WithSecure(true)
	if !secure.Secure() || secure.CookieName() != "__Host-cloakroom" || plain.Secure() || plain.CookieName() != "cloakroom" {
		t.Fatalf("secure %v %q, plain %v %q", secure.Secure(), secure.CookieName(), plain.Secure(), plain.CookieName())
	}
	if back := secure.WithSecure(false); back.CookieName() != "cloakroom" {
		t.Fatalf("WithSecure(false) of a secure Manager: cookie %q", back.CookieName())
	}
	w := httptest.NewRecorder()
	if err := secure.Create(context.Background(), w, &session.State{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	c := w.Result().Cookies()[0]
	if c.Name != "__Host-cloakroom" || !c.Secure {
		t.Fatalf("cookie %+v", c)
	}
	if s, err := plain.Load(context.Background(), c.Value); err != nil || s.Subject != "u" {
		t.Fatalf("the original Manager does not see the session: %v", err)
	}
}

// TestManagerDeletes: Delete leaves cookies alone; DeleteBySID and
// DeleteBySubject end the sessions in the store and return their keys.
func TestManagerDeletes(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	clk := &clock{now: time.Now()}
	m := newManager(t, store, keyring(t, session.GenerateKey()), clk, false)
	ctx := context.Background()
	create := func(sub, sid string) *session.State {
		s := &session.State{Subject: sub, SID: sid}
		if err := m.Create(ctx, httptest.NewRecorder(), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := create("alice", "s1"), create("alice", "s2"), create("bob", "s3")
	w := httptest.NewRecorder()
	if err := m.Delete(ctx, a); err != nil || len(w.Result().Cookies()) != 0 {
		t.Fatalf("Delete: %v, cookies %v", err, w.Result().Cookies())
	}
	if _, err := m.Load(ctx, a.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
	if err := m.Delete(ctx, a); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := m.Delete(ctx, nil); err != nil {
		t.Fatalf("Delete(nil): %v", err)
	}
	if keys, err := m.DeleteBySID(ctx, "s2"); err != nil || len(keys) != 1 || keys[0] != b.Key() {
		t.Fatalf("DeleteBySID = %v, %v", keys, err)
	}
	if keys, err := m.DeleteBySubject(ctx, "bob"); err != nil || len(keys) != 1 || keys[0] != c.Key() {
		t.Fatalf("DeleteBySubject = %v, %v", keys, err)
	}
	if store.Len() != 0 {
		t.Fatalf("%d records left", store.Len())
	}
	first, err := m.MarkOnce(ctx, "k", time.Now().Add(time.Minute))
	again, err2 := m.MarkOnce(ctx, "k", time.Now().Add(time.Minute))
	if err != nil || err2 != nil || !first || again {
		t.Fatalf("MarkOnce: %v %v, %v %v", first, err, again, err2)
	}
	if store.Len() != 0 {
		t.Fatal("a mark counts as a record")
	}
}
