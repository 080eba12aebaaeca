// Package bearer protects HTTP APIs with Keycloak access tokens: the job
// drf-keycloak does for Django REST Framework.
//
// Authenticate verifies the "Authorization: Bearer" token of each request
// and puts the Principal in the request context; the Require helpers then
// decide. A request without an Authorization header continues anonymous, so
// public and protected routes can share one middleware stack:
//
//	auth, err := bearer.New(verifier)
//	mux.Handle("/api/", auth.Authenticate(bearer.RequireAnyRealmRole("user")(api)))
//
// Failures answer like RFC 6750 and drf: 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` and a JSON body
// {"code":"token_not_valid"|"token_expired","detail":...}; 403
// insufficient_scope when a role or scope is missing; 503 idp_unavailable
// when Keycloak cannot be asked (never an anonymous pass).
//
// ExampleAuthenticator_Authenticate is a runnable API with a public and an
// admin-only route, called with keycloaktest's tokens.
package bearer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/realmx"
	"github.com/cloakroom/cloakroom/internal/ttlcache"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// ID is the caller's identity: the sub claim (the immutable Keycloak
	// user id) unless WithIdentityClaim chose another claim.
	ID string
	// Username is preferred_username: for display only, never for keying
	// data (Keycloak usernames can be renamed and reused).
	Username string
	// Claims are the verified token's claims (shared, read-only).
	Claims *cloakroom.Claims
	// Token is the raw access token, for calling other APIs on the
	// caller's behalf. Never log it.
	Token string
	// User is what the WithUserMapper hook returned, e.g. the local user row.
	User any
	// DPoPKey is the JWK thumbprint (cnf.jkt) of the key whose DPoP proof
	// came with the token, "" for a plain bearer token.
	DPoPKey string

	permissions []string
}

// Permissions returns the strings at the permission claim path configured
// with WithPermissionsClaim (nil if none was configured).
func (p *Principal) Permissions() []string {
	return append([]string(nil), p.permissions...)
}

// String describes the principal without any token material.
func (p *Principal) String() string {
	return fmt.Sprintf("Principal{ID:%s Username:%s}", p.ID, p.Username)
}

// ErrUserRejected may be returned (wrapped) by a user mapper to refuse an
// otherwise valid token, e.g. for a user deactivated locally: the request
// gets 403 permission_denied. It wraps cloakroom.ErrRejected, which refuses
// the request as well.
var ErrUserRejected = fmt.Errorf("user %w", cloakroom.ErrRejected)

// UserMapper maps a verified caller to the application's user, e.g. by
// looking up or creating the local user row keyed by p.ID. Its result is
// stored in Principal.User.
type UserMapper func(ctx context.Context, p *Principal) (any, error)

// IntrospectionConfig turns on RFC 7662 introspection: every token that
// passes local verification is also checked with Keycloak, so that tokens
// of logged-out sessions or disabled users are refused before exp.
type IntrospectionConfig struct {
	// Client is a confidential client allowed to introspect.
	Client cloakroom.ClientCredentials
	// CacheTTL keeps an answer this long (capped by the token's exp);
	// 0 asks Keycloak on every request. A few seconds is a good compromise:
	// revocation is then seen within that time.
	CacheTTL time.Duration
}

