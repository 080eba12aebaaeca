package keycloaktest

import (
	"errors"
	"net/url"
	"testing"
)

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	oldKid := r.ActiveKeyID()
	oldTok := passwordLogin(t, s, "alice", "alice", "")["access_token"].(string)

	newKid := r.RotateKey()
	if newKid == "" || newKid == oldKid || r.ActiveKeyID() != newKid {
		t.Fatalf("rotate: old %q new %q active %q", oldKid, newKid, r.ActiveKeyID())
	}
	set := fetchJWKS(t, s, "demo")
	if len(set.Key(oldKid)) != 1 || len(set.Key(newKid)) != 1 {
		t.Fatalf("JWKS after rotation lacks a key: %d keys", len(set.Keys))
	}
	newTok := passwordLogin(t, s, "alice", "alice", "")["access_token"].(string)
	if kid := decode(t, newTok).header["kid"]; kid != newKid {
		t.Errorf("new token kid %v", kid)
	}
	verifyWithJWKS(t, s, "demo", oldTok)
	verifyWithJWKS(t, s, "demo", newTok)

	if err := r.RemoveKey(oldKid); err != nil {
		t.Fatal(err)
	}
	if _, err := tryVerifyWithJWKS(t, s, "demo", oldTok); !errors.Is(err, errNoKey) {
		t.Errorf("old token after RemoveKey: %v", err)
	}
	if b := postForm(t, introspectURL(s), url.Values{"token": {oldTok}}, basic); string(b.body) != `{"active":false}` {
		t.Errorf("introspect old token: %s", b.body)
	}
	if err := r.RemoveKey(oldKid); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("second RemoveKey: %v", err)
	}

	// Removing the active key falls back to a new one on next use.
	if err := r.RemoveKey(newKid); err != nil {
		t.Fatal(err)
	}
	next := r.ActiveKeyID()
	if next == "" || next == newKid || next == oldKid {
		t.Errorf("active after removing all: %q", next)
	}
}

func TestKeysAreNeverShared(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 3 {
		s := NewServer(t, WithDemoRealm(), WithRealm(RealmConfig{Name: "other"}))
		for _, name := range []string{"demo", "other"} {
			r := s.Realm(name)
			for _, kid := range []string{r.ActiveKeyID(), r.RotateKey()} {
				if seen[kid] {
					t.Fatalf("kid %s reused", kid)
				}
				seen[kid] = true
			}
		}
	}
}

func TestJWKSShape(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{RS256, ES256, PS256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			cfg := DemoRealm(DemoClientSecret)
			cfg.DefaultSignatureAlgorithm = alg
			s := NewServer(t, WithRealm(cfg))
			r := s.Realm("demo")
			body := get(t, s.Issuer("demo")+"/protocol/openid-connect/certs").json(t)
			keys := body["keys"].([]any)
			var sig, enc map[string]any
			for _, k := range keys {
				km := k.(map[string]any)
				switch km["use"] {
				case "sig":
					sig = km
				case "enc":
					enc = km
				}
			}
			if sig == nil || enc == nil {
				t.Fatalf("keys %v", keys)
			}
			if sig["kid"] != r.ActiveKeyID() || sig["alg"] != alg {
				t.Errorf("sig key %v", sig)
			}
			common := []string{"kid", "kty", "alg", "use", "x5c", "x5t", "x5t#S256"}
			want := append(common, "n", "e")
			if alg == ES256 {
				want = append(common, "crv", "x", "y")
			}
			for _, f := range want {
				if _, ok := sig[f]; !ok {
					t.Errorf("sig key lacks %s", f)
				}
			}
			if enc["alg"] != "RSA-OAEP" || enc["kty"] != "RSA" {
				t.Errorf("enc key %v", enc)
			}
			tok := passwordLogin(t, s, "alice", "alice", "openid")
			for _, k := range []string{"access_token", "id_token"} {
				if d := decode(t, tok[k].(string)); d.header["alg"] != alg {
					t.Errorf("%s alg %v", k, d.header["alg"])
				}
				verifyWithJWKS(t, s, "demo", tok[k].(string))
			}
			if n := r.JWKSRequests(); n != int64(1+2) {
				t.Errorf("JWKSRequests = %d, want 3", n)
			}
		})
	}
}

func TestNewKeyErrors(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	if _, err := s.Realm("demo").NewKey("HS512"); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("NewKey(HS512) = %v", err)
	}
}
