package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

func TestMovePayload(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		channel, payload string
		want             string
		ok               bool
	}{
		{"+switch-master", "cloakroom 10.0.0.1 6379 10.0.0.2 6380", "cloakroom 10.0.0.1 6379 10.0.0.2 6380", true},
		{"+promoted-slave", "slave 10.0.0.2:6380 10.0.0.2 6380 @ cloakroom 10.0.0.1 6379", "cloakroom 10.0.0.1 6379 10.0.0.2 6380", true},
		{"+promoted-slave", "slave [::1]:6380 ::1 6380 @ cloakroom ::1 6379", "cloakroom ::1 6379 ::1 6380", true},
		{"+switch-master", "cloakroom 10.0.0.1 6379", "", false},
		{"+promoted-slave", "master cloakroom 10.0.0.1 6379", "", false},
		{"+promoted-slave", "slave 10.0.0.2:6380 10.0.0.2 6380 # cloakroom 10.0.0.1 6379", "", false},
		{"+sdown", "cloakroom 10.0.0.1 6379 10.0.0.2 6380", "", false},
		{"+switch-master", "", "", false},
	} {
		got, ok := movePayload(tt.channel, tt.payload)
		if got != tt.want || ok != tt.ok {
			t.Errorf("movePayload(%q, %q) = %q, %v; want %q, %v", tt.channel, tt.payload, got, ok, tt.want, tt.ok)
		}
	}
}

// listener accepts connections on loopback and reports each on a channel.
func listener(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return l.Addr().String(), ch
}

// accepted waits for the next connection a listener accepted.
func accepted(t *testing.T, ch <-chan net.Conn, what string) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no connection arrived", what)
		return nil
	}
}

func TestRoutedDialerFollowsMoves(t *testing.T) {
	t.Parallel()
	oldMaster, oldCh := listener(t)
	newMaster, newCh := listener(t)
	other, otherCh := listener(t)
	w := &sentinelWatch{}
	dial := w.routedDialer(0)
	ctx := context.Background()

	// dialTo dials addr and checks that the connection reached want,
	// whose listener reports it on ch; it returns both ends.
	dialTo := func(addr, want string, ch <-chan net.Conn, what string) (c, peer net.Conn) {
		t.Helper()
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		peer = accepted(t, ch, what)
		if got := c.RemoteAddr().String(); got != want {
			t.Errorf("%s reached %s, want %s", what, got, want)
		}
		return c, peer
	}

	before, peer := dialTo(oldMaster, oldMaster, oldCh, "dial before the move")
	if _, ok := before.(syscall.Conn); !ok {
		t.Error("a TCP connection does not expose its socket: go-redis's pool could not check its health")
	}
	if _, err := before.Write([]byte("x")); err != nil {
		t.Fatalf("write before the move: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(peer, buf); err != nil {
		t.Fatal(err)
	}

	// go-redis dials its Sentinels through the same Dialer.
	sentinel, _ := dialTo(other, other, otherCh, "dial of a Sentinel")

	w.moved(oldMaster, newMaster)
	if _, err := sentinel.Write([]byte("s")); err != nil {
		t.Errorf("write to a Sentinel after the move: %v (a move ends only connections to the old master)", err)
	}
	if _, err := before.Write([]byte("y")); !errors.Is(err, io.EOF) {
		t.Errorf("write on a connection to the old master after the move: %v, want io.EOF (go-redis retries it elsewhere)", err)
	}
	if _, err := before.Read(buf); !errors.Is(err, io.EOF) {
		t.Errorf("read on a connection to the old master after the move: %v, want io.EOF", err)
	}

	// go-redis's Sentinel still names the old master: the dial goes to
	// the new one.
	after, _ := dialTo(oldMaster, newMaster, newCh, "dial of the old master after the move")
	if _, err := after.Write([]byte("z")); err != nil {
		t.Errorf("write on the rerouted connection: %v", err)
	}

	// Any other address is go-redis's own, newer knowledge: kept.
	third, _ := dialTo(other, other, otherCh, "dial of another server")
	if _, err := third.Write([]byte("z")); err != nil {
		t.Errorf("write to a server the move did not name: %v", err)
	}
	// A second move ends the connections to the master it moves from.
	w.moved(newMaster, other)
	if _, err := after.Write([]byte("z")); !errors.Is(err, io.EOF) {
		t.Errorf("write to the previous master after a second move: %v, want io.EOF", err)
	}
	if _, err := third.Write([]byte("z")); err != nil {
		t.Errorf("write to the current master after a second move: %v", err)
	}

	// The route lasts routeWindow: later, go-redis's Sentinel is trusted.
	w.mu.Lock()
	w.route.at = time.Now().Add(-routeWindow - time.Second)
	w.mu.Unlock()
	late, _ := dialTo(newMaster, newMaster, newCh, "dial after the route expired")

	for _, c := range []net.Conn{before, after, third, late, sentinel} {
		c.Close()
	}
	w.mu.Lock()
	n := len(w.route.conns)
	w.mu.Unlock()
	if n != 0 {
		t.Errorf("%d closed connections still tracked", n)
	}
}

// With TLS (rediss+sentinel://) the dialer completes the handshake with the
// configured roots, also with a connection moved to the new master, whose
// name the certificate must carry.
func TestRoutedDialerTLS(t *testing.T) {
	t.Parallel()
	oldMaster, _ := listener(t)
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	newMaster := srv.Listener.Addr().String()
	w := &sentinelWatch{tls: srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}
	w.moved(oldMaster, newMaster)
	c, err := w.routedDialer(time.Second)(context.Background(), "tcp", oldMaster)
	if err != nil {
		t.Fatalf("TLS dial of the moved master: %v", err)
	}
	defer c.Close()
	tc, ok := c.(*routedConn)
	if !ok {
		t.Fatalf("a TLS connection is a %T, want a *routedConn (its socket is not the stream go-redis reads)", c)
	}
	if cs := tc.Conn.(*tls.Conn).ConnectionState(); !cs.HandshakeComplete {
		t.Error("TLS handshake not complete")
	}

	// A certificate that does not name the server is refused.
	w2 := &sentinelWatch{tls: &tls.Config{RootCAs: w.tls.RootCAs, ServerName: "redis.invalid"}}
	if c, err := w2.routedDialer(time.Second)(context.Background(), "tcp", newMaster); err == nil {
		c.Close()
		t.Error("a certificate for another name was accepted")
	}
}
