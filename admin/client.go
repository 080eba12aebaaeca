package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/internal/realmx"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of Config.
const (
	DefaultMaxAttempts      = 3
	DefaultRetryBaseDelay   = 200 * time.Millisecond
	DefaultRetryMaxDelay    = 5 * time.Second
	DefaultPageSize         = 100
	DefaultMaxResponseBytes = 16 << 20
	// DefaultAdminClientID is the client an admin user's password grant
	// uses: Keycloak's built-in public client for admin tools.
	DefaultAdminClientID = "admin-cli"
)

// tokenEarly renews a cached token this long before it expires (at most
// half its lifetime).
const tokenEarly = 30 * time.Second

// Config configures a Client. Either Client (a confidential client with a
// service account: client_credentials grant) or Username and Password (an
// admin user: password grant, with Client.ClientID defaulting to
// "admin-cli") authenticate it.
type Config struct {
	// Realm is the realm to manage. Its issuer gives the admin URL:
	// {base}/realms/{realm} becomes {base}/admin/realms/{realm}.
	Realm *cloakroom.Realm
	// AuthRealm is the realm the credentials belong to, e.g. the master
	// realm of an admin user managing another realm (default: Realm).
	AuthRealm *cloakroom.Realm
	// Client authenticates a service account; its service-account user
	// needs realm-management client roles (manage-users, view-users, ...).
	Client cloakroom.ClientCredentials
	// Username and Password authenticate an admin user instead.
	Username, Password string
	// HTTPClient sends admin and token requests (default: the Realm's).
	HTTPClient *http.Client
	// Logger receives debug logs of each request: method, path, status,
	// attempt. Never tokens, passwords, bodies or query strings.
	// Default: the Realm's logger.
	Logger *slog.Logger
	// MaxAttempts bounds the tries of an idempotent request (GET, PUT,
	// DELETE) on 5xx, 429 and connection errors (default 3; 1 disables
	// retries). POST is only retried when the connection failed before the
	// request was sent.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff with
	// full jitter between tries (defaults 200ms and 5s). A Retry-After
	// answer is honoured up to RetryMaxDelay.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// PageSize is AllUsers' page size (default 100).
	PageSize int
	// MaxResponseBytes bounds a response body (default 16 MiB).
	MaxResponseBytes int64
}

// String describes the configuration without its secrets.
func (c Config) String() string {
	who := "client " + c.Client.ClientID
	if c.Username != "" {
		who = "user " + c.Username
	}
	realm := ""
	if c.Realm != nil {
		realm = c.Realm.Issuer()
	}
	return fmt.Sprintf("admin.Config{realm %s, %s, password/secret redacted}", realm, who)
}

// Client calls one realm's Keycloak Admin REST API. It is safe for
// concurrent use.
type Client struct {
	cfg        Config
	base       string // {base}/admin/realms/{realm}
	basePath   string // its URL path, for error messages
	realmName  string
	httpClient *http.Client
	logger     *slog.Logger
	now        func() time.Time // the Realm's clock

	sem   chan struct{} // one token request at a time
	mu    sync.Mutex
	token string
	exp   time.Time
}

// New returns a Client. It does no I/O: the first call discovers the token
// endpoint and fetches a token.
func New(cfg Config) (*Client, error) {
	if cfg.Realm == nil {
		return nil, fmt.Errorf("%w: Realm is required", ErrInvalidConfig)
	}
	if cfg.AuthRealm == nil {
		cfg.AuthRealm = cfg.Realm
	}
	switch {
	case cfg.Username != "":
		if cfg.Password == "" {
			return nil, fmt.Errorf("%w: Username without Password", ErrInvalidConfig)
		}
		if cfg.Client.ClientID == "" {
			cfg.Client.ClientID = DefaultAdminClientID
		}
	case cfg.Client.ClientID == "" || cfg.Client.ClientSecret == "":
		return nil, fmt.Errorf("%w: set Client (client id and secret of a service account) or Username and Password", ErrInvalidConfig)
	}
	base, name, err := adminBase(cfg.Realm.Issuer())
	if err != nil {
		return nil, err
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	conn := realmx.Of(cfg.Realm)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = conn.Client
	}
	logger := cfg.Logger
	if logger == nil {
		logger = conn.Logger
	}
	u, _ := url.Parse(base)
	return &Client{cfg: cfg, base: base, basePath: u.Path, realmName: name, httpClient: hc, logger: logger,
		now: conn.Now, sem: make(chan struct{}, 1)}, nil
}

