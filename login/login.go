// Package login logs browser users in and out through Keycloak: the OpenID
// Connect authorization code flow with PKCE, server-side sessions, token
// refresh, RP-initiated logout and back-channel logout. It is what
// Authlib, quart-keycloak and django-allauth give Python web apps.
//
//	auth, err := login.New(login.Config{
//		Realm: realm, ClientID: "webapp", ClientSecret: secret,
//		BaseURL: "https://app.example.com", Sessions: sessions,
//	})
//	auth.Mount(mux)                                         // Prefix()+"/": login, callback, logout, back-channel logout, register
//	mux.Handle("/account/", auth.RequireLogin(accountPage)) // browsers are sent to Keycloak and back
//	http.ListenAndServe(":8080", auth.Middleware(mux))     // loads (and refreshes) the session on every request
//
// In a handler, login.FromContext(r.Context()) returns the Session: the
// user's claims and an access token for calling APIs on the user's behalf.
// Pages link to auth.LoginURL(returnTo) to sign in, and sign out with a
// form posting to auth.LogoutURL(returnTo) that carries
// Session.LogoutFormFields (the CSRF token). The runnable example is
// ExampleHandler_Mount.
//
// # Logouts while the session store is down
//
// Keycloak sends a back-channel logout once. With a store shared by several
// instances (Redis, PostgreSQL), wrap it in a session.JournaledStore
// (outermost, around any session.CachedStore): a logout that arrives while
// the store is unreachable is then written to the instance's journal file
// and fsynced, answered 200, refused by this instance at once, and applied
// to the store when it answers again; every instance holds sessions back
// for a short while after an outage so that journals are applied first.
// Without a journal the handler answers 503 and Keycloak records the
// failure. The guarantee and what remains of the window are in
// docs/gateway.md, "A logout accepted is never lost".
package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/bodylimit"
	"github.com/cloakroom/cloakroom/internal/realmx"
	"github.com/cloakroom/cloakroom/session"
)

// Defaults.
const (
	DefaultPrefix        = "/auth"
	DefaultRefreshBefore = 30 * time.Second
	// pendingLifetime bounds how long a login may take at Keycloak.
	pendingLifetime = 15 * time.Minute
)

// ErrLoginRejected may be returned (wrapped) by Config.AfterLogin to refuse
// a login; the user sees its message. It wraps cloakroom.ErrRejected, which
// refuses the login as well.
var ErrLoginRejected = fmt.Errorf("login %w", cloakroom.ErrRejected)

// LoginEvent is passed to Config.AfterLogin after Keycloak authenticated
// the user and every token was verified, before the session is created.
type LoginEvent struct {
	// IDClaims are the ID token's claims; AccessClaims the access token's
	// (roles live there in Keycloak). AccessClaims is nil when the
	// provider's access token is opaque to this client (GenericOIDC only,
	// see Config.Verifier).
	IDClaims     *cloakroom.Claims
	AccessClaims *cloakroom.Claims
	// Userinfo are the claims the userinfo endpoint returned, when
	// Config.FetchUserinfo is on (nil otherwise). Their sub equals the ID
	// token's; the profile members the ID token lacks are added to the
	// session's IDClaims (see Config.FetchUserinfo).
	Userinfo *cloakroom.Claims
	// Values are stored in the session (session.State.Values); the hook
	// may add to them. Keys starting with "cloakroom." are reserved: they
	// are not stored.
	Values map[string]string
	// Request is the callback request.
	Request *http.Request
}

// BackchannelLogoutEvent describes a logout Keycloak pushed to this app.
type BackchannelLogoutEvent struct {
	Subject string   // sub of the logout token, may be empty
	SID     string   // Keycloak session id, may be empty
	Keys    []string // store keys of the sessions ended
}

