package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/dpop"
	"github.com/cloakroom/cloakroom/session"
)

// DPoP (RFC 9449) against a real Keycloak (CLOAKROOM_TEST_KEYCLOAK): the
// tokens it binds with the dpop client helper, what its token endpoint
// answers (mirrored by keycloaktest, keycloaktest/dpop_test.go), and bearer
// accepting its DPoP-bound tokens only with a valid proof.

func newDPoPRealm(t *testing.T, realm string) *realKC {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	k := &realKC{t: t, base: base, realm: realm}
	k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", map[string]any{"realm": realm, "enabled": true}, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0) })
	audience := []any{map[string]any{
		"name": "audience-api", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
		"config": map[string]string{"included.client.audience": "api", "access.token.claim": "true", "introspection.token.claim": "true"},
	}}
	k.call(http.MethodPost, "/admin/realms/"+realm+"/clients", map[string]any{
		"clientId": "api", "publicClient": false, "secret": "api-secret", "directAccessGrantsEnabled": true, "serviceAccountsEnabled": true,
		"attributes": map[string]string{"dpop.bound.access.tokens": "true"}, "protocolMappers": audience,
	}, http.StatusCreated)
	k.call(http.MethodPost, "/admin/realms/"+realm+"/clients", map[string]any{
		"clientId": "app", "publicClient": true, "directAccessGrantsEnabled": true, "protocolMappers": audience,
	}, http.StatusCreated)
	k.call(http.MethodPost, "/admin/realms/"+realm+"/users", map[string]any{
		"username": "alice", "enabled": true, "email": "alice@example.com", "emailVerified": true, "firstName": "Alice", "lastName": "A",
		"credentials": []any{map[string]any{"type": "password", "value": "alice", "temporary": false}},
	}, http.StatusCreated)
	return k
}

type kcAnswer struct {
	status int
	body   map[string]any
}

