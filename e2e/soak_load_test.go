package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The chaos soak's traffic: a round-robin load balancer in front of the
// gateways, browsers that log in through Keycloak's real login form and
// log out, bearer clients, a replayer of logged-out cookies and per-instance
// probes.

// soakLB is a round-robin load balancer built on httputil.ReverseProxy.
// Like nginx's proxy_next_upstream it tries the next gateway when one
// refuses the connection (and, for GET and HEAD, when it drops it);
// when none can answer it says 503 with Retry-After itself.
type soakLB struct {
	backends  []string // host:port
	next      atomic.Uint64
	downUntil []atomic.Int64 // unix nanoseconds
	transport *http.Transport
	retries   atomic.Int64
}

func newSoakLB(backends []string) (*soakLB, http.Handler) {
	lb := &soakLB{
		backends:  backends,
		downUntil: make([]atomic.Int64, len(backends)),
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = backends[0] // the transport picks the gateway
			pr.Out.Host = pr.In.Host      // the gateways' public_url is the LB
		},
		Transport: lb,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("X-Soak-LB", "no-backend")
			http.Error(w, "load balancer: no gateway answered: "+errClass(err), http.StatusServiceUnavailable)
		},
	}
	return lb, rp
}

func (lb *soakLB) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	n := len(lb.backends)
	first := int(lb.next.Add(1) % uint64(n))
	var lastErr error
	tried := 0
	for a := 0; a < 2*n && tried < n; a++ {
		i := (first + a) % n
		if a < n && time.Now().UnixNano() < lb.downUntil[i].Load() {
			continue // marked down; tried in the second round if nothing else answers
		}
		tried++
		out := req.Clone(req.Context())
		out.URL.Host = lb.backends[i]
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		res, err := lb.transport.RoundTrip(out)
		if err == nil {
			res.Header.Set("X-Soak-Backend", strconv.Itoa(i))
			return res, nil
		}
		lastErr = err
		var op *net.OpError
		dial := errors.As(err, &op) && op.Op == "dial"
		if dial {
			lb.downUntil[i].Store(time.Now().Add(time.Second).UnixNano())
		}
		if !dial && req.Method != http.MethodGet && req.Method != http.MethodHead {
			break // the request may have been processed: not retried
		}
		lb.retries.Add(1)
	}
	if lastErr == nil {
		lastErr = errors.New("no backend")
	}
	return nil, lastErr
}

// kcAdmin calls Keycloak's admin API as the master realm's administrator,
// goroutine-safe and returning errors (Keycloak is restarted under it).
type kcAdmin struct {
	base   string // through the latency proxy, like everything else
	user   string
	pass   string
	client *http.Client

	mu  sync.Mutex
	tok string
	exp time.Time
}

func (a *kcAdmin) token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok != "" && time.Until(a.exp) > 10*time.Second {
		return a.tok, nil
	}
	tok, err := grant(ctx, a.client, a.base+"/realms/master/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {a.user}, "password": {a.pass},
	})
	if err != nil {
		return "", err
	}
	a.tok, a.exp = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	return a.tok, nil
}

func (a *kcAdmin) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := a.token(ctx)
		if err != nil {
			return 0, nil, err
		}
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, a.base+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := a.client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusUnauthorized && attempt == 0 {
			a.mu.Lock()
			a.tok = ""
			a.mu.Unlock()
			continue
		}
		return res.StatusCode, data, nil
	}
}