// Error is a refusal produced by the middleware; WithErrorWriter receives it.
type Error struct {
	Status int    // 400, 401, 403, 500 or 503
	Code   string // token_not_valid, token_expired, not_authenticated, permission_denied, invalid_request, dpop_proof_not_valid, use_dpop_nonce, idp_unavailable, store_unavailable, idp_misconfigured, internal_error
	Detail string // human-readable reason, safe to show (no token material)
	// Scope lists the scopes a 403 insufficient_scope refusal asks for.
	Scope []string
	// Err is the underlying error, for logs.
	Err error
	// DPoP marks a refusal answered with a DPoP challenge (RFC 9449 7.1):
	// Code dpop_proof_not_valid is error="invalid_dpop_proof",
	// use_dpop_nonce is error="use_dpop_nonce" (with Nonce, for the
	// DPoP-Nonce header), token_not_valid is error="invalid_token".
	DPoP  bool
	Nonce string
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

func (e *Error) Unwrap() error { return e.Err }

// ErrorWriter writes a refusal; the default writes the JSON body and the
// WWW-Authenticate header described in the package documentation.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, e *Error)

// Option configures an Authenticator.
type Option func(*Authenticator) error

// WithIntrospection checks every token with Keycloak's introspection
// endpoint as well (fails closed with 503 when Keycloak is unreachable).
func WithIntrospection(cfg IntrospectionConfig) Option {
	return func(a *Authenticator) error {
		if cfg.Client.ClientID == "" || cfg.Client.ClientSecret == "" {
			return errors.New("bearer: WithIntrospection needs a confidential client: IntrospectionConfig.Client.ClientID and ClientSecret")
		}
		if cfg.CacheTTL < 0 {
			return errors.New("bearer: IntrospectionConfig.CacheTTL must not be negative")
		}
		a.introspect = &cfg
		if cfg.CacheTTL > 0 {
			a.introCache = ttlcache.New[bool](10_000, 8<<20)
		}
		return nil
	}
}

// WithLightweightTokens accepts Keycloak lightweight access tokens (the
// client setting "Always use lightweight access token"): a token that
// lacks the claims checks need (cloakroom.Claims.IsLightweight) gets them
// from Keycloak's token introspection, as client introspects, so that
// Principal.Claims, the Require helpers and cloakroom.Requirements work
// as with a full token. The answer is cached until the token's exp (or,
// with WithIntrospection, for its CacheTTL, which then also serves as
// its revocation check); Keycloak unreachable is 503 idp_unavailable, a
// token it says is not active 401 — never an anonymous pass or "no
// roles". client must be in the token's audience for Keycloak 26.7
// (see docs/lightweight-tokens.md). Full tokens are verified as before.
func WithLightweightTokens(client cloakroom.ClientCredentials) Option {
	return func(a *Authenticator) error {
		if client.ClientID == "" || client.ClientSecret == "" {
			return errors.New("bearer: WithLightweightTokens needs a confidential client: ClientID and ClientSecret")
		}
		a.lightweightClient = &client
		return nil
	}
}

// WithUserMapper sets the hook that maps each authenticated caller to the
// application's user.
func WithUserMapper(m UserMapper) Option {
	return func(a *Authenticator) error {
		a.mapper = m
		return nil
	}
}

// WithIdentityClaim sets the claim path of Principal.ID (default "sub").
// Choosing preferred_username or email is refused: they are mutable and
// reusable in Keycloak.
func WithIdentityClaim(path string) Option {
	return func(a *Authenticator) error {
		switch path {
		case "":
			return errors.New("bearer: WithIdentityClaim: empty claim path")
		case "preferred_username", "email", "name":
			return fmt.Errorf("bearer: WithIdentityClaim(%q): this claim is mutable and reusable in Keycloak; identify users by sub", path)
		}
		a.identityClaim = path
		return nil
	}
}

// WithPermissionsClaim sets the claim path read by Principal.Permissions
// and the Require*Permission helpers, e.g. drf-keycloak's
// "resource_access.account.roles", or "groups".
func WithPermissionsClaim(path string) Option {
	return func(a *Authenticator) error {
		if path == "" {
			return errors.New("bearer: WithPermissionsClaim: empty claim path")
		}
		a.permClaim = path
		return nil
	}
}

// WithLogger sets the logger (default: the Realm's). Rejections are logged
// at debug level, Keycloak failures at warn; tokens never are.
func WithLogger(l *slog.Logger) Option {
	return func(a *Authenticator) error {
		if l != nil {
			a.logger = l
		}
		return nil
	}
}

// WithErrorWriter replaces how refusals are written, e.g. to match an
// API's error format.
func WithErrorWriter(ew ErrorWriter) Option {
	return func(a *Authenticator) error {
		if ew != nil {
			a.writeError = ew
			a.defaultWriter = false
		}
		return nil
	}
}

// WithRealmName sets the realm attribute of WWW-Authenticate (default: the
// Keycloak realm name).
func WithRealmName(name string) Option {
	return func(a *Authenticator) error {
		a.realmName = name
		return nil
	}
}

// Authenticator verifies bearer tokens; see Authenticate.
type Authenticator struct {
	verifier   *cloakroom.Verifier
	realm      *cloakroom.Realm
	now        func() time.Time // the Realm's clock
	introspect *IntrospectionConfig
	// audienceWarning logs once that introspection fails for tokens
	// without the introspecting client in aud.
	audienceWarning *sync.Once
	introCache      *ttlcache.Cache[bool]
	mapper          UserMapper
	identityClaim   string
	permClaim       string
	logger          *slog.Logger
	writeError      ErrorWriter
	realmName       string
	dpop            *dpopPolicy
	defaultWriter   bool // writeError is a.defaultErrorWriter
	// lightweight completes lightweight tokens (WithLightweightTokens),
	// built for lightweightClient and introspect once options are applied.
	lightweight       *cloakroom.LightweightVerifier
	lightweightClient *cloakroom.ClientCredentials
	lightweightFor    lightweightKey
}

// lightweightKey is what a.lightweight was built for.
type lightweightKey struct {
	client     cloakroom.ClientCredentials
	introspect bool
	ttl        time.Duration
}

// New returns an Authenticator that accepts access tokens verified by v.
func New(v *cloakroom.Verifier, opts ...Option) (*Authenticator, error) {
	if v == nil {
		return nil, errors.New("bearer: nil Verifier")
	}
	vi := realmx.OfVerifier[*cloakroom.Realm](v)
	if !vi.AccessTokens {
		return nil, fmt.Errorf("bearer: the Verifier accepts %ss; bearer needs one for access tokens", vi.Kind)
	}
	conn := realmx.Of(vi.Realm)
	a := &Authenticator{
		verifier:        v,
		realm:           vi.Realm,
		now:             conn.Now,
		identityClaim:   "sub",
		logger:          conn.Logger,
		realmName:       vi.Realm.Name(),
		audienceWarning: new(sync.Once),
	}
	a.writeError = a.defaultErrorWriter
	a.defaultWriter = true
	var err error
	if a.dpop, err = newDPoP(DPoPConfig{}); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	if err := a.buildLightweight(); err != nil {
		return nil, err
	}
	return a, nil
}

// buildLightweight (re)builds the lightweight-token verifier when
// WithLightweightTokens or WithIntrospection changed. With both, the
// completed claims live no longer than introspection's CacheTTL (not at
// all with 0), so that their introspection is the revocation check too.
func (a *Authenticator) buildLightweight() error {
	if a.lightweightClient == nil {
		a.lightweight = nil
		return nil
	}
	key := lightweightKey{client: *a.lightweightClient}
	cfg := cloakroom.LightweightConfig{Client: *a.lightweightClient}
	if a.introspect != nil {
		key.introspect, key.ttl = true, a.introspect.CacheTTL
		cfg.CacheTTL = a.introspect.CacheTTL
		if cfg.CacheTTL == 0 {
			cfg.CacheEntries = -1
		}
	}
	if a.lightweight != nil && key == a.lightweightFor {
		return nil
	}
	lv, err := a.verifier.Lightweight(cfg)
	if err != nil {
		return fmt.Errorf("bearer: %w", err)
	}
	a.lightweight, a.lightweightFor = lv, key
	return nil
}

// With returns a copy of the Authenticator with more options applied,
// sharing the Verifier, the caches and the user mapper: e.g. one with
// another DPoP policy for some routes. An error writer given to New is
// kept; the default one follows the copy.
func (a *Authenticator) With(opts ...Option) (*Authenticator, error) {
	b := *a
	b.audienceWarning = new(sync.Once)
	if a.defaultWriter {
		b.writeError = b.defaultErrorWriter
	}
	for _, o := range opts {
		if err := o(&b); err != nil {
			return nil, err
		}
	}
	if err := b.buildLightweight(); err != nil {
		return nil, err
	}
	return &b, nil
}

type ctxKey struct{}

// state is what Authenticate leaves in the context, also for anonymous
// requests, so that the Require helpers know how to answer.
type state struct {
	principal *Principal
	auth      *Authenticator
}

// FromContext returns the authenticated caller, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	st, _ := ctx.Value(ctxKey{}).(*state)
	if st == nil || st.principal == nil {
		return nil, false
	}
	return st.principal, true
}

