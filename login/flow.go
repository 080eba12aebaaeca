package login

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/session"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// pending is one login in progress, kept in an encrypted cookie named after
// its state: bound to the browser that started it, and gone once used.
type pending struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	ReturnTo string    `json:"r"`
	Issuer   string    `json:"i"`
	Prompt   string    `json:"p,omitempty"`
	ACR      string    `json:"a,omitempty"` // acr_values asked for (step-up)
	Created  time.Time `json:"c"`
}

// maxPending bounds the logins in progress per browser (parallel tabs).
const maxPending = 8

// passThrough are the authorization parameters a login link may set.
var passThrough = []string{"kc_idp_hint", "prompt", "login_hint", "acr_values", "kc_action", "ui_locales", "max_age"}

func (h *Handler) pendingCookiePrefix() string {
	if h.secure {
		return "__Secure-cloakroom-login-"
	}
	return "cloakroom-login-"
}

// pendingCookieName derives the cookie name from the state, so that the
// callback finds the right one among parallel logins.
func (h *Handler) pendingCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return h.pendingCookiePrefix() + base64.RawURLEncoding.EncodeToString(sum[:9])
}

func (h *Handler) sealPending(p *pending) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(h.sessions.Keyring().Seal(b, []byte("login:"+p.State))), nil
}

func (h *Handler) openPending(value, state string) (*pending, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, err
	}
	b, err := h.sessions.Keyring().Open(raw, []byte("login:"+state))
	if err != nil {
		return nil, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return nil, errors.New("state mismatch")
	}
	return &p, nil
}

func (h *Handler) setPendingCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     h.prefix + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// prunePending bounds the logins in progress per browser: beyond
// maxPending, arbitrary older ones are dropped (their tabs would have to
// start again).
func (h *Handler) prunePending(w http.ResponseWriter, r *http.Request) {
	var names []string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, h.pendingCookiePrefix()) {
			names = append(names, c.Name)
		}
	}
	if len(names) < maxPending {
		return
	}
	sort.Strings(names)
	for _, name := range names[:len(names)-maxPending+1] {
		h.setPendingCookie(w, name, "", -1)
	}
}

func (h *Handler) oauthConfig(meta *cloakroom.Metadata) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     h.cfg.ClientID,
		ClientSecret: h.cfg.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   meta.AuthorizationEndpoint,
			TokenURL:  meta.TokenEndpoint,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: h.redirectURI,
		Scopes:      h.scopes,
	}
}

// oauthContext makes x/oauth2 use the Realm's HTTP client, with the
// Realm's request timeout and a bounded answer (see newTokenClient). The
// timeout matters when the Realm got a client without a Timeout of its own
// (cloakroom.WithHTTPClient): the token endpoint must not be able to hold
// a callback or a refresh forever.
func (h *Handler) oauthContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, h.provider.Timeout)
	return context.WithValue(ctx, oauth2.HTTPClient, h.tokenClient), cancel
}

// maxTokenResponseBytes bounds the token endpoint's answer: three tokens
// of at most cloakroom.MaxTokenSize each fit several times over. x/oauth2
// silently stops reading at 1 MiB and then reports a JSON syntax error;
// failing before that names the real problem.
const maxTokenResponseBytes = 512 << 10

// newTokenClient returns a copy of c whose response bodies fail to read
// beyond limit bytes.
func newTokenClient(c *http.Client, limit int64) *http.Client {
	tc := *c
	base := tc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tc.Transport = &limitTransport{base: base, limit: limit}
	return &tc
}

type limitTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.limit, limit: t.limit}
	return resp, nil
}

