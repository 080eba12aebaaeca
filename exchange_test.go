package cloakroom_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// exchangeRealm: frontend (the users' client, its tokens name requester in
// aud), requester (standard token exchange on, an audience mapper for
// orders-api), noexchange (exchange off), and the audiences.
func exchangeRealm() keycloaktest.RealmConfig {
	aud := func(client string) keycloaktest.MapperConfig {
		return keycloaktest.MapperConfig{Name: "aud-" + client, Type: "oidc-audience-mapper", Config: map[string]string{
			"included.client.audience": client, "access.token.claim": "true"}}
	}
	on := map[string]string{keycloaktest.ClientAttrStandardTokenExchange: "true"}
	return keycloaktest.RealmConfig{
		Name: "shop",
		Clients: []keycloaktest.ClientConfig{
			{ClientID: "frontend", Secret: "fsecret", DirectAccessGrants: true, Mappers: []keycloaktest.MapperConfig{aud("requester"), aud("noexchange")}},
			{ClientID: "requester", Secret: "rsecret", Attributes: on, Mappers: []keycloaktest.MapperConfig{aud("orders-api")}},
			{ClientID: "noexchange", Secret: "nsecret"},
			{ClientID: "orders-api", Secret: "osecret"},
			{ClientID: "other-api", Secret: "xsecret"},
		},
		Users: []keycloaktest.UserConfig{
			{Username: "alice", Password: "alice", Email: "alice@example.com"},
			{Username: "bob", Password: "bob"},
		},
	}
}

