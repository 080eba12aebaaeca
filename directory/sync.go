package directory

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/admin"
)

// Defaults of SyncOptions.
const (
	DefaultSyncPageSize  = 500
	DefaultSyncBatchSize = 500
	// MaxSyncBatchSize bounds SyncOptions.BatchSize (and so the size of
	// one transaction and of the memory a sync holds).
	MaxSyncBatchSize = 5000
)

// syncName is the key of the checkpoint row.
const syncName = "users"

// verifyWorkers is how many GetUser calls the verify phase runs at once.
const verifyWorkers = 4

// maxReported bounds SyncReport.DeactivatedUsers and Failures.
const (
	maxReportedDeactivations = 100
	maxReportedFailures      = 20
)

// SyncPhase names a phase of Sync.
type SyncPhase string

// Phases of a sync run.
const (
	// PhaseUsers pages through Keycloak's users.
	PhaseUsers SyncPhase = "users"
	// PhaseVerify checks, one GetUser each, the active rows the listing
	// did not see, and deactivates those Keycloak no longer has.
	PhaseVerify SyncPhase = "verify"
	// PhaseDone: the run finished.
	PhaseDone SyncPhase = "done"
)

// SyncOptions tune Sync.
type SyncOptions struct {
	// PageSize is the number of users per Keycloak request (default
	// DefaultSyncPageSize). Keycloak answers each page with an offset
	// query, so larger pages make a full listing cheaper.
	PageSize int
	// BatchSize is the number of users written per transaction (default
	// DefaultSyncBatchSize, at most MaxSyncBatchSize). The checkpoint
	// advances with every batch.
	BatchSize int
	// Resume continues the last run if it was interrupted, with its
	// counts; without an unfinished run it starts a new one. Without
	// Resume a new run starts (an unfinished one is abandoned: its rows
	// are simply seen again).
	//
	// Keycloak may have changed since the interruption, and first/max
	// paging has no snapshot, so a resumption is a new pass over every
	// Keycloak user: it lists from the checkpoint's offset to the end
	// first (the users the run had not reached), then the users before
	// that offset again, comparing them with their rows (the rows the run
	// already wrote are found unchanged, which costs no write but marking
	// them seen), and then checks the active rows this pass did not see.
	// So a resumed run leaves the table as a clean run would, whatever
	// users were added, deleted, renamed or disabled meanwhile.
	Resume bool
	// Progress, when set, is called after every batch and at the end of
	// each phase, from the goroutine running Sync.
	Progress func(SyncProgress)
	// OnDeactivate, when set, is called with every user the run
	// deactivated, after its batch committed.
	OnDeactivate func(*User)
	// Organizations also syncs the users' Keycloak organization
	// memberships when the users are done (see SyncOrganizations; the
	// account then needs view-organizations too). A realm without
	// organizations, or a Keycloak before 26, is skipped.
	Organizations bool
}

// SyncCounts are the counts of a run. Every Keycloak user seen is counted
// once in Seen and once in Created, Updated, Unchanged, Reactivated or
// Deactivated (disabled in Keycloak); Deactivated also counts the rows
// deactivated because Keycloak no longer has their user. A resumed run
// sees again the users it processed before the interruption: those that
// changed in Keycloak meanwhile are counted once more in Updated,
// Reactivated or Deactivated (not in Seen), the others not again. Errors
// counts users that could not be processed (see SyncReport.Failures).
type SyncCounts struct {
	Seen        int `json:"seen"`        // distinct Keycloak users processed
	Created     int `json:"created"`     // new rows
	Updated     int `json:"updated"`     // rows whose profile changed
	Unchanged   int `json:"unchanged"`   // rows that already matched
	Deactivated int `json:"deactivated"` // disabled or gone from Keycloak
	Reactivated int `json:"reactivated"` // enabled again in Keycloak
	Errors      int `json:"errors"`      // users not processed
}

// SyncProgress is reported to SyncOptions.Progress.
type SyncProgress struct {
	// RunID identifies the run (the same across resumptions).
	RunID string
	// Phase is the phase the run is in.
	Phase SyncPhase
	// Total is Keycloak's user count when the run (or this resumption)
	// started; 0 if unknown. Seen may pass it when users are added.
	Total int
	SyncCounts
	// Elapsed is the time since this call of Sync began.
	Elapsed time.Duration
}

// SyncFailure is one user a sync could not process.
type SyncFailure struct {
	Subject string // the Keycloak user id
	Err     error  // what failed
}

// SyncReport is the result of a run. When Sync fails, the report holds
// the counts committed so far.
type SyncReport struct {
	// RunID identifies the run (the same across resumptions).
	RunID string
	// Resumed reports whether this call continued an interrupted run; the
	// counts are then those of the whole run.
	Resumed bool
	SyncCounts
	// Started is when the run began (an earlier call, if resumed).
	Started time.Time
	// Duration is the time this call took.
	Duration time.Duration
	// DeactivatedUsers are (up to 100 of) the users this call
	// deactivated; SyncOptions.OnDeactivate sees all of them.
	DeactivatedUsers []*User
	// Failures are (up to 20 of) the users this call could not process.
	Failures []SyncFailure
	// Organizations is the organization sync's report, with
	// SyncOptions.Organizations.
	Organizations *OrganizationSyncReport
}

// checkpoint is the persisted state of a run: committed with each batch.
//
// A run makes one pass over Keycloak's users, and one more each time it is
// resumed (Pass counts the resumptions). A pass lists from Start to the
// end, then (Wrapped) from 0 to Start, then verifies. Rows seen by a pass
// hold its mark in sync_run; rows seen by an earlier pass of the same run
// are compared again, since Keycloak may have changed during the
// interruption.
type checkpoint struct {
	V       int        `json:"v"`
	RunID   string     `json:"run"`
	Phase   SyncPhase  `json:"phase"`
	First   int        `json:"first"`    // next Keycloak offset (PhaseUsers)
	AfterID int64      `json:"after_id"` // last row verified (PhaseVerify)
	Started int64      `json:"started"`  // Unix milliseconds
	Counts  SyncCounts `json:"counts"`
	// Pass, Start and Wrapped are left out of the JSON while zero, so
	// that a run never resumed stores what earlier versions did.
	Pass    int  `json:"pass,omitempty"`    // resumptions so far
	Start   int  `json:"start,omitempty"`   // offset the pass began at
	Wrapped bool `json:"wrapped,omitempty"` // listing [0, Start) again
}

// mark is the sync_run value of the rows the current pass has seen: the
// run id, followed by ".PASS" once resumed.
func (cp *checkpoint) mark() string {
	if cp.Pass == 0 {
		return cp.RunID
	}
	return cp.RunID + "." + strconv.Itoa(cp.Pass)
}

// seenInRun reports whether a row's sync_run is the mark of a pass of this
// run.
func (cp *checkpoint) seenInRun(syncRun string) bool {
	rest, ok := strings.CutPrefix(syncRun, cp.RunID)
	return ok && (rest == "" || rest[0] == '.')
}

// parseCheckpoint reads a stored checkpoint, refusing anything this
// package would not have written.
func parseCheckpoint(runID string, b []byte) (*checkpoint, error) {
	var cp checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("%w: sync checkpoint: %v", ErrCorrupt, err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return nil, fmt.Errorf("%w: sync checkpoint: trailing data", ErrCorrupt)
	}
	c := cp.Counts
	switch {
	case cp.V != 1:
		return nil, fmt.Errorf("%w: sync checkpoint version %d (this cloakroom writes 1)", ErrCorrupt, cp.V)
	case cp.RunID == "" || cp.RunID != runID || !validRunID(cp.RunID):
		return nil, fmt.Errorf("%w: sync checkpoint: bad run id", ErrCorrupt)
	case cp.Phase != PhaseUsers && cp.Phase != PhaseVerify && cp.Phase != PhaseDone:
		return nil, fmt.Errorf("%w: sync checkpoint: unknown phase %q", ErrCorrupt, cp.Phase)
	case cp.First < 0 || cp.AfterID < 0 || cp.Start < 0 || cp.Pass < 0 || cp.Started <= 0:
		return nil, fmt.Errorf("%w: sync checkpoint: negative offset or no start time", ErrCorrupt)
	case c.Seen < 0 || c.Created < 0 || c.Updated < 0 || c.Unchanged < 0 || c.Deactivated < 0 || c.Reactivated < 0 || c.Errors < 0:
		return nil, fmt.Errorf("%w: sync checkpoint: negative count", ErrCorrupt)
	}
	return &cp, nil
}

