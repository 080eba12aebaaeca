package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/pgstore"
	"github.com/cloakroom/cloakroom/session/redisstore"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

// tokenLike returns n base64url characters, the alphabet of real tokens.
func tokenLike(n int) string {
	b := make([]byte, n*3/4+1)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stores opens every session store this machine can run; Redis and
// PostgreSQL need CLOAKROOM_TEST_REDIS / CLOAKROOM_TEST_POSTGRES.
func stores(b *testing.B) []struct {
	name string
	open func(b *testing.B) session.Store
} {
	out := []struct {
		name string
		open func(b *testing.B) session.Store
	}{
		{"memory", func(b *testing.B) session.Store { return session.NewMemoryStore() }},
		{"sqlite", func(b *testing.B) session.Store {
			s, err := sqlitestore.Open(filepath.Join(b.TempDir(), "sessions.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"redis", func(b *testing.B) session.Store {
			addr := os.Getenv("CLOAKROOM_TEST_REDIS")
			if addr == "" {
				b.Skip("set CLOAKROOM_TEST_REDIS=127.0.0.1:6379")
			}
			s, err := redisstore.Open("redis://"+addr, redisstore.WithPrefix("cloakroom-bench:"+randomName()+":"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"postgres", func(b *testing.B) session.Store {
			dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES")
			if dsn == "" {
				b.Skip("set CLOAKROOM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test")
			}
			s, err := pgstore.Open(context.Background(), dsn, pgstore.WithTable("bench_"+randomName()))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	return out
}

// keycloakSizedSession creates, through a Manager over store (idle: its
// idle timeout, 0 for the default), a session holding Keycloak-sized
// tokens, and returns the Manager, the session and its cookie.
func keycloakSizedSession(b *testing.B, store session.Store, idle time.Duration) (*session.Manager, *session.State, *http.Cookie) {
	b.Helper()
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	mgr, err := session.NewManager(session.Config{Store: store, Keyring: ring, IdleTimeout: idle})
	if err != nil {
		b.Fatal(err)
	}
	s := &session.State{
		Subject: "7c9e6679-7425-40de-944b-e07fc1f90ae7", SID: randomName(),
		AccessToken: tokenLike(1100), RefreshToken: tokenLike(600), IDToken: tokenLike(1000),
		AccessExpiry: time.Now().Add(time.Hour), IDClaims: []byte(`{"sub":"x","name":"Alice Liddell","email":"alice@example.com"}`),
	}
	w := httptest.NewRecorder()
	if err := mgr.Create(context.Background(), w, s); err != nil {
		b.Fatal(err)
	}
	return mgr, s, w.Result().Cookies()[0]
}

// BenchmarkSessionLookup measures what every request with a session cookie
// costs: Manager.Get (store lookup + AES-GCM open + JSON decode) of a
// session holding Keycloak-sized tokens.
func BenchmarkSessionLookup(b *testing.B) {
	for _, st := range stores(b) {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			defer store.Close()
			mgr, _, cookie := keycloakSizedSession(b, store, 0)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(cookie)
				for pb.Next() {
					if _, err := mgr.Get(r); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSessionUpkeep measures what a session in use costs its store
// besides being read from the instance-local cache, per store, old way
// against new way in the same run:
//
//   - keep-alive: Manager.Touch, once a minute per session. "save" is
//     what it did before session.Toucher (re-encrypt the session and
//     rewrite the whole record), "touch" what it does now (extend the
//     record's expiry);
//   - recheck: once the cache TTL has passed, "load" reads the whole
//     record (what a CachedStore did before session.HeaderLoader),
//     "header" the record without its payload.
//
// ns/op is the wall time of one operation (serial: one goroutine, so it
// includes the round trip to Redis or PostgreSQL).
func BenchmarkSessionUpkeep(b *testing.B) {
	for _, st := range stores(b) {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			defer store.Close()
			idle := 30 * time.Minute
			mgr, s, _ := keycloakSizedSession(b, store, idle)
			ctx := context.Background()
			toucher, ok := store.(session.Toucher)
			headers, ok2 := store.(session.HeaderLoader)
			if !ok || !ok2 {
				b.Fatalf("%s is not a session.Toucher and HeaderLoader", st.name)
			}
			for _, op := range []struct {
				name string
				do   func() error
			}{
				{"keep-alive/save", func() error { s.LastSeen = time.Now(); return mgr.Save(ctx, s) }},
				{"keep-alive/touch", func() error { return toucher.Touch(ctx, s.Key(), time.Now().Add(idle)) }},
				{"recheck/load", func() error { _, err := store.Load(ctx, s.Key()); return err }},
				{"recheck/header", func() error { _, err := headers.LoadHeader(ctx, s.Key()); return err }},
			} {
				b.Run(op.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := op.do(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
