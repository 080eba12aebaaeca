// Package redisstore is a session.Store in Redis (github.com/redis/go-redis/v9)
// for several instances sharing sessions.
//
// Layout, under a configurable prefix (default "cloakroom:"):
//
//	{prefix}s:{key}        hash: v (version), sub, sid, e (expiry, Unix ms), p (payload)
//	{prefix}sid:{sid}      set of the keys with that Keycloak session id
//	{prefix}sub:{subject}  set of the keys of that user
//	{prefix}once:{key}     string: a MarkOnce mark (SET NX, PEXPIREAT = until)
//	{prefix}w              string: written by a deletion that found nothing
//	                       to delete, so that its WAIT covers earlier writes
//	{prefix}deleted        pub/sub channel: JSON array of deleted keys
//	                       (sharded pub/sub, SPUBLISH, on a Redis Cluster)
//
// Every record carries PEXPIREAT = ExpiresAt, so Redis itself forgets expired
// sessions; an index set expires no earlier than its latest member. Saves
// (compare-and-swap plus index maintenance) and deletions run as Lua
// scripts, so they are atomic and never race with another instance. Index
// members whose record is gone or has moved to another sid or subject are
// ignored and cleaned up by the deletions.
//
// Sentinel and Cluster: Open takes redis+sentinel:// and redis+cluster://
// URLs (see internal/storeurl and docs/redis-ha.md); New takes any
// go-redis client, including redis.NewFailoverClient and
// redis.NewClusterClient.
//
// Redis Cluster: the scripts touch keys they build themselves (index sets,
// records named by set members), so every key must live in one hash slot:
// with a ClusterClient the prefix must carry a hash tag (default
// DefaultClusterPrefix, "{cloakroom}:"; a prefix without one is refused
// with ErrNoHashTag). Deletions are published with SPUBLISH and received
// with SSUBSCRIBE (sharded pub/sub, Redis 7.0 and later), on the master of
// that slot and its replicas, not broadcast to the whole cluster.
//
// Deletions survive a failover: Redis replicates asynchronously, so a
// deletion acknowledged by a master that dies before passing it on would
// come back on the promoted replica (a logout undone). When
// WithMinReplicasAck is above zero (the default for Sentinel and Cluster),
// every deletion is followed, on the same connection, by WAIT; fewer
// acknowledgements than asked within WithWaitTimeout make the deletion
// fail with an error wrapping ErrNotReplicated, and the caller must treat
// the session as not deleted (and retry; deleting again is harmless).
// Saves do not wait: a save lost in a failover only means a new login.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cloakroom/cloakroom/internal/sessionstore"
	"github.com/cloakroom/cloakroom/internal/storeurl"
	"github.com/cloakroom/cloakroom/session"
)

// Linking this package in lets the gateway open its stores by URL.
func init() {
	storeurl.Register(storeurl.Redis, func(_ context.Context, url string) (session.Store, error) { return storeurl.Opened(Open(url)) })
}

// DefaultPrefix starts every Redis key of a Store unless WithPrefix says
// otherwise.
const DefaultPrefix = "cloakroom:"

// DefaultClusterPrefix is the default prefix with a Redis Cluster: its hash
// tag puts every key in one slot.
const DefaultClusterPrefix = storeurl.DefaultClusterPrefix

// ErrNotReplicated is wrapped by the error of a deletion that fewer
// replicas than WithMinReplicasAck asked for acknowledged in time. The
// master has deleted the session, but a failover now could bring it back:
// treat the deletion as not done and retry it.
var ErrNotReplicated = session.ErrNotReplicated

// ErrNoHashTag is wrapped by the error of every operation of a Store on a
// Redis Cluster whose prefix has no hash tag.
var ErrNoHashTag = errors.New("with Redis Cluster the key prefix needs a hash tag, e.g. \"{cloakroom}:\", so that all keys are in one slot")

// Option configures New and Open.
type Option func(*config)

type config struct {
	prefix      string
	logger      *slog.Logger
	minAck      int // -1: the default for the client
	waitTimeout time.Duration
}