// User returns Principal.User as a T, when the user mapper stored one.
func User[T any](ctx context.Context) (T, bool) {
	var zero T
	p, ok := FromContext(ctx)
	if !ok {
		return zero, false
	}
	u, ok := p.User.(T)
	return u, ok
}

// Authenticate is middleware that verifies the request's bearer token.
// No Authorization header (or another scheme): the request continues
// anonymous. A token that is present but invalid: 401. Keycloak
// unreachable when it must be asked: 503.
func (a *Authenticator) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, aerr := a.authenticate(r)
		if aerr != nil {
			a.refuse(w, r, aerr)
			return
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, &state{principal: p, auth: a})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Verify authenticates a request outside the middleware, e.g. in a
// WebSocket upgrade handler. It returns nil, nil for an anonymous request.
func (a *Authenticator) Verify(r *http.Request) (*Principal, error) {
	p, aerr := a.authenticate(r)
	if aerr != nil {
		return nil, aerr
	}
	return p, nil
}

func (a *Authenticator) authenticate(r *http.Request) (*Principal, *Error) {
	token, dpop, present, perr := extractToken(r)
	if perr != nil {
		return nil, perr
	}
	if !present {
		return nil, nil
	}
	switch {
	case dpop && a.dpop.mode == DPoPOff:
		return nil, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "this API does not accept DPoP tokens; send a bearer token (Authorization: Bearer)"}
	case !dpop && a.dpop.mode == DPoPRequire:
		return nil, bindingError("this API requires DPoP: send a DPoP-bound token as Authorization: DPoP with a DPoP proof")
	}
	ctx := r.Context()
	// Bound tokens too: their proof is checked below, and one sent
	// without a proof refused.
	var claims *cloakroom.Claims
	var err error
	if a.lightweight != nil {
		claims, err = a.lightweight.VerifyBound(ctx, token)
	} else {
		claims, err = a.verifier.VerifyBound(ctx, token)
	}
	if err != nil {
		e := a.verifyError(err)
		e.DPoP = dpop && e.Status == http.StatusUnauthorized
		return nil, e
	}
	// (cnf.jkt is looked up in the payload: only for a bound token, which
	// alone has one; IsDPoPBound is remembered with the claims.)
	bound, jkt := claims.IsDPoPBound(), ""
	if bound {
		jkt = claims.ConfirmationJKT()
	}
	// A lightweight token's claims came from introspection, no older than
	// introspection's CacheTTL (buildLightweight): that was its check.
	if a.introspect != nil && (a.lightweight == nil || !claims.IsLightweight()) {
		if e := a.checkActive(ctx, token, claims, jkt); e != nil {
			e.DPoP = dpop && e.Status == http.StatusUnauthorized
			return nil, e
		}
	}
	switch {
	case !dpop && bound:
		// RFC 9449 7.2: a stolen DPoP-bound token must not pass as a
		// bearer token.
		if a.dpop.mode == DPoPOff {
			return nil, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "the token is DPoP-bound, and this API does not accept DPoP tokens"}
		}
		return nil, bindingError("the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof, not as a bearer token")
	case dpop && !bound:
		return nil, bindingError("the token is not DPoP-bound (no cnf.jkt): send it as Authorization: Bearer")
	case dpop && jkt == "":
		return nil, bindingError("the token's cnf.jkt is missing or not a string")
	case dpop:
		if e := a.checkProof(r, token, jkt); e != nil {
			return nil, e
		}
	}
	p := &Principal{
		ID:       claims.Subject(),
		Username: claims.Username(),
		Claims:   claims,
		Token:    token,
	}
	if dpop {
		p.DPoPKey = jkt
	}
	if a.identityClaim != "sub" {
		ids := claims.Strings(a.identityClaim)
		if len(ids) != 1 || ids[0] == "" {
			return nil, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: fmt.Sprintf("token has no identity claim %q", a.identityClaim)}
		}
		p.ID = ids[0]
	}
	if a.permClaim != "" {
		p.permissions = claims.Strings(a.permClaim)
	}
	if a.mapper != nil {
		u, err := a.mapper(ctx, p)
		switch {
		case errors.Is(err, cloakroom.ErrRejected):
			return nil, &Error{Status: http.StatusForbidden, Code: "permission_denied", Detail: err.Error(), Err: err}
		case err != nil:
			a.logger.Error("bearer: user mapper failed", "sub", claims.Subject(), "error", err)
			return nil, &Error{Status: http.StatusInternalServerError, Code: "internal_error", Detail: "the user could not be loaded", Err: err}
		}
		p.User = u
	}
	return p, nil
}

