package cloakroom

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloakroom/cloakroom/internal/claimsmemo"
)

// Claims are the verified claims of a token, with helpers for the claims
// Keycloak puts in its tokens. Claims returned by a Verifier are shared
// between callers (the verified-token cache hands out the same value), so
// they are read-only: every accessor that returns a slice or map returns a
// copy, and Lookup's results must not be modified.
type Claims struct {
	c   claimSet
	raw string // the JSON payload (a copy: Claims never alias the caller's bytes)
	// rolesClaim is the path RealmRoles reads ("" = DefaultRolesClaim).
	rolesClaim string

	// dates, aud and hashes are storage that c's exp/nbf/iat, aud and
	// nonce/hash claims may point into, so that the fast decoder
	// (claims_fast.go) needs no allocation of its own for them: each
	// object of verified claims is one more for the collector to mark
	// on every cycle for as long as a session or cache holds it.
	dates [4]numericDate
	aud   [2]string
	// hashes is that storage for nonce, at_hash, c_hash and s_hash (in
	// that order), whose presence matters (*string).
	hashes [4]string

	// roles holds realm_access and resource_access, decoded on first use.
	roles lazyRoles

	rawOnce sync.Once
	rawMap  map[string]any
	rawErr  error

	// bound caches IsDPoPBound (0: not yet known, 1: no, 2: yes), which
	// every verification of a cached token asks.
	bound atomic.Uint32

	// memo is what the gateway derived from these claims (its identity
	// headers), kept through internal/claimsmemo.
	memo atomic.Value
}

func init() {
	claimsmemo.Set(
		func(c any) any { return c.(*Claims).memo.Load() },
		func(c, v any) { c.(*Claims).memo.Store(v) },
	)
}

// claimSet is what the verifier decodes eagerly: the claims that checks
// and the common helpers need. The roles claims (claimSetFull) and
// everything else stay in raw until asked for, which keeps cold
// verification cheap.
type claimSet struct {
	Issuer            string                    `json:"iss"`
	Subject           string                    `json:"sub"`
	Audience          audience                  `json:"aud"`
	Expiry            *numericDate              `json:"exp"`
	NotBefore         *numericDate              `json:"nbf"`
	IssuedAt          *numericDate              `json:"iat"`
	AuthTime          *numericDate              `json:"auth_time"`
	ID                string                    `json:"jti"`
	Type              string                    `json:"typ"`
	AuthorizedParty   string                    `json:"azp"`
	SessionID         string                    `json:"sid"`
	ACR               rawValue                  `json:"acr"`
	Nonce             *string                   `json:"nonce"`
	AtHash            *string                   `json:"at_hash"`
	CHash             *string                   `json:"c_hash"`
	SHash             *string                   `json:"s_hash"`
	TokenUse          string                    `json:"token_use"`
	Scope             string                    `json:"scope"`
	Scp               spaceList                 `json:"scp"`
	ClientID          string                    `json:"client_id"`
	PreferredUsername string                    `json:"preferred_username"`
	Email             string                    `json:"email"`
	EmailVerified     flexBool                  `json:"email_verified"`
	Name              string                    `json:"name"`
	GivenName         string                    `json:"given_name"`
	FamilyName        string                    `json:"family_name"`
	Events            map[string]jsontext.Value `json:"events"`
}

// claimSetFull is every claim the package knows, as the reference decoder
// (decodeClaimsReference) reads them in one jsonv2.Unmarshal: the schema
// the fast decoder must agree with.
type claimSetFull struct {
	claimSet
	RealmAccess    roleSet            `json:"realm_access"`
	ResourceAccess map[string]roleSet `json:"resource_access"`
}

// lazyRoles holds the realm_access and resource_access claims: their JSON
// (substrings of Claims.raw, already checked to have a shape the reference
// decoder accepts) until the first roles accessor decodes them.
type lazyRoles struct {
	once         sync.Once
	realmJSON    string
	resourceJSON string
	// Decoded, in two objects (compactRoles): claims held for a session
	// or by a cache are marked by the collector on every cycle, an object
	// at a time, so a map and a slice per client would cost every cycle.
	realm    []string         // realm_access.roles
	resource []clientRoleList // resource_access, by client
}