// WithPrefix sets the prefix of every key and of the pub/sub channel
// (default DefaultPrefix, or DefaultClusterPrefix with a Redis Cluster,
// where the prefix must hold a hash tag). Stores that should share
// sessions need the same prefix; different prefixes keep applications on
// one Redis apart.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithMinReplicasAck makes every deletion wait (Redis WAIT) until n
// replicas have acknowledged it, and fail with ErrNotReplicated if fewer
// do within the wait timeout. The default is 1 with a Redis Cluster or a
// Sentinel-backed client (redis.NewFailoverClient), 0 (no wait) otherwise;
// the URL parameter min_replicas_ack sets it for Open.
func WithMinReplicasAck(n int) Option { return func(c *config) { c.minAck = max(n, 0) } }

// WithWaitTimeout bounds the wait of WithMinReplicasAck (default 1 s; the
// URL parameter wait_timeout).
func WithWaitTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.waitTimeout = d
		}
	}
}

// WithLogger sets where Subscribe reports messages it cannot decode
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Store is a session.Store and session.Notifier in Redis. It is safe for
// concurrent use.
type Store struct {
	c       redis.UniversalClient
	cluster *redis.ClusterClient // c, if it is a cluster client
	own     bool                 // Open made the client: Close closes it
	prefix  string
	log     *slog.Logger
	minAck  int
	wait    time.Duration
	pub     string        // PUBLISH, or SPUBLISH on a cluster
	health  time.Duration // HealthCheckInterval (shorter in tests)
	err     error         // the store cannot work (ErrNoHashTag)

	sentinel  *sentinelWatch     // Open with a Sentinel URL: see sentinel.go
	stopWatch context.CancelFunc // ends the Sentinel watch

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
	wg     sync.WaitGroup
}

var (
	_ session.Store    = (*Store)(nil)
	_ session.Notifier = (*Store)(nil)
)

