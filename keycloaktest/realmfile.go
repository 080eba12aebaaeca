package keycloaktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Keycloak's built-in clients. A realm file may refer to their roles without
// listing them under "clients", because Keycloak creates them itself.
var builtinClients = []string{"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}

// LoadRealmFile reads a Keycloak realm-export JSON file (see ParseRealm).
// Its errors name the file and, where the problem has one, the line and
// column: "realm file realm.json:12:20: users[0].enabled: expected a
// boolean, got a string", "realm file realm.json is empty". They match
// ErrInvalidRealmFile and unwrap to the *RealmFileError, or to the
// file-system error (errors.Is(err, fs.ErrNotExist)).
func LoadRealmFile(path string) (RealmConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return RealmConfig{}, fmt.Errorf("read realm file %s: %w", path, err)
	}
	cfg, err := ParseRealm(data)
	if err != nil {
		fe := &realmFileLoadError{file: path, err: err}
		var rfe *RealmFileError
		if errors.As(err, &rfe) {
			var se *jsonSyntax
			switch {
			case rfe.Path == "" && errors.As(rfe.Err, &se):
				fe.line, fe.col = se.line, se.col
			case rfe.Path != "":
				if off, ok := locateJSONPath(data, rfe.Path); ok {
					fe.line, fe.col = lineColumn(data, off)
				}
			}
		}
		return RealmConfig{}, fe
	}
	return cfg, nil
}

// realmFileLoadError is an error of LoadRealmFile: the file, the place in
// it, and ParseRealm's error.
type realmFileLoadError struct {
	file      string
	line, col int // 0 when unknown
	err       error
}

func (e *realmFileLoadError) Error() string {
	var rfe *RealmFileError
	if !errors.As(e.err, &rfe) {
		return fmt.Sprintf("realm file %s: %v", e.file, e.err)
	}
	if errors.Is(rfe.Err, errEmptyDocument) {
		return fmt.Sprintf("realm file %s is empty", e.file)
	}
	where := e.file
	if e.line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.file, e.line, e.col)
	}
	var se *jsonSyntax
	switch {
	case rfe.Path == "" && errors.As(rfe.Err, &se):
		return fmt.Sprintf("realm file %s: invalid JSON: %s", where, se.msg)
	case rfe.Path != "":
		return fmt.Sprintf("realm file %s: %s: %v", where, rfe.Path, rfe.Err)
	}
	return fmt.Sprintf("realm file %s: %v", where, rfe.Err)
}

func (e *realmFileLoadError) Unwrap() error { return e.err }

// errEmptyDocument is the cause of a RealmFileError for an empty document.
var errEmptyDocument = errors.New("the document is empty")

// jsonSyntax is invalid JSON at a line and column (1-based; columns count
// characters), described without echoing the document, which may hold
// secrets.
type jsonSyntax struct {
	line, col int
	msg       string
}

func (e *jsonSyntax) Error() string {
	return fmt.Sprintf("line %d, column %d: invalid JSON: %s", e.line, e.col, e.msg)
}

// lineColumn turns a byte offset into a 1-based line and column.
func lineColumn(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	if i := bytes.LastIndexByte(before, '\n'); i >= 0 {
		before = before[i+1:]
	}
	return line, utf8.RuneCount(before) + 1
}

// syntaxContexts rewords the contexts of encoding/json's syntax errors.
var syntaxContexts = []struct{ goText, text string }{
	{"looking for beginning of object key string", `where a "quoted" member name should be (a comma too many?)`},
	{"looking for beginning of value", "where a value should be (a comma too many, or a missing value?)"},
	{"after object key:value pair", `after a member (a missing "," or "}"?)`},
	{"after object key", `after a member name (a missing ":"?)`},
	{"after array element", `after an array element (a missing "," or "]"?)`},
	{"after top-level value", "after the end of the document"},
	{"in string literal", "inside a string (control characters such as line breaks must be escaped)"},
	{"in string escape code", `in a string's escape sequence (write \\ for a backslash)`},
	{"hexadecimal character escape", `in a string's \u escape`},
	{"in literal", "in true, false or null (misspelt?)"},
	{"numeric literal", "in a number"},
	{"after decimal point", "in a number"},
	{"exponent", "in a number"},
}

// ParseRealm reads a Keycloak realm-export JSON document: realm settings,
// realm and client roles (with descriptions and composites), groups, users
// (with plaintext or pbkdf2-hashed password credentials), clients with their
// protocol mappers (MapperConfig) and client scopes (ClientScopeConfig).
// Users get exactly the roles the document lists, as with Keycloak's import
// (UserConfig.NoDefaultRoles). Clients keep only the client scopes that
// exist: when the document has "clientScopes", Keycloak's import creates
// none of its built-in scopes (only offline_access), so those the document
// leaves out are dropped, and clients without scope lists get the realm's
// defaultDefaultClientScopes and defaultOptionalClientScopes. Fields it does
// not model are ignored, as Keycloak ignores unknown ones. A problem is a
// *RealmFileError naming the JSON path, e.g.
// `users[2].credentials[0].type: unsupported credential type "otp"`.
// A document ParseRealm accepts can always be added with Server.AddRealm.
func ParseRealm(data []byte) (RealmConfig, error) {
	root, err := parseObject("", data)
	if err != nil {
		return RealmConfig{}, err
	}
	p := &realmParser{}
	cfg, err := p.realm(root)
	if err != nil {
		return RealmConfig{}, err
	}
	if err := parseClientScopes(root, &cfg); err != nil {
		return RealmConfig{}, err
	}
	if err := addBasicScope(root, cfg.Clients); err != nil {
		return RealmConfig{}, err
	}
	if err := parseOrganizations(root, &cfg); err != nil {
		return RealmConfig{}, err
	}
	// Apply the document to a scratch realm, so that whatever AddRealm
	// would refuse is reported now.
	scratch := &Server{clock: time.Now, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), realms: map[string]*Realm{}}
	if _, err := newRealm(scratch, cfg); err != nil {
		return RealmConfig{}, &RealmFileError{Err: plainError(cfg.Name, err)}
	}
	return cfg, nil
}

