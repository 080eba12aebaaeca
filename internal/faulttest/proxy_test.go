package faulttest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func TestProxy(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello\n" {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
	if p.Conns() != 1 || p.Accepted() != 1 {
		t.Fatalf("conns %d accepted %d", p.Conns(), p.Accepted())
	}

	// Down: the open connection is cut, new ones are refused.
	p.Down()
	if _, err := roundTrip(c, "again"); err == nil {
		t.Fatal("a connection survived Down")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}

	// Up: same address, works again.
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "back"); err != nil || got != "back\n" {
		t.Fatalf("after Up: %q %v", got, err)
	}

	// Cut: the open connection dies, a new one works.
	p.Cut()
	if _, err := roundTrip(c2, "cut"); err == nil {
		t.Fatal("a connection survived Cut")
	}
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, "new"); err != nil || got != "new\n" {
		t.Fatalf("after Cut: %q %v", got, err)
	}
}
