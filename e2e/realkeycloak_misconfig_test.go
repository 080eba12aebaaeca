package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// TestRealKeycloakMisconfiguration: against a real Keycloak (26.7.3), a
// wrong realm, an unknown client id and a wrong client secret are each
// found by the online check (cloakroom serve --check-config --online) with
// one message naming the setting, and a running gateway reports them in
// readyz as misconfigurations, not outages. The right settings pass, for a
// client without a service account too (a client_credentials grant would
// be refused there even with the right secret). No browser is needed.
func TestRealKeycloakMisconfiguration(t *testing.T) {
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	k := &realKC{t: t, base: base, realm: "e2e-misconfig"}
	k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", map[string]any{
		"realm": k.realm, "enabled": true,
		"clients": []any{map[string]any{
			"clientId": "gateway", "enabled": true, "publicClient": false, "secret": "gateway-secret",
			"standardFlowEnabled": true, "serviceAccountsEnabled": false,
			"redirectUris": []string{"http://127.0.0.1/*"},
		}},
	}, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0) })

	token := k.issuer() + "/protocol/openid-connect/token"
	tests := []struct {
		name          string
		issuer        string
		id, secret    string
		failed, check string // the failing online check and readyz check
		want          string // "" when everything passes
	}{
		{name: "right settings", issuer: k.issuer(), id: "gateway", secret: "gateway-secret"},
		{name: "wrong client secret", issuer: k.issuer(), id: "gateway", secret: "not-the-secret", failed: "client credentials", check: "client_credentials",
			want: `client_secret is wrong: token ` + token + `: HTTP 401: Keycloak refuses the secret of client "gateway" (it answers unauthorized_client "Invalid client or Invalid client credentials"): copy it again from the client's Credentials tab.`},
		{name: "unknown client id", issuer: k.issuer(), id: "gatewya", secret: "gateway-secret", failed: "client credentials", check: "client_credentials",
			want: `client_id is wrong: token ` + token + `: HTTP 401: Keycloak has no enabled client "gatewya" in realm "e2e-misconfig" (it answers invalid_client "Invalid client or Invalid client credentials")`},
		{name: "wrong realm", issuer: base + "/realms/E2E-misconfig", id: "gateway", secret: "gateway-secret", failed: "discovery", check: "identity_provider",
			want: `issuer is wrong: discovery ` + base + `/realms/E2E-misconfig/.well-known/openid-configuration: HTTP 404: this Keycloak has no realm "E2E-misconfig" (it answers "Realm does not exist"; realm names are case-sensitive).`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			url := "http://" + ln.Addr().String()
			cfg := gateway.Config{
				Listen: ln.Addr().String(), PublicURL: url, Issuer: tt.issuer, ClientID: tt.id, ClientSecret: tt.secret,
				Session: gateway.SessionConfig{Store: "memory:"},
				Routes:  []gateway.Route{{Path: "/", Upstream: "http://127.0.0.1:9"}},
			}
			checks, err := gateway.CheckOnline(context.Background(), cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("online check: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.failed+": "+tt.want) {
				t.Errorf("online check: %v\nwant %q", err, tt.want)
			}
			for _, c := range checks {
				t.Logf("%s: %v %s", c.Name, c.OK, c.Detail)
			}

			var logs syncBuffer
			g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Serve(ctx, ln) }()
			defer func() { cancel(); <-done; g.Close() }()
			var ready struct {
				Ready  bool              `json:"ready"`
				Checks map[string]string `json:"checks"`
			}
			for deadline := time.Now().Add(15 * time.Second); ; {
				r, err := http.Get(url + "/_cloakroom/readyz")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(r.Body)
				r.Body.Close()
				ready.Checks = nil
				_ = json.Unmarshal(body, &ready)
				settled := tt.want == "" && ready.Ready && strings.Contains(logs.String(), "accepts the client credentials") ||
					tt.want != "" && strings.HasPrefix(ready.Checks[tt.check], "misconfigured")
				if settled || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if tt.want == "" {
				if !ready.Ready || strings.Contains(logs.String(), `"level":"ERROR"`) {
					t.Errorf("ready %v %v\n%s", ready.Ready, ready.Checks, logs.String())
				}
				return
			}
			if !strings.Contains(ready.Checks[tt.check], tt.want) {
				t.Errorf("readyz %s = %q\nwant %q", tt.check, ready.Checks[tt.check], tt.want)
			}
			var errs []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec struct{ Level, Msg string }
				_ = json.Unmarshal([]byte(line), &rec)
				if rec.Level == "ERROR" {
					errs = append(errs, rec.Msg)
				}
			}
			if len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Errorf("ERROR lines %q, want one with %q", errs, tt.want)
			}
			if strings.Contains(logs.String(), "not-the-secret") {
				t.Error("the log shows the secret")
			}
		})
	}
}
