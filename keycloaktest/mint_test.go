package keycloaktest

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestTokenOptions(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		opts     []TokenOption
		verifies bool // signature checks against the published JWKS
		check    func(t *testing.T, d decoded)
	}{
		{"default access", nil, true, func(t *testing.T, d decoded) {
			if d.claims["typ"] != "Bearer" || d.header["typ"] != "JWT" || d.header["kid"] != r.ActiveKeyID() {
				t.Errorf("%v %v", d.header, d.claims)
			}
		}},
		{"id token", []TokenOption{WithKind(IDToken), WithNonce("n1")}, true, func(t *testing.T, d decoded) {
			if d.claims["typ"] != "ID" || d.claims["aud"] != "cloakroom" || d.claims["nonce"] != "n1" {
				t.Errorf("%v", d.claims)
			}
		}},
		{"logout token", []TokenOption{WithKind(LogoutToken)}, true, func(t *testing.T, d decoded) {
			ev, _ := d.claims["events"].(map[string]any)
			if _, ok := ev["http://schemas.openid.net/event/backchannel-logout"]; !ok {
				t.Errorf("events %v", d.claims["events"])
			}
			if d.header["typ"] != "logout+jwt" || d.claims["aud"] != "cloakroom" || d.claims["sid"] == nil || d.claims["nonce"] != nil {
				t.Errorf("%v %v", d.header, d.claims)
			}
			if exp, iat := d.claims["exp"].(float64), d.claims["iat"].(float64); exp-iat != 120 {
				t.Errorf("logout token lifetime %v", exp-iat)
			}
		}},
		{"refresh token", []TokenOption{WithKind(RefreshToken)}, false, func(t *testing.T, d decoded) {
			if d.header["alg"] != "HS512" || d.claims["typ"] != "Refresh" {
				t.Errorf("%v %v", d.header, d.claims)
			}
		}},
		{"expired", []TokenOption{WithExpired()}, true, func(t *testing.T, d decoded) {
			exp, iat := d.claims["exp"].(float64), d.claims["iat"].(float64)
			if int64(exp) >= time.Now().Unix() || exp-iat != 300 {
				t.Errorf("exp %v iat %v", exp, iat)
			}
		}},
		{"lifetime", []TokenOption{WithLifetime(time.Hour)}, true, func(t *testing.T, d decoded) {
			if d.claims["exp"].(float64)-d.claims["iat"].(float64) != 3600 {
				t.Errorf("%v", d.claims)
			}
		}},
		{"issued at and not before", []TokenOption{WithIssuedAt(at), WithNotBefore(at.Add(time.Minute))}, true, func(t *testing.T, d decoded) {
			if d.claims["iat"] != float64(at.Unix()) || d.claims["exp"] != float64(at.Unix()+300) || d.claims["nbf"] != float64(at.Unix()+60) {
				t.Errorf("%v", d.claims)
			}
		}},
		{"other audience", []TokenOption{WithAudience("other-api")}, true, func(t *testing.T, d decoded) {
			if d.claims["aud"] != "other-api" {
				t.Errorf("aud %v", d.claims["aud"])
			}
		}},
		{"several audiences", []TokenOption{WithAudience("a", "b")}, true, func(t *testing.T, d decoded) {
			if !slices.Equal(aud(d.claims), []string{"a", "b"}) {
				t.Errorf("aud %v", d.claims["aud"])
			}
		}},
		{"no audience", []TokenOption{WithoutAudience()}, true, func(t *testing.T, d decoded) {
			if _, ok := d.claims["aud"]; ok {
				t.Errorf("aud %v", d.claims["aud"])
			}
		}},
		{"other issuer", []TokenOption{WithIssuer("https://evil.example/realms/demo")}, true, func(t *testing.T, d decoded) {
			if d.claims["iss"] != "https://evil.example/realms/demo" {
				t.Errorf("iss %v", d.claims["iss"])
			}
		}},
		{"azp", []TokenOption{WithAZP("someone-else")}, true, func(t *testing.T, d decoded) {
			if d.claims["azp"] != "someone-else" {
				t.Errorf("azp %v", d.claims["azp"])
			}
		}},
		{"extra and removed claims", []TokenOption{WithClaim("typ", "ID"), WithClaim("x", 1), WithoutClaim("sub", "sid")}, true, func(t *testing.T, d decoded) {
			if d.claims["typ"] != "ID" || d.claims["x"] != 1.0 || d.claims["sub"] != nil || d.claims["sid"] != nil {
				t.Errorf("%v", d.claims)
			}
		}},
		{"header override", []TokenOption{WithHeader("typ", "at+jwt"), WithHeader("cty", "x")}, true, func(t *testing.T, d decoded) {
			if d.header["typ"] != "at+jwt" || d.header["cty"] != "x" {
				t.Errorf("%v", d.header)
			}
		}},
		{"header removed", []TokenOption{WithHeader("typ", nil)}, true, func(t *testing.T, d decoded) {
			if _, ok := d.header["typ"]; ok {
				t.Errorf("%v", d.header)
			}
		}},
		{"unsigned", []TokenOption{WithUnsigned()}, false, func(t *testing.T, d decoded) {
			if d.header["alg"] != "none" || d.header["kid"] != nil {
				t.Errorf("%v", d.header)
			}
		}},
		{"unknown key", []TokenOption{WithUnknownKey()}, false, func(t *testing.T, d decoded) {
			if kid, _ := d.header["kid"].(string); kid == "" || kid == r.ActiveKeyID() || d.header["alg"] != "RS256" {
				t.Errorf("%v", d.header)
			}
		}},
		{"unknown kid", []TokenOption{WithKeyID("not-there")}, false, func(t *testing.T, d decoded) {
			if d.header["kid"] != "not-there" {
				t.Errorf("%v", d.header)
			}
		}},
		{"key confusion", []TokenOption{WithKeyConfusion(DER)}, false, func(t *testing.T, d decoded) {
			if d.header["alg"] != "HS256" || d.header["kid"] != r.ActiveKeyID() {
				t.Errorf("%v", d.header)
			}
		}},
		{"sid", []TokenOption{WithSID("my-session")}, true, func(t *testing.T, d decoded) {
			if d.claims["sid"] != "my-session" {
				t.Errorf("%v", d.claims)
			}
		}},
		{"scope", []TokenOption{WithScope("openid phone")}, true, func(t *testing.T, d decoded) {
			if d.claims["scope"] != "openid email phone profile" {
				t.Errorf("%v", d.claims["scope"])
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := r.Token("alice", DemoClientID, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, decode(t, tok))
			_, err = tryVerifyWithJWKS(t, s, "demo", tok)
			if (err == nil) != tc.verifies {
				t.Errorf("verifies against JWKS = %v, want %v", err, tc.verifies)
			}
		})
	}
}

