package main

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	t.Parallel()
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-06T18:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		name    string
		bi      debug.BuildInfo
		want    []string
		notWant []string
	}{
		{"tagged release", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			[]string{"v1.2.3 (go1.26.8 "}, []string{"devel", "commit"}},
		{"clone with changes", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206180000-0123456789ab+dirty"}, Settings: vcs},
			[]string{"v0.0.0-20261206180000-0123456789ab+dirty (commit 0123456789ab, 2026-12-06T18:00:00Z, with local changes, go1.26.8"}, nil},
		{"go run", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			[]string{"devel (no commit recorded", "go build ./cmd/cloakroom"}, []string{"(devel)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := describeBuild(&tc.bi)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

// TestVersionOfBuiltBinary: a binary built from this clone reports the
// commit it was built from.
func TestVersionOfBuiltBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git clone: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cloakroom")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "commit " + string(rev[:12]); !strings.Contains(string(out), want) {
		t.Errorf("version %q lacks %q", out, want)
	}
}
