// Package sessionstore holds what the session stores (sqlitestore,
// redisstore, pgstore) share beyond the session.Store contract.
package sessionstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/cloakroom/cloakroom/session"
)

// BeginSave makes the checks every Save starts with: ctx is live, r has a
// key, and its version is not negative (session.ErrConflict: no stored
// record has one). It returns the payload to write, never nil (the SQL
// columns are NOT NULL). pkg starts the messages ("sqlitestore").
func BeginSave(ctx context.Context, pkg string, r *session.Record) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.Key == "" {
		return nil, fmt.Errorf("%s: save: the record has no key", pkg)
	}
	if r.Version < 0 {
		return nil, session.ErrConflict
	}
	if r.Payload == nil {
		return []byte{}, nil
	}
	return r.Payload, nil
}

// BeginMarkOnce makes the checks every MarkOnce starts with: ctx is live
// and the key is not empty. pkg starts the message ("pgstore").
func BeginMarkOnce(ctx context.Context, pkg, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%s: mark once: empty key", pkg)
	}
	return nil
}

// EndSave finishes a Save whose write touched n rows: exactly one means the
// compare-and-swap held and r's version moves on; none means another
// writer won (session.ErrConflict).
func EndSave(r *session.Record, n int64) error {
	if n != 1 {
		return session.ErrConflict
	}
	r.Version++
	return nil
}

// Deleted hands the keys of a deletion announcement (a JSON array, as the
// Redis and PostgreSQL stores publish them) to fn; a malformed one is
// logged and dropped, since a cache then merely keeps an entry until its
// TTL.
func Deleted(log *slog.Logger, pkg, channel, payload string, fn func(keys []string)) {
	var keys []string
	if err := json.Unmarshal([]byte(payload), &keys); err != nil {
		log.Warn(pkg+": ignoring a malformed deletion announcement", "channel", channel, "error", err)
		return
	}
	if len(keys) > 0 {
		fn(keys)
	}
}