// Config configures a Handler.
type Config struct {
	// Realm is the Keycloak realm (or OpenID Provider).
	Realm *cloakroom.Realm
	// ClientID and ClientSecret identify this application's confidential
	// client in Keycloak.
	ClientID     string
	ClientSecret string
	// BaseURL is the application's external URL (scheme, host and optional
	// path), e.g. "https://app.example.com". The callback is
	// BaseURL+Prefix+"/callback" and must be a valid redirect URI of the
	// client. An https BaseURL makes cookies Secure (with the __Host-
	// prefix for the session cookie), whatever session.Config.Secure says:
	// the Handler uses Sessions.WithSecure (see Handler.Sessions).
	BaseURL string
	// Prefix is the path the Handler is mounted at (default "/auth").
	Prefix string
	// Scopes requested (default openid, profile, email).
	Scopes []string
	// LightweightTokens accepts Keycloak's lightweight access tokens (the
	// client setting "Always use lightweight access token": no sub, no
	// roles in the token): their claims come from token introspection as
	// ClientID, cached until exp (cloakroom.Verifier.Lightweight). The
	// client must be in the tokens' introspection audience.
	LightweightTokens bool
	// Sessions keeps the sessions (required). The Handler does not close
	// its store: whoever opened the store closes it, after the server
	// stopped.
	Sessions *session.Manager
	// AllowedRedirectOrigins lists other origins (scheme://host[:port]) that
	// return_to and post-logout targets may point to; by default only paths
	// of this application are allowed.
	AllowedRedirectOrigins []string
	// AllowRedirect, when set, may allow an absolute http(s) URL whose
	// origin is not in AllowedRedirectOrigins as a return_to target (e.g.
	// the gateway allows the hosts of its routes). It is asked only about
	// URLs that passed the other checks (no user information, backslash
	// or control character).
	AllowRedirect func(u *url.URL) bool
	// PostLogoutRedirect is where users land after logout (default "/").
	PostLogoutRedirect string
	// SignedOutPage ends a logout that names no return_to on a "You have
	// been signed out" page with a button to sign in again (back to
	// PostLogoutRedirect), instead of redirecting to PostLogoutRedirect:
	// for sites whose home page requires a login, where users would
	// otherwise land on the login form without a word. A logout with a
	// return_to still ends there.
	SignedOutPage bool
	// RefreshBefore refreshes access tokens this long before they expire
	// (default 30 s).
	RefreshBefore time.Duration
	// ACRLevels orders authentication levels from weakest to strongest
	// (e.g. ["0", "1", "silver", "gold"]) for RequireACR. Numeric levels
	// compare as numbers without it.
	ACRLevels []string
	// FrontchannelLogout serves GET {Prefix}/frontchannel-logout?iss=…&sid=….
	FrontchannelLogout bool
	// FetchUserinfo calls the provider's userinfo endpoint with the new
	// access token after every login (not on refresh) and refuses the
	// login unless its sub equals the ID token's (OIDC Core 5.3.4). The
	// claims reach AfterLogin as LoginEvent.Userinfo. The request uses the
	// Realm's HTTP client and timeout; an unreachable endpoint fails the
	// login with 503. Keycloak puts the same claims in the ID token, so
	// this is for providers (or mappers) that do not: the profile members
	// the ID token lacks (email, preferred_username, name, ...; never
	// token or authentication members such as iss, aud, exp, acr) are
	// added to the session's IDClaims, and kept across refreshes.
	FetchUserinfo bool
	// Verifier configures the verification of the tokens the Handler
	// receives: Algorithms, Leeway, Profile, RolesClaim, CacheEntries,
	// CacheBytes and LogoutTokenMaxAge (the zero value is Keycloak with
	// the secure defaults). The Handler makes its ID, access and logout
	// token verifiers from it, setting Kind itself and ClientID to
	// Config.ClientID (Verifier.ClientID may be empty or the same);
	// Audiences, AuthorizedParties and SkipAudienceCheck must stay unset,
	// as the tokens of a login are issued to this client.
	//
	// With the Keycloak profile (the default) the access token must be a
	// Keycloak access token that verifies. With GenericOIDC (or AutoDetect
	// finding a provider that is not Keycloak) an access token that is not
	// a JWT access token for this client (an opaque or encrypted token,
	// dex's ID-token-shaped one, one for another audience) is kept as an
	// opaque credential: the session then takes its subject and roles
	// from the verified ID token, and Session.AccessClaims is nil. A JWT
	// whose signature, key, issuer or times fail is refused. RolesClaim is
	// where RequireAnyRealmRole and RequireAllRealmRoles read roles
	// (default realm_access.roles), e.g. "groups" for dex.
	Verifier cloakroom.VerifierConfig
	// AfterLogin runs after every successful login: update the local user
	// here, store extra values, or refuse the login with an error.
	AfterLogin func(ctx context.Context, e *LoginEvent) error
	// AfterLogout runs when the user logs out through this application.
	AfterLogout func(ctx context.Context, s *Session)
	// OnBackchannelLogout runs after Keycloak ended sessions by back-channel
	// (or front-channel) logout.
	OnBackchannelLogout func(ctx context.Context, e *BackchannelLogoutEvent)
	// OnRefresh runs after every attempt to refresh a session's tokens at
	// Keycloak: err is nil on success (for metrics).
	OnRefresh func(ctx context.Context, err error)
	// OnMisconfigured runs when the identity provider's answer shows this
	// application's settings to be wrong (errors.Is(err,
	// cloakroom.ErrMisconfigured); a *cloakroom.ProviderError whose
	// Setting is "issuer", "client_id" or "client_secret"): discovery
	// found no realm or another issuer, or the token endpoint refused the
	// client at a callback or a refresh. The user is shown that sign-in is
	// misconfigured. err never holds a secret.
	OnMisconfigured func(ctx context.Context, err error)
	// Logger receives warnings and debug messages (default: the Realm's).
	Logger *slog.Logger
}

