package keycloaktest

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// accountClientID is Keycloak's built-in client of the account console,
// whose roles (accountRoles) default-roles-{realm} grants.
const accountClientID = "account"

// serviceAccountPrefix prefixes the username of a client's service account.
const serviceAccountPrefix = "service-account-"

// Realm is one realm of a Server. It is safe for concurrent use.
type Realm struct {
	srv          *Server
	name         string
	jwksRequests atomic.Int64

	mu         sync.RWMutex
	cfg        RealmConfig // defaults applied; Users and Clients are not kept here
	realmRoles []string    // custom realm roles, in definition order
	users      map[string]*user
	byName     map[string]string // lower-cased username -> user id
	clients    map[string]*client
	clientSeq  []string // client ids in creation order, for export
	keys       []*realmKey
	active     map[string]*realmKey // JOSE alg -> active signing key
	hmac       *hmacKey
	sessions   map[string]*userSession
	groups     map[string]*group    // group id -> group
	topGroups  []string             // ids of top-level groups, in definition order
	roleIDs    map[string]string    // role key (see roleIDLocked) -> role id
	roleDefs   map[roleRef]*roleDef // descriptions and composites (roles.go)
	// accountExtra are custom roles of the built-in account client when
	// the realm has no client "account" of its own.
	accountExtra []string
	revoked      map[string]time.Time // revoked access-token jti -> its exp
	seq          uint64               // orders refresh tokens for rotation checks

	// Browser side: login tabs per browser, authorization codes, pending
	// logout confirmations, and what tests inspect afterwards.
	authSessions map[string]*rootAuthSession // AUTH_SESSION_ID cookie -> tabs
	codes        map[string]*authCode
	logoutCodes  map[string]*pendingLogout
	deliveries   []LogoutDelivery
	outbox       []Email
	// usedActionTokens are the jtis of execute-actions links already
	// followed: such a link works once.
	usedActionTokens map[string]bool
	// userProfile is the realm's user profile (admin_profile.go); nil is
	// Keycloak's default one.
	userProfile *upConfig
	// orgs are the realm's organizations and identity providers
	// (organizations.go).
	orgs orgState

	// sweepMu serializes ExpireSessions calls, so a caller returns only
	// after every expiry it could see was delivered.
	sweepMu sync.Mutex
}

type user struct {
	id, username, email, firstName, lastName string
	emailVerified, enabled                   bool
	password                                 string
	hash                                     *PasswordHash
	requiredActions                          []string
	attributes                               map[string][]string
	realmRoles                               []string
	clientRoles                              map[string][]string
	serviceAccountOf                         string   // client id for service-account users
	totpSecret                               string   // base32, "" when no OTP credential
	totpLastStep                             int64    // last accepted TOTP step (codes are single-use)
	groups                                   []string // ids of the groups the user is a member of
	federated                                []FederatedIdentity
	created                                  time.Time
	creds                                    *credentialState // credential ids and dates (admin_credentials.go)
}

type client struct {
	cfg     ClientConfig
	roles   []string
	uuid    string // the internal id the admin API uses in paths
	builtin bool   // created by the realm itself (realm-management, admin-cli); not exported
}

type userSession struct {
	id       string
	userID   string
	issuer   string // issuer the session was started under, for logout tokens
	started  time.Time
	last     time.Time
	ended    bool
	clients  map[string]*clientSession
	authTime int64
	loa      int    // highest level of authentication reached (1 password, 2 OTP)
	ip       string // client address at login, for the admin API's session list
}

// clientSession tracks the refresh tokens of one client in a user session,
// which is what Keycloak's rotation (revokeRefreshToken) works on.
type clientSession struct {
	acr         string            // acr claim of this client's tokens ("" = "1")
	current     string            // jti of the refresh token used last
	useCount    int               // uses of current
	lastRefresh uint64            // seq of the last successful refresh
	issued      map[string]uint64 // refresh-token jti -> seq at issue
}

func newRealm(srv *Server, cfg RealmConfig) (*Realm, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hk, err := newHMACKey()
	if err != nil {
		return nil, err
	}
	r := &Realm{
		srv:      srv,
		name:     cfg.Name,
		users:    map[string]*user{},
		byName:   map[string]string{},
		clients:  map[string]*client{},
		active:   map[string]*realmKey{},
		hmac:     hk,
		sessions: map[string]*userSession{},
		groups:   map[string]*group{},
		roleIDs:  map[string]string{},
		revoked:  map[string]time.Time{},

		authSessions: map[string]*rootAuthSession{},
		codes:        map[string]*authCode{},
		logoutCodes:  map[string]*pendingLogout{},

		usedActionTokens: map[string]bool{},
	}
	users, clients := cfg.Users, cfg.Clients
	cfg.Users, cfg.Clients = nil, nil
	r.cfg = cfg
	for _, role := range cfg.RealmRoles {
		if err := r.defineRealmRole(role); err != nil {
			return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
		}
	}
	for _, c := range clients {
		if err := r.addClientLocked(c); err != nil {
			return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
		}
	}
	r.addBuiltinClientsLocked()
	r.initRolesLocked()
	if srv != nil && srv.logger != nil {
		for _, m := range unmodelledMappers(cfg.ClientScopes, clients) {
			srv.logger.Warn("keycloaktest: protocol mapper is not modelled; its claims are left out", "realm", cfg.Name, "mapper", m)
		}
	}
	if err := r.applyRoleConfigsLocked(cfg.Roles); err != nil {
		return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
	}
	r.cfg.Roles = nil
	for _, g := range cfg.Groups {
		if err := r.addGroupLocked(g, nil); err != nil {
			return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
		}
	}
	r.cfg.Groups = nil
	for _, c := range clients {
		if c.ServiceAccounts {
			if err := r.addServiceAccountLocked(c); err != nil {
				return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
			}
		}
	}
	for _, u := range users {
		if _, err := r.AddUser(u); err != nil {
			return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
		}
	}
	if err := r.initOrganizationsLocked(cfg); err != nil {
		return nil, fmt.Errorf("realm %q: %w", cfg.Name, err)
	}
	r.cfg.Organizations, r.cfg.IdentityProviders = nil, nil
	return r, nil
}

// Name returns the realm name.
func (r *Realm) Name() string { return r.name }

// Issuer returns the realm's issuer URL, {Server.URL()}/realms/{name}.
func (r *Realm) Issuer() string { return r.srv.Issuer(r.name) }

// JWKSRequests returns how many requests for this realm's certs endpoint the
// server has received, including ones answered by a Fault.
func (r *Realm) JWKSRequests() int64 { return r.jwksRequests.Load() }

// now reads the server clock.
func (r *Realm) now() time.Time { return r.srv.now() }

// defineRealmRole adds a custom realm role; callers hold r.mu or own r.
func (r *Realm) defineRealmRole(role string) error {
	if role == "" {
		return fmt.Errorf("%w: empty realm role name", ErrInvalidConfig)
	}
	if r.isBuiltinRealmRole(role) || slices.Contains(r.realmRoles, role) {
		return nil
	}
	r.realmRoles = append(r.realmRoles, role)
	return nil
}

func (r *Realm) defaultRolesName() string { return "default-roles-" + strings.ToLower(r.name) }

func (r *Realm) isBuiltinRealmRole(role string) bool {
	return slices.Contains(builtinRealmRoles, role) || role == r.defaultRolesName()
}

// AddClient adds an OIDC client. A client with ServiceAccounts gets its
// service-account user "service-account-{clientId}".
func (r *Realm) AddClient(c ClientConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.addClientLocked(c); err != nil {
		return err
	}
	if c.ServiceAccounts {
		if err := r.addServiceAccountLocked(r.clients[c.ClientID].cfg); err != nil {
			delete(r.clients, c.ClientID)
			r.clientSeq = r.clientSeq[:len(r.clientSeq)-1]
			return err
		}
	}
	return nil
}

// addClientLocked adds the client without its service-account user, so a
// realm's clients can all exist before service accounts refer to them.
func (r *Realm) addClientLocked(c ClientConfig) error {
	if c.ClientID == "" || strings.ContainsFunc(c.ClientID, isControl) {
		return fmt.Errorf("%w: client id %q is empty or has control characters", ErrInvalidConfig, c.ClientID)
	}
	if c.Public && c.ServiceAccounts {
		return fmt.Errorf("%w: client %q: a public client cannot have a service account", ErrInvalidConfig, c.ClientID)
	}
	c = cloneClientConfig(c)
	if _, ok := r.clients[c.ClientID]; ok {
		return fmt.Errorf("%w: %q", ErrClientExists, c.ClientID)
	}
	cl := &client{cfg: c, uuid: newUUID()}
	for _, role := range c.Roles {
		if role == "" {
			return fmt.Errorf("%w: client %q: empty role name", ErrInvalidConfig, c.ClientID)
		}
		if !slices.Contains(cl.roles, role) {
			cl.roles = append(cl.roles, role)
		}
	}
	r.clients[c.ClientID] = cl
	r.clientSeq = append(r.clientSeq, c.ClientID)
	return nil
}

