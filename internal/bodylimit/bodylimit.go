// Package bodylimit bounds how long a client may take to send a request
// body, and how large it may be, so that a slow or endless upload cannot
// hold a connection and a goroutine for ever.
//
// The server's ReadHeaderTimeout covers only the header; after it, Go's
// server waits for body bytes without limit. Limit sets the connection's
// read deadline before every read of the body: the client has Timeout plus
// one second for every MinRate bytes it has sent so far. The deadline is
// cleared as soon as the body ends, so a long response (a stream, a slow
// upstream) is never cut by it.
package bodylimit

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Limits for one request body. A zero field is no limit of that kind.
type Limits struct {
	// Timeout is the time the whole body may take, beyond what MinRate earns.
	Timeout time.Duration
	// MinRate is in bytes per second: each MinRate bytes received extend
	// the deadline by one second.
	MinRate int64
	// MaxBytes bounds the body's size (http.MaxBytesReader).
	MaxBytes int64
}

// Wrap applies l to r's body; call it before anything reads the body. w
// must lead (through Unwrap) to the server's ResponseWriter for deadlines to
// apply; where the connection does not support them, only MaxBytes does.
//
// tooSlow reports whether the client was cut off for sending the body too
// slowly. A proxy needs it: the failed read also cancels the request's
// context, so the error its transport returns may be context.Canceled
// rather than a *TimeoutError.
func Wrap(w http.ResponseWriter, r *http.Request, l Limits) (tooSlow func() bool) {
	never := func() bool { return false }
	if r.Body == nil || r.Body == http.NoBody {
		return never
	}
	if l.MaxBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, l.MaxBytes)
	}
	if l.Timeout <= 0 {
		return never
	}
	rc := http.NewResponseController(w)
	b := &body{rc: rc, ReadCloser: r.Body, l: l, start: time.Now()}
	if err := rc.SetReadDeadline(b.deadline()); errors.Is(err, http.ErrNotSupported) {
		return never
	}
	r.Body = b
	return b.slow.Load
}

type body struct {
	io.ReadCloser
	rc    *http.ResponseController
	l     Limits
	start time.Time
	n     int64
	done  bool
	// slow is read by the handler's goroutine while a transport's
	// goroutine reads the body.
	slow atomic.Bool
}

func (b *body) deadline() time.Time {
	d := b.start.Add(b.l.Timeout)
	if b.l.MinRate > 0 {
		d = d.Add(time.Duration(float64(b.n) / float64(b.l.MinRate) * float64(time.Second)))
	}
	return d
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil {
		b.finish()
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			b.slow.Store(true)
			return n, &TimeoutError{Received: b.n, Elapsed: time.Since(b.start)}
		}
		return n, err
	}
	_ = b.rc.SetReadDeadline(b.deadline())
	return n, nil
}

func (b *body) Close() error {
	b.finish()
	return b.ReadCloser.Close()
}

// finish clears the deadline: after the body, reads on the connection are
// the server's business (it watches for the client going away).
func (b *body) finish() {
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// TimeoutError is returned by the body's Read when the client sent it too
// slowly.
type TimeoutError struct {
	Received int64
	Elapsed  time.Duration
}

func (e *TimeoutError) Error() string {
	return "request body too slow: " + strconv.FormatInt(e.Received, 10) + " bytes in " + e.Elapsed.Round(time.Millisecond).String()
}

// Timeout reports true, like net.Error.
func (e *TimeoutError) Timeout() bool { return true }
