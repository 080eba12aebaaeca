package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/cloakroom/cloakroom/internal/ttlcache"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// payloadOptions: the JSON v2 codec is several times faster than
// encoding/json on token-sized strings, which a session lookup per request
// feels; invalid UTF-8 in application values is kept rather than refused.
var payloadOptions = jsontext.AllowInvalidUTF8(true)

// Defaults matching Keycloak's SSO session idle and max lifespans.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxLifetime = 10 * time.Hour
)

// Session is one browser session, decrypted. Everything but ID, Subject
// and SID is encrypted in the store.
type Session struct {
	// ID is the cookie value: 256 random bits. It is never stored.
	ID string `json:"-"`

	Subject   string    `json:"sub"`
	SID       string    `json:"sid,omitempty"`
	Issuer    string    `json:"iss,omitempty"`
	CreatedAt time.Time `json:"created"`
	LastSeen  time.Time `json:"seen"`

	AccessToken   string    `json:"at,omitempty"`
	RefreshToken  string    `json:"rt,omitempty"`
	IDToken       string    `json:"it,omitempty"`
	AccessExpiry  time.Time `json:"at_exp,omitzero"`
	RefreshExpiry time.Time `json:"rt_exp,omitzero"`
	// IDClaims are the verified claims of the last ID token (JSON), kept
	// because the ID token itself expires long before the session.
	IDClaims json.RawMessage `json:"idc,omitempty"`

	// CSRFToken protects state-changing forms of this session (logout).
	CSRFToken string `json:"csrf,omitempty"`
	// Values holds application data, e.g. set by a login hook.
	Values map[string]string `json:"values,omitempty"`
	// RefreshLease marks a token refresh in progress on some instance until
	// that time, so that other instances wait for its result instead of
	// spending the same refresh token.
	RefreshLease time.Time `json:"lease,omitzero"`

	key     string
	version int64
}

// Key returns the store key of the session.
func (s *Session) Key() string { return s.key }

// Version returns the store version the session was loaded or saved at.
func (s *Session) Version() int64 { return s.version }

