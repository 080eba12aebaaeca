package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// A failover moves the master, and three things go wrong with what is in
// flight at that moment, all of which a logout must survive:
//
//   - Deletion announcements are published on the master a Subscribe
//     listens on. Published on the new master before the listener moved
//     there, they never reach it: instance caches would keep sessions that
//     are gone.
//   - A deletion sent to the old master after a replica was promoted, but
//     before the Sentinels turned the old master into a replica, is
//     acknowledged (even by WAIT, from a replica about to be reconfigured)
//     and then lost when the old master resynchronises from the new one.
//   - go-redis moves its connections only when its one Sentinel announces
//     +switch-master (the leader of a failover does so only when the
//     failover ends, seconds after the promotion) or when it happens to
//     dial: meanwhile some of its connections reach the new master and
//     some the old one, so a session deleted through one is read back
//     through the other.
//
// So a Store on Sentinel watches every Sentinel itself: the leader's
// +promoted-slave (the moment the Sentinels start naming the new master)
// and every +switch-master. When its master moves it
//
//   - tells every subscriber that deletions may have been missed (fn(nil):
//     caches forget everything, and a session.JournaledStore holds
//     sessions back for its recovery hold);
//   - moves the client's connections to the new master: connections to
//     the old one end (go-redis retries what was on them), and new ones
//     reach the new master even while go-redis's Sentinel still names the
//     old one (see routedDialer);
//   - applies again, on the new master, every deletion of the last
//     replayWindow (deleting twice is harmless).

// replayWindow is how far back deletions are applied again after a
// failover; replayMax bounds how many are kept.
const (
	replayWindow = 30 * time.Second
	replayMax    = 100_000
)

// deletion is one deletion made through the Store, kept for replayWindow.
type deletion struct {
	at    time.Time
	field string // "" for a record key, "sid" or "sub"
	value string
}

// sentinelWatch follows a master through the Sentinels.
type sentinelWatch struct {
	addrs              []string
	master             string
	username, password string
	tls                *tls.Config
	// node is how to reach a master directly (credentials, database, TLS):
	// the replay goes to the master the announcement names.
	node redis.Options

	mu     sync.Mutex
	recent []deletion
	route  route
}

// route is the last move of the master the watch learned, and the
// connections the client dialed through routedDialer.
type route struct {
	from, to string // host:port
	at       time.Time
	conns    map[*routedConn]struct{}
}

// remember keeps a deletion for replayWindow.
func (w *sentinelWatch) remember(field, value string) {
	if w == nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	drop := 0
	for drop < len(w.recent) && (now.Sub(w.recent[drop].at) > replayWindow || len(w.recent)-drop >= replayMax) {
		drop++
	}
	w.recent = append(w.recent[drop:], deletion{at: now, field: field, value: value})
}

func (w *sentinelWatch) since(t time.Time) []deletion {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []deletion
	for _, d := range w.recent {
		if !d.at.Before(t) {
			out = append(out, d)
		}
	}
	return out
}

// watch listens for +promoted-slave and +switch-master on every Sentinel
// at once (only the leader of a failover announces the promotion; the
// others learn the new master later) until ctx ends, and calls moved once
// per move of the master, with the event that told and a payload in the
// form of +switch-master's.
func (w *sentinelWatch) watch(ctx context.Context, moved func(event, payload string)) {
	var (
		mu   sync.Mutex
		last string // the last announcement acted on
		wg   sync.WaitGroup
	)
	announce := func(event, payload string) {
		mu.Lock()
		fresh := payload != last
		last = payload
		mu.Unlock()
		if fresh {
			moved(event, payload)
		}
	}
	for _, addr := range w.addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.watchOne(ctx, addr, announce)
		}()
	}
	wg.Wait()
}