func validRunID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func newRunID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (cp *checkpoint) encode() string {
	b, _ := json.Marshal(cp)
	return string(b)
}

// loadCheckpoint returns the stored checkpoint (nil if none).
func (d *Directory) loadCheckpoint(ctx context.Context) (*checkpoint, error) {
	var runID string
	var data []byte
	err := d.w.QueryRowContext(ctx, d.q.cpLoad, syncName).Scan(&runID, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseCheckpoint(runID, data)
}

// advance stores cp in tx if this run still owns the checkpoint.
func (d *Directory) advance(ctx context.Context, tx *sql.Tx, cp *checkpoint) error {
	res, err := tx.ExecContext(ctx, d.q.cpAdvance, cp.encode(), d.timeArg(d.stamp()), syncName, cp.RunID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return ErrSyncConflict
	}
	return nil
}

// own checks, at the start of a batch's transaction, that this run still
// owns the checkpoint, and locks its row (on PostgreSQL) so that batches of
// competing runs do not interleave.
func (d *Directory) own(ctx context.Context, tx *sql.Tx, runID string) error {
	res, err := tx.ExecContext(ctx, d.q.cpOwn, d.timeArg(d.stamp()), syncName, runID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return ErrSyncConflict
	}
	return nil
}

// syncer is one call of Sync.
type syncer struct {
	d      *Directory
	opts   SyncOptions
	cp     checkpoint // as committed
	rep    *SyncReport
	total  int
	begin  time.Time
	notify []*User // deactivations of the batch being committed
}

// Sync reconciles the table with every Keycloak user (see the package
// documentation): it creates, updates, reactivates and deactivates rows
// idempotently, and a second run with no change in Keycloak finds every
// user unchanged. It needs WithAdmin (view-users). Sync streams: it holds
// one batch of users at a time. When ctx is cancelled or a request fails,
// the work committed so far stays, and a later Sync with Resume continues
// from the checkpoint.
func (d *Directory) Sync(ctx context.Context, opts SyncOptions) (rep SyncReport, err error) {
	if err := d.needAdmin("sync"); err != nil {
		return rep, err
	}
	if !d.syncing.CompareAndSwap(false, true) {
		return rep, ErrSyncRunning
	}
	defer d.syncing.Store(false)
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultSyncPageSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultSyncBatchSize
	}
	opts.BatchSize = min(opts.BatchSize, MaxSyncBatchSize)
	s := &syncer{d: d, opts: opts, rep: &rep, begin: time.Now()}

	cp, err := d.loadCheckpoint(ctx)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return rep, fmt.Errorf("directory: sync: read the checkpoint: %w", err)
	}
	if err != nil || !opts.Resume || cp == nil || cp.Phase == PhaseDone {
		if err != nil {
			d.log.Warn("directory: sync: ignoring an unreadable checkpoint; starting a new run", "error", err)
		}
		cp = &checkpoint{V: 1, RunID: newRunID(), Phase: PhaseUsers, Started: d.stamp().UnixMilli()}
		if _, err := d.w.ExecContext(ctx, d.q.cpPut, syncName, cp.RunID, cp.encode(), d.timeArg(d.stamp())); err != nil {
			return rep, fmt.Errorf("directory: sync: store the checkpoint: %w", err)
		}
	} else {
		// A new pass: what was listed before the interruption may have
		// changed since (see SyncOptions.Resume).
		rep.Resumed = true
		next := *cp
		next.Pass++
		if next.Phase == PhaseUsers {
			next.Start = next.First
		} else {
			next.Phase, next.First, next.Start = PhaseUsers, 0, 0
		}
		next.Wrapped, next.AfterID = false, 0
		if err := d.inTx(ctx, func(tx *sql.Tx) error { return d.advance(ctx, tx, &next) }); err != nil {
			return rep, fmt.Errorf("directory: sync: resume run %s: store the checkpoint: %w", next.RunID, err)
		}
		cp = &next
	}
	s.cp = *cp
	rep.RunID, rep.Started = cp.RunID, time.UnixMilli(cp.Started).UTC()
	if opts.Progress != nil {
		if n, err := d.admin.CountUsers(ctx, admin.UserQuery{}); err == nil {
			s.total = n
		}
	}
	defer func() {
		rep.SyncCounts = s.cp.Counts
		rep.Duration = time.Since(s.begin)
	}()
	if s.cp.Phase == PhaseUsers {
		if err := s.listUsers(ctx); err != nil {
			return rep, fmt.Errorf("directory: sync run %s: listing Keycloak users stopped at offset %d (run Sync with Resume to continue): %w",
				s.cp.RunID, s.cp.First, err)
		}
	}
	if s.cp.Phase == PhaseVerify {
		if err := s.verify(ctx); err != nil {
			return rep, fmt.Errorf("directory: sync run %s: checking unseen users stopped after id %d (run Sync with Resume to continue): %w",
				s.cp.RunID, s.cp.AfterID, err)
		}
	}
	if opts.Organizations {
		org, err := d.syncOrganizations(ctx, opts.PageSize)
		rep.Organizations = &org
		if err != nil {
			return rep, fmt.Errorf("directory: sync run %s: the users are done, the organizations failed (SyncOrganizations retries them): %w", s.cp.RunID, err)
		}
	}
	s.progress(PhaseDone)
	return rep, nil
}

