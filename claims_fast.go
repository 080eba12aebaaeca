package cloakroom

import (
	"bytes"
	"io"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The fast claims decoder.
//
// Cold verification decodes the payload of every token. The reference
// decoder (decodeClaimsReference: one jsonv2.Unmarshal into claimSetFull)
// goes through reflection for every member and allocates every string,
// list and map, the roles included, which most requests never read. The
// fast decoder reads the payload once with a jsontext.Decoder, the same
// tokenizer (which checks the JSON syntax and UTF-8 everywhere), and:
//
//   - takes string claims as substrings of Claims.raw (no allocation unless
//     the string has escapes);
//   - points exp, nbf, iat, auth_time and a short aud into storage inside
//     the Claims;
//   - only checks the shape of realm_access and resource_access and keeps
//     their JSON for lazyRoles, which decodes them when a roles accessor is
//     first called;
//   - skips every other member as one raw JSON value.
//
// Duplicate member names are refused as by the reference decoder, but
// found more cheaply than the tokenizer's own check (a linear search over
// every name of an object, for every name): known claims by a bit set,
// other names (rare) by a search among the other names of the same object,
// and inside skipped values, only when they contain an object at all,
// with jsontext.Value.IsValid's full check.
//
// It is conservative: whenever it meets something it does not handle
// exactly like the reference decoder (an error, escapes in a member name,
// null inside a list, a fractional date, a payload that is not an object,
// ...), it gives up and parseClaims runs the reference decoder, whose
// result or error is then returned. So it only has to be right when it
// succeeds, and FuzzClaimsFastPath checks that it then agrees with the
// reference decoder.

// claimDecoder is a pooled jsontext.Decoder reading a payload in place (a
// bytes.Buffer input is parsed without copying).
type claimDecoder struct {
	dec jsontext.Decoder
	in  bytes.Buffer
	raw string // the payload, as the string the claims are substrings of
	// names holds, for the objects being read, the member names that the
	// decoder checks for duplicates itself (a stack: each object's names
	// start where they did when the object began).
	names []string
}

var claimDecoders = sync.Pool{New: func() any { return new(claimDecoder) }}

// maxNames bounds the names of one object whose duplicates the decoder
// looks for itself.
const maxNames = 64

// The tokenizer's own duplicate-name check is off: the decoder does it.
var allowDuplicates = jsontext.AllowDuplicateNames(true)

// decodeClaimsFast fills c (whose raw is payload as a string) from payload.
// It reports false, leaving c in an unspecified state, when the reference
// decoder must decide.
func decodeClaimsFast(c *Claims, payload []byte) bool {
	d := claimDecoders.Get().(*claimDecoder)
	d.in = *bytes.NewBuffer(payload)
	d.dec.Reset(&d.in, allowDuplicates)
	d.raw = c.raw
	ok := d.claims(c)
	// Drop the references to the payload before pooling.
	d.in = bytes.Buffer{}
	d.dec.Reset(&d.in)
	d.raw = ""
	clear(d.names[:cap(d.names)])
	d.names = d.names[:0]
	claimDecoders.Put(d)
	return ok
}

// The claims the decoder knows, as bits of a set.
const (
	claimIss = 1 << iota
	claimSub
	claimAud
	claimExp
	claimNbf
	claimIat
	claimAuthTime
	claimJti
	claimTyp
	claimAzp
	claimSid
	claimAcr
	claimNonce
	claimAtHash
	claimCHash
	claimSHash
	claimTokenUse
	claimScope
	claimScp
	claimClientID
	claimPreferredUsername
	claimEmail
	claimEmailVerified
	claimName
	claimGivenName
	claimFamilyName
	claimEvents
	claimRealmAccess
	claimResourceAccess
)

func knownClaim(name string) uint32 {
	switch name {
	case "iss":
		return claimIss
	case "sub":
		return claimSub
	case "aud":
		return claimAud
	case "exp":
		return claimExp
	case "nbf":
		return claimNbf
	case "iat":
		return claimIat
	case "auth_time":
		return claimAuthTime
	case "jti":
		return claimJti
	case "typ":
		return claimTyp
	case "azp":
		return claimAzp
	case "sid":
		return claimSid
	case "acr":
		return claimAcr
	case "nonce":
		return claimNonce
	case "at_hash":
		return claimAtHash
	case "c_hash":
		return claimCHash
	case "s_hash":
		return claimSHash
	case "token_use":
		return claimTokenUse
	case "scope":
		return claimScope
	case "scp":
		return claimScp
	case "client_id":
		return claimClientID
	case "preferred_username":
		return claimPreferredUsername
	case "email":
		return claimEmail
	case "email_verified":
		return claimEmailVerified
	case "name":
		return claimName
	case "given_name":
		return claimGivenName
	case "family_name":
		return claimFamilyName
	case "events":
		return claimEvents
	case "realm_access":
		return claimRealmAccess
	case "resource_access":
		return claimResourceAccess
	}
	return 0
}

func (d *claimDecoder) claims(c *Claims) bool {
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	cs := &c.c
	var seen uint32
	dates := 0
	for d.dec.PeekKind() == '"' {
		name, ok := d.name()
		if !ok {
			return false
		}
		claim := knownClaim(name)
		if claim == 0 {
			// Any other claim: only checked.
			if !d.newName(0, name) || !d.skip() {
				return false
			}
			continue
		}
		if seen&claim != 0 {
			return false // duplicate
		}
		seen |= claim
		switch claim {
		// Claims whose values are walked token by token.
		case claimAud:
			ok = d.audience(c)
		case claimRealmAccess:
			ok = d.lazy(&c.roles.realmJSON, false)
		case claimResourceAccess:
			ok = d.lazy(&c.roles.resourceJSON, true)
		default:
			// Everything else is read as one value.
			v, err := d.dec.ReadValue()
			if err != nil {
				return false
			}
			switch claim {
			case claimIss:
				ok = d.str(v, &cs.Issuer)
			case claimSub:
				ok = d.str(v, &cs.Subject)
			case claimExp:
				ok = date(v, &cs.Expiry, &c.dates, &dates)
			case claimNbf:
				ok = date(v, &cs.NotBefore, &c.dates, &dates)
			case claimIat:
				ok = date(v, &cs.IssuedAt, &c.dates, &dates)
			case claimAuthTime:
				ok = date(v, &cs.AuthTime, &c.dates, &dates)
			case claimJti:
				ok = d.str(v, &cs.ID)
			case claimTyp:
				ok = d.str(v, &cs.Type)
			case claimAzp:
				ok = d.str(v, &cs.AuthorizedParty)
			case claimSid:
				ok = d.str(v, &cs.SessionID)
			case claimAcr:
				if ok = checkNested(v); ok {
					start, end := d.span(v)
					cs.ACR = rawValue(d.raw[start:end])
				}
			case claimNonce:
				ok = d.strPtr(v, &cs.Nonce, &c.hashes[0])
			case claimAtHash:
				ok = d.strPtr(v, &cs.AtHash, &c.hashes[1])
			case claimCHash:
				ok = d.strPtr(v, &cs.CHash, &c.hashes[2])
			case claimSHash:
				ok = d.strPtr(v, &cs.SHash, &c.hashes[3])
			case claimTokenUse:
				ok = d.str(v, &cs.TokenUse)
			case claimScope:
				ok = d.str(v, &cs.Scope)
			case claimScp:
				// Rare: the reference decoding, with its strictness.
				ok = jsonv2.Unmarshal(v, &cs.Scp) == nil
			case claimClientID:
				ok = d.str(v, &cs.ClientID)
			case claimPreferredUsername:
				ok = d.str(v, &cs.PreferredUsername)
			case claimEmail:
				ok = d.str(v, &cs.Email)
			case claimEmailVerified:
				ok = boolValue(v, &cs.EmailVerified)
			case claimName:
				ok = d.str(v, &cs.Name)
			case claimGivenName:
				ok = d.str(v, &cs.GivenName)
			case claimFamilyName:
				ok = d.str(v, &cs.FamilyName)
			case claimEvents:
				// Logout tokens only: the reference decoding.
				ok = jsonv2.Unmarshal(v, &cs.Events) == nil
			}
		}
		if !ok {
			return false
		}
	}
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return false
	}
	_, err := d.dec.ReadToken()
	return err == io.EOF
}

