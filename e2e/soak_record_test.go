package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The chaos soak's bookkeeping: every answer by kind and status, the fault
// windows, the answers that break an invariant, and the gateways' Go
// runtime figures over time.

// soakEvent is one outcome that the recovery times are computed from.
type soakEvent struct {
	at   time.Duration
	kind string
	ok   bool
}

// soak5xx is a 5xx answered by a gateway (or the test's load balancer in
// front of them), judged against the fault windows at the end.
type soak5xx struct {
	at         time.Duration
	kind       string
	status     int
	retryAfter bool
	backend    string
	lb         string // X-Soak-LB: the load balancer answered itself
	body       string
}

// soakConnErr is a gateway that could not be reached at all.
type soakConnErr struct {
	at   time.Duration
	kind string
	err  string
}

type soakWindow struct {
	kind       string
	start, end time.Duration // end is 0 while the fault lasts
}

type soakFault struct {
	kind, detail string
	start        time.Duration
	lifted       time.Duration // the fault was removed (restart done, proxy up…)
	kinds        []string      // the outcomes its recovery is measured on
	err          string
}

type soakRecorder struct {
	start  time.Time
	margin time.Duration

	mu         sync.Mutex
	counts     map[string]map[string]int // kind → status → n
	errors     map[string]int
	errSpan    map[string][2]time.Duration // first and last time of each error kind
	events     []soakEvent
	fives      []soak5xx
	connErrs   []soakConnErr
	windows    []*soakWindow
	faults     []*soakFault
	violations []string
	dropped    int
	served     map[string]*servedDead // (a): logged-out cookies served, by cookie
	notes      []string
}

// servedDead sums up the times one logged-out cookie was served.
type servedDead struct {
	d           loggedOutCookie
	n           int
	first, last time.Duration
	gateways    map[string]int
	windows     map[string]int
}

func newSoakRecorder(margin time.Duration) *soakRecorder {
	return &soakRecorder{start: time.Now(), margin: margin, counts: map[string]map[string]int{}, errors: map[string]int{}, errSpan: map[string][2]time.Duration{}}
}

func (r *soakRecorder) now() time.Duration { return time.Since(r.start) }

func (r *soakRecorder) count(kind, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.counts[kind]
	if m == nil {
		m = map[string]int{}
		r.counts[kind] = m
	}
	m[status]++
}

// mark records an outcome for the recovery times.
func (r *soakRecorder) mark(kind string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, soakEvent{at: r.now(), kind: kind, ok: ok})
}

func (r *soakRecorder) errorf(kind string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, seen := r.errSpan[kind]
	if !seen {
		sp[0] = now
	}
	sp[1] = now
	r.errSpan[kind] = sp
	r.errors[kind]++
}

func (r *soakRecorder) violation(format string, args ...any) {
	msg := fmt.Sprintf("+%s ", r.now().Round(100*time.Millisecond)) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.violations) < 500 {
		r.violations = append(r.violations, msg)
	} else {
		r.dropped++
	}
}

// servedAfterLogout records a logged-out cookie that was served (a).
func (r *soakRecorder) servedAfterLogout(d loggedOutCookie, gateway string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.served == nil {
		r.served = map[string]*servedDead{}
	}
	v := r.served[d.value]
	if v == nil {
		v = &servedDead{d: d, first: now, gateways: map[string]int{}, windows: map[string]int{}}
		r.served[d.value] = v
	}
	v.n++
	v.last = now
	v.gateways[gateway]++
	w := r.inWindow(now)
	if w == "" {
		w = "none"
	}
	v.windows[w]++
}

func (r *soakRecorder) note(format string, args ...any) {
	msg := fmt.Sprintf("+%s ", r.now().Round(100*time.Millisecond)) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, msg)
}

// gateway records an answer of a gateway (through the load balancer or
// directly) and returns the status, 0 for a transport error. The body is
// read (at most 64 KiB) and returned; the response is closed.
func (r *soakRecorder) gateway(kind string, res *http.Response, err error) (int, string) {
	if err != nil {
		r.count(kind, "err:"+errClass(err))
		r.mu.Lock()
		r.connErrs = append(r.connErrs, soakConnErr{at: r.now(), kind: kind, err: err.Error()})
		r.mu.Unlock()
		return 0, ""
	}
	data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	r.count(kind, strconv.Itoa(res.StatusCode))
	if res.StatusCode >= 500 {
		r.mu.Lock()
		r.fives = append(r.fives, soak5xx{
			at: r.now(), kind: kind, status: res.StatusCode, retryAfter: res.Header.Get("Retry-After") != "",
			backend: res.Header.Get("X-Soak-Backend"), lb: res.Header.Get("X-Soak-LB"), body: truncate(string(data), 160),
		})
		r.mu.Unlock()
	}
	return res.StatusCode, string(data)
}

// keycloak records an answer of Keycloak itself (login page, token
// endpoint, admin API); these are not the gateways' and are not judged by
// the 5xx invariant.
func (r *soakRecorder) keycloak(kind string, status int, err error) {
	if err != nil {
		r.count(kind, "err:"+errClass(err))
		return
	}
	r.count(kind, strconv.Itoa(status))
}

func (r *soakRecorder) openWindow(kind string) *soakWindow {
	w := &soakWindow{kind: kind, start: r.now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, w)
	return w
}

func (r *soakRecorder) closeWindow(w *soakWindow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.end = r.now()
}

func (r *soakRecorder) addFault(f *soakFault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f)
}

// inWindow says whether at falls in a fault window: from one second
// before the fault to margin after it was lifted (an open window counts
// up to now).
func (r *soakRecorder) inWindow(at time.Duration) string {
	for _, w := range r.windows {
		end := w.end
		if end == 0 {
			end = r.now()
		}
		if at >= w.start-time.Second && at <= end+r.margin {
			return w.kind
		}
	}
	return ""
}

func errClass(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "refused"
	case strings.Contains(s, "connection reset"):
		return "reset"
	case strings.Contains(s, "Client.Timeout") || strings.Contains(s, "deadline exceeded") || strings.Contains(s, "timeout"):
		return "timeout"
	case strings.Contains(s, "EOF"):
		return "eof"
	case strings.Contains(s, "context canceled"):
		return "canceled"
	}
	return "other"
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// runtimeSample is one scrape of a gateway's /_cloakroom/metrics.
type runtimeSample struct {
	at         time.Duration
	gen        int
	goroutines float64
	heap       float64
}

func parseRuntime(text string) (goroutines, heap float64, ok bool) {
	var g, h bool
	for _, line := range strings.Split(text, "\n") {
		name, val, found := strings.Cut(line, " ")
		if !found {
			continue
		}
		switch name {
		case "go_goroutines":
			goroutines, _ = strconv.ParseFloat(strings.TrimSpace(val), 64)
			g = true
		case "go_memstats_heap_inuse_bytes":
			heap, _ = strconv.ParseFloat(strings.TrimSpace(val), 64)
			h = true
		}
	}
	return goroutines, heap, g && h
}

// parseCounters returns the gateway's own counters worth reporting
// (refreshes, logins, logouts, journal), by series.
func parseCounters(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "cloakroom_token_refreshes_total") && !strings.HasPrefix(line, "cloakroom_logouts_total") &&
			!strings.HasPrefix(line, "cloakroom_logins_total") && !strings.HasPrefix(line, "cloakroom_logout_journal") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
