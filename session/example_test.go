package session_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/cloakroom/cloakroom/session"
)

// A Manager keeps sessions server-side; the browser only gets a random id.
func ExampleManager() {
	keys, err := session.ParseKeys(session.GenerateKey()) // in production: from configuration
	if err != nil {
		log.Fatal(err)
	}
	ring, _ := session.NewKeyring(keys...)
	store := session.NewMemoryStore() // or sqlitestore.Open, redisstore.Open, pgstore.Open
	defer store.Close()
	m, _ := session.NewManager(session.Config{Store: store, Keyring: ring, Secure: true})

	// At login: a new session, a new id, the cookie set.
	w := httptest.NewRecorder()
	s := &session.State{Subject: "7c9e6679-7425-40de-944b-e07fc1f90ae7", RefreshToken: "opaque"}
	if err := m.Create(context.Background(), w, s); err != nil {
		log.Fatal(err)
	}
	cookie := w.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.Secure, len(cookie.Value))

	// On the next request: the session behind the cookie.
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	r.AddCookie(cookie)
	got, err := m.Get(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Subject)
	// Output:
	// __Host-cloakroom true true 43
	// 7c9e6679-7425-40de-944b-e07fc1f90ae7
}

// A JournaledStore keeps logouts the shared store cannot take: they are
// written to the instance's journal, refused locally at once and applied
// when the store answers again.
func ExampleNewJournaledStore() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	shared := session.NewMemoryStore() // in production: redisstore.Open or pgstore.Open, in a CachedStore
	store, err := session.NewJournaledStore(shared, session.JournalConfig{
		Path:        filepath.Join(dir, "logouts.journal"), // one file per instance, on persistent storage
		MaxLifetime: session.DefaultMaxLifetime,            // the Manager's MaxLifetime
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// A back-channel logout: with the store reachable, an ordinary deletion.
	_, err = store.DeleteBySID(context.Background(), "keycloak-session-id")
	fmt.Println(err, errors.Is(err, session.ErrLogoutDeferred), store.Pending())
	// Output:
	// <nil> false 0
}
