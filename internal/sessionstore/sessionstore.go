// Package sessionstore holds what the session stores (sqlitestore,
// redisstore, pgstore) share beyond the session.Store contract.
package sessionstore

import (
	"context"
	"fmt"

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