// clientRoleList is one client's member of resource_access.
type clientRoleList struct {
	client string
	roles  []string
}

// loadRoles returns the decoded roles claims, decoding them on first use.
func (c *Claims) loadRoles() *lazyRoles {
	r := &c.roles
	r.once.Do(func() {
		var realm roleSet
		var resource map[string]roleSet
		if r.realmJSON != "" {
			decodeRoles(r.realmJSON, &realm, nil)
		}
		if r.resourceJSON != "" {
			decodeRoles(r.resourceJSON, nil, &resource)
		}
		r.realm, r.resource = compactRoles(realm, resource)
	})
	return r
}

// setRoles stores already decoded roles claims.
func (c *Claims) setRoles(realm roleSet, resource map[string]roleSet) {
	c.roles.realm, c.roles.resource = compactRoles(realm, resource)
	c.roles.once.Do(func() {})
}

// compactRoles copies decoded roles into one slice of every role (the
// strings themselves are shared) and one of clients, sorted by name; a nil
// list stays nil and an empty one empty, as decoded.
func compactRoles(realm roleSet, resource map[string]roleSet) ([]string, []clientRoleList) {
	n := len(realm.Roles)
	for _, rs := range resource {
		n += len(rs.Roles)
	}
	all := make([]string, 0, n)
	take := func(l []string) []string {
		if l == nil {
			return nil
		}
		all = append(all, l...)
		return all[len(all)-len(l) : len(all) : len(all)]
	}
	realmRoles := take(realm.Roles)
	var clients []clientRoleList
	if resource != nil {
		clients = make([]clientRoleList, 0, len(resource))
		for _, name := range slices.Sorted(maps.Keys(resource)) {
			clients = append(clients, clientRoleList{client: name, roles: take(resource[name].Roles)})
		}
	}
	return realmRoles, clients
}

// client returns clientID's roles in resource_access (nil if none).
func (r *lazyRoles) client(clientID string) []string {
	i, ok := slices.BinarySearchFunc(r.resource, clientID, func(c clientRoleList, id string) int { return strings.Compare(c.client, id) })
	if !ok {
		return nil
	}
	return r.resource[i].roles
}

type roleSet struct {
	Roles []string `json:"roles"`
}

// ParseClaims decodes a JWT payload without verifying anything. It is meant
// for tools that display tokens (cloakroom token decode) and for tests;
// services must use a Verifier.
//
// The decoder is strict where JSON is ambiguous: a payload with a duplicated
// member name or invalid UTF-8 is refused (RFC 8725 section 3.11 worries
// about parsers that disagree on such input), and member names are matched
// case-sensitively.
func ParseClaims(payload []byte) (*Claims, error) {
	return parseClaims(payload)
}

// parseClaims decodes a payload with the fast decoder (claims_fast.go)
// and, for anything that decoder leaves alone (errors included), with the
// reference decoder, so that the result and every error are the reference
// decoder's.
func parseClaims(payload []byte) (*Claims, error) {
	c := &Claims{raw: string(payload)}
	if decodeClaimsFast(c, payload) {
		return c, nil
	}
	return decodeClaimsReference(payload)
}

// decodeClaimsReference decodes every known claim with one
// jsonv2.Unmarshal into claimSetFull.
func decodeClaimsReference(payload []byte) (*Claims, error) {
	var full claimSetFull
	if err := jsonv2.Unmarshal(payload, &full); err != nil {
		return nil, fmt.Errorf("%w: claims: %s", ErrMalformed, jsonErrorText(err))
	}
	c := &Claims{c: full.claimSet, raw: string(payload)}
	c.setRoles(full.RealmAccess, full.ResourceAccess)
	return c, nil
}

// jsonErrorText turns a JSON decoding error into a short message that names
// the claim and never quotes the input.
func jsonErrorText(err error) string {
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		if strings.Contains(syn.Err.Error(), "duplicate") {
			return fmt.Sprintf("member %s appears more than once", pointerName(syn.JSONPointer))
		}
		return fmt.Sprintf("payload is not valid JSON (offset %d)", syn.ByteOffset)
	case errors.As(err, &sem):
		name := pointerName(sem.JSONPointer)
		if name == "" {
			return "payload is not a JSON object"
		}
		return fmt.Sprintf("claim %s has the wrong type (JSON %s)", name, kindName(sem.JSONKind))
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("claim %q has a JSON %s of the wrong type", te.Field, te.Value)
		}
		return fmt.Sprintf("payload is a JSON %s, not an object", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("payload is not valid JSON (offset %d)", se.Offset)
	}
	return "payload is not valid JSON"
}