// limitedBody reads up to limit bytes and fails with a clear error if the
// body has more.
type limitedBody struct {
	io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("response larger than %d bytes", b.limit)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

func (h *Handler) handleLogin(w http.ResponseWriter, r *http.Request) {
	h.startLogin(w, r, nil)
}

// handleRegister starts a login on Keycloak's registration page
// (prompt=create, Keycloak 26.1+).
func (h *Handler) handleRegister(w http.ResponseWriter, r *http.Request) {
	h.startLogin(w, r, map[string]string{"prompt": "create"})
}

// StartLogin sends the browser to Keycloak; the user comes back to returnTo
// (a local path or an allowed origin) after logging in. extra may carry the
// pass-through parameters (acr_values, prompt, kc_idp_hint, ...).
func (h *Handler) StartLogin(w http.ResponseWriter, r *http.Request, returnTo string, extra map[string]string) {
	q := r.URL.Query()
	q.Set("return_to", returnTo)
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	h.startLogin(w, r2, extra)
}

func (h *Handler) startLogin(w http.ResponseWriter, r *http.Request, extra map[string]string) {
	q := r.URL.Query()
	returnTo, ok := h.safeRedirect(q.Get("return_to"))
	if !ok {
		h.errorPage(w, r, http.StatusBadRequest, "Invalid return address", "The return_to parameter must be a path of this site.", "")
		return
	}
	meta, err := h.realm.Discover(r.Context())
	if err != nil {
		h.providerFailure(w, r, err)
		return
	}
	if meta.AuthorizationEndpoint == "" || meta.TokenEndpoint == "" {
		h.errorPage(w, r, http.StatusServiceUnavailable, "Login unavailable", "The identity provider does not announce an authorization and a token endpoint.", "")
		return
	}
	p := &pending{
		State:    session.NewID(),
		Nonce:    session.NewID(),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo,
		Issuer:   meta.Issuer,
		Created:  h.now(),
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(p.Verifier),
		oauth2.SetAuthURLParam("nonce", p.Nonce),
	}
	params := map[string]string{}
	for _, name := range passThrough {
		if v := q.Get(name); v != "" && len(v) <= 512 {
			params[name] = v
		}
	}
	for k, v := range extra {
		params[k] = v
	}
	// A Keycloak 26 organization (?organization=acme): Keycloak takes it
	// as the scope organization:acme (the login page then offers that
	// organization's identity providers only, and its tokens name it).
	oc := h.oauthConfig(meta)
	if org := cmp.Or(params["organization"], q.Get("organization")); org != "" {
		if !validOrganization(org) {
			h.errorPage(w, r, http.StatusBadRequest, "Invalid organization", "The organization parameter must be an organization alias (letters, digits, - . _).", "")
			return
		}
		oc.Scopes = append(slices.Clone(oc.Scopes), "organization:"+org)
	}
	delete(params, "organization")
	for k, v := range params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	p.Prompt, p.ACR = params["prompt"], params["acr_values"]
	value, err := h.sealPending(p)
	if err != nil {
		h.errorPage(w, r, http.StatusInternalServerError, "Login failed", "The login could not be started.", "")
		return
	}
	h.prunePending(w, r)
	h.setPendingCookie(w, h.pendingCookieName(p.State), value, int(pendingLifetime/time.Second))
	http.Redirect(w, r, oc.AuthCodeURL(p.State, opts...), http.StatusFound)
}

// validOrganization reports whether s can be an organization alias in a
// scope value: Keycloak derives aliases from names, and a scope value has
// no spaces; "*" asks for all of the user's organizations.
func validOrganization(s string) bool {
	if s == "*" {
		return true
	}
	if len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return s != ""
}

func (h *Handler) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The response from the identity provider has no state.", h.LoginURL(""))
		return
	}
	name := h.pendingCookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		h.logger.Debug("login: callback without a matching login in progress (state unknown, expired, or another browser)")
		h.errorPage(w, r, http.StatusBadRequest, "Login expired", "This login was not started in this browser, was already completed, or took too long.", h.LoginURL(""))
		return
	}
	h.setPendingCookie(w, name, "", -1) // one use only, whatever happens next
	p, err := h.openPending(c.Value, state)
	if err != nil || h.now().Sub(p.Created) > pendingLifetime {
		h.errorPage(w, r, http.StatusBadRequest, "Login expired", "This login is no longer valid; please start again.", h.LoginURL(""))
		return
	}
	// RFC 9207: the response must come from the issuer the request went to.
	meta, err := h.realm.Discover(r.Context())
	if err != nil {
		h.providerFailure(w, r, err)
		return
	}
	if iss, present := q["iss"]; present {
		if len(iss) != 1 || iss[0] != p.Issuer {
			h.logger.Debug("login: authorization response refused: its iss is not the issuer the login was sent to (RFC 9207)", "iss", iss, "want", p.Issuer)
			h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The response names another issuer than the one the login was sent to.", h.LoginURL(p.ReturnTo))
			return
		}
	} else if meta.AuthorizationResponseIssParameter {
		h.logger.Debug("login: authorization response refused: no iss, though the provider announces authorization_response_iss_parameter_supported (RFC 9207)")
		h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The response lacks the iss parameter its issuer promises (RFC 9207).", h.LoginURL(p.ReturnTo))
		return
	}
	if e := q.Get("error"); e != "" {
		h.callbackError(w, r, p, e, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The response from the identity provider has no code.", h.LoginURL(p.ReturnTo))
		return
	}
	octx, cancel := h.oauthContext(r.Context())
	tok, err := h.oauthConfig(meta).Exchange(octx, code, oauth2.VerifierOption(p.Verifier))
	cancel()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			// The provider refusing the client itself (a wrong secret, an
			// unknown client) is this application's misconfiguration:
			// every login would fail the same way.
			if pe := h.clientRefused(meta.TokenEndpoint, re); pe != nil {
				h.misconfigured(w, r, pe)
				return
			}
		}
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			h.logger.Debug("login: code exchange refused", "error", re.ErrorCode, "description", re.ErrorDescription)
			h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The identity provider refused the login code ("+re.ErrorCode+"). Please log in again.", h.LoginURL(p.ReturnTo))
			return
		}
		h.unavailable(w, r, &cloakroom.ProviderError{Op: "token", URL: meta.TokenEndpoint, Err: scrubOAuthError(err)})
		return
	}
	s, ev, err := h.verifyTokens(r.Context(), tok, p.Nonce, "")
	if err == nil && h.cfg.FetchUserinfo {
		ev.Userinfo, err = h.fetchUserinfo(r.Context(), meta, tok.AccessToken, ev.IDClaims.Subject())
	}
	if err != nil {
		h.logger.Debug("login: tokens refused", "reason", err.Error())
		if errors.Is(err, cloakroom.ErrUnavailable) {
			h.providerFailure(w, r, err)
			return
		}
		h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The identity provider's answer did not pass verification.", h.LoginURL(p.ReturnTo))
		return
	}
	ev.Request = r
	if h.cfg.AfterLogin != nil {
		if err := h.cfg.AfterLogin(r.Context(), ev); err != nil {
			if errors.Is(err, cloakroom.ErrRejected) {
				h.errorPage(w, r, http.StatusForbidden, "Login refused", err.Error(), "")
				return
			}
			h.logger.Error("login: AfterLogin hook failed", "sub", s.Subject, "error", err)
			h.errorPage(w, r, http.StatusInternalServerError, "Login failed", "The application could not complete the login.", "")
			return
		}
	}
	s.Values = appValues(ev.Values)
	if ev.Userinfo != nil {
		s.IDClaims, s.UserinfoClaims = addProfileMembers(s.IDClaims, ev.Userinfo.RawJSON())
	}
	if p.ACR != "" {
		// Remember the step-up, so RequireACR does not loop when the
		// provider cannot reach the level.
		s.StepUpACR, s.StepUpAt = p.ACR, h.now()
	}
	// A session the browser had before (maybe planted by someone else) is
	// dropped; the new one gets a new id.
	if old, err := h.sessions.Get(r); err == nil {
		_ = h.sessions.Delete(r.Context(), old)
	}
	if err := h.sessions.Create(r.Context(), w, s); err != nil {
		h.storeFailure(w, r, err)
		return
	}
	h.logger.Debug("login: user logged in", "sub", s.Subject, "sid", s.SID)
	http.Redirect(w, r, p.ReturnTo, http.StatusFound)
}

