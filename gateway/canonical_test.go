package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/canonical"
)

// attack is one request an attacker (or a confused client) might send.
// The same table runs against the echo upstream (what exactly did the
// upstream receive?) and against real file servers (did a protected file
// come back?).
type attack struct {
	name    string
	method  string   // default GET
	target  string   // the raw request target
	host    string   // Host header; default the gateway's host:port
	headers []string // extra raw header lines
	user    string   // "alice" (admin), "bob" (user) or "" (anonymous)
	status  int      // the gateway's answer
	// upURI is the request target the upstream must receive ("" when the
	// request must not reach it); upHost its Host header (default: the
	// request's Host, lower-cased).
	upURI, upHost string
	location      string // Location of a redirect, if checked
	check         func(t *testing.T, e echoed)
}

const (
	anonLogin = http.StatusFound // a browser GET without a session goes to Keycloak
	refused   = http.StatusBadRequest
	moved     = http.StatusPermanentRedirect
)

// canonicalRoutes are the routes of the attack table: /admin and two admin
// hosts need the realm role admin, /api a user token, /app is public with
// strip_prefix onto the upstream's /base, everything else is public.
func canonicalRoutes(up string) []gateway.Route {
	return []gateway.Route{
		{Name: "admin", Path: "/admin", Upstream: up, Mode: "both", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "secret", Path: "/secret", Upstream: up, Mode: "both", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "api", Path: "/api", Upstream: up, Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"user"}}},
		{Name: "app", Path: "/app", Upstream: up + "/base", StripPrefix: true, Public: true},
		{Name: "adminhost", Host: "Admin.Example.com", Upstream: up, Mode: "both", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "corp", Host: "*.corp.example.com", Upstream: up, Mode: "both", RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
		{Name: "public", Path: "/", Upstream: up, Public: true},
	}
}

func hdr(lines ...string) []string { return lines }

