package keycloaktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Reading request bodies the way Keycloak's admin API does. Keycloak binds
// JSON with Jackson, and the answers differ by what went wrong, in the
// order Jackson meets it while streaming through the document:
//
//   - not JSON at all: 400 {"error":"invalid_request","error_description":"Cannot parse the JSON"}
//   - JSON of the wrong shape (an array for an object, an object for a
//     string, "yes" for a boolean): 400 {"error":"unknown_error","error_description":"Cannot parse the JSON"}
//   - a member the representation does not have: 400 {"error":"Invalid json
//     representation for UserRepresentation. Unrecognized field \"x\" at
//     line 1 column 11."}, the position being where Jackson's parser stood
//     (just inside a string, object or array value, just after a number or
//     literal).
//
// Jackson is lenient in other ways, and so is this: scalars convert to
// strings ("email":5 is "5"), "true"/"false" strings and integers to
// booleans, numeric strings to numbers, null is the same as absent, and
// anything after the first JSON value is ignored.

// repKind is the Java type a representation member binds to.
type repKind int

const (
	jsonString     repKind = iota // String
	jsonBool                      // Boolean
	jsonLong                      // Long or Integer
	jsonStringList                // List<String> or Set<String>
	jsonAttributes                // Map<String, List<String>> (StringListMapDeserializer)
	jsonAny                       // anything well-formed; not used by keycloaktest
	jsonObjects                   // List<some representation>
)

// repMember describes one member of a representation.
type repMember struct {
	kind repKind
	elem *repClass // for jsonObjects
}

// repClass describes a Keycloak representation class.
type repClass struct {
	name    string // Java class name, for the unknown-member message
	members map[string]repMember
}

var (
	federatedIdentityRepJSON = &repClass{name: "FederatedIdentityRepresentation", members: map[string]repMember{
		"identityProvider": {kind: jsonString}, "userId": {kind: jsonString}, "userName": {kind: jsonString},
	}}
	credentialRepJSON = &repClass{name: "CredentialRepresentation", members: map[string]repMember{
		"id": {kind: jsonString}, "type": {kind: jsonString}, "userLabel": {kind: jsonString},
		"createdDate": {kind: jsonLong}, "secretData": {kind: jsonString}, "credentialData": {kind: jsonString},
		"priority": {kind: jsonLong}, "value": {kind: jsonString}, "temporary": {kind: jsonBool},
		"device": {kind: jsonString}, "hashedSaltedValue": {kind: jsonString}, "salt": {kind: jsonString},
		"hashIterations": {kind: jsonLong}, "counter": {kind: jsonLong}, "algorithm": {kind: jsonString},
		"digits": {kind: jsonLong}, "period": {kind: jsonLong}, "config": {kind: jsonAny},
		"federationLink": {kind: jsonString},
	}}
	userRepJSON = &repClass{name: "UserRepresentation", members: map[string]repMember{
		"id": {kind: jsonString}, "username": {kind: jsonString}, "firstName": {kind: jsonString},
		"lastName": {kind: jsonString}, "email": {kind: jsonString}, "emailVerified": {kind: jsonBool},
		"attributes": {kind: jsonAttributes}, "userProfileMetadata": {kind: jsonAny},
		"self": {kind: jsonString}, "origin": {kind: jsonString}, "createdTimestamp": {kind: jsonLong},
		"enabled": {kind: jsonBool}, "totp": {kind: jsonBool}, "federationLink": {kind: jsonString},
		"serviceAccountClientId":     {kind: jsonString},
		"credentials":                {kind: jsonObjects, elem: credentialRepJSON},
		"disableableCredentialTypes": {kind: jsonStringList}, "requiredActions": {kind: jsonStringList},
		"federatedIdentities": {kind: jsonObjects, elem: federatedIdentityRepJSON},
		"realmRoles":          {kind: jsonStringList}, "clientRoles": {kind: jsonAny},
		"clientConsents": {kind: jsonAny}, "notBefore": {kind: jsonLong}, "applicationRoles": {kind: jsonAny},
		"socialLinks": {kind: jsonAny}, "groups": {kind: jsonStringList}, "access": {kind: jsonAny},
	}}
)

