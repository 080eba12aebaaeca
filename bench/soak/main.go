// Command soak runs cloakroom's gateway under a steady, bounded load for a
// long time and checks it stays correct and does not leak:
//
//	cd bench && go run ./soak                      # 10 minutes, 20 virtual users, 2 gateways on Redis
//	go run ./soak -duration 2m -users 10 -store sqlite:/tmp/soak.db
//
// In one process, on loopback only, it starts keycloaktest (a realm with
// one user per virtual user, refresh-token rotation on, short access
// tokens), an upstream that echoes the identity it receives, and several
// gateway instances sharing one session store (Redis by default:
// CLOAKROOM_TEST_REDIS or 127.0.0.1:6379). Each virtual user, with think
// time between steps, logs in through a random instance, uses its session
// through random instances (tokens are refreshed as they near expiry),
// calls the API route with a bearer token, and now and then logs out
// through the gateway (RP logout) or is logged out by Keycloak (an admin
// ends its session, Keycloak sends a back-channel logout to instance 1).
//
// It checks continuously: every answer is the expected one (no unexpected
// error); every session that should exist is served as its own user on
// every instance; every session that should be gone is refused on every
// instance (after a logout by Keycloak, within the cache-invalidation
// grace). It samples goroutines and heap every -sample (heap in use as
// found, and the live heap right after a forced collection) and prints them
// as a table with start, peak and end values; -memprofile writes a heap
// profile at the end. The exit status is 1 if any check failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"

	// The session stores -store may name.
	_ "github.com/cloakroom/cloakroom/session/pgstore"
	_ "github.com/cloakroom/cloakroom/session/redisstore"
	_ "github.com/cloakroom/cloakroom/session/sqlitestore"
)

// config is what the flags set.
type config struct {
	duration      time.Duration
	users         int
	instances     int
	store         string
	think         time.Duration
	tokenLifespan time.Duration
	sample        time.Duration
	rpLogout      float64 // probability per step
	bcLogout      float64
	bearer        float64
	memProfile    string // heap profile written at the end, after a GC
	out           io.Writer
}

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to run the load")
	flag.IntVar(&c.users, "users", 20, "virtual users (each its own Keycloak user and browser)")
	flag.IntVar(&c.instances, "instances", 2, "gateway instances sharing the session store")
	flag.StringVar(&c.store, "store", "", `session store: redis://…, postgres://…, sqlite:PATH (default redis://$CLOAKROOM_TEST_REDIS or 127.0.0.1:6379)`)
	flag.DurationVar(&c.think, "think", time.Second, "mean think time between a user's steps (uniform in [0.5, 1.5]×)")
	flag.DurationVar(&c.tokenLifespan, "token-lifespan", 40*time.Second, "Keycloak access-token lifespan; the gateway refreshes 30 s before expiry, so ≤ 30 s means a refresh on every request")
	flag.DurationVar(&c.sample, "sample", 5*time.Second, "interval of the goroutine and heap samples")
	flag.Float64Var(&c.rpLogout, "rp-logout", 0.03, "probability that a step is a logout through the gateway")
	flag.Float64Var(&c.bcLogout, "bc-logout", 0.03, "probability that a step is a logout by Keycloak (back-channel)")
	flag.Float64Var(&c.bearer, "bearer", 0.15, "probability that a step is a bearer-token API call")
	flag.StringVar(&c.memProfile, "memprofile", "", "write a heap profile to this file at the end (go tool pprof)")
	flag.Parse()
	c.out = os.Stdout
	if c.store == "" {
		addr := os.Getenv("CLOAKROOM_TEST_REDIS")
		if addr == "" {
			addr = "127.0.0.1:6379"
		}
		c.store = "redis://" + addr + "/0"
	}
	rep, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}

// counters are the operations done and the failures seen.
type counters struct {
	logins, sessionRequests, bearerCalls, rpLogouts, bcLogouts, goneChecks atomic.Int64
	errors                                                                 atomic.Int64
}

// report is the outcome of a run.
type report struct {
	counts      map[string]int64
	errors      int64
	errSamples  []string
	warnings    int64
	warnSamples []string
	samples     []sample
}

func (r *report) ok() bool { return r.errors == 0 && r.warnings == 0 }

type sample struct {
	at         time.Duration
	goroutines int
	heapInuse  uint64
	heapLive   uint64 // HeapAlloc right after a collection
	sessions   int64  // session requests so far
	refreshes  int64
}

// errorLog keeps the first failures.
type errorLog struct {
	mu      sync.Mutex
	samples []string
}

