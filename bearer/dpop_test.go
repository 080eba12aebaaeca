package bearer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/dpop"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// dpopToken gets a DPoP-bound access token for alice from keycloaktest's
// token endpoint, bound to a new key, with the client helper.
func dpopToken(t *testing.T, e *env) (token string, key *ecdsa.PrivateKey, dk *dpop.Key) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dk, err = dpop.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &dpop.Transport{Key: dk}}
	res, err := hc.PostForm(e.kc.Issuer()+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {keycloaktest.DemoClientID}, "client_secret": {keycloaktest.DemoClientSecret},
		"username": {"alice"}, "password": {"alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 {
		t.Fatalf("token: status %d, %v", res.StatusCode, err)
	}
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	return tok.AccessToken, priv, dk
}

// rawProof signs a hand-made proof with ES256: the hostile tests need
// headers no well-behaved signer makes.
func rawProof(t *testing.T, priv *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func publicJWK(priv *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(priv.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(priv.Y.FillBytes(make([]byte, 32)))}
}

func ath(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func jktOf(t *testing.T, priv *ecdsa.PrivateKey) string {
	k := jose.JSONWebKey{Key: &priv.PublicKey}
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

const apiURL = "http://api.example/api/things"

func TestDPoPHostile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	token, priv, dk := dpopToken(t, e)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := dpop.NewKey(other)
	auth := e.auth(t)
	h := auth.Authenticate(whoami)

	header := func() map[string]any {
		return map[string]any{"alg": "ES256", "typ": "dpop+jwt", "jwk": publicJWK(priv)}
	}
	claims := func() map[string]any {
		return map[string]any{"htm": "GET", "htu": apiURL, "iat": time.Now().Unix(), "jti": rand.Text(), "ath": ath(token)}
	}
	with := func(m map[string]any, k string, v any) map[string]any {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	sign := func(p dpop.Proof) string {
		s, err := dk.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hmacProof := func() string {
		hdr, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "dpop+jwt", "jwk": publicJWK(priv)})
		cl, _ := json.Marshal(claims())
		in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(cl)
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	noneProof := func() string {
		hdr, _ := json.Marshal(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": publicJWK(priv)})
		cl, _ := json.Marshal(claims())
		return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(cl) + "."
	}
	privateJWK := func() map[string]any {
		j := publicJWK(priv)
		j["d"] = base64.RawURLEncoding.EncodeToString(priv.D.FillBytes(make([]byte, 32)))
		return j
	}
	replayed := sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})

	tests := []struct {
		name    string
		scheme  string
		proofs  []string
		status  int
		errAttr string // WWW-Authenticate error
	}{
		{"valid", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})}, 200, ""},
		{"valid, URL with query and other case", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: "HTTP://API.example:80/api/%74hings?x=1", AccessToken: token})}, 200, ""},
		{"wrong method", "DPoP", []string{sign(dpop.Proof{Method: "POST", URL: apiURL, AccessToken: token})}, 401, "invalid_dpop_proof"},
		{"wrong URL", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: "http://api.example/api/other", AccessToken: token})}, 401, "invalid_dpop_proof"},
		{"wrong host", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: "http://evil.example/api/things", AccessToken: token})}, 401, "invalid_dpop_proof"},
		{"wrong scheme", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: "https://api.example/api/things", AccessToken: token})}, 401, "invalid_dpop_proof"},
		{"old iat", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token, IssuedAt: time.Now().Add(-2 * time.Minute)})}, 401, "invalid_dpop_proof"},
		{"future iat", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token, IssuedAt: time.Now().Add(2 * time.Minute)})}, 401, "invalid_dpop_proof"},
		{"wrong key (signed by another key, jwk of the bound key)", "DPoP", []string{rawProof(t, other, header(), claims())}, 401, "invalid_dpop_proof"},
		{"proof key is not cnf.jkt", "DPoP", []string{func() string {
			s, _ := otherKey.Sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})
			return s
		}()}, 401, "invalid_token"},
		{"missing ath", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL})}, 401, "invalid_dpop_proof"},
		{"wrong ath", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token + "x"})}, 401, "invalid_dpop_proof"},
		{"HMAC proof", "DPoP", []string{hmacProof()}, 401, "invalid_dpop_proof"},
		{"alg none", "DPoP", []string{noneProof()}, 401, "invalid_dpop_proof"},
		{"private key in jwk", "DPoP", []string{rawProof(t, priv, with(header(), "jwk", privateJWK()), claims())}, 401, "invalid_dpop_proof"},
		{"no jwk", "DPoP", []string{rawProof(t, priv, with(header(), "jwk", nil), claims())}, 401, "invalid_dpop_proof"},
		{"missing typ", "DPoP", []string{rawProof(t, priv, with(header(), "typ", nil), claims())}, 401, "invalid_dpop_proof"},
		{"wrong typ", "DPoP", []string{rawProof(t, priv, with(header(), "typ", "JWT"), claims())}, 401, "invalid_dpop_proof"},
		{"missing jti", "DPoP", []string{rawProof(t, priv, header(), with(claims(), "jti", nil))}, 401, "invalid_dpop_proof"},
		{"missing iat", "DPoP", []string{rawProof(t, priv, header(), with(claims(), "iat", nil))}, 401, "invalid_dpop_proof"},
		{"iat as string", "DPoP", []string{rawProof(t, priv, header(), with(claims(), "iat", "1"))}, 401, "invalid_dpop_proof"},
		{"two DPoP headers", "DPoP", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token}), sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})}, 401, "invalid_dpop_proof"},
		{"no DPoP header", "DPoP", nil, 401, "invalid_dpop_proof"},
		{"garbage proof", "DPoP", []string{"a.b.c"}, 401, "invalid_dpop_proof"},
		{"DPoP-bound token sent as Bearer", "Bearer", nil, 401, "invalid_token"},
		{"DPoP-bound token sent as Bearer with a proof", "Bearer", []string{sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})}, 401, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := do(t, h, func(r *http.Request) {
				r.Host = "api.example"
				r.Header.Set("Authorization", tc.scheme+" "+token)
				for _, p := range tc.proofs {
					r.Header.Add("DPoP", p)
				}
			})
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s %s", res.status, tc.status, res.code, res.detail)
			}
			if tc.status == 200 {
				if res.body == "anonymous" {
					t.Fatal("anonymous")
				}
				return
			}
			ch := res.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+tc.errAttr+`"`) || !strings.Contains(ch, `algs="ES256`) {
				t.Fatalf("WWW-Authenticate %q, want DPoP error=%q with algs", ch, tc.errAttr)
			}
			if strings.Contains(res.detail, token) {
				t.Fatal("token in the error detail")
			}
		})
	}
	t.Run("replayed jti", func(t *testing.T) {
		t.Parallel()
		send := func() response {
			return do(t, h, func(r *http.Request) {
				r.Host = "api.example"
				r.Header.Set("Authorization", "DPoP "+token)
				r.Header.Set("DPoP", replayed)
			})
		}
		if res := send(); res.status != 200 {
			t.Fatalf("first use: %d %s", res.status, res.detail)
		}
		if res := send(); res.status != 401 || !strings.Contains(res.detail, "replayed") {
			t.Fatalf("replay: %d %s", res.status, res.detail)
		}
	})
	_ = jktOf(t, priv)
}

