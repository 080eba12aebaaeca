package cloakroom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TokenKind says which kind of token a Verifier accepts. Each kind has its
// own rules, so that one kind can never pass for another.
type TokenKind int

const (
	// AccessToken: bearer tokens presented to APIs (Keycloak typ "Bearer").
	AccessToken TokenKind = iota
	// IDToken: the OIDC ID token a relying party receives at login (typ "ID").
	IDToken
	// LogoutToken: an OIDC Back-Channel Logout token.
	LogoutToken
)

func (k TokenKind) String() string {
	switch k {
	case AccessToken:
		return "access token"
	case IDToken:
		return "ID token"
	case LogoutToken:
		return "logout token"
	}
	return fmt.Sprintf("TokenKind(%d)", int(k))
}

// BackchannelLogoutEvent is the events member that marks a logout token.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Defaults for verification.
const (
	// MaxTokenSize bounds the token strings a Verifier looks at; Keycloak
	// tokens with many roles stay far below it.
	MaxTokenSize = 64 << 10
	// DefaultLogoutTokenMaxAge bounds the age of a logout token without exp.
	DefaultLogoutTokenMaxAge = 5 * time.Minute
)

// VerifierConfig configures a Verifier (Realm.NewVerifier). The zero
// value of every field is the secure default; only ClientID is required.
//
// It is the one verification setting of the library: bearer takes the
// Verifier made from it, login takes it as login.Config.Verifier (and
// makes its ID, access and logout token verifiers from it), and the
// gateway maps its algorithms, leeway, profile and roles_claim settings
// into it.
type VerifierConfig struct {
	// ClientID is this service's client id in Keycloak. It is the default
	// accepted audience, and the audience an ID or logout token must carry.
	ClientID string

	// Audiences replaces the accepted audiences of access tokens (default:
	// ClientID). For ID and logout tokens they are the extra audiences
	// trusted besides ClientID.
	Audiences []string

	// AuthorizedParties lists azp values (client ids) whose access tokens
	// are accepted even when aud does not name this service: Keycloak puts
	// only "account" in aud unless the issuing client has an Audience
	// mapper.
	AuthorizedParties []string

	// SkipAudienceCheck turns the audience check off for access tokens:
	// any client's token from this realm is then accepted. A warning is
	// logged when the Verifier is created.
	SkipAudienceCheck bool

	// Algorithms is the signature allow-list (default ["RS256"]). Allowed
	// values: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. "none"
	// and HMAC algorithms are always refused.
	Algorithms []string

	// Leeway tolerates clock skew on exp, nbf and iat (default 0).
	Leeway time.Duration

	// Kind is the kind of token accepted (default AccessToken).
	Kind TokenKind

	// Profile selects Keycloak rules (default), generic OIDC rules, or
	// detection from the provider's discovery document (AutoDetect).
	Profile Profile

	// RolesClaim is the dotted claim path roles are read from (default
	// DefaultRolesClaim, Keycloak's realm_access.roles), e.g. "groups" or
	// "roles" for other providers. The claim may be an array of strings,
	// one string, or an object whose member names are the roles. The
	// Claims a Verifier returns carry it: Claims.RealmRoles and
	// Claims.HasRealmRole read it, and so do the AnyRealmRole and
	// AllRealmRoles Requirements.
	RolesClaim string

	// CacheEntries bounds the verified-token cache (default 100,000
	// entries; negative disables it). Only access tokens are cached. An
	// entry never outlives the token's exp.
	CacheEntries int

	// CacheBytes bounds the cache's memory (default 64 MiB). An entry
	// counts its token, twice its payload and 768 bytes: about 3.4 kB for
	// a Keycloak access token of 1.3 kB, so the default holds about 19,000
	// tokens (with the entry default, this bound is the one reached first).
	// The cache is split in 16 shards with a sixteenth of each bound apiece.
	CacheBytes int

	// LogoutTokenMaxAge bounds the age (iat) of logout tokens that carry no
	// exp (default 5 minutes).
	LogoutTokenMaxAge time.Duration
}

// Verifier checks tokens of one kind issued by one Realm. It is safe for
// concurrent use.
type Verifier struct {
	realm      *Realm
	kind       TokenKind
	profile    Profile
	rolesClaim string
	clientID   string
	audiences  []string
	parties    []string
	skipAud    bool
	algs       []jose.SignatureAlgorithm
	leeway     time.Duration
	logoutAge  time.Duration
	cache      *tokenCache
	algsString string
}

var knownAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// NewVerifier returns a Verifier for tokens of cfg.Kind issued by r.
func (r *Realm) NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{
		realm:      r,
		kind:       cfg.Kind,
		profile:    cfg.Profile,
		rolesClaim: cfg.RolesClaim,
		clientID:   cfg.ClientID,
		parties:    slices.Clone(cfg.AuthorizedParties),
		skipAud:    cfg.SkipAudienceCheck,
		leeway:     cfg.Leeway,
		logoutAge:  cfg.LogoutTokenMaxAge,
	}
	switch cfg.Kind {
	case AccessToken, IDToken, LogoutToken:
	default:
		return nil, fmt.Errorf("cloakroom: VerifierConfig.Kind: unknown token kind %d", int(cfg.Kind))
	}
	switch cfg.Profile {
	case Keycloak, GenericOIDC, AutoDetect:
	default:
		return nil, fmt.Errorf("cloakroom: VerifierConfig.Profile: unknown profile %d", int(cfg.Profile))
	}
	if v.rolesClaim == "" {
		v.rolesClaim = DefaultRolesClaim
	} else if strings.HasPrefix(v.rolesClaim, ".") || strings.HasSuffix(v.rolesClaim, ".") || strings.TrimSpace(v.rolesClaim) != v.rolesClaim {
		return nil, fmt.Errorf("cloakroom: VerifierConfig.RolesClaim %q is not a dotted claim path such as realm_access.roles or groups", cfg.RolesClaim)
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("cloakroom: VerifierConfig.Leeway must not be negative")
	}
	if cfg.Leeway > time.Minute {
		r.logger.Warn("cloakroom: a leeway above one minute keeps expired tokens alive; fix the clocks (NTP) instead", "leeway", cfg.Leeway)
	}
	if v.logoutAge <= 0 {
		v.logoutAge = DefaultLogoutTokenMaxAge
	}
	if cfg.ClientID == "" && (cfg.Kind != AccessToken || (!cfg.SkipAudienceCheck && len(cfg.Audiences) == 0 && len(cfg.AuthorizedParties) == 0)) {
		return nil, fmt.Errorf("cloakroom: VerifierConfig.ClientID is required to verify %ss (it is the audience they must carry)", cfg.Kind)
	}
	if cfg.Kind == AccessToken && len(cfg.Audiences) > 0 {
		v.audiences = slices.Clone(cfg.Audiences)
	} else if cfg.ClientID != "" {
		v.audiences = append([]string{cfg.ClientID}, cfg.Audiences...)
	}
	if cfg.SkipAudienceCheck {
		if cfg.Kind != AccessToken {
			return nil, fmt.Errorf("cloakroom: VerifierConfig.SkipAudienceCheck applies only to access tokens; a %s must name this client", cfg.Kind)
		}
		r.logger.Warn("cloakroom: audience check is OFF: any access token of this realm, issued to any client, will be accepted", "issuer", r.issuer)
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"):
			return nil, errors.New(`cloakroom: VerifierConfig.Algorithms: "none" is never allowed`)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			return nil, fmt.Errorf("cloakroom: VerifierConfig.Algorithms: %q is never allowed: HMAC tokens cannot be verified with the provider's public keys", a)
		case !knownAlgorithms[a]:
			return nil, fmt.Errorf("cloakroom: VerifierConfig.Algorithms: unknown algorithm %q (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", a)
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	v.algsString = strings.Join(algs, ", ")
	if cfg.Kind == AccessToken && cfg.CacheEntries >= 0 {
		entries, bytes := cfg.CacheEntries, cfg.CacheBytes
		// Sized for one gateway's or application's sessions (login
		// re-verifies each session's access token on every request) with
		// room to spare: the tokens of 10,000 sessions count about 34 MiB.
		if entries == 0 {
			entries = 100_000
		}
		if bytes <= 0 {
			bytes = 64 << 20
		}
		v.cache = newTokenCache(entries, bytes)
	}
	return v, nil
}

