package keycloaktest

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TokenKind selects which Keycloak token Realm.Token mints.
type TokenKind int

// Token kinds (protocol doc 4.6).
const (
	// AccessToken is a "typ":"Bearer" access token (the default).
	AccessToken TokenKind = iota
	// IDToken is a "typ":"ID" OpenID Connect ID token.
	IDToken
	// RefreshToken is an HS512 "typ":"Refresh" token signed with the realm's
	// HMAC key, usable with the refresh_token grant.
	RefreshToken
	// LogoutToken is a back-channel logout token: JOSE typ "logout+jwt",
	// the backchannel-logout event, no nonce.
	LogoutToken
)

// String names the kind.
func (k TokenKind) String() string {
	switch k {
	case AccessToken:
		return "access"
	case IDToken:
		return "id"
	case RefreshToken:
		return "refresh"
	case LogoutToken:
		return "logout"
	}
	return fmt.Sprintf("TokenKind(%d)", int(k))
}

// PublicKeyFormat selects how WithKeyConfusion encodes the realm's public
// key before using it as an HMAC secret.
type PublicKeyFormat int

// Public key encodings for WithKeyConfusion.
const (
	// PEM is the "-----BEGIN PUBLIC KEY-----" PKIX encoding.
	PEM PublicKeyFormat = iota + 1
	// DER is the raw PKIX (SubjectPublicKeyInfo) DER bytes.
	DER
)

// TokenOption adjusts a token minted by Realm.Token.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	kind        TokenKind
	expired     bool
	lifetime    time.Duration
	issuedAt    time.Time
	notBefore   time.Time
	audience    []string
	audienceSet bool
	noAudience  bool
	issuer      string
	azp         *string
	claims      map[string]any
	remove      []string
	headers     map[string]any
	unsigned    bool
	unknownKey  bool
	kid         string
	confusion   PublicKeyFormat
	alg         string
	nonce       string
	sid         string
	scope       *string
}

// WithKind selects the kind of token (default AccessToken).
func WithKind(k TokenKind) TokenOption { return func(o *tokenOptions) { o.kind = k } }

// WithExpired makes the token expired: exp one minute in the past, iat one
// lifetime before that.
func WithExpired() TokenOption { return func(o *tokenOptions) { o.expired = true } }

// WithLifetime sets exp to iat + d.
func WithLifetime(d time.Duration) TokenOption { return func(o *tokenOptions) { o.lifetime = d } }

// WithIssuedAt sets iat (and so exp, which follows the lifetime).
func WithIssuedAt(t time.Time) TokenOption { return func(o *tokenOptions) { o.issuedAt = t } }

// WithNotBefore adds an nbf claim, which Keycloak itself never sets.
func WithNotBefore(t time.Time) TokenOption { return func(o *tokenOptions) { o.notBefore = t } }

// WithAudience replaces aud (a string for one value, an array for several).
func WithAudience(aud ...string) TokenOption {
	return func(o *tokenOptions) { o.audience, o.audienceSet = aud, true }
}

// WithoutAudience removes aud.
func WithoutAudience() TokenOption { return func(o *tokenOptions) { o.noAudience = true } }

// WithIssuer replaces iss.
func WithIssuer(iss string) TokenOption { return func(o *tokenOptions) { o.issuer = iss } }

// WithAZP replaces azp ("" removes it).
func WithAZP(azp string) TokenOption { return func(o *tokenOptions) { o.azp = &azp } }

// WithClaim sets a claim, adding it or overriding the computed value.
func WithClaim(name string, value any) TokenOption {
	return func(o *tokenOptions) {
		if o.claims == nil {
			o.claims = map[string]any{}
		}
		o.claims[name] = value
	}
}

// WithoutClaim removes claims (applied after WithClaim).
func WithoutClaim(names ...string) TokenOption {
	return func(o *tokenOptions) { o.remove = append(o.remove, names...) }
}

