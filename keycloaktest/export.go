package keycloaktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Realm-export representation, in the field order Keycloak writes.
type (
	exportRealm struct {
		Realm                     string            `json:"realm"`
		Enabled                   bool              `json:"enabled"`
		AccessTokenLifespan       int64             `json:"accessTokenLifespan"`
		SSOSessionIdleTimeout     int64             `json:"ssoSessionIdleTimeout"`
		SSOSessionMaxLifespan     int64             `json:"ssoSessionMaxLifespan"`
		RevokeRefreshToken        bool              `json:"revokeRefreshToken"`
		RefreshTokenMaxReuse      int               `json:"refreshTokenMaxReuse"`
		DefaultSignatureAlgorithm string            `json:"defaultSignatureAlgorithm"`
		RegistrationAllowed       bool              `json:"registrationAllowed"`
		Attributes                map[string]string `json:"attributes,omitempty"`
		Roles                     exportRoles       `json:"roles"`
		// DefaultRole names the realm's default role; without it, Keycloak
		// would import a definition of default-roles-{realm} in Roles as an
		// ordinary role and create its default role under another name.
		DefaultRole exportRole     `json:"defaultRole"`
		Groups      []exportGroup  `json:"groups,omitempty"`
		Clients     []exportClient `json:"clients"`
		// ClientScopes, with the realm's default scope assignment, are
		// written when the realm has custom scopes: all of Keycloak's
		// built-in ones too, which its import does not create otherwise.
		ClientScopes                []exportClientScope `json:"clientScopes,omitempty"`
		DefaultDefaultClientScopes  []string            `json:"defaultDefaultClientScopes,omitempty"`
		DefaultOptionalClientScopes []string            `json:"defaultOptionalClientScopes,omitempty"`
		Users                       []exportUser        `json:"users"`
	}
	exportGroup struct {
		ID          string              `json:"id"`
		Name        string              `json:"name"`
		Path        string              `json:"path"`
		Attributes  map[string][]string `json:"attributes"`
		RealmRoles  []string            `json:"realmRoles"`
		ClientRoles map[string][]string `json:"clientRoles"`
		SubGroups   []exportGroup       `json:"subGroups"`
	}
	exportRoles struct {
		Realm  []exportRole            `json:"realm"`
		Client map[string][]exportRole `json:"client,omitempty"`
	}
	exportRole struct {
		Name        string           `json:"name"`
		Description string           `json:"description,omitempty"`
		Composite   bool             `json:"composite"`
		Composites  *exportComposite `json:"composites,omitempty"`
		// ClientRole distinguishes client roles in Keycloak's representation.
		ClientRole bool `json:"clientRole"`
	}
	exportComposite struct {
		Realm  []string            `json:"realm,omitempty"`
		Client map[string][]string `json:"client,omitempty"`
	}
	exportClient struct {
		ClientID                  string            `json:"clientId"`
		Enabled                   bool              `json:"enabled"`
		Protocol                  string            `json:"protocol"`
		PublicClient              bool              `json:"publicClient"`
		ClientAuthenticatorType   string            `json:"clientAuthenticatorType,omitempty"`
		Secret                    string            `json:"secret,omitempty"`
		RedirectURIs              []string          `json:"redirectUris"`
		WebOrigins                []string          `json:"webOrigins"`
		StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
		ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
		DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
		ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
		FullScopeAllowed          bool              `json:"fullScopeAllowed"`
		Attributes                map[string]string `json:"attributes,omitempty"`
		ProtocolMappers           []exportMapper    `json:"protocolMappers,omitempty"`
		DefaultClientScopes       []string          `json:"defaultClientScopes,omitempty"`
		OptionalClientScopes      []string          `json:"optionalClientScopes,omitempty"`
	}
	exportMapper struct {
		Name            string            `json:"name"`
		Protocol        string            `json:"protocol"`
		ProtocolMapper  string            `json:"protocolMapper"`
		ConsentRequired bool              `json:"consentRequired"`
		Config          map[string]string `json:"config"`
	}
	exportUser struct {
		ID                     string              `json:"id"`
		Username               string              `json:"username"`
		Enabled                bool                `json:"enabled"`
		EmailVerified          bool                `json:"emailVerified"`
		Email                  string              `json:"email,omitempty"`
		FirstName              string              `json:"firstName,omitempty"`
		LastName               string              `json:"lastName,omitempty"`
		Attributes             map[string][]string `json:"attributes,omitempty"`
		Credentials            []exportCredential  `json:"credentials,omitempty"`
		RequiredActions        []string            `json:"requiredActions"`
		RealmRoles             []string            `json:"realmRoles"`
		ClientRoles            map[string][]string `json:"clientRoles,omitempty"`
		ServiceAccountClientID string              `json:"serviceAccountClientId,omitempty"`
		Groups                 []string            `json:"groups,omitempty"`
		FederatedIdentities    []FederatedIdentity `json:"federatedIdentities,omitempty"`
	}
	exportCredential struct {
		Type           string `json:"type"`
		UserLabel      string `json:"userLabel,omitempty"`
		Value          string `json:"value,omitempty"`
		Temporary      *bool  `json:"temporary,omitempty"`
		SecretData     string `json:"secretData,omitempty"`
		CredentialData string `json:"credentialData,omitempty"`
	}
)

