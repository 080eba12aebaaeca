package gateway

import (
	"net/http"

	"github.com/cloakroom/cloakroom/bearer"
)

// DPoP on api and both routes (route setting dpop: off, accept or
// require; default accept): the route's Authenticator checks DPoP proofs
// against the public URL of the request as the gateway sees it (scheme
// and host from trusted forwarding headers, clientOf), and remembers the
// proofs' jti in the session store, so that a proof is good once across
// every instance sharing it (Redis, PostgreSQL, SQLite; memory for one
// instance). A store outage refuses the request with 503.

// dpopAuthenticator returns a, or a copy with the route's DPoP policy.
func (g *Gateway) dpopAuthenticator(rc *Route, a *bearer.Authenticator) *bearer.Authenticator {
	mode, err := bearer.ParseDPoPMode(rc.DPoP)
	if err != nil {
		mode = bearer.DPoPRequire // validated before; fail closed
	}
	b, err := a.With(bearer.WithDPoP(bearer.DPoPConfig{
		Mode:       mode,
		Replay:     bearer.ReplayCacheFromStore(g.store),
		RequestURL: publicRequestURL,
	}))
	if err != nil {
		// Only a bad static setting can fail, and none is passed.
		panic("gateway: DPoP settings: " + err.Error())
	}
	return b
}

// publicRequestURL is the URL the client used, as a DPoP proof's htu
// names it: the scheme and host worked out in ServeHTTP (trusted
// X-Forwarded-Proto/Host, else the connection's) and the canonical path.
func publicRequestURL(r *http.Request) string {
	if st := stateOf(r); st != nil && st.proto != "" && st.host != "" {
		return st.proto + "://" + st.host + r.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// withoutDPoPProof drops the DPoP proof header before the request goes on
// to the upstream: the gateway consumed it, and it is worth nothing there
// (single use, bound to the gateway's public URL).
func withoutDPoPProof(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The canonical spelling: Del("DPoP") would build it anew (an
		// allocation) on every bearer request.
		r.Header.Del("Dpop")
		next.ServeHTTP(w, r)
	})
}
