package redisstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

// testClient returns a client for CLOAKROOM_TEST_REDIS (host:port or a
// redis:// URL), or skips the test.
func testClient(t testing.TB) *redis.Client {
	t.Helper()
	addr := os.Getenv("CLOAKROOM_TEST_REDIS")
	if addr == "" {
		t.Skip("set CLOAKROOM_TEST_REDIS=127.0.0.1:6379 to run the Redis store tests")
	}
	opt := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opt, err = redis.ParseURL(addr); err != nil {
			t.Fatalf("CLOAKROOM_TEST_REDIS: %v", err)
		}
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer: %v (start it: see ../shared/docs/services.md)", addr, err)
	}
	return c
}

// testPrefix returns a random prefix and removes its keys when the test ends.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	p := "cloakroom-test:" + sessiontest.Key()[:12] + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
	})
	return p
}

func newStore(t testing.TB, c *redis.Client, prefix string) *Store {
	t.Helper()
	s := New(c, WithPrefix(prefix))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(sub, sid string) *session.Record {
	return &session.Record{
		Key:       sessiontest.Key(),
		Subject:   sub,
		SID:       sid,
		ExpiresAt: time.Now().Add(time.Hour),
		Payload:   []byte("sealed-" + sub),
	}
}

func mustSave(t testing.TB, s session.Store, r *session.Record) {
	t.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	sessiontest.Run(t, func(t *testing.T) session.Store {
		return New(c, WithPrefix(testPrefix(t, c)))
	})
}

func TestConformanceOpen(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	url := "redis://" + c.Options().Addr + "/0"
	sessiontest.Run(t, func(t *testing.T) session.Store {
		s, err := Open(url, WithPrefix(testPrefix(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestKeysExpireInRedis(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	s := newStore(t, c, p)
	ctx := context.Background()

	short := rec("alice", "sid-x")
	short.ExpiresAt = time.Now().Add(1500 * time.Millisecond)
	long := rec("alice", "sid-x")
	long.ExpiresAt = time.Now().Add(time.Hour)
	mustSave(t, s, long)
	mustSave(t, s, short)

	for _, tt := range []struct {
		key      string
		min, max time.Duration
	}{
		{p + "s:" + short.Key, time.Second, 1500 * time.Millisecond},
		{p + "s:" + long.Key, 59 * time.Minute, time.Hour},
		// An index set lives as long as its latest member, not its last
		// written one.
		{p + "sid:sid-x", 59 * time.Minute, time.Hour},
		{p + "sub:alice", 59 * time.Minute, time.Hour},
	} {
		ttl, err := c.PTTL(ctx, tt.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < tt.min || ttl > tt.max {
			t.Errorf("PTTL %s = %v, want between %v and %v", tt.key, ttl, tt.min, tt.max)
		}
	}

	// Updating moves the expiry along.
	short.ExpiresAt = time.Now().Add(2 * time.Hour)
	short.Payload = []byte("refreshed")
	mustSave(t, s, short)
	if ttl := c.PTTL(ctx, p+"sid:sid-x").Val(); ttl < 119*time.Minute {
		t.Fatalf("the index set's PTTL %v did not follow the latest member", ttl)
	}
	short.ExpiresAt = time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, short)
	time.Sleep(1700 * time.Millisecond)
	if n := c.Exists(ctx, p+"s:"+short.Key).Val(); n != 0 {
		t.Fatal("Redis still holds the expired record")
	}
	if _, err := s.Load(ctx, short.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after expiry: %v", err)
	}
}

func TestIndexOnlyRecordsExpire(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	s := newStore(t, c, p)
	ctx := context.Background()
	r := rec("carol", "sid-only")
	r.ExpiresAt = time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, r)
	time.Sleep(1700 * time.Millisecond)
	n, err := c.Exists(ctx, p+"s:"+r.Key, p+"sid:sid-only", p+"sub:carol").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d keys of an expired session are still in Redis", n)
	}
}

// A key whose record expired and was created again under another sid must
// not be deleted through the stale member the old sid's set still holds.
func TestStaleIndexMembersAreIgnored(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	s := newStore(t, c, p)
	ctx := context.Background()

	keep := rec("dave", "sid-old") // keeps the old sid's set alive
	mustSave(t, s, keep)
	r := rec("dave", "sid-old")
	r.ExpiresAt = time.Now().Add(1200 * time.Millisecond)
	mustSave(t, s, r)
	time.Sleep(1700 * time.Millisecond)

	r.Version, r.SID, r.Subject = 0, "sid-new", "erin"
	r.ExpiresAt = time.Now().Add(time.Hour)
	mustSave(t, s, r)

	keys, err := s.DeleteBySID(ctx, "sid-old")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{keep.Key}) {
		t.Fatalf("DeleteBySID(old) = %v, want only %v", keys, keep.Key)
	}
	if keys, _ := s.DeleteBySubject(ctx, "dave"); len(keys) != 0 {
		t.Fatalf("DeleteBySubject(dave) = %v: the recreated session belongs to erin", keys)
	}
	if _, err := s.Load(ctx, r.Key); err != nil {
		t.Fatalf("the recreated session was deleted: %v", err)
	}
	keys, err = s.DeleteBySubject(ctx, "erin")
	if err != nil || !slices.Equal(keys, []string{r.Key}) {
		t.Fatalf("DeleteBySubject(erin) = %v, %v", keys, err)
	}
	// Deleting by subject also took the key out of the sid's set.
	if n := c.Exists(ctx, p+"sid:sid-new").Val(); n != 0 {
		if m := c.SMembers(ctx, p+"sid:sid-new").Val(); len(m) != 0 {
			t.Fatalf("sid set still lists %v", m)
		}
	}
}

type collector struct {
	mu   sync.Mutex
	keys []string
	seen chan struct{}
}

func newCollector() *collector { return &collector{seen: make(chan struct{}, 100)} }

func (c *collector) fn(keys []string) {
	c.mu.Lock()
	c.keys = append(c.keys, keys...)
	c.mu.Unlock()
	c.seen <- struct{}{}
}

// waitFor waits until every key in want has been delivered.
func (c *collector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		missing := 0
		for _, k := range want {
			if !slices.Contains(c.keys, k) {
				missing++
			}
		}
		got := slices.Clone(c.keys)
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-c.seen:
		case <-deadline:
			t.Fatalf("notifications carried %v; want %v", got, want)
		}
	}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.keys)
}

func TestNotifierDeliversToAnotherStore(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	// Two Stores with their own connections, as two instances would have.
	listener, err := Open("redis://"+c.Options().Addr, WithPrefix(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	writer := newStore(t, c, p)
	ctx := context.Background()

	got := newCollector()
	if err := listener.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}

	a, b1, b2, c1 := rec("u1", "s-a"), rec("u2", "s-b"), rec("u2", "s-b"), rec("u3", "")
	for _, r := range []*session.Record{a, b1, b2, c1} {
		mustSave(t, writer, r)
	}
	tests := []struct {
		name string
		del  func() error
		want []string
	}{
		{"Delete", func() error { return writer.Delete(ctx, a.Key) }, []string{a.Key}},
		{"DeleteBySID", func() error { _, err := writer.DeleteBySID(ctx, "s-b"); return err }, []string{b1.Key, b2.Key}},
		{"DeleteBySubject", func() error { _, err := writer.DeleteBySubject(ctx, "u3"); return err }, []string{c1.Key}},
	}
	for _, tt := range tests {
		if err := tt.del(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got.waitFor(t, tt.want...)
	}
	// Deleting what is not there publishes nothing.
	before := len(got.snapshot())
	if err := writer.Delete(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if keys, err := writer.DeleteBySID(ctx, "s-none"); err != nil || len(keys) != 0 {
		t.Fatalf("DeleteBySID(unknown) = %v, %v", keys, err)
	}
	// A marker deletion after them: once it arrives, nothing else came.
	marker := rec("u9", "")
	mustSave(t, writer, marker)
	if err := writer.Delete(ctx, marker.Key); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, marker.Key)
	if n := len(got.snapshot()); n != before+1 {
		t.Fatalf("deleting missing sessions published %v", got.snapshot()[before:])
	}
}

func TestSubscribeEndsWithContextAndClose(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	s := New(c, WithPrefix(p))
	ctx, cancel := context.WithCancel(context.Background())
	got := newCollector()
	if err := s.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(context.Background(), func([]string) {}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Close(); err != nil { // waits for both subscriptions to end
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Subscribe(context.Background(), got.fn); err == nil {
		t.Fatal("Subscribe on a closed store succeeded")
	}
	// The client passed to New stays open.
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Close closed the caller's client: %v", err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	a := newStore(t, c, testPrefix(t, c))
	b := newStore(t, c, testPrefix(t, c))
	ctx := context.Background()

	gotB := newCollector()
	if err := b.Subscribe(ctx, gotB.fn); err != nil {
		t.Fatal(err)
	}
	ra := rec("alice", "sid-shared")
	rb := *ra // same key, subject and sid in the other prefix
	rb.Payload = []byte("b's")
	mustSave(t, a, ra)
	mustSave(t, b, &rb)

	if keys, err := a.DeleteBySID(ctx, "sid-shared"); err != nil || len(keys) != 1 {
		t.Fatalf("a.DeleteBySID = %v, %v", keys, err)
	}
	got, err := b.Load(ctx, ra.Key)
	if err != nil || string(got.Payload) != "b's" {
		t.Fatalf("b's session after a's DeleteBySID: %+v, %v", got, err)
	}
	if _, err := a.Load(ctx, ra.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a's session survived: %v", err)
	}
	// b's subscriber hears only b's deletions.
	if err := b.Delete(ctx, rb.Key); err != nil {
		t.Fatal(err)
	}
	gotB.waitFor(t, rb.Key)
	if keys := gotB.snapshot(); len(keys) != 1 {
		t.Fatalf("b's subscriber received %v; a's deletion leaked across prefixes", keys)
	}
}

func TestScriptsSurviveScriptFlush(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	s := newStore(t, c, testPrefix(t, c))
	ctx := context.Background()
	r := rec("u", "sid-flush")
	mustSave(t, s, r)
	// EVALSHA fails with NOSCRIPT after a flush (or on a new replica) and
	// the store falls back to EVAL.
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, r)
	if keys, err := s.DeleteBySID(ctx, "sid-flush"); err != nil || len(keys) != 1 {
		t.Fatalf("DeleteBySID after SCRIPT FLUSH = %v, %v", keys, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, url  string
		want       []string
		notContain string
	}{
		{"wrong scheme", "http://127.0.0.1:6379", []string{"not valid", "scheme"}, ""},
		{"bad database", "redis://127.0.0.1:6379/notanumber", []string{"not valid", "database"}, ""},
		{"unparsable with password", "redis://user:hunter2@[::1", []string{"not valid"}, "hunter2"},
		{"nobody listening", "redis://:hunter2@127.0.0.1:1/0", []string{"connect to Redis at 127.0.0.1:1"}, "hunter2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(tt.url)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.notContain != "" && strings.Contains(err.Error(), tt.notContain) {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

func TestErrorsNameTheOperation(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	p := testPrefix(t, c)
	s := newStore(t, c, p)
	ctx := context.Background()
	// A key of the wrong type makes every command fail.
	r := rec("u", "sid-wrongtype")
	r.Payload = []byte("SECRET-PAYLOAD")
	if err := c.Set(ctx, p+"s:"+r.Key, "not a hash", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, p+"sid:sid-wrongtype", "not a set", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		op  string
		err error
	}{
		{"load", func() error { _, err := s.Load(ctx, r.Key); return err }()},
		{"save", s.Save(ctx, r)},
		{"delete", s.Delete(ctx, r.Key)},
		{"delete by sid", func() error { _, err := s.DeleteBySID(ctx, "sid-wrongtype"); return err }()},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), "redisstore: "+tt.op+":") || !strings.Contains(tt.err.Error(), "WRONGTYPE") {
			t.Errorf("%s: err = %v, want the operation and Redis's reason", tt.op, tt.err)
		}
		if tt.err != nil && strings.Contains(tt.err.Error(), "SECRET") {
			t.Errorf("%s: the error contains the payload", tt.op)
		}
		if errors.Is(tt.err, session.ErrConflict) || errors.Is(tt.err, session.ErrNotFound) {
			t.Errorf("%s: a Redis failure reported as %v", tt.op, tt.err)
		}
	}
}

func TestBinaryPayloadAndUnicodeKeys(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	s := newStore(t, c, testPrefix(t, c))
	ctx := context.Background()
	got := newCollector()
	if err := s.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}
	r := rec("ünïcode", "sid with spaces \"and quotes\"")
	r.Key = "k/é\"\\" + sessiontest.Key()[:8]
	r.Payload = []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	mustSave(t, s, r)
	l, err := s.Load(ctx, r.Key)
	if err != nil || !bytes.Equal(l.Payload, r.Payload) || l.Subject != r.Subject || l.SID != r.SID {
		t.Fatalf("Load = %+v, %v", l, err)
	}
	if keys, err := s.DeleteBySID(ctx, r.SID); err != nil || !slices.Equal(keys, []string{r.Key}) {
		t.Fatalf("DeleteBySID = %q, %v", keys, err)
	}
	got.waitFor(t, r.Key)
}

func BenchmarkLoad(b *testing.B) {
	c := testClient(b)
	s := newStore(b, c, testPrefix(b, c))
	r := rec("alice", "sid-bench")
	r.Payload = bytes.Repeat([]byte{0xab}, 1024)
	mustSave(b, s, r)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, r.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Load(ctx, r.Key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