func (l *errorLog) add(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 20 {
		l.samples = append(l.samples, msg)
	}
}

// warnHandler counts the gateways' log records at warn level and above
// (none are expected) and keeps the first ones.
type warnHandler struct {
	slog.Handler
	n   *atomic.Int64
	log *errorLog
}

func (h warnHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	msg := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	h.log.add(msg)
	return nil
}

func (h warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return warnHandler{h.Handler.WithAttrs(as), h.n, h.log}
}
func (h warnHandler) WithGroup(g string) slog.Handler {
	return warnHandler{h.Handler.WithGroup(g), h.n, h.log}
}

const clientSecret = "soak-secret"

var encryptionKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func run(ctx context.Context, c config) (*report, error) {
	if c.users < 1 || c.instances < 1 || c.duration <= 0 {
		return nil, errors.New("-users, -instances and -duration must be positive")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if c.memProfile != "" {
		runtime.MemProfileRate = 4096 // a profile precise enough to attribute kilobytes
	}

	// Keycloak: one user per virtual user.
	realm := keycloaktest.RealmConfig{Name: "soak", AccessTokenLifespan: c.tokenLifespan, RevokeRefreshToken: true, RealmRoles: []string{"user"}}
	for i := range c.users {
		name := fmt.Sprintf("vu%02d", i+1)
		realm.Users = append(realm.Users, keycloaktest.UserConfig{Username: name, Password: name, Email: name + "@example.com", EmailVerified: true, RealmRoles: []string{"user"}})
	}
	idp, err := keycloaktest.New(keycloaktest.WithRealm(realm), keycloaktest.WithLogger(quiet))
	if err != nil {
		return nil, err
	}
	if err := idp.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer idp.Close()
	kc := idp.Realm("soak")

	// The upstream answers with the identity it was given.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get("X-Forwarded-User"), "path": r.URL.Path})
	}))
	defer up.Close()

	// The gateways.
	var warnings atomic.Int64
	warnLog := &errorLog{}
	logger := slog.New(warnHandler{slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}), &warnings, warnLog})
	type instance struct {
		url  string
		stop func()
	}
	var gws []instance
	listeners := make([]net.Listener, c.instances)
	for i := range listeners {
		if listeners[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
	}
	if err := kc.AddClient(keycloaktest.ClientConfig{
		ClientID: "soak", Secret: clientSecret, StandardFlow: true, DirectAccessGrants: true,
		RedirectURIs: []string{"http://127.0.0.1:*"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1:*"},
		BackchannelLogoutURL:             "http://" + listeners[0].Addr().String() + "/_cloakroom/backchannel-logout",
		BackchannelLogoutSessionRequired: true, Audiences: []string{"soak"},
	}); err != nil {
		return nil, err
	}
	noAccessLog := false
	for i, ln := range listeners {
		u := "http://" + ln.Addr().String()
		g, err := gateway.New(ctx, gateway.Config{
			Listen: ln.Addr().String(), PublicURL: u, Issuer: kc.Issuer(), ClientID: "soak", ClientSecret: clientSecret,
			Session: gateway.SessionConfig{Store: c.store, EncryptionKeys: []string{encryptionKey}},
			Log:     gateway.LogConfig{Level: "warn", AccessLog: &noAccessLog},
			Routes: []gateway.Route{
				{Name: "api", Path: "/api", Upstream: up.URL, Mode: "api", RealmRoles: gateway.RoleRule{Any: []string{"user"}}},
				{Name: "app", Path: "/", Upstream: up.URL},
			},
		}, gateway.WithLogger(logger.With("instance", i+1)))
		if err != nil {
			return nil, fmt.Errorf("gateway %d: %w", i+1, err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = g.Serve(sctx, ln); close(done) }()
		gws = append(gws, instance{url: u, stop: func() { cancel(); <-done; g.Close() }})
	}
	defer func() {
		for _, g := range gws {
			g.stop()
		}
	}()
	urls := make([]string, len(gws))
	for i, g := range gws {
		urls[i] = g.url
	}
	// Sessions deleted on one instance leave the others' caches at once
	// with Redis or PostgreSQL (pub/sub); otherwise within the cache TTL.
	grace := 2 * time.Second
	if !strings.HasPrefix(c.store, "redis") && !strings.HasPrefix(c.store, "postgres") && c.instances > 1 {
		grace = 7 * time.Second
	}

	// Wait until every gateway is ready.
	probe := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := probe.Get(u + "/_cloakroom/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("gateway %s never became ready", u)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	defer transport.CloseIdleConnections()
	var cnt counters
	errs := &errorLog{}
	fail := func(format string, args ...any) {
		cnt.errors.Add(1)
		errs.add(fmt.Sprintf(format, args...))
	}
	refreshes := func() int64 {
		var total int64
		for _, u := range urls {
			total += refreshCount(probe, u)
		}
		return total
	}

	fmt.Fprintf(c.out, "soak: %d users, %d gateway instance(s), store %s, access tokens %s, think %s, for %s\n",
		c.users, c.instances, redact(c.store), c.tokenLifespan, c.think, c.duration)

	// Samples.
	start := time.Now()
	var samples []sample
	var smu sync.Mutex
	take := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		inuse := ms.HeapInuse
		runtime.GC()
		runtime.ReadMemStats(&ms)
		s := sample{at: time.Since(start), goroutines: runtime.NumGoroutine(), heapInuse: inuse, heapLive: ms.HeapAlloc,
			sessions: cnt.sessionRequests.Load(), refreshes: refreshes()}
		smu.Lock()
		samples = append(samples, s)
		smu.Unlock()
	}
	take()
	loadCtx, stopLoad := context.WithTimeout(ctx, c.duration)
	defer stopLoad()
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(c.sample)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
				take()
			}
		}
	}()

	var wg sync.WaitGroup
	for i := range c.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := &user{
				name: fmt.Sprintf("vu%02d", i+1), urls: urls, kc: kc, c: c, cnt: &cnt, fail: fail, grace: grace,
				rnd: rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))),
			}
			u.sub, _ = kc.UserID(u.name)
			u.newBrowser(transport)
			u.loop(loadCtx)
		}()
	}
	wg.Wait()
	<-samplerDone
	take() // end of load

	// Idle: connections closed, a collection, then the last sample.
	transport.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	runtime.GC()
	take()
	if c.memProfile != "" {
		f, err := os.Create(c.memProfile)
		if err != nil {
			return nil, err
		}
		err = pprof.WriteHeapProfile(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}

	rep := &report{
		counts: map[string]int64{
			"logins": cnt.logins.Load(), "session requests": cnt.sessionRequests.Load(), "bearer calls": cnt.bearerCalls.Load(),
			"RP logouts": cnt.rpLogouts.Load(), "back-channel logouts": cnt.bcLogouts.Load(),
			"checks that ended sessions are refused": cnt.goneChecks.Load(), "token refreshes": refreshes(),
		},
		errors: cnt.errors.Load(), errSamples: errs.samples,
		warnings: warnings.Load(), warnSamples: warnLog.samples,
		samples: samples,
	}
	rep.print(c.out)
	return rep, nil
}