// plainError words an error of a realm the document describes for its
// reader: without the realm's name (the document is the realm) and without
// this package's name and sentinel wording. It unwraps to err.
func plainError(realm string, err error) error {
	msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("realm %q: ", realm))
	msg = strings.ReplaceAll(msg, ErrInvalidConfig.Error()+": ", "")
	msg = strings.ReplaceAll(msg, "keycloaktest: ", "")
	return &wordedError{msg: msg, err: err}
}

// wordedError is an error with another message.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

type realmParser struct{}

func (p *realmParser) realm(root jsonObj) (RealmConfig, error) {
	var cfg RealmConfig
	var err error
	if cfg.Name, err = root.str("realm"); err != nil {
		return cfg, err
	}
	if cfg.Name == "" {
		return cfg, root.errAt("realm", "missing realm name")
	}
	if !validName(cfg.Name) {
		return cfg, root.errAt("realm", "realm name %q is not usable in a URL path", cfg.Name)
	}
	enabled, err := root.optBool("enabled")
	if err != nil {
		return cfg, err
	}
	// A realm without "enabled" is imported disabled (observed on
	// Keycloak 26.7.3: discovery answers, tokens are refused with
	// "Realm not enabled").
	cfg.Disabled = enabled == nil || !*enabled
	if cfg.VerifyProfile, err = verifyProfileOn(root); err != nil {
		return cfg, err
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{
		{"accessTokenLifespan", &cfg.AccessTokenLifespan},
		{"ssoSessionIdleTimeout", &cfg.SSOSessionIdle},
		{"ssoSessionMaxLifespan", &cfg.SSOSessionMax},
	} {
		n, _, err := root.nonNegInt(d.key)
		if err != nil {
			return cfg, err
		}
		*d.dst = time.Duration(n) * time.Second
	}
	if b, err := root.optBool("revokeRefreshToken"); err != nil {
		return cfg, err
	} else if b != nil {
		cfg.RevokeRefreshToken = *b
	}
	n, _, err := root.nonNegInt("refreshTokenMaxReuse")
	if err != nil {
		return cfg, err
	}
	cfg.RefreshTokenMaxReuse = int(n)
	if b, err := root.optBool("registrationAllowed"); err != nil {
		return cfg, err
	} else if b != nil {
		cfg.RegistrationAllowed = *b
	}
	if attrs, err := root.strMap("attributes"); err != nil {
		return cfg, err
	} else if raw := attrs["acr.loa.map"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &cfg.ACRLoA); err != nil {
			return cfg, &RealmFileError{Path: root.sub("attributes") + keyPath("acr.loa.map"), Err: errors.New("expected a JSON object of ACR names to integer levels")}
		}
		for name, loa := range cfg.ACRLoA {
			if name == "" || loa < 0 {
				return cfg, &RealmFileError{Path: root.sub("attributes") + keyPath("acr.loa.map"), Err: fmt.Errorf("invalid mapping %q: %d", name, loa)}
			}
		}
	}
	if cfg.DefaultSignatureAlgorithm, err = root.str("defaultSignatureAlgorithm"); err != nil {
		return cfg, err
	}
	if a := cfg.DefaultSignatureAlgorithm; a != "" && a != RS256 && a != ES256 && a != PS256 {
		return cfg, root.errAt("defaultSignatureAlgorithm", "unsupported algorithm %q (supported: RS256, ES256, PS256)", a)
	}

	clientRoles := map[string][]string{}
	var rolePaths []string // JSON path of each cfg.Roles entry
	if roles, ok, err := root.object("roles"); err != nil {
		return cfg, err
	} else if ok {
		realmDefs, paths, err := parseRoles(roles, "realm", "")
		if err != nil {
			return cfg, err
		}
		cfg.Roles, rolePaths = append(cfg.Roles, realmDefs...), append(rolePaths, paths...)
		for _, rc := range realmDefs {
			if !isBuiltinRole(cfg.Name, rc.Name) {
				cfg.RealmRoles = append(cfg.RealmRoles, rc.Name)
			}
		}
		if byClient, ok, err := roles.object("client"); err != nil {
			return cfg, err
		} else if ok {
			for _, id := range byClient.keys() {
				defs, paths, err := parseRoles(byClient, id, id)
				if err != nil {
					return cfg, err
				}
				cfg.Roles, rolePaths = append(cfg.Roles, defs...), append(rolePaths, paths...)
				for _, rc := range defs {
					clientRoles[id] = append(clientRoles[id], rc.Name)
				}
			}
		}
	}

	clients, err := root.array("clients")
	if err != nil {
		return cfg, err
	}
	index := map[string]int{}
	for i, raw := range clients {
		c, err := parseClient(root.index("clients", i), raw)
		if err != nil {
			return cfg, err
		}
		if _, dup := index[c.ClientID]; dup {
			return cfg, &RealmFileError{Path: root.index("clients", i) + ".clientId", Err: fmt.Errorf("duplicate clientId %q", c.ClientID)}
		}
		index[c.ClientID] = len(cfg.Clients)
		cfg.Clients = append(cfg.Clients, c)
	}
	ensureClient := func(id, path string) error {
		if _, ok := index[id]; ok || id == accountClientID {
			return nil
		}
		if !slices.Contains(builtinClients, id) {
			return &RealmFileError{Path: path, Err: fmt.Errorf("no client %q in clients", id)}
		}
		index[id] = len(cfg.Clients)
		cfg.Clients = append(cfg.Clients, ClientConfig{ClientID: id})
		return nil
	}
	for _, id := range sortedKeys(clientRoles) {
		roles := clientRoles[id]
		if err := ensureClient(id, "roles.client"+keyPath(id)); err != nil {
			return cfg, err
		}
		if i, ok := index[id]; ok {
			cfg.Clients[i].Roles = append(cfg.Clients[i].Roles, roles...)
		}
	}
	// Composite roles may only contain roles the file defines (or built-in
	// ones), as Keycloak's import requires.
	for i, rc := range cfg.Roles {
		path := rolePaths[i] + ".composites"
		for j, name := range rc.RealmComposites {
			if !slices.Contains(cfg.RealmRoles, name) && !isBuiltinRole(cfg.Name, name) {
				return cfg, &RealmFileError{Path: fmt.Sprintf("%s.realm[%d]", path, j), Err: fmt.Errorf("realm role %q is not defined in roles.realm", name)}
			}
		}
		for _, id := range sortedKeys(rc.ClientComposites) {
			cpath := path + ".client" + keyPath(id)
			if err := ensureClient(id, cpath); err != nil {
				return cfg, err
			}
			for j, name := range rc.ClientComposites[id] {
				if !slices.Contains(clientRoles[id], name) && !builtinClientRole(id, name) {
					return cfg, &RealmFileError{Path: fmt.Sprintf("%s[%d]", cpath, j), Err: fmt.Errorf("role %q of client %q is not defined in roles.client", name, id)}
				}
			}
		}
	}

	groups, err := root.array("groups")
	if err != nil {
		return cfg, err
	}
	for i, raw := range groups {
		g, err := parseGroup(root.index("groups", i), raw, ensureClient)
		if err != nil {
			return cfg, err
		}
		cfg.Groups = append(cfg.Groups, g)
	}

	users, err := root.array("users")
	if err != nil {
		return cfg, err
	}
	seen := map[string]string{}
	for i, raw := range users {
		path := root.index("users", i)
		u, saClient, err := parseUser(path, raw)
		if err != nil {
			return cfg, err
		}
		for _, id := range sortedKeys(u.ClientRoles) {
			if err := ensureClient(id, path+".clientRoles"+keyPath(id)); err != nil {
				return cfg, err
			}
		}
		if saClient != "" {
			ci, ok := index[saClient]
			if !ok || !cfg.Clients[ci].ServiceAccounts {
				return cfg, &RealmFileError{Path: path + ".serviceAccountClientId", Err: fmt.Errorf("no client %q with service accounts enabled", saClient)}
			}
			cfg.Clients[ci].ServiceAccountRealmRoles = u.RealmRoles
			cfg.Clients[ci].ServiceAccountClientRoles = u.ClientRoles
			cfg.Clients[ci].ServiceAccountUserID = u.ID
			// Listed with its roles, it gets only those; a service account
			// the file does not list is created with the default role.
			cfg.Clients[ci].ServiceAccountNoDefaultRoles = true
			continue
		}
		name := strings.ToLower(u.Username)
		if prev, dup := seen[name]; dup {
			return cfg, &RealmFileError{Path: path + ".username", Err: fmt.Errorf("duplicate username %q (also %s)", u.Username, prev)}
		}
		seen[name] = path
		cfg.Users = append(cfg.Users, u)
	}
	return cfg, nil
}