// pointerName renders a JSON pointer such as /realm_access/roles as
// "realm_access.roles".
func pointerName(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", strings.Join(parts, "."))
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}

// Issuer returns the iss claim.
func (c *Claims) Issuer() string { return c.c.Issuer }

// Subject returns the sub claim: the user's immutable Keycloak id. Use it,
// never the username, to identify users.
func (c *Claims) Subject() string { return c.c.Subject }

// Audience returns the aud claim as a list.
func (c *Claims) Audience() []string { return slices.Clone(c.c.Audience) }

// HasAudience reports whether aud contains a.
func (c *Claims) HasAudience(a string) bool { return slices.Contains(c.c.Audience, a) }

// Expiry returns exp (zero if absent).
func (c *Claims) Expiry() time.Time { return c.c.Expiry.time() }

// IssuedAt returns iat (zero if absent).
func (c *Claims) IssuedAt() time.Time { return c.c.IssuedAt.time() }

// NotBefore returns nbf (zero if absent; Keycloak 25+ omits it).
func (c *Claims) NotBefore() time.Time { return c.c.NotBefore.time() }

// AuthTime returns auth_time, when the user last authenticated (zero if absent).
func (c *Claims) AuthTime() time.Time { return c.c.AuthTime.time() }

// ID returns the jti claim.
func (c *Claims) ID() string { return c.c.ID }

// Type returns Keycloak's typ claim: "Bearer" for access tokens, "ID" for
// ID tokens, "Refresh"/"Offline" for refresh tokens.
func (c *Claims) Type() string { return c.c.Type }

// AuthorizedParty returns azp: the client the token was issued to.
func (c *Claims) AuthorizedParty() string { return c.c.AuthorizedParty }

// SessionID returns sid: the Keycloak user-session id.
func (c *Claims) SessionID() string { return c.c.SessionID }

// ACR returns the acr claim ("1" for a fresh login, "0" for an SSO-cookie
// login in Keycloak's default mapping, or a mapped level name).
func (c *Claims) ACR() string {
	a := string(c.c.ACR)
	if len(a) == 0 || a == "null" {
		return ""
	}
	// The common case, a JSON string without escapes, needs no decoding.
	if len(a) >= 2 && a[0] == '"' && a[len(a)-1] == '"' && strings.IndexByte(a[1:len(a)-1], '\\') < 0 {
		return a[1 : len(a)-1]
	}
	var s string
	if json.Unmarshal([]byte(a), &s) == nil {
		return s
	}
	// Some providers send acr as a number.
	return strings.TrimSpace(a)
}

// Nonce returns the nonce claim (ID tokens only).
func (c *Claims) Nonce() string {
	if c.c.Nonce == nil {
		return ""
	}
	return *c.c.Nonce
}

// HasNonce reports whether a nonce claim is present at all.
func (c *Claims) HasNonce() bool { return c.c.Nonce != nil }

// ClientID returns the client_id claim (Keycloak service-account tokens and
// RFC 9068 access tokens).
func (c *Claims) ClientID() string { return c.c.ClientID }

// Username returns preferred_username. It is a display attribute: Keycloak
// usernames can be renamed and reused, so never key data on it.
func (c *Claims) Username() string { return c.c.PreferredUsername }

// Email returns the email claim.
func (c *Claims) Email() string { return c.c.Email }

// EmailVerified returns email_verified.
func (c *Claims) EmailVerified() bool { return bool(c.c.EmailVerified) }

// Name returns the name claim.
func (c *Claims) Name() string { return c.c.Name }

// GivenName returns given_name.
func (c *Claims) GivenName() string { return c.c.GivenName }

// FamilyName returns family_name.
func (c *Claims) FamilyName() string { return c.c.FamilyName }

