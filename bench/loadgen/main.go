// Command loadgen drives the gateway load test (bench/gateway-load.sh):
//
//	loadgen upstream -listen 127.0.0.1:9000        a minimal upstream application
//	loadgen login -url URL -user alice -password alice
//	                                              logs a browser in through a gateway or oauth2-proxy
//	                                              and prints the Cookie header to send
//	loadgen token -token-url URL -client-id C -client-secret S -user U -password P
//	                                              prints an access token (password grant)
//	loadgen run -url URL [-H 'Name: value'] (-rate N | -concurrency N) -duration D
//	                                              open-loop fixed rate (latency percentiles, measured
//	                                              from the scheduled send time) or closed-loop maximum
//	                                              throughput; prints one JSON line
//
// It talks only to the addresses it is given (loopback in the script).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen upstream|login|token|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = upstream(os.Args[2:])
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

var kcForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// login performs the browser dance and prints the cookies for the target.
func login(args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	target := fs.String("url", "", "a protected URL (a gateway route, or oauth2-proxy's /oauth2/start?rd=/)")
	user := fs.String("user", "alice", "username")
	password := fs.String("password", "alice", "password")
	fs.Parse(args)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(*target)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := kcForm.FindSubmatch(page)
	if m == nil {
		return fmt.Errorf("no Keycloak login form at the end of %s (status %d)", *target, resp.StatusCode)
	}
	resp, err = c.PostForm(html.UnescapeString(string(m[1])), url.Values{"username": {*user}, "password": {*password}})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("login ended with status %d at %s", resp.StatusCode, resp.Request.URL)
	}
	u, _ := url.Parse(*target)
	var parts []string
	for _, ck := range jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "KEYCLOAK_") || ck.Name == "AUTH_SESSION_ID" {
			continue
		}
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) == 0 {
		return errors.New("no session cookie after login")
	}
	fmt.Println(strings.Join(parts, "; "))
	return nil
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
	fs.Parse(args)
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
	one := func(ctx context.Context) error {
		resp, err := client.Do(req.Clone(ctx))
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
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
