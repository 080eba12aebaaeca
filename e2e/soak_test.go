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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/cloakroom/cloakroom/session"
)

// TestChaosSoak is the chaos soak against a real Keycloak: three
// `cloakroom serve` processes built from this tree, sharing one Redis
// session store and the same session keys, behind a round-robin load
// balancer, under a steady load of browser logins through Keycloak's own
// login form, session requests, bearer calls, token refreshes (the realm's
// access tokens live 60 s, CLOAKROOM_SOAK_TOKEN_LIFESPAN) and logouts (RP logout with the CSRF token, and
// back-channel logouts that Keycloak pushes to the load balancer when its
// admin API ends a user's sessions), while faults are injected one after
// the other: kill -9 of a gateway (restarted), a Keycloak restart (its
// own Keycloak with a file database, so realms, keys and sessions
// survive), a session-store outage (faulttest.Proxy down and up; with
// CLOAKROOM_TEST_REDIS_SENTINEL, a Redis master failover instead), a
// signing-key rotation in Keycloak, and 1.5 s of added latency on the
// provider.
//
// Invariants, checked all the time:
//
//	(a) a session cookie that was logged out is never served again (every
//	    logged-out cookie is replayed until the end, through the load
//	    balancer and straight to each gateway);
//	(b) no 5xx outside a fault window (fault start − 1 s to lifted +
//	    margin); inside one, only 503 with Retry-After;
//	(c) go_goroutines and go_memstats_heap_inuse_bytes of each gateway
//	    (/_cloakroom/metrics) at the end are within tolerance of their
//	    steady-state values after the warm-up.
//
// It runs when CLOAKROOM_SOAK is a duration (CI: 2m; scripts/soak.sh 30m)
// and starts its own Keycloak with scripts/keycloak.sh on
// CLOAKROOM_SOAK_KEYCLOAK_PORT (8380) / _MANAGEMENT_PORT (9300), and its
// own redis-server. The figures go to the test log and to
// CLOAKROOM_SOAK_REPORT when set.
func TestChaosSoak(t *testing.T) {
	raw := os.Getenv("CLOAKROOM_SOAK")
	if raw == "" {
		t.Skip("set CLOAKROOM_SOAK=2m (a duration) to run the chaos soak; it starts its own Keycloak (scripts/keycloak.sh, ports 8380/9300) and redis-server; .ci/run runs it as its own step, scripts/soak.sh runs long ones")
	}
	dur, err := time.ParseDuration(raw)
	if err != nil || dur < 30*time.Second {
		t.Fatalf("CLOAKROOM_SOAK=%q: want a duration of at least 30s, e.g. 2m", raw)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("the soak needs redis-server on PATH (apt-get install redis-server): %v", err)
	}
	s := &soak{
		t: t, dur: dur, realm: "soak",
		margin:        envDuration(t, "CLOAKROOM_SOAK_MARGIN", 10*time.Second),
		latency:       envDuration(t, "CLOAKROOM_SOAK_LATENCY", 1500*time.Millisecond),
		users:         envInt(t, "CLOAKROOM_SOAK_BROWSERS", 4),
		tokenLifespan: envDuration(t, "CLOAKROOM_SOAK_TOKEN_LIFESPAN", 60*time.Second),
		active:        map[int]*browserSession{}, deadBy: map[string]int{},
		samples: map[int][]runtimeSample{}, counters: map[string]map[string]float64{},
	}
	s.dir = os.Getenv("CLOAKROOM_SOAK_DIR")
	if s.dir == "" {
		s.dir = t.TempDir()
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.plain = &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.clientTransport = &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	s.plain.Transport = s.clientTransport
	t.Cleanup(s.clientTransport.CloseIdleConnections)

	wall := time.Now()
	s.startKeycloak()
	s.startRedis()
	s.buildGateway()
	s.startUpstreamAndLB()
	s.setupRealm()
	s.startGateways()
	s.run()
	report := s.report(time.Since(wall))
	t.Log("\n" + report)
	if p := os.Getenv("CLOAKROOM_SOAK_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

const soakClientSecret = "soak-gateway-secret"

type soak struct {
	t       *testing.T
	dur     time.Duration
	dir     string
	realm   string
	margin  time.Duration
	latency time.Duration
	users   int
	// tokenLifespan is the realm's access-token lifespan. The gateways
	// refresh 30 s before expiry, so a session in use refreshes once its
	// token is lifespan − 30 s old; a refresh after a lost logout fails
	// (invalid_grant) and ends the session, so only that part of the
	// lifespan can show a lost logout.
	tokenLifespan time.Duration

	ports map[int]bool

	kcPort, kcMgmt int
	kcScriptEnv    []string
	kcProxy        *faulttest.LatencyProxy
	issuer         string // through the latency proxy
	admin          *kcAdmin

	redisAddr  string
	storeProxy *faulttest.Proxy // nil with Sentinel
	storeURL   string
	sentinel   string // redis+sentinel URL of the soak's own topology
	haEnv      []string
	journal    bool // the gateway knows session.logout_journal

	bin     string
	key     string
	gws     []*soakGateway
	lbURL   string
	lbHost  string
	lb      *soakLB
	upURL   string
	browser []soakUser
	api     []soakUser
	probe   soakUser
	victim  soakUser // logged in afresh and out by the back channel during each store outage

	cookieName      string
	plain           *http.Client
	clientTransport *http.Transport
	rec             *soakRecorder
	early           []string
	tailStart       time.Duration

	mu      sync.Mutex
	active  map[int]*browserSession
	dead    []loggedOutCookie
	deadBy  map[string]int
	samples map[int][]runtimeSample
	// counters: the last scrape of each gateway process ("gateway/generation").
	counters map[string]map[string]float64
	kills    int
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		return d
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return def
}

// port returns a free loopback port from 18000–18999 (the soak's range),
// starting at CLOAKROOM_SOAK_PORT_BASE (18300).
func (s *soak) port() int {
	if s.ports == nil {
		s.ports = map[int]bool{}
	}
	base := envInt(s.t, "CLOAKROOM_SOAK_PORT_BASE", 18300)
	for p := base; p < 19000; p++ {
		if s.ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		s.ports[p] = true
		return p
	}
	s.t.Fatal("no free port in 18000–18999")
	return 0
}

// keycloakScript runs scripts/keycloak.sh with the soak's ports and its
// persistent database.
func (s *soak) keycloakScript(args ...string) (string, error) {
	cmd := exec.Command("../scripts/keycloak.sh", args...)
	cmd.Env = append(os.Environ(), s.kcScriptEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("scripts/keycloak.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func (s *soak) startKeycloak() {
	t := s.t
	s.kcPort = envInt(t, "CLOAKROOM_SOAK_KEYCLOAK_PORT", 8380)
	s.kcMgmt = envInt(t, "CLOAKROOM_SOAK_KEYCLOAK_MANAGEMENT_PORT", 9300)
	s.kcScriptEnv = []string{
		"KEYCLOAK_PORT=" + strconv.Itoa(s.kcPort), "KEYCLOAK_MANAGEMENT_PORT=" + strconv.Itoa(s.kcMgmt),
		"KEYCLOAK_DB=dev-file",
	}
	if d := os.Getenv("CLOAKROOM_SOAK_KEYCLOAK_DATA"); d != "" {
		s.kcScriptEnv = append(s.kcScriptEnv, "KEYCLOAK_DATA_DIR="+d)
	}
	t0 := time.Now()
	// A Keycloak left on the port by an earlier run may use another
	// database: start one that is surely ours.
	if _, err := s.keycloakScript("stop"); err != nil {
		t.Fatal(err)
	}
	out, err := s.keycloakScript("start")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := s.keycloakScript("stop"); err != nil {
			t.Log(err)
		}
	})
	user, pass := "admin", "admin"
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "export CLOAKROOM_TEST_KEYCLOAK_ADMIN="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(line, "export CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD="); ok {
			pass = v
		}
	}
	// Everybody — gateways, browsers, token clients, the admin calls that
	// make Keycloak send back-channel logouts — reaches Keycloak through
	// the latency proxy: Keycloak names its issuer after the address it is
	// called on, so tokens, discovery and logout tokens all agree.
	s.kcProxy = faulttest.NewLatencyProxy(t, "127.0.0.1:"+strconv.Itoa(s.port()), "127.0.0.1:"+strconv.Itoa(s.kcPort))
	base := "http://" + s.kcProxy.Addr()
	s.issuer = base + "/realms/" + s.realm
	s.admin = &kcAdmin{base: base, user: user, pass: pass, client: s.plain}
	t.Logf("Keycloak (file database) on %d, through %s, ready in %s", s.kcPort, s.kcProxy.Addr(), time.Since(t0).Round(time.Second))
}

func (s *soak) startRedis() {
	t := s.t
	port := s.port()
	s.redisAddr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", s.redisAddr)
		if err == nil {
			c.Close()
			break
		}
		if i > 50 {
			t.Fatalf("redis-server on %s: %v", s.redisAddr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.storeProxy = faulttest.NewProxy(t, s.redisAddr)
	s.storeURL = "redis://" + s.storeProxy.Addr() + "/0"
}

func (s *soak) buildGateway() {
	t := s.t
	s.bin = filepath.Join(s.dir, "cloakroom")
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/cloakroom")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s.key = session.GenerateKey()
	s.cookieName = "cloakroom" // on http (docs/gateway.md, session.cookie_name)
}

func (s *soak) startUpstreamAndLB() {
	t := s.t
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What the gateway forwarded, for the client to check.
		w.Header().Set("X-Soak-User", r.Header.Get("X-Forwarded-User"))
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ok %s\n", r.URL.Path)
	})}
	s.upURL = s.serve(up)
	lbPort := s.port()
	s.lbHost = "127.0.0.1:" + strconv.Itoa(lbPort)
	s.lbURL = "http://" + s.lbHost
	for i := 0; i < 3; i++ {
		s.gws = append(s.gws, &soakGateway{idx: i, addr: "127.0.0.1:" + strconv.Itoa(s.port())})
	}
	addrs := make([]string, len(s.gws))
	for i, g := range s.gws {
		addrs[i] = g.addr
	}
	var h http.Handler
	s.lb, h = newSoakLB(addrs)
	t.Cleanup(s.lb.transport.CloseIdleConnections)
	ln, err := net.Listen("tcp", s.lbHost)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func (s *soak) serve(srv *http.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.port()))
	if err != nil {
		s.t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	s.t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// setupRealm imports the soak realm: access tokens of 60 s by default (the
// gateways refresh 30 s before expiry, so an active session refreshes
// every 30 s, and a logout lost by a gateway can show for up to 30 s),
// a user per browser worker, two API users, a probe user, and the
// gateway's client with the load balancer's back-channel logout URL.
func (s *soak) setupRealm() {
	t := s.t
	ctx := context.Background()
	mkUser := func(name string) map[string]any {
		return map[string]any{
			"username": name, "enabled": true, "email": name + "@example.com", "emailVerified": true,
			"firstName": "Soak", "lastName": name,
			"credentials": []any{map[string]any{"type": "password", "value": name + "-pw", "temporary": false}},
			"realmRoles":  []string{"user"},
		}
	}
	var users []any
	var names []string
	for i := 0; i < s.users; i++ {
		names = append(names, fmt.Sprintf("w%d", i))
	}
	names = append(names, "api0", "api1", "probe", "probe-api", "victim")
	for _, n := range names {
		users = append(users, mkUser(n))
	}
	rep := map[string]any{
		"realm": s.realm, "enabled": true,
		"accessTokenLifespan": int(s.tokenLifespan.Seconds()), "ssoSessionIdleTimeout": 3600, "ssoSessionMaxLifespan": 36000,
		"roles": map[string]any{"realm": []any{map[string]any{"name": "user"}}},
		"users": users,
		"clients": []any{map[string]any{
			"clientId": "gateway", "enabled": true, "publicClient": false, "secret": soakClientSecret,
			"standardFlowEnabled": true, "directAccessGrantsEnabled": true, "frontchannelLogout": false,
			"redirectUris": []string{s.lbURL + "/*"},
			"attributes": map[string]string{
				"post.logout.redirect.uris":           s.lbURL + "/*",
				"backchannel.logout.url":              s.lbURL + "/_cloakroom/backchannel-logout",
				"backchannel.logout.session.required": "true",
				"pkce.code.challenge.method":          "S256",
			},
			"protocolMappers": []any{map[string]any{
				"name": "audience-gateway", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
				"config": map[string]string{"included.client.audience": "gateway", "access.token.claim": "true", "introspection.token.claim": "true"},
			}},
		}},
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatal(r)
			}
		}()
		s.admin.must(ctx, http.MethodDelete, "/admin/realms/"+s.realm, nil, 0)
		s.admin.must(ctx, http.MethodPost, "/admin/realms", rep, http.StatusCreated)
		for _, n := range names {
			var found []struct{ ID string }
			_ = json.Unmarshal(s.admin.must(ctx, http.MethodGet, "/admin/realms/"+s.realm+"/users?exact=true&username="+n, nil, 200), &found)
			if len(found) != 1 {
				t.Fatalf("user %s not found after the import", n)
			}
			u := soakUser{name: n, password: n + "-pw", sub: found[0].ID}
			switch {
			case strings.HasPrefix(n, "w"):
				s.browser = append(s.browser, u)
			case strings.HasPrefix(n, "api"):
				s.api = append(s.api, u)
			case n == "probe":
				s.probe = u
			case n == "victim":
				s.victim = u
			default:
				s.api = append(s.api, u) // probe-api: the last one
			}
		}
	}()
}

