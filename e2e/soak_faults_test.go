package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The chaos soak's faults and its report.

func (s *soak) faultKinds() []string {
	kinds := []string{"kill_gateway", "store_outage", "keycloak_restart", "key_rotation", "provider_latency"}
	if s.sentinel != "" {
		kinds[1] = "redis_failover"
	}
	return kinds
}

// inject runs one fault; the key rotation's second half (disabling the
// old key once every token signed with it has expired) runs in bg.
func (s *soak) inject(ctx context.Context, kind string, bg *sync.WaitGroup) {
	// The store outage's victims: two sessions that will be logged out
	// while the store is away, one by Keycloak over the back channel
	// (pushed once, never resent), one through the gateway's logout (its
	// CSRF token read before). Neither may be served again once its
	// logout was accepted. The first is a session logged in just now: its
	// access token stays fresh (no refresh at Keycloak, which would end
	// it) for the token's lifespan − 30 s, long enough to show a lost
	// logout once the store is back.
	var bc, rp *browserSession
	csrf := ""
	if kind == "store_outage" {
		var err error
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			if bc, err = s.login(ctx, s.victim, "/app/victim", -2); err == nil {
				break
			}
			soakSleep(ctx, time.Second)
		}
		if bc == nil {
			bc = s.waitActive(ctx, 30*time.Second)
		}
		rp = s.waitActive(ctx, 30*time.Second)
		if rp != nil {
			csrf, _ = s.csrfToken(ctx, rp)
		}
	}
	f := &soakFault{kind: kind, start: s.rec.now()}
	s.rec.addFault(f)
	w := s.rec.openWindow(kind)
	lift := func() {
		f.lifted = s.rec.now()
		s.rec.closeWindow(w)
	}
	switch kind {
	case "kill_gateway":
		s.mu.Lock()
		g := s.gws[s.kills%len(s.gws)]
		s.kills++
		s.mu.Unlock()
		f.detail = fmt.Sprintf("gateway %d (%s)", g.idx, g.addr)
		f.kinds = []string{fmt.Sprintf("probe_session@%d", g.idx), fmt.Sprintf("probe_bearer@%d", g.idx), "session", "bearer"}
		s.killGateway(g)
		soakSleep(ctx, 3*time.Second)
		if err := s.startGateway(g, s.rec); err != nil {
			f.err = err.Error()
		} else if err := s.waitReady(g, 60*time.Second); err != nil {
			f.err = err.Error()
		}
		lift()
	case "keycloak_restart":
		f.kinds = []string{"login", "token", "bc_logout"}
		t0 := time.Now()
		if _, err := s.keycloakScript("restart"); err != nil {
			f.err = truncate(err.Error(), 300)
		}
		f.detail = fmt.Sprintf("down and back in %s", time.Since(t0).Round(100*time.Millisecond))
		lift()
	case "store_outage":
		f.kinds = []string{"session", "probe_session", "login", "rp_logout"}
		d := envDuration(s.t, "CLOAKROOM_SOAK_STORE_OUTAGE", 5*time.Second)
		s.storeProxy.Down()
		soakSleep(ctx, d/5)
		var what []string
		if bc != nil {
			ok, why := s.bcLogout(ctx, bc, "backchannel during store outage")
			what = append(what, fmt.Sprintf("back-channel logout of %s (admin call ok=%v %s)", bc.user.name, ok, why))
		}
		if rp != nil && csrf != "" {
			ok, why := s.rpLogoutWith(ctx, rp, csrf, "rp during store outage")
			what = append(what, fmt.Sprintf("RP logout of %s (accepted=%v %s)", rp.user.name, ok, why))
		}
		if len(what) == 0 {
			what = append(what, "no active session to log out")
		}
		soakSleep(ctx, d-d/5)
		if err := s.storeProxy.Up(); err != nil {
			f.err = err.Error()
		}
		lift()
		if rp != nil && !s.isDead(rp) {
			// Refused during the outage: the cookie was kept, so log out
			// again now that the store is back.
			for i := 0; i < 10 && ctx.Err() == nil; i++ {
				if ok, _ := s.rpLogout(ctx, rp, "rp after store outage"); ok {
					break
				}
				soakSleep(ctx, time.Second)
			}
		}
		f.detail = fmt.Sprintf("Redis unreachable for %s; %s", d, strings.Join(what, "; "))
	case "redis_failover":
		f.kinds = []string{"session", "probe_session", "login", "rp_logout"}
		before, after, err := s.failover(ctx)
		f.detail = fmt.Sprintf("master %s → %s", before, after)
		if err != nil {
			f.err = err.Error()
		}
		lift()
	case "key_rotation":
		f.kinds = []string{"bearer", "login", "token"}
		old, added, err := s.rotateKey(ctx)
		f.detail = fmt.Sprintf("new rsa-generated key %s above %d old one(s)", added, len(old))
		if err != nil {
			f.err = err.Error()
		}
		lift()
		if err == nil {
			// Disable the old keys once every token they signed has expired.
			bg.Add(1)
			go func() {
				defer bg.Done()
				soakSleep(ctx, s.tokenLifespan+5*time.Second)
				g := &soakFault{kind: "key_disable_old", start: s.rec.now(), kinds: []string{"bearer", "login", "token", "rp_logout"}}
				s.rec.addFault(g)
				w := s.rec.openWindow("key_disable_old")
				n, err := s.disableKeys(ctx, old)
				for i := 0; err != nil && i < 60 && ctx.Err() == nil; i++ {
					soakSleep(ctx, time.Second) // Keycloak may be restarting
					n, err = s.disableKeys(ctx, old)
				}
				g.detail = fmt.Sprintf("%d old key(s) disabled", n)
				if err != nil {
					g.err = err.Error()
				}
				g.lifted = s.rec.now()
				s.rec.closeWindow(w)
			}()
		}
	case "provider_latency":
		f.kinds = []string{"login", "token", "session", "bearer"}
		d := envDuration(s.t, "CLOAKROOM_SOAK_LATENCY_WINDOW", 15*time.Second)
		s.kcProxy.SetDelay(s.latency)
		f.detail = fmt.Sprintf("+%s on every request to Keycloak for %s", s.latency, d)
		soakSleep(ctx, d)
		s.kcProxy.SetDelay(0)
		lift()
	}
	s.rec.note("fault %s: %s (%s → %s) %s", kind, f.detail, f.start.Round(100*time.Millisecond), f.lifted.Round(100*time.Millisecond), f.err)
}

