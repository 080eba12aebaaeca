package gateway

import (
	"net/http"
	"strings"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/claimsmemo"
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

// identityMemoEntry is what identityHeadersFor keeps on claims: the
// headers, and the second claims of the pair they were computed from.
type identityMemoEntry struct {
	second *cloakroom.Claims // the ID claims beside access claims; nil for a bearer token
	h      identityHeaders
}

// identityHeadersFor returns the identity headers for a pair of claims (a
// session's access- and ID-token claims, or a bearer token's), computing
// them on a miss; nil when the claims name nobody.
//
// It remembers them on the first claims of the pair, through
// internal/claimsmemo. Claims are immutable, and the verifier's cache and
// login's claims memo hand out the same *Claims for the same token, so the
// headers live as long as the claims they come from and no longer: a
// refreshed session or another token has other claims, and claims let go
// of by their caches take their headers with them. There is no table to
// bound and no weak pointer (each of which the collector processes on
// every cycle). An entry answers only for the second claims it was
// computed with; concurrent misses may replace each other's entries, which
// costs a computation again, never a wrong answer. The values are copies,
// not substrings of a payload.
func identityHeadersFor(access, id *cloakroom.Claims) *identityHeaders {
	first, second := access, id
	if first == nil {
		// An opaque access token (generic profile): the ID token speaks.
		first, second = id, nil
	}
	if first == nil {
		return nil
	}
	if e, _ := claimsmemo.Load(first).(*identityMemoEntry); e != nil && e.second == second {
		return &e.h
	}
	h, ok := computeIdentityHeaders(access, id)
	if !ok {
		return nil
	}
	e := &identityMemoEntry{second: second, h: h.copy()}
	claimsmemo.Store(first, e)
	return &e.h
}

// copy returns h with its values copied into one new string, so that they
// keep no payload alive and make one object, not five, for the collector.
func (h identityHeaders) copy() identityHeaders {
	var b strings.Builder
	b.Grow(len(h.sub) + len(h.email) + len(h.username) + len(h.roles) + len(h.groups))
	for _, v := range [...]string{h.sub, h.email, h.username, h.roles, h.groups} {
		b.WriteString(v)
	}
	all, i := b.String(), 0
	next := func(v string) string {
		i += len(v)
		return all[i-len(v) : i]
	}
	return identityHeaders{next(h.sub), next(h.email), next(h.username), next(h.roles), next(h.groups)}
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
		return identityHeadersFor(s.AccessClaims, s.IDClaims), s.AccessToken
	}
	if p, ok := bearer.FromContext(r.Context()); ok {
		return identityHeadersFor(p.Claims, nil), p.Token
	}
	return nil, ""
}
