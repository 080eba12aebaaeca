package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/dpop"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// dpopEnv is a gateway environment with a client that gets DPoP-bound
// tokens for the gateway's audience.
func dpopEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	if err := e.kc.AddClient(keycloaktest.ClientConfig{ClientID: "cli", Public: true, DirectAccessGrants: true, Audiences: []string{"gateway"}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) dpopToken(t *testing.T, key *dpop.Key) string {
	t.Helper()
	hc := http.DefaultClient
	if key != nil {
		hc = &http.Client{Transport: &dpop.Transport{Key: key}}
	}
	res, err := hc.PostForm(e.kc.Issuer()+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := jsonDecode(res, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

func dpopGet(t *testing.T, u, scheme, token string, proofs ...string) resp {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", scheme+" "+token)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return newBrowser(t).do(req)
}

func TestDPoPThroughGateway(t *testing.T) {
	t.Parallel()
	e := dpopEnv(t)
	store := "sqlite:" + filepath.Join(t.TempDir(), "sessions.db")
	routes := func(c *gateway.Config) {
		c.Session.Store = store
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.Routes = []gateway.Route{
			{Name: "strict", Path: "/strict", Upstream: e.upstream.URL, Mode: "api", DPoP: "require"},
			{Name: "legacy", Path: "/legacy", Upstream: e.upstream.URL, Mode: "api", DPoP: "off"},
			{Name: "api", Path: "/api", Upstream: e.upstream.URL, Mode: "api"},
		}
	}
	g1, g2 := e.start(routes), e.start(routes)
	key, _ := dpop.GenerateKey()
	token := e.dpopToken(t, key)
	plain := e.dpopToken(t, nil)
	proof := func(g *gw, path string) string {
		p, err := key.Sign(dpop.Proof{Method: "GET", URL: g.url + path, AccessToken: token})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A valid proof: the upstream gets the request, without the proof.
	p := proof(g1, "/api/orders?x=1")
	r := dpopGet(t, g1.url+"/api/orders?x=1", "DPoP", token, p)
	if r.status != 200 {
		t.Fatalf("valid proof: %d %s", r.status, r.body)
	}
	seen := echo(t, r)
	if header(seen, "Dpop") != "" || header(seen, "X-Forwarded-User") == "" {
		t.Fatalf("upstream headers: DPoP %q, user %q", header(seen, "Dpop"), header(seen, "X-Forwarded-User"))
	}

	refused := []struct {
		name          string
		url           string
		scheme, token string
		proofs        []string
		status        int
		challenge     string
	}{
		{"replay at the same instance", g1.url + "/api/orders?x=1", "DPoP", token, []string{p}, 401, `error="invalid_dpop_proof"`},
		{"replay at another instance sharing the store", g2.url + "/api/orders?x=1", "DPoP", token, []string{p}, 401, `error="invalid_dpop_proof"`},
		{"no proof", g1.url + "/api/orders", "DPoP", token, nil, 401, `error="invalid_dpop_proof"`},
		{"proof for another path", g1.url + "/api/other", "DPoP", token, []string{proof(g1, "/api/orders")}, 401, `error="invalid_dpop_proof"`},
		{"bound token sent as Bearer", g1.url + "/api/orders", "Bearer", token, nil, 401, `error="invalid_token"`},
		{"bearer token on a require route", g1.url + "/strict/x", "Bearer", plain, nil, 401, "DPoP "},
		{"DPoP on an off route", g1.url + "/legacy/x", "DPoP", token, []string{proof(g1, "/legacy/x")}, 401, "Bearer"},
	}
	for _, tc := range refused {
		r := dpopGet(t, tc.url, tc.scheme, tc.token, tc.proofs...)
		if r.status != tc.status || !strings.Contains(r.header.Get("WWW-Authenticate"), tc.challenge) {
			t.Errorf("%s: %d %q %s", tc.name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
		if strings.Contains(r.body, `"uri"`) {
			t.Errorf("%s: the upstream was reached", tc.name)
		}
	}
	if r := dpopGet(t, g1.url+"/strict/x", "DPoP", token, proof(g1, "/strict/x")); r.status != 200 {
		t.Errorf("require route with a proof: %d %s", r.status, r.body)
	}
	if r := dpopGet(t, g1.url+"/legacy/x", "Bearer", plain); r.status != 200 {
		t.Errorf("off route with a bearer token: %d %s", r.status, r.body)
	}

	// Behind a trusted proxy, htu is the public URL the proxy announces.
	behind := func(htu string) resp {
		p, _ := key.Sign(dpop.Proof{Method: "GET", URL: htu, AccessToken: token})
		req, _ := http.NewRequest("GET", g1.url+"/api/orders", nil)
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", p)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		return newBrowser(t).do(req)
	}
	if r := behind("https://api.example.com/api/orders"); r.status != 200 {
		t.Errorf("public URL behind a proxy: %d %s", r.status, r.body)
	}
	if r := behind(g1.url + "/api/orders"); r.status != 401 {
		t.Errorf("internal URL behind a proxy: %d, want 401", r.status)
	}
}

func TestDPoPRouteConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		route gateway.Route
		want  string
	}{
		{gateway.Route{Name: "a", Path: "/", Upstream: "http://127.0.0.1:9", Mode: "api", DPoP: "maybe"}, "routes[0].dpop"},
		{gateway.Route{Name: "a", Path: "/", Upstream: "http://127.0.0.1:9", Mode: "browser", DPoP: "require"}, "mode: api or both"},
	} {
		cfg := gateway.Config{PublicURL: "http://127.0.0.1:8080", Issuer: "http://127.0.0.1:9/realms/x", ClientID: "gateway", ClientSecret: "s",
			Session: gateway.SessionConfig{Store: "memory:", EncryptionKeys: []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
			Routes:  []gateway.Route{tc.route}}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.route, err, tc.want)
		}
	}
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }
