package gateway

import (
	"context"
	"net"
)

// SetUpstreamDialer replaces how g dials its upstreams (for
// BenchmarkHopCPU's in-memory upstream).
func SetUpstreamDialer(g *Gateway, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	g.transport.DialContext = dial
}
