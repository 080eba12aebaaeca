package bearer_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// TestUnknownKidBurst: 10,000 requests through the middleware, 32 at a
// time, each with a token naming a different kid the realm never published
// (forged tokens: only the header differs from a real one; the kid is
// looked up before any signature check). JWKS is fetched at most once per
// refetch interval: once for the first 5,000, once more for the next 5,000
// after the Realm's clock has moved one interval on. With Keycloak's JWKS
// failing (2 × 1,000 requests), the same holds and the answers are 503,
// never a pass.
func TestUnknownKidBurst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		fault  *keycloaktest.Fault
		status int
		n      int64 // requests per round
	}{
		{"Keycloak up", nil, http.StatusUnauthorized, 5000},
		{"JWKS failing", &keycloaktest.Fault{Status: http.StatusServiceUnavailable, Paths: []string{"/certs"}}, http.StatusServiceUnavailable, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const interval = 10 * time.Second
			var mu sync.Mutex
			now := time.Now()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
			kc := srv.Realm("demo")
			realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet), cloakroom.WithClock(clock), cloakroom.WithRefetchInterval(interval))
			if err != nil {
				t.Fatal(err)
			}
			v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
			if err != nil {
				t.Fatal(err)
			}
			a, err := bearer.New(v)
			if err != nil {
				t.Fatal(err)
			}
			h := a.Authenticate(bearer.RequireAuthenticated()(whoami))
			real := kc.MustToken(t, "alice", "cloakroom")
			// The Realm's clock starts when the token is minted, so that a
			// slow start (a loaded machine) cannot put iat in its future.
			mu.Lock()
			now = time.Now()
			mu.Unlock()
			if res := do(t, h, withToken(real)); res.status != 200 {
				t.Fatalf("warm-up: %d %s", res.status, res.body)
			}
			if tc.fault != nil {
				srv.SetFault(*tc.fault)
				defer srv.ClearFault()
			}
			parts := strings.Split(real, ".")
			burst := func(round int) int64 {
				before := kc.JWKSRequests()
				var next, wrong atomic.Int64
				var wg sync.WaitGroup
				for range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= tc.n {
								return
							}
							hdr := fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":"burst-%d-%d"}`, round, i)
							tok := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + parts[1] + "." + parts[2]
							r := httptest.NewRequest(http.MethodGet, "/api/things", nil)
							r.Header.Set("Authorization", "Bearer "+tok)
							w := httptest.NewRecorder()
							h.ServeHTTP(w, r)
							if w.Code != tc.status && wrong.Add(1) == 1 {
								t.Errorf("round %d token %d: %d %s, want %d", round, i, w.Code, w.Body.String(), tc.status)
							}
						}
					}()
				}
				wg.Wait()
				return kc.JWKSRequests() - before
			}
			first := burst(1)
			mu.Lock()
			now = now.Add(interval)
			mu.Unlock()
			second := burst(2)
			t.Logf("2 × %d unknown-kid requests one refetch interval apart: %d + %d JWKS fetches", tc.n, first, second)
			if first > 1 || second > 1 {
				t.Fatalf("JWKS fetches per interval: %d, %d; want at most 1 each", first, second)
			}
			if tc.fault == nil && (first != 1 || second != 1) {
				t.Fatalf("JWKS fetches per interval: %d, %d; want exactly 1 each (a rotated key must be picked up)", first, second)
			}
			srv.ClearFault()
			if res := do(t, h, withToken(kc.MustToken(t, "bob", "cloakroom"))); res.status != 200 {
				t.Fatalf("real token after the burst: %d %s", res.status, res.body)
			}
		})
	}
}
