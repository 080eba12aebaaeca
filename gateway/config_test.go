package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Issuer: "https://sso.example.com/realms/demo", ClientID: "gw", ClientSecret: "s",
		Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:9000"}},
	}
}

func TestValidateNamesFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, "issuer"},
		{"bad issuer", func(c *Config) { c.Issuer = "sso.example.com" }, "issuer"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "client_id"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "client_secret"},
		{"both secrets", func(c *Config) { c.ClientSecretFile = "/x" }, "client_secret_file"},
		{"bad listen", func(c *Config) { c.Listen = "4180" }, "listen"},
		{"public url with path", func(c *Config) { c.PublicURL = "https://app.example.com/app" }, "public_url"},
		{"bad store", func(c *Config) { c.Session.Store = "mysql://x" }, "session.store"},
		{"empty sqlite path", func(c *Config) { c.Session.Store = "sqlite:" }, "session.store"},
		{"redis without key", func(c *Config) { c.Session.Store = "redis://127.0.0.1:6379" }, "session.encryption_keys"},
		{"short key", func(c *Config) { c.Session.EncryptionKeys = []string{"c2hvcnQ="} }, "session.encryption_keys[0]"},
		{"negative cache ttl", func(c *Config) { d := -time.Second; c.Session.CacheTTL = &d }, "session.cache_ttl"},
		{"tls half", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls"},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "trusted_proxies[0]"},
		{"bad header", func(c *Config) { c.Headers.User = "X User" }, "headers"},
		{"bad level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"no routes", func(c *Config) { c.Routes = nil }, "routes"},
		{"route path", func(c *Config) { c.Routes[0].Path = "app" }, "routes[0].path"},
		{"reserved prefix", func(c *Config) { c.Routes[0].Path = "/_cloakroom/x" }, "routes[0].path"},
		{"route upstream", func(c *Config) { c.Routes[0].Upstream = "127.0.0.1:9000" }, "routes[0].upstream"},
		{"route mode", func(c *Config) { c.Routes[0].Mode = "graphql" }, "routes[0].mode"},
		{"route method", func(c *Config) { c.Routes[0].Methods = []string{"FETCH"} }, "routes[0].methods"},
		{"public with roles", func(c *Config) { c.Routes[0].Public = true; c.Routes[0].RealmRoles.Any = []string{"a"} }, "routes[0].public"},
		{"client roles without client", func(c *Config) { c.Routes[0].ClientRoles.Any = []string{"a"} }, "routes[0].client_roles"},
		{"acr on api", func(c *Config) { c.Routes[0].Mode = "api"; c.Routes[0].ACR = "gold" }, "routes[0].acr"},
		{"duplicate route", func(c *Config) { c.Routes = append(c.Routes, c.Routes[0]) }, "routes[1].path"},
		{"host with port", func(c *Config) { c.Routes[0].Host = "app.example.com:443" }, "routes[0].host"},
		{"leeway", func(c *Config) { c.Leeway = time.Hour }, "leeway"},
		{"alg none", func(c *Config) { c.Algorithms = []string{"RS256", "none"} }, "algorithms[1]"},
		{"alg HS256", func(c *Config) { c.Algorithms = []string{"HS256"} }, "algorithms[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			found := false
			for _, p := range ve.Problems {
				if p.Setting == tt.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("no problem for field %q in: %v", tt.field, err)
			}
		})
	}
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if c.Listen != DefaultListen || c.PublicURL != "http://"+DefaultListen || c.Session.Store != DefaultStore || c.Routes[0].Mode != "browser" || c.Headers.User != "X-Forwarded-User" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadFileAndPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "cloakroom.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:5000
issuer: https://file.example.com/realms/a
client_id: from-file
client_secret: file-secret
session:
  store: "memory:"
  idle_timeout: 20m
routes:
  - name: app
    path: /
    upstream: http://127.0.0.1:9000
    realm_roles: {any: [user]}
  - name: api
    path: /api
    mode: api
    upstream: http://127.0.0.1:9001
    client_roles: {client: gw, all: [read]}
`), 0o600)
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.IdleTimeout != 20*time.Minute || c.Routes[1].ClientRoles.Client != "gw" || c.Routes[1].ClientRoles.All[0] != "read" || c.Routes[0].RealmRoles.Any[0] != "user" {
		t.Fatalf("file: %+v", c)
	}
	env := map[string]string{"CLOAKROOM_CLIENT_ID": "from-env", "CLOAKROOM_ENCRYPTION_KEY": "a, b"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "from-env" || c.Listen != "127.0.0.1:5000" || len(c.Session.EncryptionKeys) != 2 {
		t.Fatalf("env over file: %+v", c)
	}
	if err := c.ApplyEnv(func(k string) string {
		if k == "CLOAKROOM_FORWARD_ACCESS_TOKEN" {
			return "maybe"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "CLOAKROOM_FORWARD_ACCESS_TOKEN") {
		t.Fatalf("bad boolean env: %v", err)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"issuer: x\nclient_idd: y\n", "client_idd"},
		{"routes:\n  - path: /\n    upstrem: http://x\n", "upstrem"},
		{"listen: [1, 2]\n", "listen"},
		{"session:\n  idle_timeout: soon\n", "soon"},
		{"\t- nope", "config file"},
	} {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(bad.yaml), 0o600)
		if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.yaml, err, bad.want)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Session.EncryptionKeys = []string{"secretkey"}
	c.Session.Store = "redis://user:hunter2@redis:6379/0"
	r := c.Redacted()
	if r.ClientSecret == "s" || r.Session.EncryptionKeys[0] == "secretkey" || strings.Contains(r.Session.Store, "hunter2") {
		t.Fatalf("not redacted: %+v", r)
	}
	if c.Session.EncryptionKeys[0] != "secretkey" {
		t.Fatal("Redacted changed the original")
	}
	if got := c.Redacted().Session.Store; got != "redis://…@redis:6379/0" {
		t.Fatalf("redacted store = %q", got)
	}
}
