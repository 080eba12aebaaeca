// Package redisstore is a session.Store in Redis (github.com/redis/go-redis/v9)
// for several instances sharing sessions.
//
// Layout, under a configurable prefix (default "cloakroom:"):
//
//	{prefix}s:{key}        hash: v (version), sub, sid, e (expiry, Unix ms), p (payload)
//	{prefix}sid:{sid}      set of the keys with that Keycloak session id
//	{prefix}sub:{subject}  set of the keys of that user
//	{prefix}once:{key}     string: a MarkOnce mark (SET NX, PEXPIREAT = until)
//	{prefix}deleted        pub/sub channel: JSON array of deleted keys
//
// Every record carries PEXPIREAT = ExpiresAt, so Redis itself forgets expired
// sessions; an index set expires no earlier than its latest member. Saves
// (compare-and-swap plus index maintenance) and deletions run as Lua
// scripts, so they are atomic and never race with another instance. Index
// members whose record is gone or has moved to another sid or subject are
// ignored and cleaned up by the deletions.
//
// Redis Cluster: the scripts touch several keys, so they must live in one
// hash slot; give a prefix with a hash tag, such as "{cloakroom}:".
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strconv"
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

// Option configures New and Open.
type Option func(*config)

type config struct {
	prefix string
	logger *slog.Logger
}

// WithPrefix sets the prefix of every key and of the pub/sub channel
// (default DefaultPrefix). Stores that should share sessions need the same
// prefix; different prefixes keep applications on one Redis apart.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithLogger sets where Subscribe reports messages it cannot decode
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Store is a session.Store and session.Notifier in Redis. It is safe for
// concurrent use.
type Store struct {
	c      redis.UniversalClient
	own    bool // Open made the client: Close closes it
	prefix string
	log    *slog.Logger

	mu     sync.Mutex
	subs   map[*redis.PubSub]struct{}
	closed bool
	wg     sync.WaitGroup
}

var (
	_ session.Store    = (*Store)(nil)
	_ session.Notifier = (*Store)(nil)
)

// New returns a Store using client. Close does not close the client.
func New(client redis.UniversalClient, opts ...Option) *Store {
	cfg := config{prefix: DefaultPrefix}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	return &Store{c: client, prefix: cfg.prefix, log: cfg.logger, subs: map[*redis.PubSub]struct{}{}}
}

// Open connects to the Redis at url (redis://[user:password@]host:port/db or
// rediss:// for TLS; see redis.ParseURL), checks that it answers, and
// returns a Store that owns the connection: Close closes it.
func Open(url string, opts ...Option) (*Store, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: do not repeat it.
		return nil, fmt.Errorf("redisstore: the Redis URL is not valid (want redis://host:port/db or rediss://...): %w", redactURLError(err))
	}
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redisstore: connect to Redis at %s (db %d): %w", o.Addr, o.DB, err)
	}
	s := New(c, opts...)
	s.own = true
	return s, nil
}

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

// deleteScript: KEYS[1] record; ARGV prefix, key. Returns 1 if a live
// record was deleted.
var deleteScript = redis.NewScript(`
local rk = KEYS[1]
local prefix, key = ARGV[1], ARGV[2]
local cur = redis.call('HMGET', rk, 'sub', 'sid')
if redis.call('DEL', rk) == 0 then return 0 end
if cur[1] and cur[1] ~= '' then redis.call('SREM', prefix .. 'sub:' .. cur[1], key) end
if cur[2] and cur[2] ~= '' then redis.call('SREM', prefix .. 'sid:' .. cur[2], key) end
redis.call('PUBLISH', prefix .. 'deleted', cjson.encode({key}))
return 1
`)

// deleteIndexScript: KEYS[1] index set; ARGV prefix, field ('sid' or
// 'sub'), value, other field. Deletes the records of the set that still
// carry that value and returns their keys.
var deleteIndexScript = redis.NewScript(`
local prefix, field, value, other = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
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
if #deleted > 0 then redis.call('PUBLISH', prefix .. 'deleted', cjson.encode(deleted)) end
return deleted
`)

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vals, err := s.c.HMGet(ctx, s.recordKey(key), "v", "sub", "sid", "e", "p").Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", err)
	}
	if len(vals) != 5 || vals[0] == nil {
		return nil, session.ErrNotFound
	}
	str := func(i int) string { v, _ := vals[i].(string); return v }
	ver, err1 := strconv.ParseInt(str(0), 10, 64)
	exp, err2 := strconv.ParseInt(str(3), 10, 64)
	if err1 != nil || err2 != nil || vals[4] == nil {
		return nil, errors.New("redisstore: load: malformed record (was it written by this package?)")
	}
	return &session.Record{
		Key:       key,
		Subject:   str(1),
		SID:       str(2),
		ExpiresAt: time.UnixMilli(exp),
		Version:   ver,
		Payload:   []byte(str(4)),
	}, nil
}

// Save implements session.Store.
func (s *Store) Save(ctx context.Context, r *session.Record) error {
	payload, err := sessionstore.BeginSave(ctx, "redisstore", r)
	if err != nil {
		return err
	}
	nv, err := saveScript.Run(ctx, s.c, []string{s.recordKey(r.Key)},
		s.prefix, r.Key, r.Version, r.Subject, r.SID, r.ExpiresAt.UnixMilli(), payload).Int64()
	if err != nil {
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
	if err := deleteScript.Run(ctx, s.c, []string{s.recordKey(key)}, s.prefix, key).Err(); err != nil {
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
	res, err := deleteIndexScript.Run(ctx, s.c, []string{s.prefix + field + ":" + v}, s.prefix, field, v, other).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res, nil
}

// MarkOnce implements session.Store: SET NX with PXAT until, atomic in
// Redis, so exactly one of concurrent callers on any instance sets it.
func (s *Store) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := sessionstore.BeginMarkOnce(ctx, "redisstore", key); err != nil {
		return false, err
	}
	err := s.c.Do(ctx, "SET", s.prefix+"once:"+key, "1", "NX", "PXAT", max(until.UnixMilli(), 1)).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	default:
		return false, fmt.Errorf("redisstore: mark once: %w", err)
	}
}

// Subscribe implements session.Notifier. It returns once the subscription
// is active (so deletions made after it returns are delivered), then calls
// fn, one call at a time, with the keys every Store on this Redis and
// prefix deletes, until ctx ends or the Store is closed. Pub/sub is not
// durable: deletions published while the connection is being re-established
// are missed.
func (s *Store) Subscribe(ctx context.Context, fn func(keys []string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ps := s.c.Subscribe(ctx, s.Channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return fmt.Errorf("redisstore: subscribe to %s: %w", s.Channel(), err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return errors.New("redisstore: subscribe: the store is closed")
	}
	s.subs[ps] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	ch := ps.Channel()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.subs, ps)
			s.mu.Unlock()
			_ = ps.Close()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				sessionstore.Deleted(s.log, "redisstore", m.Channel, m.Payload, fn)
			}
		}
	}()
	return nil
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
	subs := make([]*redis.PubSub, 0, len(s.subs))
	for ps := range s.subs {
		subs = append(subs, ps)
	}
	s.mu.Unlock()
	for _, ps := range subs {
		_ = ps.Close()
	}
	s.wg.Wait()
	if s.own {
		if err := s.c.Close(); err != nil {
			return fmt.Errorf("redisstore: close: %w", err)
		}
	}
	return nil
}