// Scopes returns the granted scopes: the space-separated scope claim, or,
// when there is none, the scp claim (an array or a space-separated string,
// as ORY Hydra, Okta and Azure AD send it).
func (c *Claims) Scopes() []string {
	if c.c.Scope == "" && len(c.c.Scp) > 0 {
		return slices.Clone([]string(c.c.Scp))
	}
	return strings.Fields(c.c.Scope)
}

// HasScope reports whether scope s was granted (see Scopes).
func (c *Claims) HasScope(s string) bool {
	if c.c.Scope == "" && len(c.c.Scp) > 0 {
		return slices.Contains(c.c.Scp, s)
	}
	for f := range strings.FieldsSeq(c.c.Scope) {
		if f == s {
			return true
		}
	}
	return false
}

// RolesClaim returns the claim path RealmRoles reads: the Verifier's
// VerifierConfig.RolesClaim, or DefaultRolesClaim.
func (c *Claims) RolesClaim() string {
	if c.rolesClaim == "" {
		return DefaultRolesClaim
	}
	return c.rolesClaim
}

// RealmRoles returns the user's roles, read from the roles claim: the
// VerifierConfig.RolesClaim of the Verifier that returned the claims, or for
// ParseClaims the path given to WithRolesClaim; realm_access.roles
// (Keycloak's realm roles) by default. The claim may be an array of
// strings, one string, or an object whose member names are the roles
// (ZITADEL's project roles claim has that shape). It is the one place
// roles are read: HasRealmRole, the AnyRealmRole/AllRealmRoles
// requirements and the gateway's realm_roles rules and roles header all
// read the same list.
func (c *Claims) RealmRoles() []string {
	path := c.RolesClaim()
	if path == DefaultRolesClaim {
		return slices.Clone(c.loadRoles().realm)
	}
	v, ok := c.Lookup(path)
	if !ok {
		return nil
	}
	if m, ok := v.(map[string]any); ok {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return c.Strings(path)
}

// HasRealmRole reports whether RealmRoles contains role.
func (c *Claims) HasRealmRole(role string) bool {
	if c.RolesClaim() == DefaultRolesClaim {
		return slices.Contains(c.loadRoles().realm, role)
	}
	return slices.Contains(c.RealmRoles(), role)
}

// WithRolesClaim returns claims equal to c whose RealmRoles read path
// (empty: DefaultRolesClaim). It is for claims parsed with ParseClaims,
// e.g. the stored ID-token claims of a session; a Verifier sets it
// itself.
func (c *Claims) WithRolesClaim(path string) *Claims {
	r := c.loadRoles()
	n := &Claims{c: c.c, raw: c.raw, rolesClaim: path}
	n.roles.realm, n.roles.resource = r.realm, r.resource // immutable: shared
	n.roles.once.Do(func() {})
	return n
}

// ClientRoles returns resource_access.{clientID}.roles.
func (c *Claims) ClientRoles(clientID string) []string {
	return slices.Clone(c.loadRoles().client(clientID))
}

// HasClientRole reports whether resource_access.{clientID}.roles contains role.
func (c *Claims) HasClientRole(clientID, role string) bool {
	return slices.Contains(c.loadRoles().client(clientID), role)
}

// ResourceAccess returns every client's roles (resource_access).
func (c *Claims) ResourceAccess() map[string][]string {
	ra := c.loadRoles().resource
	m := make(map[string][]string, len(ra))
	for _, v := range ra {
		m[v.client] = slices.Clone(v.roles)
	}
	return m
}

// HasEvent reports whether the events claim (logout tokens) has member uri.
func (c *Claims) HasEvent(uri string) bool {
	_, ok := c.c.Events[uri]
	return ok
}

// RawJSON returns a copy of the token's JSON payload.
func (c *Claims) RawJSON() []byte { return []byte(c.raw) }

// Decode unmarshals the whole payload into v, e.g. a struct of the
// application's own claims.
func (c *Claims) Decode(v any) error {
	if err := json.Unmarshal([]byte(c.raw), v); err != nil {
		return fmt.Errorf("cloakroom: decoding claims: %w", err)
	}
	return nil
}

// Raw returns all claims as a map. Each call returns a fresh map that the
// caller may modify.
func (c *Claims) Raw() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(c.raw), &m); err != nil {
		return map[string]any{}
	}
	return m
}