// repObj is a decoded representation: member name -> string, bool,
// int64, []string, map[string][]string, []repObj or json.RawMessage
// (jsonAny). Members that were null are left out, as Jackson leaves the
// field null.
type repObj map[string]any

func (o repObj) str(name string) *string {
	if v, ok := o[name].(string); ok {
		return &v
	}
	return nil
}

func (o repObj) boolean(name string) *bool {
	if v, ok := o[name].(bool); ok {
		return &v
	}
	return nil
}

func (o repObj) long(name string) *int64 {
	if v, ok := o[name].(int64); ok {
		return &v
	}
	return nil
}

func (o repObj) list(name string) ([]string, bool) {
	v, ok := o[name].([]string)
	return v, ok
}

func (o repObj) objects(name string) []repObj {
	v, _ := o[name].([]repObj)
	return v
}

// bodyError is why a body could not be bound; resp is Keycloak's answer.
type bodyError struct{ resp adminResp }

func (e *bodyError) Error() string { return fmt.Sprint(e.resp.body) }

func errNotJSON() *bodyError {
	return &bodyError{respJSON(http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Cannot parse the JSON"})}
}

func errBadShape() *bodyError {
	return &bodyError{respJSON(http.StatusBadRequest, map[string]string{"error": "unknown_error", "error_description": "Cannot parse the JSON"})}
}

// decodeRepBody binds body to rep. A body that is empty or the JSON null
// gives a nil object and no error: Keycloak's resource method then gets
// null, and each endpoint answers that its own way.
func decodeRepBody(body []byte, rep *repClass) (repObj, error) {
	v, err := decodeJacksonBody(body, repMember{kind: jsonObjects, elem: rep}, true)
	o, _ := v.(repObj)
	return o, err
}

// decodeStringListBody binds a List<String> body (execute-actions-email).
// Empty or null gives nil.
func decodeStringListBody(body []byte) ([]string, error) {
	v, err := decodeJacksonBody(body, repMember{kind: jsonStringList}, false)
	l, _ := v.([]string)
	return l, err
}

func decodeJacksonBody(body []byte, m repMember, single bool) (any, error) {
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return nil, nil
	}
	d := &repDecoder{all: body, dec: json.NewDecoder(bytes.NewReader(body))}
	d.dec.UseNumber()
	if single {
		// The body is one object, not a list of them.
		tok, err := d.dec.Token()
		switch {
		case err != nil:
			return nil, errNotJSON()
		case tok == nil:
			return nil, nil
		case tok != json.Delim('{'):
			return nil, errBadShape()
		}
		return d.object(m.elem)
	}
	return d.value(m)
}

// repDecoder streams through a body as Jackson does, so that the first
// problem in document order is the one reported.
type repDecoder struct {
	all []byte // the whole body, for line and column numbers
	dec *json.Decoder
}

// object reads the members of an object whose "{" was read.
func (d *repDecoder) object(rep *repClass) (repObj, error) {
	out := repObj{}
	for d.dec.More() {
		kt, err := d.dec.Token()
		if err != nil {
			return nil, errNotJSON()
		}
		key, _ := kt.(string)
		m, known := rep.members[key]
		if !known {
			line, col := d.position(valueStop(d.all, int(d.dec.InputOffset())))
			return nil, &bodyError{respError(http.StatusBadRequest, fmt.Sprintf(
				"Invalid json representation for %s. Unrecognized field %q at line %d column %d.", rep.name, key, line, col))}
		}
		v, err := d.value(m)
		if err != nil {
			return nil, err
		}
		if v == nil {
			delete(out, key)
		} else {
			out[key] = v
		}
	}
	if _, err := d.dec.Token(); err != nil {
		return nil, errNotJSON()
	}
	return out, nil
}

// value reads one value of kind m. nil means null.
func (d *repDecoder) value(m repMember) (any, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, errNotJSON()
	}
	if tok == nil {
		return nil, nil
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return coerceScalar(tok, m.kind)
	}
	switch {
	case m.kind == jsonAny:
		if err := d.skip(); err != nil {
			return nil, err
		}
		return json.RawMessage("null"), nil
	case delim == '{' && m.kind == jsonAttributes:
		out := map[string][]string{}
		for d.dec.More() {
			kt, err := d.dec.Token()
			if err != nil {
				return nil, errNotJSON()
			}
			key, _ := kt.(string)
			tok, err := d.dec.Token()
			switch {
			case err != nil:
				return nil, errNotJSON()
			case tok == json.Delim('['):
				vals, err := d.scalars()
				if err != nil {
					return nil, err
				}
				out[key] = vals
			case tok == nil:
				out[key] = nil
			default:
				if _, ok := tok.(json.Delim); ok {
					return nil, errBadShape()
				}
				s, _ := scalarText(tok)
				out[key] = []string{s}
			}
		}
		if _, err := d.dec.Token(); err != nil {
			return nil, errNotJSON()
		}
		return out, nil
	case delim == '[' && m.kind == jsonAttributes:
		// StringListMapDeserializer takes an empty array for an empty map.
		if tok, err := d.dec.Token(); err != nil {
			return nil, errNotJSON()
		} else if tok != json.Delim(']') {
			return nil, errBadShape()
		}
		return map[string][]string{}, nil
	case delim == '[' && m.kind == jsonStringList:
		return d.scalars()
	case delim == '[' && m.kind == jsonObjects:
		out := []repObj{}
		for d.dec.More() {
			tok, err := d.dec.Token()
			switch {
			case err != nil:
				return nil, errNotJSON()
			case tok == nil:
				continue
			case tok != json.Delim('{'):
				return nil, errBadShape()
			}
			o, err := d.object(m.elem)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		if _, err := d.dec.Token(); err != nil {
			return nil, errNotJSON()
		}
		return out, nil
	}
	return nil, errBadShape()
}

// scalars reads the rest of an array of scalars as strings (nulls
// dropped).
func (d *repDecoder) scalars() ([]string, error) {
	out := []string{}
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return nil, errNotJSON()
		}
		if tok == nil {
			continue
		}
		if _, ok := tok.(json.Delim); ok {
			return nil, errBadShape()
		}
		s, _ := scalarText(tok)
		out = append(out, s)
	}
	if _, err := d.dec.Token(); err != nil {
		return nil, errNotJSON()
	}
	return out, nil
}