// WithHeader sets a JOSE header member, e.g. WithHeader("typ", "at+jwt");
// a nil value removes the member (alg cannot be removed from signed tokens).
func WithHeader(name string, value any) TokenOption {
	return func(o *tokenOptions) {
		if o.headers == nil {
			o.headers = map[string]any{}
		}
		o.headers[name] = value
	}
}

// WithUnsigned produces an unsecured JWT: header alg "none" and an empty
// signature.
func WithUnsigned() TokenOption { return func(o *tokenOptions) { o.unsigned = true } }

// WithUnknownKey signs with a freshly generated key, never published, under
// its own kid.
func WithUnknownKey() TokenOption { return func(o *tokenOptions) { o.unknownKey = true } }

// WithKeyID signs with the realm's key but puts kid in the header, e.g. a
// kid the JWKS does not contain.
func WithKeyID(kid string) TokenOption { return func(o *tokenOptions) { o.kid = kid } }

// WithKeyConfusion signs with HS256 using the realm's active public key,
// encoded as PEM or DER, as the HMAC secret (the key-confusion attack); the
// header carries the active key's kid.
func WithKeyConfusion(f PublicKeyFormat) TokenOption {
	return func(o *tokenOptions) { o.confusion = f }
}

// WithAlgorithm signs with the realm's key for alg (RS256, ES256 or PS256).
// The realm gets and publishes such a key if it has none, like a Keycloak
// realm with an extra key provider; with WithUnknownKey the fresh key is of
// this algorithm.
func WithAlgorithm(alg string) TokenOption { return func(o *tokenOptions) { o.alg = alg } }

// WithNonce sets the nonce claim.
func WithNonce(nonce string) TokenOption { return func(o *tokenOptions) { o.nonce = nonce } }

// WithSID attaches the token to an existing session (see SessionIDs) instead
// of starting a new one; an unknown sid is just put in the sid claim.
func WithSID(sid string) TokenOption { return func(o *tokenOptions) { o.sid = sid } }

// WithScope is the requested scope parameter (default "openid"). Scopes the
// client does not allow make Token fail.
func WithScope(scope string) TokenOption { return func(o *tokenOptions) { o.scope = &scope } }

// Token mints a token for a user and client as the password grant would: it
// starts a session (unless WithSID names one) so the token is live for
// userinfo, introspection and refresh. For a client's service account pass
// "service-account-{clientId}" as username to get a client_credentials-shaped
// token. Options produce the variants a verifier must refuse.
func (r *Realm) Token(username, clientID string, opts ...TokenOption) (string, error) {
	var o tokenOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	modes := 0
	for _, on := range []bool{o.unsigned, o.unknownKey, o.confusion != 0} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return "", fmt.Errorf("%w: WithUnsigned, WithUnknownKey and WithKeyConfusion exclude each other", ErrInvalidTokenOption)
	}
	if o.confusion != 0 && o.confusion != PEM && o.confusion != DER {
		return "", fmt.Errorf("%w: public key format %d", ErrInvalidTokenOption, o.confusion)
	}
	if o.kind < AccessToken || o.kind > LogoutToken {
		return "", fmt.Errorf("%w: %v", ErrInvalidTokenOption, o.kind)
	}
	if o.lifetime < 0 {
		return "", fmt.Errorf("%w: negative lifetime", ErrInvalidTokenOption)
	}
	scope := "openid"
	if o.scope != nil {
		scope = *o.scope
	}

	claims, err := r.mintClaims(username, clientID, scope, &o)
	if err != nil {
		return "", err
	}
	r.applyOverrides(claims, &o)
	return r.signMinted(claims, &o)
}

// MustToken is Token for tests: it calls t.Fatal on error.
func (r *Realm) MustToken(t testing.TB, username, clientID string, opts ...TokenOption) string {
	t.Helper()
	tok, err := r.Token(username, clientID, opts...)
	if err != nil {
		t.Fatalf("keycloaktest: mint token for %q/%q: %v", username, clientID, err)
	}
	return tok
}

