package bearer

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxMemoryReplayEntries bounds the in-memory replay cache. Entries live
// two DPoP windows at most, so it is reached only under a flood of valid
// proofs; it then refuses (503) rather than forget proofs.
const maxMemoryReplayEntries = 1 << 20

// NewMemoryReplayCache returns a ReplayCache in this process's memory: good
// for one instance only.
func NewMemoryReplayCache() ReplayCache {
	return &memoryReplay{seen: map[string]time.Time{}, now: time.Now}
}

type memoryReplay struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	now   func() time.Time
	sweep time.Time
}

func (m *memoryReplay) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if cur, ok := m.seen[key]; ok && now.Before(cur) {
		return true, nil
	}
	if len(m.seen) >= maxMemoryReplayEntries/2 && now.Sub(m.sweep) > time.Second || now.Sub(m.sweep) > time.Minute {
		m.sweep = now
		for k, t := range m.seen {
			if !now.Before(t) {
				delete(m.seen, k)
			}
		}
	}
	if len(m.seen) >= maxMemoryReplayEntries {
		return false, errors.New("bearer: DPoP replay cache is full")
	}
	m.seen[key] = until
	return false, nil
}
