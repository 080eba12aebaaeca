package session_test

import (
	"testing"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	sessiontest.Run(t, func(t *testing.T) session.Store { return session.NewMemoryStore() })
}
