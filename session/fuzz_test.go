package session_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
)

// fuzzRing has two keys, so both the encrypting and an older key are tried.
func fuzzRing(f *testing.F) *session.Keyring {
	k1, _ := base64.StdEncoding.DecodeString("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	k2 := bytes.Repeat([]byte{7}, session.KeySize)
	ring, err := session.NewKeyring(k1, k2)
	if err != nil {
		f.Fatal(err)
	}
	return ring
}

// FuzzKeyringOpen: Open on arbitrary bytes (and aad) never panics, and
// what it opens is authentic: in Seal's format for a key of the ring, and
// no longer opening with another aad or with any byte changed. (Seeds are
// sealed afresh in every fuzzing process, with random nonces, so the check
// cannot be a list of what was sealed.)
func FuzzKeyringOpen(f *testing.F) {
	ring := fuzzRing(f)
	old, _ := session.NewKeyring(bytes.Repeat([]byte{7}, session.KeySize))
	f.Add(ring.Seal([]byte(`{"sub":"alice"}`), []byte("key-1")), []byte("key-1"))
	f.Add(ring.Seal(nil, nil), []byte{})
	f.Add(old.Seal([]byte("sealed with the older key"), []byte("key-2")), []byte("key-2"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1, 0, 0, 0, 0}, []byte("k"))
	f.Add([]byte{2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, []byte("k"))
	const overhead = 1 + 4 + 12 + 16 // version, key id, nonce, tag
	f.Fuzz(func(t *testing.T, data, aad []byte) {
		_ = ring.NeedsReseal(data)
		pt, err := ring.Open(data, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if data[0] != 1 || len(data) != overhead+len(pt) {
			t.Fatalf("opened %d bytes that are not in Seal's format (%d bytes of plaintext)", len(data), len(pt))
		}
		if _, err := ring.Open(data, append(bytes.Clone(aad), 'x')); err == nil {
			t.Fatal("opened with another aad")
		}
		for _, i := range []int{0, 1, 5, len(data) - 1} {
			tampered := bytes.Clone(data)
			tampered[i] ^= 0x01
			if _, err := ring.Open(tampered, aad); err == nil {
				t.Fatalf("opened with byte %d changed", i)
			}
		}
	})
}

// FuzzSessionPayload: a record whose sealed payload decrypts to arbitrary
// bytes loads as a session or fails with an error, never a panic; a
// session that loads can be saved and loads again unchanged.
func FuzzSessionPayload(f *testing.F) {
	ring := fuzzRing(f)
	for _, s := range []string{
		`{"sub":"alice","sid":"s1","iss":"http://kc/realms/demo","created":"2030-01-01T00:00:00Z","seen":"2030-01-01T00:00:00Z","at":"a.b.c","rt":"r","it":"i.d.t","at_exp":"2030-01-01T00:05:00Z","idc":{"sub":"alice"},"csrf":"c","values":{"k":"v"},"lease":"2030-01-01T00:00:10Z"}`,
		`{"sub":"bob","created":"2030-01-01T00:00:00Z","seen":"2030-01-01T00:00:00Z"}`,
		`{"sub":"\xff","values":{"\xfe":"\x00"},"created":"2030-01-01T00:00:00Z","seen":"2030-01-01T00:00:00Z"}`,
		`{"idc":"not an object","created":"2030-01-01T00:00:00Z","seen":"2030-01-01T00:00:00Z"}`,
		`{"created":"9999-12-31T23:59:59Z","seen":"9999-12-31T23:59:59Z"}`,
		`{"sub":1}`, `{"values":[]}`, `null`, `[]`, `{`, ``, `{"sub":"a","sub":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		store := session.NewMemoryStore()
		defer store.Close()
		m, err := session.NewManager(session.Config{Store: store, Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		id := session.NewID()
		key := session.KeyOf(id)
		if err := store.Save(ctx, &session.Record{Key: key, Subject: "x", Payload: ring.Seal(payload, []byte(key)), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		s, err := m.Load(ctx, id)
		if err != nil {
			return
		}
		if s.ID != id || s.Key() != key {
			t.Fatal("loaded session has another id or key")
		}
		if err := m.Save(ctx, s); err != nil {
			return // e.g. a time JSON cannot represent: refused, nothing written
		}
		again, err := m.Load(ctx, id)
		if err != nil {
			t.Fatalf("a saved session does not load again: %v", err)
		}
		if again.Subject != s.Subject || again.SID != s.SID || again.AccessToken != s.AccessToken ||
			again.RefreshToken != s.RefreshToken || again.CSRFToken != s.CSRFToken || !again.CreatedAt.Equal(s.CreatedAt) {
			t.Fatalf("session changed by a save: %+v → %+v", s, again)
		}
	})
}
