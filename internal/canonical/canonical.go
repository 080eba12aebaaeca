// Package canonical decides the one form of a request's target (host and
// path) that a gateway authorizes and forwards, or refuses the request.
//
// A proxy that matches its rules on one spelling of a path and forwards
// another lets clients around those rules: "/public/..%2fadmin" matches a
// public prefix, and an upstream that decodes %2F and resolves ".." serves
// "/admin". This package closes that gap by construction: a path is either
// refused because an upstream could read it differently from the gateway
// (encoded separators or dots, control characters, ";" parameters, double
// or invalid percent-encoding, backslashes), or reduced to a form every
// upstream reads the same way (no dot segments, no empty segments, only the
// percent-encoding that is needed). The gateway then matches routes on
// Target.Path and sends exactly Target.EscapedPath() upstream.
package canonical

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrRefused is wrapped by every *Error, for errors.Is.
var ErrRefused = errors.New("request target refused")

// Error says which part of the request target was refused and why, in
// words a client's author can act on.
type Error struct {
	Part   string // "path", "host" or "target"
	Reason string
}

func (e *Error) Error() string { return e.Part + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *Error) Unwrap() error { return ErrRefused }

func refuse(part, format string, args ...any) *Error {
	return &Error{Part: part, Reason: fmt.Sprintf(format, args...)}
}

// Target is a request target in canonical form.
type Target struct {
	// Host is the host name in lower case without a trailing dot, or an IP
	// literal (IPv6 in brackets); empty when the request named none.
	Host string
	// Port is the port given with the host, in decimal without leading
	// zeros, or empty.
	Port string
	// Path is the decoded path: absolute, without dot segments or empty
	// segments (a trailing slash is kept), and without '/' inside a segment.
	Path string
	// RawQuery is the query string as received (the gateway does not
	// interpret it; upstreams get it unchanged).
	RawQuery string
	// Cleaned reports that the path as received had literal dot segments
	// or empty segments that were resolved: a browser can be redirected to
	// the canonical path, since its meaning is not in doubt.
	Cleaned bool
}

// HostPort is Host with ":Port" when a port was given: the Host header the
// upstream receives.
func (t Target) HostPort() string {
	if t.Port == "" {
		return t.Host
	}
	return t.Host + ":" + t.Port
}

// EscapedPath is Path with only the percent-encoding it needs: what the
// upstream receives. Parsing it again gives the same Path.
func (t Target) EscapedPath() string {
	return (&url.URL{Path: t.Path}).EscapedPath()
}

// RequestURI is EscapedPath with the query: the target a browser can be
// redirected to.
func (t Target) RequestURI() string {
	if t.RawQuery == "" {
		return t.EscapedPath()
	}
	return t.EscapedPath() + "?" + t.RawQuery
}

// Parse makes the canonical form of a request from its raw request target
// (http.Request.RequestURI: origin-form "/path?q" or absolute-form
// "http://host/path?q") and the host the server settled on (http.Request.Host,
// which for absolute-form is the URI's authority, as RFC 9112 §3.2.2
// requires). It refuses asterisk-form and authority-form targets.
func Parse(requestURI, host string) (Target, error) {
	var t Target
	raw := requestURI
	if raw == "" {
		return t, refuse("target", "empty request target")
	}
	if strings.ContainsAny(raw, "#") {
		return t, refuse("target", "a fragment (#) is never sent in a request target")
	}
	if raw[0] != '/' {
		rest, ok := cutScheme(raw)
		if !ok {
			if raw == "*" {
				return t, refuse("target", "asterisk-form (OPTIONS *) is not served")
			}
			return t, refuse("target", "the request target must be a path starting with / or an absolute http(s) URL")
		}
		authority := rest
		raw = "/"
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			authority = rest[:i]
			raw = rest[i:]
			if raw[0] == '?' {
				raw = "/" + raw
			}
		}
		if strings.Contains(authority, "@") {
			return t, refuse("target", "user information in an absolute request target is not accepted")
		}
		if !strings.EqualFold(authority, host) {
			return t, refuse("target", "the absolute request target names host %q but the request is for %q", authority, host)
		}
	}
	rawPath, rawQuery, _ := strings.Cut(raw, "?")
	t.RawQuery = rawQuery
	for i := 0; i < len(rawQuery); i++ {
		if c := rawQuery[i]; c < 0x20 || c == 0x7f {
			return t, refuse("target", "control character 0x%02x in the query", c)
		}
	}
	h, p, err := Host(host)
	if err != nil {
		return t, err
	}
	t.Host, t.Port = h, p
	t.Path, t.Cleaned, err = Path(rawPath)
	return t, err
}

