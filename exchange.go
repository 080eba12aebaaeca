package cloakroom

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/cloakroom/cloakroom/internal/ttlcache"
)

// OAuth 2.0 Token Exchange (RFC 8693) identifiers.
const (
	// GrantTypeTokenExchange is the grant_type of a token exchange request.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the token type URI of an OAuth access token,
	// the only subject token type Keycloak's standard token exchange takes.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// ErrSubjectTokenRefused: the provider refused the subject token of a
// token exchange (Keycloak 26: 400 invalid_request "Invalid token"): it is
// expired, its session ended (logout), its user was disabled, or it is not
// an access token of the realm. The caller should treat the user as not
// authenticated (401), not retry. Errors that wrap it are *ExchangeError.
var ErrSubjectTokenRefused = errors.New("subject token refused by the provider")

// ExchangeError is the provider's refusal of a token exchange. It carries
// the provider's answer and, when the refusal shows that a setting in the
// provider is wrong, which one and how to fix it.
//
// A refusal that is about configuration (standard token exchange not
// enabled for the client, audience not available, public client, ...) is
// returned inside a *ProviderError whose Setting names it, so that it
// wraps ErrMisconfigured (and ErrUnavailable, like every ProviderError);
// a refusal of the subject token itself wraps ErrSubjectTokenRefused.
// errors.As finds the *ExchangeError in both.
type ExchangeError struct {
	ClientID    string // the client that asked for the exchange
	Audience    string // the requested audience ("" for none)
	StatusCode  int    // the token endpoint's HTTP status
	Code        string // the provider's "error"
	Description string // the provider's "error_description"
	// Setting is the provider setting the refusal points at, e.g.
	// "standard.token.exchange.enabled" or "audience"; empty for a
	// refusal of the subject token.
	Setting string
	// Fix says what to change, in the provider's terms.
	Fix string
}

func (e *ExchangeError) Error() string {
	said := e.Code
	if said == "" {
		said = fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	if e.Description != "" {
		said += fmt.Sprintf(" %q", e.Description)
	}
	what := "token exchange"
	if e.Audience != "" {
		what += fmt.Sprintf(" for audience %q", e.Audience)
	}
	msg := fmt.Sprintf("%s by client %q refused (the provider answers %s)", what, e.ClientID, said)
	if e.Fix != "" {
		msg += ": " + e.Fix
	}
	return msg
}

// Unwrap returns ErrSubjectTokenRefused for a refusal of the subject
// token, ErrMisconfigured otherwise.
func (e *ExchangeError) Unwrap() error {
	if e.Setting == "" {
		return ErrSubjectTokenRefused
	}
	return ErrMisconfigured
}

// Defaults of ExchangerConfig.
const (
	// DefaultExchangeExpiryMargin is how long before its expiry an
	// exchanged token stops being served from the cache.
	DefaultExchangeExpiryMargin = 30 * time.Second
	// DefaultExchangeCacheSize bounds the number of cached exchanged tokens.
	DefaultExchangeCacheSize = 10_000
)

// ExchangerConfig configures an Exchanger.
type ExchangerConfig struct {
	// Credentials are those of the confidential client that asks for the
	// exchange (Keycloak: a client with "Standard token exchange" enabled).
	// The subject tokens must name this client in aud, or have been
	// issued to it.
	Credentials ClientCredentials
	// ExpiryMargin: a cached token is served until this long before its
	// expiry (default DefaultExchangeExpiryMargin, at most a quarter of
	// the token's lifetime), never after the subject token's exp.
	ExpiryMargin time.Duration
	// CacheSize bounds the cache in entries (default
	// DefaultExchangeCacheSize); a negative value turns caching off.
	CacheSize int
}

// Exchanger exchanges users' access tokens for tokens meant for another
// audience, with Keycloak's standard token exchange (Keycloak 26.2+,
// RFC 8693): a service that received a user's token asks Keycloak for one
// that only the downstream API accepts (aud narrowed to it, azp the
// service), instead of passing the user's own token on.
//
// Results are cached per subject token, audience and scopes until shortly
// before they expire; the cache key contains (a SHA-256 of) the whole
// subject token, so a token exchanged for one user is never served for
// another token, let alone another user. Concurrent identical exchanges
// share one request. An Exchanger is safe for concurrent use.
//
// Caching means that a logout in Keycloak does not stop an already
// exchanged token before the cache entry ends (at most the token's
// lifetime, by default five minutes in Keycloak); check the subject token
// first (Verifier, or introspection) when that matters.
type Exchanger struct {
	realm  *Realm
	creds  ClientCredentials
	margin time.Duration
	cache  *ttlcache.Cache[*oauth2.Token]

	mu       sync.Mutex
	inflight map[string]*exchangeCall
}

type exchangeCall struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

// NewExchanger returns an Exchanger that asks realm's token endpoint as the
// client of cfg.Credentials. It does no I/O.
func NewExchanger(realm *Realm, cfg ExchangerConfig) (*Exchanger, error) {
	switch {
	case realm == nil:
		return nil, errors.New("cloakroom: NewExchanger: realm is nil")
	case cfg.Credentials.ClientID == "":
		return nil, errors.New("cloakroom: NewExchanger: client id is empty (the client that exchanges tokens)")
	case cfg.Credentials.ClientSecret == "":
		return nil, fmt.Errorf("cloakroom: NewExchanger: client %q has no secret: Keycloak lets only confidential clients exchange tokens", cfg.Credentials.ClientID)
	case cfg.ExpiryMargin < 0:
		return nil, errors.New("cloakroom: NewExchanger: ExpiryMargin is negative")
	}
	e := &Exchanger{realm: realm, creds: cfg.Credentials, margin: cfg.ExpiryMargin, inflight: map[string]*exchangeCall{}}
	if e.margin == 0 {
		e.margin = DefaultExchangeExpiryMargin
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultExchangeCacheSize
	}
	if size > 0 {
		// An exchanged Keycloak token is 1-2 KiB; the byte bound is a
		// backstop against a provider issuing huge ones.
		e.cache = ttlcache.New[*oauth2.Token](size, size*8<<10)
	}
	return e, nil
}

// ClientID returns the id of the client that asks for the exchanges.
func (e *Exchanger) ClientID() string { return e.creds.ClientID }

// Exchange returns an access token for audience (a Keycloak client id;
// "" asks for none, and Keycloak then gives the requesting client's usual
// audience) on behalf of the user of subjectToken, an access token of the
// realm. scopes are optional client scopes of the requesting client to add
// (Keycloak's "scope" parameter; its default client scopes always apply).
//
// The token comes from the cache when an exchange of the same subject
// token for the same audience and scopes is still fresh. The result is the
// caller's to keep: it is a copy. Extra("scope") and
// Extra("issued_token_type") read the provider's answer.
//
// Errors: a refusal of the subject token wraps ErrSubjectTokenRefused; a
// refusal that shows a configuration problem (exchange not enabled for
// the client, audience not available to it, ...) is a *ProviderError
// wrapping ErrMisconfigured whose message says what to configure; the
// provider down or answering garbage wraps ErrUnavailable only. All but
// the first wrap ErrUnavailable; test ErrMisconfigured first.
func (e *Exchanger) Exchange(ctx context.Context, subjectToken, audience string, scopes ...string) (*oauth2.Token, error) {
	if subjectToken == "" {
		return nil, &ExchangeError{ClientID: e.creds.ClientID, Audience: audience, Description: "no subject token", Fix: "pass the user's access token"}
	}
	scopes = normalizeScopes(scopes)
	key := exchangeKey(subjectToken, audience, scopes)
	if e.cache != nil {
		if tok, ok := e.cache.Get(key, e.realm.now().Unix()); ok {
			return copyToken(tok), nil
		}
	}
	e.mu.Lock()
	call, running := e.inflight[key]
	if !running {
		call = &exchangeCall{done: make(chan struct{})}
		e.inflight[key] = call
		// The request outlives a caller that gives up: the others, and
		// the cache, still get its answer. The Realm's timeout bounds it.
		go e.run(context.WithoutCancel(ctx), call, key, subjectToken, audience, scopes)
	}
	e.mu.Unlock()
	select {
	case <-call.done:
		if call.err != nil {
			return nil, call.err
		}
		return copyToken(call.tok), nil
	case <-ctx.Done():
		return nil, &ProviderError{Op: "token exchange", URL: e.realm.Issuer(), Err: ctx.Err()}
	}
}

func (e *Exchanger) run(ctx context.Context, call *exchangeCall, key, subjectToken, audience string, scopes []string) {
	defer func() {
		e.mu.Lock()
		delete(e.inflight, key)
		e.mu.Unlock()
		close(call.done)
	}()
	call.tok, call.err = e.exchange(ctx, subjectToken, audience, scopes)
	if call.err != nil || e.cache == nil || call.tok.Expiry.IsZero() {
		return
	}
	now := e.realm.now()
	margin := min(e.margin, call.tok.Expiry.Sub(now)/4)
	until := call.tok.Expiry.Add(-margin)
	if exp, ok := unverifiedExpiry(subjectToken); ok && exp.Before(until) {
		until = exp
	}
	e.cache.Put(key, call.tok, until.Unix(), len(call.tok.AccessToken)+len(key)+256, now.Unix())
}

// exchange sends one token exchange request.
func (e *Exchanger) exchange(ctx context.Context, subjectToken, audience string, scopes []string) (*oauth2.Token, error) {
	meta, err := e.realm.Discover(ctx)
	if err != nil {
		return nil, err
	}
	endpoint := meta.TokenEndpoint
	if endpoint == "" {
		return nil, &ProviderError{Op: "token exchange", URL: e.realm.DiscoveryURL(), Err: errors.New("the discovery document announces no token_endpoint")}
	}
	params := url.Values{
		"grant_type":           {GrantTypeTokenExchange},
		"subject_token":        {subjectToken},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
	}
	if audience != "" {
		params.Set("audience", audience)
	}
	conf := clientcredentials.Config{
		ClientID: e.creds.ClientID, ClientSecret: e.creds.ClientSecret, TokenURL: endpoint,
		Scopes: scopes, EndpointParams: params, AuthStyle: oauth2.AuthStyleInHeader,
	}
	ctx, cancel := context.WithTimeout(ctx, e.realm.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, e.realm.client)
	tok, err := conf.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			return nil, e.refusal(endpoint, audience, subjectToken, re)
		}
		return nil, &ProviderError{Op: "token exchange", URL: endpoint, Err: scrubURLError(err)}
	}
	if typ, _ := tok.Extra("issued_token_type").(string); typ != "" && typ != TokenTypeAccessToken {
		return nil, &ProviderError{Op: "token exchange", URL: endpoint, Err: fmt.Errorf("the provider issued a token of type %q, not an access token", typ)}
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "Bearer") {
		return nil, &ProviderError{Op: "token exchange", URL: endpoint, Err: fmt.Errorf("the provider issued a %q token, not a bearer token", tok.TokenType)}
	}
	return tok, nil
}