// parseGroup reads a GroupRepresentation with its subGroups.
func parseGroup(path string, raw json.RawMessage, ensureClient func(id, path string) error) (GroupConfig, error) {
	var g GroupConfig
	o, err := parseObject(path, raw)
	if err != nil {
		return g, err
	}
	if g.ID, err = o.str("id"); err != nil {
		return g, err
	}
	if g.Name, err = o.str("name"); err != nil {
		return g, err
	}
	if g.Name == "" || strings.Contains(g.Name, "/") || strings.ContainsFunc(g.Name, isControl) {
		return g, o.errAt("name", "missing or invalid group name")
	}
	if g.Attributes, err = o.multiMap("attributes"); err != nil {
		return g, err
	}
	if g.RealmRoles, err = o.strList("realmRoles"); err != nil {
		return g, err
	}
	if g.ClientRoles, err = o.multiMap("clientRoles"); err != nil {
		return g, err
	}
	for _, id := range sortedKeys(g.ClientRoles) {
		if err := ensureClient(id, o.sub("clientRoles")+keyPath(id)); err != nil {
			return g, err
		}
	}
	subs, err := o.array("subGroups")
	if err != nil {
		return g, err
	}
	for i, raw := range subs {
		sub, err := parseGroup(o.index("subGroups", i), raw, ensureClient)
		if err != nil {
			return g, err
		}
		g.SubGroups = append(g.SubGroups, sub)
	}
	return g, nil
}

func isBuiltinRole(realm, role string) bool {
	return slices.Contains(builtinRealmRoles, role) || role == "default-roles-"+strings.ToLower(realm)
}

// builtinClientRole reports whether Keycloak creates the client role itself.
func builtinClientRole(clientID, role string) bool {
	switch clientID {
	case accountClientID:
		return slices.Contains(accountRoles, role)
	case realmManagementClientID:
		return slices.Contains(adminRoles, role)
	}
	return false
}

// parseRoles reads an array of role representations (of client clientID,
// "" for realm roles): name, description and composites. It returns each
// role's JSON path too.
func parseRoles(o jsonObj, key, clientID string) ([]RoleConfig, []string, error) {
	items, err := o.array(key)
	if err != nil {
		return nil, nil, err
	}
	var out []RoleConfig
	var paths []string
	for i, raw := range items {
		path := o.index(key, i)
		ro, err := parseObject(path, raw)
		if err != nil {
			return nil, nil, err
		}
		rc := RoleConfig{Client: clientID}
		if rc.Name, err = ro.str("name"); err != nil {
			return nil, nil, err
		}
		if rc.Name == "" || strings.ContainsFunc(rc.Name, isControl) {
			return nil, nil, ro.errAt("name", "missing role name")
		}
		if rc.Description, err = ro.str("description"); err != nil {
			return nil, nil, err
		}
		composites, ok, err := ro.object("composites")
		if err != nil {
			return nil, nil, err
		}
		if ok {
			if rc.RealmComposites, err = composites.strList("realm"); err != nil {
				return nil, nil, err
			}
			if rc.ClientComposites, err = composites.multiMap("client"); err != nil {
				return nil, nil, err
			}
			if len(rc.ClientComposites) == 0 {
				rc.ClientComposites = nil
			}
		}
		out = append(out, rc)
		paths = append(paths, path)
	}
	return out, paths, nil
}

