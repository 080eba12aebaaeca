package gateway_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// TestThreeInstancesBackchannelLogout: three gateways share a Redis (or
// PostgreSQL) session store, each with its instance-local cache. A user has
// a session used through all three; Keycloak ends it and its back-channel
// logout reaches instance 1 only; all three refuse the session at once.
func TestThreeInstancesBackchannelLogout(t *testing.T) {
	t.Parallel()
	stores := map[string]string{}
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		stores["redis"] = "redis://" + addr + "/0"
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: Redis variant skipped")
	}
	if dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES"); dsn != "" {
		stores["postgres"] = dsn
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: PostgreSQL variant skipped")
	}
	if len(stores) == 0 {
		t.Skip("set CLOAKROOM_TEST_REDIS and/or CLOAKROOM_TEST_POSTGRES to run the several-instances test")
	}
	for name, spec := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			shared := func(c *gateway.Config) {
				c.Session.Store = spec
				ttl := time.Hour // only invalidation can make the caches forget
				c.Session.CacheTTL = &ttl
			}
			gws := []*gw{e.start(shared), e.start(shared), e.start(shared)}
			b := newBrowser(t)
			b.login(gws[1], "/", "alice")
			// The browser's cookie is per host, so it is valid on every
			// instance; use the session through all three (warming caches).
			for i, g := range gws {
				if r := b.get(g.url + "/x"); r.status != 200 || !strings.Contains(r.body, "X-Forwarded-User") {
					t.Fatalf("instance %d before logout: %d", i+1, r.status)
				}
			}
			sids := e.kc.SessionIDs("alice")
			if len(sids) != 1 {
				t.Fatalf("Keycloak sessions: %v", sids)
			}
			e.kc.EndSession(sids[0]) // delivers the back-channel logout to instance 1
			ended := time.Now()
			last := e.kc.LogoutDeliveries()
			if len(last) == 0 || !strings.HasPrefix(last[len(last)-1].URL, gws[0].url) || last[len(last)-1].Status != 200 {
				t.Fatalf("deliveries: %+v", last)
			}
			noFollow := &http.Client{Jar: b.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for i, g := range gws {
				for {
					resp, err := noFollow.Get(g.url + "/x")
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					// Logged out: the browser is sent to Keycloak to log in.
					loc, _ := url.Parse(resp.Header.Get("Location"))
					if resp.StatusCode == http.StatusFound && strings.HasSuffix(loc.Path, "/protocol/openid-connect/auth") {
						break
					}
					if time.Since(ended) > 5*time.Second {
						t.Fatalf("instance %d still serves the ended session (status %d)", i+1, resp.StatusCode)
					}
					time.Sleep(time.Millisecond)
				}
			}
			t.Logf("%s: the logout was visible on all three instances %v after Keycloak ended the session", name, time.Since(ended))
		})
	}
}