func cutScheme(s string) (string, bool) {
	for _, scheme := range []string{"http://", "https://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			return s[len(scheme):], true
		}
	}
	return "", false
}

// Path resolves a raw (still percent-encoded) absolute path to its
// canonical decoded form. cleaned reports that literal dot segments or
// empty segments were resolved. It refuses what upstreams read in
// different ways: percent-encoded '/', '\', '.' segments or ';'; a raw
// backslash; control characters; ';' path parameters; invalid or double
// percent-encoding; bytes that are not UTF-8 (overlong encodings included).
func Path(raw string) (path string, cleaned bool, err error) {
	if raw == "" {
		return "/", false, nil
	}
	if raw[0] != '/' {
		return "", false, refuse("path", "must start with /")
	}
	if plainPath(raw) {
		return raw, false, nil // the common case: nothing to decode or resolve
	}
	return slowPath(raw)
}

// slowPath is Path for a path that needs decoding, resolving or refusing.
func slowPath(raw string) (path string, cleaned bool, err error) {
	segs := strings.Split(raw[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, seg := range segs {
		last := i == len(segs)-1
		dec, err := segment(seg)
		if err != nil {
			return "", false, err
		}
		switch {
		case seg == "":
			if last {
				trailing = true
			} else {
				cleaned = true
			}
		case dec == "." || dec == "..":
			if seg != dec {
				return "", false, refuse("path", "percent-encoded dot segment %q: write the path without it", seg)
			}
			cleaned = true
			if dec == ".." && len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last // "/a/b/.." is "/a/" (RFC 3986 §5.2.4)
		default:
			out = append(out, dec)
			trailing = false
		}
	}
	var b strings.Builder
	b.Grow(len(raw))
	for _, s := range out {
		b.WriteByte('/')
		b.WriteString(s)
	}
	if trailing && len(out) > 0 {
		b.WriteByte('/')
	}
	if b.Len() == 0 {
		return "/", cleaned, nil
	}
	return b.String(), cleaned, nil
}

// plainPath reports a path that is already canonical without decoding:
// printable ASCII other than '%', '\\' and ';', and no empty or dot
// segment (a trailing slash is fine). Anything else takes the slow path.
func plainPath(p string) bool {
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if c < 0x20 || c >= 0x7f || c == '%' || c == '\\' || c == ';' {
				return false
			}
			if c != '/' {
				continue
			}
		}
		seg := p[segStart:i]
		if (seg == "" && i < len(p)) || seg == "." || seg == ".." {
			return false
		}
		segStart = i + 1
	}
	return true
}

// segment decodes one path segment and refuses what makes it ambiguous.
func segment(seg string) (string, error) {
	if strings.IndexByte(seg, '%') < 0 {
		if err := plainBytes(seg, seg); err != nil {
			return "", err
		}
		return seg, nil
	}
	buf := make([]byte, 0, len(seg))
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			buf = append(buf, c)
			continue
		}
		if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
			end := min(i+3, len(seg))
			return "", refuse("path", "invalid percent-encoding %q: '%%' must be followed by two hexadecimal digits (write %%25 for a literal %%)", seg[i:end])
		}
		d := unhex(seg[i+1])<<4 | unhex(seg[i+2])
		switch d {
		case '/':
			return "", refuse("path", "percent-encoded slash (%s) inside a path segment: upstreams disagree on whether it separates segments", seg[i:i+3])
		case '\\':
			return "", refuse("path", "percent-encoded backslash (%s): some upstreams treat it as a path separator", seg[i:i+3])
		case ';':
			return "", refuse("path", "percent-encoded semicolon (%s): some upstreams treat it as a path parameter", seg[i:i+3])
		}
		buf = append(buf, d)
		i += 2
	}
	dec := string(buf)
	if err := plainBytes(dec, seg); err != nil {
		return "", err
	}
	for i := 0; i+2 < len(dec); i++ {
		if dec[i] == '%' && isHex(dec[i+1]) && isHex(dec[i+2]) {
			return "", refuse("path", "double percent-encoding %q: an upstream that decodes twice would read %q", seg, dec)
		}
	}
	return dec, nil
}