// refusal turns the token endpoint's error answer into an error that says
// what to fix (Keycloak 26.7.3's answers, see docs/token-exchange.md).
func (e *Exchanger) refusal(endpoint, audience, subjectToken string, re *oauth2.RetrieveError) error {
	status := re.Response.StatusCode
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		// Not an OAuth error answer (a proxy's page, a 5xx): the
		// provider is not usable right now.
		return &ProviderError{Op: "token exchange", URL: endpoint, StatusCode: status, Err: fmt.Errorf("unexpected answer%s", bodySnippet(re.Body))}
	}
	if status == http.StatusUnauthorized {
		if pe := e.realm.clientRefusal(endpoint, e.creds.ClientID, status, code, desc); pe != nil {
			pe.Op = "token exchange"
			return pe
		}
	}
	if status >= 500 {
		return &ProviderError{Op: "token exchange", URL: endpoint, StatusCode: status, Err: fmt.Errorf("%s %q", code, desc)}
	}
	id := e.creds.ClientID
	xe := &ExchangeError{ClientID: id, Audience: audience, StatusCode: status, Code: code, Description: desc}
	switch {
	case desc == "Invalid token":
		// The subject token is expired, from an ended session or user,
		// or not an access token of this realm.
		xe.Fix = "the subject token is not a valid access token of the realm any more (expired, logged out, or its user disabled)"
		return xe
	case desc == "Standard token exchange is not enabled for the requested client":
		xe.Setting = "standard.token.exchange.enabled"
		xe.Fix = fmt.Sprintf("enable Standard token exchange on client %q (admin console: Clients → %s → Settings → Capability config; client attribute standard.token.exchange.enabled=true; Keycloak 26.2 or later)", id, id)
	case desc == "Public client is not allowed to exchange token":
		xe.Setting = "client_id"
		xe.Fix = fmt.Sprintf("client %q is public; only confidential clients may exchange tokens: turn Client authentication on for it and use its secret", id)
	case strings.HasPrefix(desc, "Requested audience not available"):
		xe.Setting = "audience"
		xe.Fix = fmt.Sprintf("Keycloak puts %q in aud of client %q's tokens only when one of its client scopes has an Audience mapper including it (admin console: Clients → %s → Client scopes → %s-dedicated → Add mapper → Audience), or when the user has a role of that client in the client's scope", audience, id, id, id)
	case desc == "Audience not found":
		xe.Setting = "audience"
		xe.Fix = fmt.Sprintf("realm %q has no client with Client ID %q: the audience must be the Client ID of the downstream API's client", e.realm.Name(), audience)
	case desc == "Client disabled":
		xe.Setting = "audience"
		xe.Fix = fmt.Sprintf("the audience client %q is disabled in Keycloak: enable it", audience)
	case desc == "Client is not within the token audience":
		xe.Setting = "audience"
		holder := unverifiedClaim(subjectToken, "azp")
		if holder == "" {
			holder = "the client the user logged in with"
		} else {
			holder = fmt.Sprintf("%q", holder)
		}
		xe.Fix = fmt.Sprintf("the subject token's aud does not contain %q: add an Audience mapper including %q to client %s (the token's azp), or exchange only tokens issued to %q", id, id, holder, id)
	case code == "invalid_scope":
		xe.Setting = "scope"
		xe.Fix = fmt.Sprintf("add the requested scopes as optional client scopes of client %q (admin console: Clients → %s → Client scopes)", id, id)
	case desc == "requested_token_type unsupported":
		xe.Setting = "requested_token_type"
		xe.Fix = "the provider does not issue access tokens by token exchange for this client"
	case code == "invalid_request" && strings.HasPrefix(desc, "Parameter "):
		xe.Setting = "token exchange"
		xe.Fix = "the provider does not do standard token exchange (Keycloak 26.2 or later with the token-exchange-standard feature, on by default)"
	default:
		xe.Setting = "token exchange"
	}
	return &ProviderError{Op: "token exchange", URL: endpoint, StatusCode: status, Setting: xe.Setting, Err: xe}
}

