package bearer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestNormalizeHTU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b string }{
		{"HTTPS://Example.COM:443/a/b", "https://example.com/a/b"},
		{"http://example.com:80", "http://example.com/"},
		{"http://example.com/a/./b/../c", "http://example.com/a/c"},
		{"http://example.com/%7euser/%2f", "http://example.com/~user/%2F"},
		{"http://example.com/a?q=1#f", "http://example.com/a"},
		{"http://[::1]:80/x", "http://[::1]/x"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
	} {
		got, ok := normalizeHTU(tc.a)
		if !ok || got != tc.b {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", tc.a, got, ok, tc.b)
		}
	}
	for _, bad := range []string{"", "/relative", "ftp://example.com/", "mailto:x@example.com", "http://user@example.com/", "http://%zz/"} {
		if got, ok := normalizeHTU(bad); ok {
			t.Errorf("normalizeHTU(%q) = %q, want refusal", bad, got)
		}
	}
}

// FuzzParseProof: the proof parser never panics, and whatever it accepts
// has a verified signature from its own public jwk and every claim a proof
// needs.
func FuzzParseProof(f *testing.F) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	for _, payload := range []string{
		`{"htm":"GET","htu":"https://api.example/x","iat":1700000000,"jti":"a","ath":"b"}`,
		`{"htm":"GET","htu":"https://api.example/x","iat":"1700000000","jti":"a"}`,
		`{"htm":"GET","htm":"POST","htu":"x","iat":1,"jti":"a"}`,
		`{}`, `[]`, `null`,
	} {
		jws, _ := signer.Sign([]byte(payload))
		s, _ := jws.CompactSerialize()
		f.Add(s)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6ImRwb3Arand0In0.e30.AAAA")
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := parseProof(proof, algs)
		if err != nil {
			if p != nil {
				t.Fatal("proof and error")
			}
			return
		}
		if p.HTM == "" || p.HTU == "" || p.IAT == nil || p.JTI == "" || p.jkt == "" {
			t.Fatalf("accepted an incomplete proof: %+v", p)
		}
		_ = time.Unix(*p.IAT, 0)
	})
}
