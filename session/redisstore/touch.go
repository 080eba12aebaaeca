package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/redis/go-redis/v9"
)

var _ session.Toucher = (*Store)(nil)

// touchScript: KEYS[1] record; ARGV prefix, key, expiry (Unix ms).
// Extends a live record (and its sid and subject index sets) to the
// expiry if that is later; returns 0 if there is no live record.
var touchScript = redis.NewScript(`
local rk = KEYS[1]
local prefix, key, exp = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HMGET', rk, 'e', 'sub', 'sid')
if not cur[1] then return 0 end
if exp <= tonumber(cur[1]) then return 1 end
redis.call('HSET', rk, 'e', ARGV[3])
redis.call('PEXPIREAT', rk, exp)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function extend(ik)
  local ttl = redis.call('PTTL', ik)
  if ttl >= 0 and now + ttl < exp then redis.call('PEXPIREAT', ik, exp) end
end
if cur[2] and cur[2] ~= '' then extend(prefix .. 'sub:' .. cur[2]) end
if cur[3] and cur[3] ~= '' then extend(prefix .. 'sid:' .. cur[3]) end
return 1
`)

// Touch implements session.Toucher: one script run, which rewrites the
// record's expiry field and key expiry, never its payload or version.
func (s *Store) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	n, err := touchScript.Run(ctx, s.c, []string{s.recordKey(key)}, s.prefix, key, expiresAt.UnixMilli()).Int64()
	if err := s.failed(err); err != nil {
		return fmt.Errorf("redisstore: touch: %w", err)
	}
	if n == 0 {
		return session.ErrNotFound
	}
	return nil
}

var _ session.HeaderLoader = (*Store)(nil)

// LoadHeader implements session.HeaderLoader: the record's fields but
// its payload.
func (s *Store) LoadHeader(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	vals, err := s.c.HMGet(ctx, s.recordKey(key), "v", "sub", "sid", "e").Result()
	if err := s.failed(err); err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", err)
	}
	return s.record(key, vals, false)
}