// watchOne follows one Sentinel's announcements, reconnecting with backoff.
// After a reconnection it reports a possible move (an announcement may have
// been missed meanwhile) as the payload "reconnected <addr>".
func (w *sentinelWatch) watchOne(ctx context.Context, addr string, announce func(event, payload string)) {
	backoff := 100 * time.Millisecond
	for connected := false; ctx.Err() == nil; {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: w.username, Password: w.password, TLSConfig: w.tls})
		ps := sc.Subscribe(ctx, "+switch-master", "+promoted-slave")
		if _, err := ps.Receive(ctx); err == nil {
			backoff = 100 * time.Millisecond
			connected = true
			for ctx.Err() == nil {
				msg, err := ps.ReceiveTimeout(ctx, HealthCheckInterval)
				if err != nil {
					if ps.Ping(ctx) == nil {
						continue
					}
					break
				}
				if m, ok := msg.(*redis.Message); ok {
					if p, ok := movePayload(m.Channel, m.Payload); ok && strings.Fields(p)[0] == w.master {
						announce(m.Channel, p)
					}
				}
			}
		}
		_ = ps.Close()
		_ = sc.Close()
		if connected && ctx.Err() == nil {
			connected = false
			announce("reconnected", "reconnected "+addr+" "+time.Now().String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// movePayload returns the announcement of a move of a master in the form
// of +switch-master's: "<master> <old ip> <old port> <new ip> <new port>".
// +promoted-slave says "slave <ip:port> <ip> <port> @ <master> <old ip>
// <old port>".
func movePayload(channel, payload string) (string, bool) {
	f := strings.Fields(payload)
	switch {
	case channel == "+switch-master" && len(f) == 5:
		return payload, true
	case channel == "+promoted-slave" && len(f) == 8 && f[0] == "slave" && f[4] == "@":
		return strings.Join([]string{f[5], f[6], f[7], f[2], f[3]}, " "), true
	}
	return "", false
}

// failedOver runs when the master moved: subscribers learn that deletions
// may have been missed, the client's connections move to the new master,
// and recent deletions are applied again on the new master that the
// announcement names (reached directly: the client may still be talking
// to the old one), at once and once more a little later (the old master
// may take writes until the Sentinels demote it).
func (s *Store) failedOver(ctx context.Context, event, payload string) {
	s.log.Warn("redisstore: the Redis master moved: instance caches forget every session, connections move to the new master, recent deletions are applied again", "master", s.sentinel.master, "event", event, "announcement", payload)
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.missed()
	}
	var target redis.Cmdable = s.c
	if f := strings.Fields(payload); len(f) == 5 && f[0] == s.sentinel.master {
		s.sentinel.moved(net.JoinHostPort(f[1], f[2]), net.JoinHostPort(f[3], f[4]))
		o := s.sentinel.node
		o.Addr = net.JoinHostPort(f[3], f[4])
		direct := redis.NewClient(&o)
		defer direct.Close()
		target = direct
	}
	from := time.Now().Add(-replayWindow)
	for i, delay := range []time.Duration{0, 1500 * time.Millisecond} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		s.replay(ctx, target, s.sentinel.since(from), i)
		// Subscriptions stay on the server they were opened on: the old
		// master, which misses what the new one publishes (and, while it
		// resynchronises, everything). Open them again on the new one.
		for _, sub := range subs {
			s.resubscribe(ctx, sub)
		}
	}
}

// resubscribe replaces sub's connection by a new subscription (the client
// opens it on the current master); failures leave the old one, which
// reports its own loss if it breaks.
func (s *Store) resubscribe(ctx context.Context, sub *subscription) {
	fresh, err := s.subscribe(ctx)
	if err != nil {
		s.log.Warn("redisstore: subscribing again after a failover failed", "error", err)
		return
	}
	if !sub.replace(fresh) {
		_ = fresh.Close()
	}
}

