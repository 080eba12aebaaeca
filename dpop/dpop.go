// Package dpop is the client side of OAuth 2.0 DPoP, Demonstrating Proof
// of Possession (RFC 9449): a Key that signs proofs, and a Transport that
// adds a fresh proof to every request, so that the tokens Keycloak issues
// are bound to the key and useless to whoever steals them.
//
// Keycloak (26.4 and later) binds the tokens of a token request that
// carries a DPoP proof: the answer says token_type "DPoP" and the access
// token carries cnf.jkt, the thumbprint of the key. With x/oauth2 the
// whole flow is two lines: the Transport under the oauth2 client signs the
// token request (no ath) and every API call (with ath, the hash of the
// access token that oauth2 puts in "Authorization: DPoP <token>"):
//
//	key, _ := dpop.GenerateKey()
//	hc := &http.Client{Transport: &dpop.Transport{Key: key}}
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
//	tok, err := cfg.PasswordCredentialsToken(ctx, user, password) // tok.TokenType == "DPoP"
//	api := cfg.Client(ctx, tok) // Authorization: DPoP <token> plus a DPoP proof
//
// The server side (verifying proofs on an API) is bearer.WithDPoP.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// HeaderName is the request header that carries a proof, and NonceHeader
// the response header that carries a server-provided nonce.
const (
	HeaderName  = "DPoP"
	NonceHeader = "DPoP-Nonce"
	// ProofType is the JOSE typ of a proof.
	ProofType = "dpop+jwt"
)

// Key is a DPoP key pair: it signs proofs and names itself by its JWK
// thumbprint. It is safe for concurrent use.
type Key struct {
	signer jose.Signer
	alg    jose.SignatureAlgorithm
	jkt    string
}

// GenerateKey makes a new ECDSA P-256 key (ES256), the algorithm every
// DPoP server supports. Keep one key for the lifetime of the tokens bound
// to it: a new key cannot use them.
func GenerateKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewKey(k)
}

// NewKey wraps a private key: *ecdsa.PrivateKey (P-256, P-384, P-521:
// ES256/384/512), *rsa.PrivateKey of 2048 bits or more (PS256) or
// ed25519.PrivateKey (EdDSA).
func NewKey(private crypto.Signer) (*Key, error) {
	var alg jose.SignatureAlgorithm
	switch k := private.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, errors.New("dpop: unsupported ECDSA curve (want P-256, P-384 or P-521)")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("dpop: RSA keys need at least 2048 bits")
		}
		alg = jose.PS256
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("dpop: unsupported key type %T (want ECDSA, RSA or Ed25519)", private)
	}
	pub := jose.JSONWebKey{Key: private.Public(), Algorithm: string(alg)}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(ProofType)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: private}, opts)
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	return &Key{signer: signer, alg: alg, jkt: base64.RawURLEncoding.EncodeToString(thumb)}, nil
}

// Algorithm is the JWS algorithm of the key's proofs, e.g. "ES256".
func (k *Key) Algorithm() string { return string(k.alg) }

// Thumbprint is the key's RFC 7638 JWK SHA-256 thumbprint, base64url: the
// cnf.jkt of the tokens bound to it (and Keycloak's dpop_jkt parameter).
func (k *Key) Thumbprint() string { return k.jkt }

// Proof describes one proof. Method and URL are required.
type Proof struct {
	Method string // HTTP method of the request (htm)
	// URL is the request's URL; query and fragment are left out of htu.
	URL string
	// AccessToken, when set, is hashed into ath: set it on requests that
	// carry the token, never on token requests.
	AccessToken string
	// Nonce is the last DPoP-Nonce the server sent, if any.
	Nonce string
	// IssuedAt defaults to now; ID (jti) to 16 random bytes.
	IssuedAt time.Time
	ID       string
}

// Sign returns the compact JWS of the proof, for the DPoP header.
func (k *Key) Sign(p Proof) (string, error) {
	if p.Method == "" {
		return "", errors.New("dpop: proof needs the request method")
	}
	htu, err := HTU(p.URL)
	if err != nil {
		return "", err
	}
	if p.IssuedAt.IsZero() {
		p.IssuedAt = time.Now()
	}
	if p.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		p.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	claims := map[string]any{"htm": p.Method, "htu": htu, "iat": p.IssuedAt.Unix(), "jti": p.ID}
	if p.AccessToken != "" {
		claims["ath"] = AccessTokenHash(p.AccessToken)
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// HTU is the htu of a request URL: scheme, host and path, without query
// and fragment (RFC 9449 4.2).
func HTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("dpop: request URL: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("dpop: request URL %q is not absolute", raw)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String(), nil
}

// AccessTokenHash is the ath of a token: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenOf returns the token of an "Authorization: DPoP <token>" value.
func tokenOf(authorization string) string {
	scheme, rest, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return ""
	}
	return strings.TrimSpace(rest)
}
