// Package faulttest helps tests break the servers cloakroom depends on. Its
// Proxy sits between a client under test and a real server (Redis,
// PostgreSQL) on loopback and can refuse new connections and cut existing
// ones, the way a crashed server or a network partition does, without
// disturbing the real server that other tests share.
//
// The fault tests themselves live in the packages they concern:
// gateway/faults_test.go (Keycloak, Redis, PostgreSQL and SQLite faults and
// the unknown-kid burst through the gateway), bearer/burst_test.go,
// session/sqlitestore/faults_test.go (read-only and full SQLite under the
// login middleware), and this package's login_test.go (Redis and PostgreSQL
// faults under the login middleware).
package faulttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from its own loopback address to a target
// address. Down makes it behave like a dead server; Up brings it back on the
// same address, so clients reconnect by themselves.
type Proxy struct {
	target string
	addr   string
	logf   func(format string, args ...any)

	mu       sync.Mutex
	ln       net.Listener
	down     bool
	closed   bool
	conns    map[net.Conn]struct{}
	accepted int
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on 127.0.0.1 and stops it
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faulttest: listen: %v", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), logf: t.Logf, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address (host:port), to give the client under test.
func (p *Proxy) Addr() string { return p.addr }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Accepted returns how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Conns returns how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Down stops listening, so new connections are refused, and cuts every open
// connection with a reset: the client sees the server vanish.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down || p.closed {
		return
	}
	p.down = true
	_ = p.ln.Close()
	p.cutLocked()
}

// Cut resets every open connection but keeps accepting new ones (a server
// restart, a load balancer dropping idle connections).
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

// Up listens again on the same address after Down. It retries for a few
// seconds in case the port is briefly held by the closed listener.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down || p.closed {
		return nil
	}
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.down = false
			p.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("faulttest: listen again on %s: %w", p.addr, err)
}

// Close stops the proxy for good.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if !p.down {
			_ = p.ln.Close()
		}
		p.cutLocked()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not an orderly FIN
		}
		_ = c.Close()
	}
	clear(p.conns)
}

// serve accepts on ln until it is closed; p.mu must be held.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					p.logf("faulttest: accept: %v", err)
				}
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

func (p *Proxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.down || p.closed {
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.accepted++
	p.conns[client] = struct{}{}
	p.conns[server] = struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends both: half-open connections would hide
		// a cut from the client.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}
