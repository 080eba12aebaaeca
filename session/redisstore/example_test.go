package redisstore_test

import (
	"context"
	"errors"
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

// Sessions in a Redis watched by Sentinel: the Sentinels' addresses and
// the name they monitor the master under. Deletions wait until a replica
// has them (min_replicas_ack, default 1 here), so a logout survives a
// failover.
func ExampleOpen_sentinel() {
	store, err := redisstore.Open("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster?wait_timeout=2s")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Delete(context.Background(), "some-session-key"); errors.Is(err, redisstore.ErrNotReplicated) {
		log.Print("not on a replica yet: treat the logout as not done and retry")
	}
}

// Sessions in a Redis Cluster: every key shares the prefix's hash tag
// ({cloakroom}: unless prefix= says otherwise), so they live in one slot.
func ExampleOpen_cluster() {
	store, err := redisstore.Open("redis+cluster://10.0.1.1:6379,10.0.1.2:6379,10.0.1.3:6379?prefix=%7Bmyapp%7D:")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}
