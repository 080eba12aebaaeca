package pgstore_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/pgstore"
)

func ExampleOpen() {
	ctx := context.Background()
	// Creates (or migrates) cloakroom_sessions in schema "auth".
	store, err := pgstore.Open(ctx, "postgres://app@127.0.0.1:5432/app", pgstore.WithSchema("auth"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Every instance hears about sessions any instance deleted (a
	// back-channel logout, say) and drops its cached copies.
	err = store.Subscribe(ctx, func(keys []string) {
		log.Printf("%d session(s) ended elsewhere", len(keys))
	})
	if err != nil {
		log.Fatal(err)
	}

	r := &session.Record{
		Key:       "3f1a...hash-of-the-cookie",
		Subject:   "0b5c2e9a-user-id",
		SID:       "keycloak-session-id",
		ExpiresAt: time.Now().Add(8 * time.Hour),
		Payload:   []byte("sealed by a session.Keyring"),
	}
	if err := store.Save(ctx, r); err != nil {
		log.Fatal(err)
	}
	if _, err := store.DeleteBySID(ctx, "keycloak-session-id"); err != nil {
		log.Fatal(err)
	}
}

func ExampleNew() {
	ctx := context.Background()
	// Share the application's pool; Close leaves it open.
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(ctx, pool, pgstore.WithTable("web_sessions"), pgstore.WithSweepInterval(5*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}