// soakGateway is one `cloakroom serve` process, restarted after a kill.
type soakGateway struct {
	idx     int
	addr    string
	config  string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	gen     int
	started time.Duration
}

func (g *soakGateway) generation() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

func (s *soak) gatewayYAML(g *soakGateway, journal bool) string {
	extra := ""
	switch {
	case journal && os.Getenv("CLOAKROOM_SOAK_LOGOUT_JOURNAL") == "off":
		extra = "  logout_journal: \"off\"\n"
	case journal:
		extra = fmt.Sprintf("  logout_journal: %s\n", filepath.Join(s.dir, fmt.Sprintf("logout-journal-%d", g.idx)))
	}
	return fmt.Sprintf(`listen: %s
public_url: %s
issuer: %s
client_id: gateway
session:
  store: %s
%slog:
  access_log: false
routes:
  - name: api
    path: /api
    upstream: %s
    mode: api
    realm_roles: {any: [user]}
  - name: app
    path: /
    upstream: %s
`, g.addr, s.lbURL, s.issuer, s.storeURL, extra, s.upURL, s.upURL)
}

func (s *soak) gatewayEnv() []string {
	return append(os.Environ(), "CLOAKROOM_CLIENT_SECRET="+soakClientSecret, "CLOAKROOM_ENCRYPTION_KEY="+s.key)
}

// accepts says whether `cloakroom serve --check-config` takes the YAML.
func (s *soak) accepts(yaml string) (bool, string) {
	p := filepath.Join(s.dir, "probe.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "serve", "--config", p, "--check-config")
	cmd.Env = s.gatewayEnv()
	out, err := cmd.CombinedOutput()
	return err == nil, string(out)
}

func (s *soak) startGateways() {
	t := s.t
	if u := os.Getenv("CLOAKROOM_TEST_REDIS_SENTINEL"); u != "" {
		s.startSentinel()
	}
	// The durable logout journal (session.logout_journal) is used as soon
	// as the gateway knows the key.
	if ok, _ := s.accepts(s.gatewayYAML(s.gws[0], true)); ok {
		s.journal = true
	} else {
		s.rec0note("the gateway does not know session.logout_journal yet: running without it")
	}
	if ok, out := s.accepts(s.gatewayYAML(s.gws[0], s.journal)); !ok {
		t.Fatalf("the soak's gateway configuration is refused:\n%s\n%s", s.gatewayYAML(s.gws[0], s.journal), out)
	}
	for _, g := range s.gws {
		g.config = filepath.Join(s.dir, fmt.Sprintf("gateway-%d.yaml", g.idx))
		g.logPath = filepath.Join(s.dir, fmt.Sprintf("gateway-%d.log", g.idx))
		if err := os.WriteFile(g.config, []byte(s.gatewayYAML(g, s.journal)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.startGateway(g, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, g := range s.gws {
			s.stopGateway(g)
		}
	})
	for _, g := range s.gws {
		if err := s.waitReady(g, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// rec0note keeps a note made before the recorder exists.
func (s *soak) rec0note(msg string) {
	s.early = append(s.early, msg)
	s.t.Log(msg)
}

func (s *soak) startGateway(g *soakGateway, rec *soakRecorder) error {
	f, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "serve", "--config", g.config, "--log-format", "text")
	cmd.Env = s.gatewayEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	g.mu.Lock()
	g.cmd, g.done = cmd, done
	g.gen++
	if rec != nil {
		g.started = rec.now()
	}
	g.mu.Unlock()
	return nil
}

func (s *soak) waitReady(g *soakGateway, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	for {
		res, err := s.plain.Get("http://" + g.addr + "/_cloakroom/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("gateway %d exited:\n%s", g.idx, tailFile(g.logPath, 30))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %d not ready after %s:\n%s", g.idx, limit, tailFile(g.logPath, 30))
		}
	}
}

func (s *soak) killGateway(g *soakGateway) {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (s *soak) stopGateway(g *soakGateway) {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			s.t.Errorf("gateway %d after SIGTERM: %v", g.idx, cmd.ProcessState)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		s.t.Errorf("gateway %d did not stop within 20 s of SIGTERM", g.idx)
	}
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// run puts the load on, injects the faults one after the other until the
// duration is over, lets the gateways settle with the load still on,
// then stops and replays every logged-out cookie once more everywhere.
func (s *soak) run() {
	s.rec = newSoakRecorder(s.margin)
	for _, n := range s.early {
		s.rec.note("%s", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for i, u := range s.browser {
		spawn(func() { s.browserWorker(ctx, i, u) })
	}
	for i, u := range s.api[:2] {
		spawn(func() { s.bearerWorker(ctx, i, u) })
	}
	spawn(func() { s.replayer(ctx) })
	spawn(func() { s.prober(ctx, s.probe, s.api[2]) })
	spawn(func() { s.sampler(ctx) })

	warmup := envDuration(s.t, "CLOAKROOM_SOAK_WARMUP", 15*time.Second)
	gap := 10 * time.Second
	if s.dur > 5*time.Minute {
		gap = 30 * time.Second
	}
	gap = envDuration(s.t, "CLOAKROOM_SOAK_GAP", gap)
	soakSleep(ctx, warmup)
	var bg sync.WaitGroup
	faults := s.faultKinds()
	for i := 0; s.rec.now() < s.dur; i++ {
		s.inject(ctx, faults[i%len(faults)], &bg)
		if s.rec.now() >= s.dur {
			break
		}
		soakSleep(ctx, gap)
	}
	bg.Wait()
	// The tail: no fault, the load still on; the end samples of (c).
	tail := envDuration(s.t, "CLOAKROOM_SOAK_TAIL", 25*time.Second)
	s.rec.note("faults over; %s of quiet load before the end", tail)
	s.tailStart = s.rec.now()
	soakSleep(ctx, tail)
	s.sampleAll(ctx)
	cancel()
	wg.Wait()
	// Every logged-out cookie, once more through every gateway.
	s.mu.Lock()
	dead := s.dead
	s.mu.Unlock()
	final := context.Background()
	for _, d := range dead {
		for gw := range s.gws {
			s.replay(final, d, gw)
		}
	}
}
