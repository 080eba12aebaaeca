package pgstore

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A LISTEN connection that stops answering without failing (a silent
// network partition: nothing sent arrives, no read or write fails) counts
// as lost after at most two health-check intervals: the subscriber hears
// fn(nil), the store listens on a new connection once one answers,
// fn(nil) again, and deletions arrive again.
func TestSubscribeNoticesSilentConnection(t *testing.T) {
	t.Parallel()
	dsn := testURL(t)
	schema := newSchema(t, dsn)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faulttest.NewLatencyProxy(t, "127.0.0.1:0", u.Host)
	u.Host = p.Addr()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	listener := newStore(t, newPool(t, u.String(), func(c *pgxpool.Config) { c.ConnConfig.ConnectTimeout = time.Second }),
		WithSchema(schema), WithLogger(quiet))
	listener.health = 300 * time.Millisecond
	writer := newStore(t, newPool(t, dsn), WithSchema(schema), WithLogger(quiet))

	var mu sync.Mutex
	var got [][]string
	count := func() (nils int, last []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range got {
			if k == nil {
				nils++
			}
		}
		if len(got) > 0 {
			last = got[len(got)-1]
		}
		return nils, last
	}
	waitFor := func(what string, ok func(nils int, last []string) bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if ok(count()) {
				return
			}
			if time.Now().After(deadline) {
				n, last := count()
				t.Fatalf("%s: %d fn(nil), last call %q", what, n, last)
			}
		}
	}
	if err := listener.Subscribe(context.Background(), func(keys []string) {
		mu.Lock()
		got = append(got, keys)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	p.SetDelay(time.Hour) // what the listener sends never arrives
	start := time.Now()
	waitFor("fn(nil) once the connection stops answering", func(n int, _ []string) bool { return n >= 1 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the silent connection was noticed after %v, want about 2 × 300 ms", d)
	}
	time.Sleep(time.Second)
	if n, _ := count(); n != 1 {
		t.Fatalf("%d fn(nil) while the partition lasts, want 1", n)
	}
	p.SetDelay(0)
	waitFor("fn(nil) again once LISTEN works again", func(n int, _ []string) bool { return n >= 2 })

	r := rec("hugo", "")
	mustSave(t, writer, r)
	if err := writer.Delete(context.Background(), r.Key); err != nil {
		t.Fatal(err)
	}
	waitFor("the deletion after the new LISTEN", func(_ int, last []string) bool { return len(last) == 1 && last[0] == r.Key })
}
