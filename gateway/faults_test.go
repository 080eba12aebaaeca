package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Fault tests: Keycloak down at start, down after start, slow and
// flapping; the session store (Redis, PostgreSQL through a fault proxy,
// SQLite read-only) down; and a burst of tokens with unknown kids. What
// needs Keycloak or the store fails closed with 503 and recovers by itself;
// what does not (cached keys, sessions in the cache) keeps working.

// keycloakTimeout bounds every call the gateway makes to Keycloak in these
// tests, so that a slow Keycloak costs two seconds, not ten (the default),
// while a loaded test machine still answers in time.
const keycloakTimeout = 2 * time.Second

func shortKeycloakClient() gateway.Option {
	return gateway.WithHTTPClient(&http.Client{Timeout: keycloakTimeout})
}

// faultRoutes: a browser route, a bearer route and a bearer route with
// introspection, all to the echo upstream.
func faultRoutes(e *env) func(*gateway.Config) {
	return func(c *gateway.Config) {
		c.Routes = []gateway.Route{
			{Name: "api", Path: "/api", Upstream: e.upstream.URL, Mode: "api"},
			{Name: "intro", Path: "/intro", Upstream: e.upstream.URL, Mode: "api", Introspect: true},
			{Name: "app", Path: "/", Upstream: e.upstream.URL},
		}
	}
}

// forwardedUser is the X-Forwarded-User the upstream saw, "" if the answer
// is not the upstream's echo.
func forwardedUser(p faulttest.Page) string {
	var e echoed
	if p.Status != http.StatusOK || json.Unmarshal([]byte(p.Body), &e) != nil {
		return ""
	}
	return header(e, "X-Forwarded-User")
}

func bearerGet(t *testing.T, u, token string) faulttest.Page {
	t.Helper()
	return faulttest.NewBrowser(t).Do(http.MethodGet, u, nil, "Authorization", "Bearer "+token)
}

// want503 checks a fail-closed answer: 503 with Retry-After and, for JSON,
// the code.
func want503(t *testing.T, what string, p faulttest.Page, code string) {
	t.Helper()
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d (Retry-After %q) %.300s, want 503", what, p.Status, p.Header.Get("Retry-After"), p.Body)
	}
	if code != "" && !strings.Contains(p.Body, `"code":"`+code+`"`) {
		t.Fatalf("%s: body %.300s, want code %s", what, p.Body, code)
	}
}

// eventually retries check until it returns "" (success) or the deadline.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no recovery: %s", what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayKeycloakDownAtStart: the gateway starts while Keycloak is
// unreachable. Bearer calls and logins get 503 (never an anonymous pass);
// when Keycloak comes back everything works without a restart.
func TestGatewayKeycloakDownAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.idp.SetFault(keycloaktest.Fault{Refuse: true})
	g := e.start(faultRoutes(e), shortKeycloakClient())
	token := e.kc.MustToken(t, "alice", "gateway")
	aliceSub, _ := e.kc.UserID("alice")

	want503(t, "bearer call, no keys yet", bearerGet(t, g.url+"/api/x", token), "idp_unavailable")
	want503(t, "introspected bearer call", bearerGet(t, g.url+"/intro/x", token), "idp_unavailable")
	b := faulttest.NewBrowser(t)
	want503(t, "browser login", b.Do(http.MethodGet, g.url+"/x", nil), "")
	want503(t, "readyz", b.Do(http.MethodGet, g.url+"/_cloakroom/readyz", nil), "")
	// A script without a session is told to log in; no Keycloak needed.
	if p := b.Do(http.MethodGet, g.url+"/x", nil, "Accept", "application/json"); p.Status != http.StatusUnauthorized {
		t.Fatalf("JSON request without a session: %d %.200s", p.Status, p.Body)
	}

	e.idp.ClearFault()
	eventually(t, "bearer call", func() string {
		if p := bearerGet(t, g.url+"/api/x", token); forwardedUser(p) != aliceSub {
			return fmt.Sprintf("%d %.200s", p.Status, p.Body)
		}
		return ""
	})
	if p := bearerGet(t, g.url+"/intro/x", token); forwardedUser(p) != aliceSub {
		t.Fatalf("introspected call after recovery: %d %.200s", p.Status, p.Body)
	}
	if p := faulttest.NewBrowser(t).Login(g.url+"/x", "alice"); forwardedUser(p) != aliceSub {
		t.Fatalf("login after recovery: %d %.200s", p.Status, p.Body)
	}
}