// extractToken reads the token from the Authorization header (RFC 6750
// section 2.1; RFC 9449 7.1 for the DPoP scheme). Tokens in the URL are
// never accepted.
func extractToken(r *http.Request) (token string, dpop, present bool, e *Error) {
	token, present, e = extractTokenOf(r, &dpop)
	return token, dpop, present, e
}

func extractTokenOf(r *http.Request, dpop *bool) (string, bool, *Error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", false, nil
	}
	if len(values) > 1 {
		return "", false, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Detail: "more than one Authorization header"}
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	*dpop = strings.EqualFold(scheme, "DPoP")
	if !strings.EqualFold(scheme, "Bearer") && !*dpop {
		return "", false, nil // another scheme: not ours to judge
	}
	if strings.Contains(r.URL.RawQuery, "access_token") && r.URL.Query().Has("access_token") {
		return "", false, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Detail: "token sent both in the Authorization header and in the URL"}
	}
	token := strings.Trim(rest, " ")
	if token == "" {
		return "", false, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "empty bearer token", Err: cloakroom.ErrMalformed}
	}
	if len(token) > cloakroom.MaxTokenSize {
		return "", false, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: fmt.Sprintf("bearer token longer than %d bytes", cloakroom.MaxTokenSize), Err: cloakroom.ErrMalformed}
	}
	for i := 0; i < len(token); i++ {
		if !isToken68(token[i]) {
			return "", false, &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "bearer token contains characters not allowed in a token", Err: cloakroom.ErrMalformed}
		}
	}
	return token, true, nil
}