// name reads a member name. Names with escapes are left to the reference
// decoder (which matches them after unescaping).
func (d *claimDecoder) name() (string, bool) {
	v, err := d.dec.ReadValue()
	if err != nil || bytes.IndexByte(v, '\\') >= 0 {
		return "", false
	}
	start, end := d.span(v)
	return d.raw[start+1 : end-1], true
}

// newName records name as a member of the object whose names start at
// names[base], and reports false if it is a duplicate. The search is
// linear, so objects with more than maxNames such names are left to the
// reference decoder (whose tokenizer switches to a map).
func (d *claimDecoder) newName(base int, name string) bool {
	if len(d.names)-base >= maxNames {
		return false
	}
	for _, n := range d.names[base:] {
		if n == name {
			return false
		}
	}
	d.names = append(d.names, name)
	return true
}

// skip reads a value that is only checked.
func (d *claimDecoder) skip() bool {
	v, err := d.dec.ReadValue()
	return err == nil && checkNested(v)
}

// checkNested checks v, read without the tokenizer's duplicate-name check,
// for duplicate names in the objects it contains, if any.
func checkNested(v jsontext.Value) bool {
	return bytes.IndexByte(v, '{') < 0 || v.IsValid()
}

// span returns where v, the value just read, is in raw.
func (d *claimDecoder) span(v jsontext.Value) (start, end int) {
	end = int(d.dec.InputOffset())
	return end - len(v), end
}

