package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// A user disabled, deleted or logged out in a real Keycloak
// (CLOAKROOM_TEST_KEYCLOAK) stops being served by the gateway:
//
//   - api routes with `introspect: true` refuse the user's still unexpired
//     access token within the introspection cache's 5 s (plus a margin),
//     and never accept it again;
//   - api routes without introspection accept it until it expires, as
//     docs/gateway.md says (only `exp` is checked);
//   - a browser session is served at most until its access token's refresh
//     point (exp - login.DefaultRefreshBefore): Keycloak refuses the
//     refresh, the gateway ends the session, and the old cookie never
//     works again; a control user's session is refreshed and carries on.
//
// Neither test needs Chromium: tokens come from the password grant, the
// browser login is a cookie-jar client filling in Keycloak's login form.

const (
	// introspectTTL is the gateway's introspection cache (gateway.go).
	introspectTTL = 5 * time.Second
	// revokeMargin covers request latency on a loaded machine.
	revokeMargin = 2 * time.Second
	// apiTokenLifespan: long enough that the introspection deadline falls
	// well before exp, so a 401 cannot come from expiry.
	apiTokenLifespan = 30
	// browserTokenLifespan: the refresh point (exp - 30 s) is ~10 s after
	// the login, so the session is served with the old token for a while
	// and then has to go to Keycloak.
	browserTokenLifespan = 40
)

// newRevokeRealm imports the conformance realm with a short access token
// lifespan and checks that Keycloak kept it. Unlike newRealKC it does not
// need Chromium.
func newRevokeRealm(t *testing.T, realm string, lifespan int) *realKC {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	k := &realKC{t: t, base: base, realm: realm}
	data, err := os.ReadFile("../interop/conformance/testdata/conformance-realm.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	rep["realm"] = realm
	rep["accessTokenLifespan"] = lifespan
	k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", rep, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0) })
	var got struct {
		AccessTokenLifespan int `json:"accessTokenLifespan"`
	}
	if err := json.Unmarshal(k.call(http.MethodGet, "/admin/realms/"+realm, nil, http.StatusOK), &got); err != nil || got.AccessTokenLifespan != lifespan {
		t.Fatalf("Keycloak did not keep accessTokenLifespan %d: %d, %v", lifespan, got.AccessTokenLifespan, err)
	}
	// The gateway's client: confidential, code flow for the browser,
	// direct grants for the test's bearer tokens, its own id in aud (so
	// Keycloak 26.7 lets it introspect them). No back-channel logout URL:
	// the browser test isolates the refresh path (back-channel logout has
	// its own test, TestRealKeycloakGatewayBackchannelLogout).
	k.call(http.MethodPost, "/admin/realms/"+realm+"/clients", map[string]any{
		"clientId": "gateway", "enabled": true, "publicClient": false, "secret": "gateway-secret",
		"standardFlowEnabled": true, "directAccessGrantsEnabled": true, "frontchannelLogout": false,
		"redirectUris": []string{"http://127.0.0.1:*"},
		"attributes":   map[string]string{"pkce.code.challenge.method": "S256"},
		"protocolMappers": []any{map[string]any{
			"name": "audience-gateway", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]string{"included.client.audience": "gateway", "access.token.claim": "true", "introspection.token.claim": "true"},
		}},
	}, http.StatusCreated)
	return k
}

// addUser creates an enabled user with password name+"-pw" and returns its id.
func (k *realKC) addUser(name string) string {
	k.t.Helper()
	k.call(http.MethodPost, "/admin/realms/"+k.realm+"/users", map[string]any{
		"username": name, "enabled": true, "email": name + "@example.com", "emailVerified": true,
		"firstName": name, "lastName": "Revoke",
		"credentials": []any{map[string]any{"type": "password", "value": name + "-pw", "temporary": false}},
	}, http.StatusCreated)
	return k.userID(name)
}

func (k *realKC) disableUser(id string) {
	k.call(http.MethodPut, "/admin/realms/"+k.realm+"/users/"+id, map[string]any{"enabled": false}, http.StatusNoContent)
}