// must is call for the set-up, where any failure ends the test.
func (a *kcAdmin) must(ctx context.Context, method, path string, body any, want int) []byte {
	status, data, err := a.call(ctx, method, path, body)
	if err != nil || (want != 0 && status != want) {
		panic(fmt.Sprintf("keycloak admin %s %s: status %d, %v: %.300s", method, path, status, err, data))
	}
	return data
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func grant(ctx context.Context, c *http.Client, tokenURL string, form url.Values) (tokenResponse, error) {
	var tok tokenResponse
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.Do(req)
	if err != nil {
		return tok, err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return tok, &statusError{status: res.StatusCode, body: truncate(string(data), 200)}
	}
	if err := json.Unmarshal(data, &tok); err != nil || tok.AccessToken == "" {
		return tok, fmt.Errorf("token endpoint: no access token (%v)", err)
	}
	return tok, nil
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// soakUser is a Keycloak user of the soak realm.
type soakUser struct {
	name, password, sub string
}

// browserSession is one logged-in browser: its cookie jar and session
// cookie.
type browserSession struct {
	user    soakUser
	client  *http.Client
	cookie  string // the session cookie's value
	started time.Time
	worker  int
}

var kcLoginForm = regexp.MustCompile(`(?s)<form[^>]*id="kc-form-login"[^>]*>`)
var formAction = regexp.MustCompile(`action="([^"]+)"`)

func (s *soak) newBrowserClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Transport:     s.clientTransport,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (s *soak) isGateway(u *url.URL) bool { return u.Host == s.lbHost }

// login drives a fresh browser through the gateway to Keycloak's login
// form and back to path, as a person would. The error names where it
// failed.
func (s *soak) login(ctx context.Context, user soakUser, path string, worker int) (*browserSession, error) {
	c := s.newBrowserClient()
	target, _ := url.Parse(s.lbURL + path)
	method, form := http.MethodGet, url.Values(nil)
	for hop := 0; hop < 15; hop++ {
		var rd io.Reader
		if form != nil {
			rd = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequestWithContext(ctx, method, target.String(), rd)
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := c.Do(req)
		var status int
		var body string
		var header http.Header
		if s.isGateway(target) {
			if res != nil {
				header = res.Header
			}
			status, body = s.rec.gateway("login:gateway", res, err)
			if err != nil {
				return nil, fmt.Errorf("gateway_unreachable")
			}
		} else {
			s.rec.keycloak("login:keycloak", statusOf(res), err)
			if err != nil {
				return nil, fmt.Errorf("keycloak_%s", errClass(err))
			}
			header, status = res.Header, res.StatusCode
			data, _ := io.ReadAll(io.LimitReader(res.Body, 256<<10))
			res.Body.Close()
			body = string(data)
		}
		method, form = http.MethodGet, nil
		switch {
		case status >= 300 && status < 400:
			next, err := target.Parse(header.Get("Location"))
			if err != nil {
				return nil, fmt.Errorf("bad_redirect")
			}
			target = next
			continue
		case status == http.StatusOK && !s.isGateway(target):
			tag := kcLoginForm.FindString(body)
			m := formAction.FindStringSubmatch(tag)
			if m == nil {
				return nil, fmt.Errorf("keycloak_page_without_login_form")
			}
			next, err := target.Parse(html.UnescapeString(m[1]))
			if err != nil {
				return nil, fmt.Errorf("bad_form_action")
			}
			target, method = next, http.MethodPost
			form = url.Values{"username": {user.name}, "password": {user.password}, "credentialId": {""}}
			continue
		case status == http.StatusOK:
			if got := header.Get("X-Soak-User"); got != user.sub {
				s.rec.violation("login as %s landed on a page served for %q (backend %s)", user.name, got, header.Get("X-Soak-Backend"))
				return nil, fmt.Errorf("wrong_identity")
			}
			b := &browserSession{user: user, client: c, started: time.Now(), worker: worker}
			lb, _ := url.Parse(s.lbURL)
			for _, ck := range c.Jar.Cookies(lb) {
				if ck.Name == s.cookieName {
					b.cookie = ck.Value
				}
			}
			if b.cookie == "" {
				return nil, fmt.Errorf("no_session_cookie")
			}
			return b, nil
		case s.isGateway(target):
			return nil, fmt.Errorf("gateway_%d", status)
		default:
			return nil, fmt.Errorf("keycloak_%d", status)
		}
	}
	return nil, fmt.Errorf("too_many_redirects")
}

func statusOf(res *http.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// sessionOutcome classifies one request made with a session.
type sessionOutcome int

const (
	sessionServed sessionOutcome = iota
	sessionUnavailable
	sessionEnded
	sessionFailed
)

// page requests path with the browser's session through the load balancer.
func (s *soak) page(ctx context.Context, b *browserSession, kind, path string) sessionOutcome {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.lbURL+path, nil)
	req.Header.Set("Accept", "text/html")
	res, err := b.client.Do(req)
	var header http.Header
	if res != nil {
		header = res.Header
	}
	status, _ := s.rec.gateway(kind, res, err)
	switch {
	case status == http.StatusOK:
		if got := header.Get("X-Soak-User"); got != b.user.sub {
			s.rec.violation("session of %s served as %q on %s (backend %s)", b.user.name, got, path, header.Get("X-Soak-Backend"))
			return sessionFailed
		}
		return sessionServed
	case status == http.StatusServiceUnavailable:
		return sessionUnavailable
	case status >= 300 && status < 400 || status == http.StatusUnauthorized:
		return sessionEnded
	}
	return sessionFailed
}

// rpLogout logs the browser out through POST /_cloakroom/logout with the
// session's CSRF token, then follows the browser to Keycloak's end-session
// endpoint and back. It reports whether the gateway ended the session.
func (s *soak) rpLogout(ctx context.Context, b *browserSession, how string) (bool, string) {
	csrf, why := s.csrfToken(ctx, b)
	if csrf == "" {
		return false, why
	}
	return s.rpLogoutWith(ctx, b, csrf, how)
}

// csrfToken reads the session's CSRF token from /_cloakroom/me.
func (s *soak) csrfToken(ctx context.Context, b *browserSession) (string, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.lbURL+"/_cloakroom/me", nil)
	req.Header.Set("Accept", "application/json")
	res, err := b.client.Do(req)
	status, body := s.rec.gateway("rp_logout:me", res, err)
	if status != http.StatusOK {
		return "", fmt.Sprintf("me_%d", status)
	}
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if json.Unmarshal([]byte(body), &me) != nil || me.CSRF == "" {
		return "", "me_without_csrf"
	}
	return me.CSRF, ""
}

func (s *soak) rpLogoutWith(ctx context.Context, b *browserSession, csrf, how string) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.lbURL+"/_cloakroom/logout", strings.NewReader(url.Values{"csrf_token": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.lbURL)
	res, err := b.client.Do(req)
	var loc string
	if res != nil {
		loc = res.Header.Get("Location")
	}
	status, _ := s.rec.gateway("rp_logout:post", res, err)
	if status < 300 || status >= 400 {
		return false, fmt.Sprintf("logout_%d", status)
	}
	// The gateway ended the session; the browser goes on to Keycloak.
	s.loggedOut(b, how)
	next, err := url.Parse(s.lbURL + "/_cloakroom/logout")
	if err == nil {
		next, err = next.Parse(loc)
	}
	for hop := 0; err == nil && hop < 5 && next != nil; hop++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		req.Header.Set("Accept", "text/html")
		res, rerr := b.client.Do(req)
		var l string
		if res != nil {
			l = res.Header.Get("Location")
		}
		var st int
		if s.isGateway(next) {
			st, _ = s.rec.gateway("rp_logout:gateway", res, rerr)
		} else {
			s.rec.keycloak("rp_logout:keycloak", statusOf(res), rerr)
			st = statusOf(res)
			if res != nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if rerr != nil || st >= 400 {
				s.rec.errorf(fmt.Sprintf("keycloak end-session %s", statusLabel(st, rerr)))
			}
		}
		if st < 300 || st >= 400 {
			break
		}
		next, err = next.Parse(l)
	}
	return true, ""
}

func statusLabel(status int, err error) string {
	if err != nil {
		return "err:" + errClass(err)
	}
	return strconv.Itoa(status)
}

// bcLogout has Keycloak's admin API end the user's sessions, which makes
// Keycloak post a logout token to the load balancer's back-channel URL.
func (s *soak) bcLogout(ctx context.Context, b *browserSession, how string) (bool, string) {
	status, _, err := s.admin.call(ctx, http.MethodPost, "/admin/realms/"+s.realm+"/users/"+b.user.sub+"/logout", nil)
	s.rec.keycloak("bc_logout:admin", status, err)
	if err != nil || status != http.StatusNoContent {
		return false, "admin_" + statusLabel(status, err)
	}
	s.loggedOut(b, how)
	return true, ""
}

// loggedOutCookie is a session cookie whose session was logged out.
type loggedOutCookie struct {
	value string
	user  string
	how   string
	at    time.Duration
	at0   time.Time
}

func (s *soak) loggedOut(b *browserSession, how string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, loggedOutCookie{value: b.cookie, user: b.user.name, how: how, at: s.rec.now(), at0: time.Now()})
	s.deadBy[how]++
}

