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
)

// ProviderError describes a failed exchange with the identity provider:
// discovery, JWKS, introspection. It wraps ErrUnavailable so that callers
// can fail closed with errors.Is(err, ErrUnavailable).
type ProviderError struct {
	Op         string // "discovery", "jwks", "introspection", ...
	URL        string // the URL requested (never carries credentials)
	StatusCode int    // HTTP status, 0 if no response
	Err        error  // underlying cause
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

// Unwrap returns both the cause and ErrUnavailable.
func (e *ProviderError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.Err}
}
