package cloakroom

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Keycloak lightweight access tokens (Keycloak 24+, the client setting
// "Always use lightweight access token", attribute
// client.use.lightweight.access.token.enabled) carry only exp, iat, jti,
// iss, typ, azp, sid and scope, plus the claims of the protocol mappers
// whose "Add to lightweight access token" (lightweight.claim) is on:
// no sub for a user's token, no aud, no roles, no profile or email
// (observed on Keycloak 26.7.3). Token introspection answers the full
// claims. LightweightVerifier completes such tokens by introspection,
// so that role checks work on them unchanged.

// ErrInactive: the identity provider's introspection says the token is
// not active (session ended, user disabled, token revoked, or, Keycloak
// 26.7 and later, the introspecting client is not in the token's
// audience). Requests carrying it must be refused (401), not served
// anonymously.
var ErrInactive = errors.New("token not active")

// jtiTokenType returns the token type Keycloak 26.2+ encodes in an access
// token's jti ("onltro:…": session type, token type, grant, then ":"):
// "lt" lightweight, "rt" regular; "" when the jti has no such prefix.
func jtiTokenType(jti string) string {
	if len(jti) > 7 && jti[6] == ':' {
		return jti[2:4]
	}
	return ""
}

// IsLightweight reports whether c may be the claims of a Keycloak
// lightweight access token, which leaves the claims role checks need to
// token introspection. Keycloak 26.2 and later say so in the jti
// ("onltro:…" lightweight, "onrtro:…" regular), and that answer is
// final. For a jti without that prefix (older Keycloak, other
// providers) a token without sub, or without any roles claim (the roles
// claim, realm_access, resource_access), counts as lightweight: a full
// token of a user who has no roles then costs one introspection, never
// a wrong authorization.
func (c *Claims) IsLightweight() bool {
	switch jtiTokenType(c.ID()) {
	case "lt":
		return true
	case "rt":
		return false
	}
	if c.Subject() == "" {
		return true
	}
	for _, path := range []string{c.RolesClaim(), "realm_access", "resource_access"} {
		if _, ok := c.Lookup(path); ok {
			return false
		}
	}
	return true
}

// LightweightConfig configures Verifier.Lightweight.
type LightweightConfig struct {
	// Client is the confidential client that introspects tokens (RFC
	// 7662). Keycloak 26.7 answers active=false to a client that is not
	// in the token's audience: for a lightweight token without aud, the
	// audience its introspection mappers give (the client holds roles of
	// that client, or an Audience mapper with "Add to token
	// introspection" names it), unless the client's
	// allow.token.introspection.without.audience.check attribute is on.
	Client ClientCredentials

	// CacheTTL caps how long completed claims are kept (0: until the
	// token's exp). A revocation in Keycloak is seen after at most this
	// long.
	CacheTTL time.Duration

	// CacheEntries bounds the cache of completed claims (default 10,000
	// tokens, and 32 MiB); negative turns it off: every request with a
	// lightweight token asks Keycloak.
	CacheEntries int
}

// A LightweightVerifier verifies access tokens as its Verifier does, and
// completes Keycloak lightweight access tokens (Claims.IsLightweight)
// with the claims token introspection gives, so that sub, aud, roles
// and profile claims read as in a full token. A lightweight token may
// lack sub and aud: its signature, type, issuer and times are checked
// on the token, its audience (VerifierConfig.Audiences,
// AuthorizedParties) on the introspection answer, whose sub, iss, exp,
// iat, jti, azp, typ, sid and cnf must be the token's own. Completed
// claims are cached until the token's exp (bounded, see
// LightweightConfig); concurrent requests with one token share one
// introspection. It is safe for concurrent use.
//
// It fails closed: Keycloak unreachable or answering garbage is an error
// wrapping ErrUnavailable (a ProviderError), a token Keycloak says is not
// active wraps ErrInactive; never are a lightweight token's missing
// claims read as "no roles".
type LightweightVerifier struct {
	v     *Verifier
	cfg   LightweightConfig
	cache *tokenCache // nil: no cache

	mu       sync.Mutex
	inflight map[string]*lightweightCall
}

type lightweightCall struct {
	done   chan struct{}
	claims *Claims
	err    error
}

// inactiveClaims marks a cached "not active" answer.
var inactiveClaims = &Claims{}

// inactiveCacheSeconds bounds how long a "not active" answer is kept: it
// spares Keycloak a replayed revoked token, and a fixed audience setting
// is seen soon.
const inactiveCacheSeconds = 10

// Lightweight returns a LightweightVerifier for v, which must accept
// access tokens.
func (v *Verifier) Lightweight(cfg LightweightConfig) (*LightweightVerifier, error) {
	switch {
	case v.kind != AccessToken:
		return nil, fmt.Errorf("cloakroom: Lightweight needs an access-token Verifier, not one for %ss", v.kind)
	case cfg.Client.ClientID == "" || cfg.Client.ClientSecret == "":
		return nil, errors.New("cloakroom: LightweightConfig.Client needs a confidential client's ClientID and ClientSecret: introspection needs one")
	case cfg.CacheTTL < 0:
		return nil, errors.New("cloakroom: LightweightConfig.CacheTTL must not be negative")
	}
	l := &LightweightVerifier{v: v, cfg: cfg, inflight: map[string]*lightweightCall{}}
	if cfg.CacheEntries >= 0 {
		entries := cfg.CacheEntries
		if entries == 0 {
			entries = 10_000
		}
		l.cache = newTokenCache(entries, 32<<20)
	}
	return l, nil
}

// Verifier returns the Verifier l completes tokens for.
func (l *LightweightVerifier) Verifier() *Verifier { return l.v }

// Verify is VerifyBound refusing DPoP-bound tokens, as Verifier.Verify.
func (l *LightweightVerifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := l.VerifyBound(ctx, token)
	if err == nil && c.IsDPoPBound() {
		return nil, fmt.Errorf("%w: DPoP-bound access token: it is only good with a DPoP proof of possession (bearer.WithDPoP checks it)", ErrTokenType)
	}
	return c, err
}

// VerifyBound verifies token as Verifier.VerifyBound does and returns
// its claims: a full token's as they are, a lightweight token's as the
// introspection answer gives them (cached). Errors are the Verifier's,
// and for lightweight tokens also ErrUnavailable (Keycloak could not be
// asked), ErrMisconfigured (it refuses the introspecting client),
// ErrInactive, ErrInvalidClaim (the answer is about another token) and
// ErrAudience (the answer's aud is not accepted).
func (l *LightweightVerifier) VerifyBound(ctx context.Context, token string) (*Claims, error) {
	epoch := l.v.realm.keys.epoch.Load()
	if c, hit, err := l.cached(token, epoch); hit {
		return c, err
	}
	c, err := l.v.VerifyBound(ctx, token)
	switch {
	case err == nil && !c.IsLightweight():
		return c, nil
	case err == nil:
	case errors.Is(err, ErrMissingClaim) || errors.Is(err, ErrAudience):
		// sub and aud may be the introspection answer's to give.
		pc, perr := l.v.verifyPartial(ctx, token)
		if perr != nil || !pc.IsLightweight() {
			return nil, err
		}
		c = pc
	default:
		return nil, err
	}
	return l.complete(ctx, token, c, epoch)
}

// cached returns the cache's answer for token, if it has one.
func (l *LightweightVerifier) cached(token string, epoch uint64) (*Claims, bool, error) {
	if l.cache == nil {
		return nil, false, nil
	}
	c := l.cache.get(token, l.v.realm.now().Unix(), epoch)
	switch c {
	case nil:
		return nil, false, nil
	case inactiveClaims:
		return nil, true, fmt.Errorf("%w: the identity provider said so at most %d s ago", ErrInactive, inactiveCacheSeconds)
	}
	return c, true, nil
}

// complete introspects a lightweight token once for all concurrent
// callers.
func (l *LightweightVerifier) complete(ctx context.Context, token string, c *Claims, epoch uint64) (*Claims, error) {
	l.mu.Lock()
	if call, ok := l.inflight[token]; ok {
		l.mu.Unlock()
		select {
		case <-call.done:
			return call.claims, call.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the introspection of a lightweight token: %w", ErrUnavailable, ctx.Err())
		}
	}
	// A caller that missed the cache while another's introspection of
	// this token was in flight, and gets here after it ended, finds its
	// answer in the cache (put before the call leaves inflight).
	if c, hit, err := l.cached(token, epoch); hit {
		l.mu.Unlock()
		return c, err
	}
	call := &lightweightCall{done: make(chan struct{})}
	l.inflight[token] = call
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.inflight, token)
		l.mu.Unlock()
		close(call.done)
	}()
	call.claims, call.err = l.introspect(ctx, token, c, epoch)
	return call.claims, call.err
}

