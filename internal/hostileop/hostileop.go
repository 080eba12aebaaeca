// Package hostileop is an OpenID Provider for tests that misbehaves on
// purpose, one switch per case. The cases follow the OpenID Foundation's
// relying-party certification tests (rp-id_token-*, rp-userinfo-*,
// rp-key-rotation-*, ...) plus a few of our own (oversized and slow
// answers, RFC 9207 iss, token_type).
//
// Honestly it serves discovery, JWKS, an authorization endpoint that
// redirects straight back with a code (no login page), a token endpoint
// (authorization_code with PKCE S256, refresh_token) and userinfo, with
// Keycloak's path layout and Keycloak's typ claims, so that cloakroom's
// default (Keycloak) profile accepts it. Misbehave switches one case on;
// every case must make a correct relying party refuse the login or the
// token.
//
// It lives apart from keycloaktest on purpose: keycloaktest is the honest
// Keycloak twin and stays honest; this package is the adversary. It is
// internal so that it cannot be imported outside this module.
package hostileop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Case is one misbehaviour. The zero value, Honest, misbehaves in no way.
type Case int

// The cases. Token cases change the tokens selected by the Tokens argument
// of Misbehave; the others change one endpoint.
const (
	// Honest answers correctly.
	Honest Case = iota

	// InvalidSignature: the token's signature does not verify
	// (rp-id_token-bad-sig-rs256).
	InvalidSignature
	// AlgNone: the token is unsigned, alg "none" (rp-id_token-sig-none).
	AlgNone
	// HS256PublicKeyPEM: the token is HS256-signed with the provider's
	// public key, PEM encoded, as the secret (key confusion).
	HS256PublicKeyPEM
	// HS256PublicKeyDER: the same with the DER (SubjectPublicKeyInfo) bytes.
	HS256PublicKeyDER
	// KIDAbsentSingleKey: the token header has no kid; the JWKS holds one
	// key (rp-id_token-kid-absent-single-jwks).
	KIDAbsentSingleKey
	// KIDAbsentManyKeys: the token header has no kid; the JWKS holds
	// several keys (rp-id_token-kid-absent-multiple-jwks).
	KIDAbsentManyKeys
	// IssuerMismatch: the token's iss is not the provider's issuer
	// (rp-id_token-issuer-mismatch).
	IssuerMismatch
	// AudienceMismatch: aud (and azp) name another client
	// (rp-id_token-aud).
	AudienceMismatch
	// MultipleAudiencesNoAZP: aud is [client, another client] and there is
	// no azp.
	MultipleAudiencesNoAZP
	// WrongAZP: aud is the client but azp names another client.
	WrongAZP
	// IssuedInFuture: iat is an hour ahead (rp-id_token-iat).
	IssuedInFuture
	// Expired: exp is an hour ago.
	Expired
	// NonceMissing: the ID token has no nonce, though the authorization
	// request sent one.
	NonceMissing
	// NonceWrong: the ID token's nonce is not the one sent
	// (rp-nonce-invalid).
	NonceWrong
	// AtHashWrong: the ID token's at_hash is not the access token's.
	AtHashWrong

	// DiscoveryIssuerMismatch: the discovery document names another
	// issuer than the one its URL was derived from
	// (rp-discovery-issuer-not-matching-config).
	DiscoveryIssuerMismatch
	// ForeignIssInAuthResponse: the authorization response carries an iss
	// parameter naming another issuer (RFC 9207).
	ForeignIssInAuthResponse
	// TokenTypeMAC: the token endpoint answers token_type "mac".
	TokenTypeMAC
	// TokenTypeDPoP: the token endpoint answers token_type "DPoP".
	TokenTypeDPoP
	// UserinfoSubMismatch: userinfo names another sub than the ID token
	// (rp-userinfo-bad-sub-claim).
	UserinfoSubMismatch
	// HugeDiscovery: the discovery document is valid JSON of
	// Options.HugeSize bytes (default 8 MiB), streamed.
	HugeDiscovery
	// HugeJWKS: the JWKS is Options.HugeSize bytes.
	HugeJWKS
	// HugeTokenResponse: the token endpoint's answer is Options.HugeSize
	// bytes.
	HugeTokenResponse
	// SlowDiscovery: discovery answers after Options.SlowDelay (default
	// 30 s), or not at all if the client gives up first.
	SlowDiscovery
	// SlowJWKS: the JWKS answers after Options.SlowDelay.
	SlowJWKS
	// SlowToken: the token endpoint answers after Options.SlowDelay.
	SlowToken
	// SlowUserinfo: userinfo answers after Options.SlowDelay.
	SlowUserinfo

	numCases
)

var caseNames = [...]string{
	"Honest", "InvalidSignature", "AlgNone", "HS256PublicKeyPEM", "HS256PublicKeyDER",
	"KIDAbsentSingleKey", "KIDAbsentManyKeys", "IssuerMismatch", "AudienceMismatch",
	"MultipleAudiencesNoAZP", "WrongAZP", "IssuedInFuture", "Expired", "NonceMissing",
	"NonceWrong", "AtHashWrong", "DiscoveryIssuerMismatch", "ForeignIssInAuthResponse",
	"TokenTypeMAC", "TokenTypeDPoP", "UserinfoSubMismatch", "HugeDiscovery", "HugeJWKS",
	"HugeTokenResponse", "SlowDiscovery", "SlowJWKS", "SlowToken", "SlowUserinfo",
}

// String names the case.
func (c Case) String() string {
	if c >= 0 && c < numCases {
		return caseNames[c]
	}
	return fmt.Sprintf("Case(%d)", int(c))
}

// Tokens selects the tokens a token case applies to.
type Tokens uint8

// Token selections for Misbehave.
const (
	// IDTokens selects the ID tokens of token responses.
	IDTokens Tokens = 1 << iota
	// AccessTokens selects access tokens (token responses and AccessToken).
	AccessTokens
	// AllTokens selects both.
	AllTokens = IDTokens | AccessTokens
)

// Impostor is the issuer the misbehaving cases name instead of the real one.
const Impostor = "https://impostor.example/realms/hostile"

// OtherClient is the client the audience cases name instead of the real one.
const OtherClient = "another-client"

// OtherSubject is the sub userinfo answers in UserinfoSubMismatch.
const OtherSubject = "00000000-0000-4000-8000-00000000beef"

// Endpoint names, for Hits.
const (
	EndpointDiscovery = "discovery"
	EndpointJWKS      = "jwks"
	EndpointAuthorize = "authorize"
	EndpointToken     = "token"
	EndpointUserinfo  = "userinfo"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// ClientID and ClientSecret of the one registered confidential client
	// (default "hostile-client" / "hostile-secret").
	ClientID     string
	ClientSecret string
	// Subject is the user every login authenticates (default a fixed UUID)
	// and Username their preferred_username (default "alice").
	Subject  string
	Username string
	// AccessTokenLifetime is expires_in and the tokens' exp (default 5 min).
	AccessTokenLifetime time.Duration
	// SlowDelay is how long the Slow* cases wait before answering, unless
	// the client gives up first (default 30 s).
	SlowDelay time.Duration
	// HugeSize is the size of the Huge* answers (default 8 MiB).
	HugeSize int
	// Now replaces time.Now for the times written into tokens.
	Now func() time.Time
}

// Server is a running hostile OpenID Provider. It is safe for concurrent
// use; Misbehave and the key methods may be called while requests run.
type Server struct {
	srv    *httptest.Server
	issuer string
	opts   Options
	closed chan struct{}
	once   sync.Once

	hits sync.Map // endpoint name -> *atomic.Int64

	mu      sync.Mutex
	c       Case
	on      Tokens
	keys    []*signingKey // published keys; the last is the signer
	spare   []*signingKey // extra keys published in KIDAbsentManyKeys
	codes   map[string]*grant
	refresh map[string]*grant
	access  map[string]string // access token -> sub
}