// TestGatewayKeycloakDownAfterStart: Keycloak refuses connections, answers
// 503, or answers after the client timeout. Sessions and bearer tokens
// signed with cached keys keep working; an unknown key, introspection and a
// login completing now get 503; after the fault everything recovers.
func TestGatewayKeycloakDownAfterStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault keycloaktest.Fault
	}{
		{"refused", keycloaktest.Fault{Refuse: true}},
		{"HTTP 503", keycloaktest.Fault{Status: http.StatusServiceUnavailable}},
		{"slower than the client timeout", keycloaktest.Fault{Delay: 4 * keycloakTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			g := e.start(faultRoutes(e), shortKeycloakClient())
			aliceSub, _ := e.kc.UserID("alice")
			bobSub, _ := e.kc.UserID("bob")
			alice := faulttest.NewBrowser(t)
			if p := alice.Login(g.url+"/x", "alice"); forwardedUser(p) != aliceSub {
				t.Fatalf("login: %d %.200s", p.Status, p.Body)
			}
			if p := bearerGet(t, g.url+"/intro/x", e.kc.MustToken(t, "bob", "gateway")); forwardedUser(p) != bobSub {
				t.Fatalf("introspected call: %d %.200s", p.Status, p.Body)
			}
			late := faulttest.NewBrowser(t)
			callback := late.CallbackURL(g.url+"/x", "bob")

			e.idp.SetFault(tc.fault)

			// Cached keys keep verifying: the session and new tokens.
			for _, hdr := range [][]string{nil, {"Accept", "application/json"}} {
				if p := alice.Do(http.MethodGet, g.url+"/x", nil, hdr...); forwardedUser(p) != aliceSub {
					t.Fatalf("session %v: %d %.200s", hdr, p.Status, p.Body)
				}
			}
			if p := bearerGet(t, g.url+"/api/x", e.kc.MustToken(t, "bob", "gateway")); forwardedUser(p) != bobSub {
				t.Fatalf("bearer token with a cached key: %d %.200s", p.Status, p.Body)
			}
			// What needs Keycloak fails closed.
			unknown := e.kc.MustToken(t, "bob", "gateway", keycloaktest.WithKeyID("rotated-"+tc.name))
			want503(t, "token with an unknown kid", bearerGet(t, g.url+"/api/x", unknown), "idp_unavailable")
			want503(t, "introspected call", bearerGet(t, g.url+"/intro/x", e.kc.MustToken(t, "bob", "gateway")), "idp_unavailable")
			p := late.Do(http.MethodGet, callback, nil)
			want503(t, "login callback", p, "")
			if set, _ := faulttest.SetsCookie(p, "cloakroom"); set || !strings.Contains(p.Body, "temporarily unavailable") {
				t.Fatalf("login callback: session cookie set %v, body %.300s", set, p.Body)
			}

			e.idp.ClearFault()
			eventually(t, "introspected call", func() string {
				if p := bearerGet(t, g.url+"/intro/x", e.kc.MustToken(t, "bob", "gateway")); forwardedUser(p) != bobSub {
					return fmt.Sprintf("%d %.200s", p.Status, p.Body)
				}
				return ""
			})
			if p := faulttest.NewBrowser(t).Login(g.url+"/x", "bob"); forwardedUser(p) != bobSub {
				t.Fatalf("login after recovery: %d %.200s", p.Status, p.Body)
			}
			if p := alice.Do(http.MethodGet, g.url+"/x", nil); forwardedUser(p) != aliceSub {
				t.Fatalf("session after recovery: %d %.200s", p.Status, p.Body)
			}
		})
	}
}

// TestGatewayRefreshWhileKeycloakDown: access tokens live 3 s, so the
// gateway refreshes on every request. With Keycloak down the session goes
// on with its current token until that expires, then gets 503 (never a
// login redirect, never an anonymous pass); when Keycloak is back the same
// cookie works again after a refresh.
func TestGatewayRefreshWhileKeycloakDown(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *keycloaktest.RealmConfig) { c.AccessTokenLifespan = 3 * time.Second })
	g := e.start(faultRoutes(e), shortKeycloakClient())
	aliceSub, _ := e.kc.UserID("alice")
	alice := faulttest.NewBrowser(t)
	if p := alice.Login(g.url+"/x", "alice"); forwardedUser(p) != aliceSub {
		t.Fatalf("login: %d %.200s", p.Status, p.Body)
	}
	cookie := alice.Cookie(g.url, "cloakroom").Value

	e.idp.SetFault(keycloaktest.Fault{Refuse: true})
	served, refused := 0, 0
	deadline := time.Now().Add(15 * time.Second)
	for refused < 2 {
		p := alice.Do(http.MethodGet, g.url+"/x", nil, "Accept", "application/json")
		switch {
		case forwardedUser(p) == aliceSub:
			served++
		case p.Status == http.StatusServiceUnavailable:
			want503(t, "expired session, Keycloak down", p, "idp_unavailable")
			refused++
		default:
			t.Fatalf("session with Keycloak down: %d %.200s", p.Status, p.Body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the session was still served long after its access token expired")
		}
		time.Sleep(200 * time.Millisecond)
	}

	e.idp.ClearFault()
	eventually(t, "session", func() string {
		if p := alice.Do(http.MethodGet, g.url+"/x", nil); forwardedUser(p) != aliceSub {
			return fmt.Sprintf("%d %.200s", p.Status, p.Body)
		}
		return ""
	})
	if c := alice.Cookie(g.url, "cloakroom"); c == nil || c.Value != cookie {
		t.Fatal("the session cookie changed")
	}
	if !strings.Contains(g.log.String(), "token refresh failed") {
		t.Error("the failed refreshes were not logged")
	}
	t.Logf("Keycloak down: %d requests served with the current token, then 503", served)
}

