// Package sessionmemo lets the login package keep what it derives from a
// session (the session's parsed ID-token claims and verified access-token
// claims) with the session as the session.Manager holds it decoded,
// rather than in a table of its own: a request with a session cookie then
// makes one keyed lookup for both, and what login derived lives exactly as
// long as the decoded session does, and is gone with it when the session
// is deleted (logout, back-channel logout) or replaced by another version.
// Users have no need for it, so it is not public API.
//
// Package session sets the accessors in an init function. The parameters
// are a *session.Manager and a *session.State from its Load or Get, which
// this package cannot name because session imports it.
package sessionmemo

var (
	load  func(state any) any
	store func(manager, state, v any)
)

// Set installs the accessors; package session calls it in init.
func Set(l func(state any) any, s func(manager, state, v any)) { load, store = l, s }

// Load returns the value kept with the decoded session that state (a
// *session.State from Manager.Load or Get) was made from, as it was when
// the state was loaded or last stored on, or nil.
func Load(state any) any { return load(state) }

// Store keeps v with state and with the decoded session manager (a
// *session.Manager) holds that state was made from, if manager still
// holds that one: a session deleted or replaced meanwhile is not given v.
func Store(manager, state, v any) { store(manager, state, v) }
