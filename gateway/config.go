package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/internal/canonical"
	"github.com/cloakroom/cloakroom/internal/storeurl"
	"gopkg.in/yaml.v3"
)

// Config is the gateway's configuration: a YAML file, CLOAKROOM_*
// environment variables and command-line flags, in increasing precedence.
// Field names are the YAML keys.
type Config struct {
	Listen       string `yaml:"listen"`
	PublicURL    string `yaml:"public_url"`
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile reads the secret from a file (e.g. a mounted secret).
	ClientSecretFile string `yaml:"client_secret_file"`

	Session SessionConfig `yaml:"session"`
	TLS     TLSConfig     `yaml:"tls"`

	// TrustedProxies lists the addresses or CIDRs of reverse proxies in
	// front of the gateway whose X-Forwarded-For/-Proto/-Host are honoured.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AllowedRedirectOrigins are other origins return_to may point to.
	AllowedRedirectOrigins []string `yaml:"allowed_redirect_origins"`

	// ForwardAuth turns on the forward-auth endpoints: GET
	// /_cloakroom/auth answers the authorization subrequests of a proxy in
	// front (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth)
	// and /_cloakroom/start?rd=URL starts a login that returns to URL.
	// Routes may then have no upstream: they only authorize.
	ForwardAuth bool `yaml:"forward_auth"`
	// CookieDomain is the session cookie's Domain (e.g. ".example.com"),
	// so that the apps on several hosts under it share one login. Every
	// host under the domain then receives the cookie.
	CookieDomain string `yaml:"cookie_domain"`

	Headers HeaderNames `yaml:"headers"`
	// ForwardAccessToken passes the user's access token to upstreams in
	// Headers.AccessToken.
	ForwardAccessToken bool `yaml:"forward_access_token"`

	// Scopes are the scopes browser logins request (default openid,
	// profile, email; openid is required), e.g. add "organization:*" for
	// routes with organizations.
	Scopes []string `yaml:"scopes"`
	// LightweightTokens completes Keycloak lightweight access tokens
	// (client setting "Always use lightweight access token": no sub, no
	// roles in the token) with token introspection as the gateway's
	// client, for bearer tokens and browser sessions alike
	// (bearer.WithLightweightTokens, login.Config.LightweightTokens). The
	// gateway's client must be in the tokens' introspection audience.
	LightweightTokens bool `yaml:"lightweight_tokens"`

	// Audiences accepted on API routes besides ClientID, and authorized
	// parties (azp) accepted on API routes (see cloakroom.VerifierConfig).
	Audiences         []string      `yaml:"audiences"`
	AuthorizedParties []string      `yaml:"authorized_parties"`
	Algorithms        []string      `yaml:"algorithms"`
	Leeway            time.Duration `yaml:"leeway"`
	ACRLevels         []string      `yaml:"acr_levels"`

	// Profile is "keycloak" (default), "generic" (any OpenID Provider) or
	// "auto" (from the provider's discovery document); see
	// cloakroom.Profile.
	Profile string `yaml:"profile"`
	// RolesClaim is the claim realm_roles rules and the roles header read
	// (default realm_access.roles), e.g. "groups" or "roles".
	RolesClaim string `yaml:"roles_claim"`

	Routes []Route `yaml:"routes"`

	Log LogConfig `yaml:"log"`

	// ShutdownTimeout bounds a graceful shutdown (default 15 s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// BodyReadTimeout and BodyMinRate bound how long a client may take to
	// send a request body on a proxied route: BodyReadTimeout (default
	// 30 s) plus one second for every BodyMinRate bytes received (default
	// 1024 bytes per second; a large upload is fine as long as it moves).
	// A body that is too slow is cut and answered 408.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	BodyMinRate     int64         `yaml:"body_min_rate"`
}