// TestGatewayKeycloakFlapping: Keycloak fails a few requests, then answers
// again (Fault.Times): the failed requests get 503, the next ones succeed,
// with nothing restarted.
func TestGatewayKeycloakFlapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.start(faultRoutes(e), shortKeycloakClient())
	bobSub, _ := e.kc.UserID("bob")
	if p := bearerGet(t, g.url+"/api/x", e.kc.MustToken(t, "bob", "gateway")); forwardedUser(p) != bobSub {
		t.Fatalf("warm-up: %d %.200s", p.Status, p.Body)
	}

	t.Run("introspection", func(t *testing.T) {
		e.idp.SetFault(keycloaktest.Fault{Status: http.StatusBadGateway, Paths: []string{"/introspect"}, Times: 2})
		var got []int
		for range 4 {
			got = append(got, bearerGet(t, g.url+"/intro/x", e.kc.MustToken(t, "bob", "gateway")).Status)
		}
		if fmt.Sprint(got) != "[503 503 200 200]" {
			t.Fatalf("statuses %v, want [503 503 200 200]", got)
		}
	})
	t.Run("code exchange", func(t *testing.T) {
		b := faulttest.NewBrowser(t)
		callback := b.CallbackURL(g.url+"/x", "bob")
		e.idp.SetFault(keycloaktest.Fault{Refuse: true, Paths: []string{"/token"}, Times: 1})
		want503(t, "callback, connection dropped", b.Do(http.MethodGet, callback, nil), "")
		// The user tries again; Keycloak's SSO session skips the form.
		if p := b.Get(g.url + "/x"); forwardedUser(p) != bobSub {
			t.Fatalf("second login: %d %.200s", p.Status, p.Body)
		}
	})
	t.Run("key rotation during a JWKS failure", func(t *testing.T) {
		e.kc.RotateKey()
		e.idp.SetFault(keycloaktest.Fault{Status: http.StatusServiceUnavailable, Paths: []string{"/certs"}, Times: 1})
		token := e.kc.MustToken(t, "bob", "gateway")
		want503(t, "new key, JWKS failing", bearerGet(t, g.url+"/api/x", token), "idp_unavailable")
		// The next fetch waits for the refetch interval (10 s): a storm of
		// unknown kids must not become a storm of JWKS requests.
		eventually(t, "token signed with the rotated key", func() string {
			p := bearerGet(t, g.url+"/api/x", token)
			switch {
			case forwardedUser(p) == bobSub:
				return ""
			case p.Status != http.StatusServiceUnavailable:
				t.Fatalf("while waiting for the refetch: %d %.200s", p.Status, p.Body)
			}
			return fmt.Sprintf("%d", p.Status)
		})
	})
	e.idp.ClearFault()
}

// gatewayOutage describes a running gateway for faulttest.RunStoreOutage.
func gatewayOutage(e *env, g *gw) faulttest.Outage {
	return faulttest.Outage{
		KC:        e.kc,
		Protected: g.url + "/x",
		Whoami:    forwardedUser,
		Logout:    g.url + "/_cloakroom/logout",
		Origin:    g.url,
		CSRF: func(b *faulttest.Browser) string {
			var me struct {
				CSRF string `json:"csrf_token"`
			}
			_ = json.Unmarshal([]byte(b.Get(g.url+"/_cloakroom/me").Body), &me)
			return me.CSRF
		},
		Cookie: "cloakroom",
	}
}

