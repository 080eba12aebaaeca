package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"gopkg.in/yaml.v3"
)

// fuzzConfigSeeds are gateway configuration files: the documented
// examples and broken variants.
var fuzzConfigSeeds = []string{
	`public_url: https://app.example.com
issuer: https://sso.example.com/realms/myrealm
client_id: app-gateway
client_secret: Zm9vYmFyU2VjcmV0MTIz
session:
  store: "memory:"
  encryption_keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]
routes:
  - {path: /api, upstream: "http://127.0.0.1:9000", mode: api, realm_roles: {any: [user]}}
  - {path: /admin, upstream: "http://127.0.0.1:9000", realm_roles: {any: [admin]}}
  - {path: /, upstream: "http://127.0.0.1:9000"}
`,
	`listen: 127.0.0.1:4180
public_url: https://app.example.com
issuer: https://sso.example.com/realms/myrealm
client_id: app-gateway
session:
  store: redis://:Pa55w0rdXyz@127.0.0.1:6379/0
  encryption_keys:
    - MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
  idle_timeout: 30m
  cache_ttl: 5s
trusted_proxies: [10.0.0.0/8, 127.0.0.1]
headers: {user: X-User}
log: {level: debug, format: text, access_log: false}
routes:
  - name: admin
    host: "*.example.com"
    path: /admin
    upstream: http://127.0.0.1:9000
    methods: [get, POST]
    client_roles: {client: app, all: [admin]}
    acr: gold
  - name: hooks
    path: /hooks
    upstream: http://127.0.0.1:9001
    mode: both
    public: true
    strip_prefix: true
    introspect: true
`,
	`routes: [{path: x, upstream: ftp://a, mode: sideways}]
algorithms: [none, HS256]
leeway: -1s
client_secret: Zm9vYmFyU2VjcmV0MTIz
client_secret_file: /run/secret
`,
	``, `---`, `[]`, `null`, `listen: [`, "unknown_key: 1\n", "routes:\n  - path: /\n    upstrem: http://x\n",
	"session:\n  idle_timeout: forever\n", "leeway: 1e99h\n", "&a [*a]\n", "a: &a [*a, *a]\nb: *a\n",
	// Secrets where the schema wants something else: yaml quotes the start
	// of such values in its errors.
	"session:\n  encryption_keys: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	"x: &k Zm9vYmFyU2VjcmV0MTIz\nsession: {encryption_keys: *k}\n",
	"client_secret: {value: Zm9vYmFyU2VjcmV0MTIz}\n",
}

// secretValues returns the values of the configuration's secret fields
// (client_secret, session.encryption_keys) found in data, as long as they
// look like real secrets: mixed-case letters and digits, at least eight
// characters, and their first seven characters nowhere else in data (so
// that an error quoting some other field cannot be mistaken for a leak).
func secretValues(data []byte) []string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	var out []string
	var add func(n *yaml.Node)
	add = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			v := n.Value
			if len(v) >= 8 && strings.ContainsAny(v, "0123456789") && strings.ContainsAny(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
				strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") && strings.Count(string(data), v[:7]) == 1 {
				out = append(out, v)
			}
		case yaml.SequenceNode, yaml.MappingNode:
			for _, c := range n.Content {
				add(c)
			}
		}
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := path + n.Content[i].Value
			switch p {
			case "client_secret", "session.encryption_keys":
				add(n.Content[i+1])
			case "session":
				walk(n.Content[i+1], "session.")
			}
		}
	}
	walk(root.Content[0], "")
	return out
}

// FuzzLoadFile: any file given as --config loads or fails with an error,
// never a panic; what loads validates or fails with a ValidationError; and
// neither an error message nor the Redacted configuration repeats (even
// the start of) the client secret or an encryption key written in the
// file.
func FuzzLoadFile(f *testing.F) {
	for _, s := range fuzzConfigSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "gateway.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// A hang is a finding too: fail (so the input is kept) after 10 s.
		type loaded struct {
			cfg gateway.Config
			err error
		}
		done := make(chan loaded, 1)
		go func() {
			cfg, err := gateway.LoadFile(path)
			done <- loaded{cfg, err}
		}()
		var cfg gateway.Config
		var err error
		select {
		case l := <-done:
			cfg, err = l.cfg, l.err
		case <-time.After(10 * time.Second):
			t.Fatalf("LoadFile still running after 10 s on %q", data)
		}
		var msgs []string
		if err != nil {
			msgs = append(msgs, err.Error())
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
		} else {
			if err := cfg.Validate(); err != nil {
				msgs = append(msgs, err.Error())
				if _, ok := err.(*gateway.ValidationError); !ok {
					t.Fatalf("Validate returned %T: %v", err, err)
				}
			}
			msgs = append(msgs, fmt.Sprintf("%+v", cfg.Redacted()))
		}
		for _, s := range secretValues(data) {
			for _, m := range msgs {
				if strings.Contains(m, s[:7]) {
					t.Fatalf("an error message or the redacted configuration repeats a secret from the file (%.3s…): %s", s, m)
				}
			}
		}
	})
}