// SessionConfig configures browser sessions.
type SessionConfig struct {
	// Store is "sqlite:PATH" (default sqlite:cloakroom-sessions.db),
	// "redis://…", "rediss://…", "redis+sentinel://…", "redis+cluster://…",
	// "postgres://…" or "memory:".
	Store string `yaml:"store"`
	// EncryptionKeys are base64 AES-256 keys, newest first (rotation).
	EncryptionKeys []string      `yaml:"encryption_keys"`
	CookieName     string        `yaml:"cookie_name"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	MaxLifetime    time.Duration `yaml:"max_lifetime"`
	// CacheTTL bounds the instance-local session cache: how long a
	// session is served from memory without asking the store again
	// (default 1 minute with a store that notifies deletions — Redis,
	// PostgreSQL, SQLite — else 5 s; 0 disables it).
	CacheTTL *time.Duration `yaml:"cache_ttl"`
	// LogoutJournal is the file where this instance records logouts the
	// shared store could not take (see session.JournaledStore), or "off".
	// Default with a shared store (Redis, PostgreSQL):
	// cloakroom-logouts-LISTEN.journal in the working directory, LISTEN
	// being the listen address with ':' as '-'; unused with SQLite and
	// memory unless set. Keep it on storage that survives a restart.
	LogoutJournal string `yaml:"logout_journal"`
	// RecoveryHold is how long, after the shared store was unreachable,
	// the instance keeps answering 503 to session requests once the store
	// answers again, so that logouts journaled by any instance are applied
	// before a session is served (default 3s; 0s: none).
	RecoveryHold *time.Duration `yaml:"recovery_hold"`
}

// JournalOff turns the logout journal off (session.logout_journal).
const JournalOff = "off"

// journalPath returns the logout journal's file, or "" when there is none.
func (c *Config) journalPath() string {
	if c.Session.LogoutJournal == JournalOff {
		return ""
	}
	return c.Session.LogoutJournal
}

// TLSConfig turns on HTTPS.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HeaderNames are the headers that carry the identity to upstreams. Any
// copy of them sent by the client is removed, whatever the route.
type HeaderNames struct {
	User        string `yaml:"user"`
	Email       string `yaml:"email"`
	Username    string `yaml:"username"`
	Roles       string `yaml:"roles"`
	Groups      string `yaml:"groups"`
	AccessToken string `yaml:"access_token"`
}

// LogConfig configures the gateway's logs.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
	// AccessLog writes one line per request (default true).
	AccessLog *bool `yaml:"access_log"`
}

// Route sends requests matching Host and Path to Upstream under a policy.
type Route struct {
	Name     string `yaml:"name"`
	Host     string `yaml:"host"` // exact host, "*.example.com", or empty for any
	Path     string `yaml:"path"` // prefix, default "/"
	Upstream string `yaml:"upstream"`
	// StripPrefix removes Path from the request path before proxying.
	StripPrefix bool `yaml:"strip_prefix"`
	// Mode is "browser" (login sessions; the default), "api" (bearer
	// tokens) or "both".
	Mode string `yaml:"mode"`
	// Public routes need no login; identity headers are still set when the
	// request carries one.
	Public bool `yaml:"public"`
	// Methods, if set, are the only HTTP methods allowed (others get 405).
	Methods []string `yaml:"methods"`
	// RealmRoles and ClientRoles compile to cloakroom.AnyRealmRole,
	// AllRealmRoles, AnyClientRole and AllClientRoles, checked alike on
	// sessions and bearer tokens.
	RealmRoles  RoleRule    `yaml:"realm_roles"`
	ClientRoles ClientRoles `yaml:"client_roles"`
	// ACR demands an authentication level (cloakroom.MinACR with
	// ACRLevels): a session below it is sent to Keycloak for a step-up, a
	// bearer token on a "both" route is refused (403).
	ACR string `yaml:"acr"`
	// Introspect checks bearer tokens with Keycloak on every request (API
	// routes), so revoked tokens are refused before they expire.
	Introspect bool `yaml:"introspect"`
	// DPoP is the policy for DPoP-bound tokens (RFC 9449) on api and both
	// routes: "accept" (the default: bearer tokens, and DPoP-bound tokens
	// with a valid proof; a DPoP-bound token sent as a bearer token is
	// refused), "require" (DPoP only) or "off" (bearer tokens only).
	DPoP string `yaml:"dpop"`
	// ExchangeAudience, when set, is the Keycloak client id of the
	// upstream: the gateway exchanges the caller's access token for one
	// meant for that audience only (Keycloak's standard token exchange,
	// RFC 8693; the gateway's client needs "Standard token exchange" on)
	// and sends the upstream that token, as "Authorization: Bearer", and
	// in the access-token header when forward_access_token is on. The
	// caller's own token never reaches the upstream: a refused exchange is
	// answered 502, Keycloak down 503 (see exchange.go).
	ExchangeAudience string `yaml:"exchange_audience"`
	// Organizations requires membership of at least one of these Keycloak
	// 26 organizations (aliases; cloakroom.MemberOf), read from the
	// token's organization claim. Logins must then request the
	// organization scope ("organization", or "organization:*" for users in
	// several organizations; see scopes).
	Organizations []string `yaml:"organizations"`
}

// RoleRule requires any and/or all of a list of roles.
type RoleRule struct {
	Any []string `yaml:"any"`
	All []string `yaml:"all"`
}

// ClientRoles is a RoleRule on one client's roles.
type ClientRoles struct {
	Client   string `yaml:"client"`
	RoleRule `yaml:",inline"`
}

// Defaults.
const (
	DefaultListen   = "127.0.0.1:4180"
	DefaultStore    = "sqlite:cloakroom-sessions.db"
	DefaultPrefix   = "/_cloakroom"
	defaultShutdown = 15 * time.Second

	// DefaultBodyReadTimeout and DefaultBodyMinRate are the defaults of
	// Config.BodyReadTimeout and Config.BodyMinRate.
	DefaultBodyReadTimeout = 30 * time.Second
	DefaultBodyMinRate     = 1024
)

// DefaultHeaders are the identity header names oauth2-proxy users know.
var DefaultHeaders = HeaderNames{
	User:        "X-Forwarded-User",
	Email:       "X-Forwarded-Email",
	Username:    "X-Forwarded-Preferred-Username",
	Roles:       "X-Forwarded-Roles",
	Groups:      "X-Forwarded-Groups",
	AccessToken: "X-Forwarded-Access-Token",
}

// LoadFile reads a YAML configuration file. Unknown keys are errors, so a
// typo cannot silently turn a protection off. Errors name the file, the
// line and the setting, suggest the key meant for a misspelt one, and say
// which kind of value is expected; every problem of the file is listed.
func LoadFile(path string) (Config, error) {
	var cfg Config
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config file: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return cfg, fileError(path, syntaxProblems(err, data))
	}
	if len(root.Content) == 0 {
		return cfg, nil // an empty file
	}
	var ps []fileProblem
	checkKeys(root.Content[0], reflect.TypeOf(cfg), "", &ps)
	if err := root.Content[0].Decode(&cfg); err != nil {
		ps = append(ps, typeProblems(err, data)...)
	}
	if len(ps) > 0 {
		return cfg, fileError(path, ps)
	}
	return cfg, nil
}

// fileProblem is one problem of a configuration file.
type fileProblem struct {
	line int
	msg  string // "field: what is wrong"
}

func fileError(path string, ps []fileProblem) error {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].line < ps[j].line })
	at := func(p fileProblem) string {
		if p.line > 0 {
			return fmt.Sprintf("%s:%d: %s", path, p.line, p.msg)
		}
		return path + ": " + p.msg
	}
	if len(ps) == 1 {
		return errors.New("config file " + at(ps[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config file %s: %d problems:", path, len(ps))
	for _, p := range ps {
		b.WriteString("\n  " + at(p))
	}
	return errors.New(b.String())
}

var yamlLineMsg = regexp.MustCompile(`^line (\d+): (.*)$`)

// syntaxHints explain the YAML parser's messages that puzzle most.
var syntaxHints = map[string]string{
	"found character that cannot start any token":    " (a tab? indent with spaces)",
	"mapping values are not allowed in this context": " (a missing space after a colon, or a value that needs quotes?)",
	"did not find expected key":                      " (inconsistent indentation?)",
	"could not find expected ':'":                    " (a key without a colon, or a value that needs quotes?)",
}

// syntaxProblems rewrites the YAML parser's error (the file is not YAML).
func syntaxProblems(err error, data []byte) []fileProblem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var ps []fileProblem
	for _, l := range strings.Split(strings.TrimPrefix(msg, "unmarshal errors:\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		// yaml names no line when the problem is on the first one.
		p := fileProblem{line: 1, msg: l}
		if m := yamlLineMsg.FindStringSubmatch(l); m != nil {
			p.line, _ = strconv.Atoi(m[1])
			p.msg = m[2]
		}
		p.msg = "not valid YAML: " + hideSecretValues(p.msg, data) + syntaxHints[p.msg]
		ps = append(ps, p)
	}
	return ps
}

var dupKey = regexp.MustCompile(`^mapping key ".*" already defined at line (\d+)$`)

var typeMsg = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// typeProblems rewrites yaml's "cannot unmarshal !!str `x` into
// time.Duration" into the setting and the kind of value it takes.
func typeProblems(err error, data []byte) []fileProblem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []fileProblem{{msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var ps []fileProblem
	for _, e := range te.Errors {
		e = hideSecretValues(e, data)
		p := fileProblem{msg: e}
		if m := yamlLineMsg.FindStringSubmatch(e); m != nil {
			p.line, _ = strconv.Atoi(m[1])
			p.msg = m[2]
		}
		field := fieldAtLine(data, p.line)
		if m := typeMsg.FindStringSubmatch(p.msg); m != nil {
			got := map[string]string{"seq": "a list", "map": "a map", "null": "empty"}[m[1]]
			if got == "" {
				got = strconv.Quote(strings.TrimSuffix(m[2], "..."))
				if m[2] == "" { // hidden: a secret
					got = "this value"
				}
			}
			p.msg = got + " is not " + wantedKind(m[3])
		} else if m := dupKey.FindStringSubmatch(p.msg); m != nil {
			p.msg = "given twice (also on line " + m[1] + "): keep one"
		}
		if field != "" {
			p.msg = field + ": " + p.msg
		}
		ps = append(ps, p)
	}
	return ps
}

// wantedKind describes, in the file's terms, the Go type yaml names.
func wantedKind(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "time.Duration":
		return "a duration with a unit, e.g. 30s, 45m or 10h (write 0 as 0s)"
	case "[]string":
		return "a list, e.g. [a, b] or one \"- item\" per line"
	case "string":
		return "a single value (quote it if it contains \": \" or starts with a special character)"
	case "bool":
		return "true or false"
	case "int", "int64":
		return "a whole number"
	case "[]gateway.Route":
		return "a list of routes (\"- path: /…\" entries)"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	return "a map of settings (key: value lines)"
}

// checkKeys reports the keys of a mapping node that t (a struct, read
// through its yaml tags) does not have, suggesting the key meant.
func checkKeys(n *yaml.Node, t reflect.Type, path string, ps *[]fileProblem) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				*ps = append(*ps, fileProblem{line: k.Line, msg: p + ": unknown key" + suggestKey(k.Value, fields, path)})
				continue
			}
			if p == "client_secret" || p == "session.encryption_keys" {
				continue // type errors there are reported without the value
			}
			checkKeys(v, ft, p, ps)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
		}
	}
}

// yamlFields maps the yaml keys of a struct to their types (inline
// structs included).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// sectionKeys lists, for "did you mean", where each key of a section
// lives ("store" → "session.store").
var sectionKeys = func() map[string][]string {
	out := map[string][]string{}
	top := reflect.TypeOf(Config{})
	for name, t := range yamlFields(top) {
		out[name] = append(out[name], name)
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Duration(0)) {
			continue
		}
		prefix := name + "."
		if name == "routes" {
			prefix = "routes[]."
		}
		for sub := range yamlFields(t) {
			out[sub] = append(out[sub], prefix+sub)
		}
	}
	return out
}()

// suggestKey proposes the key meant by an unknown one: the closest key of
// the same map (a typo: realm_role → realm_roles, client-id →
// client_id), or the section where that key belongs (store → session.store).
func suggestKey(key string, fields map[string]reflect.Type, path string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	best, bestD := "", 1<<30
	for name := range fields {
		d := editDistance(norm(key), name)
		if d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if best != "" && (bestD <= 2 || bestD <= len(key)/3) {
		return "; did you mean " + best + "?"
	}
	for _, where := range sectionKeys[norm(key)] {
		if !strings.HasPrefix(where, path) || path == "" {
			return "; did you mean " + where + "? (it belongs in another section)"
		}
	}
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return " (the keys here are: " + strings.Join(names, ", ") + ")"
}

// editDistance is the Levenshtein distance of a and b (bytes; keys are
// ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var quotedValue = regexp.MustCompile(" `[^`]*`")

// keycloakIssuer matches a Keycloak realm URL (…/realms/NAME).
var keycloakIssuer = regexp.MustCompile(`/realms/[^/]+$`)

// hideSecretValues removes from a yaml error message the values it quotes
// ("cannot unmarshal !!str `MDEyMzQ...` into []string") when they are (the
// start of) a client_secret or encryption_keys value of the document, e.g.
// an encryption key written as a string instead of a list. The line, the
// field and the expected type still say what is wrong.
func hideSecretValues(msg string, data []byte) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return quotedValue.ReplaceAllString(msg, "") // cannot tell: hide them all
	}
	var secrets []string
	var collect func(n *yaml.Node, secret bool)
	collect = func(n *yaml.Node, secret bool) {
		switch {
		case n.Kind == yaml.ScalarNode && secret:
			secrets = append(secrets, n.Value)
		case n.Kind == yaml.AliasNode && secret && n.Alias != nil && n.Alias.Kind == yaml.ScalarNode:
			secrets = append(secrets, n.Alias.Value)
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if secret {
					secrets = append(secrets, k)
				}
				collect(n.Content[i+1], secret || k == "client_secret" || k == "encryption_keys")
			}
		default:
			for _, c := range n.Content {
				collect(c, secret)
			}
		}
	}
	collect(&root, false)
	return quotedValue.ReplaceAllStringFunc(msg, func(q string) string {
		v := strings.TrimSuffix(strings.Trim(q, " `"), "...")
		for _, s := range secrets {
			if strings.HasPrefix(s, v) {
				return ""
			}
		}
		return q
	})
}