// Handler serves the login routes under its prefix and provides the
// middleware that loads sessions.
type Handler struct {
	cfg         Config
	realm       *cloakroom.Realm
	sessions    *session.Manager
	base        *url.URL
	prefix      string
	redirectURI string
	scopes      []string
	idVerifier  *cloakroom.Verifier
	atVerifier  *cloakroom.Verifier
	// atCheck verifies the session's access tokens: atVerifier, or its
	// LightweightVerifier with Config.LightweightTokens.
	atCheck interface {
		Verify(context.Context, string) (*cloakroom.Claims, error)
	}
	ltVerifier *cloakroom.Verifier
	logger     *slog.Logger
	origins    map[string]bool
	secure     bool
	refreshes  flightGroup
	// memoAccess says whether the access claims kept with a session
	// (claimsMemo) may be reused and keyEpoch reads the Realm's key-set
	// epoch that bounds that reuse.
	memoAccess  bool
	keyEpoch    func() uint64
	tokenClient *http.Client // the Realm's client, answers bounded
	provider    realmx.Conn  // how the Realm reaches the provider
	// genericRules reports whether the generic OIDC profile applies
	// (resolving AutoDetect once, from discovery).
	genericRules func(context.Context) (bool, error)
	mux          *http.ServeMux
	mountWarn    sync.Once // a request outside the prefix: mounted wrong
	now          func() time.Time
	misconfigLog
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Realm == nil:
		return nil, errors.New("login: Config.Realm is required")
	case cfg.ClientID == "":
		return nil, errors.New("login: Config.ClientID is required")
	case cfg.ClientSecret == "":
		return nil, errors.New("login: Config.ClientSecret is required (a confidential client; public clients belong in the browser, not on a server)")
	case cfg.Sessions == nil:
		return nil, errors.New("login: Config.Sessions is required (a session.Manager)")
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("login: Config.BaseURL %q must be the application's absolute http(s) URL, e.g. https://app.example.com", cfg.BaseURL)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "?#") {
		return nil, fmt.Errorf("login: Config.Prefix %q must start with / and not end with one, e.g. /auth", prefix)
	}
	conn := realmx.Of(cfg.Realm)
	h := &Handler{
		cfg:      cfg,
		provider: conn,
		realm:    cfg.Realm,
		sessions: cfg.Sessions.WithSecure(base.Scheme == "https"),
		base:     base,
		prefix:   prefix,
		logger:   cfg.Logger,
		origins:  map[string]bool{base.Scheme + "://" + base.Host: true},
		secure:   base.Scheme == "https",
		now:      conn.Now,
		keyEpoch: conn.KeyEpoch,
	}
	h.tokenClient = newTokenClient(conn.Client, maxTokenResponseBytes)
	if h.logger == nil {
		h.logger = conn.Logger
	}
	h.redirectURI = base.String() + prefix + "/callback"
	h.scopes = cfg.Scopes
	if len(h.scopes) == 0 {
		h.scopes = []string{"openid", "profile", "email"}
	}
	if !slices.Contains(h.scopes, "openid") {
		return nil, errors.New(`login: Config.Scopes must include "openid"`)
	}
	for _, o := range cfg.AllowedRedirectOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("login: Config.AllowedRedirectOrigins: %q is not an origin like https://other.example.com", o)
		}
		h.origins[u.Scheme+"://"+u.Host] = true
	}
	if cfg.PostLogoutRedirect != "" {
		if _, ok := h.safeRedirect(cfg.PostLogoutRedirect); !ok {
			return nil, fmt.Errorf("login: Config.PostLogoutRedirect %q is neither a local path nor an allowed origin", cfg.PostLogoutRedirect)
		}
	}
	vc := cfg.Verifier
	switch {
	case vc.ClientID != "" && vc.ClientID != cfg.ClientID:
		return nil, fmt.Errorf("login: Config.Verifier.ClientID %q is not Config.ClientID %q: leave it empty", vc.ClientID, cfg.ClientID)
	case len(vc.Audiences) > 0 || len(vc.AuthorizedParties) > 0 || vc.SkipAudienceCheck:
		return nil, errors.New("login: Config.Verifier.Audiences, AuthorizedParties and SkipAudienceCheck must be unset: the tokens of a login are issued to Config.ClientID")
	case vc.Kind != cloakroom.AccessToken:
		return nil, errors.New("login: Config.Verifier.Kind must be unset: the Handler verifies ID, access and logout tokens")
	}
	vc.ClientID, vc.Kind = cfg.ClientID, cloakroom.IDToken
	if h.idVerifier, err = cfg.Realm.NewVerifier(vc); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	// Keycloak puts the client in azp of the access tokens it issues to
	// it, not necessarily in aud.
	vc.Kind, vc.AuthorizedParties = cloakroom.AccessToken, []string{cfg.ClientID}
	if h.atVerifier, err = cfg.Realm.NewVerifier(vc); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	at := realmx.OfVerifier[*cloakroom.Realm](h.atVerifier)
	h.genericRules = at.Generic
	h.atCheck = h.atVerifier
	h.memoAccess = at.Caches && !cfg.LightweightTokens
	if cfg.LightweightTokens {
		lv, err := h.atVerifier.Lightweight(cloakroom.LightweightConfig{Client: cloakroom.ClientCredentials{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}})
		if err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		h.atCheck = lv
	}
	vc.Kind, vc.AuthorizedParties = cloakroom.LogoutToken, nil
	if h.ltVerifier, err = cfg.Realm.NewVerifier(vc); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/login", h.handleLogin)
	mux.HandleFunc("GET "+prefix+"/register", h.handleRegister)
	mux.HandleFunc("GET "+prefix+"/callback", h.handleCallback)
	mux.HandleFunc(prefix+"/logout", h.handleLogout)
	mux.HandleFunc("GET "+prefix+"/logged-out", h.handleLoggedOut)
	mux.HandleFunc(prefix+"/backchannel-logout", h.handleBackchannelLogout)
	if cfg.FrontchannelLogout {
		mux.HandleFunc("GET "+prefix+"/frontchannel-logout", h.handleFrontchannelLogout)
	}
	mux.HandleFunc(prefix+"/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	h.mux = mux
	return h, nil
}

