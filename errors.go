package cloakroom

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (wrapped) by Verifier.Verify. Compare with
// errors.Is; the wrapping error's message says what exactly was wrong,
// never containing the token itself.
var (
	// ErrMalformed: the token is not a compact JWS with a JSON payload.
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm: the JOSE alg is not in the verifier's allow-list
	// (always the case for "none" and HMAC algorithms).
	ErrAlgorithm = errors.New("token algorithm not allowed")
	// ErrUnknownKey: no published signing key matches the token's kid, even
	// after refetching the issuer's JWKS.
	ErrUnknownKey = errors.New("token signing key not found")
	// ErrSignature: the signature does not verify with the issuer's key.
	ErrSignature = errors.New("token signature invalid")
	// ErrExpired: exp is in the past (beyond the leeway).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: nbf is in the future, or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrIssuer: iss is not exactly the realm's issuer.
	ErrIssuer = errors.New("token issuer mismatch")
	// ErrAudience: neither aud nor azp grant access to this client.
	ErrAudience = errors.New("token audience not accepted")
	// ErrTokenType: the token is of another kind (ID, refresh or logout
	// token presented as an access token, or the reverse).
	ErrTokenType = errors.New("wrong token type")
	// ErrMissingClaim: a claim the token kind requires is absent.
	ErrMissingClaim = errors.New("required claim missing")
	// ErrInvalidClaim: a claim is present with a value that is not allowed.
	ErrInvalidClaim = errors.New("invalid claim")
	// ErrUnavailable: the identity provider could not be reached (or
	// answered garbage) and no usable cached data exists. Callers should
	// fail closed, e.g. with 503, and retry later.
	ErrUnavailable = errors.New("identity provider unavailable")
	// ErrMisconfigured: the identity provider answered, and its answer
	// means this application's settings are wrong rather than the provider
	// down: the issuer names no realm (discovery 404) or another issuer,
	// or the token endpoint refuses the client id or secret. Errors that
	// wrap it are *ProviderError with Setting naming what to fix; they also
	// wrap ErrUnavailable, so callers that only test for that keep failing
	// closed. Retrying does not help until the setting (or the provider)
	// is changed.
	ErrMisconfigured = errors.New("identity provider refuses this configuration")
)

// ErrRejected refuses a user the identity provider accepted, e.g. one
// deactivated in the application's own user table. An application hook
// (login.Config.AfterLogin, a bearer.UserMapper) returns it wrapped; the
// user sees the wrapping error's message with 403. login.ErrLoginRejected
// and bearer.ErrUserRejected wrap it, so hooks that know neither package
// (directory's) can refuse through both.
var ErrRejected = errors.New("rejected")

// ProviderError describes a failed exchange with the identity provider:
// discovery, JWKS, introspection. It wraps ErrUnavailable so that callers
// can fail closed with errors.Is(err, ErrUnavailable).
type ProviderError struct {
	Op         string // "discovery", "jwks", "introspection", ...
	URL        string // the URL requested (never carries credentials)
	StatusCode int    // HTTP status, 0 if no response
	Err        error  // underlying cause
	// Setting, when not empty, is the application setting the provider's
	// answer shows to be wrong: "issuer", "client_id" or "client_secret".
	// The error then wraps ErrMisconfigured, and Err says what to change.
	Setting string
}

func (e *ProviderError) Error() string {
	msg := e.Op + " " + e.URL
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.StatusCode)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause and ErrUnavailable, and ErrMisconfigured when
// Setting is set.
func (e *ProviderError) Unwrap() []error {
	errs := []error{ErrUnavailable}
	if e.Setting != "" {
		errs = append(errs, ErrMisconfigured)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
