// Package realmx gives cloakroom's own sub-packages (bearer, login, admin)
// and their tests what a cloakroom.Realm and a cloakroom.Verifier know but
// do not export: how the Realm reaches the provider (HTTP client, timeout,
// logger, clock), how it reads a token endpoint refusing the client, and
// what kind of token a Verifier checks and with which profile. Users
// configure these with RealmOptions and VerifierConfig and never need to
// read them back, so they are not part of the public API.
//
// Package cloakroom sets the accessors in an init function. Their
// parameter types are cloakroom's (*Realm, *Verifier), which this package
// cannot name because cloakroom imports it; the generic functions below
// take them as type parameters, so callers stay typed:
//
//	conn := realmx.Of(realm)                           // realm is a *cloakroom.Realm
//	info := realmx.OfVerifier[*cloakroom.Realm](verifier)
package realmx

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Conn is how a Realm reaches its provider.
type Conn struct {
	// Client is the HTTP client (cloakroom.WithHTTPClient, or a default
	// that honours HTTP(S)_PROXY).
	Client *http.Client
	// Timeout bounds each request to the provider
	// (cloakroom.WithRequestTimeout). Packages that reach the provider
	// with Client apply it too, so that a client set with WithHTTPClient
	// and no Timeout of its own cannot wait forever.
	Timeout time.Duration
	// Logger is the Realm's logger (cloakroom.WithLogger).
	Logger *slog.Logger
	// Now is the Realm's clock (cloakroom.WithClock).
	Now func() time.Time
	// KeyFetches returns how many JWKS fetches the Realm has started (for
	// tests).
	KeyFetches func() int64
	// KeyEpoch returns the Realm's key-set epoch, which changes whenever a
	// key the provider published disappears: a result verified at one
	// epoch is not to be reused at another (login's per-session memo of
	// verified claims checks it, as the Verifier's token cache does).
	KeyEpoch func() uint64
	// ClientRefusal classifies an error answer of the token endpoint to a
	// request authenticated as clientID: when the provider refuses the
	// client itself (a wrong secret, an unknown client) rather than the
	// grant, a *cloakroom.ProviderError naming the setting to fix and
	// wrapping cloakroom.ErrMisconfigured; otherwise nil.
	ClientRefusal func(tokenURL, clientID string, status int, code, desc string) error
}

// Verifier is what a sibling package reads of a *cloakroom.Verifier; R is
// *cloakroom.Realm.
type Verifier[R any] struct {
	// Realm is the Realm the Verifier trusts.
	Realm R
	// AccessTokens reports whether it verifies access tokens; Kind names
	// the kind it verifies ("access token", "ID token", "logout token").
	AccessTokens bool
	Kind         string
	// Generic resolves the Verifier's profile (for AutoDetect, from the
	// provider's discovery document, fetched once) and reports whether the
	// generic OIDC rules apply. Errors wrap cloakroom.ErrUnavailable.
	Generic func(ctx context.Context) (bool, error)
	// Caches reports whether the Verifier keeps verified tokens
	// (VerifierConfig.CacheEntries not negative): callers may then reuse
	// a result until the token's exp or a key-set epoch change, as the
	// Verifier itself would.
	Caches bool
}

var realmHook, verifierHook any

// Set installs the accessors. Only package cloakroom calls it.
func Set[R, V any](realm func(R) Conn, verifier func(V) Verifier[R]) {
	realmHook, verifierHook = realm, verifier
}

// Of returns how realm reaches its provider.
func Of[R any](realm R) Conn { return realmHook.(func(R) Conn)(realm) }

// OfVerifier returns what sibling packages read of v. R must be given:
// realmx.OfVerifier[*cloakroom.Realm](v).
func OfVerifier[R, V any](v V) Verifier[R] { return verifierHook.(func(V) Verifier[R])(v) }
