package login

import (
	"net/url"
	"testing"
)

func TestSafeRedirect(t *testing.T) {
	t.Parallel()
	h := &Handler{origins: map[string]bool{"https://app.example.com": true, "https://docs.example.com": true}}
	h.base = mustURL("https://app.example.com")
	tests := []struct {
		target string
		want   string
		ok     bool
	}{
		{"", "/", true},
		{"/", "/", true},
		{"/account?tab=1#x", "/account?tab=1#x", true},
		{"/a/b/../c", "/a/b/../c", true},
		{"https://app.example.com/x", "https://app.example.com/x", true},
		{"https://docs.example.com/guide", "https://docs.example.com/guide", true},
		{"https://evil.example.com/", "", false},
		{"http://app.example.com/x", "", false}, // scheme is part of the origin
		{"//evil.example.com/x", "", false},
		{"///evil.example.com", "", false},
		{"/\\evil.example.com", "", false},
		{"\\\\evil.example.com", "", false},
		{"/%2Fevil.example.com", "", false},
		{"/%5Cevil.example.com", "", false},
		{"https:evil.example.com", "", false},
		{"javascript:alert(1)", "", false},
		{"data:text/html,x", "", false},
		{"relative/path", "", false},
		{"/x\r\nSet-Cookie: a=b", "", false},
		{"/x\x00", "", false},
		{"https://user@app.example.com/", "", false},
		{"https://app.example.com@evil.example.com/", "", false},
		{" /leading-space", "", false},
	}
	for _, tt := range tests {
		got, ok := h.safeRedirect(tt.target)
		if ok != tt.ok || got != tt.want {
			t.Errorf("safeRedirect(%q) = %q, %v; want %q, %v", tt.target, got, ok, tt.want, tt.ok)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