func (h *Handler) callbackError(w http.ResponseWriter, r *http.Request, p *pending, code, desc string) {
	h.logger.Debug("login: the identity provider answered with an error", "error", code, "description", desc)
	switch {
	case p.Prompt == "none" && (code == "login_required" || code == "interaction_required" || code == "consent_required"):
		// A silent login attempt that found no session: carry on anonymous.
		http.Redirect(w, r, p.ReturnTo, http.StatusFound)
	case code == "temporarily_unavailable" && desc == "authentication_expired":
		// Keycloak 25+: the login tab expired but the user has an SSO session.
		h.StartLogin(w, r, p.ReturnTo, nil)
	case code == "access_denied":
		h.errorPage(w, r, http.StatusForbidden, "Login cancelled", "The login was cancelled.", h.LoginURL(p.ReturnTo))
	default:
		h.errorPage(w, r, http.StatusBadRequest, "Login failed", "The identity provider answered: "+code+".", h.LoginURL(p.ReturnTo))
	}
}

// appValues returns the values a login hook stored, without the keys
// reserved for the package ("cloakroom."), or nil when none is left.
func appValues(v map[string]string) map[string]string {
	maps.DeleteFunc(v, func(k, _ string) bool { return strings.HasPrefix(k, "cloakroom.") })
	if len(v) == 0 {
		return nil
	}
	return v
}

