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
	"strconv"

	"golang.org/x/crypto/argon2"
)

// Password hash algorithms: Keycloak's pbkdf2 family and argon2, the
// default of Keycloak 25 and newer (outside FIPS mode).
const (
	PBKDF2SHA256 = "pbkdf2-sha256"
	PBKDF2SHA512 = "pbkdf2-sha512"
	PBKDF2SHA1   = "pbkdf2" // Keycloak's name for PBKDF2WithHmacSHA1
	Argon2       = "argon2"
)

// Keycloak's argon2 defaults (Argon2PasswordHashProviderFactory): argon2id
// version 1.3, 5 iterations, 7 MiB, one lane, 32-byte hash.
const (
	argon2DefaultIterations  = 5
	argon2DefaultMemory      = 7168
	argon2DefaultParallelism = 1
	argon2DefaultHashLength  = 32
)

// PasswordHash is a hashed password credential in Keycloak's terms: the
// "algorithm" and "hashIterations" of credentialData and the "salt" and
// "value" of secretData.
type PasswordHash struct {
	// Algorithm is PBKDF2SHA256, PBKDF2SHA512, PBKDF2SHA1 or Argon2.
	Algorithm string
	// Iterations is the PBKDF2 iteration count, or argon2's time cost.
	Iterations int
	// Salt and Hash are the raw (not base64) salt and derived key; the
	// derived key length is len(Hash).
	Salt, Hash []byte
	// Argon2 holds argon2's other parameters (credentialData's
	// "additionalParameters"); nil means Keycloak's defaults.
	Argon2 *Argon2Params
}

// Argon2Params are the argon2 parameters Keycloak records with a hash.
type Argon2Params struct {
	// Type is "id" (Keycloak's default) or "i". Keycloak also offers "d",
	// which Go's argon2 package does not implement.
	Type string
	// Memory is the memory cost in KiB (Keycloak's default 7168).
	Memory uint32
	// Parallelism is the number of lanes (default 1).
	Parallelism uint8
}

// HashPassword hashes password with a fresh 16-byte salt the way Keycloak's
// providers do: for pbkdf2 a derived key of 32 bytes (pbkdf2-sha256) or 64
// bytes; for Argon2 Keycloak's defaults (argon2id, 7 MiB, one lane, 32-byte
// hash) with iterations as the time cost.
func HashPassword(password, algorithm string, iterations int) (*PasswordHash, error) {
	if iterations <= 0 {
		return nil, fmt.Errorf("%w: hash iterations must be positive, got %d", ErrInvalidConfig, iterations)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("keycloaktest: salt: %w", err)
	}
	if algorithm == Argon2 {
		p := &PasswordHash{Algorithm: Argon2, Iterations: iterations, Salt: salt, Hash: make([]byte, argon2DefaultHashLength)}
		p.Hash = p.derive(password)
		return p, nil
	}
	h, keyLen, err := pbkdf2Params(algorithm)
	if err != nil {
		return nil, err
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
	return nil, 0, fmt.Errorf("%w: password hash algorithm %q (supported: argon2, pbkdf2-sha256, pbkdf2-sha512, pbkdf2)", ErrUnsupportedAlgorithm, algorithm)
}

// Bounds on imported argon2 parameters, so that a hostile realm file
// cannot make one login allocate gigabytes or spin for minutes.
const (
	argon2MaxMemory     = 1 << 20 // KiB: 1 GiB
	argon2MaxIterations = 64
)

// validate checks that the hash can be verified at all.
func (p *PasswordHash) validate() error {
	if p.Algorithm != Argon2 {
		if _, _, err := pbkdf2Params(p.Algorithm); err != nil {
			return err
		}
	}
	if p.Iterations <= 0 {
		return fmt.Errorf("%w: hash iterations must be positive, got %d", ErrInvalidConfig, p.Iterations)
	}
	if len(p.Hash) == 0 {
		return fmt.Errorf("%w: empty password hash", ErrInvalidConfig)
	}
	if p.Algorithm != Argon2 {
		return nil
	}
	a := p.argon2Params()
	switch {
	case a.Type != "id" && a.Type != "i":
		return fmt.Errorf("%w: argon2 type %q (supported: id, i)", ErrUnsupportedAlgorithm, a.Type)
	case a.Memory == 0 || a.Memory > argon2MaxMemory:
		return fmt.Errorf("%w: argon2 memory %d KiB out of range (1..%d)", ErrInvalidConfig, a.Memory, argon2MaxMemory)
	case a.Parallelism == 0:
		return fmt.Errorf("%w: argon2 parallelism must be positive", ErrInvalidConfig)
	case p.Iterations > argon2MaxIterations:
		return fmt.Errorf("%w: argon2 iterations %d out of range (1..%d)", ErrInvalidConfig, p.Iterations, argon2MaxIterations)
	}
	return nil
}

// argon2Params is p.Argon2 or Keycloak's defaults.
func (p *PasswordHash) argon2Params() Argon2Params {
	if p.Argon2 != nil {
		return *p.Argon2
	}
	return Argon2Params{Type: "id", Memory: argon2DefaultMemory, Parallelism: argon2DefaultParallelism}
}

// derive computes the hash of password with p's parameters (nil when they
// cannot be used).
func (p *PasswordHash) derive(password string) []byte {
	if p.validate() != nil {
		return nil
	}
	n := uint32(len(p.Hash))
	if p.Algorithm == Argon2 {
		a := p.argon2Params()
		if a.Type == "i" {
			return argon2.Key([]byte(password), p.Salt, uint32(p.Iterations), a.Memory, a.Parallelism, n)
		}
		return argon2.IDKey([]byte(password), p.Salt, uint32(p.Iterations), a.Memory, a.Parallelism, n)
	}
	h, _, _ := pbkdf2Params(p.Algorithm)
	dk, err := pbkdf2.Key(h, password, p.Salt, p.Iterations, int(n))
	if err != nil {
		return nil
	}
	return dk
}

// verify reports whether password matches, in constant time over the hash.
func (p *PasswordHash) verify(password string) bool {
	dk := p.derive(password)
	return dk != nil && subtle.ConstantTimeCompare(dk, p.Hash) == 1
}

// credentialData is Keycloak's credentialData of the hash, its members in
// Keycloak's order.
func (p *PasswordHash) credentialData() any {
	type argon2JSON struct {
		HashLength  []string `json:"hashLength"`
		Memory      []string `json:"memory"`
		Type        []string `json:"type"`
		Version     []string `json:"version"`
		Parallelism []string `json:"parallelism"`
	}
	var params any = struct{}{}
	if p.Algorithm == Argon2 {
		a := p.argon2Params()
		params = argon2JSON{[]string{strconv.Itoa(len(p.Hash))}, []string{strconv.FormatUint(uint64(a.Memory), 10)},
			[]string{a.Type}, []string{"1.3"}, []string{strconv.Itoa(int(a.Parallelism))}}
	}
	return struct {
		HashIterations       int    `json:"hashIterations"`
		Algorithm            string `json:"algorithm"`
		AdditionalParameters any    `json:"additionalParameters"`
	}{p.Iterations, p.Algorithm, params}
}

// clone returns a deep copy so callers cannot mutate realm state.
func (p *PasswordHash) clone() *PasswordHash {
	if p == nil {
		return nil
	}
	c := &PasswordHash{Algorithm: p.Algorithm, Iterations: p.Iterations,
		Salt: append([]byte(nil), p.Salt...), Hash: append([]byte(nil), p.Hash...)}
	if p.Argon2 != nil {
		a := *p.Argon2
		c.Argon2 = &a
	}
	return c
}
