package cloakroom

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

var (
	testKeysOnce sync.Once
	testRSA      *rsa.PrivateKey
	testSmallRSA *rsa.PrivateKey
	testEC       *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	testKeysOnce.Do(func() {
		testRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
		testSmallRSA, _ = rsa.GenerateKey(rand.Reader, 1024)
		testEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
}

func jwkJSON(t testing.TB, k jose.JSONWebKey) string {
	b, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	testKeys(t)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsaSig := jwkJSON(t, jose.JSONWebKey{Key: &testRSA.PublicKey, KeyID: "rsa", Algorithm: "RS256", Use: "sig"})
	rsaEnc := jwkJSON(t, jose.JSONWebKey{Key: &testRSA.PublicKey, KeyID: "enc", Algorithm: "RSA-OAEP", Use: "enc"})
	ec := jwkJSON(t, jose.JSONWebKey{Key: &testEC.PublicKey, KeyID: "ec", Algorithm: "ES256"})
	ed := jwkJSON(t, jose.JSONWebKey{Key: edPub, KeyID: "ed"})
	noKid := jwkJSON(t, jose.JSONWebKey{Key: &testRSA.PublicKey, Use: "sig"})
	small := jwkJSON(t, jose.JSONWebKey{Key: &testSmallRSA.PublicKey, KeyID: "small"})
	private := jwkJSON(t, jose.JSONWebKey{Key: testRSA, KeyID: "private"})
	hmac := jwkJSON(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"})

	tests := []struct {
		name        string
		jwks        string
		wantKids    []string
		wantSkipped int
		wantErr     string
	}{
		{"keycloak shape", `{"keys":[` + rsaSig + `,` + rsaEnc + `]}`, []string{"rsa"}, 0, ""},
		{"several types", `{"keys":[` + rsaSig + `,` + ec + `,` + ed + `]}`, []string{"ec", "ed", "rsa"}, 0, ""},
		{"broken key skipped", `{"keys":[` + rsaSig + `,{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}]}`, []string{"rsa"}, 1, ""},
		{"no kid skipped", `{"keys":[` + rsaSig + `,` + noKid + `]}`, []string{"rsa"}, 1, ""},
		{"small RSA skipped", `{"keys":[` + rsaSig + `,` + small + `]}`, []string{"rsa"}, 1, ""},
		{"private key skipped", `{"keys":[` + rsaSig + `,` + private + `]}`, []string{"rsa"}, 1, ""},
		{"symmetric key skipped", `{"keys":[` + rsaSig + `,` + hmac + `]}`, []string{"rsa"}, 1, ""},
		{"duplicate kid dropped", `{"keys":[` + rsaSig + `,` + strings.Replace(ec, `"kid":"ec"`, `"kid":"rsa"`, 1) + `]}`, nil, 1, "no usable signing key"},
		{"only enc keys", `{"keys":[` + rsaEnc + `]}`, nil, 0, "no usable signing key"},
		{"empty keys", `{"keys":[]}`, nil, 0, "no usable signing key"},
		{"no keys member", `{"other":1}`, nil, 0, `no "keys" member`},
		{"keys not array", `{"keys":{}}`, nil, 0, "keys array"},
		{"not JSON", `<html>`, nil, 0, "not a JSON object"},
		{"null", `null`, nil, 0, `no "keys" member`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, skipped, err := parseJWKS([]byte(tt.jwks))
			kids := slices.Sorted(maps.Keys(keys))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(kids, tt.wantKids) {
				t.Fatalf("kids = %q, want %q", kids, tt.wantKids)
			}
			if len(skipped) != tt.wantSkipped {
				t.Fatalf("skipped = %q, want %d entries", skipped, tt.wantSkipped)
			}
		})
	}
}

func TestKeyFitsAlgorithm(t *testing.T) {
	t.Parallel()
	testKeys(t)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		key  publicKey
		alg  string
		ok   bool
	}{
		{"RSA RS256", publicKey{kid: "k", key: &testRSA.PublicKey}, "RS256", true},
		{"RSA PS256", publicKey{kid: "k", key: &testRSA.PublicKey}, "PS256", true},
		{"RSA ES256", publicKey{kid: "k", key: &testRSA.PublicKey}, "ES256", false},
		{"RSA key pinned to RS256, token PS256", publicKey{kid: "k", alg: "RS256", key: &testRSA.PublicKey}, "PS256", false},
		{"EC P-256 ES256", publicKey{kid: "k", key: &testEC.PublicKey}, "ES256", true},
		{"EC P-256 ES384", publicKey{kid: "k", key: &testEC.PublicKey}, "ES384", false},
		{"EC P-384 ES384", publicKey{kid: "k", key: &p384.PublicKey}, "ES384", true},
		{"EC RS256", publicKey{kid: "k", key: &testEC.PublicKey}, "RS256", false},
		{"Ed25519 EdDSA", publicKey{kid: "k", key: edPub}, "EdDSA", true},
		{"Ed25519 RS256", publicKey{kid: "k", key: edPub}, "RS256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.key.fits(tt.alg)
			if (err == nil) != tt.ok {
				t.Fatalf("fits(%s) = %v, want ok=%v", tt.alg, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrAlgorithm) {
				t.Fatalf("err = %v, want ErrAlgorithm", err)
			}
		})
	}
}

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser: it must never
// panic, and every key it accepts must be a public signing key with a kid.
func FuzzParseJWKS(f *testing.F) {
	testKeys(f)
	f.Add([]byte(`{"keys":[` + jwkJSON(f, jose.JSONWebKey{Key: &testRSA.PublicKey, KeyID: "rsa", Algorithm: "RS256", Use: "sig"}) + `]}`))
	f.Add([]byte(`{"keys":[` + jwkJSON(f, jose.JSONWebKey{Key: &testEC.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"}) + `]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"x","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"x","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","kid":"x","crv":"Ed25519","x":"AA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[null,1,"a",[],{}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseJWKS(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error but no keys")
		}
		for kid, k := range keys {
			if kid == "" || k.kid != kid {
				t.Fatalf("bad kid %q", kid)
			}
			switch k.key.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("accepted key of type %T", k.key)
			}
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			t.Fatal("accepted invalid JSON")
		}
	})
}