// str takes v, the value just read, as a string claim: a JSON string or
// null (""), as the reference decoder does.
func (d *claimDecoder) str(v jsontext.Value, dst *string) bool {
	switch v.Kind() {
	case 'n':
		return true
	case '"':
		s, ok := d.unquote(v)
		*dst = s
		return ok
	}
	return false
}

// unquote returns the JSON string v, just read, as a substring of raw when
// it has no escapes.
func (d *claimDecoder) unquote(v jsontext.Value) (string, bool) {
	if bytes.IndexByte(v, '\\') < 0 {
		start, end := d.span(v)
		return d.raw[start+1 : end-1], true
	}
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err == nil
}

// strPtr takes v as a string claim whose presence matters (nonce,
// at_hash...), stored in store: null leaves it nil.
func (d *claimDecoder) strPtr(v jsontext.Value, dst **string, store *string) bool {
	if v.Kind() == 'n' {
		return true
	}
	if !d.str(v, store) {
		return false
	}
	*dst = store
	return true
}

// date takes v as a NumericDate claim, stored in the next free slot of
// store; null leaves it nil. Only integers of up to 15 digits (exact as
// float64, as numericDate requires) are handled here; fractions, exponents
// and larger numbers are left to the reference decoder.
func date(v jsontext.Value, dst **numericDate, store *[4]numericDate, used *int) bool {
	if v.Kind() == 'n' {
		return true
	}
	digits := v
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 {
		return false
	}
	var n int64
	for _, b := range digits {
		if b < '0' || b > '9' {
			return false
		}
		n = n*10 + int64(b-'0')
	}
	if len(digits) != len(v) {
		n = -n
	}
	var nd *numericDate
	if *used < len(store) {
		nd = &store[*used]
		*used++
	} else {
		nd = new(numericDate)
	}
	nd.sec = n
	*dst = nd
	return true
}

// boolValue takes v as email_verified, as flexBool does.
func boolValue(v jsontext.Value, dst *flexBool) bool {
	switch string(v) {
	case "true", `"true"`:
		*dst = true
	case "false", `"false"`, "null":
		*dst = false
	default:
		return false
	}
	return true
}

// audience reads aud: a string, an array of strings, or null. Arrays with
// null members are left to the reference decoder.
func (d *claimDecoder) audience(c *Claims) bool {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadValue()
		return err == nil
	case '"':
		v, err := d.dec.ReadValue()
		if err != nil {
			return false
		}
		s, ok := d.unquote(v)
		c.aud[0] = s
		c.c.Audience = c.aud[:1:1]
		return ok
	case '[':
	default:
		return false
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return false
	}
	l := c.aud[:0:len(c.aud)]
	for d.dec.PeekKind() == '"' {
		v, err := d.dec.ReadValue()
		if err != nil {
			return false
		}
		s, ok := d.unquote(v)
		if !ok {
			return false
		}
		l = append(l, s)
	}
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != ']' {
		return false
	}
	if len(l) == 0 {
		l = audience{} // [] decodes to an empty, non-nil list
	}
	c.c.Audience = l[:len(l):len(l)]
	return true
}

// lazy checks the next value (realm_access, or resource_access when
// resource is set) and stores its JSON text in dst.
func (d *claimDecoder) lazy(dst *string, resource bool) bool {
	// The value starts after the name just read, the colon and any
	// whitespace.
	start := int(d.dec.InputOffset())
	for start < len(d.raw) {
		switch d.raw[start] {
		case ':', ' ', '\t', '\n', '\r':
			start++
			continue
		}
		break
	}
	if ok := resource && d.resourceAccess(nil) || !resource && d.roleSet(nil); !ok {
		return false
	}
	end := int(d.dec.InputOffset())
	if start > end {
		return false
	}
	*dst = d.raw[start:end]
	return true
}