// isToken68 reports whether c may appear in an RFC 6750 b64token.
func isToken68(c byte) bool { return token68[c] }

// token68 marks the bytes of RFC 7235's token68 (a table: every byte of
// every token is checked, on every request).
var token68 = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
	}
	return t
}()

func (a *Authenticator) verifyError(err error) *Error {
	switch {
	case errors.Is(err, cloakroom.ErrExpired):
		return &Error{Status: http.StatusUnauthorized, Code: "token_expired", Detail: err.Error(), Err: err}
	case errors.Is(err, cloakroom.ErrMisconfigured):
		return misconfigured(err)
	case errors.Is(err, cloakroom.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "idp_unavailable", Detail: "the identity provider cannot be reached to verify the token; try again later", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: "idp_unavailable", Detail: "request cancelled while verifying the token", Err: err}
	}
	return &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: err.Error(), Err: err}
}

func (a *Authenticator) checkActive(ctx context.Context, token string, claims *cloakroom.Claims, jkt string) *Error {
	now := a.now().Unix()
	if a.introCache != nil {
		if active, ok := a.introCache.Get(token, now); ok {
			return inactiveError(active)
		}
	}
	in, err := a.realm.Introspect(ctx, token, a.introspect.Client)
	if errors.Is(err, cloakroom.ErrMisconfigured) {
		return misconfigured(err)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "idp_unavailable", Detail: "the identity provider cannot be reached to check the token; try again later", Err: err}
	}
	// The provider's binding (RFC 9449 6.2: introspection answers cnf)
	// must be the token's: otherwise the token is refused, from the cache
	// too.
	cnf, _ := in.Raw["cnf"].(map[string]any)
	introJKT, _ := cnf["jkt"].(string)
	consistent := !in.Active || introJKT == jkt
	if a.introCache != nil {
		exp := min(now+int64(a.introspect.CacheTTL/time.Second), claims.Expiry().Unix())
		if a.introspect.CacheTTL < time.Second {
			exp = now + 1
		}
		a.introCache.Put(token, in.Active && consistent, exp, len(token)+64, now)
	}
	if !consistent {
		return &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "the identity provider binds the token to another DPoP key than its cnf.jkt says"}
	}
	if !in.Active && !slices.Contains(claims.Audience(), a.introspect.Client.ClientID) {
		// Keycloak 26.7 answers active=false to a client that is not in the
		// token's aud, even for a live token: say so rather than let every
		// token look revoked.
		a.audienceWarning.Do(func() {
			a.logger.Warn("bearer: Keycloak says a token is not active, and the introspecting client is not in its aud; Keycloak 26.7 and later refuse to introspect such tokens, so every token will look revoked: add an Audience mapper for the introspecting client to the token's client (docs/keycloak-setup.md)",
				"introspecting_client", a.introspect.Client.ClientID, "azp", claims.AuthorizedParty())
		})
		return &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: fmt.Sprintf(
			"token is not active according to the identity provider; Keycloak 26.7 and later also answer so when the introspecting client %q is not in the token's aud: add an Audience mapper for it", a.introspect.Client.ClientID)}
	}
	return inactiveError(in.Active)
}

func inactiveError(active bool) *Error {
	if active {
		return nil
	}
	return &Error{Status: http.StatusUnauthorized, Code: "token_not_valid", Detail: "token is no longer active (session ended, user disabled or token revoked)"}
}

