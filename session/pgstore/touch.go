package pgstore

import (
	"context"
	"time"

	"github.com/cloakroom/cloakroom/session"
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