// mintClaims builds the claims of the requested kind, starting or joining a
// session under the realm lock.
func (r *Realm) mintClaims(username, clientID, scope string, o *tokenOptions) (map[string]any, error) {
	issuer := r.Issuer()
	r.mu.Lock()
	defer r.mu.Unlock()
	u, err := r.userLocked(username)
	if err != nil {
		return nil, err
	}
	c, ok := r.clients[clientID]
	if !ok {
		return nil, fmt.Errorf("%w: %q in realm %q", ErrUnknownClient, clientID, r.name)
	}
	serviceAccount := u.serviceAccountOf != ""
	scopes, ok := grantScopes(c, scope, serviceAccount, r.dynamicOrganizationScope)
	if !ok {
		return nil, fmt.Errorf("%w: scope %q not allowed for client %q", ErrInvalidTokenOption, scope, clientID)
	}
	now := r.now()
	g := grant{issuer: issuer, user: u, client: c, scopes: scopes, nonce: o.nonce, now: now, grantType: grantPassword}
	if serviceAccount {
		g.grantType = grantClientCredentials
	}
	if !serviceAccount || o.sid != "" {
		switch s := r.sessions[o.sid]; {
		case o.sid == "":
			g.session = r.newSessionLocked(u, clientID, now)
			// As a password-grant session: no browser login, no auth_time.
			g.session.authTime = 0
		case s != nil && s.userID == u.id:
			if s.clients[clientID] == nil {
				s.clients[clientID] = &clientSession{issued: map[string]uint64{}}
			}
			g.session = s
		default:
			// A sid for no session of this user: stateless, only the claim.
			g.session = &userSession{id: o.sid, started: now}
		}
	}
	if !o.issuedAt.IsZero() {
		g.now = o.issuedAt
	}
	var claims map[string]any
	switch o.kind {
	case IDToken:
		claims = r.idClaims(g, "")
	case RefreshToken:
		claims = r.refreshClaims(g, r.accessClaims(g)["aud"])
		if s := r.sessions[g.session.idOrEmpty()]; s != nil {
			r.registerRefreshLocked(s, clientID, claims["jti"].(string))
		}
	case LogoutToken:
		claims = r.logoutClaims(g)
		if o.sid != "" {
			claims["sid"] = o.sid
		}
	default:
		claims = r.accessClaims(g)
	}
	return claims, nil
}

func (s *userSession) idOrEmpty() string {
	if s == nil {
		return ""
	}
	return s.id
}

// registerRefreshLocked records an issued refresh token for rotation checks.
func (r *Realm) registerRefreshLocked(s *userSession, clientID, jti string) {
	cs := s.clients[clientID]
	if cs == nil {
		cs = &clientSession{issued: map[string]uint64{}}
		s.clients[clientID] = cs
	}
	r.seq++
	cs.issued[jti] = r.seq
}

// applyOverrides applies the claim-level options in a fixed order: times,
// then identity claims, then WithClaim and WithoutClaim.
func (r *Realm) applyOverrides(c map[string]any, o *tokenOptions) {
	iat, _ := c["iat"].(int64)
	exp, hasExp := c["exp"].(int64)
	life := time.Duration(exp-iat) * time.Second
	if o.lifetime > 0 {
		life = o.lifetime
		exp, hasExp = iat+int64(o.lifetime/time.Second), true
	}
	if o.expired {
		if now := r.now().Unix(); !hasExp || exp >= now {
			exp = now - 60
			iat = exp - int64(life/time.Second)
		}
		hasExp = true
	}
	c["iat"] = iat
	if hasExp {
		c["exp"] = exp
	}
	if !o.notBefore.IsZero() {
		c["nbf"] = o.notBefore.Unix()
	}
	if o.issuer != "" {
		c["iss"] = o.issuer
	}
	if o.audienceSet {
		setAudience(c, o.audience)
	}
	if o.noAudience {
		delete(c, "aud")
	}
	if o.azp != nil {
		if *o.azp == "" {
			delete(c, "azp")
		} else {
			c["azp"] = *o.azp
		}
	}
	if o.nonce != "" {
		c["nonce"] = o.nonce
	}
	if o.sid != "" {
		c["sid"] = o.sid
	}
	maps.Copy(c, o.claims)
	for _, name := range o.remove {
		delete(c, name)
	}
}