func redact(spec string) string {
	if u, err := url.Parse(spec); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return spec
}

var refreshLine = regexp.MustCompile(`(?m)^cloakroom_token_refreshes_total\{result="ok"\} (\S+)$`)

// refreshCount reads the successful refreshes from a gateway's metrics.
func refreshCount(c *http.Client, base string) int64 {
	resp, err := c.Get(base + "/_cloakroom/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := refreshLine.FindSubmatch(body)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return int64(f)
}

func (r *report) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%10s %11s %12s %12s %17s %10s\n", "t", "goroutines", "heap inuse", "live heap", "session requests", "refreshes")
	for i, s := range r.samples {
		label := s.at.Round(time.Second).String()
		switch i {
		case 0:
			label = "start"
		case len(r.samples) - 2:
			label = "end-load"
		case len(r.samples) - 1:
			label = "end-idle"
		}
		fmt.Fprintf(w, "%10s %11d %10.1f MB %10.1f MB %17d %10d\n", label, s.goroutines, mb(s.heapInuse), mb(s.heapLive), s.sessions, s.refreshes)
	}
	if len(r.samples) > 0 {
		first, end, idle := r.samples[0], r.samples[len(r.samples)-2], r.samples[len(r.samples)-1]
		peakG, peakH, peakL := 0, uint64(0), uint64(0)
		for _, s := range r.samples {
			peakG, peakH, peakL = max(peakG, s.goroutines), max(peakH, s.heapInuse), max(peakL, s.heapLive)
		}
		fmt.Fprintf(w, "\ngoroutines: start %d, peak %d, end of load %d, idle %d\n", first.goroutines, peakG, end.goroutines, idle.goroutines)
		fmt.Fprintf(w, "heap in use: start %.1f MB, peak %.1f MB, end of load %.1f MB, idle %.1f MB\n", mb(first.heapInuse), mb(peakH), mb(end.heapInuse), mb(idle.heapInuse))
		fmt.Fprintf(w, "live heap (after a GC): start %.1f MB, peak %.1f MB, end of load %.1f MB, idle %.1f MB\n", mb(first.heapLive), mb(peakL), mb(end.heapLive), mb(idle.heapLive))
	}
	fmt.Fprintln(w)
	for _, k := range []string{"logins", "session requests", "bearer calls", "token refreshes", "RP logouts", "back-channel logouts", "checks that ended sessions are refused"} {
		fmt.Fprintf(w, "%-40s %d\n", k, r.counts[k])
	}
	fmt.Fprintf(w, "%-40s %d\n", "unexpected answers", r.errors)
	for _, e := range r.errSamples {
		fmt.Fprintln(w, "  ", e)
	}
	fmt.Fprintf(w, "%-40s %d\n", "gateway warnings and errors logged", r.warnings)
	for _, e := range r.warnSamples {
		fmt.Fprintln(w, "  ", e)
	}
	if r.ok() {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// user is one virtual user: a browser (cookie jar) and its Keycloak user.
type user struct {
	name, sub string
	urls      []string
	kc        *keycloaktest.Realm
	c         config
	cnt       *counters
	fail      func(format string, args ...any)
	grace     time.Duration
	rnd       *rand.Rand
	client    *http.Client // follows redirects, keeps cookies
	noFollow  *http.Client // same jar, stops at redirects
	loggedIn  bool
	cookie    string // the session cookie value while logged in
	sid       string // its Keycloak session
	token     string // a bearer token, reused until it nears expiry
	tokenExp  time.Time
}

func (u *user) newBrowser(t http.RoundTripper) {
	jar, _ := cookiejar.New(nil)
	u.client = &http.Client{Jar: jar, Transport: t, Timeout: 30 * time.Second}
	u.noFollow = &http.Client{Jar: jar, Transport: t, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (u *user) instance() string { return u.urls[u.rnd.IntN(len(u.urls))] }

func (u *user) loop(ctx context.Context) {
	for ctx.Err() == nil {
		if !u.loggedIn {
			u.login()
		} else {
			switch p := u.rnd.Float64(); {
			case p < u.c.rpLogout:
				u.rpLogout()
			case p < u.c.rpLogout+u.c.bcLogout:
				u.backchannelLogout()
			case p < u.c.rpLogout+u.c.bcLogout+u.c.bearer:
				u.bearerCall()
			default:
				u.sessionRequest(u.instance())
			}
		}
		think := time.Duration(float64(u.c.think) * (0.5 + u.rnd.Float64()))
		select {
		case <-ctx.Done():
		case <-time.After(think):
		}
	}
}

var loginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// get fetches target (following redirects) and returns status and body.
func (u *user) get(c *http.Client, target string, header ...string) (int, string, *http.Response, error) {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp, nil
}

func servedAs(status int, body string) string {
	if status != 200 {
		return ""
	}
	var e struct{ User string }
	if json.Unmarshal([]byte(body), &e) != nil {
		return ""
	}
	return e.User
}

func (u *user) login() {
	inst := u.instance()
	before := map[string]bool{}
	for _, sid := range u.kc.SessionIDs(u.name) {
		before[sid] = true
	}
	status, body, resp, err := u.get(u.client, inst+"/app/home")
	if err != nil {
		u.fail("%s login: %v", u.name, err)
		return
	}
	if m := loginForm.FindStringSubmatch(body); m != nil {
		form, _ := resp.Request.URL.Parse(html.UnescapeString(m[1]))
		r, err := u.client.PostForm(form.String(), url.Values{"username": {u.name}, "password": {u.name}})
		if err != nil {
			u.fail("%s login form: %v", u.name, err)
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		status, body = r.StatusCode, string(b)
	}
	if servedAs(status, body) != u.sub {
		u.fail("%s login through %s: %d %.200s", u.name, inst, status, body)
		return
	}
	base, _ := url.Parse(inst)
	for _, c := range u.client.Jar.Cookies(base) {
		if c.Name == "cloakroom" {
			u.cookie = c.Value
		}
	}
	if u.cookie == "" {
		u.fail("%s login: no session cookie", u.name)
		return
	}
	u.sid = ""
	for _, sid := range u.kc.SessionIDs(u.name) {
		if !before[sid] {
			u.sid = sid
		}
	}
	if u.sid == "" {
		u.fail("%s login: no new Keycloak session", u.name)
		return
	}
	u.loggedIn = true
	u.cnt.logins.Add(1)
}

// sessionRequest: a live session is served as its own user.
func (u *user) sessionRequest(inst string) {
	status, body, _, err := u.get(u.noFollow, inst+"/app/page", "Accept", "application/json")
	u.cnt.sessionRequests.Add(1)
	if err != nil {
		u.fail("%s session request: %v", u.name, err)
		return
	}
	if got := servedAs(status, body); got != u.sub {
		u.fail("%s session request at %s: %d %.200s", u.name, inst, status, body)
	}
}

// bearerCall calls the API route with a token of the password grant,
// reused until shortly before it expires, like an API client does.
func (u *user) bearerCall() {
	if time.Until(u.tokenExp) < 5*time.Second {
		resp, err := u.client.PostForm(u.kc.Issuer()+"/protocol/openid-connect/token", url.Values{
			"grant_type": {"password"}, "client_id": {"soak"}, "client_secret": {clientSecret},
			"username": {u.name}, "password": {u.name},
		})
		if err != nil {
			u.fail("%s token: %v", u.name, err)
			return
		}
		var tok struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if err != nil || tok.AccessToken == "" {
			u.fail("%s token: status %d", u.name, resp.StatusCode)
			return
		}
		u.token, u.tokenExp = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	}
	inst := u.instance()
	status, body, _, err := u.get(u.noFollow, inst+"/api/things", "Authorization", "Bearer "+u.token)
	u.cnt.bearerCalls.Add(1)
	if err != nil || servedAs(status, body) != u.sub {
		u.fail("%s bearer call at %s: %d %v %.200s", u.name, inst, status, err, body)
	}
}

// refused checks that the ended session's cookie is refused on inst,
// waiting up to wait for caches to learn about it.
func (u *user) refused(inst string, wait time.Duration) {
	req, _ := http.NewRequest(http.MethodGet, inst+"/app/page", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", "cloakroom="+u.cookie)
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.DefaultTransport.RoundTrip(req.Clone(context.Background()))
		if err != nil {
			u.fail("%s ended-session check: %v", u.name, err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.cnt.goneChecks.Add(1)
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			return
		case servedAs(resp.StatusCode, string(body)) == u.sub && time.Now().Before(deadline):
			time.Sleep(20 * time.Millisecond)
		default:
			u.fail("%s ended session still answered %d at %s: %.200s", u.name, resp.StatusCode, inst, body)
			return
		}
	}
}

func (u *user) rpLogout() {
	inst := u.instance()
	status, body, _, err := u.get(u.noFollow, inst+"/_cloakroom/me")
	var me struct {
		Sub  string `json:"sub"`
		CSRF string `json:"csrf_token"`
	}
	if err != nil || status != 200 || json.Unmarshal([]byte(body), &me) != nil || me.Sub != u.sub {
		u.fail("%s /me before logout at %s: %d %v %.200s", u.name, inst, status, err, body)
		return
	}
	req, _ := http.NewRequest(http.MethodPost, inst+"/_cloakroom/logout", strings.NewReader(url.Values{"csrf_token": {me.CSRF}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", inst)
	resp, err := u.client.Do(req) // on to Keycloak's end-session endpoint and back
	if err != nil {
		u.fail("%s logout: %v", u.name, err)
		return
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Back at the gateway's "You have been signed out" page; signing in
	// again shows Keycloak's login form, because the Keycloak session
	// ended too.
	if resp.StatusCode != 200 || !strings.Contains(string(page), "You have been signed out.") {
		u.fail("%s logout ended with %d at %s (want the signed-out page)", u.name, resp.StatusCode, resp.Request.URL)
		return
	}
	resp, err = u.client.Get(inst + "/_cloakroom/login?return_to=%2Fapp%2Fpage")
	if err != nil {
		u.fail("%s sign in again after logout: %v", u.name, err)
		return
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !loginForm.Match(page) {
		u.fail("%s sign in again after logout ended with %d at %s (want Keycloak's login form)", u.name, resp.StatusCode, resp.Request.URL)
		return
	}
	u.cnt.rpLogouts.Add(1)
	for _, i := range u.urls {
		wait := u.grace // other instances learn by invalidation
		if i == inst {
			wait = 0
		}
		u.refused(i, wait)
	}
	u.loggedIn = false
}

func (u *user) backchannelLogout() {
	u.kc.EndSession(u.sid) // delivers the logout token to instance 1
	u.cnt.bcLogouts.Add(1)
	for i, inst := range u.urls {
		wait := time.Duration(0)
		if i > 0 {
			wait = u.grace
		}
		u.refused(inst, wait)
	}
	u.loggedIn = false
}
