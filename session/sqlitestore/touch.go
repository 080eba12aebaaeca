package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

var (
	_ session.Toucher      = (*Store)(nil)
	_ session.HeaderLoader = (*Store)(nil)
)

// Touch implements session.Toucher: one UPDATE of the expiry column.
// SQLite writes only the pages whose bytes change, so the payload's
// overflow pages are left alone.
func (s *Store) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := s.touch.ExecContext(ctx, expiresAt.UnixMilli(), key, s.now().UnixMilli())
	if err != nil {
		return s.wrap("touch a session in", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap("touch a session in", err)
	}
	if n == 0 {
		return session.ErrNotFound
	}
	return nil
}

// LoadHeader implements session.HeaderLoader: the row without its
// payload, whose overflow pages SQLite then does not read.
func (s *Store) LoadHeader(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &session.Record{Key: key}
	var exp int64
	err := s.loadHeader.QueryRowContext(ctx, key, s.now().UnixMilli()).Scan(&r.Subject, &r.SID, &exp, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("load from", err)
	}
	r.ExpiresAt = time.UnixMilli(exp)
	return r, nil
}
