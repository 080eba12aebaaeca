package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter records what it receives, one call at a time, slowly, like
// stderr piped to a busy collector.
type slowWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
	delay time.Duration
	block chan struct{} // when set, Write waits for it to close
}

func (s *slowWriter) Write(p []byte) (int, error) {
	if s.block != nil {
		<-s.block
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.buf.Write(p)
}

// TestBatchWriterKeepsEveryLineInOrder: concurrent writers' lines all come
// out whole, each writer's in its order, batched into fewer writes.
func TestBatchWriterKeepsEveryLineInOrder(t *testing.T) {
	t.Parallel()
	dst := &slowWriter{delay: 200 * time.Microsecond}
	bw := newBatchWriter(dst)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(bw, "w%d line %d\n", w, i)
			}
		}()
	}
	wg.Wait()
	bw.Flush()
	out := strings.Split(strings.TrimSuffix(dst.buf.String(), "\n"), "\n")
	if len(out) != writers*lines {
		t.Fatalf("%d lines, want %d", len(out), writers*lines)
	}
	next := make([]int, writers)
	for _, l := range out {
		var w, i int
		if _, err := fmt.Sscanf(l, "w%d line %d", &w, &i); err != nil || w >= writers || i != next[w] {
			t.Fatalf("line %q out of order or torn (want w%d line %d)", l, w, next[w])
		}
		next[w]++
	}
	if dst.calls >= writers*lines {
		t.Errorf("%d writes for %d lines: nothing was batched", dst.calls, writers*lines)
	}
	t.Logf("%d lines in %d writes", len(out), dst.calls)
}

// TestBatchWriterBounded: a destination that stops reading holds writers
// back once maxPendingLog is buffered, instead of growing without bound.
func TestBatchWriterBounded(t *testing.T) {
	t.Parallel()
	dst := &slowWriter{block: make(chan struct{})}
	bw := newBatchWriter(dst)
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 * maxPendingLog / len(line) {
			bw.Write(line)
		}
	}()
	select {
	case <-done:
		t.Fatal("3 MiB were accepted while the destination read nothing")
	case <-time.After(200 * time.Millisecond):
	}
	bw.mu.Lock()
	pending := len(bw.buf)
	bw.mu.Unlock()
	if pending > maxPendingLog+len(line) {
		t.Fatalf("%d bytes pending, bound %d", pending, maxPendingLog)
	}
	close(dst.block)
	<-done
	bw.Flush()
	if got := dst.buf.Len(); got != 3*maxPendingLog/len(line)*len(line) {
		t.Fatalf("%d bytes written", got)
	}
}
