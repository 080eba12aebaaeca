package gateway

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/pgstore"
	"github.com/cloakroom/cloakroom/session/redisstore"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

func validStoreSpec(spec string) error {
	switch {
	case spec == "memory:":
	case strings.HasPrefix(spec, "sqlite:"):
		if strings.TrimPrefix(spec, "sqlite:") == "" {
			return fmt.Errorf("sqlite: needs a file path, e.g. sqlite:/var/lib/cloakroom/sessions.db")
		}
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
	default:
		return fmt.Errorf("%q: want sqlite:PATH, redis://host:6379/0, postgres://user@host/db or memory:", redactSpec(spec))
	}
	return nil
}

// redactSpec hides a password in a store URL.
func redactSpec(spec string) string {
	if i := strings.Index(spec, "://"); i >= 0 {
		rest := spec[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return spec[:i+3] + rest[:colon] + ":[redacted]" + rest[at:]
			}
		}
	}
	return spec
}

// openStore opens the session store named by spec.
func openStore(ctx context.Context, spec string) (session.Store, error) {
	switch {
	case spec == "memory:":
		return session.NewMemoryStore(), nil
	case strings.HasPrefix(spec, "sqlite:"):
		return sqlitestore.Open(strings.TrimPrefix(spec, "sqlite:"))
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		return redisstore.Open(spec)
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return pgstore.Open(ctx, spec)
	}
	return nil, fmt.Errorf("session.store: %w", validStoreSpec(spec))
}

func sessionKey(s string) ([]byte, error) {
	keys, err := session.ParseKeys(s)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("one key per list entry")
	}
	return keys[0], nil
}