// Verify checks the token's signature and claims and returns its claims.
// Errors wrap one of the package's sentinel errors (ErrExpired, ErrAudience,
// ...); ErrUnavailable means the provider could not be reached and the
// caller should fail closed. Error messages never contain the token.
//
// An access token verified before is answered from the cache without
// signature work until its exp.
//
// A DPoP-bound access token (RFC 9449: typ "DPoP" or a cnf.jkt claim,
// which Keycloak 26.4+ issues for token requests with a DPoP proof) is
// refused with ErrTokenType: it is only good together with a proof of
// possession of its key, which Verify cannot see. bearer checks the proof
// (bearer.WithDPoP); other callers that check it themselves use
// VerifyBound.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.VerifyBound(ctx, token)
	if err == nil && v.kind == AccessToken && c.IsDPoPBound() {
		return nil, fmt.Errorf("%w: DPoP-bound access token: it is only good with a DPoP proof of possession (bearer.WithDPoP checks it)", ErrTokenType)
	}
	return c, err
}

// VerifyBound is Verify that also accepts DPoP-bound access tokens
// (Claims.IsDPoPBound, Claims.ConfirmationJKT), for callers that check
// their proof of possession (RFC 9449 4.3) and refuse such a token sent
// without one (RFC 9449 7.2).
func (v *Verifier) VerifyBound(ctx context.Context, token string) (*Claims, error) {
	if v.cache != nil {
		if c := v.cache.get(token, v.realm.now().Unix(), v.realm.keys.epoch.Load()); c != nil {
			return c, nil
		}
	}
	epoch := v.realm.keys.epoch.Load()
	c, err := v.verify(ctx, token)
	if err != nil {
		if v.realm.logger.Enabled(ctx, slog.LevelDebug) {
			v.realm.logger.Debug("cloakroom: token refused", "kind", v.kind.String(), "reason", err.Error())
		}
		return nil, err
	}
	if v.cache != nil && c.c.Expiry != nil {
		v.cache.put(token, c, c.c.Expiry.sec, epoch, v.realm.now().Unix())
	}
	return c, nil
}

// verifySigned checks the token's form, header and signature and returns
// its claims, none of them checked yet.
func (v *Verifier) verifySigned(ctx context.Context, token string) (*Claims, error) {
	switch {
	case token == "":
		return nil, fmt.Errorf("%w: empty token", ErrMalformed)
	case len(token) > MaxTokenSize:
		return nil, fmt.Errorf("%w: token is %d bytes, more than the %d allowed", ErrMalformed, len(token), MaxTokenSize)
	case strings.Count(token, ".") != 2:
		if strings.Count(token, ".") == 4 {
			return nil, fmt.Errorf("%w: token is encrypted (JWE); only signed tokens are supported", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: not a compact JWS (want three dot-separated parts)", ErrMalformed)
	}
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) {
			return nil, v.algError(string(ua.Got))
		}
		return nil, fmt.Errorf("%w: %s", ErrMalformed, trimJoseErr(err))
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want exactly one signature", ErrMalformed)
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: token header has no kid", ErrUnknownKey)
	}
	if err := v.checkHeaderType(h); err != nil {
		return nil, err
	}
	key, err := v.realm.keys.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if err := key.fits(h.Algorithm); err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key.key)
	if err != nil {
		return nil, fmt.Errorf("%w: does not verify with key %q", ErrSignature, h.KeyID)
	}
	c, err := ParseClaims(payload)
	if err != nil {
		return nil, err
	}
	c.rolesClaim = v.rolesClaim
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verifySigned(ctx, token)
	if err != nil {
		return nil, err
	}
	profile, err := v.realm.resolveProfile(ctx, v.profile)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(c, profile); err != nil {
		return nil, err
	}
	return c, nil
}

func (v *Verifier) algError(got string) error {
	switch {
	case got == "" || strings.EqualFold(got, "none"):
		return fmt.Errorf("%w: unsigned token (alg %q) is never accepted", ErrAlgorithm, got)
	case strings.HasPrefix(strings.ToUpper(got), "HS"):
		return fmt.Errorf("%w: %s is an HMAC algorithm and never accepted (allowed: %s)", ErrAlgorithm, got, v.algsString)
	}
	return fmt.Errorf("%w: %s (allowed: %s)", ErrAlgorithm, got, v.algsString)
}