// New returns a Store using client. Close does not close the client.
// With a *redis.ClusterClient, a prefix without a hash tag makes every
// operation fail with ErrNoHashTag.
func New(client redis.UniversalClient, opts ...Option) *Store {
	cfg := config{minAck: -1, waitTimeout: storeurl.DefaultWaitTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	return build(client, cfg)
}

func build(client redis.UniversalClient, cfg config) *Store {
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	s := &Store{c: client, prefix: cfg.prefix, log: cfg.logger, wait: cfg.waitTimeout, pub: "PUBLISH", health: HealthCheckInterval, subs: map[*subscription]struct{}{}}
	replicated := false
	switch c := client.(type) {
	case *redis.ClusterClient:
		s.cluster, s.pub, replicated = c, "SPUBLISH", true
		if s.prefix == "" {
			s.prefix = DefaultClusterPrefix
		}
		if _, ok := storeurl.RedisHashTag(s.prefix); !ok {
			s.err = fmt.Errorf("redisstore: prefix %q: %w", s.prefix, ErrNoHashTag)
		}
	case *redis.Client:
		replicated = c.Options().Addr == "FailoverClient" // how go-redis names a Sentinel-backed client
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	s.minAck = cfg.minAck
	if s.minAck < 0 {
		s.minAck = 0
		if replicated {
			s.minAck = 1
		}
	}
	if s.wait <= 0 {
		s.wait = storeurl.DefaultWaitTimeout
	}
	return s
}

// Open connects to the Redis that url names, checks that it answers, and
// returns a Store that owns the connection: Close closes it. The forms:
//
//	redis://[user:password@]host:port[/db]            one server (rediss: TLS)
//	redis+sentinel://[user:password@]s1:26379,s2:26379/MASTER[/db]
//	redis+cluster://[user:password@]n1:6379,n2:6379
//
// with the parameters prefix, min_replicas_ack, wait_timeout,
// sentinel_username, sentinel_password and go-redis's client options;
// see internal/storeurl and docs/redis-ha.md. Options given here override
// the URL's.
func Open(url string, opts ...Option) (*Store, error) {
	u, err := storeurl.ParseRedis(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	cfg := config{prefix: u.Prefix, minAck: u.MinReplicasAck, waitTimeout: u.WaitTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	var (
		c     redis.UniversalClient
		where string
		watch *sentinelWatch
	)
	switch u.Mode {
	case storeurl.RedisSentinel:
		o, err := redis.ParseFailoverURL(goRedisURL(u))
		if err != nil {
			return nil, fmt.Errorf("redisstore: the Redis Sentinel URL's parameters are not valid: %w", redactURLError(err))
		}
		o.MasterName, o.DB = u.MasterName, u.DB
		o.Username, o.Password = u.Username, u.Password
		o.SentinelUsername, o.SentinelPassword = u.SentinelUsername, u.SentinelPassword
		watch = &sentinelWatch{addrs: u.Addrs, master: u.MasterName, username: u.SentinelUsername, password: u.SentinelPassword, tls: o.TLSConfig,
			node: redis.Options{Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}}
		o.Dialer = watch.routedDialer(o.DialTimeout)
		c = redis.NewFailoverClient(o)
		where = fmt.Sprintf("master %q through the Sentinels at %s (db %d)", u.MasterName, strings.Join(u.Addrs, ","), u.DB)
	case storeurl.RedisCluster:
		o, err := redis.ParseClusterURL(goRedisURL(u))
		if err != nil {
			return nil, fmt.Errorf("redisstore: the Redis Cluster URL's parameters are not valid: %w", redactURLError(err))
		}
		o.Username, o.Password = u.Username, u.Password
		c = redis.NewClusterClient(o)
		where = "Redis Cluster at " + strings.Join(u.Addrs, ",")
	default:
		o, err := redis.ParseURL(u.ClientURL)
		if err != nil {
			// The URL may hold a password: do not repeat it.
			return nil, fmt.Errorf("redisstore: the Redis URL is not valid (want redis://host:port/db or rediss://...): %w", redactURLError(err))
		}
		c = redis.NewClient(o)
		where = fmt.Sprintf("Redis at %s (db %d)", o.Addr, o.DB)
	}
	s := build(c, cfg)
	if s.err != nil {
		_ = c.Close()
		return nil, s.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redisstore: connect to %s: %w", where, err)
	}
	s.own = true
	if watch != nil {
		s.sentinel = watch
		wctx, cancel := context.WithCancel(context.Background())
		s.stopWatch = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			watch.watch(wctx, func(event, payload string) { s.failedOver(wctx, event, payload) })
		}()
	}
	return s, nil
}

// goRedisURL is the URL go-redis's ParseFailoverURL or ParseClusterURL
// reads for u: its hosts and client options, no credentials (set apart).
func goRedisURL(u storeurl.RedisURL) string {
	q := neturl.Values{}
	for k, v := range u.Options {
		q[k] = v
	}
	for _, a := range u.Addrs[1:] {
		q.Add("addr", a)
	}
	scheme := "redis"
	if u.TLS {
		scheme = "rediss"
	}
	return (&neturl.URL{Scheme: scheme, Host: u.Addrs[0], RawQuery: q.Encode()}).String()
}

// MinReplicasAck returns how many replicas must acknowledge a deletion
// (0: deletions do not wait).
func (s *Store) MinReplicasAck() int { return s.minAck }

// redactURLError keeps ParseURL's reason but drops the URL a *url.Error
// repeats.
func redactURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (s *Store) recordKey(key string) string { return s.prefix + "s:" + key }

// Channel returns the pub/sub channel deletions are published on.
func (s *Store) Channel() string { return s.prefix + "deleted" }

// saveScript: KEYS[1] record; ARGV prefix, key, version, subject, sid,
// expiry (Unix ms), payload. Returns the new version, or 0 on conflict.
var saveScript = redis.NewScript(`
local rk = KEYS[1]
local prefix, key = ARGV[1], ARGV[2]
local ver = tonumber(ARGV[3])
local sub, sid, exp = ARGV[4], ARGV[5], tonumber(ARGV[6])
local cur = redis.call('HMGET', rk, 'v', 'sub', 'sid')
if cur[1] then
  if tonumber(cur[1]) ~= ver then return 0 end
  if cur[2] and cur[2] ~= '' and cur[2] ~= sub then redis.call('SREM', prefix .. 'sub:' .. cur[2], key) end
  if cur[3] and cur[3] ~= '' and cur[3] ~= sid then redis.call('SREM', prefix .. 'sid:' .. cur[3], key) end
elseif ver ~= 0 then
  return 0
end
local nv = ver + 1
redis.call('HSET', rk, 'v', string.format('%d', nv), 'sub', sub, 'sid', sid, 'e', ARGV[6], 'p', ARGV[7])
redis.call('PEXPIREAT', rk, exp)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if exp > now then
  local function index(ik)
    redis.call('SADD', ik, key)
    local ttl = redis.call('PTTL', ik)
    if ttl < 0 or now + ttl < exp then redis.call('PEXPIREAT', ik, exp) end
  end
  if sub ~= '' then index(prefix .. 'sub:' .. sub) end
  if sid ~= '' then index(prefix .. 'sid:' .. sid) end
end
return nv
`)

// deleteScript: KEYS[1] record; ARGV prefix, key, publish command
// (PUBLISH or SPUBLISH), mark ("1": a WAIT follows). Returns 1 if a live
// record was deleted.
var deleteScript = redis.NewScript(`
local rk = KEYS[1]
local prefix, key, pub = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HMGET', rk, 'sub', 'sid')
if redis.call('DEL', rk) == 0 then
  if ARGV[4] == '1' then redis.call('SET', prefix .. 'w', '1', 'PX', 60000) end
  return 0
end
if cur[1] and cur[1] ~= '' then redis.call('SREM', prefix .. 'sub:' .. cur[1], key) end
if cur[2] and cur[2] ~= '' then redis.call('SREM', prefix .. 'sid:' .. cur[2], key) end
redis.call(pub, prefix .. 'deleted', cjson.encode({key}))
return 1
`)

// deleteIndexScript: KEYS[1] index set; ARGV prefix, field ('sid' or
// 'sub'), value, other field, publish command, mark. Deletes the records
// of the set that still carry that value and returns their keys.
var deleteIndexScript = redis.NewScript(`
local prefix, field, value, other, pub = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local deleted = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rk = prefix .. 's:' .. key
  local cur = redis.call('HMGET', rk, field, other)
  if cur[1] == value then
    redis.call('DEL', rk)
    if cur[2] and cur[2] ~= '' then redis.call('SREM', prefix .. other .. ':' .. cur[2], key) end
    deleted[#deleted + 1] = key
  end
end
redis.call('DEL', KEYS[1])
if #deleted > 0 then
  redis.call(pub, prefix .. 'deleted', cjson.encode(deleted))
elseif ARGV[6] == '1' then
  redis.call('SET', prefix .. 'w', '1', 'PX', 60000)
end
return deleted
`)

// mark tells the deletion scripts whether a WAIT follows: a deletion that
// finds nothing then still writes (the {prefix}w key), so that the WAIT
// covers what an earlier, unacknowledged attempt deleted.
func (s *Store) mark() string {
	if s.minAck > 0 {
		return "1"
	}
	return "0"
}

// runDelete runs a deletion script and, if deletions must be replicated,
// WAIT on the same connection (a pipeline on one connection; with a
// cluster, on the master of the key's slot).
func (s *Store) runDelete(ctx context.Context, script *redis.Script, key string, args ...any) (*redis.Cmd, error) {
	if s.minAck == 0 {
		cmd := script.Run(ctx, s.c, []string{key}, args...)
		return cmd, s.failed(cmd.Err())
	}
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			if s.cluster != nil {
				s.cluster.ReloadState(ctx)
			}
			select {
			case <-ctx.Done():
				return nil, errors.Join(ctx.Err(), lastErr)
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
		}
		var p redis.Pipeliner
		if s.cluster != nil {
			node, err := s.cluster.MasterForKey(ctx, key)
			if err != nil {
				lastErr = err
				continue
			}
			p = node.Pipeline()
		} else {
			p = s.c.Pipeline()
		}
		cmd, acked, err := s.evalWait(ctx, p, script, key, args)
		if err != nil {
			lastErr = err
			if s.cluster != nil && retryable(err) {
				continue // the loop reloads the slot map
			}
			return nil, err
		}
		if acked < int64(s.minAck) {
			return cmd, fmt.Errorf("%w (%d of %d replicas within %v)", ErrNotReplicated, acked, s.minAck, s.wait)
		}
		return cmd, nil
	}
	return nil, lastErr
}

// evalWait sends EVALSHA and WAIT in one pipeline (EVAL and WAIT if the
// server does not know the script).
func (s *Store) evalWait(ctx context.Context, p redis.Pipeliner, script *redis.Script, key string, args []any) (*redis.Cmd, int64, error) {
	cmd := script.EvalSha(ctx, p, []string{key}, args...)
	wait := s.waitCmd(ctx, p)
	_, _ = p.Exec(ctx)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = script.Eval(ctx, p, []string{key}, args...)
		wait = s.waitCmd(ctx, p)
		_, _ = p.Exec(ctx)
	}
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, err
	}
	n, err := wait.Result()
	if err != nil {
		return nil, 0, fmt.Errorf("WAIT: %w", err)
	}
	return cmd, n, nil
}

