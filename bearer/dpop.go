package bearer

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"

	"github.com/cloakroom/cloakroom"
)

// DPoP (RFC 9449) binds an access token to a key the client holds: Keycloak
// 26.4 and later issue such tokens (typ "DPoP", cnf.jkt) when the token
// request carries a DPoP proof, and the client then sends
//
//	Authorization: DPoP <token>
//	DPoP: <proof, a JWS signed with the key, naming this request>
//
// The Authenticator checks the proof as RFC 9449 4.3 and 7.1 require: one
// DPoP header; typ dpop+jwt; an asymmetric algorithm of the allow-list; the
// signature with the public JWK of its header; htm and htu naming this
// request; iat within the window; jti never seen before within it (in the
// ReplayCache, shared by every instance); ath the hash of the token; the
// key's thumbprint the token's cnf.jkt; and the server nonce when
// DPoPConfig.NonceKey asks for nonces. A DPoP-bound token sent as a plain
// bearer token is refused (RFC 9449 7.2).

// DPoPMode is an API's policy for DPoP-bound tokens.
type DPoPMode int

const (
	// DPoPAccept (the default) accepts bearer tokens as before and
	// DPoP-bound tokens with a valid proof: a client that can do DPoP
	// gains its protection, the others keep working. A DPoP-bound token
	// sent as a bearer token is refused.
	DPoPAccept DPoPMode = iota
	// DPoPOff accepts bearer tokens only: the DPoP scheme and DPoP-bound
	// tokens are refused (401, saying that this API takes bearer tokens).
	DPoPOff
	// DPoPRequire accepts DPoP-bound tokens with a valid proof only: a
	// bearer token is refused, so a stolen token is worthless.
	DPoPRequire
)

// String is the mode's configuration name: accept, off or require.
func (m DPoPMode) String() string {
	switch m {
	case DPoPAccept:
		return "accept"
	case DPoPOff:
		return "off"
	case DPoPRequire:
		return "require"
	}
	return fmt.Sprintf("DPoPMode(%d)", int(m))
}

// ParseDPoPMode reads a mode's configuration name ("" is accept).
func ParseDPoPMode(s string) (DPoPMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "accept":
		return DPoPAccept, nil
	case "off":
		return DPoPOff, nil
	case "require":
		return DPoPRequire, nil
	}
	return 0, fmt.Errorf("unknown DPoP mode %q: want off, accept or require", s)
}

// Defaults of DPoPConfig.
const (
	// DefaultDPoPWindow bounds how far a proof's iat may lie from now, in
	// the past or in the future (clock skew), and how long its jti is
	// remembered.
	DefaultDPoPWindow = 60 * time.Second
	// DefaultDPoPNonceLifetime is how long a server nonce stays good.
	DefaultDPoPNonceLifetime = 5 * time.Minute
	// maxProofSize bounds the DPoP header (an RSA-4096 proof is ~1.5 KiB).
	maxProofSize = 8 << 10
)

// DefaultDPoPAlgorithms are the proof algorithms accepted by default: every
// asymmetric JWS algorithm (Keycloak's dpop_signing_alg_values_supported).
// "none" and HMAC are never accepted.
var DefaultDPoPAlgorithms = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

// DPoPConfig configures DPoP (WithDPoP). The zero value is DPoPAccept with
// the defaults below.
type DPoPConfig struct {
	Mode DPoPMode

	// Replay remembers the proofs' jti so that a proof is good once. The
	// default is in this process's memory: an API run as several
	// instances must share one (ReplayCacheFromStore over the session
	// store's Redis, PostgreSQL or SQLite), or a proof captured on its way
	// to one instance can be replayed at another within the window. When
	// it fails, requests are refused with 503 (fail closed).
	Replay ReplayCache

	// Window is how far a proof's iat may lie from now, either way
	// (default DefaultDPoPWindow, 60 s; at most 10 minutes).
	Window time.Duration

	// Algorithms is the proof algorithm allow-list (default
	// DefaultDPoPAlgorithms). HMAC and "none" are refused.
	Algorithms []string

	// ExternalURL is the scheme, host and optional path prefix clients use
	// to reach this API, e.g. "https://api.example.com" behind a proxy
	// that terminates TLS, or "https://example.com/api" when the proxy
	// strips /api. The htu of a proof must equal it followed by the
	// request's path. Default: the request's own scheme (https when it
	// came over TLS) and Host.
	ExternalURL string

	// RequestURL, when set, returns the URL clients used for a request
	// (scheme, host and path; query ignored), overriding ExternalURL: for
	// servers that know it from trusted forwarding headers.
	RequestURL func(r *http.Request) string

	// NonceKey turns on server nonces (RFC 9449 9): a proof must carry a
	// nonce this API issued (in a DPoP-Nonce header, with a 401
	// use_dpop_nonce error the first time), valid for NonceLifetime. The
	// key (at least 32 random bytes) signs the nonces, so instances that
	// share it accept each other's.
	NonceKey      []byte
	NonceLifetime time.Duration // default DefaultDPoPNonceLifetime
}

