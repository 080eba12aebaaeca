package canonical

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    string // "" means refused
		cleaned bool
		reason  string // part of the refusal
	}{
		{raw: "/", want: "/"},
		{raw: "", want: "/"},
		{raw: "/admin/secret.txt", want: "/admin/secret.txt"},
		{raw: "/admin/", want: "/admin/"},
		{raw: "/%61dmin/secret", want: "/admin/secret"},
		{raw: "/a%20b", want: "/a b"},
		{raw: "/caf%C3%A9", want: "/café"},
		{raw: "/café", want: "/café"},
		{raw: "/a+b=c,d:e@f", want: "/a+b=c,d:e@f"},
		{raw: "/q%3Fx", want: "/q?x"},
		{raw: "/100%25", want: "/100%"},
		{raw: "/...", want: "/..."},
		{raw: "/a..b/c.", want: "/a..b/c."},
		// Literal dot and empty segments are resolved (and reported).
		{raw: "//admin/secret.txt", want: "/admin/secret.txt", cleaned: true},
		{raw: "/./admin/x", want: "/admin/x", cleaned: true},
		{raw: "/public/../admin/x", want: "/admin/x", cleaned: true},
		{raw: "/../../admin", want: "/admin", cleaned: true},
		{raw: "/a/b/..", want: "/a/", cleaned: true},
		{raw: "/a/b/.", want: "/a/b/", cleaned: true},
		{raw: "/a//", want: "/a/", cleaned: true},
		{raw: "/..", want: "/", cleaned: true},
		{raw: "///", want: "/", cleaned: true},
		// Refused: what upstreams read differently.
		{raw: "/public/..%2fadmin/secret.txt", reason: "slash"},
		{raw: "/public/..%2Fadmin", reason: "slash"},
		{raw: "/%2fadmin/x", reason: "slash"},
		{raw: "/x/%2e%2e/admin", reason: "dot segment"},
		{raw: "/x/%2E%2E/admin", reason: "dot segment"},
		{raw: "/x/.%2e/admin", reason: "dot segment"},
		{raw: "/x/%2e./admin", reason: "dot segment"},
		{raw: "/%2e/admin", reason: "dot segment"},
		{raw: "/x/..%5cadmin", reason: "backslash"},
		{raw: "/x\\..\\admin", reason: "backslash"},
		{raw: "/admin;jsessionid=1/x", reason: "path parameter"},
		{raw: "/admin%3b/x", reason: "semicolon"},
		{raw: "/admin%00.txt", reason: "control"},
		{raw: "/admin%0d%0aX: y", reason: "control"},
		{raw: "/a\tb", reason: "control"},
		{raw: "/admin%7f", reason: "control"},
		{raw: "/%zz", reason: "invalid percent-encoding"},
		{raw: "/%2", reason: "invalid percent-encoding"},
		{raw: "/a%", reason: "invalid percent-encoding"},
		{raw: "/%252e%252e/admin", reason: "double percent-encoding"},
		{raw: "/%252fadmin", reason: "double percent-encoding"},
		{raw: "/%c0%ae%c0%ae/admin", reason: "UTF-8"},
		{raw: "/%c0%af", reason: "UTF-8"},
		{raw: "/%e0%80%ae", reason: "UTF-8"},
		{raw: "/%ff", reason: "UTF-8"},
		{raw: "admin", reason: "start with /"},
	}
	for _, tt := range tests {
		got, cleaned, err := Path(tt.raw)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Path(%q) = %q, want refused (%s)", tt.raw, got, tt.reason)
				continue
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Path(%q) error %q, want one about %q", tt.raw, err, tt.reason)
			}
			continue
		}
		if err != nil || got != tt.want || cleaned != tt.cleaned {
			t.Errorf("Path(%q) = %q, %v, %v; want %q, %v", tt.raw, got, cleaned, err, tt.want, tt.cleaned)
		}
	}
}

func TestHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, host, port string
		bad            bool
	}{
		{in: "", host: ""},
		{in: "example.com", host: "example.com"},
		{in: "Admin.Example.COM", host: "admin.example.com"},
		{in: "admin.example.com.", host: "admin.example.com"},
		{in: "ADMIN.example.com.:443", host: "admin.example.com", port: "443"},
		{in: "app.local:08080", host: "app.local", port: "8080"},
		{in: "app.local:", host: "app.local"},
		{in: "127.0.0.1:4180", host: "127.0.0.1", port: "4180"},
		{in: "[::1]:4180", host: "[::1]", port: "4180"},
		{in: "[0:0::1]", host: "[::1]"},
		{in: "under_score.internal", host: "under_score.internal"},
		{in: "a..b", bad: true},
		{in: ".a", bad: true},
		{in: "a.b..", bad: true},
		{in: ".", bad: true},
		{in: "host:port", bad: true},
		{in: "host:99999", bad: true},
		{in: "host:0", bad: true},
		{in: "host:-1", bad: true},
		{in: "host:80:80", bad: true},
		{in: "bad host", bad: true},
		{in: "évil.com", bad: true},
		{in: "a/b", bad: true},
		{in: "a\\b", bad: true},
		{in: "user@host", bad: true},
		{in: "[::1", bad: true},
		{in: "[fe80::1%25eth0]", bad: true},
		{in: "[::1]x", bad: true},
		{in: "[1.2.3.4]", bad: true},
		{in: strings.Repeat("a", 64) + ".com", bad: true},
	}
	for _, tt := range tests {
		h, p, err := Host(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("Host(%q) = %q, %q; want refused", tt.in, h, p)
			}
			continue
		}
		if err != nil || h != tt.host || p != tt.port {
			t.Errorf("Host(%q) = %q, %q, %v; want %q, %q", tt.in, h, p, err, tt.host, tt.port)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		uri, host  string
		path, hp   string
		query, err string
	}{
		{uri: "/a?b=%2F..", host: "x.com", path: "/a", hp: "x.com", query: "b=%2F.."},
		{uri: "http://x.com/admin", host: "x.com", path: "/admin", hp: "x.com"},
		{uri: "HTTP://X.com:80/admin?q", host: "X.com:80", path: "/admin", hp: "x.com:80", query: "q"},
		{uri: "https://x.com", host: "x.com", path: "/", hp: "x.com"},
		{uri: "http://x.com?q=1", host: "x.com", path: "/", hp: "x.com", query: "q=1"},
		{uri: "http://admin.com/x", host: "public.com", err: "names host"},
		{uri: "http://u@x.com/x", host: "x.com", err: "user information"},
		{uri: "ftp://x.com/x", host: "x.com", err: "must be a path"},
		{uri: "*", host: "x.com", err: "asterisk"},
		{uri: "x.com:443", host: "x.com", err: "must be a path"},
		{uri: "/a#frag", host: "x.com", err: "fragment"},
		{uri: "/a?b\x01", host: "x.com", err: "control"},
		{uri: "", host: "x.com", err: "empty"},
		{uri: "/a", host: "bad host", err: "host"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.uri, tt.host)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q, %q) error %v, want %q", tt.uri, tt.host, err, tt.err)
			}
			continue
		}
		if err != nil || got.Path != tt.path || got.HostPort() != tt.hp || got.RawQuery != tt.query {
			t.Errorf("Parse(%q, %q) = %+v, %v", tt.uri, tt.host, got, err)
		}
	}
}

func TestEscapedPathRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/a b/c?d#e/%/é/\x80ok", "/a+b", "/:@!$&'()*,="} {
		tg := Target{Path: p}
		back, cleaned, err := Path(tg.EscapedPath())
		if p == "/a b/c?d#e/%/é/\x80ok" {
			// \x80 alone is not UTF-8: refused when read back.
			if err == nil {
				t.Errorf("invalid UTF-8 accepted after escaping")
			}
			continue
		}
		if err != nil || cleaned || back != p {
			t.Errorf("EscapedPath(%q) = %q read back as %q, %v, %v", p, tg.EscapedPath(), back, cleaned, err)
		}
	}
}

// BenchmarkParse measures the canonicalization the gateway adds to every
// request, next to the parse Go's server already does for it
// (url.ParseRequestURI) as the baseline.
func BenchmarkParse(b *testing.B) {
	targets := []string{"/", "/api/v1/orders/12345?expand=items&limit=50", "/static/js/app.3f2a1b.js", "/caf%C3%A9/men%C3%BC"}
	b.Run("baseline=url.ParseRequestURI", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := url.ParseRequestURI(targets[i%len(targets)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, host := range []string{"app.example.com:443", "127.0.0.1:8080"} {
		b.Run("canonical.Parse/host="+host, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := Parse(targets[i%len(targets)], host); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