// adminBase derives {base}/admin/realms/{realm} from a Keycloak issuer
// {base}/realms/{realm}. This is the one place where cloakroom builds a
// URL by string surgery on the issuer: Keycloak publishes no admin
// endpoint in its discovery document, and the admin API lives beside the
// realm under the same base (which may carry the legacy "/auth" prefix or
// any --http-relative-path), so the base is the issuer minus its last
// "/realms/{realm}".
func adminBase(issuer string) (base, realm string, err error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%w: issuer %q is not an http(s) URL", ErrInvalidConfig, issuer)
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	i := strings.LastIndex(p, "/realms/")
	if i < 0 {
		return "", "", fmt.Errorf("%w: issuer %q is not a Keycloak realm URL ({base}/realms/{realm})", ErrInvalidConfig, issuer)
	}
	escaped := p[i+len("/realms/"):]
	if escaped == "" || strings.Contains(escaped, "/") {
		return "", "", fmt.Errorf("%w: issuer %q is not a Keycloak realm URL ({base}/realms/{realm})", ErrInvalidConfig, issuer)
	}
	realm, err = url.PathUnescape(escaped)
	if err != nil {
		return "", "", fmt.Errorf("%w: issuer %q: bad realm name", ErrInvalidConfig, issuer)
	}
	return u.Scheme + "://" + u.Host + p[:i] + "/admin/realms/" + escaped, realm, nil
}

// BaseURL returns the admin API base, {base}/admin/realms/{realm}.
func (c *Client) BaseURL() string { return c.base }

// RealmName returns the name of the managed realm.
func (c *Client) RealmName() string { return c.realmName }

// accessToken returns a cached token, fetching a new one when there is
// none, it expires soon, or stale (the token that just got a 401) is the
// cached one.
func (c *Client) accessToken(ctx context.Context, stale string) (string, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.sem }()
	now := c.now()
	c.mu.Lock()
	tok, exp := c.token, c.exp
	c.mu.Unlock()
	if tok != "" && tok != stale && now.Before(exp) {
		return tok, nil
	}
	t, err := c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	lifetime := t.Expiry.Sub(now)
	early := min(tokenEarly, lifetime/2)
	exp = t.Expiry.Add(-early)
	if t.Expiry.IsZero() {
		exp = now.Add(time.Minute)
	}
	c.mu.Lock()
	c.token, c.exp = t.AccessToken, exp
	c.mu.Unlock()
	return t.AccessToken, nil
}