func (r *Realm) addServiceAccountLocked(c ClientConfig) error {
	sa := UserConfig{
		ID:             c.ServiceAccountUserID,
		Username:       serviceAccountPrefix + c.ClientID,
		RealmRoles:     c.ServiceAccountRealmRoles,
		ClientRoles:    c.ServiceAccountClientRoles,
		NoDefaultRoles: c.ServiceAccountNoDefaultRoles,
	}
	if _, err := r.addUserLocked(sa, c.ClientID); err != nil {
		return fmt.Errorf("client %q service account: %w", c.ClientID, err)
	}
	return nil
}

// AddUser adds a user and returns its id. Unless u.NoDefaultRoles is set,
// the user gets the realm's default role default-roles-{realm}, as a user
// created through Keycloak's admin API does.
func (r *Realm) AddUser(u UserConfig) (id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addUserLocked(u, "")
}

func (r *Realm) addUserLocked(u UserConfig, serviceAccountOf string) (string, error) {
	name := strings.ToLower(u.Username)
	if name == "" || strings.ContainsFunc(name, isControl) {
		return "", fmt.Errorf("%w: username %q is empty or has control characters", ErrInvalidConfig, u.Username)
	}
	if serviceAccountOf == "" && strings.HasPrefix(name, serviceAccountPrefix) {
		// Keycloak reserves the prefix for service accounts.
		return "", fmt.Errorf("%w: username %q uses the reserved prefix %q", ErrInvalidConfig, u.Username, serviceAccountPrefix)
	}
	if _, ok := r.byName[name]; ok {
		return "", fmt.Errorf("%w: username %q", ErrUserExists, name)
	}
	id := u.ID
	if id == "" {
		id = newUUID()
	} else if strings.ContainsFunc(id, isControl) {
		return "", fmt.Errorf("%w: user id %q has control characters", ErrInvalidConfig, id)
	}
	if _, ok := r.users[id]; ok {
		return "", fmt.Errorf("%w: id %q", ErrUserExists, id)
	}
	if u.PasswordHash != nil {
		if err := u.PasswordHash.validate(); err != nil {
			return "", fmt.Errorf("user %q: %w", name, err)
		}
	}
	totp := ""
	if u.TOTPSecret != "" {
		key, err := decodeTOTPSecret(u.TOTPSecret)
		if err != nil {
			return "", fmt.Errorf("user %q: %w", name, err)
		}
		totp = encodeTOTPKey(key)
	}
	for clientID, roles := range u.ClientRoles {
		if _, ok := r.clients[clientID]; !ok && clientID != accountClientID {
			return "", fmt.Errorf("user %q: client roles for %w %q", name, ErrUnknownClient, clientID)
		}
		for _, role := range roles {
			if role == "" {
				return "", fmt.Errorf("%w: user %q: empty client role name", ErrInvalidConfig, name)
			}
		}
	}
	for _, role := range u.RealmRoles {
		if role == "" {
			return "", fmt.Errorf("%w: user %q: empty realm role name", ErrInvalidConfig, name)
		}
	}
	var groupIDs []string
	for _, path := range u.Groups {
		g := r.groupByPathLocked(path)
		if g == nil {
			return "", fmt.Errorf("%w: user %q: no group with path %q", ErrInvalidConfig, name, path)
		}
		if !slices.Contains(groupIDs, g.id) {
			groupIDs = append(groupIDs, g.id)
		}
	}
	var links []FederatedIdentity
	for _, fi := range u.FederatedIdentities {
		if fi.IdentityProvider == "" || fi.UserID == "" || strings.ContainsFunc(fi.IdentityProvider+fi.UserID+fi.UserName, isControl) {
			return "", fmt.Errorf("%w: user %q: federated identity needs an identity provider and a user id", ErrInvalidConfig, name)
		}
		if slices.ContainsFunc(links, func(l FederatedIdentity) bool { return l.IdentityProvider == fi.IdentityProvider }) {
			return "", fmt.Errorf("%w: user %q: two links to identity provider %q", ErrInvalidConfig, name, fi.IdentityProvider)
		}
		links = append(links, fi)
	}
	// Validation is done; from here on nothing fails, so nothing is half-added.
	for _, role := range u.RealmRoles {
		_ = r.defineRealmRole(role)
	}
	for clientID, roles := range u.ClientRoles {
		r.defineClientRolesLocked(clientID, roles)
	}
	realmRoles := slices.Clone(u.RealmRoles)
	if !u.NoDefaultRoles {
		realmRoles = append(realmRoles, r.defaultRolesName())
	}
	realmRoles = dedupe(realmRoles)
	nu := &user{
		id:               id,
		username:         name,
		email:            u.Email,
		firstName:        u.FirstName,
		lastName:         u.LastName,
		emailVerified:    u.EmailVerified,
		enabled:          !u.Disabled,
		password:         u.Password,
		hash:             u.PasswordHash.clone(),
		requiredActions:  slices.Clone(u.RequiredActions),
		attributes:       cloneMultiMap(u.Attributes),
		realmRoles:       realmRoles,
		clientRoles:      cloneMultiMap(u.ClientRoles),
		serviceAccountOf: serviceAccountOf,
		totpSecret:       totp,
		groups:           groupIDs,
		federated:        links,
		created:          r.now(),
	}
	r.users[id] = nu
	r.byName[name] = id
	return id, nil
}