// WithDPoP sets the DPoP policy (by default DPoPAccept with an in-memory
// replay cache).
func WithDPoP(cfg DPoPConfig) Option {
	return func(a *Authenticator) error {
		d, err := newDPoP(cfg)
		if err != nil {
			return err
		}
		a.dpop = d
		return nil
	}
}

// dpopPolicy is a compiled DPoPConfig.
type dpopPolicy struct {
	mode       DPoPMode
	replay     ReplayCache
	window     time.Duration
	algs       []jose.SignatureAlgorithm
	algsString string // space-separated, for the challenge
	external   *url.URL
	requestURL func(*http.Request) string
	nonceKey   []byte
	nonceLife  time.Duration
}

func newDPoP(cfg DPoPConfig) (*dpopPolicy, error) {
	d := &dpopPolicy{mode: cfg.Mode, replay: cfg.Replay, window: cfg.Window, requestURL: cfg.RequestURL, nonceLife: cfg.NonceLifetime}
	switch cfg.Mode {
	case DPoPAccept, DPoPOff, DPoPRequire:
	default:
		return nil, fmt.Errorf("bearer: DPoPConfig.Mode: unknown mode %d", int(cfg.Mode))
	}
	switch {
	case d.window < 0:
		return nil, errors.New("bearer: DPoPConfig.Window must not be negative")
	case d.window == 0:
		d.window = DefaultDPoPWindow
	case d.window > 10*time.Minute:
		return nil, fmt.Errorf("bearer: DPoPConfig.Window %s is too long: a proof is meant to be used at once (at most 10m; default %s)", d.window, DefaultDPoPWindow)
	}
	if d.replay == nil {
		d.replay = NewMemoryReplayCache()
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultDPoPAlgorithms
	}
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"), strings.HasPrefix(strings.ToUpper(a), "HS"):
			return nil, fmt.Errorf("bearer: DPoPConfig.Algorithms: %q is never allowed: a proof must be signed with an asymmetric key", a)
		case !isDefaultAlg(a):
			return nil, fmt.Errorf("bearer: DPoPConfig.Algorithms: unknown algorithm %q (allowed: %s)", a, strings.Join(DefaultDPoPAlgorithms, ", "))
		}
		d.algs = append(d.algs, jose.SignatureAlgorithm(a))
	}
	d.algsString = strings.Join(algs, " ")
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("bearer: DPoPConfig.ExternalURL %q must be an absolute http(s) URL without query, e.g. https://api.example.com or https://example.com/api", cfg.ExternalURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = strings.TrimSuffix(u.RawPath, "/")
		d.external = u
	}
	if cfg.NonceKey != nil {
		if len(cfg.NonceKey) < 32 {
			return nil, errors.New("bearer: DPoPConfig.NonceKey needs at least 32 random bytes")
		}
		d.nonceKey = append([]byte(nil), cfg.NonceKey...)
	}
	switch {
	case d.nonceLife < 0:
		return nil, errors.New("bearer: DPoPConfig.NonceLifetime must not be negative")
	case d.nonceLife == 0:
		d.nonceLife = DefaultDPoPNonceLifetime
	}
	return d, nil
}

func isDefaultAlg(a string) bool {
	for _, d := range DefaultDPoPAlgorithms {
		if a == d {
			return true
		}
	}
	return false
}

// dpopProof is a proof whose signature checked out.
type dpopProof struct {
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   *int64 `json:"iat"`
	JTI   string `json:"jti"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`

	jkt string // thumbprint of the key in the header
}