// countingTransport counts the token exchange requests it carries.
type countingTransport struct{ exchanges atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/token") {
		c.exchanges.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type exchangeEnv struct {
	kc      *keycloaktest.Server
	realm   *cloakroom.Realm
	counter *countingTransport
	now     atomic.Int64 // the Realm's clock, unix seconds (0: time.Now)
}

func newExchangeEnv(t *testing.T) *exchangeEnv {
	t.Helper()
	e := &exchangeEnv{counter: &countingTransport{}}
	e.kc = keycloaktest.NewServer(t, keycloaktest.WithRealm(exchangeRealm()))
	var err error
	e.realm, err = cloakroom.NewRealm(e.kc.Issuer("shop"),
		cloakroom.WithHTTPClient(&http.Client{Transport: e.counter}),
		cloakroom.WithClock(func() time.Time {
			if s := e.now.Load(); s != 0 {
				return time.Unix(s, 0)
			}
			return time.Now()
		}))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *exchangeEnv) exchanger(t *testing.T, id, secret string) *cloakroom.Exchanger {
	t.Helper()
	x, err := cloakroom.NewExchanger(e.realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: id, ClientSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func (e *exchangeEnv) login(t *testing.T, user string) string {
	t.Helper()
	resp, err := http.PostForm(e.kc.Issuer("shop")+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"frontend"}, "client_secret": {"fsecret"}, "username": {user}, "password": {user}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tok, err := readAccessToken(resp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestExchange(t *testing.T) {
	t.Parallel()
	e := newExchangeEnv(t)
	x := e.exchanger(t, "requester", "rsecret")
	ctx := context.Background()
	subject := e.login(t, "alice")

	tok, err := x.Exchange(ctx, subject, "orders-api")
	if err != nil {
		t.Fatal(err)
	}
	// Only orders-api accepts the new token; it names the requester as azp.
	for _, tc := range []struct {
		audience string
		ok       bool
	}{{"orders-api", true}, {"requester", false}, {"frontend", false}} {
		v, err := e.realm.NewVerifier(cloakroom.VerifierConfig{ClientID: tc.audience})
		if err != nil {
			t.Fatal(err)
		}
		claims, err := v.Verify(ctx, tok.AccessToken)
		if (err == nil) != tc.ok {
			t.Fatalf("verify as %s: %v", tc.audience, err)
		}
		if err == nil && (claims.AuthorizedParty() != "requester" || claims.Username() != "alice") {
			t.Errorf("azp %q, user %q", claims.AuthorizedParty(), claims.Username())
		}
	}
	if tok.Extra("issued_token_type") != cloakroom.TokenTypeAccessToken || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
		t.Errorf("token %+v", tok)
	}
}

func TestExchangeCache(t *testing.T) {
	t.Parallel()
	e := newExchangeEnv(t)
	x := e.exchanger(t, "requester", "rsecret")
	ctx := context.Background()
	alice, alice2, bob := e.login(t, "alice"), e.login(t, "alice"), e.login(t, "bob")
	first, err := x.Exchange(ctx, alice, "orders-api")
	if err != nil {
		t.Fatal(err)
	}
	n := e.counter.exchanges.Load()
	again, err := x.Exchange(ctx, alice, "orders-api")
	if err != nil || again.AccessToken != first.AccessToken || e.counter.exchanges.Load() != n {
		t.Fatalf("second exchange not from the cache: %v, %d requests", err, e.counter.exchanges.Load()-n)
	}
	again.AccessToken = "changed by the caller"
	if third, _ := x.Exchange(ctx, alice, "orders-api"); third.AccessToken != first.AccessToken {
		t.Fatal("a caller's change reached the cache")
	}
	// Another subject token never gets this one's exchange: not bob's,
	// not even another token of the same user.
	for name, subject := range map[string]string{"bob": bob, "alice's other token": alice2} {
		other, err := x.Exchange(ctx, subject, "orders-api")
		if err != nil {
			t.Fatal(err)
		}
		if other.AccessToken == first.AccessToken {
			t.Errorf("%s got alice's exchanged token", name)
		}
	}
	// Another audience or scope set is another exchange.
	n = e.counter.exchanges.Load()
	if _, err := x.Exchange(ctx, alice, "", "phone"); err != nil {
		t.Fatal(err)
	}
	if e.counter.exchanges.Load() != n+1 {
		t.Error("audience and scopes not part of the cache key")
	}
	// Shortly before expiry (Keycloak's 300 s, minus the 30 s margin) the
	// cached token is not served any more.
	e.now.Store(first.Expiry.Add(-29 * time.Second).Unix())
	n = e.counter.exchanges.Load()
	if _, err := x.Exchange(ctx, alice, "orders-api"); err != nil {
		t.Fatal(err)
	}
	if e.counter.exchanges.Load() != n+1 {
		t.Error("a token 29 s from expiry was served from the cache")
	}
}

func TestExchangeSingleflight(t *testing.T) {
	t.Parallel()
	e := newExchangeEnv(t)
	x := e.exchanger(t, "requester", "rsecret")
	subject := e.login(t, "alice")
	n := e.counter.exchanges.Load()
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Go(func() {
			tok, err := x.Exchange(context.Background(), subject, "orders-api")
			if err != nil {
				t.Error(err)
				return
			}
			tokens[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if got := e.counter.exchanges.Load() - n; got != 1 {
		t.Errorf("%d exchange requests for 20 concurrent identical exchanges, want 1", got)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
}

func TestExchangeErrors(t *testing.T) {
	t.Parallel()
	e := newExchangeEnv(t)
	subject := e.login(t, "alice")
	down, err := cloakroom.NewRealm("http://127.0.0.1:1/realms/shop")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		realm         *cloakroom.Realm
		client        [2]string
		subject       string
		audience      string
		misconfigured bool
		subjectErr    bool
		setting       string
		says          []string
	}{
		{name: "exchange not enabled", client: [2]string{"noexchange", "nsecret"}, audience: "orders-api", misconfigured: true,
			setting: "standard.token.exchange.enabled", says: []string{`enable Standard token exchange on client "noexchange"`, "Capability config"}},
		{name: "audience not available", client: [2]string{"requester", "rsecret"}, audience: "other-api", misconfigured: true,
			setting: "audience", says: []string{`"other-api" in aud of client "requester"`, "Audience mapper"}},
		{name: "unknown audience", client: [2]string{"requester", "rsecret"}, audience: "nope", misconfigured: true,
			setting: "audience", says: []string{`no client with Client ID "nope"`}},
		{name: "unknown scope", client: [2]string{"requester", "rsecret"}, audience: "orders-api", misconfigured: true,
			setting: "scope", says: []string{"optional client scopes"}},
		{name: "wrong secret", client: [2]string{"requester", "wrong"}, audience: "orders-api", misconfigured: true,
			setting: "client_secret", says: []string{"Credentials tab"}},
		{name: "invalid subject", client: [2]string{"requester", "rsecret"}, subject: "a.b.c", audience: "orders-api", subjectErr: true,
			says: []string{"not a valid access token"}},
		{name: "empty subject", client: [2]string{"requester", "rsecret"}, subject: "-", audience: "orders-api", subjectErr: true},
		{name: "keycloak down", realm: down, client: [2]string{"requester", "rsecret"}, audience: "orders-api"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			realm := e.realm
			if tc.realm != nil {
				realm = tc.realm
			}
			x, err := cloakroom.NewExchanger(realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: tc.client[0], ClientSecret: tc.client[1]}})
			if err != nil {
				t.Fatal(err)
			}
			subj := subject
			switch tc.subject {
			case "-":
				subj = ""
			case "":
			default:
				subj = tc.subject
			}
			var scopes []string
			if tc.name == "unknown scope" {
				scopes = []string{"zzz"}
			}
			_, err = x.Exchange(context.Background(), subj, tc.audience, scopes...)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, subject) {
				t.Fatal("the error message contains the subject token")
			}
			if errors.Is(err, cloakroom.ErrMisconfigured) != tc.misconfigured {
				t.Errorf("ErrMisconfigured = %v: %v", !tc.misconfigured, err)
			}
			if errors.Is(err, cloakroom.ErrSubjectTokenRefused) != tc.subjectErr {
				t.Errorf("ErrSubjectTokenRefused = %v: %v", !tc.subjectErr, err)
			}
			if errors.Is(err, cloakroom.ErrUnavailable) == tc.subjectErr {
				t.Errorf("ErrUnavailable = %v: %v", tc.subjectErr, err)
			}
			var pe *cloakroom.ProviderError
			if tc.setting != "" && (!errors.As(err, &pe) || pe.Setting != tc.setting) {
				t.Errorf("setting %v, want %q: %v", pe, tc.setting, err)
			}
			var xe *cloakroom.ExchangeError
			if (tc.misconfigured && tc.setting != "client_secret") || tc.subjectErr {
				if !errors.As(err, &xe) {
					t.Errorf("no *ExchangeError in %v", err)
				}
			}
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
		})
	}
}

func TestNewExchangerRefuses(t *testing.T) {
	t.Parallel()
	realm, _ := cloakroom.NewRealm("https://sso.example.com/realms/shop")
	for _, tc := range []struct {
		name  string
		realm *cloakroom.Realm
		cfg   cloakroom.ExchangerConfig
		says  string
	}{
		{"no realm", nil, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: "a", ClientSecret: "b"}}, "realm is nil"},
		{"no client", realm, cloakroom.ExchangerConfig{}, "client id is empty"},
		{"public", realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: "a"}}, "confidential"},
		{"margin", realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: "a", ClientSecret: "b"}, ExpiryMargin: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := cloakroom.NewExchanger(tc.realm, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err %v, want %q", err, tc.says)
			}
		})
	}
}

func readAccessToken(resp *http.Response) (string, error) {
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if body.AccessToken == "" {
		return "", fmt.Errorf("login answered %d without a token", resp.StatusCode)
	}
	return body.AccessToken, nil
}
