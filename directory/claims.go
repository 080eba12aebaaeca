package directory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloakroom/cloakroom"
)

// standardClaims are protocol claims, or claims stored in columns of their
// own: never copied into User.Extra by default.
var standardClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "auth_time": true, "jti": true,
	"typ": true, "azp": true, "sid": true, "session_state": true, "acr": true, "amr": true, "nonce": true, "scope": true,
	"at_hash": true, "c_hash": true, "s_hash": true, "cnf": true, "events": true, "client_id": true,
	"allowed-origins": true, "realm_access": true, "resource_access": true,
	"preferred_username": true, "email": true, "email_verified": true, "name": true, "given_name": true, "family_name": true,
}

// maxExtraBytes bounds the JSON of User.Extra taken from one token.
const maxExtraBytes = 64 << 10

// maxSubject bounds a sub (Keycloak ids are 36-character UUIDs).
const maxSubject = 255

// profile is what a login's tokens say about the user. nil pointers and
// false has* flags mean "absent from the tokens: keep the stored value".
type profile struct {
	sub                          string
	username, email, first, last *string
	emailVerified                *bool
	realmRoles                   []string
	hasRealm                     bool
	clientRoles                  map[string][]string
	hasClient                    bool
	extra                        map[string]any
	loginAt                      time.Time // auth_time, else iat
	issuedAt                     time.Time // the latest iat (zero if none)
}

func validSubject(sub string) error {
	switch {
	case sub == "":
		return errors.New("no sub claim")
	case len(sub) > maxSubject:
		return fmt.Errorf("sub is %d bytes long, more than %d", len(sub), maxSubject)
	case !utf8.ValidString(sub) || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("sub holds control characters or invalid UTF-8")
	}
	return nil
}

// profileOf merges the claims of tokens from one login: the first token
// that carries a claim wins (pass the ID token first: the access token
// holds the roles). Every token must have the same sub (and the
// configured issuer).
func (d *Directory) profileOf(tokens ...*cloakroom.Claims) (*profile, error) {
	p := &profile{extra: map[string]any{}}
	n := 0
	budget := maxExtraBytes
	for _, c := range tokens {
		if c == nil {
			continue
		}
		n++
		if err := validSubject(c.Subject()); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidClaims, err)
		}
		if p.sub == "" {
			p.sub = c.Subject()
		} else if p.sub != c.Subject() {
			return nil, fmt.Errorf("%w: the tokens name different subjects", ErrInvalidClaims)
		}
		if d.issuer != "" && c.Issuer() != d.issuer {
			return nil, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidClaims, c.Issuer(), d.issuer)
		}
		raw := c.Raw()
		str := func(dst **string, name string) {
			if _, ok := raw[name].(string); ok && *dst == nil {
				v := raw[name].(string)
				*dst = &v
			}
		}
		str(&p.username, "preferred_username")
		str(&p.email, "email")
		str(&p.first, "given_name")
		str(&p.last, "family_name")
		if _, ok := raw["email_verified"]; ok && p.emailVerified == nil {
			v := c.EmailVerified()
			p.emailVerified = &v
		}
		if _, ok := raw["realm_access"]; ok && !p.hasRealm {
			p.realmRoles, p.hasRealm = sortedSet(c.RealmRoles()), true
		}
		if _, ok := raw["resource_access"]; ok && !p.hasClient {
			m := c.ResourceAccess()
			for k, v := range m {
				m[k] = sortedSet(v)
			}
			p.clientRoles, p.hasClient = m, true
		}
		if t := c.AuthTime(); !t.IsZero() && t.After(p.loginAt) {
			p.loginAt = t
		}
		if t := c.IssuedAt(); !t.IsZero() {
			if t.After(p.issuedAt) {
				p.issuedAt = t
			}
			if c.AuthTime().IsZero() && t.After(p.loginAt) {
				p.loginAt = t
			}
		}
		budget = d.collectExtra(p.extra, raw, c, budget)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no claims", ErrInvalidClaims)
	}
	p.loginAt = p.loginAt.UTC().Truncate(time.Millisecond)
	return p, nil
}

// collectExtra copies the extra claims of one token into dst (claims
// already there win), within budget bytes of JSON; it returns the budget
// left.
func (d *Directory) collectExtra(dst, raw map[string]any, c *cloakroom.Claims, budget int) int {
	add := func(name string, v any) {
		if _, dup := dst[name]; dup {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			return
		}
		if len(b)+len(name)+4 > budget {
			d.log.Debug("directory: extra claim skipped: too large", "claim", name, "bytes", len(b))
			return
		}
		budget -= len(b) + len(name) + 4
		dst[name] = v
	}
	if d.extraClaims == nil {
		names := make([]string, 0, len(raw))
		for k := range raw {
			if !standardClaims[k] {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			add(k, raw[k])
		}
		return budget
	}
	for _, name := range d.extraClaims {
		if v, ok := c.Lookup(name); ok {
			add(name, v)
		}
	}
	return budget
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	s = slices.Compact(s)
	if s == nil {
		s = []string{}
	}
	return s
}

// applyClaims returns the row after a login with p and whether it
// changed. A deactivated row is reactivated only by a token issued after
// the deactivation; older tokens get ErrDeactivated.
func applyClaims(cur *User, p *profile) (*User, bool, error) {
	next := cur.clone()
	if !cur.Active() {
		// iat has whole seconds: a token of the deactivation's own second
		// may be older than it, so it is refused too.
		if p.issuedAt.IsZero() || !p.issuedAt.After(cur.DeactivatedAt) {
			return cur, false, ErrDeactivated
		}
		next.DeactivatedAt, next.Reason = time.Time{}, ""
	}
	// Keycloak issued a token: the user was enabled then.
	next.Enabled = true
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.Username, p.username)
	set(&next.Email, p.email)
	set(&next.FirstName, p.first)
	set(&next.LastName, p.last)
	if p.emailVerified != nil {
		next.EmailVerified = *p.emailVerified
	}
	if p.hasRealm {
		next.RealmRoles = slices.Clone(p.realmRoles)
	}
	if p.hasClient {
		next.ClientRoles = cloneRoles(p.clientRoles)
	}
	maps.Copy(next.Extra, p.extra)
	if p.loginAt.After(next.LastLogin) {
		next.LastLogin = p.loginAt
	}
	return next, !sameUser(cur, next), nil
}

