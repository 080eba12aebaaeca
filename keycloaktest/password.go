package keycloaktest

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
)

// Password hash algorithms of Keycloak's pbkdf2 family.
const (
	PBKDF2SHA256 = "pbkdf2-sha256"
	PBKDF2SHA512 = "pbkdf2-sha512"
	PBKDF2SHA1   = "pbkdf2" // Keycloak's name for PBKDF2WithHmacSHA1
)

// PasswordHash is a hashed password credential in Keycloak's terms: the
// "algorithm" and "hashIterations" of credentialData and the "salt" and
// "value" of secretData.
type PasswordHash struct {
	// Algorithm is PBKDF2SHA256, PBKDF2SHA512 or PBKDF2SHA1.
	Algorithm string
	// Iterations is the PBKDF2 iteration count.
	Iterations int
	// Salt and Hash are the raw (not base64) salt and derived key; the
	// derived key length is len(Hash).
	Salt, Hash []byte
}

// HashPassword hashes password with a fresh 16-byte salt the way Keycloak's
// pbkdf2 providers do (derived key of 32 bytes for pbkdf2-sha256, 64 bytes
// otherwise).
func HashPassword(password, algorithm string, iterations int) (*PasswordHash, error) {
	h, keyLen, err := pbkdf2Params(algorithm)
	if err != nil {
		return nil, err
	}
	if iterations <= 0 {
		return nil, fmt.Errorf("%w: hash iterations must be positive, got %d", ErrInvalidConfig, iterations)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("keycloaktest: salt: %w", err)
	}
	dk, err := pbkdf2.Key(h, password, salt, iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: hash password: %w", err)
	}
	return &PasswordHash{Algorithm: algorithm, Iterations: iterations, Salt: salt, Hash: dk}, nil
}

// pbkdf2Params maps a Keycloak algorithm id to its PRF and default key size.
func pbkdf2Params(algorithm string) (func() hash.Hash, int, error) {
	switch algorithm {
	case PBKDF2SHA256:
		return sha256.New, 32, nil
	case PBKDF2SHA512:
		return sha512.New, 64, nil
	case PBKDF2SHA1:
		return sha1.New, 64, nil
	}
	return nil, 0, fmt.Errorf("%w: password hash algorithm %q (supported: pbkdf2-sha256, pbkdf2-sha512, pbkdf2)", ErrUnsupportedAlgorithm, algorithm)
}

// validate checks that the hash can be verified at all.
func (p *PasswordHash) validate() error {
	if _, _, err := pbkdf2Params(p.Algorithm); err != nil {
		return err
	}
	if p.Iterations <= 0 {
		return fmt.Errorf("%w: hash iterations must be positive, got %d", ErrInvalidConfig, p.Iterations)
	}
	if len(p.Hash) == 0 {
		return fmt.Errorf("%w: empty password hash", ErrInvalidConfig)
	}
	return nil
}

// verify reports whether password matches, in constant time over the hash.
func (p *PasswordHash) verify(password string) bool {
	h, _, err := pbkdf2Params(p.Algorithm)
	if err != nil || p.Iterations <= 0 || len(p.Hash) == 0 {
		return false
	}
	dk, err := pbkdf2.Key(h, password, p.Salt, p.Iterations, len(p.Hash))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(dk, p.Hash) == 1
}

// clone returns a deep copy so callers cannot mutate realm state.
func (p *PasswordHash) clone() *PasswordHash {
	if p == nil {
		return nil
	}
	return &PasswordHash{Algorithm: p.Algorithm, Iterations: p.Iterations,
		Salt: append([]byte(nil), p.Salt...), Hash: append([]byte(nil), p.Hash...)}
}