func (s *syncer) progress(phase SyncPhase) {
	if s.opts.Progress != nil {
		s.opts.Progress(SyncProgress{RunID: s.cp.RunID, Phase: phase, Total: s.total, SyncCounts: s.cp.Counts, Elapsed: time.Since(s.begin)})
	}
}

// fetched is a Keycloak user and a time before it was read.
type fetched struct {
	u  admin.User
	at time.Time
}

// listUsers lists the pass's users: from the checkpoint's offset to the
// end, then, in a resumed pass, the users before the pass's start again.
func (s *syncer) listUsers(ctx context.Context) error {
	d := s.d
	for {
		limit := -1 // to the end
		if s.cp.Wrapped {
			limit = max(0, s.cp.Start-s.cp.First)
		}
		if limit != 0 {
			if err := s.listFrom(ctx, limit); err != nil {
				return err
			}
		}
		if s.cp.Wrapped || s.cp.Start == 0 {
			break
		}
		// The end is reached: list what came before the start again.
		next := s.cp
		next.Wrapped, next.First = true, 0
		if err := d.inTx(ctx, func(tx *sql.Tx) error { return d.advance(ctx, tx, &next) }); err != nil {
			return err
		}
		s.cp = next
	}
	// The listing is complete: move to the verify phase.
	next := s.cp
	next.Phase, next.AfterID = PhaseVerify, 0
	if err := d.inTx(ctx, func(tx *sql.Tx) error { return d.advance(ctx, tx, &next) }); err != nil {
		return err
	}
	s.cp = next
	s.progress(PhaseUsers)
	return nil
}

// listFrom lists Keycloak's users from the checkpoint's offset on, limit
// of them (all to the end if negative), and writes them a batch at a
// time.
func (s *syncer) listFrom(ctx context.Context, limit int) error {
	d := s.d
	size := s.opts.PageSize
	batch := make([]fetched, 0, s.opts.BatchSize)
	q := admin.UserQuery{First: s.cp.First, Max: size, BriefRepresentation: true}
	pageAt := d.stamp() // before the first page is requested
	i := 0
	for u, err := range d.admin.AllUsers(ctx, q) {
		if err != nil {
			return err
		}
		batch = append(batch, fetched{u: u, at: pageAt})
		i++
		if len(batch) == cap(batch) {
			if err := s.flush(ctx, batch); err != nil {
				return err
			}
			clear(batch)
			batch = batch[:0]
			s.progress(PhaseUsers)
		}
		if i == limit {
			break
		}
		if i%size == 0 {
			// AllUsers asks for the next page when this iteration ends.
			pageAt = d.stamp()
		}
	}
	return s.flush(ctx, batch)
}

