// Package conformance is a differential test of Keycloak servers: one list
// of scenarios, run against any base URL, records normalized observations
// (status codes, OAuth error codes, the names and JSON types of response
// and representation fields, claim names, types and the values that must
// match, header presence), so that two servers — real Keycloak and
// keycloaktest — can be compared observation by observation.
//
// Observations never hold what differs by nature between two servers:
// ids, secrets, tokens, times and the base URL (replaced by "{base}").
// Every difference between the two servers must be fixed or listed, with
// the reason, in allowlist.txt.
//
// The suite runs from conformance_test.go: against keycloaktest always,
// against a real Keycloak when CLOAKROOM_TEST_KEYCLOAK names one (see
// scripts/keycloak.sh), and keycloaktest is also compared with the
// observations recorded from the real server (testdata/keycloak.golden),
// so that a developer without Java still learns when keycloaktest drifts.
package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Target is a server under test, with the conformance realm imported.
type Target struct {
	// Base is the server's base URL, e.g. http://127.0.0.1:8180.
	Base string
	// Realm is the realm the scenarios use (the fixture's "conformance").
	Realm string
	// HTTP is the client (default: 10 s timeout, no redirects followed).
	HTTP *http.Client
}

// Observations maps an observation's key to its normalized value.
type Observations map[string]string

// Recorder collects observations for one target.
type Recorder struct {
	t    *Target
	obs  Observations
	pfx  string
	errs []string
}

// Set records one observation; value is formatted by normalize.
func (r *Recorder) Set(key string, value any) {
	r.obs[r.pfx+key] = r.normalize(value)
}

// Fail records that a scenario could not run as written (a transport
// error, an unparsable answer): it is an observation too, so the two
// servers are still compared.
func (r *Recorder) Fail(key string, err error) {
	r.obs[r.pfx+key] = "error: " + err.Error()
	r.errs = append(r.errs, r.pfx+key+": "+err.Error())
}

func (r *Recorder) normalize(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int:
		s = strconv.Itoa(x)
	case []string:
		c := slices.Clone(x)
		sort.Strings(c)
		s = "[" + strings.Join(c, " ") + "]"
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	return strings.ReplaceAll(s, r.t.Base, "{base}")
}

// Shape records the JSON type of every member of an object (and, one level
// down, of nested objects) under key: "key.name" = "string", "number", …
func (r *Recorder) Shape(key string, obj map[string]any) {
	for name, v := range obj {
		r.Set(key+"."+name, jsonType(v))
		if m, ok := v.(map[string]any); ok && len(m) > 0 && !dynamicKeys(name) {
			for sub, sv := range m {
				r.Set(key+"."+name+"."+sub, jsonType(sv))
			}
		}
	}
}