// grant is what an authorization code or a refresh token stands for.
type grant struct {
	redirectURI string
	challenge   string
	nonce       string
	expires     time.Time
}

// New starts a Server and stops it when the test ends.
func New(tb testing.TB, o Options) *Server {
	tb.Helper()
	if o.ClientID == "" {
		o.ClientID = "hostile-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "hostile-secret"
	}
	if o.Subject == "" {
		o.Subject = "2f4c7d3e-93a1-4b8e-a1f5-6c0de1a1a11c"
	}
	if o.Username == "" {
		o.Username = "alice"
	}
	if o.AccessTokenLifetime <= 0 {
		o.AccessTokenLifetime = 5 * time.Minute
	}
	if o.SlowDelay <= 0 {
		o.SlowDelay = 30 * time.Second
	}
	if o.HugeSize <= 0 {
		o.HugeSize = 8 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{
		opts:    o,
		closed:  make(chan struct{}),
		codes:   map[string]*grant{},
		refresh: map[string]*grant{},
		access:  map[string]string{},
	}
	k, err := poolKey(0)
	if err != nil {
		tb.Fatal(err)
	}
	s.keys = []*signingKey{k}
	for i := 1; i <= 2; i++ {
		k, err := poolKey(i)
		if err != nil {
			tb.Fatal(err)
		}
		s.spare = append(s.spare, k)
	}
	s.srv = httptest.NewServer(s.routes())
	s.issuer = s.srv.URL + "/realms/hostile"
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server; requests waiting in a Slow* case end at once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.srv.Close()
	})
}

// Issuer returns the issuer URL to configure the relying party with.
func (s *Server) Issuer() string { return s.issuer }

// ClientID returns the registered client's id.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret returns the registered client's secret.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// Subject returns the sub of the user every login authenticates.
func (s *Server) Subject() string { return s.opts.Subject }

// Misbehave switches the server to case c; Honest switches it back. Token
// cases apply to the tokens in on (0 means AllTokens); endpoint cases
// ignore it.
func (s *Server) Misbehave(c Case, on Tokens) {
	if on == 0 {
		on = AllTokens
	}
	s.mu.Lock()
	s.c, s.on = c, on
	s.mu.Unlock()
}

// current returns the case in force for a token of kind tok (Honest when
// the case does not select that kind).
func (s *Server) current(tok Tokens) Case {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.isTokenCase() && s.on&tok == 0 {
		return Honest
	}
	return s.c
}

func (c Case) isTokenCase() bool { return c >= InvalidSignature && c <= AtHashWrong }

// Hits returns how many requests the endpoint (Endpoint* constants) got.
func (s *Server) Hits(endpoint string) int64 {
	if v, ok := s.hits.Load(endpoint); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (s *Server) hit(endpoint string) {
	v, _ := s.hits.LoadOrStore(endpoint, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// KID returns the kid of the current signing key.
func (s *Server) KID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1].kid
}

// RotateKey makes a new key the signer and returns its kid. The previous
// keys stay published (passive, as Keycloak keeps them) until RetireKey.
func (s *Server) RotateKey() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := newSigningKey()
	if err != nil {
		return "", err
	}
	s.keys = append(s.keys, k)
	return k.kid, nil
}

// RetireKey removes a key from the JWKS (a deleted or disabled key in
// Keycloak). The current signing key cannot be retired.
func (s *Server) RetireKey(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.keys {
		if k.kid != kid {
			continue
		}
		if i == len(s.keys)-1 {
			return fmt.Errorf("hostileop: key %q is the signing key; rotate first", kid)
		}
		s.keys = append(s.keys[:i:i], s.keys[i+1:]...)
		return nil
	}
	return fmt.Errorf("hostileop: no published key %q", kid)
}

