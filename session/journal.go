package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLogoutDeferred is returned (wrapped, together with the store's own
// error) by a JournaledStore's deletions when the store could not be
// reached and the deletion was recorded in the instance's logout journal
// instead. The logout is then accepted: it is applied to the store as soon
// as the store answers again, and until then the instance refuses every
// session it names. Callers treat the logout as done (login answers
// Keycloak's back-channel logout 200 and ends a browser's logout normally).
var ErrLogoutDeferred = errors.New("session: store unreachable; logout recorded in the local journal and applied when it returns")

// ErrRecovering is returned by a JournaledStore's Load for a short hold
// after the store was unreachable (JournalConfig.RecoveryHold): every
// instance waits before serving sessions again, so that logouts another
// instance journaled during the outage are applied first.
var ErrRecovering = errors.New("session: the session store is back after an outage; sessions are served again once pending logouts had time to be applied")

// ErrNotReplicated is wrapped by the error of a deletion that the store
// made but could not yet make durable (redisstore: fewer replicas than
// required acknowledged it). A JournaledStore journals such a deletion and
// retries it, without counting it as an outage.
var ErrNotReplicated = errors.New("the deletion was not acknowledged by enough replicas")

var errSubscriptionLost = errors.New("session: the store's invalidation subscription was lost")

// Defaults of JournalConfig.
const (
	DefaultJournalRetry   = 250 * time.Millisecond
	DefaultJournalAttempt = time.Second
	DefaultRecoveryHold   = 3 * time.Second
)

// JournalConfig configures NewJournaledStore.
type JournalConfig struct {
	// Path is the journal file: one per instance, on storage that survives
	// a restart of the instance. It is created (mode 0600) if missing and
	// locked while the store is open, so two processes cannot share it.
	Path string
	// MaxLifetime is the longest a session lives (the Manager's
	// MaxLifetime; default DefaultMaxLifetime): an entry older than that
	// names only ended sessions and is dropped unapplied.
	MaxLifetime time.Duration
	// RetryInterval is how often pending entries are tried against the
	// store (default 250 ms), and AttemptTimeout bounds one try (default
	// 1 s).
	RetryInterval  time.Duration
	AttemptTimeout time.Duration
	// RecoveryHold is how long after a failed store operation, counted
	// from the store's first answer again, Load keeps refusing sessions
	// with ErrRecovering (default 3 s; negative: no hold). It must exceed
	// RetryInterval + AttemptTimeout of every instance, so that a logout
	// journaled by any of them is applied before any serves the session.
	RecoveryHold time.Duration
	// Logger reports journaled and applied logouts (default slog.Default()).
	Logger *slog.Logger
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// journalEntry is one deferred deletion: Op is "key" (one session, by
// store key), "sid" (every session of a Keycloak session) or "sub" (every
// session of a user).
type journalEntry struct {
	Op    string    `json:"op"`
	Value string    `json:"v"`
	At    time.Time `json:"at"`
}

type entryID struct{ op, value string }

// JournaledStore is a Store whose deletions are never lost: when the
// wrapped store cannot be reached, Delete, DeleteBySID and DeleteBySubject
// append the deletion to a journal file on the instance's own disk, fsync
// it, and return ErrLogoutDeferred; a background loop applies the journal
// to the store the moment it answers again and removes what it applied.
// Until then Load refuses every record the journal names (ErrNotFound),
// including records served from an instance-local cache, and the journal
// survives a restart or a crash of the instance: an instance that starts
// with pending entries applies them first.
//
// Other instances learn nothing from this journal. That is why Load also
// holds sessions back for RecoveryHold after the store was unreachable:
// when the whole deployment loses the store, no instance serves a session
// again before every instance's pending logouts had time to be applied.
// An outage is noticed by a failed store operation or, when store is a
// CachedStore over a Notifier, by the loss of its invalidation
// subscription (a load in flight during the outage may otherwise succeed
// after it, behind the client's retries). Wrap the store outermost
// (around a CachedStore), so that all of this applies.
//
// What remains, and is documented in docs/gateway.md: an instance cut off
// from the store while the others still reach it (a partition of one
// instance) holds its journaled logouts until it reaches the store again;
// the others serve those sessions meanwhile, until the session's access
// token expires and its refresh is refused by Keycloak.
type JournaledStore struct {
	Store
	cfg  JournalConfig
	log  *slog.Logger
	now  func() time.Time
	file *os.File // holds the lock

	mu      sync.Mutex
	pending map[entryID]journalEntry
	npend   atomic.Int64

	// failedAt (Unix ns) is the last failed store operation; recoveredAt
	// the first success after it. Zero: no failure seen.
	failedAt, recoveredAt atomic.Int64

	stop   context.CancelFunc
	done   chan struct{}
	closed atomic.Bool
}

var _ Store = (*JournaledStore)(nil)

// NewJournaledStore wraps store with the journal at cfg.Path, applies what
// an earlier run left there, and starts the loop that applies new entries.
// Close stops it and closes store.
func NewJournaledStore(store Store, cfg JournalConfig) (*JournaledStore, error) {
	if cfg.Path == "" {
		return nil, errors.New("session: JournalConfig.Path is required")
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultJournalRetry
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultJournalAttempt
	}
	if cfg.RecoveryHold == 0 {
		cfg.RecoveryHold = DefaultRecoveryHold
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("session: logout journal: %w", err)
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("session: logout journal: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("session: logout journal %s is in use by another process (each instance needs its own journal file): %w", cfg.Path, err)
	}
	j := &JournaledStore{
		Store: store, cfg: cfg, log: cfg.Logger, now: cfg.Now, file: f,
		pending: map[entryID]journalEntry{}, done: make(chan struct{}),
	}
	if err := j.read(); err != nil {
		f.Close()
		return nil, err
	}
	if n := len(j.pending); n > 0 {
		j.log.Warn("session: logout journal holds logouts not yet applied to the session store; applying them now", "journal", cfg.Path, "pending", n)
		// Entries from before the restart: hold sessions until applied.
		j.failedAt.Store(j.now().UnixNano())
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.stop = cancel
	// A lost invalidation subscription (or a failover of the store's
	// master) is the first sign of trouble, and sometimes the only one: a
	// load in flight when the store went away may succeed after it is
	// back, behind the client's retries, and a failover may bring back a
	// deletion the old master took just before it was demoted.
	markFailed := func() { j.observe(errSubscriptionLost) }
	switch s := store.(type) {
	case *CachedStore:
		s.onMissed.Store(&markFailed)
	case Notifier:
		if err := s.Subscribe(ctx, func(keys []string) {
			if keys == nil {
				markFailed()
			}
		}); err != nil {
			cancel()
			f.Close()
			return nil, fmt.Errorf("session: logout journal: subscribing to the store's announcements: %w", err)
		}
	}
	go j.loop(ctx)
	return j, nil
}

// read loads the journal. A torn last line (a crash during an append that
// was never acknowledged) is dropped; a malformed line elsewhere means the
// file was damaged or is not a journal, and is an error naming the line.
func (j *JournaledStore) read() error {
	data, err := os.ReadFile(j.cfg.Path)
	if err != nil {
		return fmt.Errorf("session: logout journal: %w", err)
	}
	lines := bytes.Split(data, []byte("\n"))
	cutoff := j.now().Add(-j.cfg.MaxLifetime)
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e journalEntry
		err := json.Unmarshal(line, &e)
		if err == nil && !validOp(e.Op) {
			err = fmt.Errorf("unknown op %q", e.Op)
		}
		if err != nil {
			if i == len(lines)-1 {
				j.log.Warn("session: logout journal: dropping an incomplete last line (written during a crash, never acknowledged)", "journal", j.cfg.Path)
				continue
			}
			return fmt.Errorf("session: logout journal %s, line %d is not a journal entry (%v): the file is damaged; move it away to start without it, after checking which logouts it held", j.cfg.Path, i+1, err)
		}
		if e.At.Before(cutoff) {
			continue
		}
		j.pending[entryID{e.Op, e.Value}] = e
	}
	j.npend.Store(int64(len(j.pending)))
	return nil
}

func validOp(op string) bool { return op == "key" || op == "sid" || op == "sub" }

// Pending returns the number of journaled deletions not yet applied.
func (j *JournaledStore) Pending() int { return int(j.npend.Load()) }

// observe notes the outcome of a store operation: a failure (not an
// answer such as ErrNotFound) starts an outage, a success after one
// starts the recovery hold.
func (j *JournaledStore) observe(err error) {
	switch {
	case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotReplicated):
		// The store answered (a deletion it could not replicate yet is
		// journaled all the same, but is no outage: this instance refuses
		// what it journaled by itself).
		if j.failedAt.Load() != 0 && j.recoveredAt.Load() == 0 {
			j.recoveredAt.CompareAndSwap(0, j.now().UnixNano())
		}
	case errors.Is(err, context.Canceled):
		// The caller went away: says nothing about the store.
	default:
		j.failedAt.Store(j.now().UnixNano())
		j.recoveredAt.Store(0)
	}
}

// holding reports whether Load must wait: the store failed, and has not
// answered for RecoveryHold since.
func (j *JournaledStore) holding() bool {
	if j.failedAt.Load() == 0 || j.cfg.RecoveryHold < 0 {
		return false
	}
	rec := j.recoveredAt.Load()
	if rec == 0 {
		return true
	}
	if j.now().UnixNano()-rec < int64(j.cfg.RecoveryHold) {
		return true
	}
	if j.failedAt.Swap(0) != 0 {
		j.recoveredAt.Store(0)
		// What a cache below took in during the hold may have been read
		// from a master about to be demoted: start afresh.
		if c, ok := j.Store.(*CachedStore); ok {
			c.clear()
		}
	}
	return false
}

// Load implements Store: records the journal names are not found, and
// during the hold after an outage every load fails with ErrRecovering.
func (j *JournaledStore) Load(ctx context.Context, key string) (*Record, error) {
	r, err := j.Store.Load(ctx, key)
	j.observe(err)
	if err != nil {
		return nil, err
	}
	if j.holding() {
		return nil, ErrRecovering
	}
	if j.npend.Load() > 0 && j.names(r) {
		return nil, ErrNotFound
	}
	return r, nil
}

func (j *JournaledStore) names(r *Record) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, byKey := j.pending[entryID{"key", r.Key}]
	_, bySID := j.pending[entryID{"sid", r.SID}]
	_, bySub := j.pending[entryID{"sub", r.Subject}]
	return byKey || (r.SID != "" && bySID) || (r.Subject != "" && bySub)
}

// Save implements Store.
func (j *JournaledStore) Save(ctx context.Context, r *Record) error {
	err := j.Store.Save(ctx, r)
	j.observe(err)
	return err
}

// MarkOnce implements Store.
func (j *JournaledStore) MarkOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	first, err := j.Store.MarkOnce(ctx, key, until)
	j.observe(err)
	return first, err
}

