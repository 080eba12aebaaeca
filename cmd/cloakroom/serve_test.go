package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// writeConfig writes a YAML configuration file for a test.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloakroom.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// validFlags is a complete configuration given as flags alone.
var validFlags = []string{"--issuer", "https://sso.example.com/realms/demo", "--client-id", "gw", "--client-secret", "s", "--upstream", "http://127.0.0.1:9000"}

// TestServeConfigErrorsNameTheField: every kind of bad input — a missing or
// bad setting, an unknown YAML key, a bad boolean in the environment or a
// flag — is refused with a message naming the field (or variable, or flag).
func TestServeConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	without := func(name string) []string {
		var out []string
		for i := 0; i < len(validFlags); i += 2 {
			if validFlags[i] != name {
				out = append(out, validFlags[i], validFlags[i+1])
			}
		}
		return out
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string // written to a file passed with --config
		want  []string
		usage bool // bad usage (exit status 2) rather than bad configuration
	}{
		{name: "missing issuer", args: without("--issuer"), want: []string{"issuer: required"}},
		{name: "issuer not a URL", args: append(without("--issuer"), "--issuer", "sso.example.com"), want: []string{`issuer: "sso.example.com" is not an http(s) URL`}},
		{name: "bad upstream", args: append(without("--upstream"), "--upstream", "127.0.0.1:9000"), want: []string{`routes[0].upstream: "127.0.0.1:9000" must be an http(s) URL`}},
		{name: "every problem at once", args: []string{"--upstream", "http://127.0.0.1:9000"}, want: []string{"3 problems", "issuer: required", "client_id: required", "client_secret: required"}},
		{name: "unknown YAML key", args: without("--client-id"), yaml: "client_idd: gw\n", want: []string{"cloakroom.yaml:1: client_idd: unknown key; did you mean client_id?"}},
		{name: "unknown YAML key in a route", args: without("--upstream"), yaml: "routes:\n  - path: /\n    upstrem: http://127.0.0.1:9000\n", want: []string{"cloakroom.yaml:3: routes[0].upstrem: unknown key; did you mean upstream?"}},
		{name: "misspelt YAML key", args: validFlags, yaml: "routes:\n  - path: /admin\n    upstream: http://127.0.0.1:9000\n    realm_role: {any: [admin]}\n", want: []string{"cloakroom.yaml:4: routes[0].realm_role: unknown key; did you mean realm_roles?"}},
		{name: "YAML key with a dash", args: validFlags, yaml: "public-url: https://app.example.com\n", want: []string{"cloakroom.yaml:1: public-url: unknown key; did you mean public_url?"}},
		{name: "YAML key in the wrong section", args: validFlags, yaml: "store: \"memory:\"\n", want: []string{"cloakroom.yaml:1: store: unknown key; did you mean session.store? (it belongs in another section)"}},
		{name: "bad YAML value", args: validFlags, yaml: "session:\n  idle_timeout: soon\n", want: []string{`cloakroom.yaml:2: session.idle_timeout: "soon" is not a duration with a unit, e.g. 30s, 45m or 10h (write 0 as 0s)`}},
		{name: "bad YAML boolean", args: validFlags, yaml: "forward_access_token: maybe\n", want: []string{`cloakroom.yaml:1: forward_access_token: "maybe" is not true or false`}},
		{name: "YAML scalar for a list", args: validFlags, yaml: "trusted_proxies: 10.0.0.0/8\n", want: []string{`cloakroom.yaml:1: trusted_proxies: "10.0.0.0/8" is not a list`}},
		{name: "not YAML", args: validFlags, yaml: "listen: a: b\n", want: []string{"cloakroom.yaml:1: not valid YAML: mapping values are not allowed in this context"}},
		{name: "YAML key twice", args: validFlags, yaml: "listen: 127.0.0.1:4180\nlisten: 127.0.0.1:4181\n", want: []string{"cloakroom.yaml:2: listen: given twice (also on line 1): keep one"}},
		{name: "every YAML problem at once", args: validFlags, yaml: "isuer: x\nsession:\n  idle_timeout: soon\n", want: []string{"cloakroom.yaml: 2 problems:", "cloakroom.yaml:1: isuer: unknown key; did you mean issuer?", "cloakroom.yaml:3: session.idle_timeout:"}},
		{name: "issuer with a trailing slash", args: append(without("--issuer"), "--issuer", "https://sso.example.com/realms/demo/"), want: []string{`issuer: "https://sso.example.com/realms/demo/" ends with a slash, but Keycloak's tokens name the realm without one: write https://sso.example.com/realms/demo`}},
		{name: "online without check-config", args: append(validFlags, "--online"), want: []string{"--online goes with --check-config"}, usage: true},
		{name: "bad env boolean", args: validFlags, env: map[string]string{"CLOAKROOM_FORWARD_ACCESS_TOKEN": "maybe"}, want: []string{`CLOAKROOM_FORWARD_ACCESS_TOKEN (forward_access_token): "maybe" is not true or false`}},
		{name: "bad env store", args: validFlags, env: map[string]string{"CLOAKROOM_SESSION_STORE": "mysql://db"}, want: []string{"session.store", "mysql://db"}},
		{name: "bad env upstream", args: without("--upstream"), env: map[string]string{"CLOAKROOM_UPSTREAM": "ftp://files"}, want: []string{"routes[0].upstream"}},
		{name: "bad flag boolean", args: append(validFlags, "--forward-access-token", "maybe"), want: []string{`--forward-access-token: "maybe" is not true or false`}, usage: true},
		{name: "bad encryption key flag", args: append(validFlags, "--encryption-key", "c2hvcnQ="), want: []string{"session.encryption_keys[0]"}},
		{name: "missing config file", args: append(validFlags, "--config", filepath.Join(t.TempDir(), "none.yaml")), want: []string{"config file", "none.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tt.yaml)}, args...)
			}
			_, _, err := loadServeConfig(args, envFunc(tt.env), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var ee *exitError
			if isUsage := errors.As(err, &ee) && ee.code == 2; isUsage != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", isUsage, tt.usage, err)
			}
			if strings.Contains(err.Error(), "file-secret") {
				t.Errorf("the error shows a secret: %v", err)
			}
			// Written for operators: no Go types, packages or parser jargon.
			for _, jargon := range []string{"gateway.", "time.Duration", "[]string", "!!", "unmarshal", "strconv", ": yaml: ", "cloakroom: "} {
				if strings.Contains(err.Error(), jargon) {
					t.Errorf("the error shows %q: %v", jargon, err)
				}
			}
		})
	}
}