type kcComponent struct {
	ID           string              `json:"id,omitempty"` // empty: Keycloak makes one (an "" id would be kept as such)
	Name         string              `json:"name"`
	ProviderID   string              `json:"providerId"`
	ProviderType string              `json:"providerType"`
	ParentID     string              `json:"parentId"`
	Config       map[string][]string `json:"config"`
}

// rotateKey adds an rsa-generated key with a higher priority than every
// enabled RSA key, so Keycloak signs with it from now on; it returns the
// ids of the keys it outranks.
func (s *soak) rotateKey(ctx context.Context) (old []string, added string, err error) {
	status, data, err := s.admin.call(ctx, http.MethodGet, "/admin/realms/"+s.realm+"/components?type=org.keycloak.keys.KeyProvider", nil)
	if err != nil || status != 200 {
		return nil, "", fmt.Errorf("list keys: %d %v", status, err)
	}
	var comps []kcComponent
	if err := json.Unmarshal(data, &comps); err != nil {
		return nil, "", err
	}
	top, parent := 0, ""
	for _, c := range comps {
		if c.ProviderID != "rsa-generated" || first(c.Config["enabled"]) == "false" {
			continue
		}
		old = append(old, c.ID)
		parent = c.ParentID
		if p, _ := strconv.Atoi(first(c.Config["priority"])); p > top {
			top = p
		}
	}
	if parent == "" {
		status, data, err := s.admin.call(ctx, http.MethodGet, "/admin/realms/"+s.realm, nil)
		if err != nil || status != 200 {
			return nil, "", fmt.Errorf("realm: %d %v", status, err)
		}
		var realm struct{ ID string }
		_ = json.Unmarshal(data, &realm)
		parent = realm.ID
	}
	added = fmt.Sprintf("soak-rsa-%d", top+10)
	status, data, err = s.admin.call(ctx, http.MethodPost, "/admin/realms/"+s.realm+"/components", kcComponent{
		Name: added, ProviderID: "rsa-generated", ProviderType: "org.keycloak.keys.KeyProvider", ParentID: parent,
		Config: map[string][]string{"priority": {strconv.Itoa(top + 10)}, "enabled": {"true"}, "active": {"true"}, "algorithm": {"RS256"}, "keySize": {"2048"}},
	})
	if err != nil || status != http.StatusCreated {
		return old, added, fmt.Errorf("add key: %d %v %.200s", status, err, data)
	}
	return old, added, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (s *soak) disableKeys(ctx context.Context, ids []string) (int, error) {
	n := 0
	for _, id := range ids {
		path := "/admin/realms/" + s.realm + "/components/" + id
		status, data, err := s.admin.call(ctx, http.MethodGet, path, nil)
		if err != nil || status != 200 {
			return n, fmt.Errorf("get key %s: %d %v", id, status, err)
		}
		var c kcComponent
		if err := json.Unmarshal(data, &c); err != nil {
			return n, err
		}
		c.Config["enabled"] = []string{"false"}
		c.Config["active"] = []string{"false"}
		status, data, err = s.admin.call(ctx, http.MethodPut, path, c)
		if err != nil || status != http.StatusNoContent {
			return n, fmt.Errorf("disable key %s: %d %v %.200s", id, status, err, data)
		}
		n++
	}
	return n, nil
}

// startSentinel starts the soak's own Sentinel topology (so that its
// failovers disturb no other test) with scripts/redis-ha.sh, and uses it
// as the store when the gateway accepts redis+sentinel URLs.
func (s *soak) startSentinel() {
	t := s.t
	data, sent := s.port(), 0
	for p := data + 1; p < data+3; p++ {
		s.ports[p] = true // the replicas
	}
	sent = s.port()
	for p := sent + 1; p < sent+3; p++ {
		s.ports[p] = true
	}
	s.haEnv = []string{"REDIS_HA_BASE=" + strconv.Itoa(data), "REDIS_HA_SENTINEL_BASE=" + strconv.Itoa(sent), "REDIS_HA_DIR=" + filepath.Join(s.dir, "redis-ha")}
	cmd := exec.Command("../scripts/redis-ha.sh", "start", "sentinel")
	cmd.Env = append(os.Environ(), s.haEnv...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/redis-ha.sh start sentinel: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		cmd := exec.Command("../scripts/redis-ha.sh", "stop", "sentinel")
		cmd.Env = append(os.Environ(), s.haEnv...)
		_ = cmd.Run()
	})
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export CLOAKROOM_TEST_REDIS_SENTINEL="); ok {
			s.sentinel = v
		}
	}
	prev := s.storeURL
	s.storeURL = s.sentinel
	if ok, msg := s.accepts(s.gatewayYAML(s.gws[0], false)); !ok {
		s.rec0note("the gateway does not accept " + s.sentinel + " yet (" + truncate(msg, 200) + "): single Redis, no failover fault")
		s.storeURL, s.sentinel = prev, ""
	}
}

