package redisstore_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/redisstore"
)

func ExampleOpen() {
	store, err := redisstore.Open("redis://127.0.0.1:6379/0", redisstore.WithPrefix("myapp:sessions:"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()

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
		ExpiresAt: time.Now().Add(8 * time.Hour), // Redis drops the record then
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
	// An existing client (or a cluster/sentinel UniversalClient) can be
	// shared; Close leaves it open. On Redis Cluster use a hash-tag prefix.
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer client.Close()
	store := redisstore.New(client, redisstore.WithPrefix("{cloakroom}:"))
	defer store.Close()
	_, _ = store.Load(context.Background(), "3f1a...hash-of-the-cookie")
}