// ServeHTTP serves the routes under the prefix: login, register, callback,
// logout, logged-out, backchannel-logout and (if enabled)
// frontchannel-logout. Mount it with Mount, which registers exactly
// Prefix()+"/"; other paths get 404 (and a warning once: the Handler was
// mounted at another pattern or behind http.StripPrefix).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !strings.HasPrefix(r.URL.Path, h.prefix+"/") {
		h.mountWarn.Do(func() {
			h.logger.Warn("login: the Handler got a request outside its prefix: register it with Handler.Mount(mux), or route every path under Prefix()+\"/\" to it unchanged (no http.StripPrefix)", "path", r.URL.Path, "prefix", h.prefix)
		})
		http.NotFound(w, r)
		return
	}
	bodylimit.Wrap(w, r, endpointBodyLimits)
	h.mux.ServeHTTP(w, r)
}

// endpointBodyLimits bound the bodies the login endpoints read (a logout
// form, a back-channel logout token): small, and sent at once.
var endpointBodyLimits = bodylimit.Limits{Timeout: 20 * time.Second, MaxBytes: maxLogoutBody}

// Sessions returns the session Manager the Handler uses: Config.Sessions,
// with cookies Secure when BaseURL is https (Manager.WithSecure). Use it
// for the session cookie's name.
func (h *Handler) Sessions() *session.Manager { return h.sessions }