// verifyTokens checks a token response and builds the session from it:
// token_type Bearer, the ID token (signature, audience, nonce when given,
// at_hash), the access token, and one subject across both. wantSub is set
// on refresh.
func (h *Handler) verifyTokens(ctx context.Context, tok *oauth2.Token, nonce, wantSub string) (*session.State, *LoginEvent, error) {
	if !strings.EqualFold(tok.TokenType, "Bearer") {
		return nil, nil, fmt.Errorf("token_type %q is not Bearer", tok.TokenType)
	}
	if tok.AccessToken == "" {
		return nil, nil, errors.New("no access token in the answer")
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" && wantSub == "" {
		return nil, nil, errors.New("no ID token in the answer (is openid among the scopes?)")
	}
	generic, err := h.genericRules(ctx)
	if err != nil {
		return nil, nil, err
	}
	ac, err := h.atCheck.Verify(ctx, tok.AccessToken)
	opaque := false
	switch {
	case err == nil:
	case generic && opaqueToUs(err):
		// OIDC does not make the access token the client's business: it
		// may be opaque (Hydra, ZITADEL), encrypted, shaped like an ID
		// token (dex) or meant for another audience. It is then only
		// carried, never read; the ID token speaks. A JWT of this issuer
		// whose signature, key, issuer or times fail is refused instead.
		h.logger.Debug("login: the access token is opaque to this client; the session uses the ID token's claims", "reason", err.Error())
		ac, opaque = nil, true
	default:
		return nil, nil, fmt.Errorf("access token: %w", err)
	}
	s := &session.State{
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		AccessExpiry: tok.Expiry,
		Subject:      wantSub,
	}
	if ac != nil {
		s.Subject, s.SID, s.Issuer = ac.Subject(), ac.SessionID(), ac.Issuer()
		if !ac.Expiry().IsZero() {
			s.AccessExpiry = ac.Expiry()
		}
	} else {
		// Opaque to us: not verified on each request; roles come from the
		// ID token.
		s.OpaqueAccessToken = true
	}
	if rex, ok := tok.Extra("refresh_expires_in").(float64); ok && rex > 0 {
		s.RefreshExpiry = h.now().Add(time.Duration(rex) * time.Second)
	}
	var ic *cloakroom.Claims
	if rawID != "" {
		ic, err = h.idVerifier.Verify(ctx, rawID)
		if err != nil {
			return nil, nil, fmt.Errorf("ID token: %w", err)
		}
		if nonce != "" && !ic.HasNonce() {
			return nil, nil, errors.New("ID token: nonce missing, though the login sent one")
		}
		if nonce != "" && subtle.ConstantTimeCompare([]byte(ic.Nonce()), []byte(nonce)) != 1 {
			return nil, nil, errors.New("ID token: nonce does not match the one sent")
		}
		if err := checkAtHash(rawID, ic, tok.AccessToken); err != nil {
			return nil, nil, err
		}
		if ac != nil && ic.Subject() != ac.Subject() {
			return nil, nil, errors.New("the ID token and the access token name different subjects")
		}
		if ac == nil {
			s.Subject, s.Issuer = ic.Subject(), ic.Issuer()
		}
		s.IDToken = rawID
		s.IDClaims = ic.RawJSON()
		if s.SID == "" {
			s.SID = ic.SessionID()
		}
		if s.AccessExpiry.IsZero() {
			// No expires_in and an opaque token: the ID token's lifetime
			// bounds how long it is used before a refresh.
			s.AccessExpiry = ic.Expiry()
		}
	}
	if opaque && s.AccessExpiry.IsZero() {
		s.AccessExpiry = h.now().Add(time.Minute)
	}
	if wantSub != "" && s.Subject != wantSub {
		return nil, nil, errors.New("refreshed tokens name another subject")
	}
	return s, &LoginEvent{IDClaims: ic, AccessClaims: ac, Values: map[string]string{}}, nil
}

