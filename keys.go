package cloakroom

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted from a JWKS.
const minRSABits = 2048

// publicKey is one usable signing key from the provider's JWKS.
type publicKey struct {
	kid string
	alg string // the JWK's alg member, "" if absent
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet caches the provider's signing keys. An unknown kid triggers a
// refetch, at most once per refetch interval, with concurrent callers
// sharing one fetch; when the provider is down the cached keys keep working.
type keySet struct {
	realm *Realm

	mu        sync.RWMutex
	keys      map[string]*publicKey
	fetchedAt time.Time // last successful fetch
	attempt   time.Time // last fetch attempt, successful or not
	refetchAt time.Time // last fetch caused by an unknown kid
	lastErr   error     // error of the last attempt, nil if it succeeded
	inflight  *fetchCall

	// epoch changes whenever a previously published key disappears, so that
	// results verified with it (the token cache) stop being trusted.
	epoch      atomic.Uint64
	refreshing atomic.Bool
	fetches    atomic.Int64
}

type fetchCall struct {
	done chan struct{}
	err  error
}

func newKeySet(r *Realm) *keySet { return &keySet{realm: r} }

// failureBackoff bounds retries after a failed fetch when no keys are known
// yet.
const failureBackoff = time.Second

// key returns the signing key with the given kid.
func (s *keySet) key(ctx context.Context, kid string) (*publicKey, error) {
	now := s.realm.now()
	s.mu.RLock()
	k := s.keys[kid]
	stale := !s.fetchedAt.IsZero() && now.Sub(s.fetchedAt) > s.realm.keysMaxAge
	s.mu.RUnlock()
	if k != nil {
		if stale {
			s.refreshInBackground()
		}
		return k, nil
	}
	s.mu.Lock()
	if k := s.keys[kid]; k != nil {
		s.mu.Unlock()
		return k, nil
	}
	call := s.inflight
	if call == nil {
		// Only fetches caused by unknown kids count against the refetch
		// interval: a key rotated just after start is picked up at once.
		last, cooldown := s.refetchAt, s.realm.refetch
		if s.keys == nil && s.lastErr != nil {
			// Nothing usable yet: retry soon, so a service recovers
			// quickly once the provider is back.
			last, cooldown = s.attempt, min(cooldown, failureBackoff)
		}
		if !last.IsZero() && now.Sub(last) < cooldown {
			err := s.unknownKeyErr(kid)
			s.mu.Unlock()
			return nil, err
		}
		if s.keys != nil {
			s.refetchAt = now
		}
		call = s.startFetch(ctx)
	}
	s.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, &ProviderError{Op: "jwks", URL: s.realm.issuer, Err: ctx.Err()}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if k := s.keys[kid]; k != nil {
		return k, nil
	}
	return nil, s.unknownKeyErr(kid)
}

// unknownKeyErr explains why kid cannot be found; s.mu must be held.
func (s *keySet) unknownKeyErr(kid string) error {
	if s.keys == nil && s.lastErr != nil {
		return s.lastErr
	}
	if s.lastErr != nil {
		return fmt.Errorf("%w: no key with kid %q among the cached keys, and refreshing them failed: %w", ErrUnknownKey, kid, s.lastErr)
	}
	return fmt.Errorf("%w: the issuer publishes no signing key with kid %q", ErrUnknownKey, kid)
}

// startFetch begins a fetch shared by every caller; s.mu must be held.
func (s *keySet) startFetch(ctx context.Context) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	s.inflight = call
	s.attempt = s.realm.now()
	// The fetch outlives the caller that started it: others wait for it.
	fctx := context.WithoutCancel(ctx)
	go func() {
		err := s.fetch(fctx)
		s.mu.Lock()
		s.inflight = nil
		s.lastErr = err
		s.mu.Unlock()
		call.err = err
		close(call.done)
	}()
	return call
}

// refreshInBackground refetches an old key set without blocking the caller.
func (s *keySet) refreshInBackground() {
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	var call *fetchCall
	if s.inflight == nil && s.realm.now().Sub(s.attempt) >= s.realm.refetch {
		call = s.startFetch(context.Background())
	}
	s.mu.Unlock()
	go func() {
		if call != nil {
			<-call.done
		}
		s.refreshing.Store(false)
	}()
}

