package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "cloakroom-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The directory is created (0700) if missing, the file with mode 0600.
	store, err := sqlitestore.Open(filepath.Join(dir, "state", "sessions.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()

	r := &session.Record{
		Key:       "3f1a...hash-of-the-cookie",
		Subject:   "0b5c2e9a-user-id",
		SID:       "keycloak-session-id",
		ExpiresAt: time.Now().Add(8 * time.Hour),
		Payload:   []byte("sealed by a session.Keyring"),
	}
	if err := store.Save(ctx, r); err != nil { // Version 0: create
		log.Fatal(err)
	}
	got, err := store.Load(ctx, r.Key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("loaded version", got.Version, "of", got.Subject)

	// A back-channel logout ends every session of the Keycloak session.
	keys, err := store.DeleteBySID(ctx, "keycloak-session-id")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("logged out", len(keys), "session(s)")
	// Output:
	// loaded version 1 of 0b5c2e9a-user-id
	// logged out 1 session(s)
}