// replay sends a logged-out cookie through the load balancer (or straight
// to gateway gw when gw >= 0): a 200 with an identity is invariant (a)
// broken.
func (s *soak) replay(ctx context.Context, d loggedOutCookie, gw int) {
	base, kind := s.lbURL, "replay:lb"
	if gw >= 0 {
		base, kind = "http://"+s.gws[gw].addr, "replay:direct"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/app/replay", nil)
	req.Host = s.lbHost
	req.Header.Set("Accept", "text/html")
	req.AddCookie(&http.Cookie{Name: s.cookieName, Value: d.value})
	res, err := s.plain.Do(req)
	var header http.Header
	if res != nil {
		header = res.Header
	}
	status, _ := s.rec.gateway(kind, res, err)
	if status == http.StatusOK && header.Get("X-Soak-User") != "" {
		backend := header.Get("X-Soak-Backend")
		if gw >= 0 {
			backend = strconv.Itoa(gw)
		}
		s.rec.servedAfterLogout(d, backend)
	}
}

func (r *soakRecorder) windowAt(at time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inWindow(at)
}

// browserWorker logs a user in, uses the session for a while (long enough
// for the gateways to refresh its tokens at Keycloak), logs out by either
// way, and starts again.
func (s *soak) browserWorker(ctx context.Context, id int, user soakUser) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for n := 0; ctx.Err() == nil; n++ {
		b, err := s.login(ctx, user, fmt.Sprintf("/app/w%d/start-%d", id, n), id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.rec.errorf("login: " + err.Error())
			s.rec.mark("login", false)
			soakSleep(ctx, time.Second)
			continue
		}
		s.rec.count("login", "ok")
		s.rec.mark("login", true)
		s.setActive(id, b)
		life := time.Duration(20+rng.IntN(50)) * time.Second
		ended := false
		for i := 0; ctx.Err() == nil && time.Since(b.started) < life; i++ {
			if !s.isActive(id, b) {
				ended = true // logged out by a fault (back channel)
				break
			}
			switch s.page(ctx, b, "session", fmt.Sprintf("/app/w%d/p%d", id, i)) {
			case sessionServed:
				s.rec.mark("session", true)
			case sessionUnavailable:
				s.rec.mark("session", false)
			case sessionEnded:
				if s.isActive(id, b) {
					s.rec.errorf("session ended without a logout (sent to log in again)")
					s.rec.mark("session", false)
				}
				ended = true
			default:
				s.rec.mark("session", false)
				s.rec.errorf("session request failed")
			}
			if ended {
				break
			}
			soakSleep(ctx, 300*time.Millisecond)
		}
		if ended || ctx.Err() != nil || !s.takeActive(id, b) {
			continue
		}
		// Log out: half through the gateway, half pushed by Keycloak.
		ok := false
		for attempt := 0; attempt < 10 && !ok && ctx.Err() == nil; attempt++ {
			var why string
			kind := "rp_logout"
			if rng.IntN(2) == 0 {
				kind = "bc_logout"
				ok, why = s.bcLogout(ctx, b, "backchannel")
			} else {
				ok, why = s.rpLogout(ctx, b, "rp")
			}
			s.rec.mark(kind, ok)
			if !ok {
				s.rec.errorf(kind + ": " + why)
				soakSleep(ctx, time.Second)
			}
		}
		if !ok {
			s.rec.errorf("logout abandoned after 10 attempts")
		}
	}
}