// TestServeConfigPrecedence: the file is overridden by CLOAKROOM_*
// variables, which are overridden by flags; each layer changes only what it
// sets.
func TestServeConfigPrecedence(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, `
listen: 127.0.0.1:5000
issuer: https://file.example.com/realms/a
client_id: from-file
client_secret: file-secret
session:
  store: "memory:"
log:
  level: debug
routes:
  - name: file-route
    path: /
    upstream: http://127.0.0.1:9000
`)
	type result struct {
		listen, issuer, clientID, secret, level, upstream string
		forward                                           bool
	}
	fileOnly := result{"127.0.0.1:5000", "https://file.example.com/realms/a", "from-file", "file-secret", "debug", "http://127.0.0.1:9000", false}
	env := map[string]string{
		"CLOAKROOM_CLIENT_ID": "from-env", "CLOAKROOM_CLIENT_SECRET": "env-secret", "CLOAKROOM_LOG_LEVEL": "warn",
		"CLOAKROOM_UPSTREAM": "http://127.0.0.1:9100", "CLOAKROOM_FORWARD_ACCESS_TOKEN": "true",
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want result
	}{
		{"file", []string{"--config", file}, nil, fileOnly},
		{"file named by CLOAKROOM_CONFIG", nil, map[string]string{"CLOAKROOM_CONFIG": file}, fileOnly},
		{"--config over CLOAKROOM_CONFIG", []string{"--config", file}, map[string]string{"CLOAKROOM_CONFIG": filepath.Join(t.TempDir(), "none.yaml")}, fileOnly},
		{"env over file", []string{"--config", file}, env,
			result{"127.0.0.1:5000", "https://file.example.com/realms/a", "from-env", "env-secret", "warn", "http://127.0.0.1:9100", true}},
		{"flags over env over file", []string{"--config", file, "--client-id", "from-flag", "--log-level", "error", "--upstream", "http://127.0.0.1:9200", "--forward-access-token", "false"}, env,
			result{"127.0.0.1:5000", "https://file.example.com/realms/a", "from-flag", "env-secret", "error", "http://127.0.0.1:9200", false}},
		{"flags over file", []string{"--config", file, "--listen", "127.0.0.1:6000", "--client-secret", "flag-secret"}, nil,
			result{"127.0.0.1:6000", "https://file.example.com/realms/a", "from-file", "flag-secret", "debug", "http://127.0.0.1:9000", false}},
		{"flags alone", append([]string{"--session-store", "memory:"}, validFlags...), nil,
			result{gateway.DefaultListen, "https://sso.example.com/realms/demo", "gw", "s", "info", "http://127.0.0.1:9000", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, mode, err := loadServeConfig(tt.args, envFunc(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if mode.check || mode.online {
				t.Error("check-config set without the flag")
			}
			got := result{cfg.Listen, cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.Log.Level, "", cfg.ForwardAccessToken}
			if len(cfg.Routes) == 1 {
				got.upstream = cfg.Routes[0].Upstream
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// clearServeEnv empties every variable `cloakroom serve` reads, so the
// tests that go through run (and so os.Getenv) see only their own.
func clearServeEnv(t *testing.T) {
	for _, name := range append(gateway.EnvNames(), "CLOAKROOM_CONFIG") {
		t.Setenv(name, "")
	}
}

// TestServeCheckConfigRedactsSecrets: --check-config prints the merged
// configuration with the client secret, the session keys and the store
// password masked, wherever they came from, and exits 0.
func TestServeCheckConfigRedactsSecrets(t *testing.T) {
	clearServeEnv(t) // t.Setenv: not parallel
	key := session.GenerateKey()
	file := writeConfig(t, "client_secret: file-secret-value\nsession:\n  encryption_keys: ['"+key+"']\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		secrets []string
	}{
		{"flags", []string{"--client-secret", "flag-secret-value", "--encryption-key", key, "--session-store", "redis://app:hunter2@127.0.0.1:6379/0"}, nil,
			[]string{"flag-secret-value", key, "hunter2"}},
		{"environment", nil, map[string]string{"CLOAKROOM_CLIENT_SECRET": "env-secret-value", "CLOAKROOM_ENCRYPTION_KEY": key, "CLOAKROOM_SESSION_STORE": "postgres://app:pg-password@db/cloakroom"},
			[]string{"env-secret-value", key, "pg-password"}},
		{"file", []string{"--config", file}, nil, []string{"file-secret-value", key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"serve", "--check-config", "--issuer", "https://sso.example.com/realms/demo", "--client-id", "gw", "--upstream", "http://127.0.0.1:9000"}, tt.args...)
			var out, errOut syncBuffer
			if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("exit status %d: %s", code, errOut.String())
			}
			printed := out.String() + errOut.String()
			if !strings.Contains(printed, "configuration OK") || !strings.Contains(printed, "[redacted]") || !strings.Contains(printed, "client_id: gw") {
				t.Errorf("output:\n%s", printed)
			}
			for _, s := range tt.secrets {
				if strings.Contains(printed, s) {
					t.Errorf("--check-config printed the secret %.8s…:\n%s", s, printed)
				}
			}
		})
	}
}

// TestServeExitStatus: through the command line, bad configuration exits 1
// with the field-naming message, bad usage exits 2.
func TestServeExitStatus(t *testing.T) {
	clearServeEnv(t) // t.Setenv: not parallel
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"missing issuer", []string{"--client-id", "gw", "--client-secret", "s", "--upstream", "http://127.0.0.1:9000"}, nil, 1,
			"cloakroom serve: invalid configuration (1 problem):\n  - issuer: required"},
		{"bad env boolean", validFlags, map[string]string{"CLOAKROOM_FORWARD_ACCESS_TOKEN": "yes please"}, 1,
			"cloakroom serve: CLOAKROOM_FORWARD_ACCESS_TOKEN (forward_access_token)"},
		{"bad flag boolean", append(validFlags, "--forward-access-token", "maybe"), nil, 2, "cloakroom serve: --forward-access-token"},
		{"unknown flag", append(validFlags, "--upstreams", "x"), nil, 2, "flag provided but not defined: -upstreams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errOut syncBuffer
			code := run(context.Background(), append([]string{"serve"}, tt.args...), strings.NewReader(""), &out, &errOut)
			if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit status %d, stderr:\n%s\nwant %d and %q", code, errOut.String(), tt.code, tt.want)
			}
		})
	}
}