func (k *realKC) deleteUser(id string) {
	k.call(http.MethodDelete, "/admin/realms/"+k.realm+"/users/"+id, nil, http.StatusNoContent)
}

func (k *realKC) logoutUser(id string) {
	k.call(http.MethodPost, "/admin/realms/"+k.realm+"/users/"+id+"/logout", nil, http.StatusNoContent)
}

// revokeGateway runs an in-process gateway with an introspecting api route
// (/intro), a plain api route (/plain) and a browser route (/), in front of
// an upstream that counts what reaches it.
type revokeGateway struct {
	url string
	mu  sync.Mutex
	hit map[string]string // path → X-Forwarded-User seen by the upstream
	tok map[string]string // path → X-Forwarded-Access-Token seen by the upstream
}

func (g *revokeGateway) seen(path string) (user, token string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	user, ok = g.hit[path]
	return user, g.tok[path], ok
}

func startRevokeGateway(t *testing.T, k *realKC) *revokeGateway {
	t.Helper()
	rg := &revokeGateway{hit: map[string]string{}, tok: map[string]string{}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := gateway.DefaultHeaders
		rg.mu.Lock()
		rg.hit[r.URL.Path] = r.Header.Get(h.User)
		rg.tok[r.URL.Path] = r.Header.Get(h.AccessToken)
		rg.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get(h.User)})
	}))
	t.Cleanup(up.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rg.url = "http://" + ln.Addr().String()
	g, err := gateway.New(context.Background(), gateway.Config{
		Listen: ln.Addr().String(), PublicURL: rg.url,
		Issuer: k.issuer(), ClientID: "gateway", ClientSecret: "gateway-secret",
		// The upstream reads the session's access token to know its exp.
		ForwardAccessToken: true,
		Session: gateway.SessionConfig{
			Store:          "sqlite:" + filepath.Join(t.TempDir(), "sessions.db"),
			EncryptionKeys: []string{session.GenerateKey()},
		},
		Routes: []gateway.Route{
			{Name: "intro", Path: "/intro", Upstream: up.URL, Mode: "api", Introspect: true},
			{Name: "plain", Path: "/plain", Upstream: up.URL, Mode: "api"},
			{Name: "app", Path: "/", Upstream: up.URL},
		},
	}, gateway.WithLogger(quiet))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Close()
	})
	return rg
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get sends GET url with the headers and returns status, body and headers.
func get(t *testing.T, u string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header
}

// tokenExpiry reads a JWT's exp without verifying it (the gateway does).
func tokenExpiry(t *testing.T, jwt string) time.Time {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20q", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Exp == 0 {
		t.Fatalf("no exp in the token: %v", err)
	}
	return time.Unix(c.Exp, 0)
}

// passwordTokens runs the password grant at the gateway's client and
// returns the access and refresh tokens.
func passwordTokens(t *testing.T, k *realKC, user string) (access, refresh string) {
	t.Helper()
	res, err := http.PostForm(k.issuer()+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"gateway"}, "client_secret": {"gateway-secret"},
		"username": {user}, "password": {user + "-pw"}, "scope": {"openid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("password grant for %s: status %d, %v", user, res.StatusCode, err)
	}
	return tok.AccessToken, tok.RefreshToken
}

