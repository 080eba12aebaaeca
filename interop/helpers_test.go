package interop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The demo realm's names, as keycloaktest.DemoRealm defines them.
const (
	demoRealm    = "demo"
	clientID     = keycloaktest.DemoClientID       // confidential, audience mapper adds itself to aud
	clientSecret = keycloaktest.DemoClientSecret   // secret of clientID
	publicClient = keycloaktest.DemoPublicClientID // public client: aud is only "account"
)

// demo is a running keycloaktest server with the demo realm.
type demo struct {
	srv    *keycloaktest.Server
	realm  *keycloaktest.Realm
	issuer string
}

// startDemo starts keycloaktest with the demo realm (plus opts) for one test.
func startDemo(t *testing.T, opts ...keycloaktest.Option) demo {
	t.Helper()
	srv := keycloaktest.NewServer(t, append([]keycloaktest.Option{keycloaktest.WithDemoRealm()}, opts...)...)
	return demo{srv: srv, realm: srv.Realm(demoRealm), issuer: srv.Issuer(demoRealm)}
}

// tokenURL is the realm's token endpoint, spelled as Keycloak spells it.
func (d demo) tokenURL() string { return d.issuer + "/protocol/openid-connect/token" }

// endpoint is the oauth2 endpoint of the realm with an explicit auth style.
func (d demo) endpoint(style oauth2.AuthStyle) oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:   d.issuer + "/protocol/openid-connect/auth",
		TokenURL:  d.tokenURL(),
		AuthStyle: style,
	}
}

// login runs the password grant with scope openid through x/oauth2 and
// returns the token response. secret may be empty for a public client.
func login(t *testing.T, ep oauth2.Endpoint, client, secret, username, password string) *oauth2.Token {
	t.Helper()
	tok, err := loginErr(t.Context(), ep, client, secret, username, password)
	if err != nil {
		t.Fatalf("password grant for %s/%s: %v", client, username, err)
	}
	return tok
}

// loginErr runs the same password grant and returns its error.
func loginErr(ctx context.Context, ep oauth2.Endpoint, client, secret, username, password string) (*oauth2.Token, error) {
	cfg := &oauth2.Config{ClientID: client, ClientSecret: secret, Endpoint: ep, Scopes: []string{"openid"}}
	return cfg.PasswordCredentialsToken(ctx, username, password)
}

// serviceLogin runs the client_credentials grant through x/oauth2.
func serviceLogin(t *testing.T, tokenURL string) *oauth2.Token {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL}
	tok, err := cfg.Token(t.Context())
	if err != nil {
		t.Fatalf("client_credentials grant: %v", err)
	}
	return tok
}

// idTokenOf returns the id_token member of a token response.
func idTokenOf(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response has no id_token although scope openid was requested")
	}
	return raw
}

// unverifiedClaims decodes a JWT payload without checking anything, to look
// at what the server issued.
func unverifiedClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("payload is not a JSON object: %v", err)
	}
	return c
}

// unverifiedHeader decodes a JWT's JOSE header.
func unverifiedHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("decode header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("header is not a JSON object: %v", err)
	}
	return h
}

// tamper rewrites a claim of a signed token and keeps the old signature,
// so only the signature check can catch it.
func tamper(t *testing.T, token, claim string, value any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	c := unverifiedClaims(t, token)
	c[claim] = value
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("encode payload: %v", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// stringsOf turns a JSON aud claim (string or array) into a slice.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// laggingClock is a keycloaktest clock one hour behind: every token its
// token endpoint issues is already expired by the real clock, which is how
// a real expired token is obtained without waiting.
func laggingClock() time.Time { return time.Now().Add(-time.Hour) }
