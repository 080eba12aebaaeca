package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestServeMemoryLimit: under a control group's memory limit the gateway
// gives the Go runtime 90% of it and says so; GOMEMLIMIT wins; a limit it
// cannot read is a warning that names the remedy, not a failure to start.
func TestServeMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	group := func(max string) fstest.MapFS {
		return fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"proc/self/mountinfo":      {Data: []byte("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte(max)},
		}
	}
	tests := []struct {
		name      string
		fs        fstest.MapFS
		env       map[string]string
		wantLimit int64
		wantLog   []string
	}{
		{"limited", group("536870912\n"), nil, 483183820,
			[]string{"level=INFO", "Go memory limit set below the control group's", "cgroup=/sys/fs/cgroup", "cgroup_limit_bytes=536870912", "go_memory_limit_bytes=483183820"}},
		{"GOMEMLIMIT set", group("536870912\n"), map[string]string{"GOMEMLIMIT": "1GiB"}, math.MaxInt64, nil},
		{"no limit", group("max\n"), nil, math.MaxInt64, nil},
		{"unreadable limit", group("a lot\n"), nil, math.MaxInt64,
			[]string{"level=WARN", "set GOMEMLIMIT", `not a limit: \"a lot\"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			var log bytes.Buffer
			applyMemoryLimit(slog.New(slog.NewTextHandler(&log, nil)), tt.fs, envFunc(tt.env))
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("runtime memory limit %d, want %d", got, tt.wantLimit)
			}
			for _, w := range tt.wantLog {
				if !strings.Contains(log.String(), w) {
					t.Errorf("log %q lacks %q", log.String(), w)
				}
			}
			if tt.wantLog == nil && log.Len() != 0 {
				t.Errorf("logged %q; want nothing", log.String())
			}
		})
	}
}

// TestServeHeapFloor: serve keeps a minimum heap goal unless GOGC is set,
// and a smaller one under a small memory limit. (Not parallel: it changes
// the process's GOGC and memory limit.)
func TestServeHeapFloor(t *testing.T) {
	oldLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(oldLimit)
	oldGOGC := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldGOGC)
	tests := []struct {
		name  string
		env   map[string]string
		limit int64
		want  int // GOGC with a small live heap; 0: no floor
	}{
		{"default", nil, math.MaxInt64, 400},                             // 16 MiB / 4 MiB
		{"small memory limit", nil, 32 << 20, 200},                       // a quarter of 32 MiB
		{"GOGC set", map[string]string{"GOGC": "100"}, math.MaxInt64, 0}, // the user's policy
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(tt.limit)
			var log bytes.Buffer
			f := applyHeapFloor(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})), envFunc(tt.env))
			if tt.want == 0 {
				if f != nil {
					f.Stop()
					t.Fatal("a heap floor with GOGC set")
				}
				return
			}
			defer f.Stop()
			deadline := time.Now().Add(2 * time.Second)
			for f.Percent() != tt.want && time.Now().Before(deadline) {
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
			if got := f.Percent(); got != tt.want {
				t.Errorf("GOGC %d, want %d", got, tt.want)
			}
			if !strings.Contains(log.String(), "min_heap_goal_bytes=") {
				t.Errorf("log %q does not say the floor", log.String())
			}
		})
	}
}