// fetchToken runs the client_credentials or password grant.
func (c *Client) fetchToken(ctx context.Context) (*oauth2.Token, error) {
	meta, err := c.cfg.AuthRealm.Discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin: token endpoint: %w", err)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.httpClient)
	var t *oauth2.Token
	if c.cfg.Username != "" {
		oc := oauth2.Config{ClientID: c.cfg.Client.ClientID, ClientSecret: c.cfg.Client.ClientSecret,
			Endpoint: oauth2.Endpoint{TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
		t, err = oc.PasswordCredentialsToken(ctx, c.cfg.Username, c.cfg.Password)
	} else {
		cc := clientcredentials.Config{ClientID: c.cfg.Client.ClientID, ClientSecret: c.cfg.Client.ClientSecret,
			TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInHeader}
		t, err = cc.Token(ctx)
	}
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// The error code and description are Keycloak's; the body holds
			// no secret.
			desc := clean(re.ErrorCode)
			if re.ErrorDescription != "" {
				desc += ": " + clean(re.ErrorDescription)
			}
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			if status >= 500 {
				return nil, fmt.Errorf("%w: token request answered %d", ErrServer, status)
			}
			return nil, fmt.Errorf("%w: token request refused (%d %s) for %s", ErrUnauthorized, status, desc, c.who())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("admin: token request: %w", err)
	}
	if t.AccessToken == "" {
		return nil, fmt.Errorf("%w: token response without access_token", ErrInvalidResponse)
	}
	return t, nil
}

func (c *Client) who() string {
	if c.cfg.Username != "" {
		return fmt.Sprintf("user %q (client %q)", c.cfg.Username, c.cfg.Client.ClientID)
	}
	return fmt.Sprintf("client %q", c.cfg.Client.ClientID)
}

// call is one admin request.
type call struct {
	method string
	path   string     // below the admin base, e.g. "/users/123" (escaped)
	query  url.Values // may be nil
	body   any        // JSON-encoded when not nil
	role   string     // the role a 403 probably means
}

// result is a successful answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

// do runs a call with token handling and retries, returning a 2xx answer
// or an error.
func (c *Client) do(ctx context.Context, cl call) (*result, error) {
	var body []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return nil, fmt.Errorf("admin: encode %s %s body: %w", cl.method, cl.path, err)
		}
		body = b
	}
	idempotent := cl.method == http.MethodGet || cl.method == http.MethodPut || cl.method == http.MethodDelete || cl.method == http.MethodHead
	refreshed := false
	stale := ""
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tok, err := c.accessToken(ctx, stale)
		if err != nil {
			return nil, err
		}
		res, sent, err := c.send(ctx, cl, body, tok, attempt)
		var retryAfter time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !(idempotent || !sent) || attempt >= c.cfg.MaxAttempts {
				return nil, fmt.Errorf("admin: %s %s: %w", cl.method, c.basePath+cl.path, err)
			}
		case res.status == http.StatusUnauthorized && !refreshed:
			// The token may have been revoked or the realm keys rotated:
			// one more try with a fresh token.
			refreshed, stale = true, tok
			attempt--
			continue
		case res.status >= 200 && res.status < 300:
			return res, nil
		case (res.status >= 500 || res.status == http.StatusTooManyRequests) && idempotent && attempt < c.cfg.MaxAttempts:
			retryAfter = parseRetryAfter(res.header.Get("Retry-After"))
		default:
			e := DecodeError(res.status, cl.method, c.basePath+cl.path, res.body)
			if e.Status == http.StatusForbidden {
				e.Role = cl.role
			}
			return nil, e
		}
		delay := c.backoff(attempt)
		if retryAfter > 0 {
			delay = min(retryAfter, c.cfg.RetryMaxDelay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is exponential with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBaseDelay << min(attempt-1, 16)
	if d <= 0 || d > c.cfg.RetryMaxDelay {
		d = c.cfg.RetryMaxDelay
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func parseRetryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

// send makes one HTTP request. sent reports whether any of the request may
// have reached the server: false only when dialing failed or the
// connection broke before the request headers were written.
func (c *Client) send(ctx context.Context, cl call, body []byte, tok string, attempt int) (*result, bool, error) {
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// With net/http's transport the trace tells whether the request left:
	// a connection was obtained but the headers never written. Other
	// transports do not report, so their failures count as sent.
	var gotConn, wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn:      func(httptrace.GotConnInfo) { gotConn.Store(true) },
		WroteHeaders: func() { wrote.Store(true) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), cl.method, u, rd)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		var op *net.OpError
		dialFailed := errors.As(err, &op) && op.Op == "dial"
		sent := !dialFailed && !(gotConn.Load() && !wrote.Load())
		c.logger.DebugContext(ctx, "admin request failed", "method", cl.method, "path", c.basePath+cl.path,
			"attempt", attempt, "sent", sent, "duration", time.Since(start), "error", scrub(err))
		return nil, sent, scrub(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	c.logger.DebugContext(ctx, "admin request", "method", cl.method, "path", c.basePath+cl.path,
		"status", resp.StatusCode, "attempt", attempt, "duration", time.Since(start))
	if err != nil {
		return nil, true, fmt.Errorf("read response: %w", err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, true, fmt.Errorf("%w: response larger than %d bytes", ErrInvalidResponse, c.cfg.MaxResponseBytes)
	}
	return &result{status: resp.StatusCode, header: resp.Header, body: data}, true, nil
}

// scrub drops the URL (with its query) from transport errors.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// decode parses a JSON answer into dst, naming the request on failure.
func (c *Client) decode(cl call, res *result, dst any) error {
	if err := decodeJSON(res.body, dst); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrInvalidResponse, cl.method, c.basePath+cl.path, err)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value; trailing data is an error.
func decodeJSON(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return errors.New("empty body")
		case errors.As(err, &se):
			return fmt.Errorf("not JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("unexpected JSON: %s where %s was expected (field %q)", te.Value, te.Type, te.Field)
		}
		return fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// get runs a GET and decodes the answer.
func (c *Client) get(ctx context.Context, cl call, dst any) error {
	cl.method = http.MethodGet
	res, err := c.do(ctx, cl)
	if err != nil {
		return err
	}
	return c.decode(cl, res, dst)
}

// exec runs a call whose answer has no body worth reading.
func (c *Client) exec(ctx context.Context, cl call) error {
	_, err := c.do(ctx, cl)
	return err
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }
