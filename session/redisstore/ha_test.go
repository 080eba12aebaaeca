package redisstore

import (
	"context"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

// The tests of this file run against the shared topologies of
// scripts/redis-ha.sh (.ci/run starts them):
// CLOAKROOM_TEST_REDIS_SENTINEL and CLOAKROOM_TEST_REDIS_CLUSTER.

// haTopology is one way of reaching a replicated Redis.
type haTopology struct {
	name, env, example string
}

var haTopologies = []haTopology{
	{"sentinel", "CLOAKROOM_TEST_REDIS_SENTINEL", "redis+sentinel://127.0.0.1:26400,127.0.0.1:26401,127.0.0.1:26402/cloakroom"},
	{"cluster", "CLOAKROOM_TEST_REDIS_CLUSTER", "redis+cluster://127.0.0.1:7103,127.0.0.1:7104,127.0.0.1:7105"},
}

// haURL returns the topology's URL, or skips the test.
func haURL(t testing.TB, h haTopology) string {
	t.Helper()
	u := os.Getenv(h.env)
	if u == "" {
		t.Skipf("set %s (e.g. eval \"$(scripts/redis-ha.sh start)\" gives %s) to run the %s tests", h.env, h.example, h.name)
	}
	return u
}

// withParams adds query parameters to a store URL.
func withParams(u string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

// haPrefix is a random prefix, with a hash tag so that it works on a
// cluster too.
func haPrefix() string { return "{cloakroom-test:" + sessiontest.Key()[:12] + "}:" }

// openHA opens a Store on the topology with prefix and removes the
// prefix's keys when the test ends.
func openHA(t testing.TB, h haTopology, prefix string, kv ...string) *Store {
	t.Helper()
	s, err := Open(withParams(haURL(t, h), append([]string{"prefix", prefix}, kv...)...))
	if err != nil {
		t.Fatalf("Open %s: %v", h.name, err)
	}
	t.Cleanup(func() {
		cleanPrefix(s, prefix)
		_ = s.Close()
	})
	return s
}

// cleanPrefix deletes the keys under prefix (on a cluster they are all on
// the master of the prefix's slot).
func cleanPrefix(s *Store, prefix string) {
	ctx := context.Background()
	var c redis.Cmdable = s.c
	if s.cluster != nil {
		n, err := s.cluster.MasterForKey(ctx, prefix)
		if err != nil {
			return
		}
		c = n
	}
	keys, _ := c.Keys(ctx, prefix+"*").Result()
	for _, k := range keys {
		_ = c.Del(ctx, k).Err()
	}
}

func TestHAConformance(t *testing.T) {
	t.Parallel()
	for _, h := range haTopologies {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			haURL(t, h)
			sessiontest.Run(t, func(t *testing.T) session.Store {
				return openHA(t, h, haPrefix())
			})
		})
	}
}

// Two Stores with their own connections, as two gateway instances have;
// a CachedStore in front of one (TTL far longer than the test) loses its
// copy when the other deletes the session: pub/sub (sharded on the
// cluster) reached it.
func TestHAInvalidationReachesCache(t *testing.T) {
	t.Parallel()
	for _, h := range haTopologies {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			p := haPrefix()
			a, b := openHA(t, h, p), openHA(t, h, p)
			ctx := context.Background()
			cached, err := session.NewCachedStore(ctx, a, session.CacheOptions{TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if !cached.Notified() {
				t.Fatal("the cache is not notified of deletions")
			}
			r1, r2, r3 := rec("alice", "sid-1"), rec("bob", "sid-2"), rec("carol", "sid-3")
			for _, r := range []*session.Record{r1, r2, r3} {
				mustSave(t, b, r)
				if _, err := cached.Load(ctx, r.Key); err != nil { // now in a's cache
					t.Fatal(err)
				}
			}
			tests := []struct {
				name string
				del  func() error
				key  string
			}{
				{"Delete", func() error { return b.Delete(ctx, r1.Key) }, r1.Key},
				{"DeleteBySID", func() error { _, err := b.DeleteBySID(ctx, "sid-2"); return err }, r2.Key},
				{"DeleteBySubject", func() error { _, err := b.DeleteBySubject(ctx, "carol"); return err }, r3.Key},
			}
			for _, tt := range tests {
				if err := tt.del(); err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					_, err := cached.Load(ctx, tt.key)
					if errors.Is(err, session.ErrNotFound) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: the cache still serves the deleted session (%v)", tt.name, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			if err := cached.Close(); err != nil { // closes a too
				t.Fatal(err)
			}
		})
	}
}