// normalizeScopes sorts, deduplicates and drops empty scopes, so that the
// same set of scopes is one cache entry.
func normalizeScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		out = append(out, strings.Fields(s)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// exchangeKey is the cache key: the SHA-256 of the whole subject token
// (so one subject token's exchange never answers another's), the audience
// and the scopes. The hash keeps tokens out of memory dumps of the keys.
func exchangeKey(subjectToken, audience string, scopes []string) string {
	sum := sha256.Sum256([]byte(subjectToken))
	// The audience's length makes the key unambiguous whatever bytes
	// audience and scopes contain.
	return string(sum[:]) + strconv.Itoa(len(audience)) + ":" + audience + strings.Join(scopes, " ")
}

// copyToken returns a copy the caller may change without touching the
// cached token.
func copyToken(t *oauth2.Token) *oauth2.Token {
	c := *t
	return &c
}

// unverifiedClaims reads a JWT's payload without checking its signature:
// only to bound a cache entry by the subject token's exp and to name its
// azp in an error message, never to decide anything about access.
func unverifiedClaims(token string) map[string]any {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA})
	if err != nil {
		return nil
	}
	var c map[string]any
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil {
		return nil
	}
	return c
}

func unverifiedClaim(token, name string) string {
	s, _ := unverifiedClaims(token)[name].(string)
	return s
}

func unverifiedExpiry(token string) (time.Time, bool) {
	exp, ok := unverifiedClaims(token)["exp"].(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(exp), 0), true
}