func (c *Claims) shared() map[string]any {
	c.rawOnce.Do(func() {
		c.rawErr = json.Unmarshal([]byte(c.raw), &c.rawMap)
	})
	return c.rawMap
}

// Lookup returns the value at a dotted claim path such as
// "resource_access.account.roles". A claim whose own name contains dots
// (e.g. "https://example.com/roles") matches as a whole. The returned value
// is shared: do not modify it.
func (c *Claims) Lookup(path string) (any, bool) {
	if c.absent(path) {
		return nil, false
	}
	return lookupPath(c.shared(), path)
}

// absent reports that the payload has no member the path could start
// with, without decoding it: the whole payload is decoded into a map on
// the first Lookup and kept as long as the claims (a few kB for a cached
// token), which a look for a claim the token does not have (e.g.
// "groups" without a group mapper) should not cost. A payload with any
// escape is decoded, since a name may be spelled with escapes there.
func (c *Claims) absent(path string) bool {
	if strings.IndexByte(c.raw, '\\') >= 0 {
		return false
	}
	head, _, _ := strings.Cut(path, ".")
	return !containsQuoted(c.raw, head) && !containsQuoted(c.raw, path)
}

// containsQuoted reports whether s contains name in double quotes.
func containsQuoted(s, name string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], name)
		if j < 0 {
			return false
		}
		j += i
		if j > 0 && s[j-1] == '"' && j+len(name) < len(s) && s[j+len(name)] == '"' {
			return true
		}
		i = j + 1
	}
}

func lookupPath(m map[string]any, path string) (any, bool) {
	for path != "" {
		if v, ok := m[path]; ok {
			return v, true
		}
		head, rest, found := strings.Cut(path, ".")
		if !found {
			return nil, false
		}
		next, ok := m[head].(map[string]any)
		if !ok {
			return nil, false
		}
		m, path = next, rest
	}
	return nil, false
}

// Strings returns the strings at a dotted claim path: an array of strings,
// or a single string as a one-element list. It is how configurable
// permission claims are read, e.g. drf-keycloak's
// "resource_access.account.roles", or "groups".
func (c *Claims) Strings(path string) []string {
	v, ok := c.Lookup(path)
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// errWrongType is reported by the claim decoders below; the decoder adds
// which claim it was.
var errWrongType = errors.New("wrong JSON type")

// audience is aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	l, err := decodeStringOrList(dec, func(s string) []string { return []string{s} })
	*a = l
	return err
}

// decodeStringOrList reads a JSON string (turned into a list by split), an
// array of strings, or null.
func decodeStringOrList(dec *jsontext.Decoder, split func(string) []string) ([]string, error) {
	switch dec.PeekKind() {
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		return split(tok.String()), nil
	case '[':
		var l []string
		err := jsonv2.UnmarshalDecode(dec, &l)
		return l, err
	case 'n':
		_, err := dec.ReadToken()
		return nil, err
	}
	return nil, errWrongType
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate struct{ sec int64 }

func (d *numericDate) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '0' {
		return errWrongType
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	f := tok.Float()
	if math.IsNaN(f) || math.IsInf(f, 0) || f > 1<<53 || f < -(1<<53) {
		return errWrongType
	}
	if i := tok.Int(); float64(i) == math.Trunc(f) {
		d.sec = i
		return nil
	}
	d.sec = int64(f)
	return nil
}

func (d *numericDate) time() time.Time {
	if d == nil {
		return time.Time{}
	}
	return time.Unix(d.sec, 0)
}

// spaceList is a list of strings sent as a JSON array or as one
// space-separated string (scp).
type spaceList []string

func (l *spaceList) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := decodeStringOrList(dec, strings.Fields)
	*l = v
	return err
}

// rawValue is a claim kept as its JSON text (acr: a string, or a number
// with some providers).
type rawValue string

func (r *rawValue) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	*r = rawValue(v)
	return nil
}

// flexBool accepts true/false and, as some providers send, "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	switch tok.Kind() {
	case 't', 'f':
		*f = flexBool(tok.Bool())
	case 'n':
		*f = false
	case '"':
		switch tok.String() {
		case "true":
			*f = true
		case "false":
			*f = false
		default:
			return errWrongType
		}
	default:
		return errWrongType
	}
	return nil
}