// fieldAtLine names the configuration field (e.g. routes[1].upstream)
// written on a line of the YAML document, for error messages.
func fieldAtLine(data []byte, line int) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return ""
	}
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line {
					return p
				}
				if f := walk(v, p); f != "" {
					if p == "client_secret" || p == "session.encryption_keys" {
						return p // what is inside may be the secret, also as a key
					}
					return f
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind != yaml.MappingNode {
					return p
				}
				if f := walk(c, p); f != "" {
					return f
				}
			}
		}
		return ""
	}
	return walk(root.Content[0], "")
}

// envVars maps CLOAKROOM_* variables to how they set the Config.
var envVars = []struct {
	name, field string
	set         func(c *Config, v string) error
}{
	{"CLOAKROOM_LISTEN", "listen", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"CLOAKROOM_PUBLIC_URL", "public_url", func(c *Config, v string) error { c.PublicURL = v; return nil }},
	{"CLOAKROOM_ISSUER", "issuer", func(c *Config, v string) error { c.Issuer = v; return nil }},
	{"CLOAKROOM_CLIENT_ID", "client_id", func(c *Config, v string) error { c.ClientID = v; return nil }},
	{"CLOAKROOM_CLIENT_SECRET", "client_secret", func(c *Config, v string) error { c.ClientSecret = v; return nil }},
	{"CLOAKROOM_CLIENT_SECRET_FILE", "client_secret_file", func(c *Config, v string) error { c.ClientSecretFile = v; return nil }},
	{"CLOAKROOM_SESSION_STORE", "session.store", func(c *Config, v string) error { c.Session.Store = v; return nil }},
	{"CLOAKROOM_SESSION_LOGOUT_JOURNAL", "session.logout_journal", func(c *Config, v string) error { c.Session.LogoutJournal = v; return nil }},
	{"CLOAKROOM_ENCRYPTION_KEY", "session.encryption_keys", func(c *Config, v string) error {
		c.Session.EncryptionKeys = splitList(v)
		return nil
	}},
	{"CLOAKROOM_UPSTREAM", "upstream", func(c *Config, v string) error {
		c.Routes = []Route{{Name: "default", Path: "/", Upstream: v}}
		return nil
	}},
	{"CLOAKROOM_TLS_CERT_FILE", "tls.cert_file", func(c *Config, v string) error { c.TLS.CertFile = v; return nil }},
	{"CLOAKROOM_TLS_KEY_FILE", "tls.key_file", func(c *Config, v string) error { c.TLS.KeyFile = v; return nil }},
	{"CLOAKROOM_TRUSTED_PROXIES", "trusted_proxies", func(c *Config, v string) error { c.TrustedProxies = splitList(v); return nil }},
	{"CLOAKROOM_FORWARD_ACCESS_TOKEN", "forward_access_token", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.ForwardAccessToken = b
		return nil
	}},
	{"CLOAKROOM_FORWARD_AUTH", "forward_auth", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.ForwardAuth = b
		return nil
	}},
	{"CLOAKROOM_COOKIE_DOMAIN", "cookie_domain", func(c *Config, v string) error { c.CookieDomain = v; return nil }},
	{"CLOAKROOM_PROFILE", "profile", func(c *Config, v string) error { c.Profile = v; return nil }},
	{"CLOAKROOM_ROLES_CLAIM", "roles_claim", func(c *Config, v string) error { c.RolesClaim = v; return nil }},
	{"CLOAKROOM_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"CLOAKROOM_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
}