// Deletions wait for a replica; asking for more replicas than there are
// makes them fail with ErrNotReplicated after the wait timeout, while the
// master has deleted (DeleteBySID still names the keys, for the caches).
func TestHADeletionsWaitForReplicas(t *testing.T) {
	t.Parallel()
	for _, h := range haTopologies {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			p := haPrefix()
			s := openHA(t, h, p)
			if s.MinReplicasAck() != 1 {
				t.Fatalf("MinReplicasAck() = %d, want the default 1", s.MinReplicasAck())
			}
			ctx := context.Background()
			r := rec("dave", "sid-w")
			mustSave(t, s, r)
			if err := s.Delete(ctx, r.Key); err != nil {
				t.Fatalf("Delete with 1 replica to wait for: %v", err)
			}
			// Deleting what is gone still waits (and succeeds).
			if err := s.Delete(ctx, r.Key); err != nil {
				t.Fatalf("Delete again: %v", err)
			}

			greedy := openHA(t, h, p, "min_replicas_ack", "5", "wait_timeout", "300ms")
			r = rec("erin", "sid-g")
			mustSave(t, greedy, r)
			start := time.Now()
			keys, err := greedy.DeleteBySID(ctx, "sid-g")
			if !errors.Is(err, ErrNotReplicated) || !strings.Contains(err.Error(), "redisstore: delete by sid:") {
				t.Fatalf("DeleteBySID waiting for 5 replicas: %v", err)
			}
			if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
				t.Errorf("the failing wait took %v, want about 300ms", el)
			}
			if !slices.Equal(keys, []string{r.Key}) {
				t.Errorf("DeleteBySID = %v, want the deleted key", keys)
			}
			if err := greedy.Delete(ctx, r.Key); !errors.Is(err, ErrNotReplicated) {
				t.Errorf("Delete of a missing key waiting for 5 replicas: %v", err)
			}
			if _, err := greedy.DeleteBySubject(ctx, "nobody"); !errors.Is(err, ErrNotReplicated) {
				t.Errorf("DeleteBySubject waiting for 5 replicas: %v", err)
			}
			if _, err := s.Load(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("the master kept the session: %v", err)
			}
		})
	}
}

// One server has no replica: min_replicas_ack=1 makes every deletion fail.
func TestSingleServerMinReplicasAck(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	ctx := context.Background()
	plain := newStore(t, c, p)
	if plain.MinReplicasAck() != 0 {
		t.Fatalf("one server: MinReplicasAck() = %d, want 0", plain.MinReplicasAck())
	}
	s, err := Open("redis://"+c.Options().Addr+"/0?min_replicas_ack=1&wait_timeout=100ms", WithPrefix(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r := rec("frank", "sid-f")
	mustSave(t, s, r)
	if err := s.Delete(ctx, r.Key); !errors.Is(err, ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("Delete: %v", err)
	}
	// Options given to Open override the URL.
	s2, err := Open("redis://"+c.Options().Addr+"/0?min_replicas_ack=1", WithPrefix(p), WithMinReplicasAck(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	if err := s2.Delete(ctx, r.Key); err != nil {
		t.Fatal(err)
	}
}

func TestClusterPrefixNeedsHashTag(t *testing.T) {
	t.Parallel()
	h := haTopologies[1]
	u := haURL(t, h)
	if _, err := Open(withParams(u, "prefix", "app:")); err == nil || !strings.Contains(err.Error(), "hash tag") {
		t.Fatalf("Open with a prefix without a hash tag: %v", err)
	}
	s, err := Open(u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Channel() != "{cloakroom}:deleted" {
		t.Errorf("default cluster channel %q", s.Channel())
	}
	bad := New(s.c, WithPrefix("app:"))
	ctx := context.Background()
	for name, err := range map[string]error{
		"Load":      func() error { _, err := bad.Load(ctx, "k"); return err }(),
		"Save":      bad.Save(ctx, rec("u", "s")),
		"Delete":    bad.Delete(ctx, "k"),
		"Subscribe": bad.Subscribe(ctx, func([]string) {}),
		"MarkOnce":  func() error { _, err := bad.MarkOnce(ctx, "k", time.Now().Add(time.Minute)); return err }(),
	} {
		if !errors.Is(err, ErrNoHashTag) {
			t.Errorf("%s with prefix app: on a cluster: %v", name, err)
		}
	}
}

func TestOpenHAErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, url string
		want      string
	}{
		{"unknown go-redis option", "redis+sentinel://:hunter2@127.0.0.1:1/m?bogus=1", "unexpected option: bogus"},
		{"bad go-redis option", "redis+cluster://:hunter2@127.0.0.1:1?dial_timeout=soon", "dial_timeout"},
		{"no sentinel", "redis+sentinel://:hunter2@127.0.0.1:1/m?dial_timeout=200ms&max_retries=-1", `master "m" through the Sentinels at 127.0.0.1:1`},
		{"no cluster", "redis+cluster://:hunter2@127.0.0.1:1?dial_timeout=200ms&max_retries=-1", "Redis Cluster at 127.0.0.1:1"},
		{"no master name", "redis+sentinel://:hunter2@127.0.0.1:1", "no master name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(tt.url)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q: want %q and no password", err, tt.want)
			}
		})
	}
}
