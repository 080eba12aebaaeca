package keycloaktest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	resp := get(t, s.Issuer("demo")+"/.well-known/openid-configuration")
	if resp.status != http.StatusOK {
		t.Fatalf("status %d", resp.status)
	}
	doc := resp.json(t)
	oidc := s.Issuer("demo") + "/protocol/openid-connect"
	want := map[string]any{
		"issuer":                                         s.Issuer("demo"),
		"authorization_endpoint":                         oidc + "/auth",
		"token_endpoint":                                 oidc + "/token",
		"userinfo_endpoint":                              oidc + "/userinfo",
		"jwks_uri":                                       oidc + "/certs",
		"end_session_endpoint":                           oidc + "/logout",
		"check_session_iframe":                           oidc + "/login-status-iframe.html",
		"revocation_endpoint":                            oidc + "/revoke",
		"introspection_endpoint":                         oidc + "/token/introspect",
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"authorization_response_iss_parameter_supported": true,
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for _, k := range []string{"response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported",
		"code_challenge_methods_supported", "grant_types_supported", "token_endpoint_auth_methods_supported", "scopes_supported", "claims_supported"} {
		if l, ok := doc[k].([]any); !ok || len(l) == 0 {
			t.Errorf("%s missing or empty: %v", k, doc[k])
		}
	}
	if !slices.Contains(doc["code_challenge_methods_supported"].([]any), any("S256")) {
		t.Error("S256 not advertised")
	}
	if !slices.Contains(doc["id_token_signing_alg_values_supported"].([]any), any("HS256")) {
		t.Error("Keycloak advertises HS256 in its capability list; so must the fake")
	}
	if resp.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", resp.header.Get("Content-Type"))
	}
}

