package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Sentinel errors; compare with errors.Is. A failed request returns an
// *APIError, which matches the sentinel of its status.
var (
	// ErrBadRequest is a 400: invalid input, e.g. a user-profile validation
	// error (APIError.Field and APIError.Params say which field and why).
	ErrBadRequest = errors.New("admin: bad request")
	// ErrUnauthorized is a 401 even after a fresh token, or a token request
	// the identity provider refused (wrong client secret or password).
	ErrUnauthorized = errors.New("admin: unauthorized")
	// ErrForbidden is a 403: the account lacks a realm-management role.
	// APIError.Role names the role the operation probably needs.
	ErrForbidden = errors.New("admin: forbidden")
	// ErrNotFound is a 404: no such user, group, session, role or client.
	ErrNotFound = errors.New("admin: not found")
	// ErrConflict is a 409, e.g. a duplicate username or email.
	ErrConflict = errors.New("admin: conflict")
	// ErrDuplicateUsername is a 409 "User exists with same username"; it
	// also matches ErrConflict.
	ErrDuplicateUsername = errors.New("admin: user exists with same username")
	// ErrDuplicateEmail is a 409 "User exists with same email"; it also
	// matches ErrConflict.
	ErrDuplicateEmail = errors.New("admin: user exists with same email")
	// ErrServer is a 5xx answer (after retries, for idempotent requests).
	ErrServer = errors.New("admin: server error")
	// ErrRateLimited is a 429 answer (after retries, for idempotent
	// requests).
	ErrRateLimited = errors.New("admin: rate limited")
	// ErrInvalidResponse is a success answer whose body is not what the
	// Admin REST API sends (not JSON, wrong shape, too large).
	ErrInvalidResponse = errors.New("admin: invalid response")
	// ErrInvalidConfig reports a Config that cannot work.
	ErrInvalidConfig = errors.New("admin: invalid configuration")
)

// APIError is an error answer of the Admin REST API. It never holds a token,
// password or request body.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Method and Path are the request's method and URL path (no query).
	Method, Path string
	// Code is Keycloak's "error" member (e.g. "User not found",
	// "HTTP 403 Forbidden", "unknown_error").
	Code string
	// Message is Keycloak's "errorMessage" (or "error_description"), e.g.
	// "User exists with same username" or a user-profile message key such
	// as "error-invalid-email".
	Message string
	// Field and Params come with user-profile validation errors.
	Field  string
	Params []string
	// Errors lists every validation error when Keycloak reports several.
	Errors []FieldError
	// Role names the realm-management role the operation probably needs
	// (403 answers only).
	Role string
}

// FieldError is one user-profile validation error.
type FieldError struct {
	Field   string   `json:"field"`
	Message string   `json:"errorMessage"`
	Params  []string `json:"params"`
}

// Error describes the failure, naming the role to grant for a 403.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	detail := e.Message
	if detail == "" {
		detail = e.Code
	}
	if detail != "" && !strings.HasPrefix(detail, "HTTP ") {
		fmt.Fprintf(&b, ": %s", detail)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s", e.Field)
		if len(e.Params) > 0 {
			fmt.Fprintf(&b, ", params %q", e.Params)
		}
		b.WriteString(")")
	}
	for i, fe := range e.Errors {
		if i == 0 && e.Field != "" && fe.Field == e.Field && fe.Message == e.Message {
			continue
		}
		fmt.Fprintf(&b, "; %s: %s", fe.Field, fe.Message)
	}
	if e.Status == http.StatusForbidden && e.Role != "" {
		fmt.Fprintf(&b, " — the account probably needs the realm-management client role %s", e.Role)
	}
	return b.String()
}

// Is matches the sentinel of the status (and the duplicate kind of a 409).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrDuplicateUsername:
		return e.Status == http.StatusConflict && strings.Contains(strings.ToLower(e.Message), "same username") &&
			!strings.Contains(strings.ToLower(e.Message), "username or email")
	case ErrDuplicateEmail:
		return e.Status == http.StatusConflict && strings.Contains(strings.ToLower(e.Message), "same email")
	case ErrServer:
		return e.Status >= 500
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// errorBody is every error shape of the Admin REST API: generic
// {"error","error_description"}, resource {"errorMessage"}, user profile
// {"field","errorMessage","params"} and {"errors":[...]}.
type errorBody struct {
	Error            *string         `json:"error"`
	ErrorDescription *string         `json:"error_description"`
	ErrorMessage     *string         `json:"errorMessage"`
	Field            *string         `json:"field"`
	Params           json.RawMessage `json:"params"`
	Errors           json.RawMessage `json:"errors"`
}

// maxErrorText bounds strings copied from an error body into an APIError.
const maxErrorText = 512

// DecodeError builds the *APIError for an error answer. Bodies that are not one
// of Keycloak's error shapes still give an APIError with the status; the body
// itself is never copied beyond the known members (bounded and sanitized).
func DecodeError(status int, method, path string, body []byte) *APIError {
	e := &APIError{Status: status, Method: method, Path: path}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if len(trimmed) > 0 {
			e.Message = fmt.Sprintf("unexpected error body (%d bytes, not a JSON object)", len(body))
		}
		return e
	}
	var eb errorBody
	if err := json.Unmarshal(trimmed, &eb); err != nil {
		e.Message = fmt.Sprintf("unexpected error body (%d bytes, not valid JSON)", len(body))
		return e
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return clean(*p)
	}
	e.Code = str(eb.Error)
	e.Message = str(eb.ErrorMessage)
	if e.Message == "" {
		e.Message = str(eb.ErrorDescription)
	}
	e.Field = str(eb.Field)
	e.Params = decodeParams(eb.Params)
	if len(eb.Errors) > 0 {
		var list []struct {
			Field        *string         `json:"field"`
			ErrorMessage *string         `json:"errorMessage"`
			Params       json.RawMessage `json:"params"`
		}
		if json.Unmarshal(eb.Errors, &list) == nil {
			for i, fe := range list {
				if i == 32 {
					break
				}
				e.Errors = append(e.Errors, FieldError{Field: str(fe.Field), Message: str(fe.ErrorMessage), Params: decodeParams(fe.Params)})
			}
		}
		if e.Field == "" && e.Message == "" && len(e.Errors) > 0 {
			e.Field, e.Message, e.Params = e.Errors[0].Field, e.Errors[0].Message, e.Errors[0].Params
		}
	}
	return e
}

// decodeParams reads "params": Keycloak sends strings, sometimes numbers.
func decodeParams(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for i, it := range items {
		if i == 16 {
			break
		}
		var s string
		if json.Unmarshal(it, &s) == nil {
			out = append(out, clean(s))
			continue
		}
		out = append(out, clean(string(bytes.TrimSpace(it))))
	}
	return out
}

// clean bounds a string from a response and drops control characters, so
// an error message cannot forge log lines.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