// Two instances sharing a session store (here the memory store; the
// gateway uses its Redis, PostgreSQL or SQLite store) refuse a proof used
// at the other.
func TestDPoPReplayAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	token, _, dk := dpopToken(t, e)
	store := session.NewMemoryStore()
	t.Cleanup(func() { store.Close() })
	shared := bearer.ReplayCacheFromStore(store)
	a1 := e.auth(t, bearer.WithDPoP(bearer.DPoPConfig{Replay: shared})).Authenticate(whoami)
	a2 := e.auth(t, bearer.WithDPoP(bearer.DPoPConfig{Replay: shared})).Authenticate(whoami)
	proof, _ := dk.Sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})
	set := func(r *http.Request) {
		r.Host = "api.example"
		r.Header.Set("Authorization", "DPoP "+token)
		r.Header.Set("DPoP", proof)
	}
	if res := do(t, a1, set); res.status != 200 {
		t.Fatalf("instance 1: %d %s", res.status, res.detail)
	}
	if res := do(t, a2, set); res.status != 401 || !strings.Contains(res.detail, "replayed") {
		t.Fatalf("instance 2 accepted a replay: %d %s", res.status, res.detail)
	}
}

type downCache struct{}

func (downCache) Seen(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("connection refused")
}

func TestDPoPModesAndOutages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	token, _, dk := dpopToken(t, e)
	bearerToken := e.kc.MustToken(t, "alice", keycloaktest.DemoClientID)
	proof := func() string {
		p, _ := dk.Sign(dpop.Proof{Method: "GET", URL: apiURL, AccessToken: token})
		return p
	}
	type req struct {
		scheme, token string
		proof         bool
	}
	dpopReq, bearerReq := req{"DPoP", token, true}, req{"Bearer", bearerToken, false}
	tests := []struct {
		name   string
		cfg    bearer.DPoPConfig
		req    req
		status int
		chall  string
	}{
		{"accept: DPoP", bearer.DPoPConfig{}, dpopReq, 200, ""},
		{"accept: bearer", bearer.DPoPConfig{}, bearerReq, 200, ""},
		{"accept: unbound token with the DPoP scheme", bearer.DPoPConfig{}, req{"DPoP", bearerToken, true}, 401, "DPoP "},
		{"off: DPoP refused", bearer.DPoPConfig{Mode: bearer.DPoPOff}, dpopReq, 401, "Bearer"},
		{"off: bound token as bearer refused", bearer.DPoPConfig{Mode: bearer.DPoPOff}, req{"Bearer", token, false}, 401, "Bearer"},
		{"off: bearer", bearer.DPoPConfig{Mode: bearer.DPoPOff}, bearerReq, 200, ""},
		{"require: DPoP", bearer.DPoPConfig{Mode: bearer.DPoPRequire}, dpopReq, 200, ""},
		{"require: bearer refused", bearer.DPoPConfig{Mode: bearer.DPoPRequire}, bearerReq, 401, "DPoP "},
		{"replay store down: 503", bearer.DPoPConfig{Replay: downCache{}}, dpopReq, 503, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := e.auth(t, bearer.WithDPoP(tc.cfg)).Authenticate(whoami)
			res := do(t, h, func(r *http.Request) {
				r.Host = "api.example"
				r.Header.Set("Authorization", tc.req.scheme+" "+tc.req.token)
				if tc.req.proof {
					r.Header.Set("DPoP", proof())
				}
			})
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.detail)
			}
			if tc.chall != "" && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), tc.chall) {
				t.Fatalf("WWW-Authenticate %q, want %q...", res.header.Get("WWW-Authenticate"), tc.chall)
			}
			if tc.status == 503 && res.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
}

