package login_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/pgstore"
	"github.com/cloakroom/cloakroom/session/redisstore"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

// sharedStores returns the stores several instances can share, each with a
// name; Redis and PostgreSQL only when their test variables are set.
func sharedStores(t *testing.T) map[string]func(t *testing.T) session.Store {
	stores := map[string]func(t *testing.T) session.Store{
		"memory": func(t *testing.T) session.Store { return session.NewMemoryStore() },
		"sqlite": func(t *testing.T) session.Store {
			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "sessions.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		stores["redis"] = func(t *testing.T) session.Store {
			s, err := redisstore.Open("redis://"+addr, redisstore.WithPrefix("cloakroom-login-test:"+randomHex()+":"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: skipping the Redis variant")
	}
	if dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES"); dsn != "" {
		stores["postgres"] = func(t *testing.T) session.Store {
			s, err := pgstore.Open(context.Background(), dsn, pgstore.WithTable("login_test_"+randomHex()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: skipping the PostgreSQL variant")
	}
	return stores
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestBackchannelLogoutAcrossInstances: Keycloak ends the user's session
// (here an admin logout); its back-channel logout reaches instance 1, and
// the session the user had on instance 2, sharing the store, ends too.
func TestBackchannelLogoutAcrossInstances(t *testing.T) {
	t.Parallel()
	for name, open := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newIDP(t, nil)
			store := open(t)
			a1 := newApp(t, p, appOptions{store: store})
			a2 := newApp(t, p, appOptions{store: store, noClient: true})
			b := newBrowser(t)
			b.login(a2, "/private", "alice", "alice")
			other := newBrowser(t)
			other.login(a2, "/private", "bob", "bob")
			for _, sid := range p.kc.SessionIDs("alice") {
				p.kc.EndSession(sid)
			}
			deliveries := p.kc.LogoutDeliveries()
			if len(deliveries) == 0 || deliveries[len(deliveries)-1].Status != 200 {
				t.Fatalf("back-channel deliveries: %+v", deliveries)
			}
			if !strings.HasPrefix(deliveries[len(deliveries)-1].URL, a1.srv.URL) {
				t.Fatalf("delivered to %s, want instance 1", deliveries[len(deliveries)-1].URL)
			}
			if pg := b.get(a2.srv.URL + "/"); pg.body != "home of nobody" {
				t.Fatalf("instance 2 still serves the ended session: %q", pg.body)
			}
			if pg := other.get(a2.srv.URL + "/"); pg.body != "home of bob" {
				t.Fatalf("bob's session was ended too: %q", pg.body)
			}
			if len(a1.events.backchannel) != 1 || len(a1.events.backchannel[0].Keys) != 1 {
				t.Fatalf("OnBackchannelLogout events: %+v", a1.events.backchannel)
			}
		})
	}
}

// TestBackchannelLogoutTokens: logout tokens are validated exactly as the
// specification lists; every bad one gets 400 and ends nothing.
func TestBackchannelLogoutTokens(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	sid := p.kc.SessionIDs("alice")[0]
	lt := func(opts ...keycloaktest.TokenOption) string {
		base := []keycloaktest.TokenOption{keycloaktest.WithKind(keycloaktest.LogoutToken), keycloaktest.WithSID(sid)}
		return p.kc.MustToken(t, "alice", "webapp", append(base, opts...)...)
	}
	post := func(body string, contentType string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, a.h.BackchannelLogoutURL(), strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = fmt.Fprint(&sb, resp.Header.Get("Cache-Control"))
		if len(resp.Cookies()) > 0 {
			t.Error("the back-channel endpoint set a cookie")
		}
		return resp.StatusCode, sb.String()
	}
	form := func(token string) string { return url.Values{"logout_token": {token}}.Encode() }
	const formType = "application/x-www-form-urlencoded"
	bad := []struct {
		name, body, ctype string
	}{
		{"with a nonce", form(lt(keycloaktest.WithNonce("n"))), formType},
		{"without events", form(lt(keycloaktest.WithoutClaim("events"))), formType},
		{"from another issuer", form(lt(keycloaktest.WithIssuer("http://evil.example/realms/demo"))), formType},
		{"for another client", form(lt(keycloaktest.WithAudience("other-app"))), formType},
		{"unsigned", form(lt(keycloaktest.WithUnsigned())), formType},
		{"unknown key", form(lt(keycloaktest.WithUnknownKey())), formType},
		{"an access token", form(p.kc.MustToken(t, "alice", "webapp")), formType},
		{"an ID token", form(p.kc.MustToken(t, "alice", "webapp", keycloaktest.WithKind(keycloaktest.IDToken))), formType},
		{"expired", form(lt(keycloaktest.WithExpired())), formType},
		{"no token", "", formType},
		{"two tokens", url.Values{"logout_token": {lt(), lt()}}.Encode(), formType},
		{"JSON body", `{"logout_token":"x"}`, "application/json"},
	}
	for _, tt := range bad {
		if status, _ := post(tt.body, tt.ctype); status != 400 {
			t.Errorf("%s: status %d, want 400", tt.name, status)
		}
	}
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of alice" {
		t.Fatalf("a refused logout token ended the session: %q", pg.body)
	}
	if resp, err := http.Get(a.h.BackchannelLogoutURL()); err != nil || resp.StatusCode != 405 {
		t.Fatalf("GET: %v %v", resp, err)
	}

	good := lt()
	status, cacheControl := post(form(good), formType)
	if status != 200 || cacheControl != "no-store" {
		t.Fatalf("valid logout token: %d, Cache-Control %q", status, cacheControl)
	}
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of nobody" {
		t.Fatalf("the session survived a valid logout token: %q", pg.body)
	}
	// The same token again is a replay.
	if status, _ := post(form(good), formType); status != 400 {
		t.Fatalf("replayed jti: %d", status)
	}
}

// TestBackchannelLogoutBySubject: without sid, every session of the user ends.
func TestBackchannelLogoutBySubject(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b1, b2 := newBrowser(t), newBrowser(t)
	b1.login(a, "/private", "alice", "alice")
	b2.login(a, "/private", "alice", "alice")
	tok := p.kc.MustToken(t, "alice", "webapp", keycloaktest.WithKind(keycloaktest.LogoutToken), keycloaktest.WithoutClaim("sid"))
	resp, err := http.PostForm(a.h.BackchannelLogoutURL(), url.Values{"logout_token": {tok}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("logout by sub: %v %v", resp, err)
	}
	for i, b := range []*browser{b1, b2} {
		if pg := b.get(a.srv.URL + "/"); pg.body != "home of nobody" {
			t.Fatalf("browser %d still logged in", i+1)
		}
	}
}

func TestFrontchannelLogout(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{config: func(c *login.Config) { c.FrontchannelLogout = true }})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")
	sid := p.kc.SessionIDs("alice")[0]
	if pg := newBrowser(t).get(a.srv.URL + "/auth/frontchannel-logout?" + url.Values{"iss": {"http://evil"}, "sid": {sid}}.Encode()); pg.status != 400 {
		t.Fatalf("foreign iss: %d", pg.status)
	}
	if pg := newBrowser(t).get(a.srv.URL + "/auth/frontchannel-logout?" + url.Values{"iss": {p.kc.Issuer()}, "sid": {sid}}.Encode()); pg.status != 200 {
		t.Fatalf("front-channel logout: %d", pg.status)
	}
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of nobody" {
		t.Fatal("front-channel logout did not end the session")
	}
	// Off by default.
	plain := newApp(t, p, appOptions{clientID: "plain"})
	if pg := newBrowser(t).get(plain.srv.URL + "/auth/frontchannel-logout?iss=x&sid=y"); pg.status != 404 {
		t.Fatalf("front-channel logout served although off: %d", pg.status)
	}
}

