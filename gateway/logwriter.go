package gateway

import (
	"io"
	"sync"
	"time"
)

// maxPendingLog bounds what batchWriter holds before writers wait: a log
// destination that stops reading slows requests down rather than growing
// memory without bound (as a synchronous writer would, minus the batching).
const maxPendingLog = 1 << 20

// batchWriter takes log lines off the request path: Write appends to a
// buffer and a background goroutine writes the buffer out, so that a
// request pays for formatting its line but not for the write(2) to
// stderr, and under load many lines go out in one system call. The
// goroutine exists only while there is something to write. Lines are
// written whole and in order. Flush waits until everything written so far
// is out; a process killed with SIGKILL loses at most the lines of the
// write in flight and the lines of the last collectLog.
type batchWriter struct {
	w io.Writer

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	spare    []byte
	flushing bool
}

func newBatchWriter(w io.Writer) *batchWriter {
	b := &batchWriter{w: w}
	b.cond.L = &b.mu
	return b
}

// Write implements io.Writer. It never fails: an error of the destination
// cannot be reported to a request that has been answered already (and
// slog ignores it too).
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) >= maxPendingLog {
		b.cond.Wait()
	}
	b.buf = append(b.buf, p...)
	if !b.flushing {
		b.flushing = true
		go b.drain()
	}
	b.mu.Unlock()
	return len(p), nil
}

// collectLog is how long the writing goroutine lets lines gather before a
// write: under load one write(2) then carries many lines, and the goroutine
// is started once per batch rather than once per line or two.
const collectLog = 2 * time.Millisecond

func (b *batchWriter) drain() {
	time.Sleep(collectLog)
	b.mu.Lock()
	for len(b.buf) > 0 {
		out := b.buf
		b.buf = b.spare[:0]
		b.cond.Broadcast() // room again for writers held back
		b.mu.Unlock()
		_, _ = b.w.Write(out)
		b.mu.Lock()
		if cap(out) <= 64<<10 {
			b.spare = out[:0]
		} else {
			b.spare = nil // after a burst, do not keep a large buffer
		}
	}
	b.flushing = false
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Flush waits until every line written before it has been written out.
func (b *batchWriter) Flush() {
	b.mu.Lock()
	for b.flushing {
		b.cond.Wait()
	}
	b.mu.Unlock()
}
