package login_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
)

// TestRequireLoginBehindServeMux documents what RequireLogin relies on when
// an application routes with http.ServeMux: the mux cleans literal dot
// segments and double slashes (it redirects them), so they cannot reach an
// unprotected handler; percent-encoded separators and dots are routed as
// they are, so a file server mounted at "/" serves a file under the
// protected "/admin/" to anyone. cloakroom.CanonicalPaths around the mux
// closes that.
func TestRequireLoginBehindServeMux(t *testing.T) {
	t.Parallel()
	a := newApp(t, newIDP(t, nil), appOptions{})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "admin"), 0o755)
	os.WriteFile(filepath.Join(root, "admin", "secret.txt"), []byte("SECRET"), 0o644)
	mux := http.NewServeMux()
	mux.Handle("/admin/", a.h.RequireLogin(http.FileServer(http.Dir(root))))
	mux.Handle("/", http.FileServer(http.Dir(root)))
	bare := httptest.NewServer(a.h.Middleware(mux))
	defer bare.Close()
	guarded := httptest.NewServer(cloakroom.CanonicalPaths(a.h.Middleware(mux)))
	defer guarded.Close()

	tests := []struct {
		target          string
		bare, guarded   int
		bareLeaks       bool
		bareLocation    string
		guardedLocation string
	}{
		{target: "/admin/secret.txt", bare: 302, guarded: 302},
		{target: "/%61dmin/secret.txt", bare: 302, guarded: 302},
		{target: "//admin/secret.txt", bare: 307, guarded: 308, bareLocation: "/admin/secret.txt", guardedLocation: "/admin/secret.txt"},
		{target: "/public/../admin/secret.txt", bare: 307, guarded: 308, bareLocation: "/admin/secret.txt", guardedLocation: "/admin/secret.txt"},
		// What ServeMux does not catch.
		{target: "/public/..%2fadmin/secret.txt", bare: 200, bareLeaks: true, guarded: 400},
		{target: "/%2fadmin/secret.txt", bare: 200, bareLeaks: true, guarded: 400},
		{target: "/public/%2e%2e/admin/secret.txt", bare: 200, bareLeaks: true, guarded: 400},
		{target: "/admin%2fsecret.txt", bare: 200, bareLeaks: true, guarded: 400},
		{target: "/public/..%5cadmin/secret.txt", bare: 404, guarded: 400},
	}
	for _, tt := range tests {
		for _, side := range []struct {
			name     string
			url      string
			status   int
			leaks    bool
			location string
		}{{"ServeMux alone", bare.URL, tt.bare, tt.bareLeaks, tt.bareLocation}, {"CanonicalPaths", guarded.URL, tt.guarded, false, tt.guardedLocation}} {
			status, location, body := rawGet(t, strings.TrimPrefix(side.url, "http://"), tt.target)
			if status != side.status || strings.Contains(body, "SECRET") != side.leaks {
				t.Errorf("%s: GET %s = %d %.80q; want %d (file served: %v)", side.name, tt.target, status, body, side.status, side.leaks)
			}
			if side.location != "" && location != side.location {
				t.Errorf("%s: GET %s redirects to %q, want %q", side.name, tt.target, location, side.location)
			}
		}
	}
}

func rawGet(t *testing.T, addr, target string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(body)
}

// TestPagesForbidFraming: the logout confirmation (a button a framing page
// could trick a user into pressing) and every other page refuse frames.
func TestPagesForbidFraming(t *testing.T) {
	t.Parallel()
	a := newApp(t, newIDP(t, nil), appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	p := b.get(a.srv.URL + "/auth/logout")
	if p.status != 200 || !strings.Contains(p.body, "csrf_token") {
		t.Fatalf("logout confirmation: %d %.200s", p.status, p.body)
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("logout confirmation CSP %q has no frame-ancestors 'none'", csp)
	}
	if xfo := p.header.Get("X-Frame-Options"); xfo != "DENY" {
		t.Errorf("X-Frame-Options = %q", xfo)
	}
}