// failover asks a Sentinel for a failover of the master and waits until
// the Sentinels name a new one.
func (s *soak) failover(ctx context.Context) (before, after string, err error) {
	u := strings.TrimPrefix(s.sentinel, "redis+sentinel://")
	hosts, master, _ := strings.Cut(u, "/")
	master, _, _ = strings.Cut(master, "?")
	addr := strings.Split(hosts, ",")[0]
	get := func() (string, error) {
		r, err := resp(addr, "SENTINEL", "get-master-addr-by-name", master)
		return strings.Join(r, ":"), err
	}
	if before, err = get(); err != nil {
		return "", "", err
	}
	if _, err := resp(addr, "SENTINEL", "FAILOVER", master); err != nil {
		return before, "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if after, err = get(); err == nil && after != before {
			return before, after, nil
		}
		soakSleep(ctx, 200*time.Millisecond)
	}
	return before, after, fmt.Errorf("no new master after 30 s")
}

// resp sends one Redis command and returns the strings of its answer.
func resp(addr string, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var read func() ([]string, error)
	read = func() ([]string, error) {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch line[0] {
		case '+', ':':
			return []string{line[1:]}, nil
		case '-':
			return nil, fmt.Errorf("redis: %s", line[1:])
		case '$':
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return nil, nil
			}
			buf := make([]byte, n+2)
			if _, err := ioReadFull(r, buf); err != nil {
				return nil, err
			}
			return []string{string(buf[:n])}, nil
		case '*':
			n, _ := strconv.Atoi(line[1:])
			var out []string
			for i := 0; i < n; i++ {
				v, err := read()
				if err != nil {
					return nil, err
				}
				out = append(out, v...)
			}
			return out, nil
		}
		return nil, fmt.Errorf("redis: unexpected %q", line)
	}
	return read()
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// report checks the invariants (failing the test on a violation) and
// returns the figures.
func (s *soak) report(wall time.Duration) string {
	t, r := s.t, s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	store := "one Redis through a fault proxy"
	if s.sentinel != "" {
		store = "Redis Sentinel " + s.sentinel
	}
	p("chaos soak: %s of load (%s wall clock with set-up), 3 gateways behind a round-robin LB, store: %s, logout journal: %s, %d browsers, 2 bearer clients, access tokens %s",
		s.dur, wall.Round(time.Second), store, s.journalMode(), s.users, s.tokenLifespan)

	p("\nrequests by kind and status:")
	total := 0
	for _, k := range sortedKeys(r.counts) {
		var parts []string
		for _, st := range sortedKeys(r.counts[k]) {
			parts = append(parts, fmt.Sprintf("%s=%d", st, r.counts[k][st]))
			total += r.counts[k][st]
		}
		p("  %-20s %s", k, strings.Join(parts, " "))
	}
	p("  total %d answers; LB retries on another gateway: %d", total, s.lb.retries.Load())
	s.mu.Lock()
	p("  logged-out session cookies: %d (%s)", len(s.dead), fmtCounts(s.deadBy))
	s.mu.Unlock()

	byKind := map[string]int{}
	for _, f := range r.faults {
		byKind[f.kind]++
	}
	p("\nfaults injected: %s", fmtCounts(byKind))
	for _, f := range r.faults {
		line := fmt.Sprintf("  +%-7s %-17s %s; lifted +%s", f.start.Round(100*time.Millisecond), f.kind, f.detail, f.lifted.Round(100*time.Millisecond))
		if f.err != "" {
			line += "; ERROR " + f.err
		}
		p("%s", line)
		p("           recovery (fault start → first success after the first failure): %s", r.recovery(f))
		if f.err != "" {
			t.Errorf("fault %s at +%s failed: %s", f.kind, f.start, f.err)
		}
	}

	p("\nerrors by kind:")
	if len(r.errors) == 0 {
		p("  none")
	}
	for _, k := range sortedKeys(r.errors) {
		sp := r.errSpan[k]
		p("  %5d  %-70s (+%s … +%s)", r.errors[k], k, sp[0].Round(100*time.Millisecond), sp[1].Round(100*time.Millisecond))
	}

	// (b): 5xx and unreachable gateways against the windows.
	inside, insideBad, outside := 0, 0, 0
	var bad []string
	for _, f := range r.fives {
		w := r.inWindow(f.at)
		ok503 := f.status == http.StatusServiceUnavailable && f.retryAfter
		switch {
		case w != "" && ok503:
			inside++
		case w != "":
			insideBad++
			bad = append(bad, fmt.Sprintf("+%s %s %d (Retry-After %v) in %s window, backend %s %s: %s", f.at.Round(100*time.Millisecond), f.kind, f.status, f.retryAfter, w, f.backend, f.lb, f.body))
		default:
			outside++
			bad = append(bad, fmt.Sprintf("+%s %s %d outside any fault window, backend %s %s: %s", f.at.Round(100*time.Millisecond), f.kind, f.status, f.backend, f.lb, f.body))
		}
	}
	connOutside := 0
	for _, c := range r.connErrs {
		if r.inWindow(c.at) == "" && !strings.Contains(c.err, "context canceled") {
			connOutside++
			bad = append(bad, fmt.Sprintf("+%s %s gateway unreachable outside any fault window: %s", c.at.Round(100*time.Millisecond), c.kind, truncate(c.err, 120)))
		}
	}
	p("\ninvariant (b) 5xx: %d inside fault windows as 503 with Retry-After (allowed); %d other 5xx inside windows; %d 5xx outside windows; %d unreachable outside windows",
		inside, insideBad, outside, connOutside)
	for i, v := range bad {
		if i == 30 {
			p("  … %d more", len(bad)-30)
			break
		}
		p("  VIOLATION %s", v)
	}
	if len(bad) > 0 {
		t.Errorf("invariant (b): %d violations (see the report)", len(bad))
	}

	// (a): logged-out cookies served again, one line per cookie.
	servedN := 0
	for _, v := range r.served {
		servedN += v.n
	}
	p("\ninvariant (a) logged-out cookies served again: %d cookies, %d answers", len(r.served), servedN)
	var served []*servedDead
	for _, v := range r.served {
		served = append(served, v)
	}
	sort.Slice(served, func(i, j int) bool { return served[i].first < served[j].first })
	for _, v := range served {
		p("  VIOLATION session of %s, %s logout at +%s (cookie %s…): served %d times from +%s to +%s (%s after the logout) by gateways %s; in fault windows %s",
			v.d.user, v.d.how, v.d.at.Round(100*time.Millisecond), v.d.value[:6], v.n, v.first.Round(100*time.Millisecond), v.last.Round(100*time.Millisecond),
			(v.first - v.d.at).Round(100*time.Millisecond), fmtCounts(v.gateways), fmtCounts(v.windows))
	}
	if len(served) > 0 {
		t.Errorf("invariant (a): %d logged-out sessions were served again (see the report)", len(served))
	}
	p("\nidentity checks (a session or token served as someone else, a login landing as someone else): %d violations", len(r.violations)+r.dropped)
	for i, v := range r.violations {
		if i == 40 {
			p("  … %d more", len(r.violations)+r.dropped-40)
			break
		}
		p("  VIOLATION %s", v)
	}
	if len(r.violations) > 0 {
		t.Errorf("identity: %d violations (see the report)", len(r.violations)+r.dropped)
	}

	// The gateways' own counters, summed over every process (a killed
	// process counts up to its last scrape).
	sum := map[string]float64{}
	for _, c := range s.counters {
		for k, v := range c {
			if !strings.Contains(k, "journal_pending") {
				sum[k] += v
			}
		}
	}
	p("\ngateway counters (sum over the processes, at their last scrape):")
	for _, k := range sortedKeys(sum) {
		p("  %-60s %.0f", k, sum[k])
	}
	// (c): runtime figures per gateway process.
	p("\ninvariant (c) goroutines and heap in use (median of the first 3 samples ≥ 20 s after the process started vs the last 3):")
	s.mu.Lock()
	for i := range s.gws {
		line, ok := checkRuntime(s.samples[i], s.gws[i].generation(), s.gws[i].started)
		p("  gateway %d: %s", i, line)
		if !ok {
			t.Errorf("invariant (c) gateway %d: %s", i, line)
		}
	}
	s.mu.Unlock()

	// After the faults, the service works again: sessions and tokens are
	// served (a hard check), and logins and token grants complete (noted:
	// a Keycloak just restarted on a loaded machine can be slow).
	okInTail := map[string]int{}
	for _, e := range r.events {
		if e.ok && e.at >= s.tailStart {
			okInTail[e.kind]++
		}
	}
	p("\nsuccesses in the quiet tail: session %d, bearer %d, login %d, token %d", okInTail["session"], okInTail["bearer"], okInTail["login"], okInTail["token"])
	for _, k := range []string{"session", "bearer"} {
		if okInTail[k] == 0 {
			t.Errorf("no %s request succeeded in the %s after the last fault", k, s.rec.now()-s.tailStart)
		}
	}
	for _, k := range []string{"login", "token"} {
		failed := 0
		for _, e := range r.events {
			if !e.ok && e.kind == k && e.at >= s.tailStart {
				failed++
			}
		}
		if okInTail[k] == 0 && failed > 0 {
			r.notes = append(r.notes, fmt.Sprintf("no %s succeeded in the quiet tail, %d failed", k, failed))
		}
	}

	p("\nnotes:")
	for _, n := range r.notes {
		p("  %s", n)
	}
	return b.String()
}