func parseClient(path string, raw json.RawMessage) (ClientConfig, error) {
	var c ClientConfig
	o, err := parseObject(path, raw)
	if err != nil {
		return c, err
	}
	if c.ClientID, err = o.str("clientId"); err != nil {
		return c, err
	}
	if c.ClientID == "" || strings.ContainsFunc(c.ClientID, isControl) {
		return c, o.errAt("clientId", "missing or invalid clientId")
	}
	if c.Secret, err = o.str("secret"); err != nil {
		return c, err
	}
	bools := []struct {
		key  string
		dst  *bool
		def  bool
		flip bool
	}{
		{"publicClient", &c.Public, false, false},
		{"enabled", &c.Disabled, true, true},
		{"standardFlowEnabled", &c.StandardFlow, true, false},
		{"directAccessGrantsEnabled", &c.DirectAccessGrants, false, false},
		{"serviceAccountsEnabled", &c.ServiceAccounts, false, false},
	}
	for _, b := range bools {
		v, err := o.optBool(b.key)
		if err != nil {
			return c, err
		}
		val := b.def
		if v != nil {
			val = *v
		}
		if b.flip {
			val = !val
		}
		*b.dst = val
	}
	if c.Public && c.ServiceAccounts {
		return c, o.errAt("serviceAccountsEnabled", "a public client cannot have a service account")
	}
	for _, l := range []struct {
		key string
		dst *[]string
	}{
		{"redirectUris", &c.RedirectURIs},
		{"webOrigins", &c.WebOrigins},
		{"defaultClientScopes", &c.DefaultScopes},
		{"optionalClientScopes", &c.OptionalScopes},
	} {
		if *l.dst, err = o.strList(l.key); err != nil {
			return c, err
		}
	}
	if _, ok := o.get("webOrigins"); !ok {
		c.WebOrigins = originsOf(c.RedirectURIs)
	}
	// Keycloak's import assigns the realm's default scopes only to a client
	// that lists neither kind: one with only optionalClientScopes gets no
	// default scope at all, not even basic (observed on Keycloak 24.0.5 and
	// 26.7.3: testdata of interop/conformance/testdata/exports).
	if (c.DefaultScopes == nil) != (c.OptionalScopes == nil) {
		if c.DefaultScopes == nil {
			c.DefaultScopes = []string{}
		} else {
			c.OptionalScopes = []string{}
		}
	}
	if c.Attributes, err = o.strMap("attributes"); err != nil {
		return c, err
	}
	if v := c.Attributes["post.logout.redirect.uris"]; v != "" {
		c.PostLogoutRedirectURIs = strings.Split(v, "##")
	}
	c.BackchannelLogoutURL = c.Attributes["backchannel.logout.url"]
	c.BackchannelLogoutSessionRequired = c.Attributes["backchannel.logout.session.required"] == "true"
	for _, k := range []string{"post.logout.redirect.uris", "backchannel.logout.url", "backchannel.logout.session.required"} {
		delete(c.Attributes, k)
	}
	if len(c.Attributes) == 0 {
		c.Attributes = nil
	}
	mappers, err := o.array("protocolMappers")
	if err != nil {
		return c, err
	}
	for i, raw := range mappers {
		m, ok, err := parseMapper(o.index("protocolMappers", i), raw)
		if err != nil {
			return c, err
		}
		if !ok {
			continue
		}
		// An audience mapper for access tokens only (and introspection,
		// by default) is ClientConfig.Audiences; any other mapper, one of
		// a type keycloaktest does not model included, is kept as it is.
		conf := m.Config
		if m.Type == mapperAudience && conf["access.token.claim"] == "true" && conf["id.token.claim"] != "true" &&
			conf["introspection.token.claim"] != "false" {
			for _, key := range []string{"included.client.audience", "included.custom.audience"} {
				if aud := conf[key]; aud != "" && !slices.Contains(c.Audiences, aud) {
					c.Audiences = append(c.Audiences, aud)
				}
			}
			continue
		}
		c.Mappers = append(c.Mappers, m)
	}
	return c, nil
}

// parseMapper reads a ProtocolMapperRepresentation; ok is false for a
// mapper of another protocol than openid-connect.
func parseMapper(path string, raw json.RawMessage) (m MapperConfig, ok bool, err error) {
	mo, err := parseObject(path, raw)
	if err != nil {
		return m, false, err
	}
	if m.Name, err = mo.str("name"); err != nil {
		return m, false, err
	}
	if m.Type, err = mo.str("protocolMapper"); err != nil {
		return m, false, err
	}
	protocol, err := mo.str("protocol")
	if err != nil {
		return m, false, err
	}
	var conf map[string]json.RawMessage
	if _, err := mo.decode("config", &conf, "an object"); err != nil {
		return m, false, err
	}
	if co, ok, err := mo.object("config"); err != nil {
		return m, false, err
	} else if ok {
		// The flags must read as booleans: a typo would silently leave
		// the claim out.
		for _, k := range []string{"access.token.claim", "id.token.claim", "userinfo.token.claim", "introspection.token.claim"} {
			if _, err := co.flag(k); err != nil {
				return m, false, err
			}
		}
	}
	for _, k := range sortedKeys(conf) {
		if string(bytes.TrimSpace(conf[k])) == "null" {
			continue
		}
		v, ok := mapperConfigValue(conf[k])
		if !ok {
			return m, false, &RealmFileError{Path: mo.sub("config") + keyPath(k), Err: fmt.Errorf("expected a string, got %s", jsonKind(conf[k]))}
		}
		if m.Config == nil {
			m.Config = map[string]string{}
		}
		m.Config[k] = v
	}
	return m, protocol == "" || protocol == protocolOIDC, nil
}