// checkHeaderType enforces the JOSE typ header where one is set.
func (v *Verifier) checkHeaderType(h jose.Header) error {
	raw, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return nil
	}
	typ, _ := raw.(string)
	t := strings.ToLower(strings.TrimPrefix(strings.ToLower(typ), "application/"))
	var allowed []string
	switch v.kind {
	case AccessToken:
		allowed = []string{"jwt", "at+jwt"}
	case IDToken:
		allowed = []string{"jwt"}
	case LogoutToken:
		allowed = []string{"jwt", "logout+jwt"}
	}
	if !slices.Contains(allowed, t) {
		return fmt.Errorf("%w: JOSE header typ %q is not allowed for an %s", ErrTokenType, typ, v.kind)
	}
	return nil
}

// typClaimKind names the token kind a Keycloak typ claim stands for.
func typClaimKind(typ string) string {
	switch strings.ToLower(typ) {
	case "bearer":
		return "access token"
	case "id":
		return "ID token"
	case "refresh":
		return "refresh token"
	case "offline":
		return "offline (refresh) token"
	case "logout":
		return "logout token"
	case "dpop":
		return "DPoP-bound access token"
	}
	return fmt.Sprintf("token of typ %q", typ)
}

func (v *Verifier) checkClaims(c *Claims, profile Profile) error {
	cs := &c.c
	// Type first: a token of another kind is refused whatever else it says.
	if err := v.checkType(c, profile); err != nil {
		return err
	}
	if cs.Issuer != v.realm.Issuer() {
		if cs.Issuer == "" {
			return fmt.Errorf("%w: iss", ErrMissingClaim)
		}
		return fmt.Errorf("%w: token was issued by %q, expected %q", ErrIssuer, cs.Issuer, v.realm.Issuer())
	}
	if err := v.checkAudience(c); err != nil {
		return err
	}
	if err := v.checkTimes(c); err != nil {
		return err
	}
	switch v.kind {
	case AccessToken, IDToken:
		if cs.Subject == "" {
			return fmt.Errorf("%w: sub (the user's id)", ErrMissingClaim)
		}
	case LogoutToken:
		if cs.Subject == "" && cs.SessionID == "" {
			return fmt.Errorf("%w: a logout token needs sub or sid", ErrMissingClaim)
		}
		if cs.ID == "" {
			return fmt.Errorf("%w: jti (needed for replay protection)", ErrMissingClaim)
		}
	}
	return nil
}

func (v *Verifier) checkType(c *Claims, profile Profile) error {
	cs := &c.c
	typ := cs.Type
	switch v.kind {
	case AccessToken:
		if cs.Events != nil {
			return fmt.Errorf("%w: a logout token cannot be used as an access token", ErrTokenType)
		}
		if profile == GenericOIDC {
			// Without Keycloak's typ claim, an ID token is told apart by
			// the claims only ID tokens carry (OIDC Core 2, 3.1.3.6,
			// 3.3.2.11; FAPI's s_hash; Cognito's token_use).
			switch {
			case cs.Nonce != nil:
				return fmt.Errorf("%w: the token carries a nonce, so it is an ID token, not an access token", ErrTokenType)
			case cs.AtHash != nil || cs.CHash != nil || cs.SHash != nil:
				return fmt.Errorf("%w: the token carries at_hash, c_hash or s_hash, so it is an ID token, not an access token", ErrTokenType)
			case cs.TokenUse != "" && cs.TokenUse != "access":
				return fmt.Errorf("%w: token_use %q is not an access token", ErrTokenType, cs.TokenUse)
			}
		}
		// A DPoP-bound access token (Keycloak 26.4+: typ "DPoP" and
		// cnf.jkt) is an access token too; its proof of possession is the
		// caller's to check (bearer does, and refuses one sent as a plain
		// bearer token: Claims.IsDPoPBound).
		if strings.EqualFold(typ, "bearer") || strings.EqualFold(typ, "dpop") || (typ == "" && profile == GenericOIDC) {
			return nil
		}
		if typ == "" {
			return fmt.Errorf("%w: no typ claim; Keycloak access tokens carry typ \"Bearer\" (use the GenericOIDC profile for other providers)", ErrTokenType)
		}
	case IDToken:
		if cs.Events != nil {
			return fmt.Errorf("%w: a logout token cannot be used as an ID token", ErrTokenType)
		}
		if profile == GenericOIDC && cs.TokenUse != "" && cs.TokenUse != "id" {
			return fmt.Errorf("%w: token_use %q is not an ID token", ErrTokenType, cs.TokenUse)
		}
		if strings.EqualFold(typ, "id") || (typ == "" && profile == GenericOIDC) {
			return nil
		}
		if typ == "" {
			return fmt.Errorf("%w: no typ claim; Keycloak ID tokens carry typ \"ID\" (use the GenericOIDC profile for other providers)", ErrTokenType)
		}
	case LogoutToken:
		if typ != "" && !strings.EqualFold(typ, "logout") {
			break
		}
		ev, ok := cs.Events[BackchannelLogoutEvent]
		switch {
		case cs.Events == nil:
			return fmt.Errorf("%w: events (a logout token must carry the back-channel logout event)", ErrMissingClaim)
		case !ok:
			return fmt.Errorf("%w: events has no %q member", ErrInvalidClaim, BackchannelLogoutEvent)
		case len(ev) == 0 || ev[0] != '{':
			return fmt.Errorf("%w: events member %q must be a JSON object", ErrInvalidClaim, BackchannelLogoutEvent)
		case cs.Nonce != nil:
			return fmt.Errorf("%w: a logout token must not carry a nonce", ErrInvalidClaim)
		}
		return nil
	}
	return fmt.Errorf("%w: a %s cannot be used as an %s", ErrTokenType, typClaimKind(typ), v.kind)
}

