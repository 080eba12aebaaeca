package bodylimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve starts a server whose handler reads the body under l and reports
// what it got.
func serve(t *testing.T, l Limits) (addr string, results chan string) {
	t.Helper()
	results = make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tooSlow := Wrap(w, r, l)
		b, err := io.ReadAll(r.Body)
		if errors.As(err, new(*TimeoutError)) != tooSlow() {
			results <- fmt.Sprintf("tooSlow() = %v after %v", tooSlow(), err)
			return
		}
		var te *TimeoutError
		var me *http.MaxBytesError
		switch {
		case errors.As(err, &te):
			results <- "timeout"
			w.WriteHeader(http.StatusRequestTimeout)
		case errors.As(err, &me):
			results <- "too large"
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case err != nil:
			results <- "error " + err.Error()
		default:
			// A slow answer after the body must not be cut by the deadline.
			time.Sleep(300 * time.Millisecond)
			if r.Context().Err() != nil {
				results <- "context canceled after the body"
				return
			}
			results <- fmt.Sprintf("read %d", len(b))
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), results
}

// send writes a request whose body of n bytes is sent in chunks with a
// pause between them.
func send(t *testing.T, addr string, n, chunk int, pause time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n)
	go func() {
		for sent := 0; sent < n; sent += chunk {
			if _, err := conn.Write([]byte(strings.Repeat("a", min(chunk, n-sent)))); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}()
}

func TestLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		l        Limits
		n, chunk int
		pause    time.Duration
		want     string
	}{
		{"fast body", Limits{Timeout: 200 * time.Millisecond}, 1000, 1000, 0, "read 1000"},
		{"slow body without a rate", Limits{Timeout: 200 * time.Millisecond}, 10, 1, 50 * time.Millisecond, "timeout"},
		{"slow body that keeps the rate", Limits{Timeout: 200 * time.Millisecond, MinRate: 100}, 20, 10, 80 * time.Millisecond, "read 20"},
		{"body below the rate", Limits{Timeout: 200 * time.Millisecond, MinRate: 1000}, 100, 1, 20 * time.Millisecond, "timeout"},
		{"stalled body", Limits{Timeout: 200 * time.Millisecond, MinRate: 1 << 20}, 100, 50, time.Hour, "timeout"},
		{"too large", Limits{MaxBytes: 10}, 100, 100, 0, "too large"},
		{"size and time", Limits{Timeout: time.Second, MaxBytes: 100}, 100, 100, 0, "read 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, results := serve(t, tt.l)
			send(t, addr, tt.n, tt.chunk, tt.pause)
			select {
			case got := <-results:
				if got != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the handler never finished reading the body")
			}
		})
	}
}

func TestNoBody(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	Wrap(w, r, Limits{Timeout: time.Second, MaxBytes: 1})
	if r.Body != http.NoBody {
		t.Fatalf("a request without a body got a body %T", r.Body)
	}
}
