package cloakroom

import "context"

// Unexported for users, exported for the external tests of this package.

// DetectProfile is the discovery-document check behind AutoDetect.
var DetectProfile = detectProfile

// ResolveProfile is the profile a Verifier configured with p applies.
func (r *Realm) ResolveProfile(ctx context.Context, p Profile) (Profile, error) {
	return r.resolveProfile(ctx, p)
}
