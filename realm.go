package cloakroom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom/internal/realmx"
)

// Defaults for outbound requests to the identity provider.
const (
	DefaultRequestTimeout  = 10 * time.Second
	DefaultRefetchInterval = 10 * time.Second
	DefaultKeysMaxAge      = 15 * time.Minute
	// maxResponseBytes bounds every document read from the provider, so
	// that a hostile or broken provider cannot exhaust memory.
	maxResponseBytes = 1 << 20
)

// Metadata is the part of the OpenID Provider discovery document that
// cloakroom uses. Raw holds the whole document.
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	CheckSessionIframe                string   `json:"check_session_iframe"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	// Older Keycloak releases name the introspection endpoint this way.
	TokenIntrospectionEndpoint string `json:"token_introspection_endpoint"`

	Raw map[string]any `json:"-"`
}

// Realm is one issuer (a Keycloak realm, or any OpenID Provider): its
// discovery document and its signing keys. It is safe for concurrent use;
// any number of Realms may live in one process.
//
// NewRealm does no I/O: discovery happens on first use and is retried on
// later calls until it succeeds, so a service can start while Keycloak is
// down. Call Discover to fail fast at start instead.
type Realm struct {
	issuer     string // as configured, without trailing slash
	client     *http.Client
	timeout    time.Duration
	logger     *slog.Logger
	now        func() time.Time
	refetch    time.Duration
	keysMaxAge time.Duration

	mu      sync.Mutex
	meta    *Metadata
	metaErr error
	metaAt  time.Time // time of the last failed attempt, for backoff
	// discovering is closed when an in-flight discovery ends.
	discovering chan struct{}

	keys *keySet
}

// RealmOption configures a Realm.
type RealmOption func(*Realm)

// WithHTTPClient sets the client used for discovery, JWKS and other calls
// to the provider. The default client honours HTTP_PROXY, HTTPS_PROXY and
// NO_PROXY and times out after DefaultRequestTimeout.
func WithHTTPClient(c *http.Client) RealmOption {
	return func(r *Realm) {
		if c != nil {
			r.client = c
		}
	}
}

// WithRequestTimeout bounds each request to the provider (default 10s).
func WithRequestTimeout(d time.Duration) RealmOption {
	return func(r *Realm) {
		if d > 0 {
			r.timeout = d
		}
	}
}

// WithRefetchInterval sets the minimum time between two JWKS fetches caused
// by tokens with an unknown kid (default 10s). Concurrent callers share one
// fetch.
func WithRefetchInterval(d time.Duration) RealmOption {
	return func(r *Realm) {
		if d > 0 {
			r.refetch = d
		}
	}
}

// WithKeysMaxAge sets how long a fetched key set is used before it is
// refreshed in the background, so that keys removed in the provider stop
// being trusted (default 15 minutes). A failed refresh keeps the cached keys.
func WithKeysMaxAge(d time.Duration) RealmOption {
	return func(r *Realm) {
		if d > 0 {
			r.keysMaxAge = d
		}
	}
}

// WithLogger sets the logger for warnings about the provider (default
// slog.Default()). Token and secret material is never logged.
func WithLogger(l *slog.Logger) RealmOption {
	return func(r *Realm) {
		if l != nil {
			r.logger = l
		}
	}
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) RealmOption {
	return func(r *Realm) {
		if now != nil {
			r.now = now
		}
	}
}

// NewRealm returns a Realm for the issuer URL, for example
// "https://sso.example.com/realms/demo" or the legacy
// "https://sso.example.com/auth/realms/demo". It validates the URL but does
// not contact the provider.
func NewRealm(issuer string, opts ...RealmOption) (*Realm, error) {
	u, err := url.Parse(issuer)
	switch {
	case issuer == "":
		return nil, errors.New("cloakroom: issuer URL is empty (want e.g. https://sso.example.com/realms/myrealm)")
	case err != nil:
		return nil, fmt.Errorf("cloakroom: issuer URL: %w", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("cloakroom: issuer URL %q: scheme must be https or http", issuer)
	case u.Host == "":
		return nil, fmt.Errorf("cloakroom: issuer URL %q has no host", issuer)
	case u.User != nil:
		return nil, fmt.Errorf("cloakroom: issuer URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("cloakroom: issuer URL %q must not have a query or fragment", issuer)
	}
	r := &Realm{
		issuer:     strings.TrimSuffix(issuer, "/"),
		timeout:    DefaultRequestTimeout,
		logger:     slog.Default(),
		now:        time.Now,
		refetch:    DefaultRefetchInterval,
		keysMaxAge: DefaultKeysMaxAge,
	}
	for _, o := range opts {
		o(r)
	}
	if r.client == nil {
		r.client = defaultHTTPClient(r.timeout)
	}
	r.keys = newKeySet(r)
	return r, nil
}

func defaultHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = timeout
	t.MaxIdleConnsPerHost = 16
	return &http.Client{
		Timeout: timeout,
		// The provider's endpoints must answer directly; a redirect is
		// followed only within the same host.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// Issuer returns the issuer URL the Realm trusts. Before discovery it is the
// configured URL without a trailing slash; after, the discovered issuer.
func (r *Realm) Issuer() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.meta != nil {
		return r.meta.Issuer
	}
	return r.issuer
}

// Name returns the Keycloak realm name taken from the issuer's last
// "/realms/{name}" path segment, or "" for a non-Keycloak issuer.
func (r *Realm) Name() string {
	i := strings.LastIndex(r.issuer, "/realms/")
	if i < 0 {
		return ""
	}
	name := r.issuer[i+len("/realms/"):]
	if strings.Contains(name, "/") {
		return ""
	}
	if n, err := url.PathUnescape(name); err == nil {
		return n
	}
	return name
}

// DiscoveryURL returns the URL of the OpenID discovery document.
func (r *Realm) DiscoveryURL() string {
	return r.issuer + "/.well-known/openid-configuration"
}

// The sub-packages (bearer, login, admin) reach the provider as the Realm
// does and check what kind of token a Verifier accepts through
// internal/realmx; users set these with RealmOptions and VerifierConfig
// and have no need to read them back.
func init() {
	realmx.Set(
		func(r *Realm) realmx.Conn {
			return realmx.Conn{
				Client: r.client, Timeout: r.timeout, Logger: r.logger, Now: r.now, KeyFetches: r.keys.fetches.Load, KeyEpoch: r.keys.epoch.Load,
				ClientRefusal: func(tokenURL, clientID string, status int, code, desc string) error {
					if pe := r.clientRefusal(tokenURL, clientID, status, code, desc); pe != nil {
						return pe
					}
					return nil
				},
			}
		},
		func(v *Verifier) realmx.Verifier[*Realm] {
			return realmx.Verifier[*Realm]{
				Realm: v.realm, AccessTokens: v.kind == AccessToken, Kind: v.kind.String(), Caches: v.cache != nil,
				Generic: func(ctx context.Context) (bool, error) {
					p, err := v.realm.resolveProfile(ctx, v.profile)
					return p == GenericOIDC, err
				},
			}
		},
	)
}

// discoveryBackoff bounds how often a failing discovery is retried, so that
// a down provider is not hammered by every request.
const discoveryBackoff = time.Second

// Discover fetches (once) and returns the provider's metadata. A failure is
// not cached beyond a short backoff: a later call tries again. Errors wrap
// ErrUnavailable and are *ProviderError.
func (r *Realm) Discover(ctx context.Context) (*Metadata, error) {
	for {
		r.mu.Lock()
		if r.meta != nil {
			m := r.meta
			r.mu.Unlock()
			return m, nil
		}
		if ch := r.discovering; ch != nil {
			r.mu.Unlock()
			select {
			case <-ch:
				r.mu.Lock()
				m, err := r.meta, r.metaErr
				r.mu.Unlock()
				if m != nil {
					return m, nil
				}
				return nil, err
			case <-ctx.Done():
				return nil, &ProviderError{Op: "discovery", URL: r.DiscoveryURL(), Err: ctx.Err()}
			}
		}
		if r.metaErr != nil && r.now().Sub(r.metaAt) < discoveryBackoff {
			err := r.metaErr
			r.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		r.discovering = ch
		r.mu.Unlock()

		m, err := r.fetchMetadata(ctx)

		r.mu.Lock()
		r.discovering = nil
		if err != nil {
			r.metaErr, r.metaAt = err, r.now()
		} else {
			r.meta, r.metaErr = m, nil
		}
		r.mu.Unlock()
		close(ch)
		if err != nil {
			if errors.Is(err, ErrMisconfigured) {
				// Not an outage: the caller gets the error, which names
				// the setting to fix, and reports it (login, the gateway).
				r.logger.Debug("cloakroom: OpenID discovery refused the configured issuer", "issuer", r.issuer, "error", err)
			} else {
				r.logger.Warn("cloakroom: OpenID discovery failed", "issuer", r.issuer, "error", err)
			}
			return nil, err
		}
		return m, nil
	}
}

func (r *Realm) fetchMetadata(ctx context.Context) (*Metadata, error) {
	u := r.DiscoveryURL()
	fail := func(status int, err error) (*Metadata, error) {
		return nil, &ProviderError{Op: "discovery", URL: u, StatusCode: status, Err: err}
	}
	// A wrong issuer is the application's misconfiguration, not an
	// outage: a 404 (Keycloak: "Realm does not exist"), an HTML page
	// where the document should be, or a document naming another issuer.
	misconfigured := func(status int, err error) (*Metadata, error) {
		return nil, &ProviderError{Op: "discovery", URL: u, StatusCode: status, Err: err, Setting: "issuer"}
	}
	body, status, err := r.get(ctx, u, "application/json")
	switch {
	case err != nil && status == http.StatusNotFound:
		return misconfigured(status, r.notFound(err))
	case errors.Is(err, errHTMLPage):
		return misconfigured(status, err)
	case err != nil:
		return fail(status, err)
	}
	m, err := parseMetadata(body)
	if err != nil {
		return fail(status, err)
	}
	// The configured issuer and the one the document names may differ by
	// a trailing slash (NewRealm drops it from the configured one); tokens
	// are then compared exactly with the document's.
	if m.Issuer != r.issuer && strings.TrimSuffix(m.Issuer, "/") != r.issuer {
		return misconfigured(status, fmt.Errorf("document names issuer %q, but the configured issuer is %q: configure the issuer exactly as the provider announces it (for Keycloak, set its hostname so that one URL is used everywhere)", m.Issuer, r.issuer))
	}
	return m, nil
}

// notFound explains a 404 at discovery.
func (r *Realm) notFound(err error) error {
	if strings.Contains(err.Error(), "Realm does not exist") {
		return fmt.Errorf("this Keycloak has no realm %q (it answers \"Realm does not exist\"; realm names are case-sensitive)", r.Name())
	}
	return fmt.Errorf("no OpenID discovery document at this address (%w): the issuer must be the realm's URL, e.g. https://sso.example.com/realms/myrealm (…/auth/realms/myrealm before Keycloak 17)", err)
}

// errHTMLPage: the provider answered with a web page where a JSON
// document was expected.
var errHTMLPage = errors.New("got an HTML page where JSON was expected (is the issuer URL right?)")

// parseMetadata decodes and checks a discovery document.
func parseMetadata(body []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("document is not valid JSON: %w", err)
	}
	if err := json.Unmarshal(body, &m.Raw); err != nil {
		return nil, fmt.Errorf("document is not a JSON object: %w", err)
	}
	if m.IntrospectionEndpoint == "" {
		m.IntrospectionEndpoint = m.TokenIntrospectionEndpoint
	}
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"issuer", m.Issuer}, {"jwks_uri", m.JWKSURI},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("document lacks required field(s) %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct{ name, val string }{
		{"jwks_uri", m.JWKSURI},
		{"authorization_endpoint", m.AuthorizationEndpoint},
		{"token_endpoint", m.TokenEndpoint},
		{"userinfo_endpoint", m.UserinfoEndpoint},
		{"end_session_endpoint", m.EndSessionEndpoint},
		{"introspection_endpoint", m.IntrospectionEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint},
	} {
		if f.val == "" {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("document field %s is not an absolute http(s) URL: %q", f.name, f.val)
		}
	}
	return &m, nil
}

// get performs a GET to the provider and returns the body of a 200 answer,
// bounded to maxResponseBytes.
func (r *Realm) get(ctx context.Context, u, accept string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", accept)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, scrubURLError(err)
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, maxResponseBytes)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("unexpected status %s%s", resp.Status, bodySnippet(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		// Some servers label JSON text/plain; an HTML page, though, means
		// the URL points at something else (a login page, a proxy error).
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "text/html" {
			return nil, resp.StatusCode, fmt.Errorf("unexpected content type %q: %w", mt, errHTMLPage)
		}
	}
	return body, resp.StatusCode, nil
}

// readLimited reads at most limit bytes and fails if there are more.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response larger than %d bytes", limit)
	}
	return b, nil
}

// bodySnippet returns a short, single-line excerpt of an error body for
// error messages (provider error bodies never carry our secrets).
func bodySnippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return ": " + s
}

// scrubURLError removes the URL from *url.Error: it is reported separately,
// and a user-supplied URL could carry credentials.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
