// Command loadgen drives the gateway load test (bench/gateway-load.sh):
//
//	loadgen upstream -listen 127.0.0.1:9000        a minimal upstream application
//	loadgen hop -listen ADDR -upstream URL [-buffer-pool]
//	                                              a bare httputil.ReverseProxy in front of URL, with a
//	                                              pooled transport like the gateway's (bench/floor-load.sh)
//	loadgen login -url URL -user alice -password alice [-n N -concurrency C]
//	                                              logs a browser in through a gateway or oauth2-proxy
//	                                              and prints the Cookie header to send (with -n, N
//	                                              fresh browsers, one Cookie header per line)
//	loadgen token -token-url URL -client-id C -client-secret S -user U -password P
//	                                              prints an access token (password grant)
//	loadgen run -url URL [-H 'Name: value'] [-cookies FILE] [-pid PID] (-rate N | -concurrency N) -duration D
//	                                              open-loop fixed rate (latency percentiles, measured
//	                                              from the scheduled send time) or closed-loop maximum
//	                                              throughput; prints one JSON line. -cookies sends the
//	                                              file's Cookie headers round-robin, one per request;
//	                                              -pid adds that process's CPU time per request over
//	                                              the measured window and its RSS at the end (Linux)
//
// It talks only to the addresses it is given (loopback in the script).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen upstream|hop|login|token|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = upstream(os.Args[2:])
	case "hop":
		err = hop(os.Args[2:])
	case "login":
		err = login(os.Args[2:])
	case "token":
		err = token(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "address")
	fs.Parse(args)
	body := []byte(`{"ok":true,"service":"upstream","note":"a small JSON answer of about a hundred bytes"}` + "\n")
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// hop is the floor of any authenticating reverse proxy: a bare
// httputil.ReverseProxy with a pooled transport like the gateway's
// (MaxIdleConnsPerHost 256), optionally copying bodies through pooled
// 32 KiB buffers (-buffer-pool) as the gateway does.
func hop(args []string) error {
	fs := flag.NewFlagSet("hop", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9001", "address")
	upstreamURL := fs.String("upstream", "", "upstream URL")
	pooled := fs.Bool("buffer-pool", false, "copy bodies through a sync.Pool of 32 KiB buffers")
	identity := fs.Bool("identity", false, "also send the upstream the headers the gateway adds for a logged-in user (X-Real-Ip and X-Forwarded-User, -Email, -Preferred-Username, -Roles, fixed values shaped like alice's) and drop the Cookie header, as the gateway drops its session cookie")
	fs.Parse(args)
	target, err := url.Parse(*upstreamURL)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream: want an absolute URL, got %q", *upstreamURL)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 1024
	transport.MaxIdleConnsPerHost = 256
	transport.IdleConnTimeout = 90 * time.Second
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			if *identity {
				setIdentity(pr)
			}
		},
		Transport: transport,
	}
	if *pooled {
		proxy.BufferPool = &bufferPool{}
	}
	srv := &http.Server{Addr: *listen, Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// setIdentity gives the outbound request what the gateway's Rewrite adds
// for a logged-in user, so that the hop's upstream reads the same headers:
// the cost of forwarding an identity, whoever computes it.
func setIdentity(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	h.Del("Cookie")
	h.Set("X-Real-Ip", strings.Join(h.Values("X-Forwarded-For"), ", "))
	h.Set("X-Forwarded-User", "8391d845-7513-4fb6-9b8f-9788b52d3a49")
	h.Set("X-Forwarded-Email", "alice@example.com")
	h.Set("X-Forwarded-Preferred-Username", "alice")
	h.Set("X-Forwarded-Roles", "user")
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != 32<<10 {
		return
	}
	buf = buf[:cap(buf)]
	b.p.Put(&buf)
}

var kcForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// login performs the browser dance and prints the cookies for the target;
// with -n, it does so for n fresh browsers, -concurrency at a time, and
// prints one Cookie header per line (progress and the rate on stderr).
func login(args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	target := fs.String("url", "", "a protected URL (a gateway route, or oauth2-proxy's /oauth2/start?rd=/)")
	user := fs.String("user", "alice", "username")
	password := fs.String("password", "alice", "password")
	n := fs.Int("n", 0, "log in this many fresh browsers (0: one, as before)")
	concurrency := fs.Int("concurrency", 16, "with -n: browsers logging in at the same time")
	fs.Parse(args)
	if *n <= 0 {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		cookie, err := loginOnce(c, *target, *user, *password)
		if err != nil {
			return err
		}
		fmt.Println(cookie)
		return nil
	}
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	out := bufio.NewWriter(os.Stdout)
	var (
		mu        sync.Mutex
		next      atomic.Int64
		done      int
		firstErr  error
		wg        sync.WaitGroup
		startTime = time.Now()
	)
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				jar, _ := cookiejar.New(nil)
				c := &http.Client{Jar: jar, Transport: transport, Timeout: 30 * time.Second}
				cookie, err := loginOnce(c, *target, *user, *password)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				fmt.Fprintln(out, cookie)
				done++
				if done%1000 == 0 || done == *n {
					el := time.Since(startTime).Seconds()
					fmt.Fprintf(os.Stderr, "  %d/%d logins, %.1f s, %.0f logins/s\n", done, *n, el, float64(done)/el)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := out.Flush(); err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("after %d logins: %w", done, firstErr)
	}
	return nil
}

// loginOnce logs in the browser c (a client with an empty cookie jar)
// through target's Keycloak login form and returns the Cookie header for
// target.
func loginOnce(c *http.Client, target, user, password string) (string, error) {
	resp, err := c.Get(target)
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := kcForm.FindSubmatch(page)
	if m == nil {
		return "", fmt.Errorf("no Keycloak login form at the end of %s (status %d)", target, resp.StatusCode)
	}
	resp, err = c.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("login ended with status %d at %s", resp.StatusCode, resp.Request.URL)
	}
	u, _ := url.Parse(target)
	var parts []string
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "KEYCLOAK_") || ck.Name == "AUTH_SESSION_ID" {
			continue
		}
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) == 0 {
		return "", errors.New("no session cookie after login")
	}
	return strings.Join(parts, "; "), nil
}

func token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	tokenURL := fs.String("token-url", "", "token endpoint")
	clientID := fs.String("client-id", "", "client id")
	secret := fs.String("client-secret", "", "client secret")
	user := fs.String("user", "alice", "username")
	password := fs.String("password", "alice", "password")
	fs.Parse(args)
	resp, err := http.PostForm(*tokenURL, url.Values{
		"grant_type": {"password"}, "client_id": {*clientID}, "client_secret": {*secret},
		"username": {*user}, "password": {*password}, "scope": {"openid"},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return fmt.Errorf("no access token (status %d)", resp.StatusCode)
	}
	fmt.Println(t.AccessToken)
	return nil
}

type headerFlag []string

func (h *headerFlag) String() string     { return strings.Join(*h, "; ") }
func (h *headerFlag) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	Name        string  `json:"name"`
	Mode        string  `json:"mode"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	FirstStatus int     `json:"first_bad_status,omitempty"`
	// With -cookies: how many different Cookie headers were sent.
	Cookies int `json:"cookies,omitempty"`
	// With -pid: the process's CPU time (utime + stime) over the measured
	// window per request, and its resident set size at the end.
	CPUusPerReq float64 `json:"cpu_us_per_req,omitempty"`
	RSSkB       int64   `json:"rss_kb,omitempty"`
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// procCPU returns the CPU time (user + system) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (field 3, state, is the first).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS returns VmRSS of process pid in kB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// readCookies reads one Cookie header per non-empty line.
func readCookies(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cookies []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			cookies = append(cookies, line)
		}
	}
	if len(cookies) == 0 {
		return nil, fmt.Errorf("%s: no cookies", path)
	}
	return cookies, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	name := fs.String("name", "", "label for the result")
	target := fs.String("url", "", "URL to request")
	var headers headerFlag
	fs.Var(&headers, "H", "header 'Name: value' (repeatable)")
	rate := fs.Int("rate", 0, "open loop: requests per second")
	concurrency := fs.Int("concurrency", 0, "closed loop: concurrent clients")
	duration := fs.Duration("duration", 10*time.Second, "how long")
	warmup := fs.Duration("warmup", time.Second, "warm-up before measuring")
	cookieFile := fs.String("cookies", "", "file of Cookie headers, one per line, sent round-robin (one per request)")
	pid := fs.Int("pid", 0, "report this process's CPU time per request and its RSS (Linux /proc)")
	fs.Parse(args)
	var cookies []string
	if *cookieFile != "" {
		var err error
		if cookies, err = readCookies(*cookieFile); err != nil {
			return err
		}
	}
	if *target == "" || (*rate == 0) == (*concurrency == 0) {
		return errors.New("give -url and exactly one of -rate or -concurrency")
	}
	req, err := http.NewRequest("GET", *target, nil)
	if err != nil {
		return err
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("header %q: want 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var firstBad atomic.Int64
	var nextCookie atomic.Uint64
	one := func(ctx context.Context) error {
		r := req.Clone(ctx)
		if len(cookies) > 0 {
			r.Header.Set("Cookie", cookies[(nextCookie.Add(1)-1)%uint64(len(cookies))])
		}
		resp, err := client.Do(r)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			firstBad.CompareAndSwap(0, int64(resp.StatusCode))
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Warm-up: connections, caches.
	wctx, cancel := context.WithTimeout(context.Background(), *warmup)
	for wctx.Err() == nil {
		if err := one(context.Background()); err != nil {
			cancel()
			return fmt.Errorf("warm-up request failed: %w (is the cookie or token valid?)", err)
		}
	}
	cancel()

	var mu sync.Mutex
	var lat []time.Duration
	var errs, reqs atomic.Int64
	record := func(d time.Duration, err error) {
		reqs.Add(1)
		if err != nil {
			errs.Add(1)
			return
		}
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	var cpu0 time.Duration
	if *pid > 0 {
		if cpu0, err = procCPU(*pid); err != nil {
			return err
		}
	}
	start := time.Now()
	mode := ""
	if *rate > 0 {
		mode = fmt.Sprintf("open loop %d req/s", *rate)
		interval := time.Second / time.Duration(*rate)
		var wg sync.WaitGroup
		total := int(duration.Seconds() * float64(*rate))
		for i := range total {
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := one(context.Background())
				record(time.Since(due), err) // from the scheduled time: no coordinated omission
			}()
		}
		wg.Wait()
	} else {
		mode = fmt.Sprintf("closed loop %d clients", *concurrency)
		deadline := start.Add(*duration)
		var wg sync.WaitGroup
		for range *concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					t0 := time.Now()
					err := one(context.Background())
					record(time.Since(t0), err)
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start).Seconds()
	var cpuPerReq float64
	var rss int64
	if *pid > 0 {
		cpu1, err := procCPU(*pid)
		if err != nil {
			return err
		}
		if rss, err = procRSS(*pid); err != nil {
			return err
		}
		if n := reqs.Load(); n > 0 {
			cpuPerReq = float64((cpu1 - cpu0).Microseconds()) / float64(n)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	res := result{
		Name: *name, Mode: mode, Requests: reqs.Load(), Errors: errs.Load(), Seconds: elapsed,
		RPS: float64(reqs.Load()-errs.Load()) / elapsed, P50ms: pct(.50), P90ms: pct(.90), P99ms: pct(.99), Maxms: pct(1),
		FirstStatus: int(firstBad.Load()),
		Cookies:     len(cookies), CPUusPerReq: cpuPerReq, RSSkB: rss,
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