func TestUnsignedTokenShape(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	tok := s.Realm("demo").MustToken(t, "alice", DemoClientID, WithUnsigned())
	if !strings.HasSuffix(tok, ".") || strings.Count(tok, ".") != 2 {
		t.Errorf("unsigned token %q", tok)
	}
	if _, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256}); err == nil {
		t.Error("go-jose accepted alg none")
	}
}

func TestKeyConfusionTokenIsHMACOverPublicKey(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	set := fetchJWKS(t, s, "demo")
	pub := set.Key(r.ActiveKeyID())[0].Key
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[PublicKeyFormat][]byte{
		DER: der,
		PEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}
	for f, secret := range secrets {
		tok := r.MustToken(t, "alice", DemoClientID, WithKeyConfusion(f))
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.HS256})
		if err != nil {
			t.Fatal(err)
		}
		// A verifier that took the JWKS key bytes as an HMAC secret would accept it.
		if _, err := jws.Verify(secret); err != nil {
			t.Errorf("format %d: %v", f, err)
		}
	}
}

func TestAlgorithmOptionPublishesKey(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	for _, alg := range []string{ES256, PS256} {
		tok := r.MustToken(t, "alice", DemoClientID, WithAlgorithm(alg))
		d := decode(t, tok)
		if d.header["alg"] != alg {
			t.Errorf("alg %v", d.header["alg"])
		}
		set := fetchJWKS(t, s, "demo")
		keys := set.Key(d.header["kid"].(string))
		if len(keys) != 1 || keys[0].Algorithm != alg || keys[0].Use != "sig" {
			t.Fatalf("%s key not published: %v", alg, keys)
		}
		verifyWithJWKS(t, s, "demo", tok)
	}
	// The realm still signs with its default algorithm.
	if d := decode(t, r.MustToken(t, "alice", DemoClientID)); d.header["alg"] != "RS256" {
		t.Errorf("default alg %v", d.header["alg"])
	}
	unknownEC := decode(t, r.MustToken(t, "alice", DemoClientID, WithAlgorithm(ES256), WithUnknownKey()))
	set := fetchJWKS(t, s, "demo")
	if unknownEC.header["alg"] != "ES256" || len(set.Key(unknownEC.header["kid"].(string))) != 0 {
		t.Errorf("unknown ES256 key: %v", unknownEC.header)
	}
}