// flush writes one batch of Keycloak users and advances the checkpoint
// past them, in one transaction.
func (s *syncer) flush(ctx context.Context, batch []fetched) error {
	d := s.d
	next := s.cp
	next.First += len(batch)
	mark := next.mark()
	var deactivated []*User
	var failures []SyncFailure
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		next.Counts = s.cp.Counts
		deactivated, failures = deactivated[:0], failures[:0]
		if err := d.own(ctx, tx, next.RunID); err != nil {
			return err
		}
		subs := make([]any, 0, len(batch))
		for _, f := range batch {
			if validSubject(f.u.ID) == nil {
				subs = append(subs, f.u.ID)
			}
		}
		rows, err := d.lockSubs(ctx, tx, subs)
		if err != nil {
			return err
		}
		w := &batchWriter{d: d, tx: tx, run: mark}
		defer w.close()
		now := d.stamp()
		for _, f := range batch {
			if err := validSubject(f.u.ID); err != nil {
				next.Counts.Errors++
				failures = append(failures, SyncFailure{Subject: f.u.ID, Err: fmt.Errorf("Keycloak user %q: %v", f.u.Username, err)})
				continue
			}
			cur := rows[f.u.ID]
			if cur != nil && cur.syncRun == mark {
				continue // seen before in this pass (paging shifted)
			}
			again := cur != nil && next.seenInRun(cur.syncRun) // by an earlier pass
			u, oc, err := w.apply(ctx, cur, &f.u, f.at, now)
			if err != nil {
				return err
			}
			rows[f.u.ID] = u
			tally(&next.Counts, oc, again)
			if oc == outDeactivated {
				deactivated = append(deactivated, u)
			}
		}
		pending := len(w.created)
		n, err := w.insertCreated(ctx)
		if err != nil {
			return err
		}
		next.Counts.Created += n
		next.Counts.Unchanged += pending - n
		if err := w.markSeen(ctx, now); err != nil {
			return err
		}
		return d.advance(ctx, tx, &next)
	})
	if err != nil {
		return err
	}
	s.cp = next
	s.committed(deactivated, failures)
	return nil
}

// tally counts a user the run processed; again: an earlier pass of the
// run (before an interruption) processed it already, and counted it.
// Created rows are counted once inserted.
func tally(c *SyncCounts, oc outcome, again bool) {
	switch {
	case again && oc == outUnchanged:
	case again:
		count(c, oc)
	default:
		c.Seen++
		if oc != outCreated {
			count(c, oc)
		}
	}
}

func count(c *SyncCounts, oc outcome) {
	switch oc {
	case outCreated:
		c.Created++
	case outUpdated:
		c.Updated++
	case outReactivated:
		c.Reactivated++
	case outDeactivated:
		c.Deactivated++
	default:
		c.Unchanged++
	}
}

// committed reports what a committed batch did.
func (s *syncer) committed(deactivated []*User, failures []SyncFailure) {
	for _, u := range deactivated {
		if len(s.rep.DeactivatedUsers) < maxReportedDeactivations {
			s.rep.DeactivatedUsers = append(s.rep.DeactivatedUsers, u)
		}
		if s.opts.OnDeactivate != nil {
			s.opts.OnDeactivate(u)
		}
	}
	for _, f := range failures {
		s.d.log.Warn("directory: sync: user not processed", "sub", f.Subject, "error", f.Err)
		if len(s.rep.Failures) < maxReportedFailures {
			s.rep.Failures = append(s.rep.Failures, f)
		}
	}
}

