package session_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func keyring(t *testing.T, keys ...string) *session.Keyring {
	t.Helper()
	var raw [][]byte
	for _, k := range keys {
		parsed, err := session.ParseKeys(k)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, parsed...)
	}
	kr, err := session.NewKeyring(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newManager(t *testing.T, store session.Store, kr *session.Keyring, clk *clock, secure bool) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Config{Store: store, Keyring: kr, Secure: secure, Now: clk.Now, IdleTimeout: 30 * time.Minute, MaxLifetime: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// requestWith returns a request carrying the cookies w set.
func requestWith(w *httptest.ResponseRecorder) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	return r
}

func TestManagerCreateGet(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	clk := &clock{now: time.Now()}
	key := session.GenerateKey()
	m := newManager(t, store, keyring(t, key), clk, true)

	w := httptest.NewRecorder()
	s := &session.State{Subject: "u1", SID: "kc-sid", AccessToken: "secret-access-token", RefreshToken: "secret-refresh-token", Values: map[string]string{"k": "v"}}
	if err := m.Create(context.Background(), w, s); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", cookies)
	}
	c := cookies[0]
	if c.Name != "__Host-cloakroom" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Value != s.ID {
		t.Fatalf("cookie = %+v", c)
	}
	if strings.Contains(c.Value, "u1") || len(c.Value) != 43 {
		t.Fatalf("cookie value is not a bare random id: %q", c.Value)
	}
	got, err := m.Get(requestWith(w))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "u1" || got.RefreshToken != "secret-refresh-token" || got.Values["k"] != "v" || got.CSRFToken == "" {
		t.Fatalf("Get = %+v", got)
	}
	// What the store holds is the hash of the id and an encrypted payload.
	rec, err := store.Load(context.Background(), session.KeyOf(s.ID))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key == s.ID || bytes.Contains(rec.Payload, []byte("secret-refresh-token")) || bytes.Contains(rec.Payload, []byte("secret-access-token")) {
		t.Fatal("the store holds the cookie value or a plaintext token")
	}
	if rec.SID != "kc-sid" || rec.Subject != "u1" {
		t.Fatalf("indexes = %q %q", rec.SID, rec.Subject)
	}
}

func TestManagerRejectsBadCookies(t *testing.T) {
	t.Parallel()
	m := newManager(t, session.NewMemoryStore(), keyring(t, session.GenerateKey()), &clock{now: time.Now()}, false)
	for _, v := range []string{"", "short", strings.Repeat("a", 44), strings.Repeat("!", 43), session.NewID()} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: "cloakroom", Value: v})
		if _, err := m.Get(r); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("cookie %q: err = %v, want ErrNotFound", v, err)
		}
	}
}

