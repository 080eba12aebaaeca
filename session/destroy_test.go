package session_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/cloakroom/cloakroom/session"
)

// brokenDeletes is a store whose deletions fail, like a read-only SQLite
// file or a Redis that went away after the session was read.
type brokenDeletes struct{ session.Store }

var errBroken = errors.New("store unavailable")

func (brokenDeletes) Delete(context.Context, string) error { return errBroken }

// TestDestroyKeepsCookieWhenStoreFails: a logout whose deletion fails must
// not clear the cookie, or the browser loses a session that still exists
// (and the user cannot log out again once the store is back).
func TestDestroyKeepsCookieWhenStoreFails(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	defer store.Close()
	ring := keyring(t, session.GenerateKey())
	ok, _ := session.NewManager(session.Config{Store: store, Keyring: ring})
	broken, _ := session.NewManager(session.Config{Store: brokenDeletes{store}, Keyring: ring})

	s := &session.State{Subject: "alice"}
	if err := ok.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := broken.Destroy(context.Background(), w, s); !errors.Is(err, errBroken) {
		t.Fatalf("Destroy = %v, want the store's error", err)
	}
	if c := w.Header().Values("Set-Cookie"); len(c) != 0 {
		t.Fatalf("a failed Destroy cleared the cookie: %q", c)
	}
	if _, err := ok.Load(context.Background(), s.ID); err != nil {
		t.Fatalf("the session is gone after a failed Destroy: %v", err)
	}

	w = httptest.NewRecorder()
	if err := ok.Destroy(context.Background(), w, s); err != nil {
		t.Fatal(err)
	}
	if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("Destroy did not clear the cookie: %v", c)
	}
	if _, err := ok.Load(context.Background(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("after Destroy: %v", err)
	}
}