// opaqueToUs tells the verification errors that mean "this access token
// is not one this client can read" (not a JWS, another kind or audience, an
// algorithm or claims it does not expect) from those that mean something is
// wrong with it (signature, unknown key, issuer, times) or with the
// provider (unavailable).
func opaqueToUs(err error) bool {
	for _, e := range []error{cloakroom.ErrMalformed, cloakroom.ErrTokenType, cloakroom.ErrAudience, cloakroom.ErrAlgorithm, cloakroom.ErrMissingClaim, cloakroom.ErrInvalidClaim} {
		if errors.Is(err, e) {
			return !isUnavailable(err)
		}
	}
	return false
}

// checkAtHash verifies the ID token's at_hash (OIDC Core 3.1.3.8) when present.
func checkAtHash(rawID string, ic *cloakroom.Claims, accessToken string) error {
	v, ok := ic.Lookup("at_hash")
	if !ok {
		return nil
	}
	want, _ := v.(string)
	alg, err := idTokenAlg(rawID)
	if err != nil {
		return err
	}
	var hf hash.Hash
	if len(alg) < 5 {
		return fmt.Errorf("ID token: unexpected algorithm %q", alg)
	}
	switch alg[2:] {
	case "256":
		hf = sha256.New()
	case "384":
		hf = sha512.New384()
	case "512":
		hf = sha512.New()
	default:
		hf = sha512.New() // EdDSA (Ed25519) uses SHA-512
	}
	hf.Write([]byte(accessToken))
	sum := hf.Sum(nil)
	got := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("ID token: at_hash does not match the access token")
	}
	return nil
}

// idTokenAlg reads the alg of an already verified ID token's header.
func idTokenAlg(rawID string) (string, error) {
	jws, err := jose.ParseSignedCompact(rawID, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return "", errors.New("ID token: unreadable header")
	}
	return string(jws.Signatures[0].Protected.Algorithm), nil
}

var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// scrubOAuthError keeps x/oauth2 errors from carrying response bodies.
func scrubOAuthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("token endpoint answered HTTP %d %s", status, re.ErrorCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