func TestManagerTimeouts(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	m := newManager(t, session.NewMemoryStore(), keyring(t, session.GenerateKey()), clk, false)
	w := httptest.NewRecorder()
	s := &session.State{Subject: "u"}
	if err := m.Create(context.Background(), w, s); err != nil {
		t.Fatal(err)
	}
	// Used every 20 minutes, the session outlives the 30-minute idle timeout…
	for range 5 {
		clk.Add(20 * time.Minute)
		got, err := m.Get(requestWith(w))
		if err != nil {
			t.Fatalf("after %v: %v", clk.Now().Sub(s.CreatedAt), err)
		}
		if err := m.Touch(context.Background(), got); err != nil {
			t.Fatal(err)
		}
	}
	// …but not the 2-hour absolute lifetime.
	clk.Add(30 * time.Minute)
	if _, err := m.Get(requestWith(w)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("past the absolute lifetime: err = %v", err)
	}
	// Idle for longer than the idle timeout ends a fresh session.
	w2 := httptest.NewRecorder()
	if err := m.Create(context.Background(), w2, &session.State{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(31 * time.Minute)
	if _, err := m.Get(requestWith(w2)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("idle session: err = %v", err)
	}
}

// slowLoad is a store whose Load takes d of the test clock.
type slowLoad struct {
	session.Store
	clk *clock
	d   time.Duration
}

func (s *slowLoad) Load(ctx context.Context, key string) (*session.Record, error) {
	s.clk.Add(s.d)
	return s.Store.Load(ctx, key)
}

// A session that expires while the store answers is expired: the clock
// the expiry is checked against is read after the store's answer, not
// before the lookup.
func TestManagerExpiryAfterSlowStore(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	store := &slowLoad{Store: session.NewMemoryStore(), clk: clk}
	m := newManager(t, store, keyring(t, session.GenerateKey()), clk, false)
	w := httptest.NewRecorder()
	if err := m.Create(context.Background(), w, &session.State{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	clk.Add(29 * time.Minute)
	store.d = 2 * time.Minute // the 30-minute idle timeout passes during the load
	if _, err := m.Get(requestWith(w)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("expired during a slow load: err = %v", err)
	}
}

// saveOnly hides a store's Touch: the Manager must save instead.
type saveOnly struct{ session.Store }

func TestManagerTouchWritesOnlyWhenDue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		wrap    func(session.Store) session.Store
		touched bool // the record is extended in place, its version kept
	}{
		{"Toucher", func(s session.Store) session.Store { return s }, true},
		{"save", func(s session.Store) session.Store { return saveOnly{s} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Now()}
			mem := session.NewMemoryStore()
			kr := keyring(t, session.GenerateKey())
			m := newManager(t, tc.wrap(mem), kr, clk, false)
			s := &session.State{Subject: "u"}
			w := httptest.NewRecorder()
			if err := m.Create(context.Background(), w, s); err != nil {
				t.Fatal(err)
			}
			stored := func() *session.Record {
				t.Helper()
				r, err := mem.Load(context.Background(), s.Key())
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			before := stored()
			clk.Add(10 * time.Second)
			_ = m.Touch(context.Background(), s)
			if r := stored(); r.Version != before.Version || !r.ExpiresAt.Equal(before.ExpiresAt) {
				t.Fatal("Touch wrote after 10 seconds")
			}
			clk.Add(2 * time.Minute)
			if err := m.Touch(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			after := stored()
			if want := clk.Now().Add(30 * time.Minute); !after.ExpiresAt.Equal(want) {
				t.Fatalf("after Touch the record expires at %v, want %v", after.ExpiresAt, want)
			}
			if tc.touched != (after.Version == before.Version && bytes.Equal(after.Payload, before.Payload)) {
				t.Fatalf("Touch through a Toucher = %v, but the record went from version %d to %d", tc.touched, before.Version, after.Version)
			}
			// Another instance (a Manager of its own) reads LastSeen from
			// the record: it neither touches again at once nor gives the
			// session a longer life than the record's.
			other := newManager(t, tc.wrap(mem), kr, clk, false)
			for name, mgr := range map[string]*session.Manager{"this instance": m, "another instance": other} {
				got, err := mgr.Get(requestWith(w))
				if err != nil {
					t.Fatal(err)
				}
				if !got.LastSeen.Equal(clk.Now()) || !mgr.ExpiresAt(got).Equal(after.ExpiresAt) {
					t.Fatalf("%s: loaded LastSeen %v, expiry %v; want %v and %v", name, got.LastSeen, mgr.ExpiresAt(got), clk.Now(), after.ExpiresAt)
				}
				v := stored().Version
				if err := mgr.Touch(context.Background(), got); err != nil || stored().Version != v || !stored().ExpiresAt.Equal(after.ExpiresAt) {
					t.Fatalf("%s: Touch right after a Touch wrote (%v)", name, err)
				}
			}
			// Used again within the idle timeout, the session lives on;
			// left alone past it, it ends.
			clk.Add(25 * time.Minute)
			if _, err := m.Get(requestWith(w)); err != nil {
				t.Fatalf("25 minutes after a Touch: %v", err)
			}
			clk.Add(6 * time.Minute)
			if _, err := m.Get(requestWith(w)); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("31 minutes after a Touch: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	clk := &clock{now: time.Now()}
	oldKey, newKey := session.GenerateKey(), session.GenerateKey()
	before := newManager(t, store, keyring(t, oldKey), clk, false)
	w := httptest.NewRecorder()
	if err := before.Create(context.Background(), w, &session.State{Subject: "u", RefreshToken: "rt"}); err != nil {
		t.Fatal(err)
	}
	// Rotation: the new key first, the old one kept for existing sessions.
	during := newManager(t, store, keyring(t, newKey, oldKey), clk, false)
	s, err := during.Get(requestWith(w))
	if err != nil || s.RefreshToken != "rt" {
		t.Fatalf("old session under the rotated keyring: %v", err)
	}
	if err := during.Save(context.Background(), s); err != nil { // re-sealed with the new key
		t.Fatal(err)
	}
	after := newManager(t, store, keyring(t, newKey), clk, false)
	if _, err := after.Get(requestWith(w)); err != nil {
		t.Fatalf("re-sealed session without the old key: %v", err)
	}
	// A session sealed only with a retired key is gone, not an error page.
	w2 := httptest.NewRecorder()
	if err := before.Create(context.Background(), w2, &session.State{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := after.Get(requestWith(w2)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session of a retired key: err = %v", err)
	}
}

func TestPayloadBoundToKey(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	m := newManager(t, store, keyring(t, session.GenerateKey()), &clock{now: time.Now()}, false)
	wa, wb := httptest.NewRecorder(), httptest.NewRecorder()
	a, b := &session.State{Subject: "alice"}, &session.State{Subject: "mallory"}
	_ = m.Create(context.Background(), wa, a)
	_ = m.Create(context.Background(), wb, b)
	// Someone with write access to the store copies alice's payload into
	// mallory's record: it must not open.
	ra, _ := store.Load(context.Background(), a.Key())
	rb, _ := store.Load(context.Background(), b.Key())
	rb.Payload = ra.Payload
	if err := store.Save(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(requestWith(wb)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("swapped payload: err = %v", err)
	}
}

func TestKeyringErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", "no encryption key"},
		{"c2hvcnQ=", "decodes to 5 bytes"},
		{"!!!", "not base64 or hex"},
	} {
		_, err := session.ParseKeys(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKeys(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	k := session.GenerateKey()
	if _, err := session.ParseKeys(k + "," + k); err != nil {
		t.Fatal(err)
	}
	raw, _ := session.ParseKeys(k + "," + k)
	if _, err := session.NewKeyring(raw...); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := session.NewKeyring(); err == nil {
		t.Fatal("empty keyring accepted")
	}
	hexKey := strings.Repeat("ab", 32)
	if keys, err := session.ParseKeys(hexKey); err != nil || len(keys[0]) != 32 {
		t.Fatalf("hex key: %v", err)
	}
	kr := keyring(t, k)
	sealed := kr.Seal([]byte("x"), []byte("aad"))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := kr.Open(bad, []byte("aad")); !errors.Is(err, session.ErrDecrypt) {
			t.Fatalf("flipping byte %d was not detected", i)
		}
	}
	if _, err := kr.Open(sealed[:10], []byte("aad")); !errors.Is(err, session.ErrDecrypt) {
		t.Fatal("truncated payload opened")
	}
}

// TestDecodedSessionsFollowVersions: a Manager keeps decoded sessions, but
// a record written elsewhere (another instance) is decoded again, and what
// a caller changes in a returned session does not leak into the next one.
func TestDecodedSessionsFollowVersions(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	clk := &clock{now: time.Now()}
	kr := keyring(t, session.GenerateKey())
	a := newManager(t, store, kr, clk, false)
	b := newManager(t, store, kr, clk, false) // another instance
	w := httptest.NewRecorder()
	if err := a.Create(context.Background(), w, &session.State{Subject: "u", AccessToken: "t1", Values: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := a.Get(requestWith(w))
	got.Values["k"] = "mutated"
	got.AccessToken = "mutated"
	if again, _ := a.Get(requestWith(w)); again.Values["k"] != "v" || again.AccessToken != "t1" {
		t.Fatalf("a change to a returned session leaked: %+v", again)
	}
	other, _ := b.Get(requestWith(w))
	other.AccessToken = "t2"
	if err := b.Save(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := a.Get(requestWith(w)); fresh.AccessToken != "t2" {
		t.Fatalf("instance a served a stale decoded session: %q", fresh.AccessToken)
	}
}

// A session deleted (logged out) while a request holds it is not brought
// back by that request's Touch.
func TestManagerTouchAfterDelete(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(session.Store) session.Store{
		"Toucher": func(s session.Store) session.Store { return s },
		"save":    func(s session.Store) session.Store { return saveOnly{s} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Now()}
			mem := session.NewMemoryStore()
			m := newManager(t, wrap(mem), keyring(t, session.GenerateKey()), clk, false)
			s := &session.State{Subject: "u"}
			if err := m.Create(context.Background(), httptest.NewRecorder(), s); err != nil {
				t.Fatal(err)
			}
			held := *s
			if err := m.Delete(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			clk.Add(2 * time.Minute)
			if err := m.Touch(context.Background(), &held); err != nil {
				t.Fatalf("Touch of a deleted session: %v", err)
			}
			if _, err := mem.Load(context.Background(), held.Key()); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Touch brought a deleted session back: %v", err)
			}
			if _, err := m.Load(context.Background(), held.ID); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Load of a deleted session after Touch: %v", err)
			}
		})
	}
}

// KeyOf is base64url(SHA-256(id)) for ids of every length, not only the
// 43-byte ones it hashes on the stack.
func TestKeyOf(t *testing.T) {
	t.Parallel()
	for n := range 130 {
		id := strings.Repeat("x", n)
		sum := sha256.Sum256([]byte(id))
		if got, want := session.KeyOf(id), base64.RawURLEncoding.EncodeToString(sum[:]); got != want {
			t.Fatalf("KeyOf(%d bytes) = %q, want %q", n, got, want)
		}
	}
}