// kcToken posts a token request with a DPoP proof from key (none if nil).
func kcToken(t *testing.T, k *realKC, key *dpop.Key, form url.Values) kcAnswer {
	t.Helper()
	hc := http.DefaultClient
	if key != nil {
		hc = &http.Client{Transport: &dpop.Transport{Key: key}}
	}
	res, err := hc.PostForm(k.issuer()+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return kcAnswer{res.StatusCode, m}
}

func claimsOf(t *testing.T, jwt any) map[string]any {
	t.Helper()
	parts := strings.Split(jwt.(string), ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestRealKeycloakDPoPTokenEndpoint(t *testing.T) {
	k := newDPoPRealm(t, "dpop-endpoint")
	key, _ := dpop.GenerateKey()
	other, _ := dpop.GenerateKey()
	pub := url.Values{"grant_type": {"password"}, "client_id": {"app"}, "username": {"alice"}, "password": {"alice"}}
	a := kcToken(t, k, key, pub)
	if a.status != 200 || a.body["token_type"] != "DPoP" {
		t.Fatalf("public client with proof: %d %v", a.status, a.body)
	}
	at, rt := claimsOf(t, a.body["access_token"]), claimsOf(t, a.body["refresh_token"])
	cnf, _ := at["cnf"].(map[string]any)
	rcnf, _ := rt["cnf"].(map[string]any)
	if at["typ"] != "DPoP" || cnf["jkt"] != key.Thumbprint() || rcnf["jkt"] != key.Thumbprint() {
		t.Fatalf("access typ %v cnf %v, refresh cnf %v", at["typ"], at["cnf"], rt["cnf"])
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {"app"}, "refresh_token": {a.body["refresh_token"].(string)}}
	if r := kcToken(t, k, nil, refresh); r.status != 400 || r.body["error"] != "invalid_grant" || r.body["error_description"] != "DPoP proof is missing" {
		t.Errorf("public refresh without proof: %d %v", r.status, r.body)
	}
	if r := kcToken(t, k, other, refresh); r.status != 400 || r.body["error_description"] != "DPoP confirmation doesn't match DPoP proof" {
		t.Errorf("public refresh with another key: %d %v", r.status, r.body)
	}
	if r := kcToken(t, k, key, refresh); r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Errorf("public refresh: %d %v", r.status, r.body)
	}
	if r := kcToken(t, k, nil, pub); r.status != 200 || r.body["token_type"] != "Bearer" {
		t.Errorf("public client without proof: %d %v", r.status, r.body)
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"api"}, "client_secret": {"api-secret"}}
	if r := kcToken(t, k, nil, cc); r.status != 400 || r.body["error"] != "invalid_request" || r.body["error_description"] != "DPoP proof is missing" {
		t.Errorf("client requiring DPoP without proof: %d %v", r.status, r.body)
	}
	conf := url.Values{"grant_type": {"password"}, "client_id": {"api"}, "client_secret": {"api-secret"}, "username": {"alice"}, "password": {"alice"}}
	c := kcToken(t, k, key, conf)
	if c.status != 200 || claimsOf(t, c.body["refresh_token"])["cnf"] != nil {
		t.Fatalf("confidential: %d, refresh cnf %v", c.status, c.body)
	}
	cr := url.Values{"grant_type": {"refresh_token"}, "client_id": {"api"}, "client_secret": {"api-secret"}, "refresh_token": {c.body["refresh_token"].(string)}}
	if r := kcToken(t, k, other, cr); r.status != 200 || claimsOf(t, r.body["access_token"])["cnf"].(map[string]any)["jkt"] != other.Thumbprint() {
		t.Errorf("confidential refresh with another key: %d %v", r.status, r.body)
	}
	ep := k.issuer() + "/protocol/openid-connect/token"
	for _, tc := range []struct {
		name  string
		proof dpop.Proof
		desc  string
	}{
		{"wrong method", dpop.Proof{Method: "GET", URL: ep}, "DPoP HTTP method mismatch"},
		{"wrong URL", dpop.Proof{Method: "POST", URL: ep + "x"}, "DPoP HTTP URL mismatch"},
		{"old iat", dpop.Proof{Method: "POST", URL: ep, IssuedAt: time.Now().Add(-time.Hour)}, "DPoP proof is not active"},
		{"future iat", dpop.Proof{Method: "POST", URL: ep, IssuedAt: time.Now().Add(time.Hour)}, "DPoP proof is not active"},
	} {
		p, _ := key.Sign(tc.proof)
		req, _ := http.NewRequest("POST", ep, strings.NewReader(conf.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", p)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		res.Body.Close()
		if res.StatusCode != 400 || m["error"] != "invalid_request" || m["error_description"] != tc.desc {
			t.Errorf("%s: %d %v, want 400 invalid_request %q", tc.name, res.StatusCode, m, tc.desc)
		}
	}
}

// realProof signs a hand-made ES256 proof, for headers no honest signer
// makes.
func realProof(t *testing.T, priv *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestRealKeycloakDPoPBearer(t *testing.T) {
	k := newDPoPRealm(t, "dpop-bearer")
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := dpop.NewKey(priv)
	otherPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := dpop.NewKey(otherPriv)
	a := kcToken(t, k, key, url.Values{"grant_type": {"password"}, "client_id": {"api"}, "client_secret": {"api-secret"}, "username": {"alice"}, "password": {"alice"}})
	if a.status != 200 || a.body["token_type"] != "DPoP" {
		t.Fatalf("token: %d %v", a.status, a.body)
	}
	token := a.body["access_token"].(string)

	realm, err := cloakroom.NewRealm(k.issuer(), cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "api"})
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemoryStore()
	t.Cleanup(func() { store.Close() })
	replay := bearer.ReplayCacheFromStore(store)
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := bearer.FromContext(r.Context())
		if !ok {
			io.WriteString(w, "anonymous")
			return
		}
		io.WriteString(w, p.Username)
	})
	newAuth := func(opts ...bearer.Option) http.Handler {
		a, err := bearer.New(v, append([]bearer.Option{bearer.WithLogger(quiet), bearer.WithDPoP(bearer.DPoPConfig{Replay: replay})}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return a.Authenticate(whoami)
	}
	h1, h2 := newAuth(), newAuth()
	hIntro := newAuth(bearer.WithIntrospection(bearer.IntrospectionConfig{Client: cloakroom.ClientCredentials{ClientID: "api", ClientSecret: "api-secret"}}))
	const u = "http://api.example/orders/7"
	send := func(h http.Handler, scheme string, proofs ...string) (int, string, http.Header) {
		r := httptest.NewRequest("GET", u, nil)
		r.Header.Set("Authorization", scheme+" "+token)
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String(), w.Header()
	}
	sign := func(k *dpop.Key, p dpop.Proof) string {
		s, err := k.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func() dpop.Proof { return dpop.Proof{Method: "GET", URL: u, AccessToken: token} }
	header := map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": jwkOf(priv, false)}
	claims := func() map[string]any {
		sum := sha256.Sum256([]byte(token))
		return map[string]any{"htm": "GET", "htu": u, "iat": time.Now().Unix(), "jti": rand.Text(), "ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	}
	withH := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range header {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	unsigned := func(alg string, mac bool) string {
		hd, _ := json.Marshal(withH("alg", alg))
		cl, _ := json.Marshal(claims())
		in := base64.RawURLEncoding.EncodeToString(hd) + "." + base64.RawURLEncoding.EncodeToString(cl)
		if !mac {
			return in + "."
		}
		m := hmac.New(sha256.New, []byte("shared"))
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}

	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"local", h1}, {"introspection", hIntro}} {
		if code, body, _ := send(h.h, "DPoP", sign(key, good())); code != 200 || body != "alice" {
			t.Fatalf("%s: valid proof: %d %s", h.name, code, body)
		}
	}
	replayed := sign(key, good())
	if code, body, _ := send(h1, "DPoP", replayed); code != 200 {
		t.Fatalf("first use: %d %s", code, body)
	}
	hostile := []struct {
		name   string
		h      http.Handler
		scheme string
		proofs []string
		err    string
	}{
		{"wrong method", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "POST", URL: u, AccessToken: token})}, "invalid_dpop_proof"},
		{"wrong URL", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "GET", URL: "http://api.example/orders/8", AccessToken: token})}, "invalid_dpop_proof"},
		{"old iat", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "GET", URL: u, AccessToken: token, IssuedAt: time.Now().Add(-5 * time.Minute)})}, "invalid_dpop_proof"},
		{"future iat", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "GET", URL: u, AccessToken: token, IssuedAt: time.Now().Add(5 * time.Minute)})}, "invalid_dpop_proof"},
		{"replayed jti", h1, "DPoP", []string{replayed}, "invalid_dpop_proof"},
		{"replayed jti at another instance", h2, "DPoP", []string{replayed}, "invalid_dpop_proof"},
		{"wrong key", h1, "DPoP", []string{realProof(t, otherPriv, header, claims())}, "invalid_dpop_proof"},
		{"proof key is not cnf.jkt", h1, "DPoP", []string{sign(other, good())}, "invalid_token"},
		{"proof key is not cnf.jkt (introspection)", hIntro, "DPoP", []string{sign(other, good())}, "invalid_token"},
		{"missing ath", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "GET", URL: u})}, "invalid_dpop_proof"},
		{"wrong ath", h1, "DPoP", []string{sign(key, dpop.Proof{Method: "GET", URL: u, AccessToken: "another"})}, "invalid_dpop_proof"},
		{"HMAC proof", h1, "DPoP", []string{unsigned("HS256", true)}, "invalid_dpop_proof"},
		{"alg none", h1, "DPoP", []string{unsigned("none", false)}, "invalid_dpop_proof"},
		{"private key in jwk", h1, "DPoP", []string{realProof(t, priv, withH("jwk", jwkOf(priv, true)), claims())}, "invalid_dpop_proof"},
		{"missing typ", h1, "DPoP", []string{realProof(t, priv, withH("typ", nil), claims())}, "invalid_dpop_proof"},
		{"wrong typ", h1, "DPoP", []string{realProof(t, priv, withH("typ", "JWT"), claims())}, "invalid_dpop_proof"},
		{"two DPoP headers", h1, "DPoP", []string{sign(key, good()), sign(key, good())}, "invalid_dpop_proof"},
		{"DPoP-bound token sent as Bearer", h1, "Bearer", nil, "invalid_token"},
		{"DPoP-bound token sent as Bearer (introspection)", hIntro, "Bearer", nil, "invalid_token"},
	}
	for _, tc := range hostile {
		code, body, hdr := send(tc.h, tc.scheme, tc.proofs...)
		ch := hdr.Get("WWW-Authenticate")
		if code != 401 || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+tc.err+`"`) {
			t.Errorf("%s: %d %q %s, want 401 DPoP error=%q", tc.name, code, ch, body, tc.err)
		}
	}
}

func jwkOf(priv *ecdsa.PrivateKey, private bool) map[string]any {
	j := map[string]any{"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(priv.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(priv.Y.FillBytes(make([]byte, 32)))}
	if private {
		j["d"] = base64.RawURLEncoding.EncodeToString(priv.D.FillBytes(make([]byte, 32)))
	}
	return j
}