// AccessToken mints an access token for the user, as a client would get one
// from the token endpoint (the current case applies if it selects access
// tokens). Its sub is accepted by userinfo.
func (s *Server) AccessToken() (string, error) {
	now := s.opts.Now()
	tok, err := s.mint(AccessTokens, s.accessClaims(now, ""))
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.access[tok] = s.opts.Subject
	s.mu.Unlock()
	return tok, nil
}

func (s *Server) endpoint(name string) string {
	return s.issuer + "/protocol/openid-connect/" + name
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/hostile/.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /realms/hostile/protocol/openid-connect/certs", s.serveJWKS)
	mux.HandleFunc("GET /realms/hostile/protocol/openid-connect/auth", s.serveAuthorize)
	mux.HandleFunc("POST /realms/hostile/protocol/openid-connect/token", s.serveToken)
	mux.HandleFunc("/realms/hostile/protocol/openid-connect/userinfo", s.serveUserinfo)
	return mux
}

// stall waits for the slow cases: SlowDelay, or less if the client or the
// server gives up. It reports whether to answer at all.
func (s *Server) stall(r *http.Request) bool {
	t := time.NewTimer(s.opts.SlowDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.closed:
	}
	return false
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	s.hit(EndpointDiscovery)
	c := s.current(0)
	if c == SlowDiscovery && !s.stall(r) {
		return
	}
	issuer := s.issuer
	if c == DiscoveryIssuerMismatch {
		issuer = Impostor
	}
	doc := map[string]any{
		"issuer":                                         issuer,
		"authorization_endpoint":                         s.endpoint("auth"),
		"token_endpoint":                                 s.endpoint("token"),
		"userinfo_endpoint":                              s.endpoint("userinfo"),
		"jwks_uri":                                       s.endpoint("certs"),
		"response_types_supported":                       []string{"code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"code_challenge_methods_supported":               []string{"S256"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                               []string{"openid", "profile", "email"},
		"authorization_response_iss_parameter_supported": true,
	}
	s.writeJSON(w, http.StatusOK, doc, c == HugeDiscovery)
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	s.hit(EndpointJWKS)
	c := s.current(0)
	if c == SlowJWKS && !s.stall(r) {
		return
	}
	s.mu.Lock()
	keys := append([]*signingKey(nil), s.keys...)
	switch s.c {
	case KIDAbsentSingleKey:
		keys = keys[len(keys)-1:]
	case KIDAbsentManyKeys:
		keys = append(keys, s.spare...)
	}
	s.mu.Unlock()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
	}
	s.writeJSON(w, http.StatusOK, set, c == HugeJWKS)
}

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	s.hit(EndpointAuthorize)
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("client_id") != s.opts.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case err != nil || !redirect.IsAbs() || redirect.Fragment != "":
		// Never redirect to an unchecked URI: answer here.
		http.Error(w, "invalid redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	iss := s.issuer
	if s.current(0) == ForeignIssInAuthResponse {
		iss = Impostor
	}
	back.Set("iss", iss)
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		back.Set("error", "invalid_scope")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE S256 required")
	default:
		code := randomString(24)
		s.mu.Lock()
		s.codes[code] = &grant{
			redirectURI: redirect.String(),
			challenge:   q.Get("code_challenge"),
			nonce:       q.Get("nonce"),
			expires:     time.Now().Add(time.Minute),
		}
		s.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.hit(EndpointToken)
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	c := s.current(0)
	if c == SlowToken && !s.stall(r) {
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		s.oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials")
		return
	}
	var g *grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		s.mu.Lock()
		g = s.codes[code]
		delete(s.codes, code) // one use only
		s.mu.Unlock()
		if g == nil || time.Now().After(g.expires) {
			s.oauthError(w, http.StatusBadRequest, "invalid_grant", "Code not valid")
			return
		}
		if r.PostForm.Get("redirect_uri") != g.redirectURI {
			s.oauthError(w, http.StatusBadRequest, "invalid_grant", "Incorrect redirect_uri")
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			s.oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
			return
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		s.mu.Lock()
		g = s.refresh[rt]
		delete(s.refresh, rt) // rotated
		s.mu.Unlock()
		if g == nil {
			s.oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
			return
		}
	default:
		s.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
		return
	}
	resp, err := s.tokenResponse(g, c)
	if err != nil {
		s.oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	s.writeJSON(w, http.StatusOK, resp, c == HugeTokenResponse)
}

// tokenResponse mints the tokens of one grant.
func (s *Server) tokenResponse(g *grant, c Case) (map[string]any, error) {
	now := s.opts.Now()
	sid := randomString(12)
	at, err := s.mint(AccessTokens, s.accessClaims(now, sid))
	if err != nil {
		return nil, err
	}
	idc := s.baseClaims(now, "ID", sid)
	idc["auth_time"] = now.Unix()
	idc["email"] = s.opts.Username + "@example.com"
	if g.nonce != "" {
		idc["nonce"] = g.nonce
	}
	idc["at_hash"] = atHash(at)
	idt, err := s.mint(IDTokens, idc)
	if err != nil {
		return nil, err
	}
	rt := randomString(32)
	s.mu.Lock()
	s.access[at] = s.opts.Subject
	s.refresh[rt] = &grant{nonce: g.nonce}
	s.mu.Unlock()
	typ := "Bearer"
	switch c {
	case TokenTypeMAC:
		typ = "mac"
	case TokenTypeDPoP:
		typ = "DPoP"
	}
	return map[string]any{
		"access_token":       at,
		"token_type":         typ,
		"expires_in":         int(s.opts.AccessTokenLifetime / time.Second),
		"refresh_token":      rt,
		"refresh_expires_in": 1800,
		"id_token":           idt,
		"scope":              "openid profile email",
	}, nil
}

func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	s.hit(EndpointUserinfo)
	c := s.current(0)
	if c == SlowUserinfo && !s.stall(r) {
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	sub, ok := s.access[token]
	s.mu.Unlock()
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hostile", error="invalid_token", error_description="Token verification failed"`)
		s.oauthError(w, http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	if c == UserinfoSubMismatch {
		sub = OtherSubject
	}
	s.writeJSON(w, http.StatusOK, map[string]any{
		"sub":                sub,
		"preferred_username": s.opts.Username,
		"email":              s.opts.Username + "@example.com",
		"email_verified":     true,
	}, false)
}

func (s *Server) oauthError(w http.ResponseWriter, status int, code, desc string) {
	s.writeJSON(w, status, map[string]string{"error": code, "error_description": desc}, false)
}

// writeJSON answers v; huge pads the document with a member of HugeSize
// bytes, streamed, so that only a client that bounds what it reads stays
// safe.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any, huge bool) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if !huge {
		_, _ = w.Write(body)
		return
	}
	// {"a":1} becomes {"a":1,"padding":"xxx…"}: valid JSON, but HugeSize
	// bytes of it.
	if _, err := w.Write(append(body[:len(body)-1:len(body)-1], `,"padding":"`...)); err != nil {
		return
	}
	chunk := []byte(strings.Repeat("x", 32<<10))
	for n := 0; n < s.opts.HugeSize; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return // the client stopped reading: good
		}
	}
	_, _ = w.Write([]byte(`"}`))
}

