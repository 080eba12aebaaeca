package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A failover moves the master, and two things go wrong with what is in
// flight at that moment, both of which a logout must survive:
//
//   - Deletion announcements are published on the master a Subscribe
//     listens on. Published on the new master before the listener moved
//     there, they never reach it: instance caches would keep sessions that
//     are gone.
//   - A deletion sent to the old master after a replica was promoted, but
//     before the Sentinels turned the old master into a replica, is
//     acknowledged (even by WAIT, from a replica about to be reconfigured)
//     and then lost when the old master resynchronises from the new one.
//
// So a Store on Sentinel watches the Sentinels' +switch-master
// announcements itself. When its master moves it tells every subscriber
// that deletions may have been missed (fn(nil): caches forget everything,
// and a session.JournaledStore holds sessions back for its recovery hold)
// and applies again, on the new master, every deletion of the last
// replayWindow (deleting twice is harmless).

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

// watch listens for +switch-master on every Sentinel at once (the leader
// of a failover announces it first; the others learn it later) until ctx
// ends, and calls moved once per move of the master.
func (w *sentinelWatch) watch(ctx context.Context, moved func(payload string)) {
	var (
		mu   sync.Mutex
		last string // the last announcement acted on
		wg   sync.WaitGroup
	)
	announce := func(payload string) {
		mu.Lock()
		fresh := payload != last
		last = payload
		mu.Unlock()
		if fresh {
			moved(payload)
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
func (w *sentinelWatch) watchOne(ctx context.Context, addr string, announce func(string)) {
	backoff := 100 * time.Millisecond
	for connected := false; ctx.Err() == nil; {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: w.username, Password: w.password, TLSConfig: w.tls})
		ps := sc.Subscribe(ctx, "+switch-master")
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
					// "<master> <old ip> <old port> <new ip> <new port>"
					if name, _, _ := strings.Cut(m.Payload, " "); name == w.master {
						announce(m.Payload)
					}
				}
			}
		}
		_ = ps.Close()
		_ = sc.Close()
		if connected && ctx.Err() == nil {
			connected = false
			announce("reconnected " + addr + " " + time.Now().String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// failedOver runs when the master moved: subscribers learn that deletions
// may have been missed, and recent deletions are applied again on the new
// master that the announcement names (reached directly: the client may
// still be talking to the old one), at once and once more a little later
// (the old master may take writes until the Sentinels demote it).
func (s *Store) failedOver(ctx context.Context, payload string) {
	s.log.Warn("redisstore: the Redis master moved (Sentinel +switch-master): instance caches forget every session, recent deletions are applied again", "master", s.sentinel.master, "announcement", payload)
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
