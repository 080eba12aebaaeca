package gateway_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/faulttest"
)

// TestLogoutDuringStoreOutageNeverServed proves the logout guarantee of
// docs/gateway.md ("A logout accepted is never lost"): two instances
// share a Redis (or PostgreSQL) store reached through a fault proxy, with
// instance-local caches that would keep records for an hour; the store is
// cut; Keycloak ends bob's session and its back-channel logout reaches
// instance A, which journals it and answers 200; the store comes back.
// From the moment the logout was acknowledged, neither instance (nor A
// restarted on its journal) ever serves bob's session, while alice's
// session is served again once the store is back.
func TestLogoutDuringStoreOutageNeverServed(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) (spec string, p *faulttest.Proxy){}
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		stores["redis"] = func(t *testing.T) (string, *faulttest.Proxy) {
			p := faulttest.NewProxy(t, addr)
			return "redis://" + p.Addr() + "/0", p
		}
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: Redis variant skipped")
	}
	if dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES"); dsn != "" {
		stores["postgres"] = func(t *testing.T) (string, *faulttest.Proxy) {
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			p := faulttest.NewProxy(t, u.Host)
			u.Host = p.Addr()
			return u.String(), p
		}
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: PostgreSQL variant skipped")
	}
	if len(stores) == 0 {
		t.Skip("set CLOAKROOM_TEST_REDIS and/or CLOAKROOM_TEST_POSTGRES to run the logout-journal test")
	}
	for name, open := range stores {
		for _, restart := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: "/receiver restarts"}[restart], func(t *testing.T) {
				t.Parallel()
				spec, proxy := open(t)
				e := newEnv(t)
				journalA := filepath.Join(t.TempDir(), "a.journal")
				shared := func(journal string) func(c *gateway.Config) {
					return func(c *gateway.Config) {
						faultRoutes(e)(c)
						c.Session.Store = spec
						ttl := time.Hour // only invalidation or failing closed can make the caches forget
						c.Session.CacheTTL = &ttl
						c.Session.LogoutJournal = journal
					}
				}
				a := e.start(shared(journalA)) // Keycloak's back-channel logouts go to A
				b := e.start(shared(filepath.Join(t.TempDir(), "b.journal")))
				aliceSub, _ := e.kc.UserID("alice")

				bob := faulttest.NewBrowser(t)
				bob.Login(b.url+"/x", "bob")
				alice := faulttest.NewBrowser(t)
				alice.Login(b.url+"/x", "alice")
				for _, g := range []*gw{a, b} { // warm both caches
					for _, br := range []*faulttest.Browser{bob, alice} {
						if p := br.Get(g.url + "/x"); forwardedUser(p) == "" {
							t.Fatalf("before the outage: %d %.200s", p.Status, p.Body)
						}
					}
				}
				bobSIDs := e.kc.SessionIDs("bob")
				if len(bobSIDs) != 1 {
					t.Fatalf("bob's Keycloak sessions: %v", bobSIDs)
				}

				proxy.Down()
				e.kc.EndSession(bobSIDs[0])
				acked := time.Now()
				var status int
				for _, d := range e.kc.LogoutDeliveries() {
					if d.SessionID == bobSIDs[0] {
						status = d.Status
						if !strings.HasPrefix(d.URL, a.url) {
							t.Fatalf("the back-channel logout went to %s, want instance A %s", d.URL, a.url)
						}
					}
				}
				if status != http.StatusOK {
					t.Fatalf("back-channel logout with the store down: %d, want 200 (journaled)", status)
				}

				if m := faulttest.NewBrowser(t).Get(a.url + "/_cloakroom/metrics"); !strings.Contains(m.Body, "cloakroom_logout_journal_pending 1") {
					t.Errorf("instance A's metrics do not show the journaled logout: %d", m.Status)
				}

				bobCookie := bob.Cookie(b.url+"/x", "cloakroom")
				if bobCookie == nil {
					t.Fatal("bob has no session cookie")
				}
				plainClient := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

				// From now on bob's session must never be served, by any
				// instance that is up.
				var (
					mu        sync.Mutex
					instances = []*gw{a, b}
					served    []string
					statuses  = map[string]int{}
				)
				stop := make(chan struct{})
				watched := make(chan struct{})
				go func() {
					defer close(watched)
					for {
						select {
						case <-stop:
							return
						default:
						}
						mu.Lock()
						gs := append([]*gw(nil), instances...)
						mu.Unlock()
						for _, g := range gs {
							// Not bob.Do: an instance may be stopping.
							// The cookie is sent by hand: a jar would drop it
							// when an instance clears it.
							req, _ := http.NewRequest(http.MethodGet, g.url+"/x", nil)
							req.Header.Set("Accept", "application/json")
							req.AddCookie(&http.Cookie{Name: bobCookie.Name, Value: bobCookie.Value})
							resp, err := plainClient.Do(req)
							if err != nil {
								continue
							}
							body, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							mu.Lock()
							statuses[http.StatusText(resp.StatusCode)]++
							if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "X-Forwarded-User") {
								served = append(served, g.url+" at "+time.Since(acked).String())
							}
							mu.Unlock()
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()

				time.Sleep(time.Second)
				if restart {
					mu.Lock()
					instances = []*gw{b}
					mu.Unlock()
					a.stop()
				}
				if err := proxy.Up(); err != nil {
					t.Fatal(err)
				}
				repaired := time.Now()
				if restart {
					// A's successor on the same journal: it applies what A
					// accepted as it starts.
					a2 := e.start(shared(journalA))
					mu.Lock()
					instances = append(instances, a2)
					mu.Unlock()
				}
				// Alice is served again on B once the store answers and the
				// recovery hold has passed.
				var recovered time.Duration
				deadline := time.Now().Add(20 * time.Second)
				for {
					if p := alice.Get(b.url + "/x"); forwardedUser(p) == aliceSub {
						recovered = time.Since(repaired)
						break
					} else if p.Status != http.StatusServiceUnavailable {
						t.Fatalf("alice after the repair: %d %.200s", p.Status, p.Body)
					}
					if time.Now().After(deadline) {
						t.Fatal("alice's session was not served again within 20 s of the repair")
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(2 * time.Second) // and keep watching bob
				close(stop)
				<-watched
				mu.Lock()
				defer mu.Unlock()
				if len(served) > 0 {
					t.Fatalf("bob's session was served after its logout was acknowledged: %v", served)
				}
				if statuses["OK"] > 0 || len(statuses) == 0 {
					t.Fatalf("bob's requests: %v", statuses)
				}
				t.Logf("%s: bob's requests after the acknowledged logout: %v; alice served again %v after the repair", name, statuses, recovered)
			})
		}
	}
}
