package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// secrets collects every secret value a flow used, with what it is.
type secrets struct {
	mu   sync.Mutex
	vals map[string]string // value → kind
}

func (s *secrets) add(kind, v string) {
	if len(v) < 8 {
		return // empty or a placeholder: nothing to look for
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals == nil {
		s.vals = map[string]string{}
	}
	s.vals[v] = kind
}

// needles returns what to search for: each value and, for JWTs, their
// payload and signature (a log line could hold one part). JWT headers are
// shared by every token of a key and are not secret.
func (s *secrets) needles() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for v, kind := range s.vals {
		out[v] = kind
		if parts := strings.Split(v, "."); len(parts) == 3 {
			for i, what := range map[int]string{1: " (payload)", 2: " (signature)"} {
				if len(parts[i]) >= 16 { // an unsigned token has an empty signature
					out[parts[i]] = kind + what
				}
			}
		}
	}
	return out
}

func (s *secrets) count() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[string]int{}
	for _, kind := range s.vals {
		n[kind]++
	}
	return n
}

// keycloakRecorder sits in the gateway's HTTP client and notes every
// secret the gateway sends to Keycloak or receives from it: codes, PKCE
// verifiers, refresh tokens, tokens sent to introspection, the client
// secret, and the tokens of every token endpoint answer.
type keycloakRecorder struct {
	base http.RoundTripper
	s    *secrets
}

func (k *keycloakRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, pw, ok := req.BasicAuth(); ok {
		if p, err := url.QueryUnescape(pw); err == nil {
			k.s.add("client secret", p)
		}
	}
	if req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		for field, kind := range map[string]string{
			"code": "authorization code", "code_verifier": "PKCE verifier", "refresh_token": "refresh token",
			"token": "token sent to introspection", "client_secret": "client secret",
		} {
			for _, v := range form[field] {
				k.s.add(kind, v)
			}
		}
	}
	resp, err := k.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/protocol/openid-connect/token") {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var tok map[string]any
	_ = json.Unmarshal(body, &tok)
	for field, kind := range map[string]string{"access_token": "access token", "id_token": "ID token", "refresh_token": "refresh token"} {
		if v, ok := tok[field].(string); ok {
			k.s.add(kind, v)
		}
	}
	return resp, nil
}

// seen is one answer of the gateway as the browser got it.
type seen struct {
	method, url string
	status      int
	header      http.Header
	body        string
	auth        string // the request's own Authorization header
}

// browserRecorder keeps every answer that comes from the gateway.
type browserRecorder struct {
	base http.RoundTripper
	host string
	mu   sync.Mutex
	got  []seen
}

