package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/directory"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// syncPageSize is the Keycloak page size of BenchmarkSync. keycloaktest
// filters and sorts every user of the realm for each GET /users page (see
// bench/README.md), so small pages cost O(n²) in the server; 500 keeps
// that cost out of the measurement without changing what the client does.
const syncPageSize = 500

// BenchmarkSync measures a full first reconciliation (every user created)
// of 2,000 and 10,000 keycloaktest users into SQLite and PostgreSQL
// (CLOAKROOM_TEST_POSTGRES), reporting users/s and the peak growth of the
// Go heap while syncing, which must not grow with the number of users.
func BenchmarkSync(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, n := range []int{2000, 10000} {
			b.Run(fmt.Sprintf("%s/users=%d", backend, n), func(b *testing.B) {
				pgURL := os.Getenv("CLOAKROOM_TEST_POSTGRES")
				if backend == "postgres" && pgURL == "" {
					b.Skip("set CLOAKROOM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test")
				}
				ac := syncRealm(b, n)
				ctx := context.Background()
				var elapsed time.Duration
				var peakLive, peakInuse uint64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					dir := openSyncTarget(b, backend, pgURL, ac)
					runtime.GC()
					base := readHeap()
					stop := sampleHeap()
					b.StartTimer()
					start := time.Now()
					rep, err := dir.Sync(ctx, directory.SyncOptions{PageSize: syncPageSize})
					elapsed += time.Since(start)
					b.StopTimer()
					top := stop()
					if err != nil {
						b.Fatal(err)
					}
					if rep.Created != n+2 || rep.Seen != n+2 {
						b.Fatalf("report %+v, want %d users created", rep.SyncCounts, n+2)
					}
					peakLive = max(peakLive, growth(base.live, top.live))
					peakInuse = max(peakInuse, growth(base.inuse, top.inuse))
					_ = dir.Close()
					b.StartTimer()
				}
				b.StopTimer()
				retained := measureRetained(b, backend, pgURL, ac, n)
				b.ReportMetric(float64(b.N*(n+2))/elapsed.Seconds(), "users/s")
				b.ReportMetric(float64(retained)/(1<<20), "retained-heap-MiB")
				b.ReportMetric(float64(peakLive)/(1<<20), "peak-live-heap-MiB")
				b.ReportMetric(float64(peakInuse)/(1<<20), "peak-heap-inuse-MiB")
			})
		}
	}
}

// measureRetained runs one more (untimed) sync into an empty directory and
// returns the largest growth of the heap still reachable after each batch
// (a full GC runs in the progress callback), over the heap before: if
// Sync kept anything per user, the last batches would show it.
func measureRetained(b *testing.B, backend, pgURL string, ac *admin.Client, n int) uint64 {
	dir := openSyncTarget(b, backend, pgURL, ac)
	defer dir.Close()
	heapAfterGC := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heapAfterGC()
	var top uint64
	rep, err := dir.Sync(context.Background(), directory.SyncOptions{PageSize: syncPageSize, Progress: func(directory.SyncProgress) {
		top = max(top, heapAfterGC())
	}})
	if err != nil || rep.Created != n+2 {
		b.Fatalf("sync for the memory measurement: %v, %+v", err, rep.SyncCounts)
	}
	return growth(base, top)
}

func growth(base, top uint64) uint64 {
	if top > base {
		return top - base
	}
	return 0
}

// heap is the live heap (marked reachable by the last GC: what the code
// holds on to, independent of GC pacing) and the in-use heap spans (which
// also hold garbage, and grow with the whole live heap, here mostly
// keycloaktest's users, under the default GOGC).
type heap struct{ live, inuse uint64 }

func readHeap() heap {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	var h heap
	if s[0].Value.Kind() == metrics.KindUint64 {
		h.live = s[0].Value.Uint64()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.inuse = ms.HeapInuse
	return h
}

// sampleHeap samples the heap every 2ms until the returned function is
// called, which returns the largest values seen.
func sampleHeap() func() heap {
	var mu sync.Mutex
	var top heap
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			h := readHeap()
			mu.Lock()
			top.live, top.inuse = max(top.live, h.live), max(top.inuse, h.inuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() heap {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}

// syncRealm serves the demo realm with n more users, added directly (not
// timed), and returns an admin client of its service account.
func syncRealm(b *testing.B, n int) *admin.Client {
	b.Helper()
	srv := keycloaktest.NewServer(b, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	for i := range n {
		name := "user" + strconv.Itoa(1000000+i)
		if _, err := kc.AddUser(keycloaktest.UserConfig{Username: name, Email: name + "@example.com", FirstName: "First", LastName: "Last"}); err != nil {
			b.Fatal(err)
		}
	}
	realm, err := cloakroom.NewRealm(srv.Issuer("demo"))
	if err != nil {
		b.Fatal(err)
	}
	ac, err := admin.New(admin.Config{Realm: realm,
		Client: cloakroom.ClientCredentials{ClientID: keycloaktest.DemoClientID, ClientSecret: keycloaktest.DemoClientSecret}})
	if err != nil {
		b.Fatal(err)
	}
	// The first token request makes keycloaktest create the realm's
	// signing key, after which it tops its shared RSA key pool up in the
	// background (keycloaktest/keys.go, rsaKeyPool.refill: about 0.5 s of
	// CPU here). Do that now and let it finish, so that it does not
	// compete with the measurement on this 2-core machine.
	if _, err := ac.CountUsers(context.Background(), admin.UserQuery{}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	return ac
}

// openSyncTarget opens an empty directory: a new SQLite file or a new
// PostgreSQL schema (dropped at the end).
func openSyncTarget(b *testing.B, backend, pgURL string, ac *admin.Client) *directory.Directory {
	b.Helper()
	if backend == "sqlite" {
		d, err := directory.OpenSQLite(filepath.Join(b.TempDir(), "users.db"), directory.WithAdmin(ac))
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	schema := "cloakroom_bench_" + randomName()
	pgRun(b, pgURL, `CREATE SCHEMA `+schema)
	b.Cleanup(func() { pgRun(b, pgURL, `DROP SCHEMA `+schema+` CASCADE`) })
	d, err := directory.OpenPostgres(context.Background(), pgURL, directory.WithSchema(schema), directory.WithAdmin(ac))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func pgRun(b *testing.B, url, sql string) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		b.Fatal(err)
	}
}