// parseProof checks a proof's form and signature: one JWS with typ
// dpop+jwt, an allowed asymmetric alg, a public jwk in the header that
// verifies it, and the claims every proof must carry. It looks at nothing
// of the request.
func parseProof(proof string, algs []jose.SignatureAlgorithm) (*dpopProof, error) {
	switch {
	case proof == "":
		return nil, errors.New("empty DPoP header")
	case len(proof) > maxProofSize:
		return nil, fmt.Errorf("DPoP proof longer than %d bytes", maxProofSize)
	case strings.Count(proof, ".") != 2:
		return nil, errors.New("DPoP proof is not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("DPoP proof algorithm %q is not allowed", headerSafe(string(ua.Got)))
		}
		return nil, fmt.Errorf("DPoP proof cannot be parsed: %s", strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("DPoP proof must have exactly one signature")
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, "dpop+jwt") {
		return nil, fmt.Errorf("DPoP proof typ is %q, want \"dpop+jwt\"", headerSafe(typ))
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return nil, errors.New("DPoP proof header has no jwk")
	}
	if !jwk.Valid() || !jwk.IsPublic() {
		return nil, errors.New("DPoP proof jwk must be a public key")
	}
	switch jwk.Key.(type) {
	case []byte:
		return nil, errors.New("DPoP proof jwk must be an asymmetric public key")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, errors.New("DPoP proof signature does not verify with its jwk")
	}
	p := new(dpopProof)
	if err := jsonv2.Unmarshal(payload, p); err != nil {
		return nil, errors.New("DPoP proof claims are not valid JSON with string htm, htu, jti, ath, nonce and numeric iat")
	}
	switch {
	case p.HTM == "":
		return nil, errors.New("DPoP proof has no htm")
	case p.HTU == "":
		return nil, errors.New("DPoP proof has no htu")
	case p.IAT == nil:
		return nil, errors.New("DPoP proof has no iat")
	case p.JTI == "":
		return nil, errors.New("DPoP proof has no jti")
	case len(p.JTI) > 512:
		return nil, errors.New("DPoP proof jti is too long")
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errors.New("DPoP proof jwk has no thumbprint")
	}
	p.jkt = base64.RawURLEncoding.EncodeToString(thumb)
	return p, nil
}

// ReplayCache remembers DPoP proofs (their key and jti) until they are
// too old to be accepted anyway. Instances of one API must share it.
type ReplayCache interface {
	// Seen records key until the given time and reports whether a live
	// record of it existed already (a replay). Of concurrent callers with
	// one key, exactly one gets false.
	Seen(ctx context.Context, key string, until time.Time) (replayed bool, err error)
}

// ReplayCacheFromStore makes a ReplayCache from a store with MarkOnce, as
// every session.Store has (memory, SQLite, Redis: SET NX PXAT, PostgreSQL:
// INSERT ... ON CONFLICT): instances sharing the store share the cache.
func ReplayCacheFromStore(s interface {
	MarkOnce(ctx context.Context, key string, until time.Time) (first bool, err error)
}) ReplayCache {
	return markOnceCache{s}
}

type markOnceCache struct {
	s interface {
		MarkOnce(ctx context.Context, key string, until time.Time) (bool, error)
	}
}

func (m markOnceCache) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	first, err := m.s.MarkOnce(ctx, key, until)
	return !first, err
}

// replayKey names a proof in the ReplayCache: its key and jti, hashed to a
// fixed-size, store-safe string.
func replayKey(jkt, jti string) string {
	sum := sha256.Sum256([]byte(jkt + "\x00" + jti))
	return "dpop-jti:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// dpopError is an invalid_dpop_proof refusal.
func dpopError(detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "dpop_proof_not_valid", Detail: detail, DPoP: true, Err: cloakroom.ErrInvalidClaim}
}

// bindingError is an invalid_token refusal about the token's binding.
func bindingError(detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: detail, DPoP: true}
}

// checkProof checks the request's DPoP proof for token, whose verified
// claims are bound to jkt, and records its jti.
func (a *Authenticator) checkProof(r *http.Request, token, jkt string) *Error {
	d := a.dpop
	values := r.Header.Values("DPoP")
	switch {
	case len(values) == 0:
		return dpopError("the request has no DPoP proof header")
	case len(values) > 1:
		return dpopError("the request has more than one DPoP header")
	}
	p, err := parseProof(values[0], d.algs)
	if err != nil {
		return dpopError(err.Error())
	}
	if p.HTM != r.Method {
		return dpopError(fmt.Sprintf("DPoP proof htm %q is not the request method %s", headerSafe(p.HTM), r.Method))
	}
	want := d.urlOf(r)
	if got, ok := normalizeHTU(p.HTU); !ok || got != want {
		return dpopError(fmt.Sprintf("DPoP proof htu %q is not this request's URL %q", headerSafe(p.HTU), want))
	}
	now := a.now()
	iat := time.Unix(*p.IAT, 0)
	switch {
	case iat.Before(now.Add(-d.window)):
		return dpopError(fmt.Sprintf("DPoP proof is too old (iat more than %s ago)", d.window))
	case iat.After(now.Add(d.window)):
		return dpopError(fmt.Sprintf("DPoP proof iat is more than %s in the future", d.window))
	}
	if d.nonceKey != nil && !d.validNonce(p.Nonce, now) {
		return &Error{Status: http.StatusUnauthorized, Code: "use_dpop_nonce", DPoP: true,
			Detail: "the DPoP proof must carry the nonce of the DPoP-Nonce header", Nonce: d.newNonce(now)}
	}
	if p.ATH == "" {
		return dpopError("DPoP proof has no ath (the hash of the access token)")
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare([]byte(p.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return dpopError("DPoP proof ath is not the hash of this access token")
	}
	if subtle.ConstantTimeCompare([]byte(p.jkt), []byte(jkt)) != 1 {
		return bindingError("the access token is bound to another key than the DPoP proof's (cnf.jkt does not match)")
	}
	replayed, err := d.replay.Seen(r.Context(), replayKey(p.jkt, p.JTI), iat.Add(d.window+time.Second))
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Detail: "DPoP proofs cannot be checked for replay right now; try again later", Err: err}
	}
	if replayed {
		return dpopError("DPoP proof was used before (jti replayed)")
	}
	return nil
}

// urlOf is the normalized URL clients used for r.
func (d *dpopPolicy) urlOf(r *http.Request) string {
	var raw string
	switch {
	case d.requestURL != nil:
		raw = d.requestURL(r)
	case d.external != nil:
		u := *d.external
		raw = u.String() + r.URL.EscapedPath()
	default:
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		raw = scheme + "://" + r.Host + r.URL.EscapedPath()
	}
	n, ok := normalizeHTU(raw)
	if !ok {
		return "(unusable request URL)"
	}
	return n
}

// normalizeHTU applies RFC 3986 6.2.2 and 6.2.3 normalization (RFC 9449
// 4.3 point 9): lower-case scheme and host, no default port, percent
// encodings in upper case and decoded where unreserved, dot segments
// removed, empty path as "/"; query and fragment are dropped.
func normalizeHTU(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if h, port, found := strings.Cut(host, ":"); found && !strings.HasPrefix(host, "[") {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") || port == "" {
			host = h
		}
	} else if strings.HasPrefix(host, "[") {
		if i := strings.LastIndex(host, "]:"); i >= 0 {
			port := host[i+2:]
			if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") || port == "" {
				host = host[:i+1]
			}
		}
	}
	path := normalizePercent(u.EscapedPath())
	path = removeDotSegments(path)
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// normalizePercent upper-cases percent encodings and decodes those of
// unreserved characters.
func normalizePercent(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is RFC 3986 5.2.4.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	var out []string
	segs := strings.Split(p, "/")
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// Server nonces are stateless: 8 bytes of issue time and 16 bytes of
// HMAC-SHA256 over them.
func (d *dpopPolicy) newNonce(now time.Time) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	m := hmac.New(sha256.New, d.nonceKey)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (d *dpopPolicy) validNonce(n string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return false
	}
	m := hmac.New(sha256.New, d.nonceKey)
	m.Write(b[:8])
	if !hmac.Equal(b[8:], m.Sum(nil)[:16]) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return !issued.After(now.Add(5*time.Second)) && now.Sub(issued) <= d.nonceLife
}

// GenerateDPoPNonceKey returns 32 random bytes for DPoPConfig.NonceKey.
func GenerateDPoPNonceKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}