func checkRuntime(samples []runtimeSample, gen int, started time.Duration) (string, bool) {
	var life []runtimeSample
	for _, x := range samples {
		if x.gen == gen && x.at >= started+20*time.Second {
			life = append(life, x)
		}
	}
	if len(life) < 6 {
		return fmt.Sprintf("only %d samples in its last lifetime (started +%s): not judged", len(life), started.Round(time.Second)), true
	}
	var g0, h0, g1, h1 []float64
	for _, x := range life[:3] {
		g0, h0 = append(g0, x.goroutines), append(h0, x.heap)
	}
	for _, x := range life[len(life)-3:] {
		g1, h1 = append(g1, x.goroutines), append(h1, x.heap)
	}
	gs, ge, hs, he := median(g0), median(g1), median(h0), median(h1)
	gLimit := gs*1.5 + 30
	hLimit := hs*1.5 + 8<<20
	ok := ge <= gLimit && he <= hLimit
	verdict := "flat"
	if !ok {
		verdict = "GROWN"
	}
	return fmt.Sprintf("%s: goroutines %.0f → %.0f (limit %.0f), heap in use %.1f → %.1f MiB (limit %.1f), %d samples from +%s to +%s",
		verdict, gs, ge, gLimit, hs/(1<<20), he/(1<<20), hLimit/(1<<20), len(life), life[0].at.Round(time.Second), life[len(life)-1].at.Round(time.Second)), ok
}

