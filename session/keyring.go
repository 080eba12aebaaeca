package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a session encryption key: AES-256.
const KeySize = 32

// ErrDecrypt means a sealed payload could not be opened: it was made with a
// key no longer in the keyring, or it was altered.
var ErrDecrypt = errors.New("session: payload cannot be decrypted (unknown key or tampered data)")

const sealVersion = 1

// Keyring seals session payloads with AES-256-GCM. The first key encrypts;
// every key decrypts, so keys can be rotated: put the new key first, keep
// the old one until the sessions it sealed have expired, then drop it.
type Keyring struct {
	keys []ringKey
}

type ringKey struct {
	id   [4]byte // first bytes of SHA-256(key): stable when keys are reordered
	aead cipher.AEAD
}

// NewKeyring returns a keyring; keys[0] encrypts. Every key must be KeySize
// bytes.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no encryption key configured (generate one with session.GenerateKey or `openssl rand -base64 32`)")
	}
	kr := &Keyring{}
	seen := map[[4]byte]bool{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("session: encryption key %d is %d bytes; want %d (AES-256)", i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session: encryption key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("session: encryption key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(k)
		var id [4]byte
		copy(id[:], sum[:4])
		if seen[id] {
			return nil, fmt.Errorf("session: encryption key %d is listed twice", i+1)
		}
		seen[id] = true
		kr.keys = append(kr.keys, ringKey{id: id, aead: aead})
	}
	return kr, nil
}

// ParseKeys decodes a comma-separated list of keys, each standard or URL
// base64 (with or without padding) or hex, as found in configuration files
// and environment variables. Errors never repeat the key material.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, err := decodeKey(f)
		if err != nil {
			return nil, fmt.Errorf("session: encryption key %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("session: no encryption key given")
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes; want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("not base64 or hex (want %d random bytes, e.g. from `openssl rand -base64 32`)", KeySize)
}

// GenerateKey returns a new random key, base64-encoded.
func GenerateKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(k)
}

// Seal encrypts plaintext. aad is bound to the result: Open must be given
// the same aad (the store key), so a payload moved to another record does
// not open.
func (k *Keyring) Seal(plaintext, aad []byte) []byte {
	key := k.keys[0]
	ns := key.aead.NonceSize()
	out := make([]byte, 1+len(key.id)+ns, 1+len(key.id)+ns+len(plaintext)+key.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], key.id[:])
	nonce := out[1+len(key.id):]
	if _, err := rand.Read(nonce); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return key.aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts what Seal produced with any key of the ring.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	for _, key := range k.keys {
		if string(key.id[:]) != string(sealed[1:5]) {
			continue
		}
		ns := key.aead.NonceSize()
		if len(sealed) < 5+ns+key.aead.Overhead() {
			return nil, ErrDecrypt
		}
		pt, err := key.aead.Open(nil, sealed[5:5+ns], sealed[5+ns:], aad)
		if err != nil {
			return nil, ErrDecrypt
		}
		return pt, nil
	}
	return nil, ErrDecrypt
}

// NeedsReseal reports whether sealed was made with a key other than the
// current one, so that callers can re-encrypt it during rotation.
func (k *Keyring) NeedsReseal(sealed []byte) bool {
	return len(sealed) < 5 || string(sealed[1:5]) != string(k.keys[0].id[:])
}