// UserID returns the id (token "sub") of a user.
func (r *Realm) UserID(username string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byName[strings.ToLower(username)]
	return id, ok
}

// SetUserEnabled enables or disables a user. A disabled user cannot log in
// or refresh ("User disabled"), and its tokens introspect inactive; tokens
// already issued stay valid to verifiers that only check signatures, as with
// Keycloak. Like Keycloak, disabling ends no session and sends no
// back-channel logout: enabled again, the user's sessions work again. To
// end them, call EndSession or the admin API's logout as well.
func (r *Realm) SetUserEnabled(username string, enabled bool) error {
	r.mu.Lock()
	u, err := r.userLocked(username)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	jobs := r.setEnabledLocked(u, enabled)
	r.mu.Unlock()
	r.deliverLogouts(jobs)
	return nil
}

// setEnabledLocked enables or disables a user. As in Keycloak, disabling
// ends no session and sends no back-channel logout: the user's refreshes,
// userinfo and introspection fail while disabled, and work again once the
// user is enabled (conformance: disable-user). The admin API goes through
// here too.
func (r *Realm) setEnabledLocked(u *user, enabled bool) []logoutJob {
	u.enabled = enabled
	return nil
}

// DeleteUser removes a user and ends its sessions, delivering back-channel
// logout tokens before it returns.
func (r *Realm) DeleteUser(username string) error {
	r.mu.Lock()
	u, err := r.userLocked(username)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	jobs, err := r.deleteUserLocked(u)
	r.mu.Unlock()
	r.deliverLogouts(jobs)
	return err
}

// deleteUserLocked removes a user (not a service account) and ends its
// sessions. The admin API goes through here too.
func (r *Realm) deleteUserLocked(u *user) ([]logoutJob, error) {
	if u.serviceAccountOf != "" {
		return nil, fmt.Errorf("%w: %q is the service account of client %q", ErrInvalidConfig, u.username, u.serviceAccountOf)
	}
	jobs := r.endUserSessionsLocked(u.id)
	delete(r.users, u.id)
	delete(r.byName, u.username)
	return jobs, nil
}

// endUserSessionsLocked ends every session of a user.
func (r *Realm) endUserSessionsLocked(userID string) []logoutJob {
	var jobs []logoutJob
	for _, s := range r.sessions {
		if s.userID == userID && !s.ended {
			jobs = append(jobs, r.endSessionLocked(s)...)
		}
	}
	return jobs
}

func (r *Realm) userLocked(username string) (*user, error) {
	id, ok := r.byName[strings.ToLower(username)]
	if !ok {
		return nil, fmt.Errorf("%w: %q in realm %q", ErrUnknownUser, username, r.name)
	}
	return r.users[id], nil
}

// EndSession ends a user session, as an admin "sign out" does: its refresh
// tokens stop working, its tokens introspect inactive, the browser's SSO
// cookie no longer logs in, and every client of the session with a
// BackchannelLogoutURL receives a logout token before EndSession returns.
// Unknown or already ended ids are ignored.
func (r *Realm) EndSession(sid string) {
	r.mu.Lock()
	var jobs []logoutJob
	if s, ok := r.sessions[sid]; ok && !s.ended {
		jobs = r.endSessionLocked(s)
	}
	r.mu.Unlock()
	r.deliverLogouts(jobs)
}

