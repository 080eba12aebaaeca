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
	"os"
	"runtime"
	"strconv"
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

func newVerifyFixture(b testing.TB) *verifyFixture {
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
	// keycloaktest tops its shared RSA key pool up in the background after
	// a realm's first key (keycloaktest/keys.go, rsaKeyPool.refill: about
	// 0.5 s of CPU); let that finish before anything is timed.
	time.Sleep(1500 * time.Millisecond)
	return &verifyFixture{issuer: kc.Issuer(), token: token, key: keys[0].Key.(*rsa.PublicKey)}
}

// verifier is one way of verifying the fixture's token.
type verifier struct {
	name   string
	verify func(*verifyFixture) func() error
}

func verifiers(b testing.TB) []verifier {
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

// TestVerifyInstructions runs each verifier of BenchmarkVerify, and the
// claims decoding alone (ParseClaims on the token's payload),
// CLOAKROOM_VERIFY_LOOPS times after one untimed call, each inside a
// function of its own (instrLoopFloor, instrLoopJose, instrLoopCold,
// instrLoopCached, instrLoopOIDC, instrLoopParseClaims), so that callgrind
// counts the instructions of one of them apart from the setup
// (keycloaktest, key generation, discovery):
//
//	CGO_ENABLED=0 go test -c -o /tmp/bench.test .
//	CLOAKROOM_VERIFY_LOOPS=1000 GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
//	    --toggle-collect='*.instrLoopCold' /tmp/bench.test -test.run '^TestVerifyInstructions$'
//
// "Collected" divided by the loop count is the instructions per call (one
// valgrind run per function: callgrind's call tree gets lost in goroutine
// switches, its per-thread toggle does not, with the loops locked to one
// OS thread). Without the variable it runs each loop 3 times: a check
// that every verifier still accepts the token, in the normal tests.
func TestVerifyInstructions(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CLOAKROOM_VERIFY_LOOPS"))
	if n <= 0 {
		n = 3
	}
	// Callgrind follows calls per thread: keep the loops on this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f := newVerifyFixture(t)
	loops := map[string]func(func() error, int) error{
		"floor-rsa-sha256": instrLoopFloor,
		"go-jose-jws-only": instrLoopJose,
		"cloakroom-cold":   instrLoopCold,
		"cloakroom-cached": instrLoopCached,
		"go-oidc":          instrLoopOIDC,
	}
	for _, v := range verifiers(t) {
		verify := v.verify(f)
		if err := verify(); err != nil {
			t.Fatalf("%s refuses the token: %v", v.name, err)
		}
		if err := loops[v.name](verify, n); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
	}
	// The claims decoding alone, on the same token's payload.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(f.token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	parse := func() error { _, err := cloakroom.ParseClaims(payload); return err }
	if err := parse(); err != nil {
		t.Fatal(err)
	}
	if err := instrLoopParseClaims(parse, n); err != nil {
		t.Fatal(err)
	}
}

func instrLoop(verify func() error, n int) error {
	for range n {
		if err := verify(); err != nil {
			return err
		}
	}
	return nil
}

//go:noinline
func instrLoopFloor(verify func() error, n int) error { return instrLoop(verify, n) }

//go:noinline
func instrLoopJose(verify func() error, n int) error { return instrLoop(verify, n) }

//go:noinline
func instrLoopCold(verify func() error, n int) error { return instrLoop(verify, n) }

//go:noinline
func instrLoopCached(verify func() error, n int) error { return instrLoop(verify, n) }

//go:noinline
func instrLoopParseClaims(verify func() error, n int) error { return instrLoop(verify, n) }

//go:noinline
func instrLoopOIDC(verify func() error, n int) error { return instrLoop(verify, n) }