// baseClaims are the claims every token shares.
func (s *Server) baseClaims(now time.Time, typ, sid string) map[string]any {
	m := map[string]any{
		"iss":                s.issuer,
		"sub":                s.opts.Subject,
		"aud":                s.opts.ClientID,
		"azp":                s.opts.ClientID,
		"typ":                typ,
		"iat":                now.Unix(),
		"exp":                now.Add(s.opts.AccessTokenLifetime).Unix(),
		"jti":                randomString(12),
		"preferred_username": s.opts.Username,
	}
	if sid != "" {
		m["sid"] = sid
	}
	return m
}

func (s *Server) accessClaims(now time.Time, sid string) map[string]any {
	m := s.baseClaims(now, "Bearer", sid)
	m["scope"] = "openid profile email"
	m["realm_access"] = map[string]any{"roles": []string{"user"}}
	return m
}

// mint applies the current case to claims of kind tok and signs them.
func (s *Server) mint(tok Tokens, claims map[string]any) (string, error) {
	c := s.current(tok)
	now := s.opts.Now()
	switch c {
	case IssuerMismatch:
		claims["iss"] = Impostor
	case AudienceMismatch:
		claims["aud"], claims["azp"] = OtherClient, OtherClient
	case MultipleAudiencesNoAZP:
		claims["aud"] = []string{s.opts.ClientID, OtherClient}
		delete(claims, "azp")
	case WrongAZP:
		claims["azp"] = OtherClient
	case IssuedInFuture:
		claims["iat"] = now.Add(time.Hour).Unix()
		claims["exp"] = now.Add(2 * time.Hour).Unix()
	case Expired:
		claims["iat"] = now.Add(-2 * time.Hour).Unix()
		claims["exp"] = now.Add(-time.Hour).Unix()
	case NonceMissing:
		delete(claims, "nonce")
	case NonceWrong:
		claims["nonce"] = "not-the-nonce-that-was-sent"
	case AtHashWrong:
		if _, ok := claims["at_hash"]; ok {
			claims["at_hash"] = atHash("not the access token")
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	key := s.keys[len(s.keys)-1]
	s.mu.Unlock()
	return sign(c, key, payload)
}

// sign signs payload with key the way case c asks.
func sign(c Case, key *signingKey, payload []byte) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	var sk jose.SigningKey
	switch c {
	case AlgNone:
		// go-jose refuses to produce unsigned tokens, rightly: this is
		// the one token assembled by hand.
		header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": key.kid})
		return b64(header) + "." + b64(payload) + ".", nil
	case HS256PublicKeyPEM, HS256PublicKeyDER:
		der, err := x509.MarshalPKIXPublicKey(&key.priv.PublicKey)
		if err != nil {
			return "", err
		}
		secret := der
		if c == HS256PublicKeyPEM {
			secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
		// The real key's kid, so that the relying party finds the public
		// key it might wrongly use as the HMAC secret.
		sk = jose.SigningKey{Algorithm: jose.HS256, Key: secret}
		opts = opts.WithHeader("kid", key.kid)
	case KIDAbsentSingleKey, KIDAbsentManyKeys:
		sk = jose.SigningKey{Algorithm: jose.RS256, Key: key.priv}
	default:
		sk = jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	if c == InvalidSignature {
		// A real signature of these bytes, with one bit flipped.
		i := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		if err != nil {
			return "", err
		}
		sig[len(sig)/2] ^= 0x01
		tok = tok[:i+1] + b64(sig)
	}
	return tok, nil
}

// atHash is OIDC Core's at_hash for RS256: the left half of SHA-256.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64(sum[:16])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64(b)
}

// signingKey is one RSA key of the provider.
type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

var (
	poolMu sync.Mutex
	pool   []*signingKey
)

// poolKey returns the i-th process-wide key, generating it on first use:
// 2048-bit RSA keys are slow to make, and servers may share them (each has
// its own issuer).
func poolKey(i int) (*signingKey, error) {
	poolMu.Lock()
	defer poolMu.Unlock()
	for len(pool) <= i {
		k, err := newSigningKey()
		if err != nil {
			return nil, err
		}
		pool = append(pool, k)
	}
	return pool[i], nil
}

// newSigningKey generates a key whose kid is the SHA-256 of its public
// key, as Keycloak derives it.
func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("hostileop: generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("hostileop: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &signingKey{kid: b64(sum[:]), priv: priv}, nil
}