// parseClientScopes reads the realm's "clientScopes" into cfg.ClientScopes
// and resolves the clients' scope lists as Keycloak's import does
// (observed on 26.7.3): a client keeps only the scopes that exist, SAML
// ones left out; with "clientScopes" present, those are the only ones
// besides offline_access (Keycloak creates none of its built-in scopes
// then), and a client listing no scopes gets the realm's
// defaultDefaultClientScopes and defaultOptionalClientScopes (none, and
// offline_access, when absent). Keycloak's own mappers of built-in
// scopes are left to keycloaktest's built-in claims; mappers added to a
// built-in scope are kept.
func parseClientScopes(root jsonObj, cfg *RealmConfig) error {
	raws, err := root.array("clientScopes")
	if err != nil {
		return err
	}
	present := raws != nil
	known := []string{"offline_access"}
	if !present {
		for _, s := range builtinScopes() {
			if s.Protocol == protocolOIDC {
				known = append(known, s.Name)
			}
		}
	}
	for i, raw := range raws {
		path := root.index("clientScopes", i)
		so, err := parseObject(path, raw)
		if err != nil {
			return err
		}
		var sc ClientScopeConfig
		if sc.Name, err = so.str("name"); err != nil {
			return err
		}
		if sc.Name == "" || strings.ContainsFunc(sc.Name, isControl) || strings.Contains(sc.Name, " ") {
			return so.errAt("name", "missing or invalid client scope name")
		}
		protocol, err := so.str("protocol")
		if err != nil {
			return err
		}
		if protocol != "" && protocol != protocolOIDC {
			continue
		}
		if slices.Contains(known, sc.Name) && sc.Name != "offline_access" {
			return so.errAt("name", "duplicate client scope %q", sc.Name)
		}
		known = append(known, sc.Name)
		if sc.Attributes, err = so.strMap("attributes"); err != nil {
			return err
		}
		mappers, err := so.array("protocolMappers")
		if err != nil {
			return err
		}
		_, builtin := builtinScope(sc.Name)
		for j, mraw := range mappers {
			m, ok, err := parseMapper(so.index("protocolMappers", j), mraw)
			if err != nil {
				return err
			}
			if ok && (!(builtin && builtinMapper(sc.Name, m.Name)) || changedOrganizationMapper(sc.Name, m)) {
				sc.Mappers = append(sc.Mappers, m)
			}
		}
		if builtin {
			if len(sc.Mappers) == 0 {
				continue
			}
			sc.Attributes = nil
		}
		cfg.ClientScopes = append(cfg.ClientScopes, sc)
	}
	filter := func(l []string) []string {
		return slices.DeleteFunc(l, func(s string) bool { return !slices.Contains(known, s) })
	}
	var realmDefault, realmOptional []string
	if present {
		if realmDefault, err = root.strList("defaultDefaultClientScopes"); err != nil {
			return err
		}
		if realmOptional, err = root.strList("defaultOptionalClientScopes"); err != nil {
			return err
		}
		if _, ok := root.get("defaultOptionalClientScopes"); !ok {
			realmOptional = []string{"offline_access"}
		}
	}
	for i := range cfg.Clients {
		c := &cfg.Clients[i]
		builtinClient := slices.Contains(builtinClients, c.ClientID)
		if c.DefaultScopes == nil && present && !builtinClient {
			c.DefaultScopes = append([]string{}, realmDefault...)
		}
		if c.OptionalScopes == nil && present && !builtinClient {
			c.OptionalScopes = append([]string{}, realmOptional...)
		}
		if c.DefaultScopes != nil {
			c.DefaultScopes = filter(c.DefaultScopes)
		}
		if c.OptionalScopes != nil {
			c.OptionalScopes = filter(c.OptionalScopes)
		}
	}
	return nil
}

// addBasicScope does what Keycloak 25's migration does to an export from
// Keycloak 24 or older (keycloakVersion below 25) whose clientScopes have
// no "basic": it creates the scope (sub, auth_time) and makes it a default
// scope of every client, so that their tokens keep a sub. Files without
// keycloakVersion are not migrated: with clientScopes but no basic their
// clients issue tokens without sub, as do clients of any file that list
// defaultClientScopes without basic (all observed on Keycloak 26.7.3).
func addBasicScope(root jsonObj, clients []ClientConfig) error {
	version, err := root.str("keycloakVersion")
	if err != nil || version == "" {
		return err
	}
	major, _, _ := strings.Cut(version, ".")
	if n, err := strconv.Atoi(major); err != nil || n >= 25 {
		return nil
	}
	scopes, err := root.array("clientScopes")
	if err != nil || scopes == nil {
		return err
	}
	for i, raw := range scopes {
		so, err := parseObject(root.index("clientScopes", i), raw)
		if err != nil {
			return err
		}
		if name, err := so.str("name"); err != nil || name == "basic" {
			return err
		}
	}
	for i := range clients {
		if c := &clients[i]; c.DefaultScopes != nil && !slices.Contains(c.DefaultScopes, "basic") {
			c.DefaultScopes = append(c.DefaultScopes, "basic")
		}
	}
	return nil
}

// verifyProfileOn reads whether the realm's requiredActions leave
// VERIFY_PROFILE on: Keycloak 24+ registers it enabled in every realm, so
// only an entry with "enabled": false turns it off.
func verifyProfileOn(root jsonObj) (bool, error) {
	actions, err := root.array("requiredActions")
	if err != nil {
		return false, err
	}
	for i, raw := range actions {
		ao, err := parseObject(root.index("requiredActions", i), raw)
		if err != nil {
			return false, err
		}
		alias, err := ao.str("alias")
		if err != nil {
			return false, err
		}
		if alias != verifyProfile {
			continue
		}
		enabled, err := ao.optBool("enabled")
		if err != nil {
			return false, err
		}
		return enabled != nil && *enabled, nil
	}
	return true, nil
}

