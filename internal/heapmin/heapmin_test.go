package heapmin

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercentFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		floor, live, roots uint64
		base, want         int
	}{
		// The runtime's own minimum (4 MiB × GOGC/100) bounds it.
		{"tiny live heap", 16 * mib, 1 * mib, 1 * mib, 100, 400},
		{"nothing collected yet", 16 * mib, 0, 0, 100, 400},
		// goal = live + (live + roots) × p/100 = 5 + 10 × 110/100 = 16 MiB
		{"goal reaches the floor", 16 * mib, 5 * mib, 5 * mib, 100, 110},
		{"twice live above the floor", 16 * mib, 10 * mib, 1 * mib, 100, 100},
		{"live above the floor", 16 * mib, 64 * mib, 1 * mib, 100, 100},
		{"base kept when higher", 16 * mib, 1 * mib, 1 * mib, 800, 800},
		{"GOGC=off stays off", 16 * mib, 1 * mib, 1 * mib, -1, -1},
		{"floor below the runtime's", 2 * mib, 0, 0, 100, 100},
		{"floor not a multiple", 6 * mib, 0, 0, 100, 150},
		{"huge floor", 1 << 62, 1 * mib, 1 * mib, 100, (1 << 40) * 100 / runtimeMinimum},
	} {
		if got := PercentFor(tc.floor, tc.live, tc.roots, tc.base); got != tc.want {
			t.Errorf("%s: PercentFor(%d, %d, %d, %d) = %d, want %d", tc.name, tc.floor, tc.live, tc.roots, tc.base, got, tc.want)
		}
	}
}

// readGC returns the number of collections so far and the current heap
// goal.
func readGC() (cycles, goal uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// settle collects until the floor has adjusted to what the collector
// found (adjust runs after a cycle, on the runtime's cleanup goroutine)
// and ok holds for its GOGC, or two seconds have passed.
func settle(f *Floor, ok func(int) bool) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		runtime.GC()
		time.Sleep(time.Millisecond)
		if p := f.Percent(); ok(p) || time.Now().After(deadline) {
			return p
		}
	}
}

func atLeast(n int) func(int) bool { return func(p int) bool { return p >= n } }

var sink []byte

// churn allocates n bytes of garbage in 64 KiB pieces and returns how
// many collections that took.
func churn(n int) uint64 {
	before, _ := readGC()
	for i := 0; i < n/(64<<10); i++ {
		sink = make([]byte, 64<<10)
	}
	sink = nil
	after, _ := readGC()
	return after - before
}

// TestFloorInTheRuntime runs a Floor in this process (no t.Parallel: it
// changes GOGC for the whole test binary) and checks what the collector
// does: the heap goal stays at the floor while little is live, fewer
// collections for the same garbage, GOGC back at its base once the live
// heap is large, and again after Stop.
func TestFloorInTheRuntime(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	runtime.GC()
	without := churn(256 * mib)

	f := Start(32*mib, 100)
	defer f.Stop()
	if p := settle(f, atLeast(400)); p < 400 {
		t.Errorf("GOGC with a small live heap and a 32 MiB floor = %d, want at least 400", p)
	}
	if _, goal := readGC(); goal < 28*mib || goal > 34*mib {
		t.Errorf("heap goal with a small live heap = %d MiB, want about 32 MiB", goal/mib)
	}
	with := churn(256 * mib)
	t.Logf("collections for 256 MiB of garbage: %d at GOGC=100, %d with a 32 MiB floor", without, with)
	if with*3 > without {
		t.Errorf("collections with the floor = %d, without = %d: want at most a third", with, without)
	}

	// A large live heap: GOGC is the base again.
	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, mib)
	}
	if p := settle(f, func(p int) bool { return p == 100 }); p != 100 {
		t.Errorf("GOGC with 48 MiB live = %d, want 100", p)
	}
	if _, goal := readGC(); goal < 96*mib {
		t.Errorf("heap goal with 48 MiB live = %d MiB, want at least twice the live heap", goal/mib)
	}
	runtime.KeepAlive(live)
	live = nil
	if p := settle(f, atLeast(400)); p < 400 {
		t.Errorf("GOGC once the live heap is small again = %d, want at least 400", p)
	}

	f.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after Stop = %d, want 100", p)
	}
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after Stop and a collection = %d, want 100 (the floor still adjusting)", p)
	}
}
