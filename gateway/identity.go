package gateway

import (
	"hash/maphash"
	"net/http"
	"strings"
	"sync/atomic"
	"weak"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/login"
)

// identityHeaders are the values of the identity headers for one caller:
// sub as the token has it, the others made valid header values, roles and
// groups joined.
type identityHeaders struct {
	sub, email, username, roles, groups string
}

// headerKeys are the configured identity header names in canonical form,
// so that setting them needs no canonicalization per request.
type headerKeys struct {
	user, email, username, roles, groups, accessToken string
}

func newHeaderKeys(n HeaderNames) headerKeys {
	c := http.CanonicalHeaderKey
	return headerKeys{c(n.User), c(n.Email), c(n.Username), c(n.Roles), c(n.Groups), c(n.AccessToken)}
}

// identitySets is the size of the identity memo: a two-way
// set-associative table, so a lookup is one hash and at most two atomic
// loads, and its memory is bounded (one entry of a few hundred bytes per
// way, at most ~16 MiB) whatever the number of sessions. With 10,000
// sessions about 2 % of them find their set held by two others and are
// computed again when they alternate (a quarter did with the direct-mapped
// table of 32,768 slots this replaced).
const identitySets = 1 << 15

// identityMemo remembers the identity headers computed from a pair of
// claims (a session's access- and ID-token claims, or a bearer token's).
// Claims are immutable and the verifier's cache and login's claims memo
// hand out the same *Claims for the same token, so the claims
// themselves are the key: a refreshed session or another token has other
// claims and finds its own entry. The key holds them weakly, so the memo
// keeps no claims alive that their caches have let go of (a weak pointer
// of claims since collected never equals one of new claims, even at the
// same address), and the values are copies, not substrings of a payload.
type identityMemo struct {
	seed maphash.Seed
	sets [identitySets][2]atomic.Pointer[identityMemoEntry]
}

type identityKey [2]weak.Pointer[cloakroom.Claims]

type identityMemoEntry struct {
	key identityKey
	h   identityHeaders
}

func newIdentityMemo() *identityMemo { return &identityMemo{seed: maphash.MakeSeed()} }

// headers returns the identity headers for the claims pair, computing and
// remembering them on a miss; nil when the claims name nobody.
func (m *identityMemo) headers(access, id *cloakroom.Claims) *identityHeaders {
	key := identityKey{weak.Make(access), weak.Make(id)}
	set := &m.sets[maphash.Comparable(m.seed, key)%identitySets]
	for i := range set {
		if e := set[i].Load(); e != nil && e.key == key {
			return &e.h
		}
	}
	h, ok := computeIdentityHeaders(access, id)
	if !ok {
		return nil
	}
	h = identityHeaders{strings.Clone(h.sub), strings.Clone(h.email), strings.Clone(h.username), strings.Clone(h.roles), strings.Clone(h.groups)}
	e := &identityMemoEntry{key: key, h: h}
	// The new entry takes a way that is free or whose claims are gone;
	// failing that the first way, whose entry moves to the second (the
	// older one leaves). Concurrent misses may undo each other's stores:
	// that costs a computation again, never a wrong answer, since an
	// entry answers only for its own key.
	switch first, second := set[0].Load(), set[1].Load(); {
	case first.free():
		set[0].Store(e)
	case second.free():
		set[1].Store(e)
	default:
		set[1].Store(first)
		set[0].Store(e)
	}
	return &e.h
}

// free reports whether a way may take a new entry: it holds none, or one
// whose claims have been collected, which can never be found again.
func (e *identityMemoEntry) free() bool {
	if e == nil {
		return true
	}
	for _, k := range e.key {
		if k != (weak.Pointer[cloakroom.Claims]{}) && k.Value() == nil {
			return true
		}
	}
	return false
}

// computeIdentityHeaders is the work the memo spares.
func computeIdentityHeaders(access, id *cloakroom.Claims) (identityHeaders, bool) {
	who := identityFromClaims(access, id, "")
	if who == nil {
		return identityHeaders{}, false
	}
	return identityHeaders{
		sub:      who.sub,
		email:    sanitizeHeaderValue(who.email),
		username: sanitizeHeaderValue(who.username),
		roles:    sanitizeHeaderValue(strings.Join(who.roles, ",")),
		groups:   sanitizeHeaderValue(strings.Join(who.groups, ",")),
	}, true
}

// callerHeaders returns the identity headers of the request's caller (a
// session or a bearer token) and its access token; nil if there is none.
func (g *Gateway) callerHeaders(r *http.Request) (*identityHeaders, string) {
	if s, ok := login.FromContext(r.Context()); ok {
		return g.identities.headers(s.AccessClaims, s.IDClaims), s.AccessToken
	}
	if p, ok := bearer.FromContext(r.Context()); ok {
		return g.identities.headers(p.Claims, nil), p.Token
	}
	return nil, ""
}
