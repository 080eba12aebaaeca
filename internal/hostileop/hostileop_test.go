package hostileop

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestCaseNames(t *testing.T) {
	t.Parallel()
	if len(caseNames) != int(numCases) {
		t.Fatalf("%d names for %d cases", len(caseNames), numCases)
	}
	if SlowUserinfo.String() != "SlowUserinfo" || Case(99).String() != "Case(99)" {
		t.Fatal("String")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHonestTokensVerify: the honest server's tokens verify with its
// published keys, and the signature cases break them the way they claim,
// on the tokens selected only.
func TestHonestTokensVerify(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, s.Issuer()+"/.well-known/openid-configuration", &meta)
	if meta.Issuer != s.Issuer() {
		t.Fatalf("issuer %q", meta.Issuer)
	}
	var set jose.JSONWebKeySet
	getJSON(t, meta.JWKSURI, &set)
	verify := func(tok string) error {
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			return err
		}
		keys := set.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 {
			return io.EOF
		}
		_, err = jws.Verify(keys[0])
		return err
	}
	tok, err := s.AccessToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(tok); err != nil {
		t.Fatalf("honest token: %v", err)
	}

	s.Misbehave(InvalidSignature, IDTokens)
	if tok, _ := s.AccessToken(); verify(tok) != nil {
		t.Fatal("a case for ID tokens changed an access token")
	}
	s.Misbehave(InvalidSignature, AccessTokens)
	if tok, _ := s.AccessToken(); verify(tok) == nil {
		t.Fatal("InvalidSignature: the token verifies")
	}
	s.Misbehave(AlgNone, 0)
	if tok, _ := s.AccessToken(); header(t, tok)["alg"] != "none" || !strings.HasSuffix(tok, ".") {
		t.Fatalf("AlgNone: %v", header(t, tok))
	}
	s.Misbehave(HS256PublicKeyDER, 0)
	if tok, _ := s.AccessToken(); header(t, tok)["alg"] != "HS256" || header(t, tok)["kid"] != s.KID() {
		t.Fatalf("HS256: %v", header(t, tok))
	}
	s.Misbehave(KIDAbsentManyKeys, 0)
	if tok, _ := s.AccessToken(); header(t, tok)["kid"] != nil {
		t.Fatalf("KIDAbsent: %v", header(t, tok))
	}
	getJSON(t, meta.JWKSURI, &set)
	if len(set.Keys) != 3 {
		t.Fatalf("KIDAbsentManyKeys publishes %d keys", len(set.Keys))
	}

	// Rotation: the new key signs, both are published until the old one
	// is retired; the signer cannot be retired.
	s.Misbehave(Honest, 0)
	old := s.KID()
	kid, err := s.RotateKey()
	if err != nil || kid == old || s.KID() != kid {
		t.Fatalf("RotateKey: %q %v", kid, err)
	}
	if s.RetireKey(kid) == nil {
		t.Fatal("the signing key was retired")
	}
	if err := s.RetireKey(old); err != nil {
		t.Fatal(err)
	}
	getJSON(t, meta.JWKSURI, &set)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != kid {
		t.Fatalf("after retiring: %v", set.Keys)
	}
}
