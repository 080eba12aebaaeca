package keycloaktest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Keycloak's default OTP policy: TOTP, HmacSHA1, 6 digits, 30-second
// period, look-around window of one step, codes not reusable.
const (
	totpDigits = 6
	totpPeriod = 30 // seconds
	totpWindow = 1  // steps accepted either side of the current one
)

// decodeTOTPSecret reads a base32 secret the way authenticator apps accept
// it: case-insensitive, spaces and hyphens ignored, padding optional.
func decodeTOTPSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(secret))
	s = strings.TrimRight(s, "=")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: TOTP secret is not base32", ErrInvalidConfig)
	}
	return key, nil
}

// TOTPCode returns the RFC 6238 code (HMAC-SHA1, 6 digits, 30-second step)
// of a base32 secret at time t, as an authenticator app shows it. Tests use
// it to answer the OTP page: TOTPCode(secret, clock()).
func TOTPCode(secret string, t time.Time) (string, error) {
	key, err := decodeTOTPSecret(secret)
	if err != nil {
		return "", err
	}
	return hotp(key, totpStep(t)), nil
}

func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// hotp is RFC 4226's HOTP with dynamic truncation.
func hotp(key []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, code%1000000)
}

// checkTOTP finds the step within the window whose code matches, comparing
// in constant time; ok is false when none does.
func checkTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	key, err := decodeTOTPSecret(secret)
	code = strings.TrimSpace(code)
	if err != nil || len(code) != totpDigits {
		return 0, false
	}
	cur := totpStep(now)
	for d := int64(-totpWindow); d <= totpWindow; d++ {
		if subtle.ConstantTimeCompare([]byte(hotp(key, cur+d)), []byte(code)) == 1 {
			return cur + d, true
		}
	}
	return 0, false
}

// newTOTPSecret returns a fresh 160-bit secret in base32, for the
// CONFIGURE_TOTP required action.
func newTOTPSecret() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return encodeTOTPKey(b)
}

// groupedSecret shows a secret in blocks of four, as Keycloak's manual
// TOTP setup page does.
func groupedSecret(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// encodeTOTPKey is the canonical form of a secret: unpadded upper-case
// base32, as Keycloak stores it with secretEncoding BASE32.
func encodeTOTPKey(key []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
}