func (s *soak) setActive(id int, b *browserSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[id] = b
}

func (s *soak) isActive(id int, b *browserSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id] == b
}

// takeActive removes b from the active sessions; false when a fault took
// it first.
func (s *soak) takeActive(id int, b *browserSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] != b {
		return false
	}
	delete(s.active, id)
	return true
}

// waitActive removes and returns an active browser session, for a fault
// that logs it out itself, waiting up to limit for one.
func (s *soak) waitActive(ctx context.Context, limit time.Duration) *browserSession {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		s.mu.Lock()
		for id, b := range s.active {
			delete(s.active, id)
			s.mu.Unlock()
			return b
		}
		s.mu.Unlock()
		soakSleep(ctx, 200*time.Millisecond)
	}
	return nil
}

func (s *soak) isDead(b *browserSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dead {
		if d.value == b.cookie {
			return true
		}
	}
	return false
}

// bearerClient fetches tokens with the password grant (through the same
// provider address as the gateways, so the issuer matches) and calls the
// api route with them.
type bearerClient struct {
	user soakUser
	tok  string
	exp  time.Time
}

func (s *soak) bearerToken(ctx context.Context, c *bearerClient) (string, bool) {
	if c.tok != "" && time.Until(c.exp) > 5*time.Second {
		return c.tok, true
	}
	tok, err := grant(ctx, s.plain, s.issuer+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"gateway"}, "client_secret": {soakClientSecret},
		"username": {c.user.name}, "password": {c.user.password}, "scope": {"openid"},
	})
	var se *statusError
	switch {
	case err == nil:
		s.rec.count("token", "200")
		s.rec.mark("token", true)
		c.tok, c.exp = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	case errors.As(err, &se):
		s.rec.count("token", strconv.Itoa(se.status))
		s.rec.mark("token", false)
	default:
		s.rec.count("token", "err:"+errClass(err))
		s.rec.mark("token", false)
	}
	if c.tok != "" && time.Until(c.exp) > 2*time.Second {
		return c.tok, true // Keycloak unreachable: the current token lasts
	}
	return "", false
}