func (l *LightweightVerifier) introspect(ctx context.Context, token string, c *Claims, epoch uint64) (*Claims, error) {
	in, err := l.v.realm.Introspect(ctx, token, l.cfg.Client)
	if err != nil {
		return nil, fmt.Errorf("lightweight access token: %w", err)
	}
	now := l.v.realm.now().Unix()
	exp := c.Expiry().Unix()
	if !in.Active {
		if l.cache != nil {
			l.cache.put(token, inactiveClaims, min(exp, now+inactiveCacheSeconds), epoch, now)
		}
		if !c.HasAudience(l.cfg.Client.ClientID) {
			return nil, fmt.Errorf("%w: the identity provider says the lightweight token is not active; Keycloak 26.7 and later also say so when the introspecting client %q is not in the token's audience (give the user a role of that client, add an Audience mapper for it with \"Add to token introspection\", or turn on its allow.token.introspection.without.audience.check attribute)", ErrInactive, l.cfg.Client.ClientID)
		}
		return nil, fmt.Errorf("%w: the identity provider says the lightweight token is not active (session ended, user disabled or token revoked)", ErrInactive)
	}
	m, err := l.v.merge(c, in)
	if err != nil {
		return nil, err
	}
	if l.cache != nil {
		until := exp
		if l.cfg.CacheTTL > 0 {
			until = min(exp, now+max(1, int64(l.cfg.CacheTTL/time.Second)))
		}
		l.cache.put(token, m, until, epoch, now)
	}
	return m, nil
}

