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
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/internal/sessionmemo"
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

// State is the server-side state of one browser session, decrypted.
// Everything but ID, Subject and SID is encrypted in the store. (The login
// package's view of a logged-in user is login.Session.)
type State struct {
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

	// OpaqueAccessToken marks an access token that is opaque to this
	// client (a GenericOIDC provider's): it is carried, never verified, and
	// roles come from the ID claims.
	OpaqueAccessToken bool `json:"opaque_at,omitempty"`
	// UserinfoClaims are the profile members (a JSON object) that the
	// userinfo endpoint added to IDClaims at login; they are added again
	// after a refresh whose ID token lacks them.
	UserinfoClaims json.RawMessage `json:"userinfo,omitempty"`
	// StepUpACR is the authentication level the last step-up login asked
	// for (acr_values) and StepUpAt when it completed, so that a provider
	// that cannot reach the level is not asked again in a loop.
	StepUpACR string    `json:"stepup_acr,omitempty"`
	StepUpAt  time.Time `json:"stepup_at,omitzero"`

	// CSRFToken protects state-changing forms of this session (logout).
	CSRFToken string `json:"csrf,omitempty"`
	// Values holds application data, e.g. set by a login hook
	// (login.LoginEvent.Values). Keys starting with "cloakroom." are
	// reserved.
	Values map[string]string `json:"values,omitempty"`
	// RefreshLease marks a token refresh in progress on some instance until
	// that time, so that other instances wait for its result instead of
	// spending the same refresh token.
	RefreshLease time.Time `json:"lease,omitzero"`

	key     string
	version int64
	// packed is the string pack put the strings in.
	packed string
	// from is the decoded session this state was copied from (Load) or
	// that was made of it (remember), and memo what was kept with that
	// one (internal/sessionmemo): login's parsed claims.
	from *State
	memo any
}

func init() {
	sessionmemo.Set(
		func(state any) any { return state.(*State).memo },
		func(manager, state, v any) { manager.(*Manager).keepMemo(state.(*State), v) },
	)
}

// Key returns the store key of the session.
func (s *State) Key() string { return s.key }

// Version returns the store version the session was loaded or saved at.
func (s *State) Version() int64 { return s.version }

// Config configures a Manager.
type Config struct {
	// Store keeps the sessions. The Manager does not own it and never
	// closes it: whoever opened the store closes it once the Manager (and
	// any login.Handler using it) has stopped serving requests.
	Store   Store
	Keyring *Keyring
	// CookieName is the session cookie's name (default "cloakroom"); with
	// Secure it gets the "__Host-" prefix.
	CookieName string
	// CookieDomain, when set (e.g. ".example.com"), is the session
	// cookie's Domain attribute: the browser then sends the cookie to every
	// host under that domain, so several sites share one login. Every one
	// of those hosts receives the cookie. Empty (the default) keeps the
	// cookie on the host that set it. With Secure, the cookie takes the
	// "__Secure-" prefix instead of "__Host-" (which forbids a Domain).
	CookieDomain string
	// Secure marks the cookie Secure (set it when the site is served over
	// https). login.New does not need it: it derives Secure from its
	// BaseURL (see WithSecure).
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
	name    string // CookieName without the __Host- prefix
	cookie  string
	secure  bool
	domain  string // the cookie's Domain attribute, or empty
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
		decoded: ttlcache.New[decodedSession](decodedEntries, decodedBytes),
		store:   cfg.Store,
		ring:    cfg.Keyring,
		name:    cfg.CookieName,
		domain:  cfg.CookieDomain,
		idle:    cfg.IdleTimeout,
		max:     cfg.MaxLifetime,
		now:     cfg.Now,
	}
	if m.name == "" {
		m.name = "cloakroom"
	}
	m.setSecure(cfg.Secure)
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