// sameUser compares what a write would store.
func sameUser(a, b *User) bool {
	if a.Username != b.Username || a.Email != b.Email || a.FirstName != b.FirstName || a.LastName != b.LastName ||
		a.EmailVerified != b.EmailVerified || a.Enabled != b.Enabled || !a.LastLogin.Equal(b.LastLogin) ||
		!a.DeactivatedAt.Equal(b.DeactivatedAt) || a.Reason != b.Reason || !slices.Equal(a.RealmRoles, b.RealmRoles) ||
		len(a.ClientRoles) != len(b.ClientRoles) {
		return false
	}
	for k, v := range a.ClientRoles {
		w, ok := b.ClientRoles[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	ea, err1 := encodeExtra(a.Extra)
	eb, err2 := encodeExtra(b.Extra)
	return err1 == nil && err2 == nil && ea == eb
}

func newUserFromProfile(p *profile, now time.Time) *User {
	u := &User{Subject: p.sub, Enabled: true, RealmRoles: []string{}, ClientRoles: map[string][]string{},
		Extra: p.extra, LastLogin: p.loginAt, Created: now, Updated: now}
	if u.Extra == nil {
		u.Extra = map[string]any{}
	}
	next, _, _ := applyClaims(u, p)
	return next
}

// errRaced asks upsert to try again: a concurrent writer inserted the row.
var errRaced = errors.New("directory: concurrent insert")

// UpsertFromClaims creates or updates the user of verified claims (an
// access or ID token) and returns the row. Claims that are absent leave the
// stored values alone; realm_access and resource_access replace the role
// snapshot. When nothing changes nothing is written, so it can run on every
// request. A user deactivated before the token was issued is refused with
// ErrDeactivated (the row is returned too); a later token reactivates the
// user.
func (d *Directory) UpsertFromClaims(ctx context.Context, c *cloakroom.Claims) (*User, error) {
	return d.upsert(ctx, c)
}

func (d *Directory) upsert(ctx context.Context, tokens ...*cloakroom.Claims) (*User, error) {
	p, err := d.profileOf(tokens...)
	if err != nil {
		return nil, fmt.Errorf("directory: upsert user from claims: %w", err)
	}
	// Fast path: the row exists and the token changes nothing.
	if cur, err := scanUser(d.r.QueryRowContext(ctx, d.q.bySub, p.sub)); err == nil {
		_, changed, err := applyClaims(cur, p)
		if errors.Is(err, ErrDeactivated) {
			return cur, fmt.Errorf("directory: user %d (sub %s) was deactivated at %s (%s): %w", cur.ID, p.sub,
				cur.DeactivatedAt.Format(time.RFC3339), cur.Reason, ErrDeactivated)
		}
		if !changed {
			return cur, nil
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("directory: upsert user with sub %q: %w", p.sub, err)
	}
	for attempt := 0; ; attempt++ {
		var out *User
		err := d.inTx(ctx, func(tx *sql.Tx) error {
			cur, err := d.lockedBySub(ctx, tx, p.sub)
			if err != nil {
				return err
			}
			now := d.stamp()
			if cur == nil {
				u := newUserFromProfile(p, now)
				inserted, err := d.writeUser(ctx, tx, nil, u)
				if err != nil {
					return err
				}
				if !inserted {
					return errRaced
				}
				out = u
				return nil
			}
			next, changed, err := applyClaims(cur, p)
			if err != nil {
				out = cur
				return err
			}
			if changed {
				next.Updated = now
				if _, err := d.writeUser(ctx, tx, nil, next); err != nil {
					return err
				}
			}
			out = next
			return nil
		})
		switch {
		case errors.Is(err, errRaced) && attempt < 3:
			continue
		case errors.Is(err, ErrDeactivated):
			return out, fmt.Errorf("directory: user %d (sub %s) was deactivated at %s (%s): %w", out.ID, p.sub,
				out.DeactivatedAt.Format(time.RFC3339), out.Reason, ErrDeactivated)
		case err != nil:
			return nil, fmt.Errorf("directory: upsert user with sub %q: %w", p.sub, err)
		}
		return out, nil
	}
}