// Config configures a Manager.
type Config struct {
	Store   Store
	Keyring *Keyring
	// CookieName is the session cookie's name (default "cloakroom"); with
	// Secure it gets the "__Host-" prefix.
	CookieName string
	// Secure marks the cookie Secure (set it when the site is served over
	// https).
	Secure bool
	// IdleTimeout ends sessions unused for this long (default 30 minutes);
	// MaxLifetime ends every session this long after login (default 10 h).
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Manager ties sessions to cookies: it creates, loads, saves and destroys
// them, sealing their payload with the Keyring.
type Manager struct {
	// decoded keeps recently used sessions decrypted, by store key; an
	// entry serves only the record version it was made from.
	decoded *ttlcache.Cache[decodedSession]
	store   Store
	ring    *Keyring
	cookie  string
	secure  bool
	idle    time.Duration
	max     time.Duration
	now     func() time.Time
}

// NewManager returns a Manager.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("session: Config.Store is required")
	}
	if cfg.Keyring == nil {
		return nil, errors.New("session: Config.Keyring is required (tokens are never stored unencrypted)")
	}
	m := &Manager{
		decoded: ttlcache.New[decodedSession](10_000, 64<<20),
		store:   cfg.Store,
		ring:    cfg.Keyring,
		cookie:  cfg.CookieName,
		secure:  cfg.Secure,
		idle:    cfg.IdleTimeout,
		max:     cfg.MaxLifetime,
		now:     cfg.Now,
	}
	if m.cookie == "" {
		m.cookie = "cloakroom"
	}
	if m.secure {
		m.cookie = "__Host-" + m.cookie
	}
	if m.idle <= 0 {
		m.idle = DefaultIdleTimeout
	}
	if m.max <= 0 {
		m.max = DefaultMaxLifetime
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// Keyring returns the Manager's keyring, for sealing other short-lived
// state (e.g. pending logins) with the same keys.
func (m *Manager) Keyring() *Keyring { return m.ring }

// Store returns the Manager's store.
func (m *Manager) Store() Store { return m.store }

// CookieName returns the name of the session cookie.
func (m *Manager) CookieName() string { return m.cookie }

// Secure reports whether cookies are marked Secure.
func (m *Manager) Secure() bool { return m.secure }

// KeyOf returns the store key for a cookie value.
func KeyOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewID returns a fresh random session id (256 bits, base64url).
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// validID rejects cookie values that NewID cannot have produced, so that
// garbage never reaches the store.
func validID(id string) bool {
	if len(id) != 43 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Get returns the session of the request's cookie. It returns ErrNotFound
// when there is no cookie, the cookie is malformed, the session is unknown
// or expired, or its payload cannot be decrypted (a retired key).
func (m *Manager) Get(r *http.Request) (*Session, error) {
	c, err := r.Cookie(m.cookie)
	if err != nil || !validID(c.Value) {
		return nil, ErrNotFound
	}
	return m.Load(r.Context(), c.Value)
}

// Load returns the session with cookie value id.
func (m *Manager) Load(ctx context.Context, id string) (*Session, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	key := KeyOf(id)
	rec, err := m.store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	s, err := m.open(rec)
	if err != nil {
		// A payload sealed with a retired key: the session cannot be used.
		_ = m.store.Delete(ctx, key)
		return nil, ErrNotFound
	}
	s.ID = id
	if !m.now().Before(m.expiry(s)) {
		_ = m.store.Delete(ctx, key)
		return nil, ErrNotFound
	}
	return s, nil
}

// Reload reads the stored state of s again, bypassing any instance-local
// cache (after a conflict, or while waiting for another instance).
func (m *Manager) Reload(ctx context.Context, s *Session) (*Session, error) {
	return m.Load(WithoutCache(ctx), s.ID)
}

func (m *Manager) open(rec *Record) (*Session, error) {
	// A record version is written once (Save's compare-and-swap), so a
	// session decoded at this key and version is this record: skip the
	// decryption and decoding that a lookup per request would repeat.
	now := m.now().Unix()
	if d, ok := m.decoded.Get(rec.Key, now); ok && d.version == rec.Version {
		return d.session.copy(), nil
	}
	pt, err := m.ring.Open(rec.Payload, []byte(rec.Key))
	if err != nil {
		return nil, err
	}
	var s Session
	if err := jsonv2.Unmarshal(pt, &s, payloadOptions); err != nil {
		return nil, fmt.Errorf("session: corrupt payload: %w", err)
	}
	s.key, s.version = rec.Key, rec.Version
	m.remember(&s, now)
	return &s, nil
}

// decodedSession is a session as last decoded or saved at a version.
type decodedSession struct {
	version int64
	session *Session
}

func (m *Manager) remember(s *Session, now int64) {
	size := len(s.AccessToken) + len(s.RefreshToken) + len(s.IDToken) + len(s.IDClaims) + 512
	m.decoded.Put(s.key, decodedSession{version: s.version, session: s.copy()}, now+60, size, now)
}

// copy returns a copy that shares nothing mutable with s.
func (s *Session) copy() *Session {
	c := *s
	c.Values = maps.Clone(s.Values)
	return &c
}

func (m *Manager) expiry(s *Session) time.Time {
	idle := s.LastSeen.Add(m.idle)
	abs := s.CreatedAt.Add(m.max)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// ExpiresAt returns when s ends unless it is used again.
func (m *Manager) ExpiresAt(s *Session) time.Time { return m.expiry(s) }

// Create stores s as a new session under a fresh id and sets the cookie.
// Any id s had before is discarded: logging in always changes the id, so a
// cookie planted before login is worthless afterwards.
func (m *Manager) Create(ctx context.Context, w http.ResponseWriter, s *Session) error {
	now := m.now()
	s.ID = NewID()
	s.key = KeyOf(s.ID)
	s.version = 0
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	s.LastSeen = now
	if s.CSRFToken == "" {
		s.CSRFToken = NewID()
	}
	if err := m.Save(ctx, s); err != nil {
		return err
	}
	m.SetCookie(w, s.ID)
	return nil
}

// Save writes s if nobody else changed it since it was loaded; otherwise it
// returns ErrConflict (reload and retry).
func (m *Manager) Save(ctx context.Context, s *Session) error {
	if s.key == "" {
		return errors.New("session: Save of a session that was never created")
	}
	pt, err := jsonv2.Marshal(s, payloadOptions)
	if err != nil {
		return fmt.Errorf("session: encoding: %w", err)
	}
	rec := &Record{
		Key:       s.key,
		Subject:   s.Subject,
		SID:       s.SID,
		ExpiresAt: m.expiry(s),
		Version:   s.version,
		Payload:   m.ring.Seal(pt, []byte(s.key)),
	}
	if err := m.store.Save(ctx, rec); err != nil {
		m.decoded.Delete(s.key)
		return err
	}
	s.version = rec.Version
	m.remember(s, m.now().Unix())
	return nil
}

// Touch extends the idle timeout of a session in use. To spare the store a
// write per request it writes only when a tenth of the idle timeout (at
// most a minute) has passed since the last write; a conflict is ignored,
// since whoever won wrote a fresh LastSeen as well.
func (m *Manager) Touch(ctx context.Context, s *Session) error {
	now := m.now()
	if now.Sub(s.LastSeen) < min(m.idle/10, time.Minute) {
		return nil
	}
	s.LastSeen = now
	if err := m.Save(ctx, s); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// Destroy deletes s and clears the cookie. When the store fails the
// cookie is kept: the session still exists, and the user must be able to
// log out again once the store is back.
func (m *Manager) Destroy(ctx context.Context, w http.ResponseWriter, s *Session) error {
	if s != nil && s.key != "" {
		m.decoded.Delete(s.key)
		if err := m.store.Delete(ctx, s.key); err != nil {
			return err
		}
	}
	m.ClearCookie(w)
	return nil
}

// SetCookie sets the session cookie to id: HttpOnly, SameSite=Lax, Path=/,
// Secure (and __Host-) on https, and no Max-Age, so closing the browser ends
// it while the server-side timeouts bound its life anyway.
func (m *Manager) SetCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearCookie removes the session cookie from the browser.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	})
}
