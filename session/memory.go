package session

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryStore keeps sessions in the process's memory: for tests and single
// instances that accept losing sessions on restart. Expired records are
// dropped on access and by a sweep every minute.
type MemoryStore struct {
	mu        sync.Mutex
	records   map[string]Record
	bySID     map[string]keySet
	bySubject map[string]keySet
	marks     map[string]time.Time // MarkOnce: key → until
	now       func() time.Time
	stop      chan struct{}
	stopOnce  sync.Once
}

// NewMemoryStore returns an empty MemoryStore. Close stops its sweeper.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{
		records:   map[string]Record{},
		bySID:     map[string]keySet{},
		bySubject: map[string]keySet{},
		marks:     map[string]time.Time{},
		now:       time.Now,
		stop:      make(chan struct{}),
	}
	go s.sweep(time.Minute)
	return s
}

func (s *MemoryStore) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			now := s.now()
			for k, r := range s.records {
				if !now.Before(r.ExpiresAt) {
					s.deleteLocked(k)
				}
			}
			for k, until := range s.marks {
				if !now.Before(until) {
					delete(s.marks, k)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Load implements Store.
func (s *MemoryStore) Load(ctx context.Context, key string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok {
		return nil, ErrNotFound
	}
	if !s.now().Before(r.ExpiresAt) {
		s.deleteLocked(key)
		return nil, ErrNotFound
	}
	// Shared, not copied: a loaded Payload is read-only (Store.Load), and
	// the stored one has no spare capacity for an append to write into.
	return &r, nil
}

// Save implements Store.
func (s *MemoryStore) Save(ctx context.Context, r *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.records[r.Key]
	if exists && !s.now().Before(cur.ExpiresAt) {
		s.deleteLocked(r.Key)
		exists = false
	}
	if (exists && cur.Version != r.Version) || (!exists && r.Version != 0) {
		return ErrConflict
	}
	if exists {
		s.unindexLocked(cur)
	}
	stored := *r
	stored.Version = r.Version + 1
	// A copy of its own, exactly as long as it is (see Load).
	if r.Payload != nil {
		stored.Payload = make([]byte, len(r.Payload))
		copy(stored.Payload, r.Payload)
	}
	s.records[r.Key] = stored
	index(s.bySID, stored.SID, stored.Key)
	index(s.bySubject, stored.Subject, stored.Key)
	r.Version = stored.Version
	return nil
}

// keySet is the set of record keys under one sid or subject. A sid has
// one session, a subject usually a few: the first key is kept inline, and
// a map (about 250 bytes) is made only for a second one.
type keySet struct {
	one  string
	more map[string]struct{}
}

func index(m map[string]keySet, v, key string) {
	if v == "" {
		return
	}
	set, ok := m[v]
	switch {
	case !ok:
		m[v] = keySet{one: key}
	case set.one != key:
		if set.more == nil {
			set.more = map[string]struct{}{}
			m[v] = set
		}
		set.more[key] = struct{}{}
	}
}

func unindex(m map[string]keySet, v, key string) {
	set, ok := m[v]
	if !ok {
		return
	}
	if set.one != key {
		delete(set.more, key)
		if len(set.more) == 0 && set.more != nil {
			set.more = nil
			m[v] = set
		}
		return
	}
	if len(set.more) == 0 {
		delete(m, v)
		return
	}
	for k := range set.more {
		set.one = k
		delete(set.more, k)
		break
	}
	if len(set.more) == 0 {
		set.more = nil
	}
	m[v] = set
}

// keys returns the keys in set.
func (set keySet) keys() []string {
	keys := make([]string, 0, 1+len(set.more))
	keys = append(keys, set.one)
	for k := range set.more {
		keys = append(keys, k)
	}
	return keys
}

func (s *MemoryStore) unindexLocked(r Record) {
	unindex(s.bySID, r.SID, r.Key)
	unindex(s.bySubject, r.Subject, r.Key)
}

func (s *MemoryStore) deleteLocked(key string) bool {
	r, ok := s.records[key]
	if !ok {
		return false
	}
	s.unindexLocked(r)
	delete(s.records, key)
	return true
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(key)
	return nil
}

func (s *MemoryStore) deleteIndexed(ctx context.Context, m map[string]keySet, v string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if v == "" {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := m[v]
	if !ok {
		return nil, nil
	}
	keys := set.keys()
	for _, k := range keys {
		s.deleteLocked(k)
	}
	return keys, nil
}

// DeleteBySID implements Store.
func (s *MemoryStore) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	return s.deleteIndexed(ctx, s.bySID, sid)
}

// DeleteBySubject implements Store.
func (s *MemoryStore) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	return s.deleteIndexed(ctx, s.bySubject, subject)
}

// MarkOnce implements Store.
func (s *MemoryStore) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if key == "" {
		return false, errors.New("session: MarkOnce: empty key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.marks[key]; ok && s.now().Before(cur) {
		return false, nil
	}
	s.marks[key] = until
	return true, nil
}

// Len returns the number of records held, expired ones included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Close stops the sweeper. The store keeps working for tests that use it
// after Close.
func (s *MemoryStore) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}