// Delete implements Store; see JournaledStore for what a failure does.
func (j *JournaledStore) Delete(ctx context.Context, key string) error {
	err := j.Store.Delete(ctx, key)
	j.observe(err)
	if err != nil {
		return j.defer_("key", key, err)
	}
	return nil
}

// DeleteBySID implements Store; see JournaledStore for what a failure does.
func (j *JournaledStore) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	keys, err := j.Store.DeleteBySID(ctx, sid)
	j.observe(err)
	if err != nil && sid != "" {
		return keys, j.defer_("sid", sid, err)
	}
	return keys, err
}

// DeleteBySubject implements Store; see JournaledStore for what a failure
// does.
func (j *JournaledStore) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	keys, err := j.Store.DeleteBySubject(ctx, subject)
	j.observe(err)
	if err != nil && subject != "" {
		return keys, j.defer_("sub", subject, err)
	}
	return keys, err
}

// defer_ journals a deletion the store refused with cause. It returns an
// error wrapping ErrLogoutDeferred once the entry is on disk, or cause
// joined with the journal's own failure.
func (j *JournaledStore) defer_(op, value string, cause error) error {
	if j.closed.Load() {
		return cause
	}
	e := journalEntry{Op: op, Value: value, At: j.now().UTC()}
	line, _ := json.Marshal(e)
	j.mu.Lock()
	err := j.append(append(line, '\n'))
	if err == nil {
		j.pending[entryID{op, value}] = e
		j.npend.Store(int64(len(j.pending)))
	}
	j.mu.Unlock()
	if err != nil {
		j.log.Error("session: logout journal: cannot record a logout the session store refused", "journal", j.cfg.Path, "error", err, "store_error", cause)
		return fmt.Errorf("%w (and the logout journal failed: %v)", cause, err)
	}
	j.log.Warn("session: session store unreachable; logout recorded in the journal, applied when the store returns", "op", op, "journal", j.cfg.Path, "store_error", cause)
	return fmt.Errorf("%w: %w", ErrLogoutDeferred, cause)
}