// TestGatewaySessionStoreDown: the gateway's shared session store goes away
// (Redis or PostgreSQL behind a fault proxy that refuses new connections
// and cuts open ones) or its SQLite file turns read-only; see
// faulttest.RunStoreOutage for what is checked. The instance-local session
// cache (default TTL) stays on, as in production.
func TestGatewaySessionStoreDown(t *testing.T) {
	t.Parallel()
	type variant struct {
		spec         string
		break_       func()
		repair       func()
		readsSurvive bool
		journalOff   bool
	}
	variants := map[string]func(t *testing.T) variant{
		"sqlite read-only": func(t *testing.T) variant {
			path := filepath.Join(t.TempDir(), "sessions.db")
			var thaw func()
			return variant{
				spec:         "sqlite:" + path,
				break_:       func() { thaw = faulttest.FreezeFiles(t, path, path+"-wal") },
				repair:       func() { thaw() },
				readsSurvive: true,
			}
		},
	}
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		redis := func(journalOff bool) func(t *testing.T) variant {
			return func(t *testing.T) variant {
				p := faulttest.NewProxy(t, addr)
				return variant{spec: "redis://" + p.Addr() + "/0", break_: p.Down, journalOff: journalOff, repair: func() {
					if err := p.Up(); err != nil {
						t.Fatal(err)
					}
				}}
			}
		}
		variants["redis"] = redis(false)
		variants["redis, logout_journal off"] = redis(true)
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: Redis variant skipped")
	}
	if dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES"); dsn != "" {
		variants["postgres"] = func(t *testing.T) variant {
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			p := faulttest.NewProxy(t, u.Host)
			u.Host = p.Addr()
			return variant{spec: u.String(), break_: p.Down, repair: func() {
				if err := p.Up(); err != nil {
					t.Fatal(err)
				}
			}}
		}
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: PostgreSQL variant skipped")
	}
	for name, mk := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := mk(t)
			e := newEnv(t)
			g := e.start(func(c *gateway.Config) {
				faultRoutes(e)(c)
				c.Session.Store = v.spec
				if v.journalOff {
					c.Session.LogoutJournal = gateway.JournalOff
				}
			})
			o := gatewayOutage(e, g)
			o.Break, o.Repair, o.ReadsSurvive = v.break_, v.repair, v.readsSurvive
			// Shared stores journal logouts by default.
			o.Journal = !v.journalOff && !strings.HasPrefix(v.spec, "sqlite:")
			faulttest.RunStoreOutage(t, o)
			if logs := g.log.String(); !strings.Contains(logs, "session store failed") {
				t.Errorf("the store failures were not logged: %.500s", logs)
			}
		})
	}
}

// burstTokens returns n tokens that each name a different kid the realm
// never published. Only the header differs from a real token: the kid is
// looked up before any signature check, which is what a flood of forged
// tokens exercises.
func burstTokens(t *testing.T, real string, n int) []string {
	t.Helper()
	parts := strings.Split(real, ".")
	tokens := make([]string, n)
	for i := range tokens {
		h := fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":"burst-%d-%s"}`, i, t.Name())
		tokens[i] = base64.RawURLEncoding.EncodeToString([]byte(h)) + "." + parts[1] + "." + parts[2]
	}
	return tokens
}

// TestGatewayUnknownKidBurst: 10,000 requests with tokens naming unknown
// kids, 32 at a time, through the gateway. Each is refused with 401, and
// JWKS is fetched at most once per refetch interval (10 s by default). A
// real token keeps working afterwards.
func TestGatewayUnknownKidBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	noAccessLog := false
	g := e.start(func(c *gateway.Config) {
		faultRoutes(e)(c)
		c.Log.AccessLog = &noAccessLog
	})
	real := e.kc.MustToken(t, "alice", "gateway")
	aliceSub, _ := e.kc.UserID("alice")
	// Keys fetched by the start-up warm-up, then verified once.
	if p := bearerGet(t, g.url+"/api/x", real); forwardedUser(p) != aliceSub {
		t.Fatalf("warm-up: %d %.200s", p.Status, p.Body)
	}
	tokens := burstTokens(t, real, 10_000)
	before := e.kc.JWKSRequests()
	start := time.Now()
	var next atomic.Int64
	var unexpected atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(tokens)) {
					return
				}
				req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				rec := httptest.NewRecorder()
				g.g.ServeHTTP(rec, req)
				if rec.Code != http.StatusUnauthorized && unexpected.Add(1) == 1 {
					t.Errorf("token %d: %d %s", i, rec.Code, rec.Body.String())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	fetches := e.kc.JWKSRequests() - before
	// At most one fetch per started refetch interval.
	allowed := int64(elapsed/(10*time.Second)) + 1
	t.Logf("10,000 unknown-kid requests in %v: %d JWKS fetches (at most %d allowed)", elapsed.Round(time.Millisecond), fetches, allowed)
	if fetches > allowed {
		t.Fatalf("%d JWKS fetches for the burst, want at most %d", fetches, allowed)
	}
	if p := bearerGet(t, g.url+"/api/x", e.kc.MustToken(t, "alice", "gateway")); forwardedUser(p) != aliceSub {
		t.Fatalf("real token after the burst: %d %.200s", p.Status, p.Body)
	}
}
