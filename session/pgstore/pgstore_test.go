package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CLOAKROOM_TEST_POSTGRES")
	if u == "" {
		t.Skip("set CLOAKROOM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL store tests")
	}
	return u
}

// admin runs one statement on a connection of its own.
func admin(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL at CLOAKROOM_TEST_POSTGRES does not answer: %v (start it: see ../shared/docs/services.md)", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newSchema creates a schema with a random name and drops it when the test
// ends (after the stores and pools registered later are closed).
func newSchema(t testing.TB, url string) string {
	t.Helper()
	name := "cloakroom_test_" + sessiontest.Key()[:16]
	admin(t, url, `CREATE SCHEMA `+name)
	t.Cleanup(func() { admin(t, url, `DROP SCHEMA `+name+` CASCADE`) })
	return name
}

func newPool(t testing.TB, url string, tweak ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4 // many tests run at once; stay far below max_connections
	for _, f := range tweak {
		f(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newStore(t testing.TB, pool *pgxpool.Pool, opts ...Option) *Store {
	t.Helper()
	s, err := New(context.Background(), pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
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

func countRows(t *testing.T, pool *pgxpool.Pool, s *Store) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+s.ident).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConformance(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	sessiontest.Run(t, func(t *testing.T) session.Store {
		schema := newSchema(t, url)
		s, err := New(context.Background(), newPool(t, url), WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceOpenCustomTable(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	sessiontest.Run(t, func(t *testing.T) session.Store {
		schema := newSchema(t, url)
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		s, err := Open(context.Background(), url+sep+"pool_max_conns=4", WithSchema(schema), WithTable("web_sessions"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

type collector struct {
	mu    sync.Mutex
	keys  []string
	calls int
	seen  chan struct{}
}

func newCollector() *collector { return &collector{seen: make(chan struct{}, 1000)} }

func (c *collector) fn(keys []string) {
	c.mu.Lock()
	c.keys = append(c.keys, keys...)
	c.calls++
	c.mu.Unlock()
	c.seen <- struct{}{}
}

func (c *collector) has(want []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range want {
		if !slices.Contains(c.keys, k) {
			return false
		}
	}
	return true
}

func (c *collector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !c.has(want) {
		select {
		case <-c.seen:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("notifications carried %d keys, not all of the %d wanted", len(c.keys), len(want))
		}
	}
}

func TestTwoStoresOneTable(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	a := newStore(t, newPool(t, url), WithSchema(schema))
	b := newStore(t, newPool(t, url), WithSchema(schema))
	if a.Channel() != b.Channel() {
		t.Fatalf("channels differ: %q, %q", a.Channel(), b.Channel())
	}
	ctx := context.Background()
	got := newCollector()
	if err := a.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}

	r := rec("alice", "sid-1")
	mustSave(t, a, r)
	fromB, err := b.Load(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	fromB.Payload = []byte("written by b")
	mustSave(t, b, fromB)
	if err := a.Save(ctx, r); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale save through a: %v", err)
	}

	x, y1, y2, z := rec("u1", ""), rec("u2", "sid-y"), rec("u2", "sid-y"), rec("u3", "")
	for _, r := range []*session.Record{x, y1, y2, z} {
		mustSave(t, a, r)
	}
	tests := []struct {
		name string
		del  func() ([]string, error)
		want []string
	}{
		{"Delete", func() ([]string, error) { return []string{x.Key}, b.Delete(ctx, x.Key) }, []string{x.Key}},
		{"DeleteBySID", func() ([]string, error) { return b.DeleteBySID(ctx, "sid-y") }, []string{y1.Key, y2.Key}},
		{"DeleteBySubject", func() ([]string, error) { return b.DeleteBySubject(ctx, "u3") }, []string{z.Key}},
		{"DeleteBySID of the updated record", func() ([]string, error) { return b.DeleteBySID(ctx, "sid-1") }, []string{r.Key}},
	}
	for _, tt := range tests {
		keys, err := tt.del()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(keys, want) {
			t.Fatalf("%s returned %v, want %v", tt.name, keys, want)
		}
		got.waitFor(t, tt.want...)
		if _, err := a.Load(ctx, tt.want[0]); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("%s: a still loads the session: %v", tt.name, err)
		}
	}
}

func TestNotificationsAreChunked(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	s := newStore(t, pool, WithSchema(schema))
	ctx := context.Background()
	got := newCollector()
	if err := s.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}
	// 300 keys of 64 characters: about 20 kB of JSON, over NOTIFY's limit.
	var want []string
	for range 300 {
		r := rec("many", "")
		want = append(want, r.Key)
		mustSave(t, s, r)
	}
	keys, err := s.DeleteBySubject(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(want) {
		t.Fatalf("DeleteBySubject returned %d keys, want %d", len(keys), len(want))
	}
	got.waitFor(t, want...)
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.calls < 3 {
		t.Fatalf("%d keys came in %d notification(s); want them split", len(got.keys), got.calls)
	}
}

func TestNotifyPayloads(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	long := strings.Repeat("k", maxNotifyPayload)
	tests := []struct {
		name      string
		keys      []string
		payloads  int
		delivered int
	}{
		{"none", nil, 0, 0},
		{"one", []string{"a"}, 1, 1},
		{"fits in one", []string{"a", "b", `q"uote`}, 1, 3},
		{"needs several", slices.Repeat([]string{strings.Repeat("x", 64)}, 500), 5, 500},
		{"too long alone is left out", []string{"a", long, "b"}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := notifyPayloads(tt.keys, quiet)
			if len(ps) != tt.payloads {
				t.Fatalf("%d payloads, want %d", len(ps), tt.payloads)
			}
			var all []string
			for _, p := range ps {
				if len(p) > maxNotifyPayload {
					t.Fatalf("payload of %d bytes", len(p))
				}
				var keys []string
				if err := json.Unmarshal([]byte(p), &keys); err != nil {
					t.Fatalf("payload %q: %v", p, err)
				}
				all = append(all, keys...)
			}
			if len(all) != tt.delivered {
				t.Fatalf("%d keys delivered, want %d", len(all), tt.delivered)
			}
		})
	}
}

func TestConcurrentStartupMigrations(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	const instances = 8
	var wg sync.WaitGroup
	errs := make([]error, instances)
	stores := make([]*Store, instances)
	for i := range instances {
		pool := newPool(t, url, func(c *pgxpool.Config) { c.MaxConns = 2 })
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = New(context.Background(), pool, WithSchema(schema))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	v, err := schemaVersion(context.Background(), stores[0].pool, schema, DefaultTable)
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v", v, err)
	}
	r := rec("u", "")
	mustSave(t, stores[0], r)
	if _, err := stores[instances-1].Load(context.Background(), r.Key); err != nil {
		t.Fatal(err)
	}
}

// Once the schema is current, New runs no DDL: a role that may only read
// and write the table can start.
func TestLeastPrivilegeRoleStarts(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	newStore(t, newPool(t, url), WithSchema(schema)).Close()

	role := "cloakroom_test_app_" + sessiontest.Key()[:8]
	admin(t, url, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { admin(t, url, `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	admin(t, url, `GRANT USAGE ON SCHEMA `+schema+` TO `+role)
	admin(t, url, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+schema+` TO `+role)

	s := newStore(t, newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.User = role }), WithSchema(schema))
	r := rec("u", "sid")
	mustSave(t, s, r)
	if keys, err := s.DeleteBySID(context.Background(), "sid"); err != nil || len(keys) != 1 {
		t.Fatalf("DeleteBySID as %s = %v, %v", role, keys, err)
	}
}

func TestDefaultSchemaIsTheCurrentOne(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["search_path"] = schema })
	s := newStore(t, pool)
	if want := schema + "." + DefaultTable + ".deleted"; s.Channel() != want {
		t.Fatalf("Channel() = %q, want %q", s.Channel(), want)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2`, schema, DefaultTable).Scan(&n); err != nil || n != 1 {
		t.Fatalf("table not in %s: %d, %v", schema, n, err)
	}
}

func TestMissingSchema(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	_, err := New(context.Background(), newPool(t, url), WithSchema("cloakroom_test_missing_"+sessiontest.Key()[:8]))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "CREATE SCHEMA") {
		t.Fatalf("New in a missing schema: %v", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	newStore(t, pool, WithSchema(schema)).Close()
	admin(t, url, `UPDATE `+schema+`.`+migrationsTable+` SET version = 99 WHERE component = $1`, component(DefaultTable))
	_, err := New(context.Background(), pool, WithSchema(schema))
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("New on a newer schema: %v", err)
	}
}

func TestExpiredRows(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	s := newStore(t, pool, WithSchema(schema), WithSweepInterval(0))
	ctx := context.Background()
	got := newCollector()
	if err := s.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}

	r := rec("u", "sid-old")
	r.ExpiresAt = time.Now().Add(-time.Minute)
	mustSave(t, s, r)
	if _, err := s.Load(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of an expired row: %v", err)
	}
	stale := *r
	stale.ExpiresAt = time.Now().Add(time.Hour)
	if err := s.Save(ctx, &stale); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("update of an expired row: %v", err)
	}
	keys, err := s.DeleteBySID(ctx, "sid-old")
	if err != nil || len(keys) != 0 {
		t.Fatalf("DeleteBySID reported expired rows: %v, %v", keys, err)
	}
	if n := countRows(t, pool, s); n != 0 {
		t.Fatalf("DeleteBySID left %d expired rows", n)
	}
	// The deletion is still announced: caches may hold the session.
	got.waitFor(t, r.Key)

	for _, exp := range []time.Duration{-time.Hour, -time.Second, time.Hour} {
		r := rec("u", "")
		r.ExpiresAt = time.Now().Add(exp)
		mustSave(t, s, r)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 rows", n, err)
	}
	if n := countRows(t, pool, s); n != 1 {
		t.Fatalf("%d rows after Sweep, want the live one", n)
	}
}

func TestBackgroundSweep(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	s := newStore(t, pool, WithSchema(schema), WithSweepInterval(30*time.Millisecond))
	r := rec("u", "")
	r.ExpiresAt = time.Now().Add(50 * time.Millisecond)
	mustSave(t, s, r)
	mustSave(t, s, rec("u", ""))
	deadline := time.Now().Add(10 * time.Second)
	for countRows(t, pool, s) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweep did not delete the expired row")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscribeSurvivesALostConnection(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newStore(t, newPool(t, url), WithSchema(schema), WithLogger(quiet))
	ctx := context.Background()
	got := newCollector()
	if err := s.Subscribe(ctx, got.fn); err != nil {
		t.Fatal(err)
	}
	admin(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`,
		`LISTEN `+pgx.Identifier{s.Channel()}.Sanitize())

	// Deletions during the reconnection are missed; keep deleting until one
	// arrives.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		r := rec(fmt.Sprint("u", i), "")
		mustSave(t, s, r)
		if err := s.Delete(ctx, r.Key); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got.seen:
			if got.has([]string{r.Key}) {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification after the LISTEN connection was terminated")
		}
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	s, err := New(context.Background(), pool, WithSchema(schema), WithSweepInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Subscribe(ctx, func([]string) {}); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(context.Background(), func([]string) {}); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Subscribe(context.Background(), func([]string) {}); err == nil {
		t.Fatal("Subscribe on a closed store succeeded")
	}
	// The pool passed to New stays open.
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("Close closed the caller's pool: %v", err)
	}
}

func TestOptionsAndOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tt := range []struct {
		name, url string
		opts      []Option
		want      string
	}{
		{"table with a quote", "", []Option{WithTable(`x"; DROP TABLE y; --`)}, "table name"},
		{"table too long", "", []Option{WithTable(strings.Repeat("t", 49))}, "table name"},
		{"empty table", "", []Option{WithTable("")}, "table name"},
		{"schema with a dot", "", []Option{WithSchema("a.b")}, "schema name"},
		{"bad connection string", "postgres://u:hunter2@[::1", nil, "connection string"},
		{"nobody listening", "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5", nil, "connect to PostgreSQL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := tt.url
			if url == "" {
				// Option checks happen before any query.
				url = "postgres://u@127.0.0.1:1/x?connect_timeout=5"
				pool, err := pgxpool.New(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				_, err = New(ctx, pool, tt.opts...)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("New: %v, want an error about the %s", err, tt.want)
				}
				return
			}
			s, err := Open(ctx, url, tt.opts...)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q repeats the password", err)
			}
		})
	}
}

func TestChannelName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		schema, table, want string
	}{
		{"public", "cloakroom_sessions", "public.cloakroom_sessions.deleted"},
		{strings.Repeat("s", 40), strings.Repeat("t", 40), ""},
	}
	for _, tt := range tests {
		got := channelName(tt.schema, tt.table)
		if len(got) > 63 {
			t.Errorf("channelName(%s, %s) = %q: longer than 63 bytes", tt.schema, tt.table, got)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("channelName(%s, %s) = %q, want %q", tt.schema, tt.table, got, tt.want)
		}
	}
	if channelName("a", strings.Repeat("t", 60)) == channelName("b", strings.Repeat("t", 60)) {
		t.Error("hashed channel names collide")
	}
}

func TestErrorsNeverCarryPayloads(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	pool := newPool(t, url)
	s := newStore(t, pool, WithSchema(schema))
	admin(t, url, `ALTER TABLE `+s.ident+` ADD CONSTRAINT small CHECK (length(payload) < 10)`)
	r := rec("u", "")
	r.Payload = bytes.Repeat([]byte("SECRET"), 10)
	err := s.Save(context.Background(), r)
	if err == nil || errors.Is(err, session.ErrConflict) {
		t.Fatalf("Save violating a constraint: %v", err)
	}
	if !strings.Contains(err.Error(), "pgstore: save to") || !strings.Contains(err.Error(), schema) {
		t.Errorf("error %q does not name the operation and table", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %q contains the payload", err)
	}
}

func BenchmarkLoad(b *testing.B) {
	url := testURL(b)
	schema := newSchema(b, url)
	s := newStore(b, newPool(b, url, func(c *pgxpool.Config) { c.MaxConns = 16 }), WithSchema(schema))
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
