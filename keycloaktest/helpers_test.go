package keycloaktest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func get(t testing.TB, u string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// postForm posts a form; basic, when not empty, is "id:secret" sent as
// client_secret_basic (form-urlencoded first, per RFC 6749 2.3.1).
func postForm(t testing.TB, u string, form url.Values, basic ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 1 && basic[0] != "" {
		id, secret, _ := strings.Cut(basic[0], ":")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return do(t, req)
}

func tokenURL(s *Server, realm string) string {
	return s.Issuer(realm) + "/protocol/openid-connect/token"
}

// passwordLogin runs the password grant for the demo client.
func passwordLogin(t testing.TB, s *Server, user, pass, scope string) map[string]any {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	if scope != "" {
		form.Set("scope", scope)
	}
	resp := postForm(t, tokenURL(s, "demo"), form, DemoClientID+":"+DemoClientSecret)
	if resp.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", resp.status, resp.body)
	}
	return resp.json(t)
}

// decoded is a token split into header and claims without verification.
type decoded struct {
	header map[string]any
	claims map[string]any
}

func decode(t testing.TB, tok string) decoded {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var d decoded
	for i, dst := range []*map[string]any{&d.header, &d.claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return d
}

// fetchJWKS gets and parses the realm's JWKS with go-jose.
func fetchJWKS(t testing.TB, s *Server, realm string) jose.JSONWebKeySet {
	t.Helper()
	resp := get(t, s.Issuer(realm)+"/protocol/openid-connect/certs")
	if resp.status != http.StatusOK {
		t.Fatalf("certs: %d %s", resp.status, resp.body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.body, &set); err != nil {
		t.Fatalf("certs: %v", err)
	}
	return set
}

// verifyWithJWKS checks a token's signature against the published JWKS, as
// an independent verifier would; it returns an error-free claims map or
// fails the test.
func verifyWithJWKS(t testing.TB, s *Server, realm, tok string) map[string]any {
	t.Helper()
	claims, err := tryVerifyWithJWKS(t, s, realm, tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return claims
}

func tryVerifyWithJWKS(t testing.TB, s *Server, realm, tok string) (map[string]any, error) {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256})
	if err != nil {
		return nil, err
	}
	set := fetchJWKS(t, s, realm)
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		return nil, errNoKey
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

type testErr string

func (e testErr) Error() string { return string(e) }

const errNoKey = testErr("kid not in JWKS")

// aud normalises aud to a slice.
func aud(c map[string]any) []string {
	switch v := c["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, a := range v {
			out[i], _ = a.(string)
		}
		return out
	}
	return nil
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