func attacks() []attack {
	acceptJSON := "Accept: application/json"
	return []attack{
		// The reported bypasses.
		{name: "encoded slash after dot-dot", target: "/public/..%2fadmin/secret.txt", status: refused},
		{name: "encoded slash upper case", target: "/public/..%2Fadmin/secret.txt", status: refused},
		{name: "empty first segment", target: "//admin/secret.txt", status: moved, location: "/admin/secret.txt"},
		{name: "dot segment", target: "/./admin/secret.txt", status: moved, location: "/admin/secret.txt"},
		{name: "encoded slash first", target: "/%2fadmin/secret.txt", status: refused},
		{name: "encoded slash in other prefix", target: "/x/..%2fadmin/secret.txt", status: refused},
		{name: "strip_prefix climb", target: "/app/..%2f..%2fsecret", status: refused},
		// Dot segments in every spelling.
		{name: "literal dot-dot", target: "/public/../admin/secret.txt", status: moved, location: "/admin/secret.txt"},
		{name: "literal dot-dot keeps query", target: "/public/../admin/x?a=1", status: moved, location: "/admin/x?a=1"},
		{name: "dot-dot above root", target: "/../../admin/secret.txt", status: moved, location: "/admin/secret.txt"},
		{name: "encoded dot-dot", target: "/public/%2e%2e/admin/secret.txt", status: refused},
		{name: "encoded dot-dot upper", target: "/public/%2E%2E/admin/secret.txt", status: refused},
		{name: "half-encoded dot-dot", target: "/public/.%2e/admin/secret.txt", status: refused},
		{name: "half-encoded dot-dot 2", target: "/public/%2e./admin/secret.txt", status: refused},
		{name: "encoded dot", target: "/%2e/admin/secret.txt", status: refused},
		{name: "trailing dot-dot", target: "/admin/x/..", status: moved, location: "/admin/"},
		{name: "POST with dot-dot", method: "POST", target: "/public/../admin/secret.txt", status: refused},
		{name: "POST with empty segment", method: "POST", target: "/public//x", status: refused},
		{name: "HEAD with empty segment", method: "HEAD", target: "//admin/secret.txt", status: moved},
		{name: "empty segments inside", target: "/admin//secret.txt", status: moved, location: "/admin/secret.txt"},
		{name: "many slashes", target: "////admin", status: moved, location: "/admin"},
		// Separators, parameters, control characters, encodings.
		{name: "encoded backslash", target: "/public/..%5cadmin/secret.txt", status: refused},
		{name: "encoded backslash upper", target: "/public/..%5Cadmin/secret.txt", status: refused},
		{name: "raw backslash", target: `/public/..\admin/secret.txt`, status: refused},
		{name: "path parameter", target: "/admin;x/secret.txt", status: refused},
		{name: "path parameter on public", target: "/public;jsessionid=1", status: refused},
		{name: "encoded semicolon", target: "/admin%3bx/secret.txt", status: refused},
		{name: "NUL", target: "/admin%00/secret.txt", status: refused},
		{name: "NUL suffix", target: "/public/x.txt%00.html", status: refused},
		{name: "encoded newline", target: "/admin%0a/secret.txt", status: refused},
		{name: "encoded CR LF", target: "/public/%0d%0aX-Injected:%20yes", status: refused},
		{name: "encoded DEL", target: "/public/%7f", status: refused},
		{name: "invalid percent-encoding", target: "/%zz/admin", status: refused},
		{name: "truncated percent-encoding", target: "/admin%2", status: refused},
		{name: "double-encoded dot-dot", target: "/%252e%252e/admin/secret.txt", status: refused},
		{name: "double-encoded slash", target: "/public/..%252fadmin", status: refused},
		{name: "overlong dot-dot", target: "/%c0%ae%c0%ae/admin/secret.txt", status: refused},
		{name: "overlong slash", target: "/public/..%c0%afadmin", status: refused},
		{name: "overlong three bytes", target: "/public/%e0%80%ae%e0%80%ae/admin", status: refused},
		{name: "lone high byte", target: "/public/%ff", status: refused},
		// Spellings that decode to the protected prefix are protected.
		{name: "encoded letter", target: "/%61dmin/secret.txt", status: anonLogin},
		{name: "encoded letter, script", target: "/%61dmin/secret.txt", headers: hdr(acceptJSON), status: http.StatusUnauthorized},
		{name: "admin exact", target: "/admin", status: anonLogin},
		{name: "admin slash", target: "/admin/", status: anonLogin},
		{name: "admin prefix only", target: "/adminx", status: 200, upURI: "/adminx"},
		{name: "admin with extension", target: "/admin.txt", status: 200, upURI: "/admin.txt"},
		{name: "route paths are case-sensitive", target: "/ADMIN/secret.txt", status: 200, upURI: "/ADMIN/secret.txt"},
		// What is forwarded is the canonical encoding.
		{name: "query kept as sent", target: "/public/x?a=..%2f&b=%00", status: 200, upURI: "/public/x?a=..%2f&b=%00"},
		{name: "UTF-8 path", target: "/public/caf%C3%A9", status: 200, upURI: "/public/caf%C3%A9"},
		{name: "raw UTF-8 path", target: "/public/café", status: 200, upURI: "/public/caf%C3%A9"},
		{name: "space", target: "/public/a%20b", status: 200, upURI: "/public/a%20b"},
		{name: "unreserved decoded", target: "/public/%7Euser%2Dx", status: 200, upURI: "/public/~user-x"},
		{name: "plus kept", target: "/public/a+b", status: 200, upURI: "/public/a+b"},
		{name: "encoded question mark", target: "/public/%3F", status: 200, upURI: "/public/%3F"},
		{name: "encoded percent", target: "/public/100%25", status: 200, upURI: "/public/100%25"},
		// strip_prefix never climbs above the upstream's base.
		{name: "strip_prefix", target: "/app/x", status: 200, upURI: "/base/x"},
		{name: "strip_prefix root", target: "/app", status: 200, upURI: "/base/"},
		{name: "strip_prefix literal climb", target: "/app/../../secret", status: moved, location: "/secret"},
		{name: "strip_prefix encoded climb", target: "/app/%2e%2e/%2e%2e/secret", status: refused},
		{name: "strip_prefix backslash climb", target: "/app/..%5c..%5csecret", status: refused},
		{name: "strip_prefix empty segment", target: "/app//x", status: moved, location: "/app/x"},
		{name: "strip_prefix other route", target: "/application", status: 200, upURI: "/application"},
		// Request-target forms.
		{name: "absolute-form", target: "http://{host}/admin/secret.txt", status: anonLogin},
		{name: "absolute-form upper-case scheme", target: "HTTP://{host}/public/x", status: 200, upURI: "/public/x"},
		// The authority of an absolute-form target is the request's host (RFC
		// 9112 §3.2.2): it is what is authorized, and what is forwarded.
		{name: "absolute-form other host", target: "http://admin.example.com/secret", status: anonLogin},
		{name: "absolute-form other host, admin", target: "http://admin.example.com/secret", user: "alice", status: 200, upURI: "/secret", upHost: "admin.example.com"},
		{name: "absolute-form with bypass", target: "http://{host}/public/..%2fadmin", status: refused},
		{name: "absolute-form with userinfo", target: "http://u@{host}/public/x", status: refused},
		// Go's server answers OPTIONS * itself; it never reaches a handler.
		{name: "asterisk-form", method: "OPTIONS", target: "*", status: 200},
		{name: "CONNECT", method: "CONNECT", target: "admin.example.com:443", host: "admin.example.com:443", status: http.StatusMethodNotAllowed},
		// Hosts: case, trailing dot, ports, wildcards.
		{name: "admin host", target: "/x", host: "admin.example.com", status: anonLogin},
		{name: "admin host upper case", target: "/x", host: "ADMIN.Example.COM", status: anonLogin},
		{name: "admin host trailing dot", target: "/x", host: "admin.example.com.", status: anonLogin},
		{name: "admin host with port", target: "/x", host: "admin.example.com:4180", status: anonLogin},
		{name: "admin host trailing dot and port", target: "/x", host: "Admin.Example.Com.:80", status: anonLogin},
		{name: "wildcard host", target: "/x", host: "x.corp.example.com", status: anonLogin},
		{name: "wildcard host upper case, dot", target: "/x", host: "X.CORP.EXAMPLE.COM.", status: anonLogin},
		{name: "wildcard needs a subdomain", target: "/x", host: "corp.example.com", status: 200, upURI: "/x"},
		{name: "host with two trailing dots", target: "/x", host: "admin.example.com..", status: refused},
		{name: "host with a bad port", target: "/x", host: "admin.example.com:abc", status: refused},
		{name: "host port with leading zeros", target: "/x", host: "Public.Example.com:08080", status: 200, upURI: "/x", upHost: "public.example.com:8080"},
		{name: "other host", target: "/x", host: "evil.example.net", status: 200, upURI: "/x"},
		{name: "IPv6 host", target: "/x", host: "[0:0::1]:80", status: 200, upURI: "/x", upHost: "[::1]:80"},
		// Headers the upstream must be able to trust.
		{name: "spoofed identity", target: "/public/x", headers: hdr("X-Forwarded-User: alice-sub", "X_Forwarded_User: alice-sub", "X-Forwarded-Email: a@x", "X-Forwarded-Roles: admin"), status: 200, upURI: "/public/x",
			check: absent("X-Forwarded-User", "X_Forwarded_User", "X-Forwarded-Email", "X-Forwarded-Roles")},
		{name: "spoofed X-Real-IP", target: "/public/x", headers: hdr("X-Real-IP: 6.6.6.6", "X_Real_IP: 6.6.6.6"), status: 200, upURI: "/public/x",
			check: func(t *testing.T, e echoed) {
				if got := header(e, "X-Real-Ip"); got != "127.0.0.1" {
					t.Errorf("X-Real-IP = %q, want the client's address", got)
				}
				absent("X_Real_IP")(t, e)
			}},
		{name: "client-IP headers", target: "/public/x", headers: hdr("True-Client-IP: 6.6.6.6", "X-Client-IP: 6.6.6.6", "X-Cluster-Client-IP: 6.6.6.6", "True_Client_IP: 6.6.6.6"), status: 200, upURI: "/public/x",
			check: absent("True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "True_Client_IP")},
		{name: "URL override headers", target: "/public/x", headers: hdr("X-Original-URL: /admin/secret.txt", "X-Rewrite-URL: /admin/secret.txt", "X_Original_URL: /admin/secret.txt", "X-Original-URI: /admin"), status: 200, upURI: "/public/x",
			check: absent("X-Original-Url", "X-Rewrite-Url", "X_Original_URL", "X-Original-Uri")},
		{name: "port and prefix headers", target: "/public/x", headers: hdr("X-Forwarded-Port: 8443", "X-Forwarded-Prefix: /admin", "X_Forwarded_Prefix: /admin"), status: 200, upURI: "/public/x",
			check: absent("X-Forwarded-Port", "X-Forwarded-Prefix", "X_Forwarded_Prefix")},
		{name: "method override headers", target: "/public/x", headers: hdr("X-HTTP-Method-Override: DELETE", "X_HTTP_Method_Override: DELETE", "X-Method-Override: PUT", "X-HTTP-Method: PUT"), status: 200, upURI: "/public/x",
			check: absent("X-Http-Method-Override", "X_HTTP_Method_Override", "X-Method-Override", "X-Http-Method")},
		{name: "spoofed X-Forwarded-For", target: "/public/x", headers: hdr("X-Forwarded-For: 6.6.6.6", "X_Forwarded_For: 6.6.6.6", "Forwarded: for=6.6.6.6"), status: 200, upURI: "/public/x",
			check: func(t *testing.T, e echoed) {
				if got := header(e, "X-Forwarded-For"); got != "127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q, want only the client's address", got)
				}
				absent("X_Forwarded_For", "Forwarded")(t, e)
			}},
		{name: "spoofed X-Forwarded-Host and -Proto", target: "/public/x", headers: hdr("X-Forwarded-Host: admin.example.com", "X-Forwarded-Proto: https", "X_Forwarded_Host: admin.example.com"), status: 200, upURI: "/public/x",
			check: func(t *testing.T, e echoed) {
				if got := header(e, "X-Forwarded-Host"); got == "admin.example.com" {
					t.Errorf("X-Forwarded-Host = %q: the client's value was forwarded", got)
				}
				if got := header(e, "X-Forwarded-Proto"); got != "http" {
					t.Errorf("X-Forwarded-Proto = %q, want http", got)
				}
				absent("X_Forwarded_Host")(t, e)
			}},
		{name: "two Authorization headers, public route", target: "/public/x", headers: hdr("Authorization: Basic Zm9vOmJhcg==", "Authorization: Bearer x"), status: refused},
		{name: "two Authorization headers, api route", target: "/api/x", headers: hdr("Authorization: Bearer a", "Authorization: Bearer b"), status: refused},
		{name: "two Authorization headers, admin", target: "/admin/x", user: "bob", headers: hdr("Authorization: Bearer b"), status: refused},
		{name: "h2c upgrade", target: "/public/x", headers: hdr("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"), status: 200, upURI: "/public/x",
			check: absent("Upgrade", "Http2-Settings")},
		// Tokens: the same table with credentials.
		{name: "user token on admin", target: "/admin/secret.txt", user: "bob", status: http.StatusForbidden},
		{name: "admin token on admin", target: "/admin/secret.txt", user: "alice", status: 200, upURI: "/admin/secret.txt"},
		{name: "admin token, empty segment", target: "//admin/secret.txt", user: "alice", status: moved},
		{name: "admin token, encoded slash", target: "/public/..%2fadmin/secret.txt", user: "alice", status: refused},
		{name: "user token on api", target: "/api/x", user: "bob", status: 200, upURI: "/api/x"},
		{name: "anonymous on api", target: "/api/x", status: http.StatusUnauthorized},
		{name: "user token on admin host", target: "/x", host: "admin.example.com.", user: "bob", status: http.StatusForbidden},
		{name: "admin token on admin host", target: "/x", host: "ADMIN.example.com.", user: "alice", status: 200, upURI: "/x", upHost: "admin.example.com"},
		{name: "admin token on secret", target: "/secret", user: "alice", status: 200, upURI: "/secret"},
	}
}