// merge returns the claims of the introspection answer in for the
// lightweight token whose verified claims are c, after checking that the
// answer is about that token and that its audience is accepted.
func (v *Verifier) merge(c *Claims, in *Introspection) (*Claims, error) {
	m, err := ParseClaims(in.body)
	if err != nil {
		return nil, &ProviderError{Op: "introspection", URL: v.realm.Issuer(), Err: fmt.Errorf("the answer's claims: %w", err)}
	}
	m.rolesClaim = v.rolesClaim
	same := func(name, token, answer string) error {
		if token != answer {
			return fmt.Errorf("%w: the introspection answer's %s is not the lightweight token's", ErrInvalidClaim, name)
		}
		return nil
	}
	if c.Subject() == "" && m.Subject() == "" {
		return nil, fmt.Errorf("%w: sub: neither the lightweight token nor its introspection answer names the user", ErrMissingClaim)
	}
	sub := m.Subject()
	if c.Subject() != "" {
		sub = c.Subject()
	}
	checks := []error{
		same("iss", c.Issuer(), m.Issuer()),
		same("sub", sub, m.Subject()),
		same("exp", fmt.Sprint(c.Expiry().Unix()), fmt.Sprint(m.Expiry().Unix())),
		same("iat", fmt.Sprint(c.IssuedAt().Unix()), fmt.Sprint(m.IssuedAt().Unix())),
		same("jti", c.ID(), m.ID()),
		same("azp", c.AuthorizedParty(), m.AuthorizedParty()),
		same("typ", c.Type(), m.Type()),
		same("cnf.jkt", c.ConfirmationJKT(), m.ConfirmationJKT()),
	}
	if c.SessionID() != "" {
		checks = append(checks, same("sid", c.SessionID(), m.SessionID()))
	}
	if c.Expiry().IsZero() {
		checks = append(checks, fmt.Errorf("%w: exp", ErrMissingClaim))
	}
	if err := errors.Join(checks...); err != nil {
		return nil, err
	}
	if err := v.checkAudience(m); err != nil {
		return nil, fmt.Errorf("lightweight access token, audience from introspection: %w", err)
	}
	return m, nil
}

// verifyPartial is verify without the checks of the claims a lightweight
// token leaves to introspection: sub and the audience. Its claims are
// only good for Verifier.merge.
func (v *Verifier) verifyPartial(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verifySigned(ctx, token)
	if err != nil {
		return nil, err
	}
	profile, err := v.realm.resolveProfile(ctx, v.profile)
	if err != nil {
		return nil, err
	}
	if err := v.checkType(c, profile); err != nil {
		return nil, err
	}
	if c.Issuer() != v.realm.Issuer() {
		return nil, fmt.Errorf("%w: token was issued by %q, expected %q", ErrIssuer, c.Issuer(), v.realm.Issuer())
	}
	if err := v.checkTimes(c); err != nil {
		return nil, err
	}
	return c, nil
}
