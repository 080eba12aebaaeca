// Command testreport reads `go test -json` streams on stdin and prints what
// `go test` prints without -v — one line per package, the output of failing
// tests, build errors, benchmark results — followed by a summary of every
// skipped test grouped by the reason it gave, so that a run which skipped
// the Redis, PostgreSQL, Chromium or Keycloak tests says so and says how to
// switch them on. test.sh pipes every module's tests through it.
//
// It exits 1 when a test, a package or a build failed, or when the input
// ended without one package result (a crashed go command).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// skipLocation is the "file_test.go:12: " prefix t.Skip puts before the
// reason.
var skipLocation = regexp.MustCompile(`^\s*[\w./-]+\.go:\d+: `)

// report copies the essentials of the stream to w and reports whether
// anything failed.
func report(r io.Reader, w io.Writer) (failed bool, err error) {
	output := map[string][]string{} // package/test → its output lines
	partial := map[string]string{}  // benchmark → its unfinished line
	skips := map[string][]string{}  // reason → package.Test
	packages := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not test2json: go vet's or the go command's own output.
			fmt.Fprintln(w, string(line))
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			failed = true
		case "output":
			switch {
			case e.Test == "":
				// Package-level lines: "ok  pkg 1.2s", "FAIL pkg", panics.
				if out := e.Output; !strings.HasPrefix(out, "=== ") && out != "PASS\n" && out != "FAIL\n" && !strings.HasPrefix(out, "testing: warning: no tests to run") {
					fmt.Fprint(w, out)
				}
			case strings.HasPrefix(e.Test, "Benchmark") && !strings.HasSuffix(e.Output, "\n"):
				// A benchmark's name comes first, its result in a later event.
				partial[key] += e.Output
			case strings.HasPrefix(e.Test, "Benchmark") && strings.Contains(e.Output, "ns/op"):
				fmt.Fprint(w, "    "+strings.TrimLeft(partial[key]+e.Output, " \t"))
				delete(partial, key)
			default:
				output[key] = append(output[key], e.Output)
			}
		case "fail":
			if e.Test != "" {
				for _, l := range output[key] {
					fmt.Fprint(w, l)
				}
			} else {
				packages++
			}
			failed = true
			delete(output, key)
		case "skip":
			if e.Test == "" {
				packages++
				break
			}
			reason := skipReason(output[key])
			skips[reason] = append(skips[reason], shortPackage(e.Package)+"."+e.Test)
			delete(output, key)
		case "pass":
			if e.Test == "" {
				packages++
			}
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if packages == 0 {
		return true, fmt.Errorf("no package results on stdin (did go test run?)")
	}
	printSkips(w, skips)
	return failed, nil
}

// skipReason is the message a skipped test gave (the last line written
// before it ended), or a note that it gave none.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		return skipLocation.ReplaceAllString(lines[i], "")
	}
	return "(no reason given)"
}

func shortPackage(p string) string {
	return strings.TrimPrefix(p, "github.com/cloakroom/cloakroom/")
}

// printSkips lists skipped tests by reason, subtests folded into their
// parent's count.
func printSkips(w io.Writer, skips map[string][]string) {
	if len(skips) == 0 {
		fmt.Fprintln(w, "\nno test was skipped")
		return
	}
	reasons := make([]string, 0, len(skips))
	total := 0
	for r, tests := range skips {
		reasons = append(reasons, r)
		total += len(tests)
	}
	slices.SortFunc(reasons, func(a, b string) int { return len(skips[b]) - len(skips[a]) })
	fmt.Fprintf(w, "\n%d tests skipped (set the variables named below to run them; .ci/run sets them all):\n", total)
	for _, r := range reasons {
		tests := skips[r]
		slices.Sort(tests)
		shown := tests
		if len(shown) > 3 {
			shown = shown[:3]
		}
		more := ""
		if len(tests) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(tests)-len(shown))
		}
		fmt.Fprintf(w, "  %3d  %s\n       %s%s\n", len(tests), strings.TrimSpace(r), strings.Join(shown, ", "), more)
	}
}