// Export writes the realm as a Keycloak realm-export JSON document that
// Keycloak 26 can import (kc.sh import, or --import-realm) and ParseRealm
// reads back. Plaintext passwords are written as plaintext credentials, which
// is what a development realm wants; hashed ones keep their hash.
func (r *Realm) Export() ([]byte, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := exportRealm{
		Realm:                     r.name,
		Enabled:                   !r.cfg.Disabled,
		AccessTokenLifespan:       int64(r.cfg.AccessTokenLifespan / time.Second),
		SSOSessionIdleTimeout:     int64(r.cfg.SSOSessionIdle / time.Second),
		SSOSessionMaxLifespan:     int64(r.cfg.SSOSessionMax / time.Second),
		RevokeRefreshToken:        r.cfg.RevokeRefreshToken,
		RefreshTokenMaxReuse:      r.cfg.RefreshTokenMaxReuse,
		DefaultSignatureAlgorithm: r.cfg.DefaultSignatureAlgorithm,
		RegistrationAllowed:       r.cfg.RegistrationAllowed,
		Roles:                     exportRoles{Realm: []exportRole{}},
		Clients:                   []exportClient{},
		Users:                     []exportUser{},
	}
	if len(r.cfg.ACRLoA) > 0 {
		m, err := json.Marshal(r.cfg.ACRLoA)
		if err != nil {
			return nil, fmt.Errorf("keycloaktest: export realm %q: %w", r.name, err)
		}
		out.Attributes = map[string]string{"acr.loa.map": string(m)}
	}
	// Custom roles, and built-in ones: offline_access and uma_authorization
	// always (Keycloak's import resolves composites against the roles of
	// the file, so a composite containing one needs its definition),
	// default-roles-{realm} when its description or composites differ
	// from what Keycloak creates.
	builtin := builtinRoleDefs(r.defaultRolesName())
	changed := func(ref roleRef) bool { return !sameRoleDef(r.roleDefs[ref], builtin[ref]) }
	if changed(roleRef{"", r.defaultRolesName()}) {
		out.Roles.Realm = append(out.Roles.Realm, r.exportRole(roleRef{"", r.defaultRolesName()}))
	}
	for _, role := range builtinRealmRoles {
		out.Roles.Realm = append(out.Roles.Realm, r.exportRole(roleRef{"", role}))
	}
	for _, role := range r.realmRoles {
		out.Roles.Realm = append(out.Roles.Realm, r.exportRole(roleRef{"", role}))
	}
	out.DefaultRole = exportRole{Name: r.defaultRolesName(), Composite: true}
	if d := r.roleDefs[roleRef{"", r.defaultRolesName()}]; d != nil {
		out.DefaultRole.Description = d.description
	}
	out.Roles.Client = map[string][]exportRole{}
	r.exportClientScopes(&out)
	for _, id := range r.clientSeq {
		c := r.clients[id]
		out.Clients = append(out.Clients, r.exportClient(c))
		for _, role := range c.roles {
			out.Roles.Client[id] = append(out.Roles.Client[id], r.exportRole(roleRef{id, role}))
		}
	}
	// The built-in clients' custom roles, and built-in roles changed.
	for _, id := range sortedKeys(r.clients) {
		if c := r.clients[id]; c.builtin {
			for _, role := range c.roles {
				if !builtinClientRole(id, role) || changed(roleRef{id, role}) {
					out.Roles.Client[id] = append(out.Roles.Client[id], r.exportRole(roleRef{id, role}))
				}
			}
		}
	}
	// Roles of Keycloak's own account client, unless the realm has a client
	// "account" of its own (exported above).
	if _, ok := r.clients[accountClientID]; !ok {
		for _, role := range append(slices.Clone(accountRoles), r.accountExtra...) {
			if !builtinClientRole(accountClientID, role) || changed(roleRef{accountClientID, role}) {
				out.Roles.Client[accountClientID] = append(out.Roles.Client[accountClientID], r.exportRole(roleRef{accountClientID, role}))
			}
		}
	}
	if len(out.Roles.Client) == 0 {
		out.Roles.Client = nil
	}
	for _, id := range r.topGroups {
		out.Groups = append(out.Groups, r.exportGroup(r.groups[id]))
	}
	ids := make([]string, 0, len(r.users))
	for id := range r.users {
		ids = append(ids, id)
	}
	// Stable order: regular users by username, then service accounts.
	slices.SortFunc(ids, func(a, b string) int {
		ua, ub := r.users[a], r.users[b]
		if (ua.serviceAccountOf == "") != (ub.serviceAccountOf == "") {
			if ua.serviceAccountOf == "" {
				return -1
			}
			return 1
		}
		return strings.Compare(ua.username, ub.username)
	})
	for _, id := range ids {
		eu, err := r.exportUser(r.users[id])
		if err != nil {
			return nil, err
		}
		out.Users = append(out.Users, eu)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: export realm %q: %w", r.name, err)
	}
	return append(data, '\n'), nil
}

