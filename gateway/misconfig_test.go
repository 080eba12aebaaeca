package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// TestMisconfigurationsAreNamed: a wrong issuer (no such realm, or a
// provider announcing another issuer), an unknown client id or a wrong
// client secret is not an outage. Each produces exactly one ERROR line
// naming the setting and where it is set, readyz reports it (not ready,
// the same message, no secret), browsers are told sign-in is
// misconfigured (500, not 503), and `--check-config --online`
// (gateway.CheckOnline) finds the same message.
func TestMisconfigurationsAreNamed(t *testing.T) {
	t.Parallel()
	// A provider whose discovery document names another issuer.
	var impostor *httptest.Server
	impostor = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"issuer": "https://sso.example.com/realms/demo", "jwks_uri": impostor.URL + "/realms/demo/protocol/openid-connect/certs",
			"authorization_endpoint": impostor.URL + "/auth", "token_endpoint": impostor.URL + "/token",
		})
	}))
	t.Cleanup(impostor.Close)

	const secret = "not-the-secret"
	tests := []struct {
		name  string
		edit  func(e *env, c *gateway.Config)
		check string // the readyz check that fails
		want  func(e *env) string
		login bool // a browser login ends on the misconfigured page at the callback
	}{
		{
			name: "wrong client secret", check: "client_credentials", login: true,
			edit: func(e *env, c *gateway.Config) { c.ClientSecret = secret },
			want: func(e *env) string {
				return `client_secret is wrong: token ` + e.kc.Issuer() + `/protocol/openid-connect/token: HTTP 401: Keycloak refuses the secret of client "gateway" (it answers unauthorized_client "Invalid client or Invalid client credentials"): copy it again from the client's Credentials tab. Set it with CLOAKROOM_CLIENT_SECRET, CLOAKROOM_CLIENT_SECRET_FILE (--client-secret, --client-secret-file) or client_secret / client_secret_file: in the config file`
			},
		},
		{
			name: "unknown client id", check: "client_credentials",
			edit: func(e *env, c *gateway.Config) { c.ClientID = "gatewya" },
			want: func(e *env) string {
				return `client_id is wrong: token ` + e.kc.Issuer() + `/protocol/openid-connect/token: HTTP 401: Keycloak has no enabled client "gatewya" in realm "demo" (it answers invalid_client "Invalid client or Invalid client credentials"): use the Client ID shown in the realm's Clients list, and check that the client is enabled. Set it with --client-id, CLOAKROOM_CLIENT_ID or client_id: in the config file`
			},
		},
		{
			name: "wrong realm", check: "identity_provider",
			edit: func(e *env, c *gateway.Config) { c.Issuer = strings.TrimSuffix(e.kc.Issuer(), "demo") + "Demo" },
			want: func(e *env) string {
				iss := strings.TrimSuffix(e.kc.Issuer(), "demo") + "Demo"
				return `issuer is wrong: discovery ` + iss + `/.well-known/openid-configuration: HTTP 404: this Keycloak has no realm "Demo" (it answers "Realm does not exist"; realm names are case-sensitive). Set it with --issuer, CLOAKROOM_ISSUER or issuer: in the config file`
			},
		},
		{
			name: "issuer mismatch", check: "identity_provider",
			edit: func(e *env, c *gateway.Config) { c.Issuer = impostor.URL + "/realms/demo" },
			want: func(e *env) string {
				return `issuer is wrong: discovery ` + impostor.URL + `/realms/demo/.well-known/openid-configuration: HTTP 200: document names issuer "https://sso.example.com/realms/demo", but the configured issuer is "` + impostor.URL + `/realms/demo": configure the issuer exactly as the provider announces it (for Keycloak, set its hostname so that one URL is used everywhere). Set it with --issuer, CLOAKROOM_ISSUER or issuer: in the config file`
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var cfg gateway.Config
			g := e.start(func(c *gateway.Config) { tt.edit(e, c); cfg = *c })
			want := tt.want(e)

			// readyz: not ready, with the message.
			var ready struct {
				Ready  bool              `json:"ready"`
				Checks map[string]string `json:"checks"`
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				r, err := http.Get(g.url + "/_cloakroom/readyz")
				if err != nil {
					t.Fatal(err)
				}
				ready.Checks = nil
				json.NewDecoder(r.Body).Decode(&ready)
				r.Body.Close()
				if strings.HasPrefix(ready.Checks[tt.check], "misconfigured") || time.Now().After(deadline) {
					if r.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("readyz answered %d", r.StatusCode)
					}
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got := ready.Checks[tt.check]; got != "misconfigured: "+want {
				t.Errorf("readyz %s:\n got %q\nwant %q", tt.check, got, "misconfigured: "+want)
			}

			// Browsers: sign-in is misconfigured, not temporarily unavailable.
			b := newBrowser(t)
			var pg resp
			if tt.login {
				pg = b.login(g, "/private", "alice")
			} else if tt.check == "identity_provider" {
				pg = b.get(g.url + "/private")
				if js := b.get(g.url+"/_cloakroom/login", "Accept", "application/json"); js.status != http.StatusInternalServerError || !strings.Contains(js.body, `"code":"login_misconfigured"`) {
					t.Errorf("script: %d %s", js.status, js.body)
				}
			}
			if pg.status != 0 && (pg.status != http.StatusInternalServerError || !strings.Contains(pg.body, "misconfigured")) {
				t.Errorf("browser: %d at %s: %.300s", pg.status, pg.url, pg.body)
			}

			// The log: exactly one ERROR line, the message.
			var errs []string
			for _, line := range strings.Split(strings.TrimSpace(g.log.String()), "\n") {
				var rec struct{ Level, Msg string }
				json.Unmarshal([]byte(line), &rec)
				if rec.Level == "ERROR" {
					errs = append(errs, rec.Msg)
				}
			}
			if len(errs) != 1 || errs[0] != want {
				t.Errorf("ERROR lines %q\nwant exactly %q", errs, want)
			}
			if strings.Contains(g.log.String(), secret) {
				t.Error("the log shows the client secret")
			}

			// --check-config --online finds the same.
			checks, err := gateway.CheckOnline(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CheckOnline: %v\nwant %q", err, want)
			}
			for _, c := range checks {
				if c.Detail == want && c.OK {
					t.Errorf("check %s passed", c.Name)
				}
			}
		})
	}
}

// TestCheckOnlinePasses: with the right settings every online check
// passes, for a client without a service account too.
func TestCheckOnlinePasses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var cfg gateway.Config
	g := e.start(func(c *gateway.Config) { cfg = *c })
	checks, err := gateway.CheckOnline(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 3 {
		t.Fatalf("checks %+v", checks)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("%+v", c)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.log.String(), "identity provider accepts the client credentials") {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not check its client credentials:\n%s", g.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(g.log.String(), `"level":"ERROR"`) {
		t.Errorf("errors logged:\n%s", g.log.String())
	}
}