// keycloakPost posts a form to one of the realm's OIDC endpoints as the
// gateway's client and returns the status and the raw answer.
func keycloakPost(t *testing.T, k *realKC, endpoint string, form url.Values) (int, string) {
	t.Helper()
	form.Set("client_id", "gateway")
	form.Set("client_secret", "gateway-secret")
	res, err := http.PostForm(k.issuer()+"/protocol/openid-connect/"+endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestRealKeycloakRevokeIntrospection: an api route with introspection
// refuses the token of a user who is disabled, deleted or logged out by an
// administrator within the 5 s cache (+ margin), and never accepts it again
// although the token has not expired; an api route without introspection
// accepts the disabled user's token until exp and refuses it afterwards.
func TestRealKeycloakRevokeIntrospection(t *testing.T) {
	k := newRevokeRealm(t, "e2e-revoke-api", apiTokenLifespan)
	gw := startRevokeGateway(t, k)

	for _, tc := range []struct {
		name   string
		action func(k *realKC, id string)
		// plain: also follow the route without introspection until exp.
		plain bool
	}{
		{name: "disabled", action: (*realKC).disableUser, plain: true},
		{name: "deleted", action: (*realKC).deleteUser},
		{name: "logged-out", action: (*realKC).logoutUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &realKC{t: t, base: k.base, realm: k.realm} // fails this subtest
			user := "api-" + tc.name
			id := k.addUser(user)
			tok, _ := passwordTokens(t, k, user)
			exp := tokenExpiry(t, tok)
			auth := map[string]string{"Authorization": "Bearer " + tok}
			// Both routes take the token; the introspecting route's
			// answer is now cached.
			for _, path := range []string{"/intro/warm", "/plain/warm"} {
				if code, body, _ := get(t, gw.url+path, auth); code != http.StatusOK {
					t.Fatalf("%s before the revocation: %d %s", path, code, body)
				}
				if u, _, _ := gw.seen(path); u != id {
					t.Fatalf("%s: the upstream saw user %q, want %s", path, u, id)
				}
			}

			t0 := time.Now()
			tc.action(k, id)
			adminCall := time.Since(t0)
			deadline := t0.Add(introspectTTL + revokeMargin) // 401 by then
			if !exp.After(deadline.Add(2 * time.Second)) {
				t.Fatalf("the token expires at %v, too close to the deadline %v for the test to mean anything", exp, deadline)
			}
			// What Keycloak's introspection now says about the token.
			code, in := keycloakPost(t, k, "token/introspect", url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
			t.Logf("Keycloak's introspection after the admin call: %d %s", code, in)
			if code != http.StatusOK || !strings.Contains(in, `"active":false`) {
				t.Errorf("Keycloak's introspection: %d %s; want active false", code, in)
			}

			var first401 time.Duration = -1
			end := deadline.Add(2 * time.Second) // keep watching: never 200 again
			if tc.plain {
				end = exp.Add(revokeMargin) // and the plain route until after exp
			}
			var plainLast200, plainFirst401 time.Time
			for i := 0; time.Now().Before(end); i++ {
				path := "/intro/poll-" + tc.name
				sent := time.Now() // a 200 counts from when the request was sent
				code, body, hdr := get(t, gw.url+path, auth)
				el := time.Since(t0)
				switch {
				case code == http.StatusUnauthorized:
					if !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
						t.Errorf("401 without invalid_token: %q %s", hdr.Get("WWW-Authenticate"), body)
					}
					if first401 < 0 {
						first401 = el
					}
				case code == http.StatusOK && first401 >= 0:
					t.Fatalf("200 at %v after the admin call, after a 401 at %v", el, first401)
				case code == http.StatusOK && sent.After(deadline):
					t.Fatalf("200 for a request sent %v after the admin call: more than the %v cache + %v margin", sent.Sub(t0), introspectTTL, revokeMargin)
				case code != http.StatusOK:
					t.Fatalf("%s: %d %s", path, code, body)
				}
				if tc.plain {
					sent := time.Now()
					code, body, _ := get(t, gw.url+"/plain/poll", auth)
					now := time.Now()
					switch {
					case code == http.StatusOK && sent.Before(exp.Add(revokeMargin)):
						plainLast200 = now
					case code == http.StatusUnauthorized && !now.Before(exp):
						if plainFirst401.IsZero() {
							plainFirst401 = now
						}
					default:
						t.Fatalf("/plain at %v (exp %v): %d %s", now.Sub(t0), exp.Sub(t0), code, body)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if first401 < 0 {
				t.Fatalf("the introspecting route never refused the token")
			}
			t.Logf("%s user: admin call took %v; first 401 on the introspecting route %v after the admin call started (cache %v)",
				tc.name, adminCall.Round(time.Millisecond), first401.Round(time.Millisecond), introspectTTL)
			if tc.plain {
				// Served past the introspection deadline, up to exp.
				if plainLast200.IsZero() || plainLast200.Before(exp.Add(-2*time.Second)) {
					t.Errorf("the route without introspection stopped taking the token at %v, before exp (%v after the admin call)", plainLast200.Sub(t0), exp.Sub(t0))
				}
				if plainFirst401.IsZero() {
					t.Errorf("the route without introspection still takes the token after exp")
				}
				t.Logf("route without introspection: last 200 %v, first 401 %v after the admin call; the token's exp %v after it",
					plainLast200.Sub(t0).Round(time.Millisecond), plainFirst401.Sub(t0).Round(time.Millisecond), exp.Sub(t0).Round(time.Millisecond))
			}
		})
	}
}

// httpLogin logs user in through the gateway and Keycloak's login form
// with a cookie-jar client, lands on path and returns the gateway's session
// cookie.
func httpLogin(t *testing.T, gw *revokeGateway, k *realKC, path, user string) *http.Cookie {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	res, err := c.Get(gw.url + path)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.HasPrefix(res.Request.URL.String(), k.issuer()+"/protocol/openid-connect/auth?") {
		t.Fatalf("%s: not sent to the realm's login page: %s", path, res.Request.URL)
	}
	// kcLoginForm and formAction: soak_load_test.go.
	m := formAction.FindStringSubmatch(kcLoginForm.FindString(string(page)))
	if m == nil {
		t.Fatalf("no login form on Keycloak's page: %.500s", page)
	}
	res, err = c.PostForm(html.UnescapeString(m[1]), url.Values{"username": {user}, "password": {user + "-pw"}, "credentialId": {""}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.String() != gw.url+path {
		t.Fatalf("logging in as %s: %d at %s: %.500s", user, res.StatusCode, res.Request.URL, body)
	}
	u, _ := url.Parse(gw.url)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "cloakroom" {
			return &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	t.Fatalf("no session cookie after the login")
	return nil
}

// TestRealKeycloakRevokeBrowserSession: the browser session of a user
// disabled or deleted in Keycloak is served at most until the refresh
// point of its access token (exp - login.DefaultRefreshBefore), then
// refused (401 for JSON, a login redirect for a page), and the old session
// cookie never works again; a control user's session is refreshed at the
// same point and goes on.
func TestRealKeycloakRevokeBrowserSession(t *testing.T) {
	k := newRevokeRealm(t, "e2e-revoke-browser", browserTokenLifespan)
	gw := startRevokeGateway(t, k)

	type user struct {
		name    string
		action  func(id string)
		id      string
		cookie  *http.Cookie
		refresh string    // a refresh token of the user's, from a password grant
		point   time.Time // the session's refresh point
	}
	users := []*user{
		{name: "web-disabled", action: k.disableUser},
		{name: "web-deleted", action: k.deleteUser},
		{name: "web-control"},
	}
	for _, u := range users {
		u.id = k.addUser(u.name)
		u.cookie = httpLogin(t, gw, k, "/home-"+u.name, u.name)
		who, at, _ := gw.seen("/home-" + u.name)
		if who != u.id || at == "" {
			t.Fatalf("%s: the upstream saw user %q and token %t", u.name, who, at != "")
		}
		u.point = tokenExpiry(t, at).Add(-login.DefaultRefreshBefore)
		_, u.refresh = passwordTokens(t, k, u.name)
	}
	first := users[0].point
	if d := time.Until(first); d < 3*time.Second {
		t.Fatalf("the first refresh point is only %v away; the logins took too long for the test to mean anything", d)
	}

	jsonReq := func(u *user) map[string]string {
		return map[string]string{"Cookie": u.cookie.String(), "Accept": "application/json"}
	}
	for _, u := range users {
		if code, body, _ := get(t, gw.url+"/before-"+u.name, jsonReq(u)); code != http.StatusOK {
			t.Fatalf("%s before the revocation: %d %s", u.name, code, body)
		}
	}

	t0 := time.Now()
	acted := map[string]time.Duration{}
	for _, u := range users {
		if u.action != nil {
			u.action(u.id)
			acted[u.name] = time.Since(t0)
		}
	}
	// What Keycloak answers to a refresh for these users now.
	for _, u := range users[:2] {
		code, body := keycloakPost(t, k, "token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {u.refresh}})
		t.Logf("Keycloak's answer to a refresh for %s: %d %s", u.name, code, body)
		if code != http.StatusBadRequest || !strings.Contains(body, `"invalid_grant"`) {
			t.Errorf("refresh for %s: %d %s; want 400 invalid_grant (the gateway ends a session only on invalid_grant, invalid_token or unauthorized_client)", u.name, code, body)
		}
	}

	last := users[0].point
	for _, u := range users {
		if u.point.After(last) {
			last = u.point
		}
	}
	end := last.Add(revokeMargin + 3*time.Second)
	firstRefusal := map[string]time.Time{}
	lastServed := map[string]time.Time{}
	for i := 0; time.Now().Before(end); i++ {
		for _, u := range users {
			path := "/poll-" + u.name
			sent := time.Now()
			code, body, _ := get(t, gw.url+path, jsonReq(u))
			now := time.Now()
			switch {
			case code == http.StatusOK && u.action == nil:
				lastServed[u.name] = now
			case code == http.StatusOK && !firstRefusal[u.name].IsZero():
				t.Fatalf("%s served again %v after the admin call, after a refusal at %v", u.name, now.Sub(t0), firstRefusal[u.name].Sub(t0))
			case code == http.StatusOK && sent.After(u.point.Add(revokeMargin)):
				t.Fatalf("%s still served (request sent %v after the admin call, %v after its refresh point)", u.name, sent.Sub(t0), sent.Sub(u.point))
			case code == http.StatusOK:
				lastServed[u.name] = now
			case code == http.StatusUnauthorized && u.action != nil && strings.Contains(body, `"not_authenticated"`):
				if firstRefusal[u.name].IsZero() {
					firstRefusal[u.name] = now
				}
			default:
				t.Fatalf("%s at %v after the admin call: %d %s", u.name, now.Sub(t0), code, body)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, u := range users {
		if u.action == nil {
			// The control user was served past its refresh point: the
			// refresh works, so the others' refusal is Keycloak's.
			if lastServed[u.name].Before(u.point.Add(revokeMargin)) {
				t.Errorf("the control user was last served %v after the admin calls, before its refresh point + margin (%v)", lastServed[u.name].Sub(t0), u.point.Add(revokeMargin).Sub(t0))
			}
			continue
		}
		if firstRefusal[u.name].IsZero() {
			t.Fatalf("%s was never refused", u.name)
		}
		served := "never served after the admin call"
		if !lastServed[u.name].IsZero() {
			served = "last served " + lastServed[u.name].Sub(t0).Round(time.Millisecond).String() + " after it"
		}
		t.Logf("%s: admin call done %v after t0; refresh point %v after it; first refusal %v after it (%v after the refresh point); %s",
			u.name, acted[u.name].Round(time.Millisecond), u.point.Sub(t0).Round(time.Millisecond),
			firstRefusal[u.name].Sub(t0).Round(time.Millisecond), firstRefusal[u.name].Sub(u.point).Round(time.Millisecond), served)
		// A page (not JSON) with the old cookie: sent to Keycloak's login.
		code, _, hdr := get(t, gw.url+"/page-"+u.name, map[string]string{"Cookie": u.cookie.String(), "Accept": "text/html"})
		if loc := hdr.Get("Location"); code != http.StatusFound && code != http.StatusSeeOther || !strings.HasPrefix(loc, k.issuer()+"/protocol/openid-connect/auth?") {
			t.Errorf("%s: a page with the old cookie: %d to %q; want a redirect to Keycloak's login", u.name, code, loc)
		}
		if who, _, ok := gw.seen("/page-" + u.name); ok {
			t.Errorf("%s: the upstream was reached (as %q) with the ended session's cookie", u.name, who)
		}
	}
}