// lockSubs reads (and on PostgreSQL locks) the rows of subs.
func (d *Directory) lockSubs(ctx context.Context, tx *sql.Tx, subs []any) (map[string]*User, error) {
	out := make(map[string]*User, len(subs))
	if len(subs) == 0 {
		return out, nil
	}
	q := d.q.rebind(`SELECT ` + userCols + ` FROM ` + d.q.users + ` WHERE sub IN (` + placeholders(len(subs)) + `) ORDER BY id` + d.q.forUpdate)
	rows, err := tx.QueryContext(ctx, q, subs...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out[u.Subject] = u
	}
	return out, rows.Err()
}

// batchWriter writes the rows of one sync transaction with prepared
// statements, and marks unchanged rows seen in bulk.
type batchWriter struct {
	d        *Directory
	tx       *sql.Tx
	run      string
	update   *sql.Stmt
	created  []*User // rows to insert
	seen     []any   // ids of rows only to be marked seen
	seenSubs []any   // subs inserted concurrently by another writer
}

// insertChunk bounds the rows of one multi-row INSERT (17 parameters
// each). modernc.org/sqlite binds the parameters of a statement in time
// quadratic in their number, so SQLite gets small chunks; PostgreSQL saves
// a round trip per row.
func (d *Directory) insertChunk() int {
	if d.pg {
		return 500
	}
	return 32
}

func (w *batchWriter) close() {
	if w.update != nil {
		_ = w.update.Close()
	}
}

// apply compares a row with Keycloak's user and writes what changed.
func (w *batchWriter) apply(ctx context.Context, cur *User, ku *admin.User, fetchedAt, now time.Time) (*User, outcome, error) {
	next, oc := applyKeycloak(cur, ku, fetchedAt, now)
	next.syncRun = w.run
	switch oc {
	case outUnchanged, outSkipped:
		w.seen = append(w.seen, cur.ID)
		if oc == outSkipped {
			next = cur.clone()
			next.syncRun = w.run
		}
		return next, outUnchanged, nil
	case outCreated:
		// Inserted together at the end of the batch (insertCreated).
		w.created = append(w.created, next)
		return next, oc, nil
	}
	if w.update == nil {
		st, err := w.tx.PrepareContext(ctx, w.d.q.update)
		if err != nil {
			return nil, oc, err
		}
		w.update = st
	}
	if _, err := w.d.writeUser(ctx, w.tx, w.update, next); err != nil {
		return nil, oc, err
	}
	return next, oc, nil
}

// insertCreated inserts the new rows of the batch with multi-row INSERTs
// and returns how many were inserted. A sub a concurrent writer (a login)
// inserted meanwhile is not overwritten: it is marked seen instead.
func (w *batchWriter) insertCreated(ctx context.Context) (int, error) {
	n := 0
	for len(w.created) > 0 {
		chunk := w.created[:min(len(w.created), w.d.insertChunk())]
		w.created = w.created[len(chunk):]
		args := make([]any, 0, len(chunk)*userInsertCols)
		byID := make(map[string]*User, len(chunk))
		var b strings.Builder
		b.WriteString(w.d.q.insertHead)
		for i, u := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + placeholders(userInsertCols) + ")")
			a, err := w.d.insertArgs(u)
			if err != nil {
				return n, err
			}
			args = append(args, a...)
			byID[u.Subject] = u
		}
		b.WriteString(` ON CONFLICT (sub) DO NOTHING RETURNING id, sub`)
		rows, err := w.tx.QueryContext(ctx, w.d.q.rebind(b.String()), args...)
		if err != nil {
			return n, err
		}
		for rows.Next() {
			var id int64
			var sub string
			if err := rows.Scan(&id, &sub); err != nil {
				rows.Close()
				return n, err
			}
			if u := byID[sub]; u != nil {
				u.ID = id
				delete(byID, sub)
				n++
			}
		}
		if err := rows.Close(); err != nil {
			return n, err
		}
		if err := rows.Err(); err != nil {
			return n, err
		}
		for sub := range byID {
			w.seenSubs = append(w.seenSubs, sub)
		}
	}
	return n, nil
}

