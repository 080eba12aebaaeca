package bench

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// verifyFixture is a keycloaktest realm and one Keycloak-shaped RS256
// access token of the demo user alice.
type verifyFixture struct {
	issuer string
	token  string
	key    *rsa.PublicKey
}

func newVerifyFixture(b *testing.B) *verifyFixture {
	b.Helper()
	srv := keycloaktest.NewServer(b, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	token := kc.MustToken(b, "alice", "cloakroom", keycloaktest.WithLifetime(time.Hour))
	// The public key, as any verifier would get it: from the JWKS.
	realm, err := cloakroom.NewRealm(kc.Issuer())
	if err != nil {
		b.Fatal(err)
	}
	meta, err := realm.Discover(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Get(meta.JWKSURI)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		b.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		b.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) == 0 {
		b.Fatal("signing key not in JWKS")
	}
	return &verifyFixture{issuer: kc.Issuer(), token: token, key: keys[0].Key.(*rsa.PublicKey)}
}

// verifier is one way of verifying the fixture's token.
type verifier struct {
	name   string
	verify func(*verifyFixture) func() error
}

func verifiers(b *testing.B) []verifier {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cloak := func(entries int) func(f *verifyFixture) func() error {
		return func(f *verifyFixture) func() error {
			realm, err := cloakroom.NewRealm(f.issuer, cloakroom.WithLogger(quiet))
			if err != nil {
				b.Fatal(err)
			}
			v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom", CacheEntries: entries})
			if err != nil {
				b.Fatal(err)
			}
			return func() error { _, err := v.Verify(context.Background(), f.token); return err }
		}
	}
	return []verifier{
		// The floor: the RSA signature check alone, as every verifier must do it.
		{"floor-rsa-sha256", func(f *verifyFixture) func() error {
			i := strings.LastIndexByte(f.token, '.')
			sig, err := base64.RawURLEncoding.DecodeString(f.token[i+1:])
			if err != nil {
				b.Fatal(err)
			}
			input := f.token[:i]
			return func() error {
				h := sha256.Sum256([]byte(input))
				return rsa.VerifyPKCS1v15(f.key, crypto.SHA256, h[:], sig)
			}
		}},
		// go-jose's JWS parse + verify with no claims work: the bound for
		// any verifier built on go-jose.
		{"go-jose-jws-only", func(f *verifyFixture) func() error {
			algs := []jose.SignatureAlgorithm{jose.RS256}
			return func() error {
				jws, err := jose.ParseSignedCompact(f.token, algs)
				if err != nil {
					return err
				}
				_, err = jws.Verify(f.key)
				return err
			}
		}},
		{"cloakroom-cold", cloak(-1)},
		{"cloakroom-cached", cloak(0)},
		{"go-oidc", func(f *verifyFixture) func() error {
			ctx := context.Background()
			p, err := oidc.NewProvider(ctx, f.issuer)
			if err != nil {
				b.Fatal(err)
			}
			v := p.Verifier(&oidc.Config{ClientID: "cloakroom"})
			return func() error { _, err := v.Verify(ctx, f.token); return err }
		}},
	}
}

// BenchmarkVerify compares verifiers on the same Keycloak-shaped RS256
// access token. Each result also reports x-floor: its time per operation
// divided by the floor's, measured in the same run.
func BenchmarkVerify(b *testing.B) {
	f := newVerifyFixture(b)
	for _, mode := range []string{"serial", "parallel"} {
		var floor float64
		for _, v := range verifiers(b) {
			b.Run(mode+"/"+v.name, func(b *testing.B) {
				verify := v.verify(f)
				if err := verify(); err != nil {
					b.Fatalf("%s refuses the token: %v", v.name, err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for b.Loop() {
						if err := verify(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := verify(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if v.name == "floor-rsa-sha256" {
					floor = ns
				}
				if floor > 0 {
					b.ReportMetric(ns/floor, "x-floor")
				}
			})
		}
	}
}