// The client helper against an API with server nonces and an external URL
// behind a proxy: the first request is answered use_dpop_nonce, the
// Transport retries with the nonce.
func TestDPoPTransportNonceAndExternalURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	token, _, dk := dpopToken(t, e)
	auth := e.auth(t, bearer.WithDPoP(bearer.DPoPConfig{NonceKey: bearer.GenerateDPoPNonceKey(), ExternalURL: "https://public.example/prefix"}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// what a proxy in front of the API would send on: the path
		// without the prefix.
		auth.Authenticate(whoami).ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	rewrite := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		// the client calls the public URL; the "proxy" forwards to api.
		u, _ := url.Parse(api.URL)
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host, r2.Host = u.Scheme, u.Host, u.Host
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/prefix")
		return http.DefaultTransport.RoundTrip(r2)
	})
	hc := &http.Client{Transport: &dpop.Transport{Key: dk, Base: rewrite}}
	req, _ := http.NewRequest("GET", "https://public.example/prefix/api/things?x=1", nil)
	req.Header.Set("Authorization", "DPoP "+token)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) == "anonymous" {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	// Without the nonce: use_dpop_nonce with a DPoP-Nonce header.
	p, _ := dk.Sign(dpop.Proof{Method: "GET", URL: "https://public.example/prefix/api/things", AccessToken: token})
	r := httptest.NewRequest("GET", "/api/things", nil)
	r.Header.Set("Authorization", "DPoP "+token)
	r.Header.Set("DPoP", p)
	w := httptest.NewRecorder()
	auth.Authenticate(whoami).ServeHTTP(w, r)
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("no nonce: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDPoPConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, cfg := range []bearer.DPoPConfig{
		{Algorithms: []string{"HS256"}},
		{Algorithms: []string{"none"}},
		{Algorithms: []string{"XX1"}},
		{Window: -time.Second},
		{Window: time.Hour},
		{ExternalURL: "api.example.com"},
		{ExternalURL: "https://api.example.com/?q=1"},
		{NonceKey: []byte("short")},
		{Mode: bearer.DPoPMode(9)},
	} {
		if _, err := bearer.New(e.v, bearer.WithDPoP(cfg)); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	for s, want := range map[string]bearer.DPoPMode{"": bearer.DPoPAccept, "accept": bearer.DPoPAccept, "OFF": bearer.DPoPOff, "require": bearer.DPoPRequire} {
		if m, err := bearer.ParseDPoPMode(s); err != nil || m != want {
			t.Errorf("ParseDPoPMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := bearer.ParseDPoPMode("maybe"); err == nil {
		t.Error("ParseDPoPMode(maybe): no error")
	}
}