// signMinted signs minted claims according to the signing options.
func (r *Realm) signMinted(claims map[string]any, o *tokenOptions) (string, error) {
	typ := "JWT"
	if o.kind == LogoutToken {
		typ = "logout+jwt"
	}
	headers := map[string]any{"typ": typ}
	alg := o.alg
	if alg == "" {
		alg = r.signatureAlgorithm()
	}
	switch {
	case o.unsigned:
		headers["alg"] = "none"
		return unsignedJWT(claims, mergeHeaders(headers, o.headers))
	case o.unknownKey:
		k, err := newRealmKey(alg, "sig", r.name)
		if err != nil {
			return "", err
		}
		headers["kid"] = k.kid
		return signJWT(jose.SignatureAlgorithm(alg), k.priv, claims, mergeHeaders(headers, o.headers))
	case o.confusion != 0:
		k, err := r.keyFor(alg)
		if err != nil {
			return "", err
		}
		der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
		if err != nil {
			return "", fmt.Errorf("keycloaktest: encode public key: %w", err)
		}
		secret := der
		if o.confusion == PEM {
			secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
		headers["kid"] = k.kid
		return signJWT(jose.HS256, secret, claims, mergeHeaders(headers, o.headers))
	case o.kind == RefreshToken && o.alg == "":
		extra := o.headers
		if o.kid != "" {
			extra = mergeHeaders(map[string]any{"kid": o.kid}, o.headers)
		}
		return r.signRefresh(claims, extra)
	}
	k, err := r.keyFor(alg)
	if err != nil {
		return "", err
	}
	headers["kid"] = k.kid
	if o.kid != "" {
		headers["kid"] = o.kid
	}
	return signJWT(jose.SignatureAlgorithm(k.alg), k.priv, claims, mergeHeaders(headers, o.headers))
}

// signAccess signs access, ID and logout tokens with the realm's active key.
func (r *Realm) signAccess(claims map[string]any, typ string) (string, error) {
	k, err := r.keyFor(r.signatureAlgorithm())
	if err != nil {
		return "", err
	}
	return signJWT(jose.SignatureAlgorithm(k.alg), k.priv, claims, map[string]any{"typ": typ, "kid": k.kid})
}

// signRefresh signs a refresh token with the realm's HMAC key (HS512).
func (r *Realm) signRefresh(claims map[string]any, extra map[string]any) (string, error) {
	r.mu.RLock()
	hk := r.hmac
	r.mu.RUnlock()
	return signJWT(jose.HS512, hk.secret, claims, mergeHeaders(map[string]any{"typ": "JWT", "kid": hk.kid}, extra))
}

func mergeHeaders(base, extra map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range extra {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// signJWT signs claims with go-jose. Headers are passed as extra headers
// (raw keys, so go-jose adds no kid of its own) and may override alg.
func signJWT(alg jose.SignatureAlgorithm, key any, claims map[string]any, headers map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: encode claims: %w", err)
	}
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	for k, v := range headers {
		opts.ExtraHeaders[jose.HeaderKey(k)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: signer for %s: %w", alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: sign: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("keycloaktest: serialize: %w", err)
	}
	return out, nil
}

// unsignedJWT assembles an alg "none" JWT by hand: go-jose refuses to make
// one, and a verifier test needs it. This is the only hand-built JWS here.
func unsignedJWT(claims map[string]any, headers map[string]any) (string, error) {
	h, err := json.Marshal(headers)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: encode header: %w", err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: encode claims: %w", err)
	}
	enc := base64.RawURLEncoding
	return strings.Join([]string{enc.EncodeToString(h), enc.EncodeToString(p), ""}, "."), nil
}