func absent(names ...string) func(t *testing.T, e echoed) {
	return func(t *testing.T, e echoed) {
		t.Helper()
		for _, n := range names {
			for k, v := range e.Headers {
				if strings.EqualFold(k, n) {
					t.Errorf("the upstream received %s: %q", k, v)
				}
			}
		}
	}
}

// rawResponse is a response read off the wire.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// sendRaw writes one request byte for byte (Go's client would clean the
// target) and reads the answer.
func sendRaw(t *testing.T, addr, method, target, host string, headers []string) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s (Host %s): reading the answer: %v", method, target, host, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return rawResponse{status: res.StatusCode, header: res.Header, body: string(body)}
}

// prepare fills the defaults of an attack for a gateway at addr.
func (a attack) prepare(addr string, token func(user string) string) (method, target, host string, headers []string) {
	method = a.method
	if method == "" {
		method = "GET"
	}
	host = a.host
	if host == "" {
		host = addr
	}
	target = strings.ReplaceAll(a.target, "{host}", addr)
	headers = append([]string(nil), a.headers...)
	if a.user != "" {
		headers = append(headers, "Authorization: Bearer "+token(a.user))
	}
	return method, target, host, headers
}

func TestCanonicalRequestTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.Routes = canonicalRoutes(e.upstream.URL) })
	addr := strings.TrimPrefix(g.url, "http://")
	tokens := map[string]string{
		"alice": e.kc.MustToken(t, "alice", "gateway"),
		"bob":   e.kc.MustToken(t, "bob", "gateway"),
	}
	table := attacks()
	if len(table) < 80 {
		t.Fatalf("the table has %d variants; the issue asks for at least 80", len(table))
	}
	for _, a := range table {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			method, target, host, headers := a.prepare(addr, func(u string) string { return tokens[u] })
			res := sendRaw(t, addr, method, target, host, headers)
			if res.status != a.status {
				t.Fatalf("%s %s (Host %s): status %d, want %d: %.300s", method, target, host, res.status, a.status, res.body)
			}
			if a.location != "" && res.header.Get("Location") != a.location {
				t.Errorf("Location = %q, want %q", res.header.Get("Location"), a.location)
			}
			// Go's server refuses some targets itself, with a plain 400.
			if res.status == refused && !strings.Contains(res.body, `"detail"`) && res.body != "400 Bad Request" {
				t.Errorf("a refusal without a reason: %s", res.body)
			}
			var seen echoed
			reached := jsonUnmarshal(res.body, &seen) == nil && seen.Method != ""
			if a.upURI == "" {
				if reached {
					t.Fatalf("the upstream received %s %s; the request should not have reached it", seen.Method, seen.URI)
				}
				return
			}
			if !reached {
				t.Fatalf("the request did not reach the upstream: %.300s", res.body)
			}
			if seen.URI != a.upURI {
				t.Errorf("the upstream received %q, want %q", seen.URI, a.upURI)
			}
			wantHost := a.upHost
			if wantHost == "" {
				wantHost = strings.ToLower(host)
			}
			if seen.Host != wantHost {
				t.Errorf("the upstream received Host %q, want %q", seen.Host, wantHost)
			}
			// Whatever was forwarded is in canonical form: what the
			// gateway authorized is what the upstream reads.
			path, _, _ := strings.Cut(seen.URI, "?")
			if p, cleaned, err := canonical.Path(path); err != nil || cleaned || (canonical.Target{Path: p}).EscapedPath() != path {
				t.Errorf("the upstream received a non-canonical path %q (%v)", path, err)
			}
			if a.user != "alice" && protected(seen.Host, path) {
				t.Errorf("a request without the admin role reached %s%s", seen.Host, path)
			}
			if a.check != nil {
				a.check(t, seen)
			}
		})
	}
}

