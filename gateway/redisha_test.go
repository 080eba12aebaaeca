package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/faulttest"
)

// Failover tests: a gateway whose sessions are in a replicated Redis
// (Sentinel, Cluster) keeps every session that was replicated and every
// logout that was acknowledged through a failover of the master, under
// load, and answers only 200 or 503 with Retry-After meanwhile. Each test
// starts its own topology with scripts/redis-ha.sh on its own ports (it
// kills a master, which the shared topology of the other tests must not
// suffer), when CLOAKROOM_TEST_REDIS_SENTINEL says HA tests are wanted.

// maxRecovery bounds the time from the first failed request to the
// first success after the last failure.
const maxRecovery = 30 * time.Second

// haTopology is a private Redis topology of scripts/redis-ha.sh.
type haTopology struct {
	kind  string // sentinel or cluster
	url   string // the store URL
	dir   string // pid files
	base  int    // REDIS_HA_BASE
	sbase int    // REDIS_HA_SENTINEL_BASE
}

func startTopology(t *testing.T, kind string, base, sbase int) *haTopology {
	t.Helper()
	if os.Getenv("CLOAKROOM_TEST_REDIS_SENTINEL") == "" {
		t.Skip("set CLOAKROOM_TEST_REDIS_SENTINEL (eval \"$(scripts/redis-ha.sh start)\") to run the Redis failover tests; they start their own topology with scripts/redis-ha.sh")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	script, err := filepath.Abs("../scripts/redis-ha.sh")
	if err != nil {
		t.Fatal(err)
	}
	top := &haTopology{kind: kind, dir: t.TempDir(), base: base, sbase: sbase}
	env := append(os.Environ(),
		"REDIS_HA_BASE="+strconv.Itoa(base), "REDIS_HA_SENTINEL_BASE="+strconv.Itoa(sbase),
		"REDIS_HA_DIR="+top.dir, "REDIS_HA_FRESH=1",
		"REDIS_HA_DOWN_AFTER_MS=1000", "REDIS_HA_NODE_TIMEOUT_MS=1000")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, stderr.String())
		}
		return string(out), nil
	}
	t.Cleanup(func() {
		if _, err := run("stop", kind); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	out, err := run("start", kind)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`export CLOAKROOM_TEST_REDIS_[A-Z]+=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("redis-ha.sh start printed no URL: %q", out)
	}
	top.url = m[1]
	t.Logf("%s topology up in %v: %s", kind, time.Since(start).Round(time.Millisecond), top.url)
	return top
}

// pid is the pid of the redis-server on addr's port.
func (top *haTopology) pid(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	b, err := os.ReadFile(filepath.Join(top.dir, "redis-"+port+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// sessionMaster is the address of the master holding the gateway's
// sessions: the Sentinel's master, or the master of the cluster slot of
// the default prefix "{cloakroom}:".
func (top *haTopology) sessionMaster(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	if top.kind == "sentinel" {
		s := redis.NewSentinelClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(top.sbase))})
		defer s.Close()
		a, err := s.GetMasterAddrByName(ctx, "cloakroom").Result()
		if err != nil {
			t.Fatal(err)
		}
		return net.JoinHostPort(a[0], a[1])
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(top.base+3))}})
	defer c.Close()
	c.ReloadState(ctx)
	n, err := c.MasterForKey(ctx, "{cloakroom}:")
	if err != nil {
		t.Fatal(err)
	}
	return n.Options().Addr
}

var replicaOffset = regexp.MustCompile(`slave\d+:[^\r\n]*offset=(\d+)`)

// waitReplicated waits until every replica of the master at addr has
// acknowledged all it has written so far.
func waitReplicated(t *testing.T, addr string, replicas int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := infoInt(info, "master_repl_offset")
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err = c.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		acked := 0
		for _, m := range replicaOffset.FindAllStringSubmatch(info, -1) {
			if n, _ := strconv.ParseInt(m[1], 10, 64); n >= want {
				acked++
			}
		}
		if acked >= replicas {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d replicas reached offset %d: %s", acked, replicas, want, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func infoInt(info, field string) int64 {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// sample is one request of the load.
type sample struct {
	start, end time.Time
	status     int
	ok         bool   // 200 as the session's user, or 503 with Retry-After
	what       string // for a bad answer
}

func TestGatewayRedisFailover(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		kind        string
		base, sbase int
		failover    func(t *testing.T, top *haTopology, master string)
	}{
		{"sentinel kill -9", "sentinel", 7110, 26410, killMaster},
		{"sentinel SENTINEL FAILOVER", "sentinel", 7120, 26420, func(t *testing.T, top *haTopology, _ string) {
			s := redis.NewSentinelClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(top.sbase))})
			defer s.Close()
			if err := s.Failover(context.Background(), "cloakroom").Err(); err != nil {
				t.Fatalf("SENTINEL FAILOVER: %v", err)
			}
		}},
		{"cluster kill -9", "cluster", 7130, 26430, killMaster},
		{"cluster CLUSTER FAILOVER", "cluster", 7140, 26440, func(t *testing.T, _ *haTopology, master string) {
			// The graceful failover: the replica asks the master to pause
			// its clients, catches up and takes over.
			replica := replicaOf(t, master)
			c := redis.NewClient(&redis.Options{Addr: replica})
			defer c.Close()
			if err := c.ClusterFailover(context.Background()).Err(); err != nil {
				t.Fatalf("CLUSTER FAILOVER on %s: %v", replica, err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			top := startTopology(t, tt.kind, tt.base, tt.sbase)
			runFailover(t, top, tt.failover)
		})
	}
}

// replicaOf returns the address of a replica of the master at addr.
func replicaOf(t *testing.T, addr string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`slave\d+:ip=([^,]+),port=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("the master %s has no replica: %s", addr, info)
	}
	return net.JoinHostPort(m[1], m[2])
}