func (s *soak) bearerWorker(ctx context.Context, id int, user soakUser) {
	c := &bearerClient{user: user}
	for i := 0; ctx.Err() == nil; i++ {
		tok, ok := s.bearerToken(ctx, c)
		if !ok {
			if ctx.Err() == nil {
				s.rec.errorf("bearer: no token (Keycloak unreachable and the last one expired)")
			}
			soakSleep(ctx, time.Second)
			continue
		}
		if s.bearerOnce(ctx, "bearer", s.lbURL, tok, user, fmt.Sprintf("/api/b%d/%d", id, i)) {
			s.rec.mark("bearer", true)
		} else {
			s.rec.mark("bearer", false)
		}
		soakSleep(ctx, 250*time.Millisecond)
	}
}

func (s *soak) bearerOnce(ctx context.Context, kind, base, tok string, user soakUser, path string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Host = s.lbHost
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.plain.Do(req)
	var header http.Header
	if res != nil {
		header = res.Header
	}
	status, body := s.rec.gateway(kind, res, err)
	if status == http.StatusOK && header.Get("X-Soak-User") != user.sub {
		s.rec.violation("bearer token of %s served as %q", user.name, header.Get("X-Soak-User"))
		return false
	}
	if status == http.StatusUnauthorized && ctx.Err() == nil {
		s.rec.errorf("bearer 401: " + truncate(body, 80))
	}
	return status == http.StatusOK
}

