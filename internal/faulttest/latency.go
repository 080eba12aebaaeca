package faulttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// LatencyProxy forwards TCP connections from its own address to a target
// and, while SetDelay holds a positive delay, makes the server look slow:
// data the client sends after a pause (a new request on a kept-alive
// connection, or a new connection's first bytes) waits that long before it
// is passed on. The target is never disturbed otherwise; when it is down,
// a connection through the proxy is accepted and closed at once.
type LatencyProxy struct {
	target string
	addr   string
	ln     net.Listener
	delay  atomic.Int64 // nanoseconds

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by Close: ends the delays under way
	wg     sync.WaitGroup
}

// latencyIdle is the pause after which client data counts as a new
// request and is delayed again: the pieces of one request are sent
// back to back, so they are delayed once, not once per piece.
const latencyIdle = 20 * time.Millisecond

// NewLatencyProxy listens on listen (host:port; "127.0.0.1:0" picks a free
// port), forwards to target and stops when the test ends.
func NewLatencyProxy(t testing.TB, listen, target string) *LatencyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("faulttest: latency proxy: listen on %s: %v", listen, err)
	}
	p := &LatencyProxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address (host:port), to give the client under test.
func (p *LatencyProxy) Addr() string { return p.addr }

// SetDelay sets the delay added to each request from now on; 0 removes it.
// Requests already waiting keep the delay they started with.
func (p *LatencyProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Delay returns the current delay.
func (p *LatencyProxy) Delay() time.Duration { return time.Duration(p.delay.Load()) }

// Close stops the proxy and cuts every connection through it.
func (p *LatencyProxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		_ = p.ln.Close()
		for c := range p.conns {
			_ = c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *LatencyProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Accept errors other than a close are transient (EMFILE):
				// back off briefly rather than spin.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *LatencyProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *LatencyProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *LatencyProxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		p.delayed(server, client)
		_ = server.Close()
		_ = client.Close()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, server)
		_ = server.Close()
		_ = client.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
	p.untrack(client, server)
}

// delayed copies src to dst, holding data that follows a pause for the
// current delay.
func (p *LatencyProxy) delayed(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	var last time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			if d := p.Delay(); d > 0 && now.Sub(last) > latencyIdle {
				// A delay of an hour stands for a silent partition; Close
				// must not wait for it.
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-p.done:
					t.Stop()
					return
				}
			}
			last = time.Now()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// String describes the proxy for test logs.
func (p *LatencyProxy) String() string {
	return fmt.Sprintf("latency proxy %s -> %s (delay %s)", p.addr, p.target, p.Delay())
}
