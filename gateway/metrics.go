package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	gatherer  prometheus.Gatherer
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	verify    prometheus.Histogram
	store     *prometheus.HistogramVec
	refreshes *prometheus.CounterVec
	logouts   *prometheus.CounterVec
	logins    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, gatherer prometheus.Gatherer) *metrics {
	buckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &metrics{
		gatherer: gatherer,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloakroom_requests_total", Help: "Requests by route and HTTP status.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cloakroom_request_duration_seconds", Help: "Time to answer a request, upstream included.", Buckets: buckets,
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloakroom_auth_decisions_total", Help: "Authentication decisions: allowed, public, login_redirect, unauthorized, forbidden, unavailable, method_not_allowed.",
		}, []string{"route", "decision"}),
		verify: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cloakroom_token_verification_seconds", Help: "Time to authenticate a bearer token (cache hits included).", Buckets: buckets,
		}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cloakroom_session_store_seconds", Help: "Latency of session store operations (behind the instance-local cache).", Buckets: buckets,
		}, []string{"op"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloakroom_token_refreshes_total", Help: "Token refreshes at the identity provider by result.",
		}, []string{"result"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloakroom_logouts_total", Help: "Logouts: rp (through the gateway) or backchannel (pushed by Keycloak).",
		}, []string{"kind"}),
		logins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloakroom_logins_total", Help: "Completed browser logins.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.decisions, m.verify, m.store, m.refreshes, m.logouts, m.logins)
	if r, ok := reg.(*prometheus.Registry); ok {
		// Process and Go runtime metrics belong in the gateway's own registry.
		_ = r.Register(collectors.NewGoCollector())
		_ = r.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// journalPending exports the logout journal's backlog.
func (m *metrics) journalPending(reg prometheus.Registerer, pending func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cloakroom_logout_journal_pending", Help: "Logouts recorded in this instance's journal while the session store was unreachable, not yet applied to it.",
	}, func() float64 { return float64(pending()) }))
}

// Store operations, the op label of cloakroom_session_store_seconds.
const (
	opLoad = iota
	opSave
	opDelete
	opDeleteBySID
	opDeleteBySubject
	opTouch
	opLoadHeader
	nStoreOps
)

var storeOpNames = [nStoreOps]string{"load", "save", "delete", "delete_by_sid", "delete_by_subject", "touch", "load_header"}

// timedStore records the latency of every store operation.
type timedStore struct {
	session.Store
	// The histogram's children, resolved once: a Load happens on every
	// request with a session.
	obs [nStoreOps]prometheus.Observer
}

func newTimedStore(s session.Store, m *metrics) *timedStore {
	t := &timedStore{Store: s}
	for op, name := range storeOpNames {
		t.obs[op] = m.store.WithLabelValues(name)
	}
	return t
}

func (t *timedStore) observe(op int, start time.Time) {
	t.obs[op].Observe(time.Since(start).Seconds())
}

func (t *timedStore) Load(ctx context.Context, key string) (*session.Record, error) {
	defer t.observe(opLoad, time.Now())
	return t.Store.Load(ctx, key)
}

func (t *timedStore) Save(ctx context.Context, r *session.Record) error {
	defer t.observe(opSave, time.Now())
	return t.Store.Save(ctx, r)
}

func (t *timedStore) Delete(ctx context.Context, key string) error {
	defer t.observe(opDelete, time.Now())
	return t.Store.Delete(ctx, key)
}

func (t *timedStore) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	defer t.observe(opDeleteBySID, time.Now())
	return t.Store.DeleteBySID(ctx, sid)
}

func (t *timedStore) DeleteBySubject(ctx context.Context, sub string) ([]string, error) {
	defer t.observe(opDeleteBySubject, time.Now())
	return t.Store.DeleteBySubject(ctx, sub)
}

// Touch implements session.Toucher when the wrapped store does (else an
// error wrapping errors.ErrUnsupported: the Manager then saves instead).
func (t *timedStore) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	tt, ok := t.Store.(session.Toucher)
	if !ok {
		return fmt.Errorf("gateway: the session store has no Touch: %w", errors.ErrUnsupported)
	}
	defer t.observe(opTouch, time.Now())
	return tt.Touch(ctx, key, expiresAt)
}

// LoadHeader implements session.HeaderLoader when the wrapped store does
// (else errors.ErrUnsupported: the cache then loads whole records).
func (t *timedStore) LoadHeader(ctx context.Context, key string) (*session.Record, error) {
	h, ok := t.Store.(session.HeaderLoader)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	defer t.observe(opLoadHeader, time.Now())
	return h.LoadHeader(ctx, key)
}

// notifyingTimedStore keeps the wrapped store's Notifier visible.
type notifyingTimedStore struct {
	*timedStore
	n session.Notifier
}

func (s *notifyingTimedStore) Subscribe(ctx context.Context, fn func(keys []string)) error {
	return s.n.Subscribe(ctx, fn)
}

// decisionLabels are the values decision returns and forward-auth sets.
var decisionLabels = [...]string{"public", "allowed", "login_redirect", "unauthorized", "forbidden", "method_not_allowed", "unavailable", "other"}

// routeMetrics are one route's metric children, each resolved on its
// first use (a series appears once it has happened, as with
// WithLabelValues): a WithLabelValues lookup hashes its labels and takes a
// lock, three times per request otherwise.
type routeMetrics struct {
	duration  atomic.Pointer[prometheus.Observer]
	decisions [len(decisionLabels)]atomic.Pointer[prometheus.Counter]
	// requests by status code (100–599).
	requests [500]atomic.Pointer[prometheus.Counter]
}

// observe records a request of the route answered with status after
// elapsed; decision is "" for requests that reached no route.
func (m *metrics) observe(rm *routeMetrics, route string, status int, elapsed time.Duration, decision string) {
	if rm == nil { // a route without resolved children (not expected)
		rm = &routeMetrics{}
	}
	if status >= 100 && status <= 599 {
		slot := &rm.requests[status-100]
		c := slot.Load()
		if c == nil {
			v := m.requests.WithLabelValues(route, strconv.Itoa(status))
			c = &v
			slot.Store(c)
		}
		(*c).Inc()
	} else {
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}
	o := rm.duration.Load()
	if o == nil {
		v := m.duration.WithLabelValues(route)
		o = &v
		rm.duration.Store(o)
	}
	(*o).Observe(elapsed.Seconds())
	if decision == "" {
		return
	}
	i := slices.Index(decisionLabels[:], decision)
	if i < 0 {
		m.decisions.WithLabelValues(route, decision).Inc()
		return
	}
	c := rm.decisions[i].Load()
	if c == nil {
		v := m.decisions.WithLabelValues(route, decision)
		c = &v
		rm.decisions[i].Store(c)
	}
	(*c).Inc()
}