func killMaster(t *testing.T, top *haTopology, master string) {
	if err := syscall.Kill(top.pid(t, master), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the master %s: %v", master, err)
	}
}

func runFailover(t *testing.T, top *haTopology, failover func(*testing.T, *haTopology, string)) {
	e := newEnv(t)
	noCache := time.Duration(0) // every request reads Redis: the worst case
	g := e.start(func(c *gateway.Config) {
		faultRoutes(e)(c)
		c.Session.Store = top.url
		c.Session.CacheTTL = &noCache
	})
	// A second instance with the default cache: logged-out sessions are
	// replayed to both.
	g2 := e.start(func(c *gateway.Config) {
		faultRoutes(e)(c)
		c.Session.Store = top.url
	})
	o := gatewayOutage(e, g)
	subs := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		subs[u], _ = e.kc.UserID(u)
	}

	// Sessions, and one logged out before the failover.
	type user struct {
		b    *faulttest.Browser
		name string
	}
	var users []user
	for i := range 12 {
		name := []string{"alice", "bob"}[i%2]
		b := faulttest.NewBrowser(t)
		if p := b.Login(o.Protected, name); forwardedUser(p) != subs[name] {
			t.Fatalf("login %d: %d %.300s", i, p.Status, p.Body)
		}
		users = append(users, user{b, name})
	}
	gone := faulttest.NewBrowser(t)
	gone.Login(o.Protected, "alice")
	goneCookie := gone.Cookie(o.Protected, o.Cookie)
	if p := gone.Do(http.MethodPost, o.Logout, url.Values{"csrf_token": {o.CSRF(gone)}}, "Origin", o.Origin); p.Status != http.StatusSeeOther {
		t.Fatalf("logout before the failover: %d %.300s", p.Status, p.Body)
	}
	// Sessions logged out one after the other while the failover runs;
	// none may be served after its logout was acknowledged.
	var victims []*faulttest.Browser
	for i := range 8 {
		v := faulttest.NewBrowser(t)
		if p := v.Login(o.Protected, []string{"alice", "bob"}[i%2]); forwardedUser(p) == "" {
			t.Fatalf("victim login %d: %d", i, p.Status)
		}
		victims = append(victims, v)
	}
	victimCSRF := make([]string, len(victims))
	for i, v := range victims {
		victimCSRF[i] = o.CSRF(v)
	}
	master := top.sessionMaster(t)
	replicas := 2
	if top.kind == "cluster" {
		replicas = 1
	}
	waitReplicated(t, master, replicas)

	// Load: 4 clients cycle through the sessions.
	var (
		mu      sync.Mutex
		samples []sample
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				u := users[i%len(users)]
				var hdr []string
				if i%3 == 0 {
					hdr = []string{"Accept", "application/json"}
				}
				s := sample{start: time.Now()}
				req, _ := http.NewRequest(http.MethodGet, o.Protected, nil)
				for j := 0; j+1 < len(hdr); j += 2 {
					req.Header.Set(hdr[j], hdr[j+1])
				}
				resp, err := u.b.Client.Do(req)
				s.end = time.Now()
				if err != nil {
					s.what = "transport error: " + err.Error()
				} else {
					var p faulttest.Page
					p.Status, p.Header = resp.StatusCode, resp.Header
					var body strings.Builder
					buf := make([]byte, 4096)
					for {
						n, rerr := resp.Body.Read(buf)
						body.Write(buf[:n])
						if rerr != nil {
							break
						}
					}
					resp.Body.Close()
					p.Body = body.String()
					s.status = p.Status
					switch {
					case p.Status == http.StatusOK && forwardedUser(p) == subs[u.name]:
						s.ok = true
					case p.Status == http.StatusServiceUnavailable && p.Header.Get("Retry-After") != "":
						s.ok = true
					default:
						s.what = fmt.Sprintf("%d (user %q, want %q) %.200s", p.Status, forwardedUser(p), subs[u.name], p.Body)
					}
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second) // load before the failover
	t0 := time.Now()
	failover(t, top, master)
	t.Logf("%s: failover of %s started", top.kind, master)

	var (
		deadMu     sync.Mutex
		dead       []string // cookies whose logout was acknowledged
		resurrect  []string
		logoutCode = map[int]int{}
	)
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	wg.Add(2)
	go func() { // logouts, one every 150 ms, retried on 503
		defer wg.Done()
		for i := 0; i < len(victims) && !stop.Load(); {
			v := victims[i]
			cookie := v.Cookie(o.Protected, o.Cookie)
			p := v.Do(http.MethodPost, o.Logout, url.Values{"csrf_token": {victimCSRF[i]}}, "Origin", o.Origin)
			deadMu.Lock()
			logoutCode[p.Status]++
			if p.Status == http.StatusSeeOther {
				dead = append(dead, cookie.Value)
				i++
			}
			deadMu.Unlock()
			time.Sleep(150 * time.Millisecond)
		}
	}()
	go func() { // replays of every logged-out cookie
		defer wg.Done()
		for !stop.Load() {
			deadMu.Lock()
			cookies := append([]string(nil), dead...)
			deadMu.Unlock()
			for i, c := range cookies {
				target := o.Protected
				if i%2 == 1 {
					target = g2.url + "/x"
				}
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				req.Header.Set("Accept", "application/json")
				req.AddCookie(&http.Cookie{Name: o.Cookie, Value: c})
				resp, err := plain.Do(req)
				if err != nil {
					continue
				}
				var p faulttest.Page
				p.Status, p.Header = resp.StatusCode, resp.Header
				buf := new(strings.Builder)
				_, _ = io.Copy(buf, resp.Body)
				resp.Body.Close()
				p.Body = buf.String()
				if forwardedUser(p) != "" {
					deadMu.Lock()
					resurrect = append(resurrect, fmt.Sprintf("%.8s… by %s at +%v", c, target, time.Since(t0).Round(time.Millisecond)))
					deadMu.Unlock()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Wait until a new master is in charge and requests succeed again, then
	// keep the load on for two more seconds.
	deadline := t0.Add(maxRecovery + 10*time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		n := len(samples)
		recovered := false
		if n > 0 {
			last := samples[n-1]
			recovered = last.status == http.StatusOK && last.start.After(t0)
		}
		mu.Unlock()
		if recovered && top.sessionMaster(t) != master {
			break
		}
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("no recovery %v after the failover", time.Since(t0))
		}
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	deadMu.Lock()
	if len(resurrect) > 0 {
		t.Errorf("logged-out sessions served again during the failover: %v", resurrect)
		t.Logf("t0 %s; instance 2's log: %s", t0.Format("15:04:05.000"), g2.log.String())
	}
	t.Logf("logouts during the failover: %d acknowledged (answers %v); replays never served", len(dead), logoutCode)
	deadMu.Unlock()

	// Every answer was 200 as the session's own user or 503 with
	// Retry-After; measure the window.
	var firstFail, lastFail, firstOKAfter time.Time
	counts := map[int]int{}
	bad := 0
	for _, s := range samples {
		counts[s.status]++
		if !s.ok {
			bad++
			if bad <= 5 {
				t.Errorf("during the failover: %s", s.what)
			}
		}
		if s.status != http.StatusOK {
			if firstFail.IsZero() || s.start.Before(firstFail) {
				firstFail = s.start
			}
			if s.start.After(lastFail) {
				lastFail = s.start
			}
		}
	}
	for _, s := range samples {
		if s.status == http.StatusOK && !firstFail.IsZero() && s.start.After(lastFail) && (firstOKAfter.IsZero() || s.end.Before(firstOKAfter)) {
			firstOKAfter = s.end
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d answers were neither 200 as the session's user nor 503 with Retry-After", bad, len(samples))
	}
	if firstFail.IsZero() {
		t.Logf("%s failover: %d requests, statuses %v, none failed", top.kind, len(samples), counts)
	} else {
		recovery := firstOKAfter.Sub(firstFail)
		t.Logf("%s failover: %d requests, statuses %v; first failure %v after the failover began, recovery (first failure → first success after the last failure) %v",
			top.kind, len(samples), counts, firstFail.Sub(t0).Round(time.Millisecond), recovery.Round(time.Millisecond))
		if recovery > maxRecovery {
			t.Fatalf("recovery took %v, more than %v", recovery, maxRecovery)
		}
	}

	// No session was lost: each works, for its own user (once the
	// instance's recovery hold, restarted by any late failure, has passed).
	for i, u := range users {
		eventually(t, fmt.Sprintf("session %d (%s) after the failover", i, u.name), func() string {
			if p := u.b.Do(http.MethodGet, o.Protected, nil); forwardedUser(p) != subs[u.name] {
				if p.Status != http.StatusServiceUnavailable {
					t.Fatalf("session %d (%s) after the failover: %d %.200s", i, u.name, p.Status, p.Body)
				}
				return fmt.Sprintf("%d; instance log: %s", p.Status, lastLines(g.log.String(), 8))
			}
			return ""
		})
	}
	// The logout done before stays done.
	replay := faulttest.NewBrowser(t)
	pu, _ := url.Parse(o.Protected)
	replay.Client.Jar.SetCookies(pu, []*http.Cookie{{Name: o.Cookie, Value: goneCookie.Value, Path: "/"}})
	if p := replay.Do(http.MethodGet, o.Protected, nil, "Accept", "application/json"); p.Status != http.StatusUnauthorized {
		t.Fatalf("the cookie logged out before the failover: %d %.300s", p.Status, p.Body)
	}
	// New logins and logouts work on the new master (a logout needs a
	// replica's acknowledgement: 503 until the new master has one).
	b := faulttest.NewBrowser(t)
	if p := b.Login(o.Protected, "bob"); forwardedUser(p) != subs["bob"] {
		t.Fatalf("login after the failover: %d %.300s", p.Status, p.Body)
	}
	csrf := o.CSRF(b)
	eventually(t, "logout after the failover", func() string {
		p := b.Do(http.MethodPost, o.Logout, url.Values{"csrf_token": {csrf}}, "Origin", o.Origin)
		switch p.Status {
		case http.StatusSeeOther:
			return ""
		case http.StatusServiceUnavailable:
			return "503"
		}
		t.Fatalf("logout after the failover: %d %.300s", p.Status, p.Body)
		return ""
	})
}

// lastLines returns the last n lines of s, skipping access-log lines.
func lastLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && !strings.Contains(l, `"msg":"request"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}
