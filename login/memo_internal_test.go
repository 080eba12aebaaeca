package login

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

// countingCheck counts the access-token verifications the Handler asks
// for behind its claims memo.
type countingCheck struct {
	inner interface {
		Verify(context.Context, string) (*cloakroom.Claims, error)
	}
	calls atomic.Int32
}

func (c *countingCheck) Verify(ctx context.Context, token string) (*cloakroom.Claims, error) {
	c.calls.Add(1)
	return c.inner.Verify(ctx, token)
}

// TestClaimsMemo: a session's verified access claims are reused across
// its requests only on the Verifier cache's own terms (same token, before
// its exp, same key-set epoch, cache on); anything else verifies again,
// and a token that no longer verifies ends the session.
func TestClaimsMemo(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	type fixture struct {
		h      *Handler
		check  *countingCheck
		cookie string
		state  *session.State
		setNow func(time.Time)
		epoch  *atomic.Uint64
	}
	setup := func(t *testing.T, vc cloakroom.VerifierConfig) *fixture {
		// The real time, until the test moves it.
		var skew atomic.Int64
		clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		f := &fixture{setNow: func(t time.Time) { skew.Store(int64(time.Until(t))) }, epoch: new(atomic.Uint64)}
		realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet), cloakroom.WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := session.ParseKeys(session.GenerateKey())
		ring, _ := session.NewKeyring(keys...)
		mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring})
		f.h, err = New(Config{Realm: realm, ClientID: "cloakroom", ClientSecret: "x", BaseURL: "http://app.test", Sessions: mgr, Logger: quiet, Verifier: vc})
		if err != nil {
			t.Fatal(err)
		}
		f.check = &countingCheck{inner: f.h.atCheck}
		f.h.atCheck = f.check
		// The Realm's epoch moves only when a published key disappears;
		// here the test moves it.
		realEpoch := f.h.keyEpoch
		f.h.keyEpoch = func() uint64 { return realEpoch() + f.epoch.Load() }

		// A lifetime shorter than the memo's own two minutes, so that the
		// memo still holds the claims when the token expires.
		access := kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithLifetime(30*time.Second))
		ac, err := f.h.atVerifier.Verify(context.Background(), access)
		if err != nil {
			t.Fatal(err)
		}
		f.state = &session.State{
			Subject:     ac.Subject(),
			AccessToken: access,
			// Past the token's exp, so that no refresh intervenes and
			// the memo's own exp check is what is tested.
			AccessExpiry: ac.Expiry().Add(24 * time.Hour),
		}
		rec := httptest.NewRecorder()
		if err := mgr.Create(context.Background(), rec, f.state); err != nil {
			t.Fatal(err)
		}
		f.cookie = rec.Result().Cookies()[0].String()
		return f
	}
	load := func(t *testing.T, f *fixture) *Session {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
		r.Header.Set("Cookie", f.cookie)
		s, err := f.h.load(httptest.NewRecorder(), r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	tests := []struct {
		name      string
		vc        cloakroom.VerifierConfig
		between   func(t *testing.T, f *fixture) // after the first request
		wantCalls int32                          // verifications over three requests
		wantEnded bool                           // the last request finds no session
	}{
		{name: "reused", wantCalls: 1},
		{name: "verifier cache off", vc: cloakroom.VerifierConfig{CacheEntries: -1}, wantCalls: 3},
		{name: "key set changed", between: func(t *testing.T, f *fixture) { f.epoch.Add(1) }, wantCalls: 2},
		{name: "new access token", between: func(t *testing.T, f *fixture) {
			s, err := f.h.sessions.Load(context.Background(), f.state.ID)
			if err != nil {
				t.Fatal(err)
			}
			s.AccessToken = kc.MustToken(t, "alice", "cloakroom")
			if err := f.h.sessions.Save(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}, wantCalls: 2},
		{name: "token past its exp", between: func(t *testing.T, f *fixture) {
			ac, _ := f.h.atVerifier.Verify(context.Background(), f.state.AccessToken)
			f.setNow(ac.Expiry().Add(time.Second))
		}, wantCalls: 2, wantEnded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, tt.vc)
			if s := load(t, f); s == nil || s.AccessClaims == nil || s.AccessClaims.Subject() != f.state.Subject {
				t.Fatalf("first request: session %+v", s)
			}
			if tt.between != nil {
				tt.between(t, f)
			}
			load(t, f)
			last := load(t, f)
			if got := f.check.calls.Load(); got != tt.wantCalls {
				t.Errorf("access-token verifications over three requests: %d, want %d", got, tt.wantCalls)
			}
			if ended := last == nil; ended != tt.wantEnded {
				t.Errorf("session ended: %v, want %v", ended, tt.wantEnded)
			}
			if last != nil {
				want, err := f.h.atVerifier.Verify(context.Background(), last.AccessToken)
				if err != nil || last.AccessClaims.ID() != want.ID() {
					t.Errorf("the claims are for another token than the session's (jti %q, want %q, %v)", last.AccessClaims.ID(), want.ID(), err)
				}
			}
		})
	}

	// Two Handlers sharing one Manager (two apps on one session store):
	// each verifies for itself, never taking the claims the other kept
	// with the session.
	t.Run("another Handler's memo is not used", func(t *testing.T) {
		t.Parallel()
		f := setup(t, cloakroom.VerifierConfig{})
		other, err := New(Config{Realm: f.h.realm, ClientID: "cloakroom", ClientSecret: "x", BaseURL: "http://app.test", Sessions: f.h.sessions, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		oc := &countingCheck{inner: other.atCheck}
		other.atCheck = oc
		first := load(t, f)
		r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
		r.Header.Set("Cookie", f.cookie)
		s, err := other.load(httptest.NewRecorder(), r)
		if err != nil || s == nil {
			t.Fatalf("the other Handler: session %v, %v", s, err)
		}
		if got := oc.calls.Load(); got != 1 {
			t.Errorf("the other Handler verified the access token %d times, want 1: it used the first Handler's claims", got)
		}
		if s.AccessClaims == nil || s.AccessClaims.ID() != first.AccessClaims.ID() {
			t.Errorf("the other Handler's claims are for another token (jti %v, want %q)", s.AccessClaims, first.AccessClaims.ID())
		}
		load(t, f)
		if got := f.check.calls.Load(); got != 2 {
			t.Errorf("the first Handler verified %d times over its two requests, want 2 (the other Handler's memo replaced its own)", got)
		}
	})

	t.Run("lightweight tokens are not memoised", func(t *testing.T) {
		t.Parallel()
		f := setup(t, cloakroom.VerifierConfig{})
		if !f.h.memoAccess {
			t.Fatal("memoAccess off with the default Verifier")
		}
		realm, _ := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
		mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: f.h.sessions.Keyring()})
		h, err := New(Config{Realm: realm, ClientID: "cloakroom", ClientSecret: "x", BaseURL: "http://app.test", Sessions: mgr, Logger: quiet, LightweightTokens: true})
		if err != nil {
			t.Fatal(err)
		}
		if h.memoAccess {
			t.Error("memoAccess on with Config.LightweightTokens: the LightweightVerifier must decide on every request")
		}
	})
}