// refresh forces a fetch now (shared with any in-flight one) and reports
// its error.
func (s *keySet) refresh(ctx context.Context) error {
	s.mu.Lock()
	call := s.inflight
	if call == nil {
		call = s.startFetch(ctx)
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *keySet) fetch(ctx context.Context) error {
	s.fetches.Add(1)
	meta, err := s.realm.Discover(ctx)
	if err != nil {
		return err
	}
	body, status, err := s.realm.get(ctx, meta.JWKSURI, "application/jwk-set+json, application/json")
	if err != nil {
		err = &ProviderError{Op: "jwks", URL: meta.JWKSURI, StatusCode: status, Err: err}
		s.realm.logger.Warn("cloakroom: fetching signing keys failed; cached keys stay in use", "issuer", s.realm.issuer, "error", err)
		return err
	}
	keys, skipped, err := parseJWKS(body)
	for _, msg := range skipped {
		s.realm.logger.Warn("cloakroom: ignoring a key in the JWKS", "issuer", s.realm.issuer, "reason", msg)
	}
	if err != nil {
		err = &ProviderError{Op: "jwks", URL: meta.JWKSURI, StatusCode: status, Err: err}
		s.realm.logger.Warn("cloakroom: unusable JWKS; cached keys stay in use", "issuer", s.realm.issuer, "error", err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for kid := range s.keys {
		if keys[kid] == nil {
			s.epoch.Add(1)
			break
		}
	}
	s.keys = keys
	s.fetchedAt = s.realm.now()
	return nil
}

// parseJWKS keeps every public signing key with a kid; a broken key is
// skipped (with a reason) rather than discarding the whole set.
func parseJWKS(data []byte) (map[string]*publicKey, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object with a keys array: %s", jsonErrorText(err))
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`JWKS has no "keys" member`)
	}
	keys := make(map[string]*publicKey, len(doc.Keys))
	var skipped []string
	dup := map[string]bool{}
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		if k == nil {
			continue // an encryption key: not for us, not an error
		}
		if keys[k.kid] != nil || dup[k.kid] {
			// Two signing keys with one kid make the choice ambiguous.
			delete(keys, k.kid)
			dup[k.kid] = true
			skipped = append(skipped, fmt.Sprintf("keys[%d]: kid %q is used by more than one signing key", i, k.kid))
			continue
		}
		keys[k.kid] = k
	}
	if len(keys) == 0 {
		msg := fmt.Sprintf("JWKS has no usable signing key (%d keys listed)", len(doc.Keys))
		if len(skipped) > 0 {
			msg += "; " + strings.Join(skipped, "; ")
		}
		return nil, skipped, errors.New(msg)
	}
	return keys, skipped, nil
}

// parseJWK returns nil, nil for keys that are not meant for signatures.
func parseJWK(raw json.RawMessage) (*publicKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("invalid key: %v", trimJoseErr(err))
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil, nil
	}
	if jwk.KeyID == "" {
		return nil, errors.New("key has no kid")
	}
	if !jwk.IsPublic() {
		return nil, fmt.Errorf("kid %q: not a public key (symmetric or private keys are never used)", jwk.KeyID)
	}
	if !jwk.Valid() {
		return nil, fmt.Errorf("kid %q: key material is invalid", jwk.KeyID)
	}
	switch pk := jwk.Key.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("kid %q: RSA key of %d bits is too small (minimum %d)", jwk.KeyID, pk.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() && pk.Curve != elliptic.P384() && pk.Curve != elliptic.P521() {
			return nil, fmt.Errorf("kid %q: unsupported curve", jwk.KeyID)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("kid %q: unsupported key type %T", jwk.KeyID, jwk.Key)
	}
	return &publicKey{kid: jwk.KeyID, alg: jwk.Algorithm, key: jwk.Key}, nil
}

// trimJoseErr drops go-jose's package prefix from its error messages.
func trimJoseErr(err error) string {
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}

// fits reports whether key k may verify a signature made with alg: the key
// type must match the algorithm family, and the JWK's own alg, if set, must
// equal it.
func (k *publicKey) fits(alg string) error {
	if k.alg != "" && k.alg != alg {
		return fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, k.kid, k.alg, alg)
	}
	ok := false
	switch pk := k.key.(type) {
	case *rsa.PublicKey:
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			ok = pk.Curve == elliptic.P256()
		case "ES384":
			ok = pk.Curve == elliptic.P384()
		case "ES512":
			ok = pk.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("%w: key %q (%s) cannot verify %s signatures", ErrAlgorithm, k.kid, keyTypeName(k.key), alg)
	}
	return nil
}

func keyTypeName(k any) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "OKP"
	}
	return fmt.Sprintf("%T", k)
}

// RefreshKeys fetches the provider's JWKS now (sharing any fetch already
// under way). It is not needed in normal operation: keys are fetched on
// first use and whenever a token names an unknown key.
func (r *Realm) RefreshKeys(ctx context.Context) error { return r.keys.refresh(ctx) }
