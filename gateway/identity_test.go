package gateway

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"weak"

	"github.com/cloakroom/cloakroom"
)

func mustClaims(t testing.TB, json string) *cloakroom.Claims {
	t.Helper()
	c, err := cloakroom.ParseClaims([]byte(json))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The memo answers each pair of claims with that pair's own identity, from
// many goroutines at once, also when one access claims is paired with
// other ID claims in turn (their entries replace each other).
func TestIdentityMemoNeverMixesCallers(t *testing.T) {
	t.Parallel()
	const n = 4096
	access := make([]*cloakroom.Claims, n)
	ids := make([]*cloakroom.Claims, n)
	for i := range n {
		access[i] = mustClaims(t, fmt.Sprintf(`{"sub":"user-%d","email":"u%d@example.com","realm_access":{"roles":["r%d","a"]},"resource_access":{"app":{"roles":["x%d"]}},"groups":["/g%d"]}`, i, i, i, i, i))
		if i%2 == 0 {
			ids[i] = mustClaims(t, fmt.Sprintf(`{"sub":"user-%d","preferred_username":"name-%d"}`, i, i))
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for j := range n {
					i := (j*7 + w*1013 + round*31) % n
					id := ids[i]
					if (j+w)%3 == 0 {
						id = ids[(i+1)%n] // a username from other ID claims: the pair is another
					}
					h := identityHeadersFor(access[i], id)
					want := identityHeaders{sub: fmt.Sprintf("user-%d", i), email: fmt.Sprintf("u%d@example.com", i),
						roles: fmt.Sprintf("a,app:x%d,r%d", i, i), groups: fmt.Sprintf("/g%d", i)}
					if id != nil {
						want.username = fmt.Sprintf("name-%d", (i+1)%n)
						if id == ids[i] {
							want.username = fmt.Sprintf("name-%d", i)
						}
					}
					if h == nil || *h != want {
						t.Errorf("caller %d: got %+v, want %+v", i, h, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// Header values come out valid whatever the claims hold; the ID token
// speaks for an opaque access token; no claims, no identity.
func TestIdentityMemoValues(t *testing.T) {
	t.Parallel()
	c := mustClaims(t, `{"sub":"s","email":"a\r\nX-Injected: 1@example.com","preferred_username":"caf\u00e9\u0000","realm_access":{"roles":["b","a"]}}`)
	h := identityHeadersFor(c, nil)
	if h.email != "aX-Injected: 1@example.com" || h.username != "café" || h.roles != "a,b" || h.sub != "s" {
		t.Fatalf("%+v", h)
	}
	id := mustClaims(t, `{"sub":"from-id","email":"id@example.com"}`)
	if h := identityHeadersFor(nil, id); h == nil || h.sub != "from-id" || h.email != "id@example.com" {
		t.Fatalf("opaque access token: %+v", h)
	}
	if h := identityHeadersFor(nil, nil); h != nil {
		t.Fatalf("no claims: %+v", h)
	}
}

// With 10,000 sessions alternating, every one keeps its entry: a request
// costs a lookup, not the headers' computation.
func TestIdentityMemoHoldsTenThousandCallers(t *testing.T) {
	t.Parallel()
	const n = 10_000
	access := make([]*cloakroom.Claims, n)
	for i := range n {
		access[i] = mustClaims(t, fmt.Sprintf(`{"sub":"user-%d","realm_access":{"roles":["r"]}}`, i))
	}
	first := make([]*identityHeaders, n)
	for i := range n {
		first[i] = identityHeadersFor(access[i], nil)
	}
	recomputed := 0
	for range 2 {
		for i := range n {
			if h := identityHeadersFor(access[i], nil); h != first[i] {
				recomputed++
				first[i] = h
			}
		}
	}
	if recomputed > 0 {
		t.Errorf("%d of %d lookups computed the headers again, want none", recomputed, 2*n)
	}
	runtime.KeepAlive(access)
}

func BenchmarkIdentityHeaders(b *testing.B) {
	c := mustClaims(b, `{"sub":"0b0f4c1e-1b9a-4f4e-9d7f-9b1a4d1a2c3d","email":"alice@example.com","preferred_username":"alice","realm_access":{"roles":["user","offline_access","uma_authorization"]},"resource_access":{"account":{"roles":["manage-account","view-profile"]}}}`)
	id := mustClaims(b, `{"sub":"0b0f4c1e-1b9a-4f4e-9d7f-9b1a4d1a2c3d","preferred_username":"alice"}`)
	b.Run("memo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = identityHeadersFor(c, id)
		}
	})
	b.Run("computed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = computeIdentityHeaders(c, id)
		}
	})
}

// The memo keeps no claims alive: once their caches drop them, they are
// collected (and their payload with them).
func TestIdentityMemoHoldsClaimsWeakly(t *testing.T) {
	t.Parallel()
	c := mustClaims(t, `{"sub":"s","email":"e@example.com","realm_access":{"roles":["a"]}}`)
	if h := identityHeadersFor(c, nil); h == nil || h.email != "e@example.com" {
		t.Fatalf("%+v", h)
	}
	w := weak.Make(c)
	c = nil
	for range 10 {
		runtime.GC()
		if w.Value() == nil {
			return
		}
	}
	t.Fatal("the memo keeps its claims alive")
}
