package keycloaktest

import (
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// keyFor returns the active signing key for alg, generating (and so
// publishing) one the first time, like adding a key provider to a realm.
func (r *Realm) keyFor(alg string) (*realmKey, error) {
	r.mu.RLock()
	k := r.active[alg]
	r.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	// Generate outside the lock: RSA generation can take a while and must
	// not stall requests for this realm.
	nk, err := newRealmKey(alg, "sig", r.name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.active[alg]; k != nil {
		return k, nil // another goroutine won; the fresh key is simply dropped
	}
	r.keys = append(r.keys, nk)
	r.active[alg] = nk
	return nk, nil
}

// NewKey generates a new signing key for alg (RS256, ES256 or PS256) and
// makes it the active key for that algorithm. Keys it replaces stay
// published (passive), so tokens they signed still verify.
func (r *Realm) NewKey(alg string) (kid string, err error) {
	if !slices.Contains([]string{RS256, ES256, PS256}, alg) {
		return "", fmt.Errorf("%w: signing key algorithm %q", ErrUnsupportedAlgorithm, alg)
	}
	nk, err := newRealmKey(alg, "sig", r.name)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, nk)
	r.active[alg] = nk
	return nk.kid, nil
}

// RotateKey makes a never-used key the active signing key for the realm's
// algorithm and returns its kid. The previous key stays in the JWKS as a
// passive key. It returns "" only if key generation fails, which crypto/rand
// makes practically impossible; the failure is logged.
func (r *Realm) RotateKey() (kid string) {
	kid, err := r.NewKey(r.signatureAlgorithm())
	if err != nil {
		r.srv.logger.Error("keycloaktest: rotate key", "realm", r.name, "error", err)
		return ""
	}
	return kid
}

// RemoveKey unpublishes a signing key; every token it signed stops
// verifying at once, as when a Keycloak key provider is deleted. If it was
// the active key, the newest remaining key of its algorithm takes over (or
// a new one is generated on next use).
func (r *Realm) RemoveKey(kid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.keys, func(k *realmKey) bool { return k.kid == kid })
	if i < 0 {
		return fmt.Errorf("%w: %q in realm %q", ErrUnknownKey, kid, r.name)
	}
	removed := r.keys[i]
	r.keys = slices.Delete(r.keys, i, i+1)
	if r.active[removed.alg] == removed {
		delete(r.active, removed.alg)
		for j := len(r.keys) - 1; j >= 0; j-- {
			if r.keys[j].alg == removed.alg {
				r.active[removed.alg] = r.keys[j]
				break
			}
		}
	}
	return nil
}

// ActiveKeyID returns the kid of the key that signs the realm's access and
// ID tokens, generating the key if the realm has none yet ("" if that fails).
func (r *Realm) ActiveKeyID() string {
	k, err := r.keyFor(r.signatureAlgorithm())
	if err != nil {
		r.srv.logger.Error("keycloaktest: realm key", "realm", r.name, "error", err)
		return ""
	}
	return k.kid
}

func (r *Realm) signatureAlgorithm() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cfg.DefaultSignatureAlgorithm
}

// publishedKey finds a published signing key by kid.
func (r *Realm) publishedKey(kid string) *realmKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// jwks is the realm's JWK set: every published signing key plus the
// encryption key, as Keycloak serves at .../certs.
func (r *Realm) jwks() (jose.JSONWebKeySet, error) {
	if _, err := r.keyFor(r.signatureAlgorithm()); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	enc, err := sharedEncKey()
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(r.keys)+1)}
	for _, k := range r.keys {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	set.Keys = append(set.Keys, enc.publicJWK())
	return set, nil
}