// Prefix returns the path the Handler serves.
func (h *Handler) Prefix() string { return h.prefix }

// RedirectURI returns the callback URL to register in Keycloak.
func (h *Handler) RedirectURI() string { return h.redirectURI }

// BackchannelLogoutURL returns the URL to configure as the client's
// "Backchannel logout URL" in Keycloak.
func (h *Handler) BackchannelLogoutURL() string {
	return h.base.String() + h.prefix + "/backchannel-logout"
}

// LoginURL returns the path that starts a login and comes back to returnTo.
func (h *Handler) LoginURL(returnTo string) string {
	if returnTo == "" {
		return h.prefix + "/login"
	}
	return h.prefix + "/login?return_to=" + url.QueryEscape(returnTo)
}

// Session is a logged-in user's session as applications see it.
type Session struct {
	// Subject is the user's immutable Keycloak id (sub).
	Subject string
	// Username is preferred_username: display only.
	Username string
	// IDClaims are the claims of the ID token received at login (or the
	// last refresh); AccessClaims those of the current access token, where
	// Keycloak puts roles. AccessClaims is nil when the provider's access
	// token is opaque (GenericOIDC, see Config.Verifier); roles are then
	// read from IDClaims.
	IDClaims     *cloakroom.Claims
	AccessClaims *cloakroom.Claims
	// AccessToken is a valid access token for calling APIs on the user's
	// behalf. Never log it.
	AccessToken string
	// CSRFToken must accompany the logout form (field csrf_token or header
	// X-CSRF-Token).
	CSRFToken string

	s *session.State
}

// Value returns a value stored at login (LoginEvent.Values).
func (s *Session) Value(key string) string { return s.s.Values[key] }

// SID returns the Keycloak session id.
func (s *Session) SID() string { return s.s.SID }

// ExpiresAt returns when the access token expires (it is refreshed before).
func (s *Session) ExpiresAt() time.Time { return s.s.AccessExpiry }

// String describes the session without token material.
func (s *Session) String() string {
	return fmt.Sprintf("login.Session{Subject:%s Username:%s}", s.Subject, s.Username)
}

type ctxKey struct{}

// FromContext returns the session loaded by Middleware or RequireLogin.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(*Session)
	return s, ok && s != nil
}

// flightGroup runs one function per key at a time; callers for the same key
// share its result (concurrent requests of one session share one refresh).
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flight
}

type flight struct {
	done chan struct{}
	val  *session.State
	err  error
}

func (g *flightGroup) do(key string, fn func() (*session.State, error)) (*session.State, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flight{}
	}
	if f, ok := g.calls[key]; ok {
		g.mu.Unlock()
		<-f.done
		return f.val, f.err
	}
	f := &flight{done: make(chan struct{})}
	g.calls[key] = f
	g.mu.Unlock()
	f.val, f.err = fn()
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	close(f.done)
	return f.val, f.err
}
