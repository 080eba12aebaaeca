package canonical

import (
	"strings"
	"testing"
)

// FuzzPath checks the invariant the gateway relies on: an accepted path is
// exactly what is forwarded (its escaped form reads back to itself, with
// nothing left to clean), and no dot segment, empty segment, encoded
// separator, backslash, ';' or control character survives.
func FuzzPath(f *testing.F) {
	for _, s := range []string{
		"/", "/admin/secret.txt", "//admin", "/./admin", "/public/..%2fadmin/secret.txt",
		"/x/..%2f..%2fsecret", "/%2e%2e/admin", "/.%2E/", "/a;b", "/a%3bb", "/%00", "/%c0%ae",
		"/%252e", "/a\\b", "/a/b/..", "/caf%C3%A9", "/%zz", "/a//b///c/./../d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.HasPrefix(raw, "/") && plainPath(raw) {
			if p, cleaned, err := slowPath(raw); p != raw || cleaned || err != nil {
				t.Fatalf("fast path takes %q as canonical; the full rules give %q, %v, %v", raw, p, cleaned, err)
			}
		}
		p, _, err := Path(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("Path(%q) = %q: not absolute", raw, p)
		}
		for i, seg := range strings.Split(p[1:], "/") {
			last := i == strings.Count(p[1:], "/")
			if seg == "." || seg == ".." || (seg == "" && !last) {
				t.Fatalf("Path(%q) = %q: dot or empty segment survives", raw, p)
			}
		}
		if strings.ContainsAny(p, "\\;") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("Path(%q) = %q: separator, parameter or control character survives", raw, p)
		}
		fwd := Target{Path: p}.EscapedPath()
		lower := strings.ToLower(fwd)
		for _, bad := range []string{"%2f", "%5c", "%2e", "%3b", "%00", "//", "/./", "/../"} {
			if strings.Contains(lower, bad) {
				t.Fatalf("Path(%q) forwards %q, which contains %s", raw, fwd, bad)
			}
		}
		back, cleaned, err := Path(fwd)
		if err != nil || cleaned || back != p {
			t.Fatalf("Path(%q) = %q forwards %q, which reads back as %q (cleaned %v, %v)", raw, p, fwd, back, cleaned, err)
		}
	})
}

// FuzzHost checks that an accepted host is lower case, has no trailing
// dot, and is its own canonical form.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"a.com", "A.COM.", "a.com:80", "[::1]:1", "a..b", "x:0", "é.com", "[::ffff:1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, p, err := Host(in)
		if err != nil {
			return
		}
		if h != strings.ToLower(h) || strings.HasSuffix(h, ".") {
			t.Fatalf("Host(%q) = %q: not canonical", in, h)
		}
		hp := h
		if p != "" {
			hp += ":" + p
		}
		h2, p2, err := Host(hp)
		if err != nil || h2 != h || p2 != p {
			t.Fatalf("Host(%q) = %q, %q, which reads back as %q, %q, %v", in, h, p, h2, p2, err)
		}
	})
}
