package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes the binary: the module version (a tag, or the
// pseudo-version Go derives from the commit when built from a clone), the
// commit and whether the tree had local changes, and the Go toolchain.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel (no build information; " + runtime.Version() + ")"
	}
	return describeBuild(bi)
}

func describeBuild(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var details []string
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		details = append(details, "commit "+rev)
		if t := settings["vcs.time"]; t != "" {
			details = append(details, t)
		}
		if settings["vcs.modified"] == "true" {
			details = append(details, "with local changes")
		}
	} else if v == "devel" {
		details = append(details, "no commit recorded: `go run` and -buildvcs=false do not stamp one; `go build ./cmd/cloakroom` in a git clone does")
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	details = append(details, goVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("%s (%s)", v, strings.Join(details, ", "))
}
