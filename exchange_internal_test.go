package cloakroom

import (
	"encoding/base64"
	"testing"
	"time"
)

// FuzzUnverifiedClaims: the subject token is untrusted input; reading its
// exp and azp (for the cache bound and error messages) never panics and
// never reports a claim a malformed token does not carry. The seed corpus
// runs with the normal tests.
func FuzzUnverifiedClaims(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	hdr := enc([]byte(`{"alg":"RS256","kid":"k"}`))
	for _, payload := range []string{
		`{"exp":1790000000,"azp":"frontend"}`,
		`{"exp":"soon","azp":7}`,
		`{"exp":1e400}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add(hdr + "." + enc([]byte(payload)) + "." + enc([]byte("sig")))
	}
	f.Add("a.b.c")
	f.Add("")
	f.Add("....")
	f.Add(hdr + ".!!!.x")
	f.Fuzz(func(t *testing.T, token string) {
		exp, ok := unverifiedExpiry(token)
		if !ok && !exp.IsZero() {
			t.Fatalf("no exp but %v", exp)
		}
		_ = unverifiedClaim(token, "azp")
	})
}

func TestUnverifiedClaims(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"exp":1790000000,"azp":"frontend"}`)) + "." + enc([]byte("sig"))
	tests := []struct {
		name  string
		token string
		exp   time.Time
		azp   string
	}{
		{"jwt", tok, time.Unix(1790000000, 0), "frontend"},
		{"garbage", "a.b.c", time.Time{}, ""},
		{"none alg", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"exp":1,"azp":"x"}`)) + ".", time.Time{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exp, _ := unverifiedExpiry(tt.token)
			if !exp.Equal(tt.exp) || unverifiedClaim(tt.token, "azp") != tt.azp {
				t.Errorf("exp %v azp %q", exp, unverifiedClaim(tt.token, "azp"))
			}
		})
	}
}

func TestExchangeKey(t *testing.T) {
	t.Parallel()
	base := exchangeKey("token-a", "orders", normalizeScopes([]string{"b a", "a"}))
	for name, other := range map[string]string{
		"other token":    exchangeKey("token-b", "orders", []string{"a", "b"}),
		"other audience": exchangeKey("token-a", "billing", []string{"a", "b"}),
		"other scopes":   exchangeKey("token-a", "orders", []string{"a"}),
		"shifted":        exchangeKey("token-a", "orders a", []string{"b"}),
		"nul":            exchangeKey("token-a", "orders\x00a", []string{"b"}),
	} {
		if other == base {
			t.Errorf("%s: same key", name)
		}
	}
	if exchangeKey("token-a", "orders", []string{"a", "b"}) != base {
		t.Error("scope order or duplicates change the key")
	}
}
