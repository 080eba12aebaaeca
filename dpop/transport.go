package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// Transport is an http.RoundTripper that adds a DPoP proof signed with Key
// to every request. A request with "Authorization: DPoP <token>" gets a
// proof with that token's ath; any other request (a token request) gets
// one without. A DPoP-Nonce a server sends is remembered per origin and
// put into the next proofs to that origin; an answer asking for a nonce
// (use_dpop_nonce: 400 from a token endpoint, 401 from an API) is retried
// once with it when the request body can be sent again.
//
// Transport never sets Authorization itself: x/oauth2's client (or the
// caller) does, with the token type "DPoP" of the token response.
type Transport struct {
	Key  *Key
	Base http.RoundTripper // nil: http.DefaultTransport

	mu     sync.Mutex
	nonces map[string]string // scheme://host → last nonce
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Key == nil {
		return nil, errors.New("dpop: Transport has no Key")
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	resp, err := t.send(base, req, origin, t.nonce(origin))
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get(NonceHeader)
	if fresh == "" || !asksForNonce(resp) {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.send(base, retry, origin, fresh)
}

func (t *Transport) nonce(origin string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nonces[origin]
}

func (t *Transport) send(base http.RoundTripper, req *http.Request, origin, nonce string) (*http.Response, error) {
	proof, err := t.Key.Sign(Proof{
		Method: req.Method, URL: req.URL.String(), Nonce: nonce,
		AccessToken: tokenOf(req.Header.Get("Authorization")),
	})
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set(HeaderName, proof)
	resp, err := base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	if n := resp.Header.Get(NonceHeader); n != "" {
		t.mu.Lock()
		if t.nonces == nil {
			t.nonces = map[string]string{}
		}
		t.nonces[origin] = n
		t.mu.Unlock()
	}
	return resp, nil
}

// asksForNonce reports whether resp is a use_dpop_nonce error: a 401 with
// a DPoP challenge naming it (RFC 9449 9), or a 400 whose JSON error is it
// (RFC 9449 8). The body it reads is put back.
func asksForNonce(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, v := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(v, "use_dpop_nonce") {
				return true
			}
		}
	case http.StatusBadRequest:
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
			return false
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return false
		}
		var e struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce"
	}
	return false
}