// EnvNames lists the CLOAKROOM_* variables the gateway reads.
func EnvNames() []string {
	var out []string
	for _, e := range envVars {
		out = append(out, e.name)
	}
	return out
}

// ApplyEnv sets the fields whose CLOAKROOM_* variable is set (non-empty).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", e.name, e.field, err))
			}
		}
	}
	return errors.Join(errs...)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ConfigError is a configuration error naming the setting and how to fix
// it. Setting is the setting's name in the YAML file (e.g. "issuer",
// "session.store", "routes.api.upstream"), as in
// cloakroom.ProviderError.Setting. Err, when not nil, is the cause
// (Unwrap returns it, so errors.Is and errors.As see through a
// ConfigError, e.g. to cloakroom.ErrMisconfigured or a *net.OpError).
type ConfigError struct {
	Setting string
	Msg     string
	Err     error
}

func (e *ConfigError) Error() string { return e.Setting + ": " + e.Msg }

// Unwrap returns the cause, nil for a problem found in the Config alone.
func (e *ConfigError) Unwrap() error { return e.Err }

// ValidationError lists every problem found in a Config.
type ValidationError struct{ Problems []*ConfigError }

// Unwrap returns the problems, so errors.As finds a *ConfigError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.Error())
	}
	return b.String()
}

