package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/canonical"
)

// FuzzOriginalRequest feeds the headers of forward-auth subrequests to
// originalRequest and the canonical form, as serveAuth does. Whatever the
// input: no panic; an accepted description has a method token, a target
// and http or https; an accepted target is canonical (no dot or empty
// segment, no backslash or control character) and parses again to itself.
// The seeds run with the normal tests.
func FuzzOriginalRequest(f *testing.F) {
	for _, s := range [][6]string{
		{"GET", "/x?a=1", "", "", "", ""},
		{"POST", "/api/orders", "app.example.com", "https", "", ""},
		{"GET", "/public/..%2fadmin", "", "", "", ""},
		{"GET", "/public/../admin", "", "", "", ""},
		{"GET", "//admin", "", "", "", ""},
		{"GET", "/%2e%2e/admin", "APP.Example.com.:0443", "HTTPS", "", ""},
		{"GET", "/a\\b", "", "", "", ""},
		{"G T", "/x", "", "", "", ""},
		{"GET", "", "", "", "", ""},
		{"GET", "http://app.example.com/x", "app.example.com", "", "", ""},
		{"GET", "/x", "a.example, b.example", "", "", ""},
		{"GET", "/x", "", "gopher", "", ""},
		{"GET", "/admin", "", "", "GET", "/public"},
		{"GET", "/admin", "", "", "POST", "/admin"},
		{"GET", "/%c0%ae%c0%ae/admin", "évil.com", "", "", ""},
		{"GET", "/x;y", "[::1]:8080", "http", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, method, uri, fhost, proto, fmethod, furi string) {
		h := http.Header{}
		set := func(name, v string) {
			if v != "" {
				h[http.CanonicalHeaderKey(name)] = []string{v}
			}
		}
		set("X-Original-Method", method)
		set("X-Original-URI", uri)
		set("X-Forwarded-Host", fhost)
		set("X-Forwarded-Proto", proto)
		set("X-Forwarded-Method", fmethod)
		set("X-Forwarded-Uri", furi)
		o, err := originalRequest(h, "gateway.internal:4180", false)
		if err != nil {
			return
		}
		if !validMethod(o.method) || o.uri == "" || (o.proto != "http" && o.proto != "https") || o.host == "" {
			t.Fatalf("accepted %+v", o)
		}
		if fmethod != "" && method != "" && fmethod != method || furi != "" && uri != "" && furi != uri {
			t.Fatalf("disagreeing spellings accepted: %+v", o)
		}
		tg, err := canonical.Parse(o.uri, o.host)
		if err != nil || tg.Cleaned {
			return
		}
		p := tg.Path
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
			strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") || strings.ContainsAny(p, "\\\x00\r\n") {
			t.Fatalf("non-canonical path accepted: %q from %q", p, o.uri)
		}
		again, err := canonical.Parse(tg.RequestURI(), tg.HostPort())
		if err != nil || again.Path != tg.Path || again.Cleaned {
			t.Fatalf("%q: canonical form %q does not parse to itself: %+v %v", o.uri, tg.RequestURI(), again, err)
		}
	})
}
