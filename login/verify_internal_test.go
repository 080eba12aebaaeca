package login

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
	"golang.org/x/oauth2"
)

// TestVerifyTokens covers the checks of a token response that an honest
// Keycloak never fails: nonce, audience, at_hash, token_type, subjects.
func TestVerifyTokens(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	realm, _ := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(quiet))
	keys, _ := session.ParseKeys(session.GenerateKey())
	ring, _ := session.NewKeyring(keys...)
	mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: ring})
	h, err := New(Config{Realm: realm, ClientID: "cloakroom", ClientSecret: "x", BaseURL: "http://app.test", Sessions: mgr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sid := func() string {
		_, _ = kc.Token("alice", "cloakroom")
		return kc.SessionIDs("alice")[0]
	}()
	access := kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithSID(sid))
	id := func(opts ...keycloaktest.TokenOption) string {
		return kc.MustToken(t, "alice", "cloakroom", append([]keycloaktest.TokenOption{keycloaktest.WithKind(keycloaktest.IDToken), keycloaktest.WithSID(sid), keycloaktest.WithNonce("n-1")}, opts...)...)
	}
	resp := func(typ, at, idt string) *oauth2.Token {
		tok := &oauth2.Token{AccessToken: at, TokenType: typ, RefreshToken: "rt"}
		return tok.WithExtra(map[string]any{"id_token": idt})
	}
	tests := []struct {
		name  string
		tok   *oauth2.Token
		nonce string
		want  string
	}{
		{"nonce mismatch", resp("Bearer", access, id()), "n-2", "nonce"},
		{"nonce missing", resp("Bearer", access, id(keycloaktest.WithNonce(""))), "n-1", "nonce"},
		{"ID token for another client", resp("Bearer", access, id(keycloaktest.WithAudience("other-app"), keycloaktest.WithAZP("other-app"))), "n-1", "audience"},
		{"at_hash of another access token", resp("Bearer", access, id(keycloaktest.WithClaim("at_hash", "AAAAAAAAAAAAAAAAAAAAAA"))), "n-1", "at_hash"},
		{"token_type mac", resp("mac", access, id()), "n-1", "token_type"},
		{"no ID token", resp("Bearer", access, ""), "n-1", "no ID token"},
		{"access token of another user", resp("Bearer", kc.MustToken(t, "bob", "cloakroom"), id()), "n-1", "different subjects"},
		{"access token of another client", resp("Bearer", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithAudience("account"), keycloaktest.WithAZP("other-app")), id()), "n-1", "audience"},
		{"expired ID token", resp("Bearer", access, id(keycloaktest.WithExpired())), "n-1", "expired"},
		{"logout token as ID token", resp("Bearer", access, kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithKind(keycloaktest.LogoutToken))), "n-1", "ID token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := h.verifyTokens(context.Background(), tt.tok, tt.nonce, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	// The honest answer passes, with the at_hash keycloaktest computes.
	honest := kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithKind(keycloaktest.IDToken), keycloaktest.WithSID(sid), keycloaktest.WithNonce("n-1"))
	if _, _, err := h.verifyTokens(context.Background(), resp("bearer", access, honest), "n-1", ""); err != nil {
		t.Fatalf("honest token response: %v", err)
	}
}