// beginObject reads the '{' of an object whose names the decoder checks
// and returns where its names start in d.names.
func (d *claimDecoder) beginObject() (base int, ok bool) {
	_, err := d.dec.ReadToken()
	return len(d.names), err == nil
}

// endObject reads the '}' of the object whose names start at base.
func (d *claimDecoder) endObject(base int) bool {
	clear(d.names[base:])
	d.names = d.names[:base]
	tok, err := d.dec.ReadToken()
	return err == nil && tok.Kind() == '}'
}

// roleSet reads a roleSet value in a shape the reference decoder accepts:
// null, or an object whose roles member, if present, is null or an array
// of strings (other members may be anything). It stores the value in dst
// unless dst is nil (verification only checks the shape).
func (d *claimDecoder) roleSet(dst *roleSet) bool {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadValue()
		return err == nil
	case '{':
	default:
		return false
	}
	base, ok := d.beginObject()
	if !ok {
		return false
	}
	for d.dec.PeekKind() == '"' {
		name, ok := d.name()
		if !ok || !d.newName(base, name) {
			return false
		}
		if name == "roles" {
			var roles *[]string
			if dst != nil {
				roles = &dst.Roles
			}
			ok = d.strings(roles)
		} else {
			ok = d.skip()
		}
		if !ok {
			return false
		}
	}
	return d.endObject(base)
}

// strings reads null or an array of strings, into dst unless it is nil.
func (d *claimDecoder) strings(dst *[]string) bool {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadValue()
		return err == nil
	case '[':
	default:
		return false
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return false
	}
	var l []string
	if dst != nil {
		l = []string{} // [] decodes to an empty, non-nil list
	}
	for d.dec.PeekKind() == '"' {
		v, err := d.dec.ReadValue()
		if err != nil {
			return false
		}
		if dst != nil {
			s, ok := d.unquote(v)
			if !ok {
				return false
			}
			l = append(l, s)
		}
	}
	if dst != nil {
		*dst = l
	}
	tok, err := d.dec.ReadToken()
	return err == nil && tok.Kind() == ']'
}

// resourceAccess reads null or an object of roleSet values, into dst
// unless it is nil.
func (d *claimDecoder) resourceAccess(dst *map[string]roleSet) bool {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadValue()
		return err == nil
	case '{':
	default:
		return false
	}
	base, ok := d.beginObject()
	if !ok {
		return false
	}
	var m map[string]roleSet
	if dst != nil {
		m = map[string]roleSet{}
		*dst = m
	}
	for d.dec.PeekKind() == '"' {
		name, ok := d.name()
		if !ok || !d.newName(base, name) {
			return false
		}
		if dst == nil {
			ok = d.roleSet(nil)
		} else {
			var rs roleSet
			ok = d.roleSet(&rs)
			m[name] = rs
		}
		if !ok {
			return false
		}
	}
	return d.endObject(base)
}

// decodeRoles decodes the JSON text of realm_access (into realm) or
// resource_access (into resource), which the fast decoder checked while
// verifying, with strings as substrings of js.
func decodeRoles(js string, realm *roleSet, resource *map[string]roleSet) {
	d := claimDecoders.Get().(*claimDecoder)
	d.in = *bytes.NewBuffer([]byte(js))
	d.dec.Reset(&d.in, allowDuplicates)
	d.raw = js
	var ok bool
	if realm != nil {
		ok = d.roleSet(realm)
	} else {
		ok = d.resourceAccess(resource)
	}
	if ok {
		_, err := d.dec.ReadToken()
		ok = err == io.EOF
	}
	d.in = bytes.Buffer{}
	d.dec.Reset(&d.in)
	d.raw = ""
	clear(d.names[:cap(d.names)])
	d.names = d.names[:0]
	claimDecoders.Put(d)
	if ok {
		return
	}
	// Not reached: the shape was checked at verification. Should it
	// happen, the reference decoding decides.
	if realm != nil {
		*realm = roleSet{}
		_ = jsonv2.Unmarshal([]byte(js), realm)
	} else {
		*resource = nil
		_ = jsonv2.Unmarshal([]byte(js), resource)
	}
}