// recovery measures, for each outcome kind the fault touches, the time
// from the fault's start to the first success after the first failure
// seen from the start to the end of its window; r.mu is held.
func (r *soakRecorder) recovery(f *soakFault) string {
	end := f.lifted + r.margin
	if f.lifted == 0 {
		end = r.now()
	}
	var parts []string
	for _, k := range f.kinds {
		var firstFail, firstOK time.Duration = -1, -1
		fails := 0
		for _, e := range r.events {
			if e.kind != k || e.at < f.start {
				continue
			}
			if !e.ok && e.at <= end {
				fails++
				if firstFail < 0 {
					firstFail = e.at
				}
			}
			if e.ok && firstFail >= 0 && firstOK < 0 {
				firstOK = e.at
			}
		}
		switch {
		case fails == 0:
			parts = append(parts, k+" unaffected")
		case firstOK < 0:
			parts = append(parts, fmt.Sprintf("%s %d failures, NO success after", k, fails))
		default:
			after := ""
			if f.lifted > 0 && firstOK > f.lifted {
				after = fmt.Sprintf(", %s after the fault was lifted", (firstOK - f.lifted).Round(100*time.Millisecond))
			}
			parts = append(parts, fmt.Sprintf("%s %s (%d failures%s)", k, (firstOK-f.start).Round(100*time.Millisecond), fails, after))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (s *soak) journalMode() string {
	switch {
	case !s.journal:
		return "not supported by this gateway"
	case os.Getenv("CLOAKROOM_SOAK_LOGOUT_JOURNAL") == "off":
		return "off (CLOAKROOM_SOAK_LOGOUT_JOURNAL=off)"
	}
	return "one file per instance"
}
