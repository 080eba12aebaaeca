package gateway_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/hostileop"
)

// hostileGW is a gateway whose identity provider is a hostile one, in front
// of an upstream that counts the requests reaching it.
type hostileGW struct {
	url      string
	log      *syncBuf
	upstream atomic.Int64
}

// startHostile runs a gateway for op with a browser route "/" and an API
// route "/api". client, if set, is the gateway's client to the provider.
func startHostile(t *testing.T, op *hostileop.Server, client *http.Client) *hostileGW {
	t.Helper()
	h := &hostileGW{log: &syncBuf{}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.upstream.Add(1)
		w.Write([]byte("upstream saw " + r.Header.Get("X-Forwarded-User")))
	}))
	t.Cleanup(up.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	cfg := gateway.Config{
		Listen: ln.Addr().String(), PublicURL: h.url,
		Issuer: op.Issuer(), ClientID: op.ClientID(), ClientSecret: op.ClientSecret(),
		Session: gateway.SessionConfig{Store: "memory:", EncryptionKeys: []string{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
		Routes: []gateway.Route{
			{Name: "app", Path: "/", Upstream: up.URL},
			{Name: "api", Path: "/api", Upstream: up.URL, Mode: "api"},
		},
	}
	opts := []gateway.Option{gateway.WithLogger(slog.New(slog.NewJSONHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	if client != nil {
		opts = append(opts, gateway.WithHTTPClient(client))
	}
	g, err := gateway.New(context.Background(), cfg, opts...)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Close()
	})
	return h
}

// checkLog fails unless the log (quote escapes undone) matches re.
func (h *hostileGW) checkLog(t *testing.T, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(strings.ReplaceAll(h.log.String(), `\"`, `"`)) {
		t.Errorf("the log does not name the problem (want /%s/):\n%s", re, h.log.String())
	}
}

// TestHostileProviderGateway runs each case of a misbehaving provider
// through the gateway: browser routes (the login flow, the case applied to
// the ID token) and API routes (bearer tokens, the case applied to the
// access token). Every case ends in an error answer (400/503 for a login,
// 401/503 for a token), the upstream is never called, and the log names
// the problem.
func TestHostileProviderGateway(t *testing.T) {
	t.Parallel()
	const (
		timeout = `context deadline exceeded|Client\.Timeout exceeded`
		tooBig  = `response larger than \d+ bytes`
	)
	type gwCase struct {
		name   string
		c      hostileop.Case
		status int
		reason string
	}
	browser := []gwCase{
		{"invalid signature", hostileop.InvalidSignature, 400, `ID token: token signature invalid`},
		{"alg none", hostileop.AlgNone, 400, `ID token: token algorithm not allowed: unsigned token \(alg "none"\)`},
		{"HS256 with the public key as PEM secret", hostileop.HS256PublicKeyPEM, 400, `ID token: token algorithm not allowed: HS256 is an HMAC algorithm`},
		{"HS256 with the public key as DER secret", hostileop.HS256PublicKeyDER, 400, `ID token: token algorithm not allowed: HS256 is an HMAC algorithm`},
		{"kid absent, one key", hostileop.KIDAbsentSingleKey, 400, `ID token: token signing key not found: token header has no kid`},
		{"kid absent, several keys", hostileop.KIDAbsentManyKeys, 400, `ID token: token signing key not found: token header has no kid`},
		{"token from another issuer", hostileop.IssuerMismatch, 400, `ID token: token issuer mismatch: token was issued by "https://impostor\.example/realms/hostile"`},
		{"discovery names another issuer", hostileop.DiscoveryIssuerMismatch, 500, `document names issuer "https://impostor\.example/realms/hostile", but the configured issuer is`}, // misconfigured, not an outage
		{"token for another client", hostileop.AudienceMismatch, 400, `ID token: token audience not accepted: aud \["another-client"\] does not include this client`},
		{"two audiences, no azp", hostileop.MultipleAudiencesNoAZP, 400, `ID token: token audience not accepted: aud includes "another-client", an audience this client does not trust`},
		{"wrong azp", hostileop.WrongAZP, 400, `ID token: token audience not accepted: azp "another-client" is not this client`},
		{"issued in the future", hostileop.IssuedInFuture, 400, `ID token: token not yet valid: issued in the future`},
		{"expired", hostileop.Expired, 400, `ID token: token expired`},
		{"nonce missing", hostileop.NonceMissing, 400, `ID token: nonce missing, though the login sent one`},
		{"nonce wrong", hostileop.NonceWrong, 400, `ID token: nonce does not match the one sent`},
		{"at_hash wrong", hostileop.AtHashWrong, 400, `ID token: at_hash does not match the access token`},
		{"token_type mac", hostileop.TokenTypeMAC, 400, `token_type "mac" is not Bearer`},
		{"token_type DPoP", hostileop.TokenTypeDPoP, 400, `token_type "DPoP" is not Bearer`},
		{"authorization response from another issuer", hostileop.ForeignIssInAuthResponse, 400, `its iss is not the issuer the login was sent to`},
		{"8 MB discovery document", hostileop.HugeDiscovery, 503, `discovery http://\S+ .*` + tooBig},
		{"8 MB JWKS", hostileop.HugeJWKS, 503, `jwks http://\S+ .*` + tooBig},
		{"8 MB token response", hostileop.HugeTokenResponse, 503, `token http://\S+ .*` + tooBig},
		{"slow discovery", hostileop.SlowDiscovery, 503, `discovery http://\S+ .*(` + timeout + `)`},
		{"slow JWKS", hostileop.SlowJWKS, 503, `jwks http://\S+ .*(` + timeout + `)`},
		{"slow token endpoint", hostileop.SlowToken, 503, `token http://\S+ .*(` + timeout + `)`},
	}
	api := []gwCase{
		{"invalid signature", hostileop.InvalidSignature, 401, `token signature invalid`},
		{"alg none", hostileop.AlgNone, 401, `unsigned token \(alg "none"\) is never accepted`},
		{"HS256 with the public key as PEM secret", hostileop.HS256PublicKeyPEM, 401, `HS256 is an HMAC algorithm and never accepted`},
		{"HS256 with the public key as DER secret", hostileop.HS256PublicKeyDER, 401, `HS256 is an HMAC algorithm and never accepted`},
		{"kid absent, one key", hostileop.KIDAbsentSingleKey, 401, `token header has no kid`},
		{"kid absent, several keys", hostileop.KIDAbsentManyKeys, 401, `token header has no kid`},
		{"token from another issuer", hostileop.IssuerMismatch, 401, `token issuer mismatch`},
		{"discovery names another issuer", hostileop.DiscoveryIssuerMismatch, 500, `document names issuer "https://impostor\.example/realms/hostile"`},
		{"token for another client", hostileop.AudienceMismatch, 401, `token audience not accepted`},
		{"issued in the future", hostileop.IssuedInFuture, 401, `issued in the future`},
		{"expired", hostileop.Expired, 401, `token expired`},
		{"8 MB discovery document", hostileop.HugeDiscovery, 503, `discovery http://\S+ .*` + tooBig},
		{"8 MB JWKS", hostileop.HugeJWKS, 503, `jwks http://\S+ .*` + tooBig},
		{"slow discovery", hostileop.SlowDiscovery, 503, `discovery http://\S+ .*(` + timeout + `)`},
		{"slow JWKS", hostileop.SlowJWKS, 503, `jwks http://\S+ .*(` + timeout + `)`},
	}
	// The gateway has no request-timeout setting of its own: its client's
	// Timeout bounds every request to the provider.
	client := func() *http.Client { return &http.Client{Timeout: time.Second} }

	for _, tt := range browser {
		t.Run("browser/"+tt.name, func(t *testing.T) {
			t.Parallel()
			op := hostileop.New(t, hostileop.Options{})
			op.Misbehave(tt.c, hostileop.IDTokens)
			g := startHostile(t, op, client())
			b := newBrowser(t)
			r := b.get(g.url + "/dashboard")
			if r.status != tt.status {
				t.Errorf("status %d at %s, want %d: %.300s", r.status, r.url, tt.status, r.body)
			}
			if n := g.upstream.Load(); n != 0 || strings.Contains(r.body, "upstream saw") {
				t.Errorf("the upstream was called %d times", n)
			}
			if op.Hits(hostileop.EndpointAuthorize) == 0 && tt.c != hostileop.DiscoveryIssuerMismatch && tt.c != hostileop.HugeDiscovery && tt.c != hostileop.SlowDiscovery {
				t.Error("the login never reached the provider: the case was not exercised")
			}
			if me := b.get(g.url + "/_cloakroom/me"); me.status != 401 && me.status != 503 {
				t.Errorf("after the refused login, /_cloakroom/me answers %d: %.200s", me.status, me.body)
			}
			g.checkLog(t, tt.reason)
		})
	}
	for _, tt := range api {
		t.Run("api/"+tt.name, func(t *testing.T) {
			t.Parallel()
			op := hostileop.New(t, hostileop.Options{})
			op.Misbehave(tt.c, hostileop.AccessTokens)
			g := startHostile(t, op, client())
			token, err := op.AccessToken()
			if err != nil {
				t.Fatal(err)
			}
			r := newBrowser(t).get(g.url+"/api/orders", "Authorization", "Bearer "+token)
			if r.status != tt.status {
				t.Errorf("status %d, want %d: %.300s", r.status, tt.status, r.body)
			}
			if n := g.upstream.Load(); n != 0 {
				t.Errorf("the upstream was called %d times", n)
			}
			g.checkLog(t, tt.reason)
		})
	}
	t.Run("honest control", func(t *testing.T) {
		t.Parallel()
		op := hostileop.New(t, hostileop.Options{})
		g := startHostile(t, op, client())
		b := newBrowser(t)
		if r := b.get(g.url + "/dashboard"); r.status != 200 || r.body != "upstream saw "+op.Subject() {
			t.Fatalf("browser: %d at %s: %.300s\n%s", r.status, r.url, r.body, g.log.String())
		}
		token, err := op.AccessToken()
		if err != nil {
			t.Fatal(err)
		}
		if r := b.get(g.url+"/api/orders", "Authorization", "Bearer "+token); r.status != 200 || r.body != "upstream saw "+op.Subject() {
			t.Fatalf("api: %d: %.300s", r.status, r.body)
		}
		if n := g.upstream.Load(); n != 2 {
			t.Fatalf("upstream calls %d, want 2", n)
		}
	})
}

// TestHostileProviderGatewayKeyRotation: the provider replaces its signing
// key and removes the old one at once. A token with the new kid passes
// after one refetch; that fetch also drops the old key, so its tokens are
// refused and sessions holding them end.
func TestHostileProviderGatewayKeyRotation(t *testing.T) {
	t.Parallel()
	op := hostileop.New(t, hostileop.Options{})
	g := startHostile(t, op, nil)
	mint := func() string {
		tok, err := op.AccessToken()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	b := newBrowser(t)
	if r := b.get(g.url + "/dashboard"); r.status != 200 {
		t.Fatalf("login: %d %.300s", r.status, r.body)
	}
	oldKID, oldToken := op.KID(), mint()
	if r := b.get(g.url+"/api/x", "Authorization", "Bearer "+oldToken); r.status != 200 {
		t.Fatalf("old token: %d %.300s", r.status, r.body)
	}

	if _, err := op.RotateKey(); err != nil {
		t.Fatal(err)
	}
	if err := op.RetireKey(oldKID); err != nil {
		t.Fatal(err)
	}
	if r := b.get(g.url+"/api/x", "Authorization", "Bearer "+mint()); r.status != 200 {
		t.Fatalf("token with the new kid: %d %.300s\n%s", r.status, r.body, g.log.String())
	}
	if r := b.get(g.url+"/api/x", "Authorization", "Bearer "+oldToken); r.status != 401 || !strings.Contains(r.body, oldKID) {
		t.Fatalf("token of the removed key: %d %.300s", r.status, r.body)
	}
	// The browser session holds an access token of the removed key.
	if r := b.get(g.url+"/dashboard", "Accept", "application/json"); r.status != 401 || !strings.Contains(r.body, "not_authenticated") {
		t.Fatalf("session on the removed key: %d %.300s", r.status, r.body)
	}
	g.checkLog(t, `stored access token refused; ending the session.*the issuer publishes no signing key with kid "`+regexp.QuoteMeta(oldKID))
	if n := g.upstream.Load(); n != 3 {
		t.Errorf("upstream calls %d, want 3", n)
	}
}