// normalize fills defaults; Validate calls it.
func (c *Config) normalize() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Session.Store == "" {
		c.Session.Store = DefaultStore
	}
	if c.Session.Store == "memory" { // "memory:" must be quoted in YAML
		c.Session.Store = "memory:"
	}
	if u, err := storeurl.Parse(c.Session.Store); err == nil && u.Shared() && c.Session.LogoutJournal == "" {
		c.Session.LogoutJournal = "cloakroom-logouts-" + strings.NewReplacer(":", "-", "[", "", "]", "", "/", "-").Replace(c.Listen) + ".journal"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = defaultShutdown
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.BodyMinRate == 0 {
		c.BodyMinRate = DefaultBodyMinRate
	}
	h := &c.Headers
	def := DefaultHeaders
	for _, p := range []struct {
		v *string
		d string
	}{
		{&h.User, def.User}, {&h.Email, def.Email}, {&h.Username, def.Username},
		{&h.Roles, def.Roles}, {&h.Groups, def.Groups}, {&h.AccessToken, def.AccessToken},
	} {
		if *p.v == "" {
			*p.v = p.d
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Path == "" {
			r.Path = "/"
		}
		if r.Mode == "" {
			r.Mode = "browser"
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("route%d", i+1)
		}
		// Hosts are matched in canonical form: lower case, no trailing dot.
		r.Host = strings.TrimSuffix(strings.ToLower(r.Host), ".")
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(m)
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.PublicURL == "" && c.Listen != "" {
		scheme := "http"
		if c.TLS.CertFile != "" {
			scheme = "https"
		}
		host := c.Listen
		if strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
		c.PublicURL = scheme + "://" + host
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
}

// Validate fills defaults and checks the Config, returning a
// *ValidationError that names every bad field and the fix.
func (c *Config) Validate() error {
	c.normalize()
	var ps []*ConfigError
	bad := func(setting, format string, args ...any) {
		ps = append(ps, &ConfigError{Setting: setting, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port (e.g. 127.0.0.1:4180 or :4180)", c.Listen)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		bad("public_url", "%q must be the external origin of the gateway, e.g. https://app.example.com (no path)", c.PublicURL)
	}
	if c.Issuer == "" {
		bad("issuer", "required: the Keycloak realm URL, e.g. https://sso.example.com/realms/myrealm")
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("issuer", "%q is not an http(s) URL", c.Issuer)
	} else if trimmed := strings.TrimRight(c.Issuer, "/"); trimmed != c.Issuer && keycloakIssuer.MatchString(trimmed) {
		// Keycloak's iss never ends with a slash, and tokens are compared
		// with the issuer exactly: say so rather than guess.
		bad("issuer", "%q ends with a slash, but Keycloak's tokens name the realm without one: write %s", c.Issuer, trimmed)
	}
	if c.ClientID == "" {
		bad("client_id", "required: the gateway's confidential client in Keycloak")
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
		bad("scopes", "must include openid (logins are OpenID Connect), e.g. [openid, profile, email]")
	}
	for _, sc := range c.Scopes {
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r == 0x7f }) {
			bad("scopes", "%q is not a scope value (RFC 6749 3.3: printable characters without spaces, quotes or backslashes)", sc)
		}
	}
	if c.ClientSecret == "" && c.ClientSecretFile == "" {
		bad("client_secret", "required (or client_secret_file): the client's secret from Keycloak's Credentials tab")
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		bad("client_secret_file", "set client_secret or client_secret_file, not both")
	}
	store, storeErr := storeurl.Check(c.Session.Store)
	if storeErr != nil {
		bad("session.store", "%v", storeErr)
		ps[len(ps)-1].Err = storeErr
	}
	if len(c.Session.EncryptionKeys) == 0 && store.Shared() {
		bad("session.encryption_keys", "required with a shared store: set CLOAKROOM_ENCRYPTION_KEY to the same base64 key on every instance (generate one with `openssl rand -base64 32`)")
	}
	for i, k := range c.Session.EncryptionKeys {
		if _, err := sessionKey(k); err != nil {
			bad(fmt.Sprintf("session.encryption_keys[%d]", i), "%v", err)
		}
	}
	if c.Session.IdleTimeout < 0 || c.Session.MaxLifetime < 0 {
		bad("session", "idle_timeout and max_lifetime must not be negative")
	}
	if c.Session.CacheTTL != nil && *c.Session.CacheTTL < 0 {
		bad("session.cache_ttl", "must not be negative (0s turns the cache off)")
	}
	if c.Session.RecoveryHold != nil && *c.Session.RecoveryHold < 0 {
		bad("session.recovery_hold", "must not be negative (0s turns the hold off)")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "set both cert_file and key_file, or neither")
	}
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an IP address or CIDR (e.g. 10.0.0.0/8)", p)
		}
	}
	for i, o := range c.AllowedRedirectOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("allowed_redirect_origins[%d]", i), "%q is not an origin like https://other.example.com", o)
		}
	}
	if c.CookieDomain != "" {
		if d, err := cookieDomain(c.CookieDomain); err != nil {
			bad("cookie_domain", "%q %v", c.CookieDomain, err)
		} else if u, err := url.Parse(c.PublicURL); err == nil {
			// The callback on public_url sets the cookie: a browser drops a
			// cookie whose Domain does not cover the host that sets it.
			if h, _, err := canonical.Host(u.Host); err == nil && h != d && !strings.HasSuffix(h, "."+d) {
				bad("cookie_domain", "%q does not cover public_url's host %q, which sets the cookie: browsers would drop it; use a parent domain of %s", c.CookieDomain, h, h)
			}
		}
	}
	h := c.Headers
	names := []string{h.User, h.Email, h.Username, h.Roles, h.Groups, h.AccessToken}
	for _, n := range names {
		if !validHeaderName(n) {
			bad("headers", "%q is not a valid header name", n)
		}
	}
	for i, a := range c.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		default:
			bad(fmt.Sprintf("algorithms[%d]", i), "%q is not allowed: use RS256 (Keycloak's default), PS*, ES* or EdDSA; none and HS* are never accepted", a)
		}
	}
	if _, err := cloakroom.ParseProfile(c.Profile); err != nil {
		bad("profile", "%q: want keycloak, generic or auto", c.Profile)
	}
	if rc := c.RolesClaim; rc != "" && (strings.HasPrefix(rc, ".") || strings.HasSuffix(rc, ".") || strings.TrimSpace(rc) != rc) {
		bad("roles_claim", "%q is not a dotted claim path such as realm_access.roles or groups", rc)
	}
	if c.BodyReadTimeout < 0 {
		bad("body_read_timeout", "must be a positive duration such as 30s")
	}
	if c.BodyMinRate < 0 {
		bad("body_min_rate", "must be a number of bytes per second, e.g. 1024")
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		bad("leeway", "must be between 0 and 5m")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q: want json or text", c.Log.Format)
	}
	if len(c.Routes) == 0 {
		bad("routes", "no route: give an upstream (--upstream http://127.0.0.1:9000) or a routes list")
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		f := func(name string) string { return fmt.Sprintf("routes[%d].%s", i, name) }
		if seen[r.Host+" "+r.Path] {
			bad(f("path"), "another route already has host %q and path %q", r.Host, r.Path)
		}
		seen[r.Host+" "+r.Path] = true
		if !strings.HasPrefix(r.Path, "/") {
			bad(f("path"), "%q must start with /", r.Path)
		} else if p, cleaned, err := canonical.Path(r.Path); err != nil || cleaned || p != r.Path {
			// Requests are matched in canonical form; a prefix in any
			// other form would never match, or match what it should not.
			why := "it is not in canonical form"
			if err != nil {
				why = err.Error()
			}
			bad(f("path"), "%q: %s; write the decoded path without dot segments, empty segments, ';' or '\\' (e.g. /admin)", r.Path, why)
		}
		if strings.HasPrefix(r.Path, DefaultPrefix) {
			bad(f("path"), "%q is inside the gateway's reserved prefix %s/", r.Path, DefaultPrefix)
		}
		if r.Upstream == "" && c.ForwardAuth {
			// An authorization-only route: the proxy in front serves it.
		} else if u, err := url.Parse(r.Upstream); r.Upstream == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			if r.Upstream == "" {
				bad(f("upstream"), "required: an http(s) URL, e.g. http://127.0.0.1:9000 (a route without upstream only authorizes, with forward_auth: true)")
			} else {
				bad(f("upstream"), "%q must be an http(s) URL, e.g. http://127.0.0.1:9000", r.Upstream)
			}
		} else if p, cleaned, err := canonical.Path(u.EscapedPath()); err != nil || cleaned || (u.Path != "" && p != u.Path) || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad(f("upstream"), "%q: the upstream's base path must be a plain path (no dot or empty segments, encoded separators, query, fragment or credentials), e.g. http://127.0.0.1:9000/app", r.Upstream)
		}
		switch r.Mode {
		case "browser", "api", "both":
		default:
			bad(f("mode"), "%q: want browser, api or both", r.Mode)
		}
		for _, m := range r.Methods {
			if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}, m) {
				bad(f("methods"), "%q is not an HTTP method", m)
			}
		}
		rolesSet := len(r.RealmRoles.Any)+len(r.RealmRoles.All)+len(r.ClientRoles.Any)+len(r.ClientRoles.All)+len(r.Organizations) > 0
		if r.Public && (rolesSet || r.ACR != "") {
			bad(f("public"), "a public route cannot also require roles, organizations or acr")
		}
		for _, a := range r.Organizations {
			if a == "" || strings.ContainsFunc(a, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) {
				bad(f("organizations"), "%q is not an organization alias: give the alias Keycloak shows for the organization, e.g. acme", a)
			}
		}
		if (len(r.ClientRoles.Any)+len(r.ClientRoles.All) > 0) != (r.ClientRoles.Client != "") {
			bad(f("client_roles"), "give client together with any/all roles")
		}
		if _, err := bearer.ParseDPoPMode(r.DPoP); err != nil {
			bad(f("dpop"), "%q: want off, accept (the default) or require", r.DPoP)
		} else if r.DPoP != "" && r.Mode == "browser" {
			bad(f("dpop"), "applies to bearer tokens; set mode: api or both, or remove dpop")
		}
		if r.ExchangeAudience != "" {
			validateExchangeAudience(r, c.ForwardAuth, func(format string, args ...any) { bad(f("exchange_audience"), format, args...) })
		}
		if r.ACR != "" && r.Mode == "api" {
			bad(f("acr"), "step-up (acr) needs a browser; use mode browser or both")
		}
		if r.Host != "" {
			name := strings.TrimPrefix(r.Host, "*.")
			if h, p, err := canonical.Host(name); err != nil || p != "" || h != name || strings.Contains(name, "*") {
				bad(f("host"), "%q must be a host name without scheme or port, or *.domain for its subdomains", r.Host)
			}
		}
	}
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

// cookieDomain returns the canonical form of a cookie_domain value (lower
// case, without the leading and trailing dots), a DNS name of at least two
// labels.
func cookieDomain(v string) (string, error) {
	d := strings.TrimPrefix(v, ".")
	h, p, err := canonical.Host(d)
	switch {
	case err != nil || p != "" || h == "" || strings.HasPrefix(h, "["):
		return "", errors.New("is not a domain name such as .example.com")
	case !strings.Contains(h, "."):
		return "", errors.New("has a single label: browsers refuse such a cookie Domain; use e.g. .example.com")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return "", errors.New("is an IP address: a cookie Domain must be a domain name such as .example.com")
	}
	return h, nil
}

func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return http.CanonicalHeaderKey(n) != ""
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Redacted returns a copy safe to print: secrets and keys masked.
func (c Config) Redacted() Config {
	if c.ClientSecret != "" {
		c.ClientSecret = "[redacted]"
	}
	keys := make([]string, len(c.Session.EncryptionKeys))
	for i := range keys {
		keys[i] = "[redacted]"
	}
	c.Session.EncryptionKeys = keys
	c.Session.Store = storeurl.Redact(c.Session.Store)
	return c
}
