package storeurl

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		kind   Kind
		target string
		shared bool
	}{
		{"memory:", Memory, "", false},
		{"sqlite:sessions.db", SQLite, "sessions.db", false},
		{"sqlite:/var/lib/cloakroom/sessions.db", SQLite, "/var/lib/cloakroom/sessions.db", false},
		{"sqlite://users.db", SQLite, "users.db", false},
		{"sqlite:///var/lib/cloakroom/users.db", SQLite, "/var/lib/cloakroom/users.db", false},
		{"redis://127.0.0.1:6379/0", Redis, "redis://127.0.0.1:6379/0", true},
		{"rediss://u:p@h:6380/0", Redis, "rediss://u:p@h:6380/0", true},
		{"postgres://app@db/x", Postgres, "postgres://app@db/x", true},
		{"postgresql://app@db/x", Postgres, "postgresql://app@db/x", true},
	}
	for _, tt := range tests {
		u, err := Parse(tt.in)
		if err != nil || u.Kind != tt.kind || u.Target != tt.target || u.Shared() != tt.shared {
			t.Errorf("Parse(%q) = %+v, %v", tt.in, u, err)
		}
	}
	for _, in := range []string{"sqlite:", "sqlite://"} {
		if _, err := Parse(in); !errors.Is(err, ErrNoPath) {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "memory", "mysql://u:hunter2@h/db", "redis:/h", "file:x.db"} {
		_, err := Parse(in)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), Forms) {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"redis://user:hunter2@redis:6379/0":  "redis://…@redis:6379/0",
		"postgres://app:p@ss@db/x":           "postgres://…@db/x",
		"postgres://db/x?password=hunter2&a": "postgres://db/x?password=…&a",
		"host=db user=app password=hunter2":  "host=db user=app password=…",
		"u:hunter2@h":                        "…@h",
		"sqlite:/var/x.db":                   "sqlite:/var/x.db",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), "memory:")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// No store package is linked into this test.
	for _, in := range []string{"sqlite:x.db", "redis://h:6379/0", "postgres://h/db"} {
		if _, err := Check(in); err == nil || !strings.Contains(err.Error(), "import _") {
			t.Errorf("Check(%q): %v", in, err)
		}
		if s, err := Open(context.Background(), in); err == nil || s != nil {
			t.Errorf("Open(%q): %v", in, err)
		}
	}
}
