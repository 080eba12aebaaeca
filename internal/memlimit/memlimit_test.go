package memlimit

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

const (
	v2Mount = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
	v1Mount = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	v1Unlimited = "9223372036854771712\n"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fs    fstest.MapFS
		want  Limit
		ok    bool
		error string
	}{
		{
			name: "v2 container: the namespace's root group",
			fs: fstest.MapFS{
				"proc/self/cgroup":          file("0::/\n"),
				"proc/self/mountinfo":       file("22 1 0:20 / / rw - overlay overlay rw\n" + v2Mount),
				"sys/fs/cgroup/memory.max":  file("268435456\n"),
				"sys/fs/cgroup/memory.high": file("max\n"),
			},
			want: Limit{Bytes: 256 << 20, Group: "/sys/fs/cgroup"}, ok: true,
		},
		{
			name: "v2 systemd unit: the slice above limits it",
			fs: fstest.MapFS{
				"proc/self/cgroup":    file("0::/system.slice/cloakroom.service\n"),
				"proc/self/mountinfo": file(v2Mount),
				"sys/fs/cgroup/system.slice/cloakroom.service/memory.max": file("max\n"),
				"sys/fs/cgroup/system.slice/memory.max":                   file("1073741824\n"),
			},
			want: Limit{Bytes: 1 << 30, Group: "/sys/fs/cgroup/system.slice"}, ok: true,
		},
		{
			name: "v2: the smallest limit on the path wins",
			fs: fstest.MapFS{
				"proc/self/cgroup":                   file("0::/a/b\n"),
				"proc/self/mountinfo":                file(v2Mount),
				"sys/fs/cgroup/a/b/memory.max":       file("2000000000\n"),
				"sys/fs/cgroup/a/memory.max":         file("1000000000\n"),
				"sys/fs/cgroup/memory.pressure":      file(""),
				"sys/fs/cgroup/a/b/memory.swap.max":  file("0\n"),
				"sys/fs/cgroup/a/b/memory.max.extra": file("1\n"),
			},
			want: Limit{Bytes: 1000000000, Group: "/sys/fs/cgroup/a"}, ok: true,
		},
		{
			name: "v2 without a limit",
			fs: fstest.MapFS{
				"proc/self/cgroup":                    file("0::/user.slice\n"),
				"proc/self/mountinfo":                 file(v2Mount),
				"sys/fs/cgroup/user.slice/memory.max": file("max\n"),
			},
		},
		{
			name: "v1, as on this project's CI machines",
			fs: fstest.MapFS{
				"proc/self/cgroup":    file("9:name=systemd:/\n4:memory:/process_api/95925a\n1:cpu:/\n0::/\n"),
				"proc/self/mountinfo": file(v1Mount + "43 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"),
				"sys/fs/cgroup/memory/process_api/95925a/memory.limit_in_bytes": file("199999488\n"),
				"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":        file(v1Unlimited),
				"sys/fs/cgroup/memory/memory.limit_in_bytes":                    file(v1Unlimited),
			},
			want: Limit{Bytes: 199999488, Group: "/sys/fs/cgroup/memory/process_api/95925a"}, ok: true,
		},
		{
			name: "v1 unlimited",
			fs: fstest.MapFS{
				"proc/self/cgroup":                           file("4:memory:/\n"),
				"proc/self/mountinfo":                        file(v1Mount),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": file(v1Unlimited),
			},
		},
		{
			name: "v1 container without a cgroup namespace: the mount's root is the group",
			fs: fstest.MapFS{
				"proc/self/cgroup":                           file("4:memory:/docker/abc\n"),
				"proc/self/mountinfo":                        file("35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"),
				"sys/fs/cgroup/memory/memory.limit_in_bytes": file("536870912\n"),
			},
			want: Limit{Bytes: 512 << 20, Group: "/sys/fs/cgroup/memory"}, ok: true,
		},
		{
			name: "v1 memory controller mounted with others",
			fs: fstest.MapFS{
				"proc/self/cgroup":    file("4:cpu,memory:/svc\n"),
				"proc/self/mountinfo": file("35 31 0:32 / /sys/fs/cgroup/cpu,memory rw - cgroup cgroup rw,cpu,memory\n"),
				"sys/fs/cgroup/cpu,memory/svc/memory.limit_in_bytes": file("104857600"),
			},
			want: Limit{Bytes: 100 << 20, Group: "/sys/fs/cgroup/cpu,memory/svc"}, ok: true,
		},
		{
			name: "hybrid: v1 and v2 both limit, the smaller wins",
			fs: fstest.MapFS{
				"proc/self/cgroup":                             file("4:memory:/m\n0::/u\n"),
				"proc/self/mountinfo":                          file(v1Mount + "43 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"),
				"sys/fs/cgroup/memory/m/memory.limit_in_bytes": file("300000000\n"),
				"sys/fs/cgroup/unified/u/memory.max":           file("200000000\n"),
			},
			want: Limit{Bytes: 200000000, Group: "/sys/fs/cgroup/unified/u"}, ok: true,
		},
		{
			name: "a mount point with a space, escaped",
			fs: fstest.MapFS{
				"proc/self/cgroup":    file("0::/\n"),
				"proc/self/mountinfo": file(`30 23 0:26 / /cg\040root rw - cgroup2 cgroup2 rw` + "\n"),
				"cg root/memory.max":  file("4096\n"),
			},
			want: Limit{Bytes: 4096, Group: "/cg root"}, ok: true,
		},
		{
			name: "not Linux: no proc files",
			fs:   fstest.MapFS{},
		},
		{
			name: "no memory controller mounted",
			fs: fstest.MapFS{
				"proc/self/cgroup":    file("1:cpu:/\n"),
				"proc/self/mountinfo": file("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
			},
		},
		{
			name: "a limit file that is not a number",
			fs: fstest.MapFS{
				"proc/self/cgroup":         file("0::/\n"),
				"proc/self/mountinfo":      file(v2Mount),
				"sys/fs/cgroup/memory.max": file("lots\n"),
			},
			error: `memlimit: /sys/fs/cgroup/memory.max: not a limit: "lots"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := Detect(tt.fs)
			if tt.error != "" {
				if err == nil || err.Error() != tt.error {
					t.Fatalf("error %v, want %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok || got != tt.want {
				t.Fatalf("Detect = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestApply changes the process's memory limit, so it does not run in
// parallel with anything that reads it.
func TestApply(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	limited := fstest.MapFS{
		"proc/self/cgroup":         file("0::/\n"),
		"proc/self/mountinfo":      file(v2Mount),
		"sys/fs/cgroup/memory.max": file("1000000000\n"),
	}
	noEnv := func(string) string { return "" }

	a, err := Apply(limited, noEnv, DefaultRatio)
	if err != nil {
		t.Fatal(err)
	}
	if a.Set != 900000000 || a.Limit.Bytes != 1000000000 {
		t.Fatalf("Apply = %+v, want 90%% of 1 GB", a)
	}
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Fatalf("runtime limit %d, want 900000000", got)
	}

	debug.SetMemoryLimit(math.MaxInt64)
	a, err = Apply(limited, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "2GiB"
		}
		return ""
	}, DefaultRatio)
	if err != nil || a.Set != 0 || a.Reason != "GOMEMLIMIT is set" {
		t.Fatalf("with GOMEMLIMIT: %+v, %v", a, err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("GOMEMLIMIT set, but the limit changed to %d", got)
	}

	a, err = Apply(fstest.MapFS{}, noEnv, DefaultRatio)
	if err != nil || a.Set != 0 || a.Reason != "no memory limit" {
		t.Fatalf("without a control group: %+v, %v", a, err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("no limit, but the runtime's changed to %d", got)
	}

	for _, r := range []float64{0, -1, 1.5, math.NaN()} {
		if _, err := Apply(limited, noEnv, r); err == nil || !strings.Contains(err.Error(), "ratio") {
			t.Errorf("ratio %v: error %v, want one naming the ratio", r, err)
		}
	}
}

// TestDetectInRealGroup puts a process in a real control group with a
// memory limit and checks that Detect, reading the real /proc and
// /sys/fs/cgroup, finds it. It needs root and a writable cgroup file
// system (CI machines have both).
func TestDetectInRealGroup(t *testing.T) {
	if os.Getenv("CLOAKROOM_MEMLIMIT_CHILD") != "" {
		l, ok, err := Detect(os.DirFS("/"))
		fmt.Printf("limit=%d ok=%v err=%v\n", l.Bytes, ok, err)
		return
	}
	dir := writableMemoryGroup(t)
	const limit = 200 << 20
	file := "memory.max"
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "memory.limit_in_bytes")); err == nil {
		file = "memory.limit_in_bytes"
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shell moves itself into the group, then becomes the test binary.
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" -test.run '^TestDetectInRealGroup$'`, "sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), "CLOAKROOM_MEMLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := fmt.Sprintf("limit=%d ok=true err=<nil>", limit); !strings.Contains(string(out), want) {
		t.Fatalf("in a group limited to %d bytes the child saw:\n%s\nwant %q", limit, out, want)
	}
}

// writableMemoryGroup creates a control group with the memory controller
// for the test, removed at its end, or skips when there is none to write.
func writableMemoryGroup(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a control group")
	}
	parent := "/sys/fs/cgroup/memory" // v1
	if _, err := os.Stat(filepath.Join(parent, "memory.limit_in_bytes")); err != nil {
		parent = "/sys/fs/cgroup" // v2
		ctrl, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
		if err != nil || !strings.Contains(string(ctrl), "memory") {
			t.Skip("no writable memory controller under /sys/fs/cgroup")
		}
	}
	dir := filepath.Join(parent, fmt.Sprintf("cloakroom-memlimit-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a control group: %v", err)
	}
	t.Cleanup(func() {
		// The child has exited: the group is empty again.
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}