// waitCmd queues WAIT; go-redis's Wait also extends the read deadline
// by the timeout, which Do would not.
func (s *Store) waitCmd(ctx context.Context, p redis.Pipeliner) *redis.IntCmd {
	if w, ok := p.(interface {
		Wait(context.Context, int, time.Duration) *redis.IntCmd
	}); ok {
		return w.Wait(ctx, s.minAck, s.wait)
	}
	cmd := redis.NewIntCmd(ctx, "wait", s.minAck, s.wait.Milliseconds())
	_ = p.Process(ctx, cmd)
	return cmd
}

// failed passes err through; on a cluster, an error that may mean the
// slot map is stale (a master died, a slot moved) also starts a reload of
// the map in the background. go-redis reloads it by itself only on MOVED
// and READONLY answers or when it is 10 s old, so without this a dead
// master would be asked again and again until then.
func (s *Store) failed(err error) error {
	if err != nil && s.cluster != nil && retryable(err) {
		s.cluster.ReloadState(context.Background())
	}
	return err
}

// retryable reports whether a command sent to a cluster node may succeed
// after the cluster's state is reloaded (a failover or a slot moving).
func retryable(err error) bool {
	for _, p := range []string{"MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN", "LOADING", "READONLY", "MASTERDOWN"} {
		if redis.HasErrorPrefix(err, strings.TrimSpace(p)) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF)
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	vals, err := s.c.HMGet(ctx, s.recordKey(key), "v", "sub", "sid", "e", "p").Result()
	if err := s.failed(err); err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", err)
	}
	return s.record(key, vals, true)
}

