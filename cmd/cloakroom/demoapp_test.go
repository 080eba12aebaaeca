package main

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDemoAppStyleAllowedByCSP: the demo app's pages allow their one
// inline stylesheet by hash (no 'unsafe-inline'), and the hash is that of
// the stylesheet they carry, so browsers apply it.
func TestDemoAppStyleAllowedByCSP(t *testing.T) {
	t.Parallel()
	a := &demoApp{}
	for _, path := range []string{"/", "/admin", "/call-api", "/nope"} {
		rec := httptest.NewRecorder()
		a.handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body := rec.Body.String()
		start, end := strings.Index(body, "<style>"), strings.Index(body, "</style>")
		if start < 0 || end < start {
			t.Fatalf("%s: no stylesheet", path)
		}
		sum := sha256.Sum256([]byte(body[start+len("<style>") : end]))
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q does not allow the page's stylesheet by its hash", path, csp)
		}
	}
}