func (v *Verifier) checkAudience(c *Claims) error {
	cs := &c.c
	switch v.kind {
	case AccessToken:
		if v.skipAud {
			return nil
		}
		for _, a := range cs.Audience {
			if slices.Contains(v.audiences, a) {
				return nil
			}
		}
		// azp names the client the token was issued to; RFC 9068 access
		// tokens name it in client_id instead.
		party := cs.AuthorizedParty
		if party == "" {
			party = cs.ClientID
		}
		if party != "" && slices.Contains(v.parties, party) {
			return nil
		}
		want := strings.Join(v.audiences, `" or "`)
		if cs.AuthorizedParty == "" {
			return fmt.Errorf("%w: aud %q does not include %q and the token names no azp; add an Audience mapper for %q to the issuing client in Keycloak", ErrAudience, []string(cs.Audience), want, want)
		}
		return fmt.Errorf("%w: aud %q does not include %q, and azp %q is not an allowed authorized party; fix: add an Audience mapper for %q to client %q in Keycloak, or accept that client with VerifierConfig.AuthorizedParties", ErrAudience, []string(cs.Audience), want, cs.AuthorizedParty, want, cs.AuthorizedParty)
	default:
		if !slices.Contains(cs.Audience, v.clientID) {
			return fmt.Errorf("%w: aud %q does not include this client %q", ErrAudience, []string(cs.Audience), v.clientID)
		}
		for _, a := range cs.Audience {
			if !slices.Contains(v.audiences, a) {
				return fmt.Errorf("%w: aud includes %q, an audience this client does not trust", ErrAudience, a)
			}
		}
		if len(cs.Audience) > 1 && cs.AuthorizedParty == "" {
			return fmt.Errorf("%w: azp is required when there are several audiences", ErrMissingClaim)
		}
		if cs.AuthorizedParty != "" && cs.AuthorizedParty != v.clientID && v.kind == IDToken {
			return fmt.Errorf("%w: azp %q is not this client %q", ErrAudience, cs.AuthorizedParty, v.clientID)
		}
	}
	return nil
}

func (v *Verifier) checkTimes(c *Claims) error {
	cs := &c.c
	now := v.realm.now()
	leeway := v.leeway
	if cs.IssuedAt == nil {
		return fmt.Errorf("%w: iat", ErrMissingClaim)
	}
	if iat := cs.IssuedAt.time(); iat.After(now.Add(leeway)) {
		return fmt.Errorf("%w: issued in the future (iat %s, now %s)", ErrNotYetValid, iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if cs.NotBefore != nil {
		if nbf := cs.NotBefore.time(); now.Add(leeway).Before(nbf) {
			return fmt.Errorf("%w: not valid before %s", ErrNotYetValid, nbf.UTC().Format(time.RFC3339))
		}
	}
	if cs.Expiry == nil {
		if v.kind == LogoutToken {
			if iat := cs.IssuedAt.time(); now.Sub(iat) > v.logoutAge+leeway {
				return fmt.Errorf("%w: logout token without exp issued at %s is older than %s", ErrExpired, iat.UTC().Format(time.RFC3339), v.logoutAge)
			}
			return nil
		}
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if exp := cs.Expiry.time(); !now.Before(exp.Add(leeway)) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return nil
}