// record makes a Record of HMGET's answer for the fields v, sub, sid, e
// and, with payload, p.
func (s *Store) record(key string, vals []any, payload bool) (*session.Record, error) {
	want := 4
	if payload {
		want = 5
	}
	if len(vals) != want || vals[0] == nil {
		return nil, session.ErrNotFound
	}
	str := func(i int) string { v, _ := vals[i].(string); return v }
	ver, err1 := strconv.ParseInt(str(0), 10, 64)
	exp, err2 := strconv.ParseInt(str(3), 10, 64)
	if err1 != nil || err2 != nil || payload && vals[4] == nil {
		return nil, errors.New("redisstore: load: malformed record (was it written by this package?)")
	}
	r := &session.Record{
		Key:       key,
		Subject:   str(1),
		SID:       str(2),
		ExpiresAt: time.UnixMilli(exp),
		Version:   ver,
	}
	if payload {
		r.Payload = []byte(str(4))
	}
	return r, nil
}

// Save implements session.Store.
func (s *Store) Save(ctx context.Context, r *session.Record) error {
	payload, err := sessionstore.BeginSave(ctx, "redisstore", r)
	if err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	nv, err := saveScript.Run(ctx, s.c, []string{s.recordKey(r.Key)},
		s.prefix, r.Key, r.Version, r.Subject, r.SID, r.ExpiresAt.UnixMilli(), payload).Int64()
	if err := s.failed(err); err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	if nv == 0 {
		return session.ErrConflict
	}
	r.Version = nv
	return nil
}

// Delete implements session.Store and publishes the key if a session was
// deleted.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	s.sentinel.remember("", key)
	if _, err := s.runDelete(ctx, deleteScript, s.recordKey(key), s.prefix, key, s.pub, s.mark()); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}

// DeleteBySID implements session.Store and publishes the deleted keys.
func (s *Store) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	return s.deleteIndexed(ctx, "delete by sid", "sid", "sub", sid)
}

// DeleteBySubject implements session.Store and publishes the deleted keys.
func (s *Store) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	return s.deleteIndexed(ctx, "delete by subject", "sub", "sid", subject)
}

func (s *Store) deleteIndexed(ctx context.Context, op, field, other, v string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if v == "" {
		return nil, nil
	}
	if s.err != nil {
		return nil, s.err
	}
	s.sentinel.remember(field, v)
	cmd, err := s.runDelete(ctx, deleteIndexScript, s.prefix+field+":"+v, s.prefix, field, v, other, s.pub, s.mark())
	var res []string
	if cmd != nil {
		var rerr error
		if res, rerr = cmd.StringSlice(); rerr != nil && !errors.Is(rerr, redis.Nil) && err == nil {
			err = rerr
		}
	}
	if err != nil {
		// With ErrNotReplicated the keys were deleted on the master:
		// return them too, so that caches drop them.
		return nilIfEmpty(res), fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return nilIfEmpty(res), nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// MarkOnce implements session.Store: SET NX with PXAT until, atomic in
// Redis, so exactly one of concurrent callers on any instance sets it.
func (s *Store) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := sessionstore.BeginMarkOnce(ctx, "redisstore", key); err != nil {
		return false, err
	}
	if s.err != nil {
		return false, s.err
	}
	err := s.c.Do(ctx, "SET", s.prefix+"once:"+key, "1", "NX", "PXAT", max(until.UnixMilli(), 1)).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, fmt.Errorf("redisstore: mark once: %w", s.failed(err))
	}
}

// Subscribe implements session.Notifier. It returns once the subscription
// is active (so deletions made after it returns are delivered), then calls
// fn, one call at a time, with the keys every Store on this Redis and
// prefix deletes, until ctx ends or the Store is closed. Pub/sub is not
// durable: deletions published while the connection is down are missed,
// so fn(nil) is called when the connection is lost (or, on a cluster, the
// server drops the subscription because the slot moved) and again once
// the subscription is re-established. The connection is checked with
// PING after HealthCheckInterval without a message, and replaced when the
// PONG does not come within as long again.
func (s *Store) Subscribe(ctx context.Context, fn func(keys []string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	ps, err := s.subscribe(ctx)
	if err != nil {
		return fmt.Errorf("redisstore: subscribe to %s: %w", s.Channel(), err)
	}
	sub := &subscription{ps: ps, fn: fn}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return errors.New("redisstore: subscribe: the store is closed")
	}
	s.subs[sub] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		stop := context.AfterFunc(ctx, sub.close)
		defer func() {
			stop()
			sub.close()
			s.mu.Lock()
			delete(s.subs, sub)
			s.mu.Unlock()
		}()
		s.listen(ctx, sub, sub.deliver)
	}()
	return nil
}

// HealthCheckInterval is how long a subscription waits for a message
// before it checks its connection with PING, and then for the PONG: a
// connection that answers neither (a silent network partition, which
// fails no read or write) counts as lost after at most twice this.
const HealthCheckInterval = 2 * time.Second