// originsOf is what Keycloak's import gives a client without webOrigins: the
// origins of its http(s) redirect URIs (conformance:
// password/alice-public.access_token.claims.allowed-origins).
func originsOf(redirectURIs []string) []string {
	var out []string
	for _, ru := range redirectURIs {
		if !strings.HasPrefix(ru, "http") {
			continue
		}
		u, err := url.Parse(ru)
		if err != nil || u.Host == "" || strings.Contains(u.Host, "*") {
			continue
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// parseUser reads one user; for a service-account user it also returns the
// client id it belongs to.
func parseUser(path string, raw json.RawMessage) (UserConfig, string, error) {
	var u UserConfig
	o, err := parseObject(path, raw)
	if err != nil {
		return u, "", err
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"id", &u.ID}, {"username", &u.Username}, {"email", &u.Email},
		{"firstName", &u.FirstName}, {"lastName", &u.LastName},
	} {
		if *f.dst, err = o.str(f.key); err != nil {
			return u, "", err
		}
	}
	if u.Username == "" || strings.ContainsFunc(u.Username, isControl) {
		return u, "", o.errAt("username", "missing or invalid username")
	}
	if strings.ContainsFunc(u.ID, isControl) {
		return u, "", o.errAt("id", "invalid user id")
	}
	// Keycloak's import leaves a user without "enabled" disabled.
	enabled, err := o.optBool("enabled")
	if err != nil {
		return u, "", err
	}
	u.Disabled = enabled == nil || !*enabled
	if v, err := o.optBool("emailVerified"); err != nil {
		return u, "", err
	} else if v != nil {
		u.EmailVerified = *v
	}
	if u.Attributes, err = o.multiMap("attributes"); err != nil {
		return u, "", err
	}
	if u.RequiredActions, err = o.strList("requiredActions"); err != nil {
		return u, "", err
	}
	if u.Groups, err = o.strList("groups"); err != nil {
		return u, "", err
	}
	links, err := o.array("federatedIdentities")
	if err != nil {
		return u, "", err
	}
	for i, raw := range links {
		lo, err := parseObject(o.index("federatedIdentities", i), raw)
		if err != nil {
			return u, "", err
		}
		var fi FederatedIdentity
		for _, f := range []struct {
			key string
			dst *string
		}{{"identityProvider", &fi.IdentityProvider}, {"userId", &fi.UserID}, {"userName", &fi.UserName}} {
			if *f.dst, err = lo.str(f.key); err != nil {
				return u, "", err
			}
		}
		if fi.IdentityProvider == "" || fi.UserID == "" {
			return u, "", &RealmFileError{Path: lo.path, Err: errors.New("federated identity needs identityProvider and userId")}
		}
		u.FederatedIdentities = append(u.FederatedIdentities, fi)
	}
	// Keycloak's import maps exactly the roles the file lists: no
	// default-roles-{realm} unless listed (real exports list it).
	u.NoDefaultRoles = true
	if u.RealmRoles, err = o.strList("realmRoles"); err != nil {
		return u, "", err
	}
	if u.ClientRoles, err = o.multiMap("clientRoles"); err != nil {
		return u, "", err
	}
	if len(u.ClientRoles) == 0 {
		u.ClientRoles = nil
	}
	creds, err := o.array("credentials")
	if err != nil {
		return u, "", err
	}
	havePassword, haveOTP := false, false
	for i, raw := range creds {
		cpath := o.index("credentials", i)
		co, err := parseObject(cpath, raw)
		if err != nil {
			return u, "", err
		}
		typ, err := co.str("type")
		if err != nil {
			return u, "", err
		}
		switch typ {
		case "password":
			if havePassword {
				return u, "", &RealmFileError{Path: cpath, Err: errors.New("more than one password credential")}
			}
			havePassword = true
			if err := parseCredential(co, &u); err != nil {
				return u, "", err
			}
		case "otp":
			if haveOTP {
				return u, "", &RealmFileError{Path: cpath, Err: errors.New("more than one otp credential")}
			}
			haveOTP = true
			if err := parseOTPCredential(co, &u); err != nil {
				return u, "", err
			}
		default:
			return u, "", co.errAt("type", "unsupported credential type %q", typ)
		}
	}
	sa, err := o.str("serviceAccountClientId")
	if err != nil {
		return u, "", err
	}
	if sa == "" && strings.HasPrefix(strings.ToLower(u.Username), serviceAccountPrefix) {
		return u, "", o.errAt("username", "the prefix %q is reserved for service accounts (set serviceAccountClientId)", serviceAccountPrefix)
	}
	return u, sa, nil
}

// parseCredential reads a password credential: plaintext "value", or the
// hashed "secretData"/"credentialData" pair Keycloak exports.
func parseCredential(co jsonObj, u *UserConfig) error {
	value, err := co.str("value")
	if err != nil {
		return err
	}
	// "temporary" is type-checked but, as in Keycloak's realm import, adds
	// no UPDATE_PASSWORD (observed on Keycloak 26.7.3; the admin API's
	// POST /users does add it, see credentialsFromRep).
	if _, err := co.optBool("temporary"); err != nil {
		return err
	}
	if value != "" {
		u.Password = value
		return nil
	}
	secretJSON, err := co.str("secretData")
	if err != nil {
		return err
	}
	credJSON, err := co.str("credentialData")
	if err != nil {
		return err
	}
	if secretJSON == "" || credJSON == "" {
		return &RealmFileError{Path: co.path, Err: errors.New(`password credential needs "value" or both "secretData" and "credentialData"`)}
	}
	cd, err := parseObject(co.sub("credentialData"), []byte(credJSON))
	if err != nil {
		return err
	}
	algorithm, err := cd.str("algorithm")
	if err != nil {
		return err
	}
	var a2 *Argon2Params
	if algorithm == Argon2 {
		if a2, err = parseArgon2Params(cd); err != nil {
			return err
		}
	} else if _, _, err := pbkdf2Params(algorithm); err != nil {
		return cd.errAt("algorithm", "unsupported password hash algorithm %q (supported: argon2, pbkdf2-sha256, pbkdf2-sha512, pbkdf2)", algorithm)
	}
	maxIters := int64(1 << 24)
	if algorithm == Argon2 {
		maxIters = argon2MaxIterations
	}
	iters, ok, err := cd.nonNegInt("hashIterations")
	if err != nil {
		return err
	}
	if !ok || iters == 0 || iters > maxIters {
		return cd.errAt("hashIterations", "want a positive iteration count up to %d", maxIters)
	}
	sd, err := parseObject(co.sub("secretData"), []byte(secretJSON))
	if err != nil {
		return err
	}
	var salt, hash []byte
	for _, f := range []struct {
		key string
		dst *[]byte
	}{{"salt", &salt}, {"value", &hash}} {
		s, err := sd.str(f.key)
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return sd.errAt(f.key, "want non-empty standard base64")
		}
		*f.dst = b
	}
	if len(hash) > 256 {
		return sd.errAt("value", "hash longer than 256 bytes")
	}
	u.PasswordHash = &PasswordHash{Algorithm: algorithm, Iterations: int(iters), Salt: salt, Hash: hash, Argon2: a2}
	if err := u.PasswordHash.validate(); err != nil {
		return &RealmFileError{Path: co.sub("credentialData"), Err: err}
	}
	return nil
}

// parseArgon2Params reads the additionalParameters Keycloak stores with an
// argon2 hash, each a one-element list of strings:
// {"hashLength":["32"],"memory":["7168"],"type":["id"],"version":["1.3"],"parallelism":["1"]}.
// Absent ones take Keycloak's defaults.
func parseArgon2Params(cd jsonObj) (*Argon2Params, error) {
	params, err := cd.multiMap("additionalParameters")
	if err != nil {
		return nil, err
	}
	path := cd.sub("additionalParameters")
	one := func(key, def string) (string, error) {
		v := params[key]
		switch len(v) {
		case 0:
			return def, nil
		case 1:
			return v[0], nil
		}
		return "", &RealmFileError{Path: path + keyPath(key), Err: errors.New("want one value")}
	}
	num := func(key string, def, max uint64) (uint64, error) {
		s, err := one(key, strconv.FormatUint(def, 10))
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 || n > max {
			return 0, &RealmFileError{Path: path + keyPath(key), Err: fmt.Errorf("want an integer from 1 to %d, got %q", max, s)}
		}
		return n, nil
	}
	a := &Argon2Params{}
	if a.Type, err = one("type", "id"); err != nil {
		return nil, err
	}
	if a.Type != "id" && a.Type != "i" {
		return nil, &RealmFileError{Path: path + keyPath("type"), Err: fmt.Errorf("unsupported argon2 type %q (supported: id, i)", a.Type)}
	}
	if v, err := one("version", "1.3"); err != nil {
		return nil, err
	} else if v != "1.3" {
		return nil, &RealmFileError{Path: path + keyPath("version"), Err: fmt.Errorf("unsupported argon2 version %q (supported: 1.3)", v)}
	}
	mem, err := num("memory", argon2DefaultMemory, argon2MaxMemory)
	if err != nil {
		return nil, err
	}
	par, err := num("parallelism", argon2DefaultParallelism, 255)
	if err != nil {
		return nil, err
	}
	// hashLength is implied by the length of secretData's value.
	if _, err := num("hashLength", argon2DefaultHashLength, 256); err != nil {
		return nil, err
	}
	a.Memory, a.Parallelism = uint32(mem), uint8(par)
	return a, nil
}

// parseOTPCredential reads Keycloak's otp credential: secretData
// {"value": secret} and credentialData {"subType":"totp","digits":6,
// "period":30,"algorithm":"HmacSHA1","secretEncoding":"BASE32"}. Without
// secretEncoding the secret's UTF-8 bytes are the key, as in Keycloak.
func parseOTPCredential(co jsonObj, u *UserConfig) error {
	secretJSON, err := co.str("secretData")
	if err != nil {
		return err
	}
	credJSON, err := co.str("credentialData")
	if err != nil {
		return err
	}
	if secretJSON == "" || credJSON == "" {
		return &RealmFileError{Path: co.path, Err: errors.New(`otp credential needs "secretData" and "credentialData"`)}
	}
	cd, err := parseObject(co.sub("credentialData"), []byte(credJSON))
	if err != nil {
		return err
	}
	if sub, err := cd.str("subType"); err != nil {
		return err
	} else if sub != "" && sub != "totp" {
		return cd.errAt("subType", "unsupported OTP type %q (only totp)", sub)
	}
	if alg, err := cd.str("algorithm"); err != nil {
		return err
	} else if alg != "" && alg != "HmacSHA1" {
		return cd.errAt("algorithm", "unsupported OTP algorithm %q (only HmacSHA1)", alg)
	}
	for key, want := range map[string]int64{"digits": totpDigits, "period": totpPeriod} {
		n, ok, err := cd.nonNegInt(key)
		if err != nil {
			return err
		}
		if ok && n != want {
			return cd.errAt(key, "unsupported value %d (only %d)", n, want)
		}
	}
	encoding, err := cd.str("secretEncoding")
	if err != nil {
		return err
	}
	sd, err := parseObject(co.sub("secretData"), []byte(secretJSON))
	if err != nil {
		return err
	}
	value, err := sd.str("value")
	if err != nil {
		return err
	}
	if value == "" {
		return sd.errAt("value", "empty OTP secret")
	}
	switch strings.ToUpper(encoding) {
	case "":
		u.TOTPSecret = encodeTOTPKey([]byte(value))
	case "BASE32":
		key, err := decodeTOTPSecret(value)
		if err != nil {
			return sd.errAt("value", "not base32")
		}
		u.TOTPSecret = encodeTOTPKey(key)
	default:
		return cd.errAt("secretEncoding", "unsupported secret encoding %q", encoding)
	}
	return nil
}

// jsonObj is a JSON object being read, with its path for error messages.
type jsonObj struct {
	path string
	m    map[string]json.RawMessage
}

func parseObject(path string, raw []byte) (jsonObj, error) {
	o := jsonObj{path: path}
	trimmed := bytes.TrimSpace(raw)
	if path == "" && len(trimmed) == 0 {
		return o, &RealmFileError{Err: errEmptyDocument}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if path == "" && !json.Valid(raw) {
			return o, &RealmFileError{Err: jsonSyntaxError(raw)}
		}
		if path == "" && trimmed[0] == '[' {
			return o, &RealmFileError{Err: errors.New("expected an object, got an array (an export of several realms? a realm file holds one: kc.sh export --realm NAME)")}
		}
		return o, &RealmFileError{Path: path, Err: fmt.Errorf("expected an object, got %s", jsonKind(raw))}
	}
	if err := json.Unmarshal(trimmed, &o.m); err != nil {
		return o, &RealmFileError{Path: path, Err: jsonSyntaxError(raw)}
	}
	return o, nil
}

// jsonSyntaxError describes invalid JSON by line and column, without
// echoing its content (which may hold secrets) beyond the one offending
// character.
func jsonSyntaxError(raw []byte) error {
	var v any
	err := json.Unmarshal(raw, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		if err != nil {
			return errors.New("invalid JSON")
		}
		return errors.New("unexpected JSON")
	}
	off := int(se.Offset)
	if off >= len(raw) && strings.Contains(se.Error(), "unexpected end") {
		line, col := lineColumn(raw, len(raw))
		return &jsonSyntax{line: line, col: col, msg: "the document ends early (an object, array or string is not closed)"}
	}
	off = max(off-1, 0) // encoding/json reports the offset after the offending byte
	line, col := lineColumn(raw, off)
	if bytes.HasPrefix(raw, []byte("\xef\xbb\xbf")) && off < 3 {
		return &jsonSyntax{line: line, col: col, msg: "the file starts with a byte order mark; save it as UTF-8 without BOM"}
	}
	what := "unexpected character"
	if c := raw[off]; c >= 0x20 && c < 0x7f {
		what += fmt.Sprintf(" %q", rune(c))
	}
	for _, sc := range syntaxContexts {
		if strings.Contains(se.Error(), sc.goText) {
			return &jsonSyntax{line: line, col: col, msg: what + " " + sc.text}
		}
	}
	return &jsonSyntax{line: line, col: col, msg: what}
}

// locateJSONPath returns the byte offset of the value at a RealmFileError
// path (e.g. `users[2].credentials[0].type`, `attributes["a.b"]`) in a
// document, when it is there.
func locateJSONPath(data []byte, path string) (int, bool) {
	type step struct {
		key   string
		index int // -1 for a key
	}
	var steps []step
	for i := 0; i < len(path); {
		switch {
		case path[i] == '[' && i+1 < len(path) && path[i+1] == '"':
			q, err := strconv.QuotedPrefix(path[i+1:])
			if err != nil {
				return 0, false
			}
			key, _ := strconv.Unquote(q)
			i += 1 + len(q)
			if i >= len(path) || path[i] != ']' {
				return 0, false
			}
			steps, i = append(steps, step{key: key, index: -1}), i+1
		case path[i] == '[':
			end := strings.IndexByte(path[i:], ']')
			n, err := strconv.Atoi(path[i+1 : i+max(end, 1)])
			if end < 0 || err != nil || n < 0 {
				return 0, false
			}
			steps, i = append(steps, step{index: n}), i+end+1
		default:
			if path[i] == '.' {
				i++
			}
			end := strings.IndexAny(path[i:], ".[")
			if end < 0 {
				end = len(path) - i
			}
			if end == 0 {
				return 0, false
			}
			steps, i = append(steps, step{key: path[i : i+end], index: -1}), i+end
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	skip := func() error { // the next value
		depth := 0
		for {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			switch t {
			case json.Delim('{'), json.Delim('['):
				depth++
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 0 {
				return nil
			}
		}
	}
	for _, st := range steps {
		t, err := dec.Token()
		if err != nil {
			return 0, false
		}
		if st.index < 0 {
			if t != json.Delim('{') {
				return 0, false
			}
			for {
				if !dec.More() {
					return 0, false
				}
				k, err := dec.Token()
				if err != nil {
					return 0, false
				}
				if k == st.key {
					break
				}
				if skip() != nil {
					return 0, false
				}
			}
			continue
		}
		if t != json.Delim('[') {
			return 0, false
		}
		for j := 0; j < st.index; j++ {
			if !dec.More() || skip() != nil {
				return 0, false
			}
		}
		if !dec.More() {
			return 0, false
		}
	}
	off := int(dec.InputOffset())
	for off < len(data) && strings.IndexByte(" \t\r\n:,", data[off]) >= 0 {
		off++
	}
	return off, off < len(data)
}

func jsonKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

var identRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyPath renders an object member for a path: .name or ["odd.name"].
func keyPath(key string) string {
	if identRe.MatchString(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

func (o jsonObj) sub(key string) string {
	p := keyPath(key)
	if o.path == "" && p[0] == '.' {
		return p[1:]
	}
	return o.path + p
}

func (o jsonObj) index(key string, i int) string { return fmt.Sprintf("%s[%d]", o.sub(key), i) }

func (o jsonObj) errAt(key, format string, args ...any) error {
	return &RealmFileError{Path: o.sub(key), Err: fmt.Errorf(format, args...)}
}

func (o jsonObj) keys() []string { return sortedKeys(o.m) }

// get returns a member, treating null as absent.
func (o jsonObj) get(key string) (json.RawMessage, bool) {
	raw, ok := o.m[key]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, false
	}
	return raw, true
}

func (o jsonObj) decode(key string, dst any, want string) (bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, o.errAt(key, "expected %s, got %s", want, jsonKind(raw))
	}
	return true, nil
}

func (o jsonObj) str(key string) (string, error) {
	var s string
	_, err := o.decode(key, &s, "a string")
	return s, err
}

func (o jsonObj) optBool(key string) (*bool, error) {
	var b bool
	ok, err := o.decode(key, &b, "a boolean")
	if !ok || err != nil {
		return nil, err
	}
	return &b, nil
}

// flag reads a Keycloak config flag, a "true"/"false" string (booleans are
// accepted too).
func (o jsonObj) flag(key string) (bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && (s == "true" || s == "false") {
		return s == "true", nil
	}
	return false, o.errAt(key, `expected "true" or "false", got %s`, jsonKind(raw))
}

func (o jsonObj) nonNegInt(key string) (int64, bool, error) {
	var n int64
	ok, err := o.decode(key, &n, "an integer")
	if err != nil {
		return 0, false, err
	}
	if n < 0 || n > 1<<40 {
		return 0, false, o.errAt(key, "out of range: %d", n)
	}
	return n, ok, nil
}

func (o jsonObj) strList(key string) ([]string, error) {
	var l []string
	_, err := o.decode(key, &l, "an array of strings")
	return l, err
}

func (o jsonObj) array(key string) ([]json.RawMessage, error) {
	var l []json.RawMessage
	_, err := o.decode(key, &l, "an array")
	return l, err
}

func (o jsonObj) object(key string) (jsonObj, bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return jsonObj{path: o.sub(key)}, false, nil
	}
	sub, err := parseObject(o.sub(key), raw)
	return sub, err == nil, err
}

func (o jsonObj) strMap(key string) (map[string]string, error) {
	var m map[string]string
	_, err := o.decode(key, &m, "an object of strings")
	return m, err
}

func (o jsonObj) multiMap(key string) (map[string][]string, error) {
	var m map[string][]string
	_, err := o.decode(key, &m, "an object of string arrays")
	return m, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