// TestServeCheckOnline: --check-config --online contacts the provider and
// names the setting it refuses; with the right settings every check
// passes.
func TestServeCheckOnline(t *testing.T) {
	t.Parallel()
	idp := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	issuer := idp.Realm("demo").Issuer()
	run := func(secret string) (string, error) {
		var out strings.Builder
		err := runServe(context.Background(), []string{"--check-config", "--online", "--issuer", issuer, "--client-id", "cloakroom",
			"--client-secret", secret, "--upstream", "http://127.0.0.1:9000", "--session-store", "memory:"}, nil, &out, io.Discard)
		return out.String(), err
	}
	out, err := run(keycloaktest.DemoClientSecret)
	if err != nil || strings.Count(out, " OK ") != 3 {
		t.Fatalf("right settings: %v\n%s", err, out)
	}
	out, err = run("not-the-secret")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), `client credentials: client_secret is wrong: token `+issuer+`/protocol/openid-connect/token: HTTP 401: Keycloak refuses the secret of client "cloakroom"`) {
		t.Fatalf("wrong secret: %v", err)
	}
	if !strings.Contains(out, "FAILED  client_secret is wrong") || strings.Contains(out+err.Error(), "not-the-secret") {
		t.Errorf("output:\n%s", out)
	}
}