// plainBytes checks a decoded segment for bytes no upstream should have to
// interpret; raw is the segment as received, for the message.
func plainBytes(dec, raw string) error {
	for i := 0; i < len(dec); i++ {
		switch c := dec[i]; {
		case c < 0x20 || c == 0x7f:
			return refuse("path", "control character 0x%02x in path segment %q", c, raw)
		case c == '\\':
			return refuse("path", "backslash in path segment %q: some upstreams treat it as a path separator", raw)
		case c == ';':
			return refuse("path", "path parameter (;) in segment %q: upstreams such as Tomcat strip it before routing", raw)
		}
	}
	if !utf8.ValidString(dec) {
		return refuse("path", "path segment %q is not valid UTF-8 (overlong or truncated encodings are refused)", raw)
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// Host splits and canonicalizes a Host header value: the name in lower
// case without a trailing dot (so "Admin.Example.COM." is
// "admin.example.com"), the port in decimal. IP literals are accepted
// (IPv6 in brackets, without a zone). An empty value (HTTP/1.0) stays
// empty.
func Host(hostport string) (host, port string, err error) {
	if hostport == "" {
		return "", "", nil
	}
	h := hostport
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", refuse("host", "%q: unclosed IPv6 literal", hostport)
		}
		a, err := netip.ParseAddr(h[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", "", refuse("host", "%q is not an IPv6 literal", hostport)
		}
		host = "[" + a.String() + "]"
		h = h[end+1:]
		if h != "" {
			if h[0] != ':' {
				return "", "", refuse("host", "%q: unexpected text after the IPv6 literal", hostport)
			}
			if port, err = portOf(h[1:], hostport); err != nil {
				return "", "", err
			}
		}
		return host, port, nil
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		if port, err = portOf(h[i+1:], hostport); err != nil {
			return "", "", err
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", "", refuse("host", "%q has no host name", hostport)
	}
	if len(h) > 253 {
		return "", "", refuse("host", "host name longer than 253 characters")
	}
	for rest := h; ; {
		label, more, found := strings.Cut(rest, ".")
		if label == "" {
			return "", "", refuse("host", "%q has an empty label", hostport)
		}
		if len(label) > 63 {
			return "", "", refuse("host", "%q has a label longer than 63 characters", hostport)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", "", refuse("host", "%q contains %q: a host is letters, digits, '-', '_' and '.' (internationalized names in punycode, xn--…)", hostport, string(rune(c)))
			}
		}
		if !found {
			break
		}
		rest = more
	}
	if a, err := netip.ParseAddr(h); err == nil {
		// Most hosts are already in the canonical form: no allocation then.
		var buf [64]byte
		if b := a.AppendTo(buf[:0]); string(b) != h {
			return string(b), port, nil
		}
		return h, port, nil
	}
	return strings.ToLower(h), port, nil
}

func portOf(s, hostport string) (string, error) {
	if s == "" {
		return "", nil // "host:" means the default port (RFC 3986 §3.2.3)
	}
	if len(s) > 5 {
		return "", refuse("host", "%q: port out of range", hostport)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", refuse("host", "%q: the port must be a decimal number", hostport)
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return "", refuse("host", "%q: port out of range", hostport)
	}
	if s[0] != '0' {
		return s, nil // already canonical: no allocation
	}
	return strconv.Itoa(n), nil
}

// Answer responds to a request that Parse or Path refused (err) or found
// in need of cleaning (t.Cleaned): GET and HEAD are redirected (308) to
// the canonical path, whose meaning is not in doubt; anything else gets
// 400 with a JSON body {"code": "bad_request_target", "detail": …} that
// names what to fix. The connection is closed after a refusal.
func Answer(w http.ResponseWriter, r *http.Request, t Target, err error) {
	if err == nil && t.Cleaned && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		http.Redirect(w, r, t.RequestURI(), http.StatusPermanentRedirect)
		return
	}
	detail := "path: dot segments (. or ..) or empty segments (//): send the request to " + t.EscapedPath()
	if err != nil {
		detail = err.Error()
	}
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "bad_request_target", "detail": detail})
}
