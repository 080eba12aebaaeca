// Package heapmin keeps the Go garbage collector's heap goal at or above a
// minimum while the live heap is small, and leaves it alone once the live
// heap is large.
//
// With GOGC=100 the runtime collects when the heap reaches twice what the
// last collection found live, and never below 4 MiB. A gateway with a few
// sessions keeps about 1 MB live and allocates about 9 kB per request: it
// collected every ~400 requests, and the fixed cost of each cycle
// (starting and ending it, scanning stacks and globals, sweeping) came to
// several µs of CPU per request, a tenth of what the whole hop costs.
// A Floor raises GOGC after each collection just enough for the next goal
// to be its minimum (GOGC also scales the runtime's 4 MiB minimum, so at
// most minimum / 4 MiB × 100); once twice the live heap is above the
// minimum, GOGC is back at its base and the memory the heap takes per live byte is what it was
// without a Floor. A memory limit (GOMEMLIMIT, debug.SetMemoryLimit) still
// bounds the heap whatever GOGC says.
package heapmin

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// runtimeMinimum is the Go runtime's minimum heap goal at GOGC=100
// (defaultHeapMinimum in runtime/mgcpacer.go); GOGC scales it.
const runtimeMinimum = 4 << 20

// DefaultMin is the minimum heap goal `cloakroom serve` keeps. 16 MiB makes
// a gateway with few sessions collect a quarter as often as with the
// runtime's 4 MiB, for about 12 MiB more resident memory.
const DefaultMin = 16 << 20

// Floor adjusts GOGC after every garbage collection; see the package
// documentation. Stop it to give the runtime back its base GOGC.
type Floor struct {
	goal    uint64 // the minimum heap goal
	base    int
	stopped atomic.Bool

	mu      sync.Mutex // held while adjusting
	percent int        // the GOGC last set
	samples []metrics.Sample
}

// The runtime's figures of the last collection that the heap goal is
// computed from (runtime/mgcpacer.go: goal = live + (live + stacks +
// globals) × GOGC / 100).
var sampleNames = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Start keeps the heap goal at or above minGoal bytes from now on, with
// base as the GOGC to use once the live heap is large (100 unless the
// caller knows better). Callers leave the collector alone when the user
// chose a policy (GOGC in the environment).
func Start(minGoal uint64, base int) *Floor {
	f := &Floor{goal: minGoal, base: base, percent: base}
	for _, n := range sampleNames {
		f.samples = append(f.samples, metrics.Sample{Name: n})
	}
	f.adjust()
	f.arm()
	return f
}

// Stop stops adjusting and sets GOGC back to the base.
func (f *Floor) Stop() {
	if f.stopped.Swap(true) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	debug.SetGCPercent(f.base)
	f.percent = f.base
}

// Percent is the GOGC the Floor set last.
func (f *Floor) Percent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// arm has adjust run after the next collection: a cleanup runs once the
// collector has found its object unreachable, that is, after a cycle.
// (64 bytes: smaller pointer-free objects may share a block with others
// and never be found unreachable alone.)
func (f *Floor) arm() {
	if f.stopped.Load() {
		return
	}
	runtime.AddCleanup(new([64]byte), func(f *Floor) {
		f.adjust()
		f.arm()
	}, f)
}

func (f *Floor) adjust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return
	}
	metrics.Read(f.samples)
	var v [3]uint64
	for i, s := range f.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := PercentFor(f.goal, v[0], v[1]+v[2], f.base); p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
}

// PercentFor is the GOGC that makes the next heap goal as close to floor
// bytes as possible without going over it, and never below base, given
// what the last collection found: live heap bytes and scanned stack and
// global bytes (roots).
func PercentFor(floor, live, roots uint64, base int) int {
	if base < 0 || floor <= runtimeMinimum {
		return base // GOGC=off, or a floor the runtime keeps by itself
	}
	floor = min(floor, 1<<40)
	p := floor * 100 / runtimeMinimum // GOGC scales the runtime's minimum too
	switch {
	case live >= floor:
		p = 0
	case (floor-live)*100/max(live+roots, 1) < p:
		p = (floor - live) * 100 / max(live+roots, 1)
	}
	return max(base, int(p))
}