func TestDiscoveryEndpointsFollowRequestHostIssuerDoesNot(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	req, _ := http.NewRequest(http.MethodGet, s.Issuer("demo")+"/.well-known/openid-configuration", nil)
	req.Host = "keycloak.internal:8080"
	doc := do(t, req).json(t)
	if got := doc["token_endpoint"]; got != "http://keycloak.internal:8080/realms/demo/protocol/openid-connect/token" {
		t.Errorf("token_endpoint = %v", got)
	}
	if doc["issuer"] != s.Issuer("demo") {
		t.Errorf("issuer = %v, want the configured %v", doc["issuer"], s.Issuer("demo"))
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"unknown realm", http.MethodGet, "/realms/nope/.well-known/openid-configuration", 404, `{"error":"Realm does not exist"}`},
		{"unknown realm certs", http.MethodGet, "/realms/nope/protocol/openid-connect/certs", 404, `{"error":"Realm does not exist"}`},
		{"unknown path", http.MethodGet, "/realms/demo/protocol/openid-connect/nope", 404, `{"error":"Unable to find matching target resource method"}`},
		{"outside realms", http.MethodGet, "/admin/whatever", 404, `{"error":"Unable to find matching target resource method"}`},
		{"root", http.MethodGet, "/", 404, `{"error":"Unable to find matching target resource method"}`},
		{"GET token", http.MethodGet, "/realms/demo/protocol/openid-connect/token", 405, `{"error":"HTTP 405 Method Not Allowed"}`},
		{"POST certs", http.MethodPost, "/realms/demo/protocol/openid-connect/certs", 405, `{"error":"HTTP 405 Method Not Allowed"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, s.URL()+tc.path, nil)
			resp := do(t, req)
			if resp.status != tc.status || string(resp.body) != tc.body {
				t.Errorf("got %d %s, want %d %s", resp.status, resp.body, tc.status, tc.body)
			}
		})
	}
}

func TestRealmInfo(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	info := get(t, s.Issuer("demo")).json(t)
	if info["realm"] != "demo" || info["public_key"] == "" || info["token-service"] != s.Issuer("demo")+"/protocol/openid-connect" {
		t.Errorf("realm info %v", info)
	}
}

func TestLegacyBasePath(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm(), WithBasePath("/auth"))
	if !strings.HasSuffix(s.URL(), "/auth") || s.Issuer("demo") != s.URL()+"/realms/demo" {
		t.Fatalf("URL %q issuer %q", s.URL(), s.Issuer("demo"))
	}
	doc := get(t, s.Issuer("demo")+"/.well-known/openid-configuration").json(t)
	if doc["issuer"] != s.Issuer("demo") || doc["jwks_uri"] != s.Issuer("demo")+"/protocol/openid-connect/certs" {
		t.Errorf("discovery under /auth: %v %v", doc["issuer"], doc["jwks_uri"])
	}
	withoutPrefix := strings.TrimSuffix(s.URL(), "/auth") + "/realms/demo/.well-known/openid-configuration"
	if resp := get(t, withoutPrefix); resp.status != http.StatusNotFound {
		t.Errorf("path without /auth: %d", resp.status)
	}
	if resp := get(t, strings.TrimSuffix(s.URL(), "/auth")+"/authx/realms/demo"); resp.status != http.StatusNotFound {
		t.Errorf("path with a longer prefix: %d", resp.status)
	}
	tok := passwordLogin(t, s, "alice", "alice", "")
	claims := verifyWithJWKS(t, s, "demo", tok["access_token"].(string))
	if claims["iss"] != s.Issuer("demo") {
		t.Errorf("iss %v", claims["iss"])
	}
	if _, err := New(WithBasePath("auth")); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("relative base path: %v", err)
	}
}

func TestHandlerMountedElsewhere(t *testing.T) {
	t.Parallel()
	s, err := New(WithDemoRealm())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	if s.URL() != "" {
		t.Fatalf("URL before Start = %q", s.URL())
	}
	doc := get(t, hs.URL+"/realms/demo/.well-known/openid-configuration").json(t)
	if doc["issuer"] != hs.URL+"/realms/demo" {
		t.Errorf("issuer from request = %v", doc["issuer"])
	}
	form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}, "client_id": {DemoPublicClientID}}
	resp := postForm(t, hs.URL+"/realms/demo/protocol/openid-connect/token", form)
	if resp.status != http.StatusOK {
		t.Fatalf("token: %d %s", resp.status, resp.body)
	}
	if iss := decode(t, resp.json(t)["access_token"].(string)).claims["iss"]; iss != hs.URL+"/realms/demo" {
		t.Errorf("iss = %v", iss)
	}
}

func TestWithPublicURL(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm(), WithPublicURL("https://sso.example.com"))
	if s.Issuer("demo") != "https://sso.example.com/realms/demo" {
		t.Errorf("issuer %q", s.Issuer("demo"))
	}
	for _, bad := range []string{"ftp://x", "https://x/path", "://", "https://"} {
		if _, err := New(WithPublicURL(bad)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("WithPublicURL(%q) = %v", bad, err)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	s, err := New(WithDemoRealm())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrServerState) {
		t.Errorf("second Start: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(s.Issuer("demo")); err == nil {
		t.Error("closed server still answers")
	}
	if err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrServerState) {
		t.Errorf("Start after Close: %v", err)
	}
	if _, err := s.AddRealm(RealmConfig{Name: "demo"}); !errors.Is(err, ErrRealmExists) {
		t.Errorf("duplicate realm: %v", err)
	}
	if s.Realm("nope") != nil {
		t.Error("Realm(nope) not nil")
	}
	if got := len(s.Realms()); got != 1 {
		t.Errorf("Realms() = %d", got)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	s, err := New(WithDemoRealm())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
}

func TestUnspecifiedListenAddressGivesLocalhostURL(t *testing.T) {
	t.Parallel()
	if got := urlHost("[::]:8080"); got != "localhost:8080" {
		t.Errorf("urlHost([::]:8080) = %q", got)
	}
	if got := urlHost("0.0.0.0:1"); got != "localhost:1" {
		t.Errorf("urlHost(0.0.0.0:1) = %q", got)
	}
	if got := urlHost("127.0.0.1:9"); got != "127.0.0.1:9" {
		t.Errorf("urlHost(127.0.0.1:9) = %q", got)
	}
}

func TestFaultRefuse(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	discovery := s.Issuer("demo") + "/.well-known/openid-configuration"
	// A keep-alive connection is open before the fault; it must not survive.
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(discovery); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	s.SetFault(Fault{Refuse: true})
	if resp, err := client.Get(discovery); err == nil {
		resp.Body.Close()
		t.Fatal("request succeeded while refusing")
	}
	s.ClearFault()
	resp, err := client.Get(discovery)
	if err != nil {
		t.Fatalf("after ClearFault: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after ClearFault: %d", resp.StatusCode)
	}
	// Refuse limited to some paths drops only those requests.
	s.SetFault(Fault{Refuse: true, Paths: []string{"/certs"}})
	if resp, err := client.Get(s.Issuer("demo") + "/protocol/openid-connect/certs"); err == nil {
		resp.Body.Close()
		t.Error("certs answered under a path-limited Refuse")
	}
	if resp, err := client.Get(discovery); err != nil {
		t.Errorf("discovery under a certs-only Refuse: %v", err)
	} else {
		resp.Body.Close()
	}
	s.ClearFault()
}

func TestFaultStatus(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	certs := s.Issuer("demo") + "/protocol/openid-connect/certs"
	discovery := s.Issuer("demo") + "/.well-known/openid-configuration"

	s.SetFault(Fault{Status: http.StatusServiceUnavailable})
	for _, u := range []string{certs, discovery} {
		resp := get(t, u)
		if resp.status != 503 || string(resp.body) != `{"error":"HTTP 503 Service Unavailable"}` {
			t.Errorf("%s: %d %s", u, resp.status, resp.body)
		}
	}
	s.SetFault(Fault{Status: http.StatusInternalServerError, Paths: []string{"/certs"}})
	if resp := get(t, certs); resp.status != 500 || resp.json(t)["error"] != "unknown_error" {
		t.Errorf("certs: %d %s", resp.status, resp.body)
	}
	if resp := get(t, discovery); resp.status != 200 {
		t.Errorf("discovery unaffected: %d", resp.status)
	}
	s.ClearFault()
	if resp := get(t, certs); resp.status != 200 {
		t.Errorf("after clear: %d", resp.status)
	}
	// Faulted requests are still counted as JWKS requests.
	if n := s.Realm("demo").JWKSRequests(); n != 3 {
		t.Errorf("JWKSRequests = %d, want 3", n)
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	u := s.Issuer("demo") + "/.well-known/openid-configuration"
	s.SetFault(Fault{Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("delayed request answered before its deadline")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("cancellation took %v", el)
	}
	s.SetFault(Fault{Delay: 50 * time.Millisecond, Status: 503})
	start = time.Now()
	if resp := get(t, u); resp.status != 503 {
		t.Errorf("status %d", resp.status)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("delay not applied: %v", el)
	}
	s.ClearFault()
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  Option
		want error
	}{
		{"nil clock", WithClock(nil), ErrInvalidConfig},
		{"empty realm name", WithRealm(RealmConfig{}), ErrInvalidConfig},
		{"bad realm name", WithRealm(RealmConfig{Name: "a/b"}), ErrInvalidConfig},
		{"bad algorithm", WithRealm(RealmConfig{Name: "x", DefaultSignatureAlgorithm: "HS256"}), ErrUnsupportedAlgorithm},
		{"negative lifespan", WithRealm(RealmConfig{Name: "x", AccessTokenLifespan: -1}), ErrInvalidConfig},
		{"missing realm file", WithRealmFile("testdata/does-not-exist.json"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.opt)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("New = %v, want %v", err, tc.want)
			}
		})
	}
}
