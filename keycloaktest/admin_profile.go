package keycloaktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// The realm's user profile (Keycloak 24+'s declarative user profile), as
// far as the admin API needs it. Keycloak keeps it as a JSON document
// (UPConfig), served at GET and PUT /admin/realms/{realm}/users/profile;
// the default one declares the attributes username, email, firstName and
// lastName with their validators, and no unmanagedAttributePolicy, which
// means that attributes the profile does not declare ("unmanaged" ones)
// are neither shown by nor accepted from the admin API.

// Unmanaged-attribute policies of a user profile.
const (
	// UnmanagedAttributesDisabled is Keycloak's default: attributes the
	// user profile does not declare are hidden from the admin API and
	// ignored in what it is sent (kept as they are in the store).
	UnmanagedAttributesDisabled = ""
	// UnmanagedAttributesEnabled lets admins and users read and write them.
	UnmanagedAttributesEnabled = "ENABLED"
	// UnmanagedAttributesAdminEdit lets admins read and write them.
	UnmanagedAttributesAdminEdit = "ADMIN_EDIT"
	// UnmanagedAttributesAdminView lets admins read them only.
	UnmanagedAttributesAdminView = "ADMIN_VIEW"
)

// orderedJSON is a JSON object that keeps its members in order, as
// Keycloak's LinkedHashMaps do (validator order decides error order).
type orderedJSON struct {
	keys []string
	vals map[string]json.RawMessage
}

func (o *orderedJSON) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("expected an object")
	}
	o.keys, o.vals = nil, map[string]json.RawMessage{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		k := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if _, dup := o.vals[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = v
	}
	_, err = dec.Token()
	return err
}