// Test401Challenges checks RFC 7235 §3.1: every 401 names how to
// authenticate, on every kind of route and on /_cloakroom/me.
func Test401Challenges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.Routes = canonicalRoutes(e.upstream.URL) })
	addr := strings.TrimPrefix(g.url, "http://")
	acceptJSON := "Accept: application/json"
	tests := []struct {
		name, target string
		headers      []string
		want         []string // schemes
	}{
		{"api route", "/api/x", nil, []string{"Bearer"}},
		{"api route, bad token", "/api/x", hdr("Authorization: Bearer not.a.token"), []string{"Bearer"}},
		{"both route, script", "/admin/x", hdr(acceptJSON), []string{"Cookie", "Bearer"}},
		{"both route, bad token", "/admin/x", hdr("Authorization: Bearer x.y.z"), []string{"Bearer"}},
		{"me", "/_cloakroom/me", nil, []string{"Cookie", "Bearer"}},
		{"me, script", "/_cloakroom/me", hdr(acceptJSON), []string{"Cookie", "Bearer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := sendRaw(t, addr, "GET", tt.target, addr, tt.headers)
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", res.status, res.body)
			}
			got := res.header.Values("WWW-Authenticate")
			if len(got) != len(tt.want) {
				t.Fatalf("WWW-Authenticate = %q, want schemes %v", got, tt.want)
			}
			for i, scheme := range tt.want {
				if !strings.HasPrefix(got[i], scheme+" ") || !strings.Contains(got[i], `realm="demo"`) {
					t.Errorf("challenge %d = %q, want scheme %s with realm demo", i, got[i], scheme)
				}
			}
		})
	}
}

