package keycloaktest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/dpop"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

type dpopAnswer struct {
	status int
	body   map[string]any
}

func dpopTokenRequest(t *testing.T, ep string, key *dpop.Key, proof func(string) string, form url.Values) dpopAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", ep, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var hc http.Client
	if proof != nil {
		req.Header.Set("DPoP", proof(ep))
	} else if key != nil {
		hc.Transport = &dpop.Transport{Key: key}
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var m map[string]any
	json.Unmarshal(data, &m)
	return dpopAnswer{res.StatusCode, m}
}

func jwtClaims(t *testing.T, jwt any) map[string]any {
	t.Helper()
	s, _ := jwt.(string)
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %v", jwt)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// keycloaktest binds tokens to a DPoP key as Keycloak 26.7.3 does
// (e2e/realkeycloak_dpop_test.go checks the same against the real one).
func TestDPoPTokenEndpoint(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	if err := kc.AddClient(keycloaktest.ClientConfig{ClientID: "dpop-only", Secret: "s", ServiceAccounts: true, DirectAccessGrants: true,
		Attributes: map[string]string{"dpop.bound.access.tokens": "true"}}); err != nil {
		t.Fatal(err)
	}
	ep := kc.Issuer() + "/protocol/openid-connect/token"
	key, _ := dpop.GenerateKey()
	other, _ := dpop.GenerateKey()
	public := url.Values{"grant_type": {"password"}, "client_id": {keycloaktest.DemoPublicClientID}, "username": {"alice"}, "password": {"alice"}}
	conf := url.Values{"grant_type": {"password"}, "client_id": {keycloaktest.DemoClientID}, "client_secret": {keycloaktest.DemoClientSecret}, "username": {"alice"}, "password": {"alice"}}

	// Public client: access and refresh token bound.
	a := dpopTokenRequest(t, ep, key, nil, public)
	if a.status != 200 || a.body["token_type"] != "DPoP" {
		t.Fatalf("public: %d %v", a.status, a.body)
	}
	at, rt := jwtClaims(t, a.body["access_token"]), jwtClaims(t, a.body["refresh_token"])
	want := map[string]any{"jkt": key.Thumbprint(), "kc-jkt-type": "DPoP"}
	if at["typ"] != "DPoP" || !equalJSON(at["cnf"], want) || !equalJSON(rt["cnf"], want) || rt["typ"] != "Refresh" {
		t.Fatalf("public tokens: typ %v cnf %v; refresh cnf %v", at["typ"], at["cnf"], rt["cnf"])
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {keycloaktest.DemoPublicClientID}, "refresh_token": {a.body["refresh_token"].(string)}}
	if r := dpopTokenRequest(t, ep, nil, nil, refresh); r.status != 400 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "DPoP proof is missing" {
		t.Fatalf("public refresh without proof: %d %v", r.status, r.body)
	}
	if r := dpopTokenRequest(t, ep, other, nil, refresh); r.status != 400 || r.body["error_description"] != "DPoP confirmation doesn't match DPoP proof" {
		t.Fatalf("public refresh with another key: %d %v", r.status, r.body)
	}
	if r := dpopTokenRequest(t, ep, key, nil, refresh); r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("public refresh: %d %v", r.status, r.body)
	}

	// Confidential client: the refresh token is not bound; a refresh with
	// another key binds the new access token to it.
	c := dpopTokenRequest(t, ep, key, nil, conf)
	if c.status != 200 || jwtClaims(t, c.body["refresh_token"])["cnf"] != nil {
		t.Fatalf("confidential: %d, refresh cnf %v", c.status, jwtClaims(t, c.body["refresh_token"])["cnf"])
	}
	cr := url.Values{"grant_type": {"refresh_token"}, "client_id": {keycloaktest.DemoClientID}, "client_secret": {keycloaktest.DemoClientSecret}, "refresh_token": {c.body["refresh_token"].(string)}}
	if r := dpopTokenRequest(t, ep, other, nil, cr); r.status != 200 || jwtClaims(t, r.body["access_token"])["cnf"].(map[string]any)["jkt"] != other.Thumbprint() {
		t.Fatalf("confidential refresh with another key: %d %v", r.status, r.body)
	}
	// Without a proof: Bearer, as before.
	if r := dpopTokenRequest(t, ep, nil, nil, conf); r.status != 200 || r.body["token_type"] != "Bearer" || jwtClaims(t, r.body["access_token"])["cnf"] != nil {
		t.Fatalf("no proof: %d %v", r.status, r.body)
	}

	// A client requiring DPoP.
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"dpop-only"}, "client_secret": {"s"}}
	if r := dpopTokenRequest(t, ep, nil, nil, cc); r.status != 400 || r.body["error"] != "invalid_request" || r.body["error_description"] != "DPoP proof is missing" {
		t.Fatalf("dpop-only without proof: %d %v", r.status, r.body)
	}
	if r := dpopTokenRequest(t, ep, key, nil, cc); r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("dpop-only: %d %v", r.status, r.body)
	}

	// Bad proofs: 400 invalid_request with Keycloak's descriptions.
	fixed, _ := key.Sign(dpop.Proof{Method: "POST", URL: ep, ID: "fixed"})
	for _, tc := range []struct {
		name  string
		proof func(ep string) string
		desc  string
	}{
		{"wrong method", func(ep string) string { p, _ := key.Sign(dpop.Proof{Method: "GET", URL: ep}); return p }, "DPoP HTTP method mismatch"},
		{"wrong URL", func(ep string) string { p, _ := key.Sign(dpop.Proof{Method: "POST", URL: ep + "x"}); return p }, "DPoP HTTP URL mismatch"},
		{"old iat", func(ep string) string {
			p, _ := key.Sign(dpop.Proof{Method: "POST", URL: ep, IssuedAt: time.Now().Add(-time.Hour)})
			return p
		}, "DPoP proof is not active"},
		{"future iat", func(ep string) string {
			p, _ := key.Sign(dpop.Proof{Method: "POST", URL: ep, IssuedAt: time.Now().Add(time.Hour)})
			return p
		}, "DPoP proof is not active"},
		{"garbage", func(string) string { return "a.b.c" }, "DPoP header verification failure"},
		{"first use", func(string) string { return fixed }, ""},
		{"replay", func(string) string { return fixed }, "DPoP proof has already been used"},
	} {
		r := dpopTokenRequest(t, ep, nil, tc.proof, conf)
		if tc.desc == "" {
			if r.status != 200 {
				t.Fatalf("%s: %d %v", tc.name, r.status, r.body)
			}
			continue
		}
		if r.status != 400 || r.body["error"] != "invalid_request" || r.body["error_description"] != tc.desc {
			t.Errorf("%s: %d %v, want 400 invalid_request %q", tc.name, r.status, r.body, tc.desc)
		}
	}

	// Introspection answers the binding.
	res, err := http.PostForm(kc.Issuer()+"/protocol/openid-connect/token/introspect", url.Values{
		"client_id": {keycloaktest.DemoClientID}, "client_secret": {keycloaktest.DemoClientSecret}, "token": {c.body["access_token"].(string)}})
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	json.NewDecoder(res.Body).Decode(&in)
	res.Body.Close()
	if in["active"] != true || in["token_type"] != "DPoP" || !equalJSON(in["cnf"], want) {
		t.Fatalf("introspection: %v", in)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