func (m *Manager) setSecure(secure bool) {
	m.secure, m.cookie = secure, m.name
	switch {
	case secure && m.domain != "":
		m.cookie = "__Secure-" + m.name // __Host- cookies cannot carry a Domain
	case secure:
		m.cookie = "__Host-" + m.name
	}
}

// WithSecure returns a Manager for the same sessions (same store, keyring,
// timeouts and decoded-session cache) whose cookie is Secure (with the
// __Host- prefix) as secure says; m itself when it already is. login.New
// uses it to follow its BaseURL (https: Secure); login.Handler.Sessions
// returns the result.
func (m *Manager) WithSecure(secure bool) *Manager {
	if m.secure == secure {
		return m
	}
	c := *m
	c.setSecure(secure)
	return &c
}

// Keyring returns the Manager's keyring, for sealing other short-lived
// state (e.g. pending logins) with the same keys.
func (m *Manager) Keyring() *Keyring { return m.ring }

// CookieName returns the name of the session cookie.
func (m *Manager) CookieName() string { return m.cookie }

// Secure reports whether cookies are marked Secure.
func (m *Manager) Secure() bool { return m.secure }

// KeyOf returns the store key for a cookie value.
func KeyOf(id string) string {
	var sum [sha256.Size]byte
	if len(id) <= 64 {
		// A session id (43 bytes) is copied to the stack: []byte(id)
		// would be a heap allocation per request beyond 32 bytes.
		var b [64]byte
		sum = sha256.Sum256(b[:copy(b[:], id)])
	} else {
		sum = sha256.Sum256([]byte(id))
	}
	var out [43]byte // base64url of 32 bytes, unpadded
	base64.RawURLEncoding.Encode(out[:], sum[:])
	return string(out[:])
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
func (m *Manager) Get(r *http.Request) (*State, error) {
	c, err := r.Cookie(m.cookie)
	if err != nil || !validID(c.Value) {
		return nil, ErrNotFound
	}
	return m.Load(r.Context(), c.Value)
}

// Load returns the session with cookie value id.
func (m *Manager) Load(ctx context.Context, id string) (*State, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	key := KeyOf(id)
	// The clock is read once for the caches (the lookup is on every
	// request with a session) and again after the store answered, for
	// the expiry: a slow store must not stretch a timeout.
	now := m.now()
	// The session as decoded here before, if it is: a CachedStore below
	// then answers with the record's header alone when the record is
	// still at that version (see decodedHint).
	held, ok := m.decoded.Get(key, now.Unix())
	if !ok {
		held = decodedSession{version: -1}
	}
	ctx = withDecoded(ctx, key, held.version)
	rec, err := m.store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	s, err := m.open(rec, held, now.Unix())
	if errors.Is(err, errNoPayload) {
		// A header for a version not held here (a cache is not expected
		// to send one): read the whole record.
		if rec, err = m.store.Load(WithoutCache(ctx), key); err != nil {
			return nil, err
		}
		s, err = m.open(rec, held, now.Unix())
	}
	if err != nil {
		// A payload sealed with a retired key: the session cannot be used.
		_ = m.store.Delete(ctx, key)
		return nil, ErrNotFound
	}
	s.ID = id
	now = m.now()
	s.LastSeen = m.touchedAt(s, rec, now)
	if !now.Before(m.expiry(s)) {
		_ = m.store.Delete(ctx, key)
		return nil, ErrNotFound
	}
	return s, nil
}

// Reload reads the stored state of s again, bypassing any instance-local
// cache (after a conflict, or while waiting for another instance).
func (m *Manager) Reload(ctx context.Context, s *State) (*State, error) {
	return m.Load(WithoutCache(ctx), s.ID)
}

// errNoPayload: a record header without its payload, whose version is
// not the one held decoded.
var errNoPayload = errors.New("session: record without payload")

// open returns the session in rec: held's copy when held, the session as
// decoded here before, is at rec's version; otherwise decrypted and
// decoded from rec's payload.
func (m *Manager) open(rec *Record, held decodedSession, now int64) (*State, error) {
	// A record version is written once (Save's compare-and-swap), so a
	// session decoded at this key and version is this record: skip the
	// decryption and decoding that a lookup per request would repeat.
	if held.session != nil && held.version == rec.Version {
		s := held.session.copy()
		s.from, s.memo = held.session, held.memo
		return s, nil
	}
	if rec.Payload == nil {
		return nil, errNoPayload
	}
	pt, err := m.ring.Open(rec.Payload, []byte(rec.Key))
	if err != nil {
		return nil, err
	}
	var s State
	if err := jsonv2.Unmarshal(pt, &s, payloadOptions); err != nil {
		return nil, fmt.Errorf("session: corrupt payload: %w", err)
	}
	upgradeLegacyValues(&s)
	s.key, s.version = rec.Key, rec.Version
	m.remember(&s, now)
	return &s, nil
}

// decodedSession is a session as last decoded or saved at a version, and
// what login keeps with it (memo; see internal/sessionmemo).
type decodedSession struct {
	version int64
	session *State
	memo    any
}

// remember keeps s decoded, packed and without its ID: Load sets the ID
// of each copy it hands out from the cookie it was given, so the cache
// holds no cookie value (a credential), and one object less per session.
// What was kept with the session s came from goes on being kept with it:
// login checks that it still answers for the session's tokens.
func (m *Manager) remember(s *State, now int64) {
	c := s.copy()
	c.ID, c.from, c.memo = "", nil, nil
	c.pack()
	s.from = c
	m.decoded.Put(s.key, decodedSession{version: s.version, session: c, memo: s.memo}, now+decodedTTL, s.memSize(), now)
}

// keepMemo keeps v with s, and with the decoded session s was copied from
// if that is still the one held for s's key (internal/sessionmemo): a
// session deleted or decoded again meanwhile does not get it.
func (m *Manager) keepMemo(s *State, v any) {
	s.memo = v
	if s.from == nil || s.key == "" {
		return
	}
	from := s.from
	m.decoded.Update(s.key, func(e *decodedSession) bool {
		if e.session != from {
			return false
		}
		e.memo = v
		return true
	})
}

// decodedTTL is how long a decoded session is kept after it was last
// decoded or saved. It outlives Touch's interval (at most a minute), whose
// Save puts it back: a session in use stays decoded instead of being
// decoded again every minute into new strings, while the verifier's
// cache (keyed by the access token) goes on holding the previous ones.
const decodedTTL = 2 * 60

// Bounds of the decoded-session cache. Bytes bind first: a session with a
// Keycloak login's tokens (access, refresh and ID tokens, ID claims) and
// login's claims kept with it is about 9 kB decoded (memSize), so 224 MiB
// hold about 25,000 sessions; the shards (a sixteenth of each bound
// apiece) fill unevenly, and this leaves room for 10,000 sessions and
// then some before one evicts.
const (
	decodedEntries = 200_000
	decodedBytes   = 224 << 20
)

// stateOverhead approximates the memory of a decoded session beyond its
// strings: the State (416 bytes), the cache entry and map slot, and the
// rounding of the strings to allocation size classes.
const stateOverhead = 640

// memoOverhead is the fixed part of memSize's allowance for what login
// keeps with a session (internal/sessionmemo): its ID Claims (about 700 bytes) with a
// copy of the claims JSON and the roles decoded from it on first use, the
// access-token claims the same (their JSON is about three quarters of
// the token; shared with the Verifier's cache, which may let go of them
// first), and the memo itself.
const memoOverhead = 1400

// memSize estimates the memory s takes in the decoded cache, with what
// login keeps with it. Strings shared with the cache key (key) are not
// counted.
func (s *State) memSize() int {
	n := len(s.Subject) + len(s.SID) + len(s.Issuer) + len(s.AccessToken) + len(s.RefreshToken) + len(s.IDToken) +
		len(s.IDClaims) + len(s.UserinfoClaims) + len(s.StepUpACR) + len(s.CSRFToken) + stateOverhead +
		2*len(s.IDClaims) + 3*len(s.AccessToken)/2 + memoOverhead
	for k, v := range s.Values {
		n += len(k) + len(v) + 64
	}
	return n
}

// pack moves s's strings but the access token into one string that they
// then share, and its two JSON members into one slice, each capped so
// that an append to one cannot reach the next. A session kept decoded is
// then five objects (the State, its access token, its other strings, its
// JSON and Values) instead of a dozen: each is one more for the garbage
// collector to mark on every cycle for as long as the session is in use,
// which with 10,000 sessions was most of what they cost each request. nil
// stays nil. The access token keeps its own string: the Verifier's cache
// holds it as its key from the verification at login or refresh, so a
// copy here would keep it twice. A session saved again with the same
// values (Touch, every minute) keeps the strings it has: a new copy
// would leave the old one alive wherever its strings are still held
// (login's claims kept with the session hold the ID token).
func (s *State) pack() {
	strs := [...]*string{&s.Subject, &s.SID, &s.Issuer, &s.RefreshToken, &s.IDToken, &s.StepUpACR, &s.CSRFToken}
	if !repoint(strs[:], s.packed) {
		n := 0
		for _, f := range strs {
			n += len(*f)
		}
		var b strings.Builder
		b.Grow(n)
		for _, f := range strs {
			b.WriteString(*f)
		}
		s.packed = b.String()
		repoint(strs[:], s.packed)
	}
	// The JSON members are packed anew each time: nothing else holds them
	// (login parses its own copy of the ID claims), so the last copy is
	// garbage at once.
	raw := make([]byte, 0, len(s.IDClaims)+len(s.UserinfoClaims))
	for _, f := range [...]*json.RawMessage{&s.IDClaims, &s.UserinfoClaims} {
		if *f != nil {
			raw = append(raw, *f...)
			*f = raw[len(raw)-len(*f) : len(raw) : len(raw)]
		}
	}
}

// repoint makes each of fields a slice of all, in order, if all holds
// exactly their values one after the other; it reports whether it did.
func repoint(fields []*string, all string) bool {
	off := 0
	for _, f := range fields {
		end := off + len(*f)
		if end > len(all) || all[off:end] != *f {
			return false
		}
		off = end
	}
	if off != len(all) {
		return false
	}
	off = 0
	for _, f := range fields {
		*f, off = all[off:off+len(*f)], off+len(*f)
	}
	return true
}

// copy returns a copy that shares nothing mutable with s.
func (s *State) copy() *State {
	c := *s
	c.Values = maps.Clone(s.Values)
	return &c
}

func (m *Manager) expiry(s *State) time.Time {
	idle := s.LastSeen.Add(m.idle)
	abs := s.CreatedAt.Add(m.max)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// ExpiresAt returns when s ends unless it is used again.
func (m *Manager) ExpiresAt(s *State) time.Time { return m.expiry(s) }

// Create stores s as a new session under a fresh id and sets the cookie.
// Any id s had before is discarded: logging in always changes the id, so a
// cookie planted before login is worthless afterwards.
func (m *Manager) Create(ctx context.Context, w http.ResponseWriter, s *State) error {
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
func (m *Manager) Save(ctx context.Context, s *State) error {
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
	// The version saved is kept decoded below: a CachedStore need not
	// keep its payload too.
	if err := m.store.Save(withDecoded(ctx, s.key, -1), rec); err != nil {
		m.decoded.Delete(s.key)
		return err
	}
	s.version = rec.Version
	m.remember(s, m.now().Unix())
	return nil
}

// Touch extends the idle timeout of a session in use. To spare the store a
// write per request it writes only when a tenth of the idle timeout (at
// most a minute) has passed since the last write. A store that is a
// Toucher only has the record's expiry extended (Load derives LastSeen
// from it); others get the whole session saved, and a conflict is
// ignored, since whoever won wrote a fresh LastSeen as well. A session
// deleted meanwhile stays deleted.
func (m *Manager) Touch(ctx context.Context, s *State) error {
	now := m.now()
	if now.Sub(s.LastSeen) < min(m.idle/10, time.Minute) {
		return nil
	}
	prev := s.LastSeen
	s.LastSeen = now
	switch err := touch(ctx, m.store, s.key, m.expiry(s)); {
	case err == nil:
		m.remember(s, now.Unix())
		return nil
	case errors.Is(err, ErrNotFound):
		m.decoded.Delete(s.key)
		return nil
	case !errors.Is(err, errors.ErrUnsupported):
		s.LastSeen = prev
		return err
	}
	if err := m.Save(ctx, s); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// touchedAt returns when the session in rec was last seen, by the later
// of its payload's LastSeen and what its expiry says: a Touch extends the
// expiry to LastSeen + the idle timeout without rewriting the payload.
// An expiry set by the absolute timeout gives an earlier time than the
// real one, and one beyond now (an idle timeout shortened since) is not
// taken: either way the session's expiry is never later than the
// record's.
func (m *Manager) touchedAt(s *State, rec *Record, now time.Time) time.Time {
	if t := rec.ExpiresAt.Add(-m.idle); t.After(s.LastSeen) && !t.After(now) {
		return t
	}
	return s.LastSeen
}

// Destroy deletes s and clears the cookie. When the store fails the
// cookie is kept: the session still exists, and the user must be able to
// log out again once the store is back.
func (m *Manager) Destroy(ctx context.Context, w http.ResponseWriter, s *State) error {
	// A deletion journaled for later (ErrLogoutDeferred) is a logout done.
	if err := m.Delete(ctx, s); err != nil && !errors.Is(err, ErrLogoutDeferred) {
		return err
	}
	m.ClearCookie(w)
	return nil
}

// Delete deletes s from the store, leaving cookies alone (for sessions
// ended outside a response to their browser, or replaced by a new one).
// Deleting a session that is gone, or was never created, is not an error.
func (m *Manager) Delete(ctx context.Context, s *State) error {
	if s == nil || s.key == "" {
		return nil
	}
	m.decoded.Delete(s.key)
	return m.store.Delete(ctx, s.key)
}

// DeleteBySID deletes every session of a Keycloak session id (sid) and
// returns their store keys: back- and front-channel logout.
func (m *Manager) DeleteBySID(ctx context.Context, sid string) ([]string, error) {
	keys, err := m.store.DeleteBySID(ctx, sid)
	m.forget(keys)
	return keys, err
}

// DeleteBySubject deletes every session of a user (sub) and returns their
// store keys.
func (m *Manager) DeleteBySubject(ctx context.Context, subject string) ([]string, error) {
	keys, err := m.store.DeleteBySubject(ctx, subject)
	m.forget(keys)
	return keys, err
}

func (m *Manager) forget(keys []string) {
	for _, k := range keys {
		m.decoded.Delete(k)
	}
}

// MarkOnce records key in the shared store until the time until and
// reports whether this was the first time (see Store.MarkOnce): a replay
// check shared by every instance, e.g. for the jti of logout tokens.
func (m *Manager) MarkOnce(ctx context.Context, key string, until time.Time) (first bool, err error) {
	return m.store.MarkOnce(ctx, key, until)
}

// SetCookie sets the session cookie to id: HttpOnly, SameSite=Lax, Path=/,
// Secure (and __Host-) on https, and no Max-Age, so closing the browser ends
// it while the server-side timeouts bound its life anyway.
func (m *Manager) SetCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookie,
		Value:    id,
		Path:     "/",
		Domain:   m.domain,
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
		Domain:   m.domain,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   m.secure,
		SameSite: http.SameSiteLaxMode,
	})
}