// replay applies deletions again, without waiting for replicas (the
// journal of the instance that made a deletion retries what was not
// acknowledged; this pass only has to be quick). Failures are counted and
// logged.
func (s *Store) replay(ctx context.Context, c redis.Cmdable, ds []deletion, pass int) {
	failed := 0
	for _, d := range ds {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		var err error
		if d.field == "" {
			err = deleteScript.Run(rctx, c, []string{s.recordKey(d.value)}, s.prefix, d.value, s.pub, "0").Err()
		} else {
			other := map[string]string{"sid": "sub", "sub": "sid"}[d.field]
			err = deleteIndexScript.Run(rctx, c, []string{s.prefix + d.field + ":" + d.value}, s.prefix, d.field, d.value, other, s.pub, "0").Err()
		}
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			failed++
		}
	}
	if len(ds) > 0 {
		s.log.Info("redisstore: recent deletions applied again after a failover", "pass", pass+1, "deletions", len(ds), "failed", failed)
	}
}

// routeWindow is how long after a move the client's dials go to the new
// master when its Sentinel still names the old one. go-redis catches up by
// itself when its Sentinel announces the move (within seconds); the bound
// keeps a stale route from outliving a second failover the watch missed.
const routeWindow = 30 * time.Second

// moved records a move of the master from one address to another and ends
// every connection the client has to the old master: go-redis sees io.EOF
// on its next use, drops it and retries the command on a new connection,
// which routedDialer sends to the new master. Connections to other
// servers stay: go-redis dials its Sentinels through the same Dialer.
func (w *sentinelWatch) moved(from, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.route.from, w.route.to, w.route.at = from, to, time.Now()
	for c := range w.route.conns {
		if c.addr == from {
			c.stale.Store(true)
		}
	}
}

// reroutes reports whether a dial of addr goes to the new master instead:
// addr is the master the last move left, within routeWindow of it.
func (r *route) reroutes(addr string) bool {
	return addr == r.from && time.Since(r.at) < routeWindow
}

// routedDialer returns the Dialer of a go-redis FailoverClient: go-redis
// passes the address its Sentinel names, and while that is a master the
// watch saw move away (for routeWindow), the connection goes to where it
// moved instead. Every connection is tracked, so that a move can end it.
func (w *sentinelWatch) routedDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second // go-redis's default
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		w.mu.Lock()
		if w.route.reroutes(addr) {
			addr = w.route.to
		}
		w.mu.Unlock()
		d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		var (
			nc  net.Conn
			err error
		)
		if w.tls == nil {
			nc, err = d.DialContext(ctx, network, addr)
		} else {
			nc, err = (&tls.Dialer{NetDialer: d, Config: w.tls}).DialContext(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		c := &routedConn{Conn: nc, addr: addr, w: w}
		w.mu.Lock()
		if w.route.conns == nil {
			w.route.conns = map[*routedConn]struct{}{}
		}
		w.route.conns[c] = struct{}{}
		if w.route.reroutes(addr) {
			c.stale.Store(true) // the move was learned during the dial
		}
		w.mu.Unlock()
		if _, ok := nc.(syscall.Conn); ok {
			return routedSysConn{c}, nil
		}
		return c, nil
	}
}

// routedConn is a client connection that a move of the master ends: once
// stale, it reads and writes nothing more and reports io.EOF, which
// go-redis takes for a closed connection and retries elsewhere.
type routedConn struct {
	net.Conn
	addr  string
	w     *sentinelWatch
	stale atomic.Bool
}

func (c *routedConn) Read(p []byte) (int, error) {
	if c.stale.Load() {
		return 0, io.EOF
	}
	return c.Conn.Read(p)
}

func (c *routedConn) Write(p []byte) (int, error) {
	if c.stale.Load() {
		return 0, io.EOF
	}
	return c.Conn.Write(p)
}

func (c *routedConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.route.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// routedSysConn is a routedConn over a TCP connection: go-redis's pool
// checks an idle one's health through its socket, as it does for the
// connections it dials itself.
type routedSysConn struct{ *routedConn }

func (c routedSysConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}
