package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/jackc/pgx/v5"
)

var _ session.Toucher = (*Store)(nil)

// Touch implements session.Toucher: one UPDATE of the expiry column,
// which PostgreSQL can do without rewriting the payload's TOAST data.
func (s *Store) Touch(ctx context.Context, key string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, s.qTouch, key, expiresAt)
	if err != nil {
		return s.wrap("touch a session in", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

var _ session.HeaderLoader = (*Store)(nil)

// LoadHeader implements session.HeaderLoader: the row without its
// payload, which PostgreSQL then need not read from TOAST.
func (s *Store) LoadHeader(ctx context.Context, key string) (*session.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &session.Record{Key: key}
	err := s.pool.QueryRow(ctx, s.qLoadHeader, key).Scan(&r.Subject, &r.SID, &r.ExpiresAt, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap("load from", err)
	}
	return r, nil
}