// misconfigured is the answer when the identity provider's own answer
// shows this service's settings to be wrong (no such realm, another
// issuer, the introspecting client refused): a 500 that retrying will not
// fix, unlike the 503 of an outage; the log names the setting.
func misconfigured(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "idp_misconfigured",
		Detail: "this service's identity-provider settings are wrong, so no token can be checked; its administrator must fix them", Err: err}
}

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, e *Error) {
	switch {
	case e.Code == "idp_misconfigured":
		a.logger.Error("bearer: the identity provider refuses this configuration; every request is refused until it is fixed", "method", r.Method, "path", r.URL.Path, "error", e.Err)
	case e.Status == http.StatusServiceUnavailable:
		a.logger.Warn("bearer: cannot verify token, refusing request", "method", r.Method, "path", r.URL.Path, "error", e.Err)
	case e.Status >= 500:
		// logged where it happened
	default:
		a.logger.Debug("bearer: request refused", "method", r.Method, "path", r.URL.Path, "status", e.Status, "code", e.Code, "reason", e.Detail)
	}
	a.writeError(w, r, e)
}

// Challenge is the WWW-Authenticate value of a 401 without a token:
// "Bearer" with the realm attribute (RFC 6750 §3). Handlers that answer
// 401 themselves on a route that takes bearer tokens can send it.
func (a *Authenticator) Challenge() string {
	if a.realmName == "" {
		return "Bearer"
	}
	return fmt.Sprintf(`Bearer realm="%s"`, headerSafe(a.realmName))
}

// dpopChallenge is the DPoP challenge (RFC 9449 7.1) with the realm and
// the accepted proof algorithms.
func (a *Authenticator) dpopChallenge() string {
	c := "DPoP"
	if a.realmName != "" {
		c += fmt.Sprintf(` realm="%s",`, headerSafe(a.realmName))
	}
	return c + fmt.Sprintf(` algs="%s"`, a.dpop.algsString)
}

// defaultErrorWriter answers per RFC 6750 (RFC 9449 for DPoP) with a
// drf-style JSON body.
func (a *Authenticator) defaultErrorWriter(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	challenge := a.Challenge()
	attr := func(k, v string) {
		if strings.HasSuffix(challenge, "Bearer") || challenge == "DPoP" {
			challenge += " "
		} else {
			challenge += ", "
		}
		challenge += fmt.Sprintf(`%s="%s"`, k, headerSafe(v))
	}
	dpopChallenge := e.DPoP || a.dpop.mode == DPoPRequire
	if p, ok := FromContext(r.Context()); ok && p.DPoPKey != "" {
		dpopChallenge = true // a 403 for a DPoP request
	}
	if dpopChallenge {
		challenge = a.dpopChallenge()
	}
	switch e.Status {
	case http.StatusUnauthorized:
		switch e.Code {
		case "not_authenticated":
		case "dpop_proof_not_valid":
			attr("error", "invalid_dpop_proof")
			attr("error_description", e.Detail)
		case "use_dpop_nonce":
			attr("error", "use_dpop_nonce")
			attr("error_description", e.Detail)
			h.Set("DPoP-Nonce", e.Nonce)
		default:
			attr("error", "invalid_token")
			attr("error_description", e.Detail)
		}
		h.Set("WWW-Authenticate", challenge)
	case http.StatusForbidden:
		attr("error", "insufficient_scope")
		attr("error_description", e.Detail)
		if len(e.Scope) > 0 {
			attr("scope", strings.Join(e.Scope, " "))
		}
		h.Set("WWW-Authenticate", challenge)
	case http.StatusBadRequest:
		attr("error", "invalid_request")
		attr("error_description", e.Detail)
		h.Set("WWW-Authenticate", challenge)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}{e.Code, e.Detail})
}

// headerSafe keeps a quoted-string value within RFC 6750's allowed
// characters: printable ASCII without '"' and '\'.
func headerSafe(s string) string {
	const max = 300
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '\''
			if s[i] != '"' {
				c = '?'
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// OpenAPISecurityScheme returns an OpenAPI 3 security-scheme object
// (openIdConnect, pointing at the realm's discovery document) for API docs,
// e.g. components.securitySchemes.keycloak.
func OpenAPISecurityScheme(realm *cloakroom.Realm) map[string]any {
	return map[string]any{
		"type":             "openIdConnect",
		"openIdConnectUrl": realm.DiscoveryURL(),
		"description":      "Keycloak access token, sent as Authorization: Bearer <token>",
	}
}
