package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestConfigErrorUnwraps: a ConfigError names the setting and keeps its
// cause, so errors.Is and errors.As see through it (and through the
// ValidationError that lists several).
func TestConfigErrorUnwraps(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.ClientSecret = ""
	c.ClientSecretFile = filepath.Join(t.TempDir(), "missing")
	c.Session.Store = "memory:"
	_, err := New(context.Background(), c)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Setting != "client_secret_file" {
		t.Fatalf("err = %v (%T), want a *ConfigError for client_secret_file", err, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false: the cause is lost", err)
	}

	c = validConfig()
	c.Listen, c.Session.Store = "4180", "mysql://x"
	err = c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("err = %v, want a ValidationError with two problems", err)
	}
	if !errors.As(err, &ce) || ce.Setting != "listen" {
		t.Errorf("errors.As through ValidationError = %+v", ce)
	}
}

// A journal file the process may not create names where it is and the
// settings that move it; other failures get no such hint.
func TestJournalHint(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	denied := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrPermission}
	for _, tt := range []struct {
		name, path string
		err        error
		want       []string // all in the hint; nil: no hint
	}{
		{"default, relative", "cloakroom-logouts-127.0.0.1-4180.journal", denied,
			[]string{filepath.Join(wd, "cloakroom-logouts-127.0.0.1-4180.journal") + ", in the working directory", "session.logout_journal", "CLOAKROOM_SESSION_LOGOUT_JOURNAL", "--logout-journal", "to off"}},
		{"absolute", "/var/lib/cloakroom/j", fmt.Errorf("logout journal: %w", denied),
			[]string{"(the journal is /var/lib/cloakroom/j)", "session.logout_journal"}},
		{"read-only file system", "/ro/j", &fs.PathError{Op: "open", Path: "/ro/j", Err: syscall.EROFS},
			[]string{"(the journal is /ro/j)"}},
		{"locked by another process", "j", errors.New("logout journal j is in use by another process"), nil},
		{"damaged", "j", errors.New("line 3 is not a journal entry"), nil},
	} {
		got := journalHint(tt.path, tt.err)
		if tt.want == nil {
			if got != "" {
				t.Errorf("%s: hint %q, want none", tt.name, got)
			}
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: hint %q lacks %q", tt.name, got, w)
			}
		}
		if tt.path[0] == '/' && strings.Contains(got, "working directory") {
			t.Errorf("%s: an absolute path is not in the working directory: %q", tt.name, got)
		}
	}
}
