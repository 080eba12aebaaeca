package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// pollPage is how many log entries one read of a poll returns; a poll
// reads pages until one is not full.
const pollPage = 1000

// Subscribe implements session.Notifier. It reads the current end of the
// deletion log and returns once it has (so deletions committed after it
// returns are delivered; earlier ones are not), or an error if the file
// cannot be read. Then it reads the log every notify interval
// (WithNotifyInterval) and calls fn, one call at a time and once per poll,
// with the keys every Store on this file and table deleted since, until
// ctx ends or the Store is closed. SQLite has no way to push changes to
// another process, hence the polling: an idle poll is one indexed read.
//
// fn(nil) means deletions may have been missed: it is called once when a
// poll fails (the failure is logged), once more when a poll succeeds again
// (the entries written meanwhile are then delivered too), and when the log
// was pruned past this subscription because fn or the process stalled for
// longer than the retention (it then resumes at the end of the log).
func (s *Store) Subscribe(ctx context.Context, fn func(keys []string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	closed := errors.New("sqlitestore: subscribe: the store is closed")
	s.mu.Lock()
	done := s.closed
	s.mu.Unlock()
	if done {
		return closed
	}
	var last int64
	if err := s.r.QueryRowContext(ctx, s.qHead, s.logName).Scan(&last); err != nil {
		return s.wrap("read the deletion log of", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closed
	}
	subCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel) // Close ends it too
	s.subs.Go(func() {
		defer stop()
		defer cancel()
		s.follow(subCtx, last, fn)
	})
	return nil
}

// follow polls the log after last until ctx ends.
func (s *Store) follow(ctx context.Context, last int64, fn func([]string)) {
	t := time.NewTicker(s.notifyEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keys, missed, err := s.poll(ctx, &last)
		if ctx.Err() != nil {
			return // cancelled, not failed: say nothing
		}
		switch {
		case err != nil:
			if !failing {
				failing = true
				s.log.Warn("sqlitestore: reading the deletion log failed; other processes' deletions may be missed until it works again", "error", err)
				fn(nil)
			}
			continue
		case failing:
			// Covers a prune past last during the outage as well.
			failing = false
			s.log.Info("sqlitestore: reading the deletion log works again", "file", s.path)
			fn(nil)
		case missed:
			s.log.Warn("sqlitestore: a subscriber fell behind the deletion log's retention; deletions may have been missed", "file", s.path, "retention", s.retention)
			fn(nil)
		}
		if len(keys) > 0 {
			fn(keys)
		}
	}
}

// poll reads the log entries after *last and returns their keys, and
// moves *last past them. missed reports that entries after *last are gone
// (pruned before they were read, or the log was reset): *last is then the
// end of the log and keys nil. On an error *last is unchanged, so the next
// poll reads the same entries again.
func (s *Store) poll(ctx context.Context, last *int64) (keys []string, missed bool, err error) {
	pos := *last
	for {
		n, end, gap, err := s.pollPage(ctx, pos, &keys)
		if err != nil {
			return nil, false, s.wrap("read the deletion log of", err)
		}
		if gap {
			*last = end
			return nil, true, nil
		}
		pos += int64(n) // the page was contiguous from pos
		if n < pollPage {
			if end != pos {
				// Entries up to end exist but none past pos were
				// found (pruned), or end is behind pos (the log was
				// reset, e.g. a restored backup).
				*last = end
				return nil, true, nil
			}
			*last = pos
			return keys, false, nil
		}
	}
}

// pollPage reads one page of entries after pos, appending their keys. It
// returns how many it read, the log's end (highest seq ever handed out)
// and whether the page is not contiguous from pos.
func (s *Store) pollPage(ctx context.Context, pos int64, keys *[]string) (n int, end int64, gap bool, err error) {
	rows, err := s.pollLog.QueryContext(ctx, pos, s.logName)
	if err != nil {
		return 0, 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var key sql.NullString
		if err := rows.Scan(&seq, &key); err != nil {
			return 0, 0, false, err
		}
		if !key.Valid {
			end = seq
			continue
		}
		n++
		if seq != pos+int64(n) {
			gap = true
		}
		*keys = append(*keys, key.String)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, false, err
	}
	return n, end, gap, rows.Close()
}
