package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// slogLine is what slog's own handler writes for e at t.
func slogLine(t *testing.T, text bool, at time.Time, e *accessEntry) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewJSONHandler(&buf, nil)
	if text {
		h = slog.NewTextHandler(&buf, nil)
	}
	rec := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	rec.AddAttrs(e.attrs()...)
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// checkAccessLine compares the fast formatter with slog for e at t: the
// same bytes, or the fast formatter declines the line.
func checkAccessLine(t *testing.T, at time.Time, e *accessEntry) (formatted int) {
	t.Helper()
	for _, text := range []bool{false, true} {
		var buf bytes.Buffer
		a := &accessWriter{w: &buf, text: text}
		if !a.write(at, e) {
			if buf.Len() != 0 {
				t.Fatalf("declined line but wrote %q", buf.String())
			}
			continue
		}
		formatted++
		if want := slogLine(t, text, at, e); buf.String() != want {
			t.Fatalf("text=%v:\n got %q\nwant %q", text, buf.String(), want)
		}
	}
	return formatted
}

func TestAccessLogMatchesSlog(t *testing.T) {
	t.Parallel()
	v4 := netip.MustParseAddr("203.0.113.7")
	v6 := netip.MustParseAddr("2001:db8::1")
	zoned := netip.MustParseAddr("fe80::1%eth0")
	paris := time.FixedZone("CET", 3600)
	times := []time.Time{
		time.Date(2026, 12, 6, 23, 25, 0, 0, time.UTC),
		time.Date(2026, 12, 6, 23, 25, 0, 123456789, time.UTC),
		time.Date(2026, 12, 6, 23, 25, 0, 100000000, paris),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, paris),
		time.Now(),
	}
	entries := []struct {
		e     accessEntry
		plain bool // formatted by the fast path in both formats
	}{
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, bytes: 95, duration: 1234 * time.Microsecond, client: v4, sub: "0b0f4c1e-1b9a-4f4e-9d7f-9b1a4d1a2c3d"}, true},
		{accessEntry{method: "POST", path: "/api/v1/items", route: "api", status: 401, bytes: 0, duration: 0, client: v6, sub: "u1", forwardAuth: true}, true},
		{accessEntry{method: "GET", path: "/", route: "app", status: 502, bytes: 1 << 40, duration: 90 * time.Minute, client: zoned, sub: "x"}, true},
		{accessEntry{method: "GET", path: "/", route: "_none", status: 400, duration: 7 * time.Microsecond, client: v4, sub: "x"}, true},
		{accessEntry{method: "GET", path: "/", route: "app", status: 200, duration: 999 * time.Nanosecond, client: v4, sub: "x"}, true},
		{accessEntry{method: "GET", path: "/", route: "app", status: 200, duration: 123456789 * time.Second, client: v4, sub: "x"}, true},
		// Declined by one format or both: slog decides.
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: v4, sub: ""}, false},                             // text quotes ""
		{accessEntry{method: "GET", path: "/a b", route: "app", status: 200, client: v4, sub: "u"}, false},                          // text quotes spaces
		{accessEntry{method: "GET", path: "/a=b", route: "app", status: 200, client: v4, sub: "u"}, false},                          // and '='
		{accessEntry{method: "GET", path: `/a"b`, route: "app", status: 200, client: v4, sub: "u"}, false},                          // JSON escapes '"'
		{accessEntry{method: "GET", path: `/a\b`, route: "app", status: 200, client: v4, sub: "u"}, false},                          // and '\'
		{accessEntry{method: "GET", path: "/caf\u00e9", route: "app", status: 200, client: v4, sub: "u"}, false},                    // non-ASCII
		{accessEntry{method: "GET", path: "/\u2028", route: "app", status: 200, client: v4, sub: "u"}, false},                       // JS line separator
		{accessEntry{method: "GET", path: "/\x00\x1f\x7f\xff", route: "app", status: 200, client: v4, sub: "u"}, false},             // control, invalid UTF-8
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: netip.Addr{}, sub: "u"}, false},                  // "invalid IP"
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: v4, sub: "u<script>&amp;"}, true},                // no HTML escaping in slog
		{accessEntry{method: "M-SEARCH", path: "/~user/%2F", route: "r.1", status: 200, client: v4, sub: "a|b"}, true},              // token characters
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: v4, sub: "{\"a\":1}"}, false},                    // quotes
		{accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: v4, sub: "tab\there", forwardAuth: true}, false}, // control
	}
	for _, at := range times {
		for _, c := range entries {
			n := checkAccessLine(t, at, &c.e)
			if c.plain && n != 2 {
				t.Errorf("%+v: the fast path formatted %d of 2 formats", c.e, n)
			}
		}
	}
}

// The gateway's access log goes through the fast formatter when it built
// its own logger, and through the logger it was given otherwise; both
// write the same line.
func TestAccessLogWhichPath(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g := &Gateway{accessFast: &accessWriter{w: &buf}, logger: slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))}
	e := &accessEntry{method: "GET", path: "/x", route: "app", status: 200, client: netip.MustParseAddr("127.0.0.1"), sub: "u"}
	g.logAccess(context.Background(), time.Now(), e)
	if !bytes.Contains(buf.Bytes(), []byte(`"msg":"request","method":"GET","path":"/x"`)) {
		t.Fatalf("fast path not taken: %q", buf.String())
	}
	buf.Reset()
	var viaSlog bytes.Buffer
	g.logger = slog.New(slog.NewJSONHandler(&viaSlog, nil))
	e.path = `/a"b`
	g.logAccess(context.Background(), time.Now(), e)
	if buf.Len() != 0 || !bytes.Contains(viaSlog.Bytes(), []byte(`"path":"/a\"b"`)) {
		t.Fatalf("escaped line: fast %q, slog %q", buf.String(), viaSlog.String())
	}
}

func FuzzAccessLogMatchesSlog(f *testing.F) {
	f.Add("GET", "/x", "app", "sub", int64(1234), "127.0.0.1", int64(0))
	f.Add("POST", "/a b", "r", "", int64(0), "::1", int64(123456789))
	f.Add("GET", "/\u2028\xff", "r", `a"b`, int64(99999999999), "fe80::1%eth0", int64(-1))
	f.Fuzz(func(t *testing.T, method, path, route, sub string, micros int64, ip string, nanos int64) {
		client, _ := netip.ParseAddr(ip)
		if micros < 0 {
			micros = -micros
		}
		e := &accessEntry{method: method, path: path, route: route, status: 200, bytes: micros, duration: time.Duration(micros%(1<<40)) * time.Microsecond, client: client, sub: sub}
		checkAccessLine(t, time.Unix(1796000000, nanos%1e9).UTC(), e)
	})
}

// BenchmarkAccessLog: one access-log line through slog's JSON handler and
// through the gateway's formatter (both to io.Discard).
func BenchmarkAccessLog(b *testing.B) {
	e := &accessEntry{method: "GET", path: "/x", route: "app", status: 200, bytes: 95, duration: 1234 * time.Microsecond,
		client: netip.MustParseAddr("127.0.0.1"), sub: "0b0f4c1e-1b9a-4f4e-9d7f-9b1a4d1a2c3d"}
	b.Run("slog", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "request", e.attrs()...)
		}
	})
	b.Run("gateway", func(b *testing.B) {
		a := &accessWriter{w: io.Discard}
		b.ReportAllocs()
		for b.Loop() {
			a.write(time.Now(), e)
		}
	})
}
