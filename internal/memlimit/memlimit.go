// Package memlimit gives the Go runtime a soft memory limit below the
// memory limit of the process's control group (a container's, or a
// systemd unit's MemoryMax), so that the garbage collector works harder as
// the process nears that limit instead of the kernel killing it.
//
// Go does not do this by itself (it reads the control group's CPU quota
// for GOMAXPROCS, not its memory limit). Without a soft limit the heap
// grows to twice what is live before a collection (GOGC=100): a gateway
// holding many sessions can be killed for memory it would have freed.
//
// Both cgroup versions are read: v2 (memory.max) and v1
// (memory.limit_in_bytes), each at the process's own group and every
// group above it up to the mount point, and the smallest limit wins, as
// in the kernel.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultRatio is the share of the control group's limit given to the Go
// runtime: the rest is for what the runtime does not count (memory of the
// kernel charged to the group, pages of the binary).
const DefaultRatio = 0.9

// Limit is the memory limit of the process's control group.
type Limit struct {
	// Bytes is the smallest limit on the group's path.
	Bytes int64
	// Group is the control group directory that sets it, as mounted
	// (e.g. /sys/fs/cgroup/system.slice/cloakroom.service).
	Group string
}

// Detect returns the memory limit of the control group of this process,
// read from fsys (rooted at "/": proc/self/cgroup, proc/self/mountinfo
// and the cgroup file systems they name). ok is false when there is no
// limit: no control group file system (not Linux), no memory controller,
// or no limit set on the group or any group above it.
func Detect(fsys fs.FS) (l Limit, ok bool, err error) {
	groups, err := readGroups(fsys)
	if err != nil {
		return Limit{}, false, err
	}
	mounts, err := readMounts(fsys)
	if err != nil {
		return Limit{}, false, err
	}
	best := Limit{Bytes: math.MaxInt64}
	for _, m := range mounts {
		rel, found := groups[m.controller()]
		if !found {
			continue
		}
		file := "memory.max"
		if !m.v2 {
			file = "memory.limit_in_bytes"
		}
		// The group's path is relative to the cgroup namespace; the mount
		// shows the hierarchy from m.root down.
		dir := m.point
		if sub, under := strings.CutPrefix(rel, m.root); under && (m.root == "/" || sub == "" || sub[0] == '/') {
			dir = path.Join(m.point, sub)
		}
		for d := dir; ; d = path.Dir(d) {
			b, err := fs.ReadFile(fsys, strings.TrimPrefix(d, "/")+"/"+file)
			if err == nil {
				n, limited, err := parseLimit(string(b), m.v2)
				if err != nil {
					return Limit{}, false, fmt.Errorf("memlimit: %s/%s: %w", d, file, err)
				}
				if limited && n < best.Bytes {
					best = Limit{Bytes: n, Group: d}
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return Limit{}, false, fmt.Errorf("memlimit: %w", err)
			}
			if d == m.point || d == "/" || d == "." {
				break
			}
		}
	}
	if best.Group == "" {
		return Limit{}, false, nil
	}
	return best, true, nil
}

// parseLimit reads a limit file: "max" (v2) or a number of bytes; v1
// writes "no limit" as a number near 2^63 rounded down to a page.
func parseLimit(s string, v2 bool) (n int64, limited bool, err error) {
	s = strings.TrimSpace(s)
	if v2 && s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("not a limit: %q", s)
	}
	if n >= math.MaxInt64/2 {
		return 0, false, nil
	}
	return n, true, nil
}

// readGroups maps each controller of proc/self/cgroup to the process's
// group path in that hierarchy ("" names the v2 unified hierarchy).
func readGroups(fsys fs.FS) (map[string]string, error) {
	b, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("memlimit: %w", err)
	}
	groups := map[string]string{}
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controller-list:path
		_, rest, ok1 := strings.Cut(strings.TrimSpace(line), ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		if ctrls == "" {
			groups[""] = p
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			groups[c] = p
		}
	}
	return groups, nil
}

// mount is a cgroup file system that can hold memory limits.
type mount struct {
	root, point string
	v2          bool
}

func (m mount) controller() string {
	if m.v2 {
		return ""
	}
	return "memory"
}

// readMounts lists the cgroup2 mounts and the cgroup (v1) mounts with
// the memory controller, from proc/self/mountinfo.
func readMounts(fsys fs.FS) ([]mount, error) {
	f, err := fsys.Open("proc/self/mountinfo")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("memlimit: %w", err)
	}
	defer f.Close()
	var mounts []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// ID parent major:minor root mount-point options [optional...] - fstype source super-options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 1 {
			continue
		}
		m := mount{root: unescape(fields[3]), point: unescape(fields[4])}
		switch tail[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if len(tail) < 3 || !hasOption(tail[2], "memory") {
				continue
			}
		default:
			continue
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memlimit: mountinfo: %w", err)
	}
	return mounts, nil
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Applied is what Apply did.
type Applied struct {
	// Limit is the control group's limit (zero when there is none).
	Limit Limit
	// Set is the soft limit given to the runtime, or 0 when Apply left the
	// runtime's limit alone.
	Set int64
	// Reason says why Set is 0: "GOMEMLIMIT is set" or "no memory limit".
	Reason string
}

// Apply gives the runtime a soft memory limit of ratio times the control
// group's limit (see Detect), unless GOMEMLIMIT (as getenv reads it)
// already chose one.
func Apply(fsys fs.FS, getenv func(string) string, ratio float64) (Applied, error) {
	if getenv("GOMEMLIMIT") != "" {
		return Applied{Reason: "GOMEMLIMIT is set"}, nil
	}
	if !(ratio > 0 && ratio <= 1) {
		return Applied{}, fmt.Errorf("memlimit: ratio %v is not in (0, 1]", ratio)
	}
	l, ok, err := Detect(fsys)
	if err != nil || !ok {
		return Applied{Reason: "no memory limit"}, err
	}
	set := int64(float64(l.Bytes) * ratio)
	debug.SetMemoryLimit(set)
	return Applied{Limit: l, Set: set}, nil
}