// TestQueryTokenNotCopied: a token in the query string never reaches the
// login URL or the return address.
func TestQueryTokenNotCopied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(func(c *gateway.Config) { c.Routes = canonicalRoutes(e.upstream.URL) })
	addr := strings.TrimPrefix(g.url, "http://")
	jwt := e.kc.MustToken(t, "alice", "gateway")
	// Opaque credentials with characters that random cookie values
	// (base64url) never have: "abc" once matched by chance.
	const opaque = "opaque.cred!1"
	for _, q := range []string{"access_token=" + jwt, "t=" + jwt, "id_token=" + opaque, "refresh_token=" + opaque, "token=" + opaque, "code=" + opaque} {
		res := sendRaw(t, addr, "GET", "/admin/x?keep=1&"+q, addr, hdr("Accept: application/json"))
		if res.status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", q, res.status)
		}
		value := q[strings.IndexByte(q, '=')+1:]
		if strings.Contains(res.body, value) || strings.Contains(res.body, url.QueryEscape(value)) {
			t.Errorf("%s: the credential is in the answer: %s", q, res.body)
		}
		if !strings.Contains(res.body, "keep%3D1") {
			t.Errorf("%s: the other parameters were lost: %s", q, res.body)
		}
		// A browser is sent to Keycloak; neither the Location nor the
		// cookies carry the credential.
		res = sendRaw(t, addr, "GET", "/admin/x?"+q, addr, nil)
		if res.status != http.StatusFound {
			t.Fatalf("%s: browser status %d", q, res.status)
		}
		for _, v := range append(res.header.Values("Location"), res.header.Values("Set-Cookie")...) {
			if strings.Contains(v, value) || strings.Contains(v, url.QueryEscape(value)) {
				t.Errorf("%s: the credential is in %q", q, v)
			}
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// protected reports whether the attack table's routes require the admin
// role for this host and path.
func protected(host, path string) bool {
	for _, p := range []string{"/admin", "/secret"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	h, _, _ := strings.Cut(host, ":")
	return h == "admin.example.com" || strings.HasSuffix(h, ".corp.example.com")
}

// FuzzGatewayRequestTarget sends arbitrary request targets and hosts
// through a gateway with the attack table's routes and checks the
// invariant the gateway promises: whatever reaches the upstream is in
// canonical form (no dot segment, no empty segment, no encoded separator),
// and an anonymous request never reaches a route that needs the admin role.
func FuzzGatewayRequestTarget(f *testing.F) {
	for _, a := range attacks() {
		host := a.host
		if host == "" {
			host = "app.example.com"
		}
		f.Add(strings.ReplaceAll(a.target, "{host}", host), host)
	}
	e := newEnv(f)
	g := e.start(func(c *gateway.Config) { c.Routes = canonicalRoutes(e.upstream.URL) })
	f.Fuzz(func(t *testing.T, target, host string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(host, " \r\n\t") {
			return // Go's server refuses these before any handler runs
		}
		r := &http.Request{
			Method: "GET", URL: u, RequestURI: target, Host: host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Accept": {"application/json"}}, RemoteAddr: "192.0.2.1:1234", Body: http.NoBody,
		}
		r = r.WithContext(context.Background())
		w := httptest.NewRecorder()
		g.g.ServeHTTP(w, r)
		var seen echoed
		if json.Unmarshal(w.Body.Bytes(), &seen) != nil || seen.Method == "" {
			return // not forwarded
		}
		path, _, _ := strings.Cut(seen.URI, "?")
		if p, cleaned, err := canonical.Path(path); err != nil || cleaned || (canonical.Target{Path: p}).EscapedPath() != path {
			t.Fatalf("target %q (Host %q): the upstream received the non-canonical %q", target, host, seen.URI)
		}
		if protected(seen.Host, path) {
			t.Fatalf("target %q (Host %q): an anonymous request reached %s%s", target, host, seen.Host, path)
		}
	})
}