// dynamicKeys names objects whose member names are data (client ids,
// attribute names), recorded by value elsewhere when they matter.
func dynamicKeys(name string) bool {
	switch name {
	case "resource_access", "attributes", "access", "clientRoles", "clientMappings", "realmMappings", "clients":
		return true
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Scenario is one group of observations.
type Scenario struct {
	Name string
	Run  func(ctx context.Context, c *Client, r *Recorder)
}

// Run runs every scenario against t and returns what it observed.
func Run(ctx context.Context, t *Target, scenarios []Scenario) Observations {
	if t.HTTP == nil {
		t.HTTP = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	obs := Observations{}
	for _, s := range scenarios {
		r := &Recorder{t: t, obs: obs, pfx: s.Name + "/"}
		s.Run(ctx, &Client{t: t}, r)
	}
	return obs
}

// Client makes the scenarios' requests.
type Client struct{ t *Target }

// Response is an answer, with its body decoded when it is JSON.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any // nil unless the body is a JSON object
	List   []any          // set when the body is a JSON array
}

// RealmURL is {base}/realms/{realm}{path}.
func (c *Client) RealmURL(path string) string {
	return c.t.Base + "/realms/" + c.t.Realm + path
}

// AdminURL is {base}/admin/realms/{realm}{path}.
func (c *Client) AdminURL(path string) string {
	return c.t.Base + "/admin/realms/" + c.t.Realm + path
}

// Do sends a request; body is url.Values (a form), []byte or any (JSON).
func (c *Client) Do(ctx context.Context, method, u string, body any, header http.Header) (*Response, error) {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.t.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Body: data}
	if len(data) > 0 {
		var v any
		if json.Unmarshal(data, &v) == nil {
			switch x := v.(type) {
			case map[string]any:
				out.JSON = x
			case []any:
				out.List = x
			}
		}
	}
	return out, nil
}

// Form posts a form, with client credentials in the body when secret is
// not empty (client_secret_post).
func (c *Client) Form(ctx context.Context, u string, form url.Values, bearer string) (*Response, error) {
	var h http.Header
	if bearer != "" {
		h = http.Header{"Authorization": {"Bearer " + bearer}}
	}
	return c.Do(ctx, http.MethodPost, u, form, h)
}

// Token calls the token endpoint.
func (c *Client) Token(ctx context.Context, form url.Values) (*Response, error) {
	return c.Form(ctx, c.RealmURL("/protocol/openid-connect/token"), form, "")
}

// Claims decodes a JWT's payload without verifying it (the scenarios
// observe what the server issued; verification is the library's job and
// is tested elsewhere).
func Claims(token string) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a compact JWS (%d parts)", len(parts))
	}
	dec := func(s string) (map[string]any, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		return m, json.Unmarshal(b, &m)
	}
	if header, err = dec(parts[0]); err != nil {
		return nil, nil, err
	}
	claims, err = dec(parts[1])
	return header, claims, err
}

// Difference is one observation on which two runs disagree.
type Difference struct {
	Key, A, B string
	Allowed   string // the allow-list's reason, if listed
}

// Compare lists the observations on which a and b differ (a key missing on
// one side shows as "<absent>"), with their allow-list reasons.
func Compare(a, b Observations, allow Allowlist) []Difference {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []Difference
	for k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if oka && okb && va == vb {
			continue
		}
		if !oka {
			va = "<absent>"
		}
		if !okb {
			vb = "<absent>"
		}
		out = append(out, Difference{Key: k, A: va, B: vb, Allowed: allow.Reason(k)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Allowlist holds the deliberate differences: key patterns ("*" matches
// any run of characters) with the reason a user would accept.
type Allowlist []struct{ Pattern, Reason string }

// LoadAllowlist reads "pattern<TAB or spaces>reason" lines; blank lines and
// lines starting with # are ignored. Every entry needs a reason.
func LoadAllowlist(path string) (Allowlist, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a Allowlist
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pattern, reason, ok := strings.Cut(line, " ")
		if t, r, okt := strings.Cut(line, "\t"); okt && (!ok || len(t) < len(pattern)) {
			pattern, reason, ok = t, r, true
		}
		reason = strings.TrimSpace(reason)
		if !ok || reason == "" {
			return nil, fmt.Errorf("%s:%d: %q has no reason", filepath.Base(path), i+1, line)
		}
		a = append(a, struct{ Pattern, Reason string }{pattern, reason})
	}
	return a, nil
}

// Reason returns the reason of the first entry matching key, or "".
func (a Allowlist) Reason(key string) string {
	for _, e := range a {
		if matchPattern(e.Pattern, key) {
			return e.Reason
		}
	}
	return ""
}

func matchPattern(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return true
}

// Format writes observations one per line, sorted: the golden file format.
func (o Observations) Format() []byte {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, strings.ReplaceAll(o[k], "\n", `\n`))
	}
	return b.Bytes()
}

// ParseObservations reads what Format wrote.
func ParseObservations(data []byte) Observations {
	o := Observations{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			o[k] = strings.ReplaceAll(v, `\n`, "\n")
		}
	}
	return o
}

func decode(res *http.Response, v any) (string, error) {
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if res.StatusCode != 200 {
		return string(data), fmt.Errorf("status %d", res.StatusCode)
	}
	return string(data), json.Unmarshal(data, v)
}