// replayer keeps sending logged-out cookies: a few random ones through the
// load balancer every 100 ms, and every second a few straight to each
// gateway.
func (s *soak) replayer(ctx context.Context) {
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for i := 0; ctx.Err() == nil; i++ {
		s.mu.Lock()
		dead := s.dead
		s.mu.Unlock()
		if len(dead) > 0 {
			// The newest ones most: the moments after a logout matter most.
			for k := 0; k < 3; k++ {
				j := len(dead) - 1 - rng.IntN(min(len(dead), 8))
				if k == 2 {
					j = rng.IntN(len(dead))
				}
				s.replay(ctx, dead[j], -1)
			}
			if i%5 == 0 {
				for gw := range s.gws {
					s.replay(ctx, dead[len(dead)-1], gw)
				}
			}
			if i%10 == 0 {
				for gw := range s.gws {
					s.replay(ctx, dead[rng.IntN(len(dead))], gw)
				}
			}
		}
		soakSleep(ctx, 100*time.Millisecond)
	}
}

// prober asks every gateway directly, once a second, with a long-lived
// session and a bearer token: per-instance recovery times.
func (s *soak) prober(ctx context.Context, user, apiUser soakUser) {
	var b *browserSession
	c := &bearerClient{user: apiUser}
	for ctx.Err() == nil {
		if b == nil {
			var err error
			if b, err = s.login(ctx, user, "/app/probe/start", -1); err != nil {
				b = nil
				s.rec.errorf("probe login: " + err.Error())
			}
		}
		tok, _ := s.bearerToken(ctx, c)
		for i, g := range s.gws {
			if b != nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/app/probe", nil)
				req.Host = s.lbHost
				req.Header.Set("Accept", "text/html")
				req.AddCookie(&http.Cookie{Name: s.cookieName, Value: b.cookie})
				res, err := s.plain.Do(req)
				var header http.Header
				if res != nil {
					header = res.Header
				}
				status, _ := s.rec.gateway("probe_session", res, err)
				served := status == http.StatusOK && header.Get("X-Soak-User") == user.sub
				s.rec.mark(fmt.Sprintf("probe_session@%d", i), served)
				s.rec.mark("probe_session", served)
				if status >= 300 && status < 500 && ctx.Err() == nil {
					s.rec.errorf(fmt.Sprintf("probe session ended (%d): logging in again", status))
					b = nil
				}
			}
			if tok != "" {
				ok := s.bearerOnce(ctx, "probe_bearer", "http://"+g.addr, tok, apiUser, "/api/probe")
				s.rec.mark(fmt.Sprintf("probe_bearer@%d", i), ok)
			}
		}
		soakSleep(ctx, time.Second)
	}
}

// sampler scrapes every gateway's metrics every 5 s.
func (s *soak) sampler(ctx context.Context) {
	for ctx.Err() == nil {
		s.sampleAll(ctx)
		soakSleep(ctx, 5*time.Second)
	}
}

func (s *soak) sampleAll(ctx context.Context) {
	for i, g := range s.gws {
		gen := g.generation()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/_cloakroom/metrics", nil)
		res, err := s.plain.Do(req)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if gr, heap, ok := parseRuntime(string(data)); ok && gen == g.generation() {
			s.mu.Lock()
			s.samples[i] = append(s.samples[i], runtimeSample{at: s.rec.now(), gen: gen, goroutines: gr, heap: heap})
			s.counters[fmt.Sprintf("%d/%d", i, gen)] = parseCounters(string(data))
			s.mu.Unlock()
		}
	}
}

func soakSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
