// Package claimsmemo lets cloakroom's gateway keep what it derives from a
// *cloakroom.Claims (the identity headers it forwards) on the claims
// themselves. Verified claims are immutable and shared: the Verifier's
// cache and login's per-session memo hand out the same *Claims for the
// same token, so a value kept on them lives exactly as long as the
// claims do, with no table of its own to bound, no weak pointers and no
// lookup by key. Users have no need for it, so it is not public API.
//
// Package cloakroom sets the accessors in an init function (its Claims
// keep the value in an atomic.Value, so one process stores values of a
// single type there: the gateway's). The parameters are *cloakroom.Claims,
// which this package cannot name because cloakroom imports it.
package claimsmemo

var (
	load  func(claims any) any
	store func(claims, v any)
)

// Set installs the accessors; package cloakroom calls it in init.
func Set(l func(claims any) any, s func(claims, v any)) { load, store = l, s }

// Load returns the value last stored on claims (a *cloakroom.Claims), or
// nil.
func Load(claims any) any { return load(claims) }

// Store keeps v on claims (a *cloakroom.Claims), replacing what was
// there. Every v stored in one process must have the same type.
func Store(claims, v any) { store(claims, v) }