// exportRole renders a role definition with its description and
// composites.
func (r *Realm) exportRole(ref roleRef) exportRole {
	er := exportRole{Name: ref.name, ClientRole: ref.client != ""}
	d := r.roleDefs[ref]
	if d == nil {
		return er
	}
	er.Description = d.description
	if len(d.composites) == 0 {
		return er
	}
	er.Composite = true
	er.Composites = &exportComposite{}
	for _, c := range d.composites {
		if c.client == "" {
			er.Composites.Realm = append(er.Composites.Realm, c.name)
			continue
		}
		if er.Composites.Client == nil {
			er.Composites.Client = map[string][]string{}
		}
		er.Composites.Client[c.client] = append(er.Composites.Client[c.client], c.name)
	}
	return er
}

func (r *Realm) exportClient(c *client) exportClient {
	cfg := c.cfg
	ec := exportClient{
		ClientID:                  cfg.ClientID,
		Enabled:                   !cfg.Disabled,
		Protocol:                  "openid-connect",
		PublicClient:              cfg.Public,
		Secret:                    cfg.Secret,
		RedirectURIs:              nonNil(cfg.RedirectURIs),
		WebOrigins:                nonNil(cfg.WebOrigins),
		StandardFlowEnabled:       cfg.StandardFlow,
		DirectAccessGrantsEnabled: cfg.DirectAccessGrants,
		ServiceAccountsEnabled:    cfg.ServiceAccounts,
		FullScopeAllowed:          true,
		DefaultClientScopes:       cfg.DefaultScopes,
		OptionalClientScopes:      cfg.OptionalScopes,
		Attributes:                map[string]string{},
	}
	if cfg.Public {
		ec.Secret = ""
	} else {
		ec.ClientAuthenticatorType = "client-secret"
	}
	for k, v := range cfg.Attributes {
		ec.Attributes[k] = v
	}
	if len(cfg.PostLogoutRedirectURIs) > 0 {
		ec.Attributes["post.logout.redirect.uris"] = strings.Join(cfg.PostLogoutRedirectURIs, "##")
	}
	if cfg.BackchannelLogoutURL != "" {
		ec.Attributes["backchannel.logout.url"] = cfg.BackchannelLogoutURL
	}
	ec.Attributes["backchannel.logout.session.required"] = strconv.FormatBool(cfg.BackchannelLogoutSessionRequired)
	ec.ProtocolMappers = append(ec.ProtocolMappers, exportMappers(cfg.Mappers)...)
	for _, aud := range cfg.Audiences {
		key := "included.custom.audience"
		if _, ok := r.clients[aud]; ok || aud == accountClientID {
			key = "included.client.audience"
		}
		ec.ProtocolMappers = append(ec.ProtocolMappers, exportMapper{
			Name:           "audience " + aud,
			Protocol:       "openid-connect",
			ProtocolMapper: "oidc-audience-mapper",
			Config: map[string]string{
				key:                         aud,
				"access.token.claim":        "true",
				"id.token.claim":            "false",
				"introspection.token.claim": "true",
			},
		})
	}
	return ec
}

