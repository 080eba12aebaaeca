package faulttest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// Outage describes an application (the gateway or an app on the login
// package) whose session store a test can break and repair.
type Outage struct {
	KC *keycloaktest.Realm
	// Protected is a page that needs a login; Whoami returns the subject
	// that page was served for ("" when it was not served).
	Protected string
	Whoami    func(p Page) string
	// Logout is the logout endpoint (POST, CSRF token in csrf_token);
	// Origin the application's origin; CSRF reads the session's token.
	Logout string
	Origin string
	CSRF   func(b *Browser) string
	// Cookie is the session cookie's name.
	Cookie string
	// Break and Repair take the store down and bring it back.
	Break, Repair func()
	// ReadsSurvive says the broken store still answers reads (a read-only
	// or full SQLite file): requests with a session may then be served.
	ReadsSurvive bool
	// Journal says the application journals the logouts its store refuses
	// (session.JournaledStore): logouts during the outage are then
	// accepted, and stay done after it.
	Journal bool
}

// Result summarises what RunStoreOutage saw, for the test's log.
type Result struct {
	DuringOutage map[string]int // status counts of session requests
	Callback     int
	Logout       int
	Backchannel  int
}

// RunStoreOutage runs the store-outage scenario: sessions exist, the store
// breaks, and then
//
//   - requests with a session get 503 with Retry-After (or, with
//     ReadsSurvive, are served as their own user), never an anonymous pass,
//     a login redirect or a 500;
//   - a login completing at that moment gets 503 and no session cookie;
//   - a logout gets 503 and the browser keeps its cookie (nothing half
//     done: the session cannot be loaded, so neither its CSRF token; the
//     user can log out again);
//   - a back-channel logout is answered 503, so Keycloak records the
//     failure; or, with a journal (Outage.Journal), 200, and that session
//     is never served again, during the outage or after it;
//
// and once the store is repaired, without a restart, the same cookie works
// again for the same user, new logins work and logout works.
func RunStoreOutage(t *testing.T, o Outage) Result {
	t.Helper()
	res := Result{DuringOutage: map[string]int{}}
	aliceSub, _ := o.KC.UserID("alice")

	alice := NewBrowser(t)
	if p := alice.Login(o.Protected, "alice"); o.Whoami(p) != aliceSub {
		t.Fatalf("login: %d %.300s", p.Status, p.Body)
	}
	cookie := alice.Cookie(o.Protected, o.Cookie)
	if cookie == nil {
		t.Fatal("no session cookie after login")
	}
	csrf := o.CSRF(alice)
	bob := NewBrowser(t)
	bob.Login(o.Protected, "bob")
	bobSIDs := o.KC.SessionIDs("bob")
	if len(bobSIDs) != 1 {
		t.Fatalf("bob's Keycloak sessions: %v", bobSIDs)
	}
	late := NewBrowser(t)
	callback := late.CallbackURL(o.Protected, "alice")

	o.Break()

	// Requests with a session.
	saw503 := false
	deadline := time.Now().Add(15 * time.Second)
	for n := 0; ; n++ {
		for _, hdr := range [][]string{nil, {"Accept", "application/json"}} {
			p := alice.Do(http.MethodGet, o.Protected, nil, hdr...)
			key := "html"
			if hdr != nil {
				key = "json"
			}
			switch {
			case p.Status == http.StatusServiceUnavailable:
				if p.Header.Get("Retry-After") == "" {
					t.Fatalf("503 without Retry-After (%s)", key)
				}
				if hdr != nil {
					var body struct{ Code, Detail string }
					if err := json.Unmarshal([]byte(p.Body), &body); err != nil || body.Code != "session_store_unavailable" || body.Detail == "" {
						t.Fatalf("JSON 503: %s, want code session_store_unavailable and a detail", p.Body)
					}
				}
				saw503 = true
			case p.Status == http.StatusOK && o.Whoami(p) == aliceSub:
				// Served from an instance-local cache, or from a store that
				// still reads: as the session's own user.
			default:
				t.Fatalf("session request (%s) with the store down: %d %.300s", key, p.Status, p.Body)
			}
			res.DuringOutage[key+" "+http.StatusText(p.Status)]++
		}
		if (saw503 || o.ReadsSurvive) && n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests with a session were never refused with 503 while the store was down")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A login completing now.
	p := late.Do(http.MethodGet, callback, nil)
	res.Callback = p.Status
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("callback with the store down: %d %.300s", p.Status, p.Body)
	}
	if set, _ := SetsCookie(p, o.Cookie); set {
		t.Fatal("a login got a session cookie while the store was down")
	}

	// A logout now: refused, and the cookie stays.
	p = alice.Do(http.MethodPost, o.Logout, url.Values{"csrf_token": {csrf}}, "Origin", o.Origin)
	res.Logout = p.Status
	if p.Status != http.StatusServiceUnavailable {
		t.Fatalf("logout with the store down: %d %.300s", p.Status, p.Body)
	}
	if _, deleted := SetsCookie(p, o.Cookie); deleted {
		t.Fatal("a failed logout deleted the browser's session cookie (the session itself is still there)")
	}

	// A back-channel logout now: Keycloak is told it failed, or, with a
	// journal, that it worked.
	o.KC.EndSession(bobSIDs[0])
	for _, d := range o.KC.LogoutDeliveries() {
		if d.SessionID == bobSIDs[0] {
			res.Backchannel = d.Status
		}
	}
	if want := map[bool]int{false: http.StatusServiceUnavailable, true: http.StatusOK}[o.Journal]; res.Backchannel != want {
		t.Fatalf("back-channel logout with the store down answered %d, want %d", res.Backchannel, want)
	}
	bobCookie := bob.Cookie(o.Protected, o.Cookie)
	loggedOut := func(when string) {
		if !o.Journal {
			return
		}
		b := NewBrowser(t)
		u, _ := url.Parse(o.Protected)
		b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: o.Cookie, Value: bobCookie.Value, Path: "/"}})
		if p := b.Do(http.MethodGet, o.Protected, nil, "Accept", "application/json"); p.Status == http.StatusOK {
			t.Fatalf("%s: bob's session was served after its back-channel logout was accepted: %.300s", when, p.Body)
		}
	}
	loggedOut("during the outage")

	o.Repair()

	loggedOut("right after the repair")
	// The same cookie works again, for the same user.
	deadline = time.Now().Add(20 * time.Second)
	for {
		loggedOut("after the repair")
		p := alice.Do(http.MethodGet, o.Protected, nil)
		if p.Status == http.StatusOK {
			if o.Whoami(p) != aliceSub {
				t.Fatalf("after recovery the cookie was served for %q: %.300s", o.Whoami(p), p.Body)
			}
			break
		}
		if p.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after recovery: %d %.300s", p.Status, p.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := alice.Cookie(o.Protected, o.Cookie); c == nil || c.Value != cookie.Value {
		t.Fatal("the session cookie changed during the outage")
	}
	loggedOut("once the store serves sessions again")
	// New logins work.
	if p := NewBrowser(t).Login(o.Protected, "alice"); o.Whoami(p) != aliceSub {
		t.Fatalf("login after recovery: %d %.300s", p.Status, p.Body)
	}
	// Logout works, and the old cookie is then refused.
	p = alice.Do(http.MethodPost, o.Logout, url.Values{"csrf_token": {csrf}}, "Origin", o.Origin)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("logout after recovery: %d %.300s", p.Status, p.Body)
	}
	if _, deleted := SetsCookie(p, o.Cookie); !deleted {
		t.Fatal("logout did not delete the cookie")
	}
	replay := NewBrowser(t)
	u, _ := url.Parse(o.Protected)
	replay.Client.Jar.SetCookies(u, []*http.Cookie{{Name: o.Cookie, Value: cookie.Value, Path: "/"}})
	if p := replay.Do(http.MethodGet, o.Protected, nil, "Accept", "application/json"); p.Status != http.StatusUnauthorized {
		t.Fatalf("the logged-out cookie: %d %.300s", p.Status, p.Body)
	}
	t.Logf("store outage: session requests %v; callback %d; logout %d; back-channel logout %d; recovered with the same cookie",
		res.DuringOutage, res.Callback, res.Logout, res.Backchannel)
	return res
}