func (o orderedJSON) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		var compact bytes.Buffer
		if err := json.Compact(&compact, o.vals[k]); err != nil {
			return nil, err
		}
		b.Write(compact.Bytes())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o *orderedJSON) set(k string, v any) {
	raw, _ := json.Marshal(v)
	if o.vals == nil {
		o.vals = map[string]json.RawMessage{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = raw
}

func (o *orderedJSON) clone() *orderedJSON {
	if o == nil {
		return nil
	}
	c := &orderedJSON{keys: slices.Clone(o.keys), vals: map[string]json.RawMessage{}}
	for k, v := range o.vals {
		c.vals[k] = slices.Clone(v)
	}
	return c
}

// upConfig is Keycloak's UPConfig.
type upConfig struct {
	Attributes               []*upAttribute `json:"attributes"`
	Groups                   []upGroup      `json:"groups"`
	UnmanagedAttributePolicy string         `json:"unmanagedAttributePolicy,omitempty"`
}

type upAttribute struct {
	Name        string        `json:"name"`
	DisplayName string        `json:"displayName,omitempty"`
	Validations *orderedJSON  `json:"validations,omitempty"`
	Annotations *orderedJSON  `json:"annotations,omitempty"`
	Required    *upRequired   `json:"required,omitempty"`
	Permissions *upPermission `json:"permissions,omitempty"`
	Selector    *upSelector   `json:"selector,omitempty"`
	Group       string        `json:"group,omitempty"`
	Multivalued bool          `json:"multivalued"`
}

type upRequired struct {
	Roles  []string `json:"roles,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

type upPermission struct {
	View []string `json:"view"`
	Edit []string `json:"edit"`
}

type upSelector struct {
	Scopes []string `json:"scopes,omitempty"`
}

type upGroup struct {
	Name               string       `json:"name"`
	DisplayHeader      string       `json:"displayHeader,omitempty"`
	DisplayDescription string       `json:"displayDescription,omitempty"`
	Annotations        *orderedJSON `json:"annotations,omitempty"`
}

// defaultUserProfile is the UPConfig of a new Keycloak 26 realm, as
// GET /users/profile serves it.
const defaultUserProfile = `{"attributes":[
{"name":"username","displayName":"${username}","validations":{"length":{"min":3,"max":255},"username-prohibited-characters":{},"up-username-not-idn-homograph":{}},"permissions":{"view":["admin","user"],"edit":["admin","user"]},"multivalued":false},
{"name":"email","displayName":"${email}","validations":{"email":{},"length":{"max":255}},"required":{"roles":["user"]},"permissions":{"view":["admin","user"],"edit":["admin","user"]},"multivalued":false},
{"name":"firstName","displayName":"${firstName}","validations":{"length":{"max":255},"person-name-prohibited-characters":{}},"required":{"roles":["user"]},"permissions":{"view":["admin","user"],"edit":["admin","user"]},"multivalued":false},
{"name":"lastName","displayName":"${lastName}","validations":{"length":{"max":255},"person-name-prohibited-characters":{}},"required":{"roles":["user"]},"permissions":{"view":["admin","user"],"edit":["admin","user"]},"multivalued":false}],
"groups":[{"name":"user-metadata","displayHeader":"User metadata","displayDescription":"Attributes, which refer to user metadata"}]}`

var defaultUPConfig = mustParseUPConfig(defaultUserProfile)

func mustParseUPConfig(s string) *upConfig {
	c, err := parseUPConfig([]byte(s))
	if err != nil {
		panic(err)
	}
	return c
}

// parseUPConfig reads and normalizes a UPConfig document.
func parseUPConfig(b []byte) (*upConfig, error) {
	var c upConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, errNotJSON()
		}
		return nil, errBadShape()
	}
	switch c.UnmanagedAttributePolicy {
	case UnmanagedAttributesDisabled, UnmanagedAttributesEnabled, UnmanagedAttributesAdminEdit, UnmanagedAttributesAdminView:
	default:
		return nil, errBadShape()
	}
	c.Attributes = slices.DeleteFunc(c.Attributes, func(a *upAttribute) bool { return a == nil })
	var missing []string
	for _, root := range []string{"username", "email"} {
		if c.attr(root) == nil {
			missing = append(missing, "The attribute '"+root+"' can not be removed")
		}
	}
	if len(missing) > 0 {
		return nil, &bodyError{respErrorMessage(http.StatusBadRequest, "["+strings.Join(missing, ", ")+"]")}
	}
	seen := map[string]bool{}
	for _, a := range c.Attributes {
		if a.Name == "" || seen[a.Name] {
			return nil, &bodyError{respErrorMessage(http.StatusBadRequest, "Invalid attribute name")}
		}
		seen[a.Name] = true
		if a.Permissions != nil {
			a.Permissions.View, a.Permissions.Edit = nonNil(a.Permissions.View), nonNil(a.Permissions.Edit)
		}
	}
	if c.Groups == nil {
		c.Groups = []upGroup{}
	}
	return &c, nil
}

func (c *upConfig) attr(name string) *upAttribute {
	for _, a := range c.Attributes {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func (c *upConfig) unmanagedVisible() bool {
	return c.UnmanagedAttributePolicy != UnmanagedAttributesDisabled
}
func (c *upConfig) unmanagedEditable() bool {
	return c.UnmanagedAttributePolicy == UnmanagedAttributesEnabled || c.UnmanagedAttributePolicy == UnmanagedAttributesAdminEdit
}

// rootAttributes are the attributes kept in UserRepresentation's own
// fields rather than in "attributes".
var rootAttributes = []string{"username", "email", "firstName", "lastName"}

// profileLocked is the realm's user profile.
func (r *Realm) profileLocked() *upConfig {
	if r.userProfile != nil {
		return r.userProfile
	}
	return defaultUPConfig
}

// SetUnmanagedAttributePolicy sets the unmanagedAttributePolicy of the
// realm's user profile (one of the UnmanagedAttributes constants), as an
// admin does with PUT /admin/realms/{realm}/users/profile. With Keycloak's
// default (UnmanagedAttributesDisabled) custom user attributes sent to the
// admin API are dropped and stored ones are not shown.
func (r *Realm) SetUnmanagedAttributePolicy(policy string) error {
	switch policy {
	case UnmanagedAttributesDisabled, UnmanagedAttributesEnabled, UnmanagedAttributesAdminEdit, UnmanagedAttributesAdminView:
	default:
		return fmt.Errorf("%w: unmanaged attribute policy %q", ErrInvalidConfig, policy)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.profileLocked().clone()
	c.UnmanagedAttributePolicy = policy
	r.userProfile = c
	return nil
}

// SetUserProfile replaces the realm's user profile with a UPConfig
// document, as PUT /admin/realms/{realm}/users/profile does (and as a
// realm export carries it, in the "kc.user.profile.config" of its
// declarative-user-profile component). The attributes username and email
// must be declared.
func (r *Realm) SetUserProfile(config []byte) error {
	c, err := parseUPConfig(config)
	if err != nil {
		var be *bodyError
		if errors.As(err, &be) {
			if m, ok := be.resp.body.(map[string]string); ok && m["errorMessage"] != "" {
				return fmt.Errorf("%w: user profile: %s", ErrInvalidConfig, m["errorMessage"])
			}
		}
		return fmt.Errorf("%w: user profile is not a UPConfig document", ErrInvalidConfig)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.userProfile = c
	return nil
}

// UserProfile returns the realm's user profile as a UPConfig document.
func (r *Realm) UserProfile() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	b, _ := json.Marshal(r.profileLocked())
	return b
}

func (c *upConfig) clone() *upConfig {
	b, _ := json.Marshal(c)
	out, err := parseUPConfig(b)
	if err != nil {
		panic(err)
	}
	return out
}

// profileAttr is what the admin API may do with one attribute.
type profileAttr struct {
	name      string
	cfg       *upAttribute // nil: not declared (unmanaged)
	view      bool
	edit      bool
	required  bool
	multi     bool
	validates *orderedJSON
}

// Who looks at a user's profile: an admin through the admin API, or the
// user itself through the Account REST API.
const (
	profileAdmin = "admin"
	profileUser  = "user"
)

// profileAttrLocked resolves name against the realm's profile, for an
// admin.
func (r *Realm) profileAttrLocked(name string) profileAttr {
	return r.profileAttrForLocked(name, profileAdmin)
}

// profileAttrForLocked resolves name against the realm's profile for who
// (profileAdmin or profileUser).
func (r *Realm) profileAttrForLocked(name, who string) profileAttr {
	c := r.profileLocked()
	a := c.attr(name)
	pa := profileAttr{name: name, cfg: a}
	if a == nil {
		// firstName and lastName left out of the profile are hidden and
		// kept whatever the policy; other undeclared attributes follow it
		// (users see them only when it is ENABLED).
		if !slices.Contains(rootAttributes, name) {
			pa.multi = true
			if who == profileAdmin {
				pa.view, pa.edit = c.unmanagedVisible(), c.unmanagedEditable()
			} else {
				pa.view = c.UnmanagedAttributePolicy == UnmanagedAttributesEnabled
				pa.edit = pa.view
			}
		}
		return pa
	}
	pa.multi, pa.validates = a.Multivalued, a.Validations
	root := name == "username" || name == "email"
	switch {
	case a.Permissions == nil:
		pa.view, pa.edit = root, root
	default:
		pa.edit = slices.Contains(a.Permissions.Edit, who)
		pa.view = pa.edit || slices.Contains(a.Permissions.View, who)
	}
	if name == "username" {
		pa.view, pa.edit, pa.required = true, true, true
	} else if a.Required != nil {
		pa.required = len(a.Required.Roles) == 0 && len(a.Required.Scopes) == 0 || slices.Contains(a.Required.Roles, who)
	}
	return pa
}

// upMetaAttribute is one attribute of UserProfileMetadata.
type upMetaAttribute struct {
	Name        string       `json:"name"`
	DisplayName string       `json:"displayName"`
	Required    bool         `json:"required"`
	ReadOnly    bool         `json:"readOnly"`
	Annotations *orderedJSON `json:"annotations,omitempty"`
	Validators  *orderedJSON `json:"validators"`
	Group       string       `json:"group,omitempty"`
	Multivalued bool         `json:"multivalued"`
}

// profileMetadataLocked is the UserProfileMetadata who (profileAdmin or
// profileUser) gets: the declared attributes it may see, with their
// validators as Keycloak lists them (multivalued {"max":"1"} for
// single-valued ones, each validator with "ignore.empty.value"). For an
// existing user (forUser) the username is read-only, as in a realm that
// does not allow editing usernames.
func (r *Realm) profileMetadataLocked(who string, forUser bool) map[string]any {
	c := r.profileLocked()
	attrs := []upMetaAttribute{}
	for _, a := range c.Attributes {
		pa := r.profileAttrForLocked(a.Name, who)
		if !pa.view {
			continue
		}
		m := upMetaAttribute{Name: a.Name, DisplayName: a.DisplayName, Required: pa.required,
			ReadOnly: !pa.edit || a.Name == "username" && forUser, Annotations: a.Annotations.clone(),
			Group: a.Group, Multivalued: a.Multivalued, Validators: &orderedJSON{}}
		if m.DisplayName == "" {
			m.DisplayName = a.Name
			if a.Name == "username" || a.Name == "email" {
				m.DisplayName = "${" + a.Name + "}"
			}
		}
		if a.Name == "email" && who == profileUser && m.Annotations == nil {
			// What Keycloak 26.7 serves to the Account REST API.
			m.Annotations = &orderedJSON{}
		}
		if !a.Multivalued {
			m.Validators.set("multivalued", map[string]string{"max": "1"})
		}
		if v := a.Validations; v != nil {
			for _, name := range v.keys {
				cfg := &orderedJSON{}
				_ = cfg.UnmarshalJSON(v.vals[name])
				if _, ok := cfg.vals["ignore.empty.value"]; !ok {
					cfg.set("ignore.empty.value", true)
				}
				b, _ := cfg.MarshalJSON()
				if m.Validators.vals == nil {
					m.Validators.vals = map[string]json.RawMessage{}
				}
				if _, ok := m.Validators.vals[name]; !ok {
					m.Validators.keys = append(m.Validators.keys, name)
				}
				m.Validators.vals[name] = b
			}
		}
		attrs = append(attrs, m)
	}
	return map[string]any{"attributes": attrs, "groups": c.Groups}
}

// profileRoutes serves /users/profile and /users/profile/metadata.
func (a *adminReq) profileRoutes(m string, body []byte) adminResp {
	if len(a.seg) == 3 && a.seg[2] == "metadata" {
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		// conformance: admin-permissions/*.users.profile
		if !a.perms.queryUsers() && !a.perms.viewRealm() {
			return respForbidden()
		}
		return respJSON(http.StatusOK, a.r.profileMetadataLocked(profileAdmin, false))
	}
	if len(a.seg) != 2 {
		return respNoRoute()
	}
	switch m {
	case http.MethodGet:
		// conformance: admin-permissions/*.users.profile
		if !a.perms.queryUsers() && !a.perms.viewRealm() {
			return respForbidden()
		}
		return respJSON(http.StatusOK, a.r.profileLocked())
	case http.MethodPut:
		if !a.perms.has("manage-realm") {
			return respForbidden()
		}
		c, err := parseUPConfig(body)
		if err != nil {
			var be *bodyError
			if errors.As(err, &be) {
				return be.resp
			}
			return errBadShape().resp
		}
		a.r.userProfile = c
		return respJSON(http.StatusOK, c)
	}
	return respMethodNotAllowed()
}

// fieldError is one user-profile validation error (ErrorRepresentation).
type fieldError struct {
	Field        string `json:"field"`
	ErrorMessage string `json:"errorMessage"`
	Params       []any  `json:"params"`
}

// profileErrors answers user-profile validation errors as Keycloak does
// (ErrorResponse.errors): one error alone is {"field","errorMessage",
// "params"}, several are {"errors":[...]}.
func profileErrors(errs []fieldError) adminResp {
	if len(errs) == 1 {
		return respJSON(http.StatusBadRequest, errs[0])
	}
	return respJSON(http.StatusBadRequest, map[string]any{"errors": errs})
}

// validateAttr runs the attribute's validators over its values.
// Empty values are skipped, as Keycloak's validators do by default.
func validateAttr(pa profileAttr, vals []string) []fieldError {
	var errs []fieldError
	name := pa.name
	nonEmpty := slices.DeleteFunc(slices.Clone(vals), func(s string) bool { return s == "" })
	if pa.required && len(nonEmpty) == 0 {
		errs = append(errs, fieldError{name, "error-user-attribute-required", []any{name}})
	}
	if !pa.multi && len(vals) > 1 {
		errs = append(errs, fieldError{name, "error-invalid-multivalued-size", []any{name, 0, 1}})
	}
	if pa.validates == nil {
		return errs
	}
	for _, vname := range pa.validates.keys {
		var cfg map[string]any
		dec := json.NewDecoder(bytes.NewReader(pa.validates.vals[vname]))
		dec.UseNumber()
		if dec.Decode(&cfg) != nil {
			continue
		}
		msg := func(def string) string {
			if s, ok := cfg["error-message"].(string); ok && strings.TrimSpace(s) != "" {
				return s
			}
			return def
		}
		if vname == "multivalued" {
			lo, hi := cfgInt(cfg, "min"), cfgInt(cfg, "max")
			n := len(nonEmpty)
			if lo != nil && n < *lo || hi != nil && n > *hi {
				errs = append(errs, fieldError{name, "error-invalid-multivalued-size", []any{name, intOr(lo, 0), intOrNil(hi)}})
			}
			continue
		}
		for _, v := range nonEmpty {
			if e := runValidator(vname, cfg, name, v, msg); e != nil {
				errs = append(errs, *e)
				break
			}
		}
	}
	return errs
}

func runValidator(vname string, cfg map[string]any, name, v string, msg func(string) string) *fieldError {
	fail := func(key string, params ...any) *fieldError {
		return &fieldError{name, key, append([]any{name}, params...)}
	}
	switch vname {
	case "length":
		s := v
		if b, _ := cfg["trim-disabled"].(bool); !b {
			s = javaTrim(s)
		}
		n := len(utf16.Encode([]rune(s)))
		lo, hi := cfgInt(cfg, "min"), cfgInt(cfg, "max")
		switch {
		case lo != nil && n < *lo && hi != nil:
			return fail("error-invalid-length", *lo, *hi)
		case lo != nil && n < *lo:
			return fail("error-invalid-length-too-short", *lo, nil)
		case hi != nil && n > *hi && lo != nil:
			return fail("error-invalid-length", *lo, *hi)
		case hi != nil && n > *hi:
			return fail("error-invalid-length-too-long", nil, *hi)
		}
	case "email":
		maxLocal := 64
		if n := cfgInt(cfg, "max-local-length"); n != nil {
			maxLocal = *n
		}
		if !validEmail(v, maxLocal) {
			return fail(msg("error-invalid-email"), v)
		}
	case "username-prohibited-characters":
		if !usernameCharsRe.MatchString(v) {
			return fail(msg("error-username-invalid-character"))
		}
	case "person-name-prohibited-characters":
		if !personNameCharsRe.MatchString(v) {
			return fail(msg("error-person-name-invalid-character"))
		}
	case "up-username-not-idn-homograph":
		if strings.TrimSpace(v) != "" && strings.ContainsFunc(v, func(r rune) bool {
			return !unicode.Is(unicode.Latin, r) && !unicode.Is(unicode.Common, r)
		}) {
			return fail(msg("error-username-invalid-character"))
		}
	case "pattern":
		p, _ := cfg["pattern"].(string)
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err == nil && !re.MatchString(v) {
			return fail(msg("error-pattern-no-match"), p)
		}
	case "options":
		opts, _ := cfg["options"].([]any)
		if !slices.ContainsFunc(opts, func(o any) bool { s, _ := scalarText(o); return s == v }) {
			return fail(msg("error-invalid-value"))
		}
	case "integer", "double":
		var f float64
		var err error
		if vname == "integer" {
			var n int64
			n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			f = float64(n)
		} else {
			f, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if err != nil {
			return fail(msg("error-invalid-number"))
		}
		lo, hi := cfgFloat(cfg, "min"), cfgFloat(cfg, "max")
		if lo != nil && f < *lo || hi != nil && f > *hi {
			return fail("error-number-out-of-range", floatOrNil(lo), floatOrNil(hi))
		}
	}
	return nil
}

func cfgInt(cfg map[string]any, k string) *int {
	switch v := cfg[k].(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			i := int(n)
			return &i
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return &n
		}
	}
	return nil
}

func cfgFloat(cfg map[string]any, k string) *float64 {
	switch v := cfg[k].(type) {
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return &f
		}
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return &f
		}
	}
	return nil
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func intOrNil(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func floatOrNil(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// javaTrim is Java's String.trim: it strips code points up to U+0020.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

// The prohibited characters of Keycloak's username and person-name
// validators (\s, \v, \h and \p{Cntrl} spelled out).
var (
	usernameCharsRe   = regexp.MustCompile("^[^<>&\"'\\s\\x{0B}\\x{85}\\x{A0}\\x{1680}\\x{180E}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}$%!#?§,;:*~/\\\\|^=\\[\\]{}()`\\x00-\\x1F\\x7F]+$")
	personNameCharsRe = regexp.MustCompile("^[^<>&\"\\n\\x{0B}\\f\\r\\x{85}\\x{2028}\\x{2029}$%!#?§;*~/\\\\|^=\\[\\]{}()\\x00-\\x1F\\x7F]+$")
)

// Keycloak's EmailValidationUtil (after Hibernate Validator), in RE2.
var (
	emailLocalAtom   = "[a-z0-9!#$%&'*+/=?^_`{|}~\\x{80}-\\x{10FFFF}-]"
	emailQuotedAtom  = "(?:[a-z0-9!#$%&'*.(),<>\\[\\]:;  @+/=?^_`{|}~\\x{80}-\\x{10FFFF}-]|\\\\\\\\|\\\\\")"
	emailLocalRe     = regexp.MustCompile("(?i)^(?:" + emailLocalAtom + "+|\"" + emailQuotedAtom + "+\")(?:\\.(?:" + emailLocalAtom + "+|\"" + emailQuotedAtom + "+\"))*$")
	emailDomainChars = "[a-z\\x{80}-\\x{10FFFF}0-9!#$%&'*+/=?^`{|}~]"
	emailDomainLabel = "(?:" + emailDomainChars + "-*)*" + emailDomainChars + "+"
	emailDomainRe    = regexp.MustCompile("(?i)^(?:" + emailDomainLabel + "(?:\\." + emailDomainLabel + ")*|\\[[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\]|\\[IPv6:[0-9a-f:.]+\\])$")
)

// validEmail is Keycloak's email validator: a local part of at most
// maxLocal characters and a domain whose labels fit IDNA (63 characters).
func validEmail(v string, maxLocal int) bool {
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return false
	}
	local, domain := v[:at], v[at+1:]
	if len(utf16.Encode([]rune(local))) > maxLocal || !emailLocalRe.MatchString(local) {
		return false
	}
	if strings.HasSuffix(domain, ".") || !emailDomainRe.MatchString(domain) {
		return false
	}
	if !strings.HasPrefix(domain, "[") {
		total := 0
		for label := range strings.SplitSeq(domain, ".") {
			n := len(label)
			if strings.ContainsFunc(label, func(r rune) bool { return r >= 0x80 }) {
				n += 4 // "xn--" and at least the label's length again
			}
			if n > 63 || label == "" {
				return false
			}
			total += n + 1
		}
		if total-1 > 255 {
			return false
		}
	}
	return true
}