// markSeen stamps the rows that needed no other write.
func (w *batchWriter) markSeen(ctx context.Context, now time.Time) error {
	for _, set := range []struct {
		col  string
		vals []any
	}{{"id", w.seen}, {"sub", w.seenSubs}} {
		if len(set.vals) == 0 {
			continue
		}
		args := append([]any{w.run, w.d.timeArg(now)}, set.vals...)
		q := w.d.q.rebind(`UPDATE ` + w.d.q.users + ` SET sync_run = ?, synced_at = ? WHERE ` + set.col + ` IN (` + placeholders(len(set.vals)) + `)`)
		if _, err := w.tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// lookup is the answer of GetUser for one unseen row.
type lookup struct {
	row *User
	ku  *admin.User
	at  time.Time
	err error
}

// verify checks the active rows this run did not see, a chunk at a time.
func (s *syncer) verify(ctx context.Context) error {
	d := s.d
	mark := s.cp.mark()
	for {
		cands, err := d.candidates(ctx, mark, s.cp.AfterID, s.opts.BatchSize)
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			break
		}
		looks := s.lookUp(ctx, cands)
		if err := ctx.Err(); err != nil {
			return err
		}
		next := s.cp
		next.AfterID = cands[len(cands)-1].ID
		var deactivated []*User
		var failures []SyncFailure
		err = d.inTx(ctx, func(tx *sql.Tx) error {
			next.Counts = s.cp.Counts
			deactivated, failures = deactivated[:0], failures[:0]
			if err := d.own(ctx, tx, next.RunID); err != nil {
				return err
			}
			w := &batchWriter{d: d, tx: tx, run: mark}
			defer w.close()
			now := d.stamp()
			for _, l := range looks {
				if l.err != nil && !errors.Is(l.err, admin.ErrNotFound) {
					next.Counts.Errors++
					failures = append(failures, SyncFailure{Subject: l.row.Subject, Err: l.err})
					continue
				}
				cur, err := d.lockedByID(ctx, tx, l.row.ID)
				if err != nil {
					return err
				}
				if cur == nil || cur.syncRun == mark {
					continue
				}
				if l.err != nil { // Keycloak has no such user: ids are never reused
					if !cur.Active() {
						continue
					}
					u := cur.clone()
					u.Enabled = false
					u.DeactivatedAt, u.Reason, u.Updated, u.SyncedAt, u.syncRun = now, ReasonNotInKeycloak, now, now, mark
					if _, err := d.writeUser(ctx, tx, nil, u); err != nil {
						return err
					}
					next.Counts.Deactivated++
					deactivated = append(deactivated, u)
					continue
				}
				again := next.seenInRun(cur.syncRun)
				u, oc, err := w.apply(ctx, cur, l.ku, l.at, now)
				if err != nil {
					return err
				}
				tally(&next.Counts, oc, again)
				if oc == outDeactivated {
					deactivated = append(deactivated, u)
				}
			}
			if err := w.markSeen(ctx, now); err != nil {
				return err
			}
			return d.advance(ctx, tx, &next)
		})
		if err != nil {
			return err
		}
		s.cp = next
		s.committed(deactivated, failures)
		s.progress(PhaseVerify)
	}
	next := s.cp
	next.Phase = PhaseDone
	if err := d.inTx(ctx, func(tx *sql.Tx) error { return d.advance(ctx, tx, &next) }); err != nil {
		return err
	}
	s.cp = next
	return nil
}

// lookUp asks Keycloak for each candidate, a few at a time.
func (s *syncer) lookUp(ctx context.Context, cands []*User) []lookup {
	out := make([]lookup, len(cands))
	sem := make(chan struct{}, verifyWorkers)
	var wg sync.WaitGroup
	for i, c := range cands {
		out[i].row = c
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			out[i].err = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i].at = s.d.stamp()
			out[i].ku, out[i].err = s.d.admin.GetUser(ctx, c.Subject)
		}()
	}
	wg.Wait()
	return out
}

// candidates are active rows after afterID that run has not seen.
func (d *Directory) candidates(ctx context.Context, run string, afterID int64, limit int) ([]*User, error) {
	rows, err := d.r.QueryContext(ctx, d.q.candidates, run, afterID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