// skip reads the rest of an object or array whose opening was read.
func (d *repDecoder) skip() error {
	for depth := 1; depth > 0; {
		tok, err := d.dec.Token()
		if err != nil {
			return errNotJSON()
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// valueStop is where Jackson's parser stands when it reports an unknown
// member whose name ends at off: past the opening quote or bracket of the
// value, or past a whole number or literal.
func valueStop(src []byte, off int) int {
	i := off
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n' || src[i] == ':') {
		i++
	}
	if i >= len(src) {
		return i
	}
	switch src[i] {
	case '"', '{', '[':
		return i + 1
	}
	for i < len(src) && !strings.ContainsRune(" \t\r\n,]}", rune(src[i])) {
		i++
	}
	return i
}

// position is Jackson's 1-based line and column (in bytes) of the parser
// standing after n bytes of the body.
func (d *repDecoder) position(n int) (line, col int) {
	n = min(n, len(d.all))
	line = 1 + bytes.Count(d.all[:n], []byte{'\n'})
	col = n - (bytes.LastIndexByte(d.all[:n], '\n') + 1) + 1
	return line, col
}

// coerceScalar converts a JSON scalar (not null) as Jackson's default
// deserializers do.
func coerceScalar(v any, kind repKind) (any, error) {
	switch kind {
	case jsonString:
		if s, ok := scalarText(v); ok {
			return s, nil
		}
	case jsonBool:
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			switch v {
			case "true", "True", "TRUE":
				return true, nil
			case "false", "False", "FALSE":
				return false, nil
			case "":
				return nil, nil
			}
		case json.Number:
			if n, err := v.Int64(); err == nil {
				return n != 0, nil
			}
		}
	case jsonLong:
		switch v := v.(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil {
				return n, nil
			}
			if f, err := v.Float64(); err == nil && !math.IsInf(f, 0) && math.Abs(f) < 1<<63 {
				return int64(f), nil
			}
		case string:
			if v == "" {
				return nil, nil
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n, nil
			}
		}
	case jsonAny:
		return json.RawMessage("null"), nil
	}
	return nil, errBadShape()
}

// scalarText is a JSON scalar as Jackson's StringDeserializer reads it.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
