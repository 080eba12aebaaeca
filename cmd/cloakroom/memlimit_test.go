package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
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