func (b *browserRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(req)
	if err != nil || req.URL.Host != b.host {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	b.mu.Lock()
	b.got = append(b.got, seen{req.Method, req.URL.String(), resp.StatusCode, resp.Header.Clone(), string(body), req.Header.Get("Authorization")})
	b.mu.Unlock()
	return resp, nil
}

func (b *browserRecorder) browser(t *testing.T) *faulttest.Browser {
	br := faulttest.NewBrowser(t)
	br.Client.Transport = b
	return br
}

// TestNoSecretsInLogsOrPages runs a full flow through the gateway at debug
// log level: logins (one through a forged code and one replayed callback),
// requests that refresh the session's tokens (the access token lives 20 s,
// less than the 30 s before expiry at which the gateway refreshes), bearer
// calls (valid, expired, for another audience, malformed, an ID token),
// introspection (working and failing), RP logout, back-channel logout
// (delivered, replayed, tampered). Then every log line and every answer the
// browser got from the gateway (bodies, error pages, headers) is searched
// for every token (access, ID, refresh, logout; for JWTs also payload and
// signature alone), the client secret, every authorization code, PKCE
// verifier, state and session cookie value used. The only places allowed
// to carry one are those the protocol needs: the session cookie in its
// Set-Cookie, the login's state in the redirect to Keycloak's
// authorization endpoint (and the link Go's http.Redirect puts in its
// body), and the ID token (id_token_hint) and logout state in the redirect
// to Keycloak's end-session endpoint. (The test upstream echoes the
// requests it gets; a caller's own bearer token, passed on in its
// Authorization header, is not counted in that echo.)
func TestNoSecretsInLogsOrPages(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *keycloaktest.RealmConfig) { c.AccessTokenLifespan = 20 * time.Second })
	s := &secrets{}
	s.add("client secret", "gateway-secret")
	g := e.start(func(c *gateway.Config) {
		faultRoutes(e)(c)
		c.Log.Level = "debug"
	}, gateway.WithHTTPClient(&http.Client{Transport: &keycloakRecorder{base: http.DefaultTransport, s: s}, Timeout: 10 * time.Second}))
	gwURL, _ := url.Parse(g.url)
	rec := &browserRecorder{base: http.DefaultTransport, host: gwURL.Host}
	aliceSub, _ := e.kc.UserID("alice")

	// Login, then requests that refresh, a JSON request and /me.
	alice := rec.browser(t)
	if p := alice.Login(g.url+"/x?q=1", "alice"); forwardedUser(p) != aliceSub {
		t.Fatalf("login: %d %.200s", p.Status, p.Body)
	}
	for range 3 {
		if p := alice.Get(g.url + "/x"); forwardedUser(p) != aliceSub {
			t.Fatalf("request: %d %.200s", p.Status, p.Body)
		}
	}
	alice.Get(g.url+"/x", "Accept", "application/json")
	alice.Get(g.url + "/_cloakroom/me")

	// Failed logins: a forged code, and a callback replayed.
	other := rec.browser(t)
	cb, _ := url.Parse(other.CallbackURL(g.url+"/y", "bob"))
	s.add("authorization code", cb.Query().Get("code"))
	q := cb.Query()
	q.Set("code", "forged-"+q.Get("code"))
	forged := *cb
	forged.RawQuery = q.Encode()
	s.add("authorization code", q.Get("code"))
	if p := other.Get(forged.String()); p.Status != http.StatusBadRequest {
		t.Fatalf("forged code: %d %.200s", p.Status, p.Body)
	}
	third := rec.browser(t)
	good := third.CallbackURL(g.url+"/z", "bob")
	third.Get(good)
	if p := third.Get(good); p.Status != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d %.200s", p.Status, p.Body)
	}
	third.Get(g.url + "/_cloakroom/callback?error=access_denied&error_description=nope&state=abc")

	// Bearer calls.
	api := rec.browser(t)
	for _, opts := range [][]keycloaktest.TokenOption{
		nil, {keycloaktest.WithExpired()}, {keycloaktest.WithAudience("someone-else")},
		{keycloaktest.WithKind(keycloaktest.IDToken)}, {keycloaktest.WithKind(keycloaktest.RefreshToken)},
		{keycloaktest.WithKeyID("unknown-kid")}, {keycloaktest.WithUnsigned()},
	} {
		tok := e.kc.MustToken(t, "bob", "gateway", opts...)
		s.add("bearer token", tok)
		api.Get(g.url+"/api/x", "Authorization", "Bearer "+tok)
		api.Get(g.url+"/intro/x", "Authorization", "Bearer "+tok)
		api.Get(g.url+"/_cloakroom/me", "Authorization", "Bearer "+tok)
	}
	truncated := e.kc.MustToken(t, "bob", "gateway")
	s.add("bearer token", truncated)
	api.Get(g.url+"/api/x", "Authorization", "Bearer "+truncated[:len(truncated)-5])
	api.Get(g.url+"/api/x", "Authorization", "Bearer not-a-jwt-but-a-secret-string")
	s.add("bearer token", "not-a-jwt-but-a-secret-string")
	// Introspection failing.
	e.idp.SetFault(keycloaktest.Fault{Status: http.StatusInternalServerError, Paths: []string{"/introspect"}})
	failing := e.kc.MustToken(t, "bob", "gateway")
	s.add("bearer token", failing)
	if p := api.Get(g.url+"/intro/x", "Authorization", "Bearer "+failing); p.Status != http.StatusServiceUnavailable {
		t.Fatalf("introspection failing: %d %.200s", p.Status, p.Body)
	}
	e.idp.ClearFault()

	// RP logout: the confirmation page, a refused POST, then the real one.
	alice.Get(g.url + "/_cloakroom/logout")
	alice.Follow(http.MethodPost, g.url+"/_cloakroom/logout", url.Values{"csrf_token": {"wrong"}}, "Origin", g.url)
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.Unmarshal([]byte(alice.Get(g.url+"/_cloakroom/me").Body), &me)
	if p := alice.Follow(http.MethodPost, g.url+"/_cloakroom/logout", url.Values{"csrf_token": {me.CSRF}}, "Origin", g.url); p.Status != http.StatusOK {
		t.Fatalf("logout: %d %.200s", p.Status, p.Body)
	}

	// Back-channel logout: delivered by Keycloak, replayed, tampered.
	carol := rec.browser(t)
	carol.Login(g.url+"/x", "alice")
	sids := e.kc.SessionIDs("alice")
	if len(sids) == 0 {
		t.Fatal("no Keycloak session")
	}
	e.kc.EndSession(sids[len(sids)-1])
	var logoutToken string
	for _, d := range e.kc.LogoutDeliveries() {
		s.add("logout token", d.Token)
		logoutToken = d.Token
	}
	if logoutToken == "" {
		t.Fatal("no back-channel logout delivered")
	}
	bc := rec.browser(t)
	for _, body := range []string{"logout_token=" + logoutToken, "logout_token=" + logoutToken[:len(logoutToken)-4] + "AAAA"} {
		if p := bc.Do(http.MethodPost, g.url+"/_cloakroom/backchannel-logout", nil); p.Status != http.StatusBadRequest {
			t.Fatalf("back-channel logout without a body: %d", p.Status)
		}
		req, _ := http.NewRequest(http.MethodPost, g.url+"/_cloakroom/backchannel-logout", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := bc.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("replayed or tampered logout token: %d", resp.StatusCode)
		}
	}
	if p := carol.Do(http.MethodGet, g.url+"/x", nil, "Accept", "application/json"); p.Status != http.StatusUnauthorized {
		t.Fatalf("session after back-channel logout: %d", p.Status)
	}

	// What the browser got: states, end-session parameters, cookies.
	rec.mu.Lock()
	answers := append([]seen(nil), rec.got...)
	rec.mu.Unlock()
	for _, a := range answers {
		for _, line := range a.header.Values("Set-Cookie") {
			if c, err := http.ParseSetCookie(line); err == nil && c.Name == "cloakroom" {
				s.add("session cookie", c.Value)
			}
		}
		if loc, err := url.Parse(a.header.Get("Location")); err == nil {
			switch {
			case strings.HasSuffix(loc.Path, "/protocol/openid-connect/auth"):
				s.add("state", loc.Query().Get("state"))
			case strings.HasSuffix(loc.Path, "/protocol/openid-connect/logout"):
				s.add("logout state", loc.Query().Get("state"))
			}
		}
	}

	needles := s.needles()
	kinds := s.count()
	for _, k := range []string{"access token", "ID token", "refresh token", "logout token", "client secret", "authorization code", "PKCE verifier", "state", "logout state", "session cookie", "bearer token", "token sent to introspection"} {
		if kinds[k] == 0 {
			t.Errorf("the flow used no %s: the test would not notice it leaking", k)
		}
	}
	logs := g.log.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatal("no debug logs captured")
	}
	for v, kind := range needles {
		if strings.Contains(logs, v) {
			t.Errorf("the logs contain a %s", kind)
		}
	}
	var hintSeen, stateSeen int
	for _, a := range answers {
		// The test upstream echoes the request it got, including the
		// caller's own Authorization header, which the gateway passes on
		// (like any reverse proxy): that is the caller's token going where
		// the caller sent it, not the gateway writing it.
		body := a.body
		if tok, ok := strings.CutPrefix(a.auth, "Bearer "); ok && tok != "" {
			body = strings.ReplaceAll(body, tok, "[the caller's own token]")
		}
		// Go's http.Redirect repeats the Location in a short HTML body.
		allowedInBody := map[string]bool{}
		if loc, err := url.Parse(a.header.Get("Location")); err == nil && strings.HasSuffix(loc.Path, "/protocol/openid-connect/auth") {
			allowedInBody[loc.Query().Get("state")] = true
		}
		for v, kind := range needles {
			if !allowedInBody[v] && strings.Contains(body, v) {
				t.Errorf("%s %s (%d): the body contains a %s", a.method, a.url, a.status, kind)
			}
		}
		for name, values := range a.header {
			for _, hv := range values {
				allowed := map[string]bool{}
				switch name {
				case "Set-Cookie":
					if c, err := http.ParseSetCookie(hv); err == nil && c.Name == "cloakroom" {
						allowed[c.Value] = true
					}
				case "Location":
					if loc, err := url.Parse(hv); err == nil {
						switch {
						case strings.HasSuffix(loc.Path, "/protocol/openid-connect/auth"):
							allowed[loc.Query().Get("state")] = true
							stateSeen++
						case strings.HasSuffix(loc.Path, "/protocol/openid-connect/logout"):
							hint := loc.Query().Get("id_token_hint")
							allowed[hint] = true
							if parts := strings.Split(hint, "."); len(parts) == 3 {
								allowed[parts[1]], allowed[parts[2]] = true, true
							}
							allowed[loc.Query().Get("state")] = true
							hintSeen++
						}
					}
				}
				for v, kind := range needles {
					if !allowed[v] && strings.Contains(hv, v) {
						t.Errorf("%s %s (%d): header %s contains a %s", a.method, a.url, a.status, name, kind)
					}
				}
			}
		}
	}
	if hintSeen != 1 || stateSeen == 0 {
		t.Errorf("expected one redirect to the end-session endpoint (saw %d) and redirects to the authorization endpoint (saw %d)", hintSeen, stateSeen)
	}
	var summary []string
	for k, n := range kinds {
		summary = append(summary, k+": "+itoa(n))
	}
	sort.Strings(summary)
	t.Logf("searched %d log bytes and %d gateway answers for %d secret values (%s)", len(logs), len(answers), len(needles), strings.Join(summary, ", "))
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
