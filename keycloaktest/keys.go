package keycloaktest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// rsaKeyBits matches Keycloak's generated RSA keys.
const rsaKeyBits = 2048

// rsaKeyPool hands out RSA keys that have never been handed out before.
// Generating a 2048-bit key takes tens of milliseconds (much more under the
// race detector), and tests create many realms, so a background goroutine
// keeps a few fresh keys ready. Keys are never recycled: two realms, or a
// rotated key and its predecessor, never share key material.
type rsaKeyPool struct {
	ready   chan *rsa.PrivateKey
	filling atomic.Bool
}

var sharedRSAPool = &rsaKeyPool{ready: make(chan *rsa.PrivateKey, 4)}

// take returns a never-used key, generating one if none is ready.
func (p *rsaKeyPool) take() (*rsa.PrivateKey, error) {
	defer p.refill()
	select {
	case k := <-p.ready:
		return k, nil
	default:
	}
	k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: generate RSA key: %w", err)
	}
	return k, nil
}

// refill starts at most one goroutine that tops the pool up and then exits.
func (p *rsaKeyPool) refill() {
	if !p.filling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.filling.Store(false)
		for len(p.ready) < cap(p.ready) {
			k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
			if err != nil {
				return
			}
			select {
			case p.ready <- k:
			default:
				return
			}
		}
	}()
}

// realmKey is one asymmetric realm key as Keycloak's key providers hold it.
type realmKey struct {
	kid  string
	alg  string // JOSE algorithm: RS256, PS256, ES256 or RSA-OAEP
	use  string // "sig" or "enc"
	priv crypto.Signer
	cert *x509.Certificate
}

// newRealmKey generates a fresh key for alg with a self-signed certificate
// whose subject is the realm name, as Keycloak's generated providers do.
func newRealmKey(alg, use, cn string) (*realmKey, error) {
	var priv crypto.Signer
	switch alg {
	case RS256, PS256, "RSA-OAEP":
		k, err := sharedRSAPool.take()
		if err != nil {
			return nil, err
		}
		priv = k
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keycloaktest: generate EC key: %w", err)
		}
		priv = k
	default:
		return nil, fmt.Errorf("%w: key algorithm %q", ErrUnsupportedAlgorithm, alg)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: encode public key: %w", err)
	}
	cert, err := selfSignedCert(priv, cn)
	if err != nil {
		return nil, err
	}
	// Keycloak derives kid from the SHA-256 of the encoded public key.
	sum := sha256.Sum256(der)
	return &realmKey{
		kid:  base64.RawURLEncoding.EncodeToString(sum[:]),
		alg:  alg,
		use:  use,
		priv: priv,
		cert: cert,
	}, nil
}

func selfSignedCert(priv crypto.Signer, cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: parse certificate: %w", err)
	}
	return cert, nil
}

// publicJWK is the JWKS entry for the key, with x5c and both thumbprints.
func (k *realmKey) publicJWK() jose.JSONWebKey {
	s1 := sha1.Sum(k.cert.Raw)
	s256 := sha256.Sum256(k.cert.Raw)
	return jose.JSONWebKey{
		Key:                         k.priv.Public(),
		KeyID:                       k.kid,
		Algorithm:                   k.alg,
		Use:                         k.use,
		Certificates:                []*x509.Certificate{k.cert},
		CertificateThumbprintSHA1:   s1[:],
		CertificateThumbprintSHA256: s256[:],
	}
}

// signingKey is the go-jose signing key carrying the kid header.
func (k *realmKey) signingKey() jose.SigningKey {
	return jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(k.alg),
		Key:       jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: k.alg},
	}
}

// sharedEncKey is the RSA-OAEP "enc" key every realm publishes, as a default
// Keycloak realm does. Nothing here decrypts with it, so one process-wide key
// spares a 2048-bit key generation per realm.
var sharedEncKey = sync.OnceValues(func() (*realmKey, error) {
	return newRealmKey("RSA-OAEP", "enc", "keycloaktest")
})

// hmacKey signs refresh tokens; like Keycloak's HMAC provider its kid is a
// UUID and it never appears in the JWKS.
type hmacKey struct {
	kid    string
	secret []byte
}

func newHMACKey() (*hmacKey, error) {
	secret := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("keycloaktest: HMAC key: %w", err)
	}
	return &hmacKey{kid: newUUID(), secret: secret}, nil
}

// newUUID returns a random (version 4) UUID string.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomString returns n random bytes as base64url, for secrets and ids.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
