package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/faulttest"
)

// calls records what a subscriber received, nil announcements included.
type calls struct {
	mu  sync.Mutex
	got [][]string
}

func (c *calls) fn(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, keys)
}

// waitFor waits until pred holds for what was received.
func (c *calls) waitFor(t *testing.T, what string, pred func(got [][]string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		ok := pred(c.got)
		got := append([][]string(nil), c.got...)
		c.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: received %q", what, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nils(got [][]string) int {
	n := 0
	for _, k := range got {
		if k == nil {
			n++
		}
	}
	return n
}

// The subscription's connection breaks (the Redis behind a proxy vanishes,
// or only the connections are cut) and comes back: the subscriber hears
// fn(nil) when it is lost and again when it is re-established, and then
// deletions again.
func TestSubscribeAnnouncesLostConnection(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	for _, tt := range []struct {
		name   string
		break_ func(p *faulttest.Proxy)
	}{
		{"server gone", func(p *faulttest.Proxy) { p.Down() }},
		{"connections cut", func(p *faulttest.Proxy) { p.Cut() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := testPrefix(t, c)
			p := faulttest.NewProxy(t, c.Options().Addr)
			listener, err := Open("redis://"+p.Addr()+"/0?max_retries=-1&dial_timeout=500ms", WithPrefix(prefix))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = listener.Close() })
			writer := newStore(t, c, prefix)
			got := &calls{}
			if err := listener.Subscribe(context.Background(), got.fn); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()

			tt.break_(p)
			got.waitFor(t, "fn(nil) once the connection is lost", func(g [][]string) bool { return nils(g) >= 1 })
			if err := p.Up(); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, "fn(nil) again once it is re-established", func(g [][]string) bool { return nils(g) >= 2 })

			r := rec("gina", "sid-resync")
			mustSave(t, writer, r)
			if err := writer.Delete(ctx, r.Key); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, "the deletion after the reconnection", func(g [][]string) bool {
				return len(g) > 0 && len(g[len(g)-1]) == 1 && g[len(g)-1][0] == r.Key
			})
		})
	}
}

// A connection that stops answering without failing (a silent network
// partition: the PING is taken and never answered, no read or write
// fails) counts as lost after at most two health-check intervals: the
// subscriber hears fn(nil), the store subscribes on a new connection,
// fn(nil) again, and deletions arrive again.
func TestSubscribeNoticesSilentConnection(t *testing.T) {
	t.Parallel()
	c := testClient(t)
	prefix := testPrefix(t, c)
	p := faulttest.NewLatencyProxy(t, "127.0.0.1:0", c.Options().Addr)
	listener, err := Open("redis://"+p.Addr()+"/0", WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	listener.health = 300 * time.Millisecond
	t.Cleanup(func() { _ = listener.Close() })
	writer := newStore(t, c, prefix)
	got := &calls{}
	if err := listener.Subscribe(context.Background(), got.fn); err != nil {
		t.Fatal(err)
	}

	p.SetDelay(time.Hour) // what the listener sends never arrives
	start := time.Now()
	got.waitFor(t, "fn(nil) once the connection stops answering", func(g [][]string) bool { return nils(g) >= 1 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the silent connection was noticed after %v, want about 2 × 300 ms", d)
	}
	// While nothing gets through, no re-subscription can succeed.
	time.Sleep(time.Second)
	got.mu.Lock()
	n := nils(got.got)
	got.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d fn(nil) while the partition lasts, want 1", n)
	}
	p.SetDelay(0)
	got.waitFor(t, "fn(nil) again once a new subscription answers", func(g [][]string) bool { return nils(g) >= 2 })

	r := rec("hugo", "sid-silent")
	mustSave(t, writer, r)
	if err := writer.Delete(context.Background(), r.Key); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, "the deletion after the new subscription", func(g [][]string) bool {
		return len(g) > 0 && len(g[len(g)-1]) == 1 && g[len(g)-1][0] == r.Key
	})
}
