package cloakroom

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"
)

const lwIssuer = "https://kc.example/realms/demo"

// lwToken is a lightweight token's payload as Keycloak 26.7.3 issues it.
var lwToken = map[string]any{
	"exp": 2000000300, "iat": 2000000000, "jti": "onltro:0b7c", "iss": lwIssuer,
	"typ": "Bearer", "azp": "app", "sid": "s1", "scope": "email profile",
}

// lwAnswer is Keycloak 26.7.3's introspection answer for it.
var lwAnswer = map[string]any{
	"exp": 2000000300, "iat": 2000000000, "jti": "onltro:0b7c", "iss": lwIssuer,
	"aud": []any{"api", "account"}, "sub": "u-1", "typ": "Bearer", "azp": "app", "sid": "s1",
	"realm_access":    map[string]any{"roles": []any{"admin", "user"}},
	"resource_access": map[string]any{"api": map[string]any{"roles": []any{"editor"}}},
	"scope":           "email profile", "email": "alice@example.com", "preferred_username": "alice",
	"client_id": "app", "username": "alice", "token_type": "Bearer", "active": true,
}

func lwVerifier(t testing.TB) *Verifier {
	t.Helper()
	r, err := NewRealm(lwIssuer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.NewVerifier(VerifierConfig{ClientID: "api"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func lwClaims(t testing.TB, m map[string]any) *Claims {
	t.Helper()
	b, _ := json.Marshal(m)
	c, err := ParseClaims(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func with(m map[string]any, k string, v any) map[string]any {
	m = maps.Clone(m)
	if v == nil {
		delete(m, k)
	} else {
		m[k] = v
	}
	return m
}

// TestLightweightMerge: the answer must be about the token (its sub, iss,
// exp, iat, jti, azp, typ, sid and cnf), and its aud accepted; then its
// claims are the token's.
func TestLightweightMerge(t *testing.T) {
	t.Parallel()
	v := lwVerifier(t)
	tests := []struct {
		name    string
		token   map[string]any
		answer  map[string]any
		body    string // instead of answer
		wantErr error
	}{
		{"complete", lwToken, lwAnswer, "", nil},
		{"token with the same sub", with(lwToken, "sub", "u-1"), lwAnswer, "", nil},
		{"token with another sub", with(lwToken, "sub", "u-2"), lwAnswer, "", ErrInvalidClaim},
		{"answer without sub", lwToken, with(lwAnswer, "sub", nil), "", ErrMissingClaim},
		{"another issuer", lwToken, with(lwAnswer, "iss", "https://evil.example/realms/demo"), "", ErrInvalidClaim},
		{"another exp", lwToken, with(lwAnswer, "exp", 2000000900), "", ErrInvalidClaim},
		{"another iat", lwToken, with(lwAnswer, "iat", 1999999000), "", ErrInvalidClaim},
		{"another jti", lwToken, with(lwAnswer, "jti", "onltro:ffff"), "", ErrInvalidClaim},
		{"another azp", lwToken, with(lwAnswer, "azp", "other"), "", ErrInvalidClaim},
		{"another typ", lwToken, with(lwAnswer, "typ", "DPoP"), "", ErrInvalidClaim},
		{"another session", lwToken, with(lwAnswer, "sid", "s2"), "", ErrInvalidClaim},
		{"a DPoP binding the token lacks", lwToken, with(lwAnswer, "cnf", map[string]any{"jkt": "abc"}), "", ErrInvalidClaim},
		{"audience not accepted", lwToken, with(lwAnswer, "aud", "account"), "", ErrAudience},
		{"not JSON", lwToken, nil, "{", ErrUnavailable},
		{"duplicate member", lwToken, nil, `{"sub":"u-1","sub":"u-2"}`, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tt.body)
			if tt.answer != nil {
				body, _ = json.Marshal(tt.answer)
			}
			m, err := v.merge(lwClaims(t, tt.token), &Introspection{Active: true, body: body})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if m.Subject() != "u-1" || !m.HasRealmRole("admin") || !m.HasClientRole("api", "editor") || m.Email() != "alice@example.com" || m.RolesClaim() != DefaultRolesClaim {
				t.Fatalf("merged claims %s", m.RawJSON())
			}
		})
	}
}

// FuzzLightweightMerge: any introspection answer is refused or gives
// claims bound to the token; nothing panics.
func FuzzLightweightMerge(f *testing.F) {
	good, _ := json.Marshal(lwAnswer)
	f.Add(good)
	f.Add([]byte(`{"active":true}`))
	f.Add([]byte(`{"sub":"u-1","iss":"https://kc.example/realms/demo","exp":2000000300.5}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"realm_access":{"roles":"admin"}}`))
	v := lwVerifier(f)
	tok := lwClaims(f, lwToken)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := v.merge(tok, &Introspection{Active: true, body: body})
		if err != nil {
			return
		}
		if m.Subject() == "" || m.Issuer() != tok.Issuer() || !m.Expiry().Equal(tok.Expiry()) || m.ID() != tok.ID() || !m.HasAudience("api") {
			t.Fatalf("accepted an answer about another token: %s", body)
		}
		_ = m.RealmRoles()
	})
}