// TestDisabledUserLosesSessions: disabling a user in Keycloak ends no
// session there and sends no back-channel logout (Keycloak 26.7.3), so the
// app's session lasts until its access token expires; the refresh then
// fails ("User disabled") and the user is logged out. Logging the user out
// in Keycloak as well (admin.Client.DisableUser with logout) ends it at
// once, through the back channel.
func TestDisabledUserLosesSessions(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "bob", "bob")
	if err := p.kc.SetUserEnabled("bob", false); err != nil {
		t.Fatal(err)
	}
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of bob" {
		t.Fatalf("before the access token expires: %q", pg.body)
	}
	p.clock.Advance(6 * time.Minute)
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of nobody" {
		t.Fatalf("disabled user still logged in after the refresh: %q", pg.body)
	}

	b.login(a, "/private", "alice", "alice")
	if err := p.kc.SetUserEnabled("alice", false); err != nil {
		t.Fatal(err)
	}
	for _, sid := range p.kc.SessionIDs("alice") {
		p.kc.EndSession(sid)
	}
	if pg := b.get(a.srv.URL + "/"); pg.body != "home of nobody" {
		t.Fatalf("disabled and logged-out user still logged in: %q", pg.body)
	}
}

// TestBackchannelLogoutReplayAcrossInstances: a logout token is accepted
// once across every instance sharing the store (Store.MarkOnce), also when
// it arrives at several at the same moment.
func TestBackchannelLogoutReplayAcrossInstances(t *testing.T) {
	t.Parallel()
	for name, open := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newIDP(t, nil)
			store := open(t)
			apps := []*app{newApp(t, p, appOptions{store: store}), newApp(t, p, appOptions{store: store, noClient: true})}
			post := func(a *app, tok string) int {
				resp, err := http.PostForm(a.h.BackchannelLogoutURL(), url.Values{"logout_token": {tok}})
				if err != nil {
					t.Error(err)
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			tok := p.kc.MustToken(t, "alice", "webapp", keycloaktest.WithKind(keycloaktest.LogoutToken), keycloaktest.WithSID("sid-"+randomHex()))
			if got := post(apps[0], tok); got != 200 {
				t.Fatalf("first delivery: %d", got)
			}
			if got := post(apps[1], tok); got != 400 {
				t.Fatalf("the same token at the other instance: %d, want 400 (replay)", got)
			}
			// Racing deliveries of a fresh token: exactly one is accepted.
			tok = p.kc.MustToken(t, "alice", "webapp", keycloaktest.WithKind(keycloaktest.LogoutToken), keycloaktest.WithSID("sid-"+randomHex()))
			var wg sync.WaitGroup
			statuses := make([]int, 8)
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = post(apps[i%2], tok)
				}()
			}
			wg.Wait()
			ok := 0
			for _, s := range statuses {
				switch s {
				case 200:
					ok++
				case 400:
				default:
					t.Fatalf("concurrent deliveries answered %v", statuses)
				}
			}
			if ok != 1 {
				t.Fatalf("%d of %d concurrent deliveries accepted (%v), want exactly 1", ok, len(statuses), statuses)
			}
		})
	}
}