// ExpireSessions ends every session that is past the realm's SSO idle
// timeout or maximum lifespan at the realm clock, delivering back-channel
// logout tokens for them before it returns. Expired sessions are already
// unusable without it; this is what makes Keycloak's expiry visible to
// back-channel receivers. A running server also calls it periodically.
func (r *Realm) ExpireSessions() {
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	r.mu.Lock()
	now := r.now()
	var jobs []logoutJob
	for _, s := range r.sessions {
		if s.ended {
			continue
		}
		if now.After(s.last.Add(r.cfg.SSOSessionIdle)) || now.After(s.started.Add(r.cfg.SSOSessionMax)) {
			jobs = append(jobs, r.endSessionLocked(s)...)
		}
	}
	r.pruneBrowserLocked(now, true)
	r.mu.Unlock()
	r.deliverLogouts(jobs)
}

// SessionIDs returns the ids (token "sid") of the user's live sessions,
// oldest first.
func (r *Realm) SessionIDs(username string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byName[strings.ToLower(username)]
	if !ok {
		return nil
	}
	now := r.now()
	var live []*userSession
	for _, s := range r.sessions {
		if s.userID == id && r.sessionLiveLocked(s, now) {
			live = append(live, s)
		}
	}
	sort.Slice(live, func(i, j int) bool {
		if !live[i].started.Equal(live[j].started) {
			return live[i].started.Before(live[j].started)
		}
		return live[i].id < live[j].id
	})
	ids := make([]string, len(live))
	for i, s := range live {
		ids[i] = s.id
	}
	return ids
}

// newSessionLocked starts a user session with one client attached.
func (r *Realm) newSessionLocked(u *user, clientID string, now time.Time) *userSession {
	r.pruneLocked(now)
	s := &userSession{
		id:       newUUID(),
		userID:   u.id,
		started:  now,
		last:     now,
		authTime: now.Unix(),
		loa:      1,
		issuer:   r.Issuer(),
		clients:  map[string]*clientSession{clientID: {issued: map[string]uint64{}}},
	}
	r.sessions[s.id] = s
	return s
}

// sessionLiveLocked applies Keycloak's SSO idle and max timeouts.
func (r *Realm) sessionLiveLocked(s *userSession, now time.Time) bool {
	if s == nil || s.ended {
		return false
	}
	if now.After(s.last.Add(r.cfg.SSOSessionIdle)) || now.After(s.started.Add(r.cfg.SSOSessionMax)) {
		return false
	}
	_, userExists := r.users[s.userID]
	return userExists
}

// pruneLocked drops dead sessions and expired revocations so long-running
// `cloakroom dev` servers do not grow without bound. Sessions that expired
// without being ended stay until ExpireSessions has delivered their logout.
func (r *Realm) pruneLocked(now time.Time) {
	if len(r.sessions) < 1024 && len(r.revoked) < 1024 {
		return
	}
	for id, s := range r.sessions {
		if s.ended || r.users[s.userID] == nil {
			delete(r.sessions, id)
		}
	}
	for jti, exp := range r.revoked {
		if now.After(exp) {
			delete(r.revoked, jti)
		}
	}
}

// allowedOrigins resolves the client's web origins; "+" stands for the
// origins of its redirect URIs, as in Keycloak.
func allowedOrigins(c ClientConfig) []string {
	var out []string
	for _, o := range c.WebOrigins {
		if o != "+" {
			out = append(out, o)
			continue
		}
		for _, ru := range c.RedirectURIs {
			u, err := url.Parse(strings.TrimSuffix(ru, "*"))
			if err != nil || u.Scheme == "" || u.Host == "" || strings.Contains(u.Host, "*") {
				continue
			}
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return dedupe(out)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// dedupe returns the sorted distinct values.
func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func cloneMultiMap(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func cloneClientConfig(c ClientConfig) ClientConfig {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.WebOrigins = slices.Clone(c.WebOrigins)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.Roles = slices.Clone(c.Roles)
	c.Audiences = slices.Clone(c.Audiences)
	c.Mappers = cloneMappers(c.Mappers)
	c.ServiceAccountRealmRoles = slices.Clone(c.ServiceAccountRealmRoles)
	c.ServiceAccountClientRoles = cloneMultiMap(c.ServiceAccountClientRoles)
	c.DefaultScopes = slices.Clone(c.DefaultScopes)
	c.OptionalScopes = slices.Clone(c.OptionalScopes)
	c.Attributes = maps.Clone(c.Attributes)
	return c
}