func (r *Realm) exportUser(u *user) (exportUser, error) {
	eu := exportUser{
		ID:                     u.id,
		Username:               u.username,
		Enabled:                u.enabled,
		EmailVerified:          u.emailVerified,
		Email:                  u.email,
		FirstName:              u.firstName,
		LastName:               u.lastName,
		Attributes:             u.attributes,
		RequiredActions:        nonNil(u.requiredActions),
		RealmRoles:             nonNil(u.realmRoles),
		ClientRoles:            u.clientRoles,
		ServiceAccountClientID: u.serviceAccountOf,
		FederatedIdentities:    u.federated,
	}
	for _, id := range u.groups {
		if g := r.groups[id]; g != nil {
			eu.Groups = append(eu.Groups, g.path)
		}
	}
	switch {
	case u.hash != nil:
		secret, err := json.Marshal(map[string]any{
			"value": base64.StdEncoding.EncodeToString(u.hash.Hash),
			"salt":  base64.StdEncoding.EncodeToString(u.hash.Salt), "additionalParameters": map[string]any{}})
		if err != nil {
			return eu, fmt.Errorf("keycloaktest: export user %q: %w", u.username, err)
		}
		cred, err := json.Marshal(u.hash.credentialData())
		if err != nil {
			return eu, fmt.Errorf("keycloaktest: export user %q: %w", u.username, err)
		}
		eu.Credentials = []exportCredential{{Type: "password", SecretData: string(secret), CredentialData: string(cred)}}
	case u.password != "":
		f := false
		eu.Credentials = []exportCredential{{Type: "password", Value: u.password, Temporary: &f}}
	}
	if u.totpSecret != "" {
		secret, err := json.Marshal(map[string]string{"value": u.totpSecret})
		if err != nil {
			return eu, fmt.Errorf("keycloaktest: export user %q: %w", u.username, err)
		}
		cred, err := json.Marshal(map[string]any{"subType": "totp", "digits": totpDigits, "counter": 0,
			"period": totpPeriod, "algorithm": "HmacSHA1", "secretEncoding": "BASE32"})
		if err != nil {
			return eu, fmt.Errorf("keycloaktest: export user %q: %w", u.username, err)
		}
		eu.Credentials = append(eu.Credentials, exportCredential{Type: "otp", UserLabel: "keycloaktest",
			SecretData: string(secret), CredentialData: string(cred)})
	}
	return eu, nil
}

func (r *Realm) exportGroup(g *group) exportGroup {
	eg := exportGroup{ID: g.id, Name: g.name, Path: g.path, Attributes: g.attributes, RealmRoles: nonNil(g.realmRoles),
		ClientRoles: g.clientRoles, SubGroups: []exportGroup{}}
	if eg.Attributes == nil {
		eg.Attributes = map[string][]string{}
	}
	if eg.ClientRoles == nil {
		eg.ClientRoles = map[string][]string{}
	}
	for _, id := range g.children {
		eg.SubGroups = append(eg.SubGroups, r.exportGroup(r.groups[id]))
	}
	return eg
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// exportMappers writes protocol mappers as ProtocolMapperRepresentations.
func exportMappers(ms []MapperConfig) []exportMapper {
	var out []exportMapper
	for _, m := range ms {
		conf := cloneStringMap(m.Config)
		if conf == nil {
			conf = map[string]string{}
		}
		out = append(out, exportMapper{Name: m.Name, Protocol: protocolOIDC, ProtocolMapper: m.Type, Config: conf})
	}
	return out
}

// exportClientScopes writes the realm's custom client scopes, next to
// Keycloak 26.7.3's built-in ones (mappers added to a built-in scope
// joining its own) and the realm's default scope assignment.
func (r *Realm) exportClientScopes(out *exportRealm) {
	if len(r.cfg.ClientScopes) == 0 {
		return
	}
	for _, b := range builtinScopes() {
		b.Attributes = cloneStringMap(b.Attributes)
		b.ProtocolMappers = slices.Clone(b.ProtocolMappers)
		if sc, ok := r.clientScopeConfig(b.Name); ok && b.Protocol == protocolOIDC {
			b.ProtocolMappers = append(b.ProtocolMappers, exportMappers(sc.Mappers)...)
		}
		out.ClientScopes = append(out.ClientScopes, b)
	}
	for _, sc := range r.cfg.ClientScopes {
		if _, builtin := builtinScope(sc.Name); builtin {
			continue
		}
		attrs := cloneStringMap(sc.Attributes)
		if attrs == nil {
			attrs = map[string]string{}
		}
		out.ClientScopes = append(out.ClientScopes, exportClientScope{Name: sc.Name, Protocol: protocolOIDC,
			Attributes: attrs, ProtocolMappers: exportMappers(sc.Mappers)})
	}
	out.DefaultDefaultClientScopes = slices.Clone(keycloakDefaultScopes)
	out.DefaultOptionalClientScopes = slices.Clone(keycloakOptionalScopes)
}
