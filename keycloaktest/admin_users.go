package keycloaktest

import (
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Keycloak's default page size for user lists.
const defaultUserMax = 100

// defaultActionTokenLifespan is the realm's "admin action token" lifespan.
const defaultActionTokenLifespan = 12 * time.Hour

// userInput is a UserRepresentation as sent to POST and PUT /users: pointer
// fields tell "absent or null" (leave alone) from a value.
type userInput struct {
	ID                  *string              `json:"id"`
	Username            *string              `json:"username"`
	Email               *string              `json:"email"`
	FirstName           *string              `json:"firstName"`
	LastName            *string              `json:"lastName"`
	Enabled             *bool                `json:"enabled"`
	EmailVerified       *bool                `json:"emailVerified"`
	Attributes          *map[string][]string `json:"attributes"`
	RequiredActions     *[]string            `json:"requiredActions"`
	Groups              []string             `json:"groups"`
	FederatedIdentities []FederatedIdentity  `json:"federatedIdentities"`
	Credentials         []credentialInput    `json:"credentials"`
}

// credentialInput is a CredentialRepresentation as sent by admins.
type credentialInput struct {
	Type      string  `json:"type"`
	Value     *string `json:"value"`
	Temporary *bool   `json:"temporary"`
}

// fieldError is one user-profile validation error.
type fieldError struct {
	Field        string   `json:"field"`
	ErrorMessage string   `json:"errorMessage"`
	Params       []string `json:"params"`
}

// profileErrors answers user-profile validation errors as Keycloak's admin
// API does (ErrorResponse.errors without shrinking): a single error is
// repeated at the top level next to "errors".
func profileErrors(errs []fieldError) adminResp {
	body := map[string]any{"errors": errs}
	if len(errs) == 1 {
		body["field"], body["errorMessage"], body["params"] = errs[0].Field, errs[0].ErrorMessage, errs[0].Params
	}
	return respJSON(http.StatusBadRequest, body)
}

// validateProfile applies the checks of Keycloak's default user profile to
// the fields present in in.
func validateProfile(in *userInput) []fieldError {
	var errs []fieldError
	if in.Username != nil {
		if n := len([]rune(*in.Username)); n < 3 || n > 255 {
			errs = append(errs, fieldError{"username", "error-invalid-length", []string{"username", "3", "255"}})
		} else if strings.ContainsFunc(*in.Username, isControl) || strings.ContainsAny(*in.Username, " /\\<>&\"'") {
			errs = append(errs, fieldError{"username", "error-username-invalid-character", []string{"username", *in.Username}})
		}
	}
	if in.Email != nil && *in.Email != "" {
		if a, err := mail.ParseAddress(*in.Email); err != nil || a.Address != *in.Email || a.Name != "" {
			errs = append(errs, fieldError{"email", "error-invalid-email", []string{"email", *in.Email}})
		}
	}
	for name, v := range map[string]*string{"firstName": in.FirstName, "lastName": in.LastName} {
		if v != nil && len([]rune(*v)) > 255 {
			errs = append(errs, fieldError{name, "error-invalid-length", []string{name, "", "255"}})
		}
	}
	slices.SortFunc(errs, func(a, b fieldError) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

// emailTakenLocked reports whether another user has the address.
func (r *Realm) emailTakenLocked(email string, self *user) bool {
	for _, u := range r.users {
		if u != self && u.email != "" && strings.EqualFold(u.email, email) {
			return true
		}
	}
	return false
}

// createUser serves POST /users.
func (a *adminReq) createUser(body []byte) adminResp {
	if !a.perms.manageUsers() {
		return respForbidden()
	}
	var in userInput
	if !decodeBody(body, &in) {
		return respBadRequest()
	}
	if in.Username == nil || strings.TrimSpace(*in.Username) == "" {
		return respErrorMessage(http.StatusBadRequest, "User name is missing")
	}
	name := strings.ToLower(strings.TrimSpace(*in.Username))
	if _, taken := a.r.byName[name]; taken {
		return respErrorMessage(http.StatusConflict, "User exists with same username")
	}
	if in.Email != nil && *in.Email != "" && a.r.emailTakenLocked(*in.Email, nil) {
		return respErrorMessage(http.StatusConflict, "User exists with same email")
	}
	in.Username = &name
	if errs := validateProfile(&in); len(errs) > 0 {
		return profileErrors(errs)
	}
	uc := UserConfig{Username: name, Groups: in.Groups, FederatedIdentities: in.FederatedIdentities}
	if in.ID != nil && *in.ID != "" {
		// Keycloak ignores a client-chosen id.
		uc.ID = ""
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&uc.Email, in.Email}, {&uc.FirstName, in.FirstName}, {&uc.LastName, in.LastName}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	// A user created without "enabled" is disabled, as in Keycloak.
	uc.Disabled = in.Enabled == nil || !*in.Enabled
	uc.EmailVerified = in.EmailVerified != nil && *in.EmailVerified
	if in.Attributes != nil {
		uc.Attributes = *in.Attributes
	}
	if in.RequiredActions != nil {
		uc.RequiredActions = dedupeKeepOrder(*in.RequiredActions)
	}
	for _, c := range in.Credentials {
		if c.Type != "" && c.Type != "password" {
			return respErrorMessage(http.StatusBadRequest, "Unsupported credential type "+strconv.Quote(c.Type))
		}
		if c.Value == nil || *c.Value == "" {
			return respErrorMessage(http.StatusBadRequest, "No password provided")
		}
		uc.Password = *c.Value
		if c.Temporary != nil && *c.Temporary && !slices.Contains(uc.RequiredActions, "UPDATE_PASSWORD") {
			uc.RequiredActions = append(uc.RequiredActions, "UPDATE_PASSWORD")
		}
	}
	for _, p := range in.Groups {
		if a.r.groupByPathLocked(p) == nil {
			return respErrorMessage(http.StatusBadRequest, "Group "+p+" not found")
		}
	}
	id, err := a.r.addUserLocked(uc, "")
	if err != nil {
		return respErrorMessage(http.StatusBadRequest, "Could not create user")
	}
	loc := requestBase(a.req) + strings.TrimSuffix(a.req.URL.Path, "/") + "/" + url.PathEscape(id)
	return adminResp{status: http.StatusCreated, location: loc}
}

func dedupeKeepOrder(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// updateUser serves PUT /users/{id}: absent or null fields stay as they
// are; requiredActions and attributes, when present, replace.
func (a *adminReq) updateUser(u *user, body []byte) adminResp {
	var in userInput
	if !decodeBody(body, &in) {
		return respBadRequest()
	}
	if in.Username != nil && *in.Username != "" && !strings.EqualFold(*in.Username, u.username) {
		// Keycloak's default realm does not allow editing usernames.
		return profileErrors([]fieldError{{"username", "error-user-attribute-read-only", []string{"username"}}})
	}
	in.Username = nil
	if errs := validateProfile(&in); len(errs) > 0 {
		return profileErrors(errs)
	}
	if in.Email != nil && *in.Email != "" && a.r.emailTakenLocked(*in.Email, u) {
		return respErrorMessage(http.StatusConflict, "User exists with same email")
	}
	if in.Email != nil {
		if !strings.EqualFold(*in.Email, u.email) && in.EmailVerified == nil {
			u.emailVerified = false
		}
		u.email = *in.Email
	}
	if in.FirstName != nil {
		u.firstName = *in.FirstName
	}
	if in.LastName != nil {
		u.lastName = *in.LastName
	}
	if in.EmailVerified != nil {
		u.emailVerified = *in.EmailVerified
	}
	if in.RequiredActions != nil {
		u.requiredActions = dedupeKeepOrder(*in.RequiredActions)
	}
	if in.Attributes != nil {
		u.attributes = cloneMultiMap(*in.Attributes)
		if len(u.attributes) == 0 {
			u.attributes = nil
		}
	}
	var jobs []logoutJob
	if in.Enabled != nil {
		jobs = a.r.setEnabledLocked(u, *in.Enabled)
	}
	return adminResp{status: http.StatusNoContent, jobs: jobs}
}

// deleteUser serves DELETE /users/{id}.
func (a *adminReq) deleteUser(u *user) adminResp {
	jobs, err := a.r.deleteUserLocked(u)
	if err != nil {
		return respErrorMessage(http.StatusBadRequest, "Service account user cannot be deleted")
	}
	return adminResp{status: http.StatusNoContent, jobs: jobs}
}

// resetPassword serves PUT /users/{id}/reset-password.
func (a *adminReq) resetPassword(u *user, body []byte) adminResp {
	var in credentialInput
	if !decodeBody(body, &in) || in.Value == nil || *in.Value == "" {
		return respError(http.StatusBadRequest, "No password provided")
	}
	if in.Type != "" && in.Type != "password" {
		return respError(http.StatusBadRequest, "Unsupported credential type")
	}
	u.password, u.hash = *in.Value, nil
	u.requiredActions = slices.DeleteFunc(u.requiredActions, func(s string) bool { return s == "UPDATE_PASSWORD" })
	if in.Temporary != nil && *in.Temporary {
		u.requiredActions = append(u.requiredActions, "UPDATE_PASSWORD")
	}
	return respNoContent()
}

// executeActionsEmail serves PUT /users/{id}/execute-actions-email: the
// email's link runs the actions in a browser.
func (a *adminReq) executeActionsEmail(u *user, body []byte) adminResp {
	var actions []string
	if len(strings.TrimSpace(string(body))) > 0 && !decodeBody(body, &actions) {
		return respBadRequest()
	}
	for _, act := range actions {
		if _, ok := knownActions[act]; !ok {
			return respErrorMessage(http.StatusBadRequest, "Provided invalid required actions")
		}
	}
	if !u.enabled {
		return respErrorMessage(http.StatusBadRequest, "User is disabled")
	}
	if u.email == "" {
		return respErrorMessage(http.StatusBadRequest, "User email missing")
	}
	clientID, redirect := a.get("client_id"), a.get("redirect_uri")
	if redirect != "" && clientID == "" {
		return respErrorMessage(http.StatusBadRequest, "Client id missing")
	}
	if clientID == "" {
		clientID = accountClientID
	}
	c := a.r.clients[clientID]
	if c == nil && clientID != accountClientID {
		return respErrorMessage(http.StatusBadRequest, "Client doesn't exist")
	}
	if c != nil && c.cfg.Disabled {
		return respErrorMessage(http.StatusBadRequest, "Client is not enabled")
	}
	if redirect != "" {
		if c == nil {
			return respErrorMessage(http.StatusBadRequest, "Invalid redirect uri.")
		}
		if _, ok := validRedirect(c.cfg.RedirectURIs, redirect); !ok {
			return respErrorMessage(http.StatusBadRequest, "Invalid redirect uri.")
		}
	}
	lifespan := defaultActionTokenLifespan
	if a.has("lifespan") {
		n, ok := a.queryInt("lifespan", 0)
		if !ok || n <= 0 {
			return respBadRequest()
		}
		lifespan = time.Duration(n) * time.Second
	}
	e := a.r.newEnv(a.s, a.req)
	now := a.r.now()
	claims := map[string]any{
		"iat": now.Unix(), "exp": now.Add(lifespan).Unix(), "jti": newUUID(),
		"iss": e.issuer, "aud": e.issuer, "sub": u.id, "typ": typExecuteActions,
		"rqac": nonNil(actions), "azp": clientID, "eml": u.email,
	}
	if redirect != "" {
		claims["reduri"] = redirect
	}
	key, err := signJWT(jose.HS512, a.r.hmac.secret, claims, map[string]any{"typ": "JWT", "kid": a.r.hmac.kid})
	if err != nil {
		a.s.logger.Error("keycloaktest: action token", "realm", a.r.name, "error", err)
		return respErrorMessage(http.StatusInternalServerError, "Failed to send execute actions email")
	}
	link := e.realmURL + "/login-actions/action-token?" + url.Values{"key": {key}, "client_id": {clientID}}.Encode()
	names := make([]string, len(actions))
	for i, act := range actions {
		names[i] = knownActions[act]
	}
	a.r.sendEmailLocked(Email{
		To:      u.email,
		Subject: "Update Your Account",
		Body: fmt.Sprintf("Your administrator has just requested that you update your %s account by performing the following action(s): %s. Click on the link below to start this process.\n\n%s\n\nThis link will expire within %s.\n\nIf you are unaware that your administrator has requested this, just ignore this message and nothing will be changed.\n",
			a.r.name, strings.Join(names, ", "), link, lifespanText(lifespan)),
		Link: link,
	})
	return respNoContent()
}

// typExecuteActions is the typ of execute-actions action tokens.
const typExecuteActions = "execute-actions"

func lifespanText(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d >= time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0 && d >= time.Minute:
		return plural(int(d/time.Minute), "minute")
	}
	return plural(int(d/time.Second), "second")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// userSessions is GET /users/{id}/sessions.
func (a *adminReq) userSessions(u *user) []map[string]any {
	now := a.r.now()
	var live []*userSession
	for _, s := range a.r.sessions {
		if s.userID == u.id && a.r.sessionLiveLocked(s, now) {
			live = append(live, s)
		}
	}
	slices.SortFunc(live, func(x, y *userSession) int {
		if c := x.started.Compare(y.started); c != 0 {
			return c
		}
		return strings.Compare(x.id, y.id)
	})
	out := []map[string]any{}
	for _, s := range live {
		clients := map[string]string{}
		for clientID := range s.clients {
			if c := a.r.clients[clientID]; c != nil {
				clients[c.uuid] = clientID
			}
		}
		ip := s.ip
		if ip == "" {
			ip = "127.0.0.1"
		}
		out = append(out, map[string]any{
			"id": s.id, "username": u.username, "userId": u.id, "ipAddress": ip,
			"start": s.started.UnixMilli(), "lastAccess": s.last.UnixMilli(),
			"rememberMe": false, "clients": clients, "transientUser": false,
		})
	}
	return out
}

// deleteSession is DELETE /sessions/{id}.
func (a *adminReq) deleteSession(sid string) adminResp {
	if !a.perms.manageUsers() {
		return respForbidden()
	}
	s := a.r.sessions[sid]
	if s == nil || s.ended || !a.r.sessionLiveLocked(s, a.r.now()) {
		return respError(http.StatusNotFound, "Sesssion not found")
	}
	return adminResp{status: http.StatusNoContent, jobs: a.r.endSessionLocked(s)}
}

// userRep renders a UserRepresentation.
func (a *adminReq) userRep(u *user, brief, single bool) map[string]any {
	m := map[string]any{
		"id": u.id, "username": u.username, "enabled": u.enabled, "emailVerified": u.emailVerified,
		"createdTimestamp": u.created.UnixMilli(),
	}
	for k, v := range map[string]string{"email": u.email, "firstName": u.firstName, "lastName": u.lastName} {
		if v != "" {
			m[k] = v
		}
	}
	manage := a.perms.manageUsers()
	m["access"] = map[string]bool{
		"view": a.perms.viewUsers(), "manage": manage, "manageGroupMembership": manage,
		"mapRoles": manage, "impersonate": a.perms.has("impersonation"),
	}
	if brief {
		return m
	}
	if len(u.attributes) > 0 {
		m["attributes"] = cloneMultiMap(u.attributes)
	}
	m["requiredActions"] = nonNil(slices.Clone(u.requiredActions))
	m["notBefore"] = 0
	m["totp"] = u.totpSecret != ""
	disableable := []string{}
	if u.totpSecret != "" {
		disableable = append(disableable, "otp")
	}
	m["disableableCredentialTypes"] = disableable
	if u.serviceAccountOf != "" {
		m["serviceAccountClientId"] = u.serviceAccountOf
	}
	if single && len(u.federated) > 0 {
		m["federatedIdentities"] = nonNilLinks(u.federated)
	}
	return m
}

// userFilter is a parsed /users or /users/count query.
type userFilter struct {
	search                        *string
	username, email, first, last  *string
	exact, enabled, emailVerified *bool
	attrs                         map[string]string
	idpAlias, idpUserID           string
	includeServiceAccounts        bool
}

func (a *adminReq) userFilter() (userFilter, bool) {
	var f userFilter
	opt := func(name string) *string {
		if !a.has(name) {
			return nil
		}
		v := a.get(name)
		return &v
	}
	f.search = opt("search")
	f.username, f.email, f.first, f.last = opt("username"), opt("email"), opt("firstName"), opt("lastName")
	var ok1, ok2, ok3 bool
	f.exact, ok1 = a.queryBool("exact")
	f.enabled, ok2 = a.queryBool("enabled")
	f.emailVerified, ok3 = a.queryBool("emailVerified")
	if !ok1 || !ok2 || !ok3 {
		return f, false
	}
	if q := a.get("q"); q != "" {
		f.attrs = map[string]string{}
		for _, pair := range strings.Fields(q) {
			k, v, found := strings.Cut(pair, ":")
			if !found || k == "" {
				return f, false
			}
			f.attrs[k] = v
		}
	}
	f.idpAlias, f.idpUserID = a.get("idpAlias"), a.get("idpUserId")
	f.includeServiceAccounts = f.search == nil && (f.username != nil || f.email != nil || f.first != nil || f.last != nil)
	return f, true
}

// matchUsersLocked returns the users matching f, ordered by username.
func (r *Realm) matchUsersLocked(f userFilter) []*user {
	var out []*user
	if f.search != nil {
		if id, ok := strings.CutPrefix(strings.TrimSpace(*f.search), "id:"); ok {
			if u := r.users[strings.TrimSpace(id)]; u != nil {
				out = append(out, u)
			}
			return out
		}
	}
	for _, u := range r.users {
		if u.serviceAccountOf != "" && !f.includeServiceAccounts {
			continue
		}
		if f.matches(u) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(x, y *user) int { return strings.Compare(x.username, y.username) })
	return out
}

func (f userFilter) matches(u *user) bool {
	if f.enabled != nil && u.enabled != *f.enabled {
		return false
	}
	if f.emailVerified != nil && u.emailVerified != *f.emailVerified {
		return false
	}
	exact := f.exact != nil && *f.exact
	if f.search != nil {
		for _, term := range strings.Fields(strings.ToLower(*f.search)) {
			if !searchTermMatches(term, u) {
				return false
			}
		}
	} else {
		for _, c := range []struct {
			want *string
			have string
		}{{f.username, u.username}, {f.email, u.email}, {f.first, u.firstName}, {f.last, u.lastName}} {
			if c.want == nil {
				continue
			}
			want, have := strings.ToLower(*c.want), strings.ToLower(c.have)
			if exact && want != have || !exact && !strings.Contains(have, want) {
				return false
			}
		}
	}
	for k, v := range f.attrs {
		found := slices.ContainsFunc(u.attributes[k], func(have string) bool {
			if exact {
				return strings.EqualFold(have, v)
			}
			return strings.Contains(strings.ToLower(have), strings.ToLower(v))
		})
		if !found {
			return false
		}
	}
	if f.idpAlias != "" || f.idpUserID != "" {
		linked := slices.ContainsFunc(u.federated, func(l FederatedIdentity) bool {
			return (f.idpAlias == "" || l.IdentityProvider == f.idpAlias) && (f.idpUserID == "" || l.UserID == f.idpUserID)
		})
		if !linked {
			return false
		}
	}
	return true
}

// searchTermMatches applies one term of "search": "x" quoted is exact,
// otherwise a prefix match where "*" matches anything, against username,
// email, first and last name (case-insensitive).
func searchTermMatches(term string, u *user) bool {
	fields := []string{u.username, strings.ToLower(u.email), strings.ToLower(u.firstName), strings.ToLower(u.lastName)}
	if len(term) >= 2 && strings.HasPrefix(term, `"`) && strings.HasSuffix(term, `"`) {
		return slices.Contains(fields, term[1:len(term)-1])
	}
	if !strings.HasSuffix(term, "*") {
		term += "*"
	}
	return slices.ContainsFunc(fields, func(s string) bool { return s != "" && globMatch(term, s) })
}

// globMatch matches s against a pattern where "*" is any run of characters.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
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

// listUsers serves GET /users. A caller with query-users but not
// view-users gets an empty list, as in Keycloak without fine-grained
// permissions.
func (a *adminReq) listUsers() adminResp {
	if !a.perms.queryUsers() {
		return respForbidden()
	}
	f, ok := a.userFilter()
	first, ok1 := a.queryInt("first", 0)
	max, ok2 := a.queryInt("max", defaultUserMax)
	brief, ok3 := a.queryBool("briefRepresentation")
	if !ok || !ok1 || !ok2 || !ok3 {
		return respBadRequest()
	}
	out := []map[string]any{}
	if !a.perms.viewUsers() {
		return respJSON(http.StatusOK, out)
	}
	for _, u := range pageOf(a.r.matchUsersLocked(f), first, max) {
		out = append(out, a.userRep(u, brief != nil && *brief, false))
	}
	return respJSON(http.StatusOK, out)
}

// countUsers serves GET /users/count: a bare integer.
func (a *adminReq) countUsers() adminResp {
	if !a.perms.queryUsers() {
		return respForbidden()
	}
	f, ok := a.userFilter()
	if !ok {
		return respBadRequest()
	}
	n := 0
	if a.perms.viewUsers() {
		n = len(a.r.matchUsersLocked(f))
	}
	return adminResp{status: http.StatusOK, raw: []byte(strconv.Itoa(n))}
}