// append writes line at the end of the journal and syncs it to disk.
// Callers hold j.mu.
func (j *JournaledStore) append(line []byte) error {
	if _, err := j.file.Seek(0, 2); err != nil {
		return err
	}
	if _, err := j.file.Write(line); err != nil {
		return err
	}
	return j.file.Sync()
}

// loop applies pending entries every RetryInterval until Close.
func (j *JournaledStore) loop(ctx context.Context) {
	defer close(j.done)
	t := time.NewTicker(j.cfg.RetryInterval)
	defer t.Stop()
	for {
		if j.npend.Load() > 0 {
			j.apply(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apply tries every pending entry once and rewrites the journal without
// the ones applied (or expired).
func (j *JournaledStore) apply(ctx context.Context) {
	j.mu.Lock()
	entries := make([]journalEntry, 0, len(j.pending))
	for _, e := range j.pending {
		entries = append(entries, e)
	}
	j.mu.Unlock()
	cutoff := j.now().Add(-j.cfg.MaxLifetime)
	var applied []entryID
	var lastErr error
	for _, e := range entries {
		if e.At.Before(cutoff) {
			applied = append(applied, entryID{e.Op, e.Value})
			continue
		}
		actx, cancel := context.WithTimeout(ctx, j.cfg.AttemptTimeout)
		var err error
		switch e.Op {
		case "key":
			err = j.Store.Delete(actx, e.Value)
		case "sid":
			_, err = j.Store.DeleteBySID(actx, e.Value)
		case "sub":
			_, err = j.Store.DeleteBySubject(actx, e.Value)
		}
		cancel()
		if err != nil {
			lastErr = err
			break // the store is still down: try the rest next time
		}
		applied = append(applied, entryID{e.Op, e.Value})
	}
	if len(applied) == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range applied {
		delete(j.pending, id)
	}
	if err := j.rewrite(); err != nil {
		// The entries stay on disk and are applied again after a restart
		// (deleting twice is harmless); memory is what counts now.
		j.log.Error("session: logout journal: cannot rewrite the journal after applying entries", "journal", j.cfg.Path, "error", err)
	}
	j.npend.Store(int64(len(j.pending)))
	j.log.Info("session: logouts from the journal applied to the session store", "applied", len(applied), "pending", len(j.pending), "last_error", lastErr)
}

// rewrite replaces the journal's contents with the pending entries,
// atomically: a new file is written and synced, then renamed over the old
// one, and the lock moves to it. Callers hold j.mu.
func (j *JournaledStore) rewrite() error {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for _, e := range j.pending {
		line, _ := json.Marshal(e)
		w.Write(line)
		w.WriteByte('\n')
	}
	w.Flush()
	if buf.Len() == 0 {
		// Nothing pending: truncate in place (keeps the lock).
		if err := j.file.Truncate(0); err != nil {
			return err
		}
		return j.file.Sync()
	}
	tmp := j.cfg.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, j.cfg.Path); err != nil {
		f.Close()
		return err
	}
	if d, err := os.Open(filepath.Dir(j.cfg.Path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	j.file.Close()
	j.file = f
	return nil
}

// Close stops applying the journal, closes the file (removing it when
// nothing is pending) and closes the wrapped store. Pending entries stay
// on disk for the next start.
func (j *JournaledStore) Close() error {
	if !j.closed.CompareAndSwap(false, true) {
		return nil
	}
	j.stop()
	<-j.done
	j.mu.Lock()
	if len(j.pending) == 0 {
		_ = os.Remove(j.cfg.Path)
	}
	j.file.Close()
	j.mu.Unlock()
	return j.Store.Close()
}
