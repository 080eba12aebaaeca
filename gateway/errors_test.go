package gateway

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
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