// errNoPong: the subscription's connection took a PING and did not answer.
var errNoPong = errors.New("redisstore: the subscription's connection did not answer PING")

// subscription is one Subscribe's connection, replaced when a cluster
// drops it.
type subscription struct {
	mu     sync.Mutex
	ps     *redis.PubSub
	closed bool

	fnMu sync.Mutex // fn is called one call at a time
	fn   func(keys []string)
}

// deliver calls the subscriber's fn.
func (u *subscription) deliver(keys []string) {
	u.fnMu.Lock()
	defer u.fnMu.Unlock()
	u.fn(keys)
}

// missed tells the subscriber that deletions may have been missed.
func (u *subscription) missed() { u.deliver(nil) }

func (u *subscription) current() (*redis.PubSub, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ps, u.closed
}

func (u *subscription) replace(ps *redis.PubSub) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	old := u.ps
	u.ps = ps
	_ = old.Close()
	return true
}

func (u *subscription) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		u.closed = true
		_ = u.ps.Close()
	}
}

// subscribe opens a subscription to the channel and waits for Redis to
// confirm it.
func (s *Store) subscribe(ctx context.Context) (*redis.PubSub, error) {
	var ps *redis.PubSub
	if s.cluster != nil {
		ps = s.cluster.SSubscribe(ctx, s.Channel())
	} else {
		ps = s.c.Subscribe(ctx, s.Channel())
	}
	// Bounded: a server that takes the command and never answers must not
	// hold the subscriber forever.
	if _, err := ps.ReceiveTimeout(ctx, s.health); err != nil {
		_ = ps.Close()
		return nil, s.failed(err)
	}
	return ps, nil
}

// listen delivers the messages of sub until it is closed. go-redis
// reconnects and re-subscribes by itself after a connection error; a
// cluster's server-side sunsubscribe (the slot moved, or its master
// became a replica of another shard) needs a new subscription.
func (s *Store) listen(ctx context.Context, sub *subscription, fn func([]string)) {
	lost := false
	missed := func() {
		if !lost {
			lost = true
			fn(nil)
		}
	}
	backoff := 50 * time.Millisecond
	pause := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, time.Second)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// resubscribe replaces the subscription's connection by a new one.
	resubscribe := func() bool {
		for {
			fresh, err := s.subscribe(ctx)
			if err == nil {
				if !sub.replace(fresh) {
					_ = fresh.Close()
					return false
				}
				return true
			}
			if !pause() {
				return false
			}
		}
	}
	found := func() {
		if lost {
			lost, backoff = false, 50*time.Millisecond
			fn(nil)
		}
	}
	pinged := false // a PING is out and nothing came back since
	for {
		ps, closed := sub.current()
		if closed || ctx.Err() != nil {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, s.health)
		if err != nil {
			cur, closed := sub.current()
			if closed || ctx.Err() != nil {
				return
			}
			if cur != ps {
				pinged = false
				continue // replaced on purpose (a failover): not a loss
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					if err = ps.Ping(ctx); err == nil {
						pinged = true
						continue // the PONG arrives as a message
					}
				} else {
					err = errNoPong
				}
			}
			_ = s.failed(err)
			missed()
			pinged = false
			if errors.Is(err, errNoPong) {
				// Such a connection never fails by itself, and go-redis
				// would keep it: subscribe on a new one.
				s.log.Warn("redisstore: the subscription's connection stopped answering; subscribing again", "channel", s.Channel())
				if !resubscribe() {
					return
				}
				found()
				continue
			}
			if !pause() {
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" || m.Kind == "unsubscribe" {
				missed()
				if !resubscribe() {
					return
				}
			}
			found()
		case *redis.Message:
			sessionstore.Deleted(s.log, "redisstore", m.Channel, m.Payload, fn)
		}
	}
}

// Close ends the subscriptions and, if Open made the client, closes it.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.close()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.wg.Wait()
	if s.own {
		if err := s.c.Close(); err != nil {
			return fmt.Errorf("redisstore: close: %w", err)
		}
	}
	return nil
}