func TestMintedTokensAreLive(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	rt := r.MustToken(t, "alice", DemoClientID, WithKind(RefreshToken))
	if resp := postForm(t, tokenURL(s, "demo"), refreshForm(rt), basic); resp.status != 200 {
		t.Errorf("minted refresh token: %d %s", resp.status, resp.body)
	}
	sids := r.SessionIDs("alice")
	if len(sids) != 1 {
		t.Fatalf("sessions %v", sids)
	}
	at := r.MustToken(t, "alice", DemoClientID, WithSID(sids[0]))
	if len(r.SessionIDs("alice")) != 1 {
		t.Error("WithSID started a new session")
	}
	if b := postForm(t, introspectURL(s), url.Values{"token": {at}}, basic).json(t); b["active"] != true {
		t.Errorf("minted access token: %v", b)
	}
	r.EndSession(sids[0])
	if b := postForm(t, introspectURL(s), url.Values{"token": {at}}, basic).json(t); b["active"] != false {
		t.Errorf("after EndSession: %v", b)
	}
	sa := r.MustToken(t, "service-account-cloakroom", DemoClientID)
	if c := decode(t, sa).claims; c["client_id"] != DemoClientID || c["sid"] != nil {
		t.Errorf("service account token %v", c)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	tests := []struct {
		name           string
		user, clientID string
		opts           []TokenOption
		want           error
	}{
		{"unknown user", "mallory", DemoClientID, nil, ErrUnknownUser},
		{"unknown client", "alice", "ghost", nil, ErrUnknownClient},
		{"conflicting modes", "alice", DemoClientID, []TokenOption{WithUnsigned(), WithUnknownKey()}, ErrInvalidTokenOption},
		{"bad key format", "alice", DemoClientID, []TokenOption{WithKeyConfusion(PublicKeyFormat(9))}, ErrInvalidTokenOption},
		{"bad kind", "alice", DemoClientID, []TokenOption{WithKind(TokenKind(42))}, ErrInvalidTokenOption},
		{"negative lifetime", "alice", DemoClientID, []TokenOption{WithLifetime(-time.Second)}, ErrInvalidTokenOption},
		{"bad scope", "alice", DemoClientID, []TokenOption{WithScope("admin")}, ErrInvalidTokenOption},
		{"bad algorithm", "alice", DemoClientID, []TokenOption{WithAlgorithm("HS256")}, ErrUnsupportedAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := r.Token(tc.user, tc.clientID, tc.opts...); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if got := TokenKind(7).String(); got != "TokenKind(7)" {
		t.Errorf("String() = %q", got)
	}
}
