package keycloaktest

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// keycloakRequiredActions are the ids of Keycloak 26's required-action
// providers. POST and PUT /users keep the requiredActions among them (case
// matters) and drop the others, as Keycloak does.
var keycloakRequiredActions = []string{
	"CONFIGURE_RECOVERY_AUTHN_CODES", "CONFIGURE_TOTP", "TERMS_AND_CONDITIONS", "UPDATE_EMAIL",
	"UPDATE_PASSWORD", "UPDATE_PROFILE", "VERIFY_EMAIL", "VERIFY_PROFILE", "delete_account",
	"delete_credential", "idp_link", "update_user_locale", "webauthn-register", "webauthn-register-passwordless",
}

// respServerError is Keycloak's answer to an unexpected exception.
func respServerError() adminResp {
	return respJSON(http.StatusInternalServerError, map[string]string{
		"error": "unknown_error", "error_description": "For more on this error consult the server log."})
}

// bodyErrorResp is the answer to a body decodeRepBody refused.
func bodyErrorResp(err error) adminResp {
	if be, ok := err.(*bodyError); ok {
		return be.resp
	}
	return errBadShape().resp
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

// rawAttributes are a UserRepresentation's attributes as Keycloak's user
// profile reads them (getRawAttributes): "attributes" with the root fields
// on top; username and email come only from the root fields, firstName and
// lastName from "attributes" too when the root field is absent.
func rawAttributes(rep repObj) map[string][]string {
	out := map[string][]string{}
	if attrs, ok := rep["attributes"].(map[string][]string); ok {
		for k, v := range attrs {
			out[k] = slices.Clone(v)
		}
	}
	for _, k := range rootAttributes {
		if s := rep.str(k); s != nil {
			out[k] = []string{*s}
		} else if k == "username" || k == "email" {
			delete(out, k)
		}
	}
	return out
}

// profileValues are all of u's attributes by user-profile name.
func profileValues(u *user) map[string][]string {
	m := map[string][]string{}
	for k, v := range u.attributes {
		m[k] = slices.Clone(v)
	}
	m["username"] = []string{u.username}
	for k, v := range map[string]string{"email": u.email, "firstName": u.firstName, "lastName": u.lastName} {
		if v != "" {
			m[k] = []string{v}
		}
	}
	return m
}

// cleanValues drops empty values; nil when none is left.
func cleanValues(v []string) []string {
	out := slices.DeleteFunc(slices.Clone(v), func(s string) bool { return s == "" })
	if len(out) == 0 {
		return nil
	}
	return out
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// resolvedProfile is a user's profile after a create or update.
type resolvedProfile struct {
	username, email, firstName, lastName string
	attrs                                map[string][]string // custom attributes, declared or not
}

// resolveProfileLocked applies the realm's user profile to the attributes
// of a create (u nil) or an update (raw already holds the user's current
// attributes when the request had no "attributes"): what an admin may edit
// takes the value sent, and loses it when none was; what it may not edit
// stays, and sending a different value for it is an error; declared
// attributes are validated. It returns the profile to store, or the
// answer refusing the request.
func (r *Realm) resolveProfileLocked(u *user, raw map[string][]string) (resolvedProfile, *adminResp) {
	cur := map[string][]string{}
	if u != nil {
		cur = profileValues(u)
	}
	var out resolvedProfile
	out.attrs = map[string][]string{}
	var errs []fieldError
	fail := func(resp adminResp) (resolvedProfile, *adminResp) { return resolvedProfile{}, &resp }

	// The username: required, and read-only once the user exists (Keycloak's
	// default realm does not allow editing usernames). An unchanged
	// username is not validated again.
	pa := r.profileAttrLocked("username")
	if u == nil {
		out.username = strings.ToLower(firstOf(raw["username"]))
		errs = append(errs, validateAttr(pa, []string{out.username})...)
	} else {
		out.username = u.username
		if vals, ok := raw["username"]; ok {
			name := firstOf(vals)
			if javaTrim(name) == "" {
				return fail(respErrorMessage(http.StatusBadRequest, "User name is missing"))
			}
			if lower := strings.ToLower(name); lower != u.username {
				if _, taken := r.byName[lower]; taken {
					return fail(respErrorMessage(http.StatusConflict, "User exists with same username"))
				}
				errs = append(errs, fieldError{"username", "error-user-attribute-read-only", []any{"username"}})
				errs = append(errs, validateAttr(pa, []string{lower})...)
			}
		}
	}

	emailTaken := false
	final := map[string][]string{}
	resolve := func(name string, declared bool) {
		pa := r.profileAttrLocked(name)
		have := cleanValues(cur[name])
		vals, given := raw[name]
		if name == "email" {
			vals = slices.Clone(vals)
			for i := range vals {
				vals[i] = strings.ToLower(vals[i])
			}
		}
		want := cleanValues(vals)
		if !pa.edit {
			if declared && given && !slices.Equal(want, have) {
				errs = append(errs, fieldError{name, "error-user-attribute-read-only", []any{name}})
			}
			final[name] = have
			return
		}
		final[name] = want
		if declared {
			errs = append(errs, validateAttr(pa, want)...)
		}
		if name == "email" && len(want) > 0 && !strings.EqualFold(want[0], firstOf(have)) && r.emailTakenLocked(want[0], u) {
			emailTaken = true
		}
	}
	profile := r.profileLocked()
	for _, a := range profile.Attributes {
		if a.Name != "username" {
			resolve(a.Name, true)
		}
	}
	// firstName and lastName left out of the profile, and attributes it
	// does not declare, follow the unmanaged-attribute policy.
	for _, name := range []string{"firstName", "lastName"} {
		if profile.attr(name) == nil {
			resolve(name, false)
		}
	}
	var unmanaged []string
	for _, m := range []map[string][]string{raw, cur} {
		for k := range m {
			if !slices.Contains(rootAttributes, k) && profile.attr(k) == nil && !slices.Contains(unmanaged, k) {
				unmanaged = append(unmanaged, k)
			}
		}
	}
	for _, k := range unmanaged {
		resolve(k, false)
	}
	if emailTaken {
		return fail(respErrorMessage(http.StatusConflict, "User exists with same email"))
	}
	if len(errs) > 0 {
		return fail(profileErrors(errs))
	}
	for name, v := range final {
		switch name {
		case "email":
			out.email = firstOf(v)
		case "firstName":
			out.firstName = firstOf(v)
		case "lastName":
			out.lastName = firstOf(v)
		default:
			if len(v) > 0 {
				out.attrs[name] = v
			}
		}
	}
	if len(out.attrs) == 0 {
		out.attrs = nil
	}
	return out, nil
}

// knownRequiredActions keeps the actions Keycloak has providers for, once
// each, in the order given.
func knownRequiredActions(in []string) []string {
	out := []string{}
	for _, s := range in {
		if slices.Contains(keycloakRequiredActions, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// credentialsFromRep reads the "credentials" of a UserRepresentation as
// Keycloak's createCredentials does: a credential with a value sets the
// password, whatever its type; one with secretData and credentialData is
// imported (a pbkdf2 password hash or a TOTP secret); temporary on a
// password credential adds UPDATE_PASSWORD. A credential with neither
// fails, as in Keycloak (500); the answer is returned.
func credentialsFromRep(rep repObj, uc *UserConfig) *adminResp {
	for i, co := range rep.objects("credentials") {
		typ := co.str("type")
		switch v := co.str("value"); {
		case v != nil:
			if *v != "" {
				uc.Password, uc.PasswordHash = *v, nil
			}
		case co.str("secretData") != nil || co.str("credentialData") != nil:
			raw, _ := json.Marshal(co)
			obj, err := parseObject(fmt.Sprintf("credentials[%d]", i), raw)
			if err == nil {
				if typ != nil && *typ == "otp" {
					err = parseOTPCredential(obj, uc)
				} else {
					err = parseCredential(obj, uc)
				}
			}
			if err != nil {
				r := respErrorMessage(http.StatusBadRequest, "keycloaktest: "+err.Error())
				return &r
			}
		default:
			r := respServerError()
			return &r
		}
		if t := co.boolean("temporary"); t != nil && *t && typ != nil && *typ == "password" && !slices.Contains(uc.RequiredActions, "UPDATE_PASSWORD") {
			uc.RequiredActions = append(uc.RequiredActions, "UPDATE_PASSWORD")
		}
	}
	return nil
}

// createUser serves POST /users.
func (a *adminReq) createUser(body []byte) adminResp {
	if !a.perms.manageUsers() {
		return respForbidden()
	}
	rep, err := decodeRepBody(body, userRepJSON)
	if err != nil {
		return bodyErrorResp(err)
	}
	if rep == nil {
		return respServerError()
	}
	username := rep.str("username")
	if username == nil || javaTrim(*username) == "" {
		return respErrorMessage(http.StatusBadRequest, "User name is missing")
	}
	if _, taken := a.r.byName[strings.ToLower(*username)]; taken {
		return respErrorMessage(http.StatusConflict, "User exists with same username")
	}
	if e := rep.str("email"); e != nil && *e != "" && a.r.emailTakenLocked(*e, nil) {
		return respErrorMessage(http.StatusConflict, "User exists with same email")
	}
	prof, refused := a.r.resolveProfileLocked(nil, rawAttributes(rep))
	if refused != nil {
		return *refused
	}
	// Keycloak ignores a client-chosen id. A user created without
	// "enabled" is disabled.
	uc := UserConfig{Username: prof.username, Email: prof.email, FirstName: prof.firstName, LastName: prof.lastName,
		Attributes: prof.attrs}
	enabled, verified := rep.boolean("enabled"), rep.boolean("emailVerified")
	uc.Disabled = enabled == nil || !*enabled
	uc.EmailVerified = verified != nil && *verified
	if ra, ok := rep.list("requiredActions"); ok {
		uc.RequiredActions = knownRequiredActions(ra)
	}
	groups, _ := rep.list("groups")
	for _, p := range groups {
		if a.r.groupByPathLocked(p) == nil {
			// Keycloak fails on an unknown group path.
			return respServerError()
		}
	}
	uc.Groups = groups
	for _, fo := range rep.objects("federatedIdentities") {
		fi := FederatedIdentity{}
		for dst, k := range map[*string]string{&fi.IdentityProvider: "identityProvider", &fi.UserID: "userId", &fi.UserName: "userName"} {
			if s := fo.str(k); s != nil {
				*dst = *s
			}
		}
		uc.FederatedIdentities = append(uc.FederatedIdentities, fi)
	}
	if refused := credentialsFromRep(rep, &uc); refused != nil {
		return *refused
	}
	id, err := a.r.addUserLocked(uc, "")
	if err != nil {
		return respErrorMessage(http.StatusBadRequest, "Could not create user")
	}
	u := a.r.users[id]
	a.r.syncCredsLocked(u)
	if ts := rep.long("createdTimestamp"); ts != nil {
		u.created = time.UnixMilli(*ts)
	}
	loc := requestBase(a.req) + strings.TrimSuffix(a.req.URL.Path, "/") + "/" + url.PathEscape(id)
	return adminResp{status: http.StatusCreated, location: loc}
}

// updateUser serves PUT /users/{id} with the semantics of Keycloak 24+'s
// user profile:
//
//   - without "attributes" in the body, what the body leaves out stays as
//     it is (enabled, emailVerified, email, firstName, lastName, custom
//     attributes);
//   - with "attributes" (even {}), the body is the whole profile: email,
//     firstName, lastName and custom attributes it leaves out are removed
//     (firstName and lastName may also come inside "attributes"); the
//     username stays;
//   - custom attributes the profile does not declare are dropped unless
//     its unmanagedAttributePolicy lets admins edit them;
//   - email "" removes the email; emailVerified changes only when sent;
//   - requiredActions, when sent, replace the list (unknown ones dropped);
//   - credentials, when sent, set the password.
func (a *adminReq) updateUser(u *user, body []byte) adminResp {
	rep, err := decodeRepBody(body, userRepJSON)
	if err != nil {
		return bodyErrorResp(err)
	}
	if rep == nil {
		return respErrorMessage(http.StatusBadRequest, "Could not update user!")
	}
	raw := rawAttributes(rep)
	if _, ok := rep["attributes"]; !ok {
		for k, v := range profileValues(u) {
			if _, set := raw[k]; !set {
				raw[k] = v
			}
		}
	}
	prof, refused := a.r.resolveProfileLocked(u, raw)
	if refused != nil {
		return *refused
	}
	uc := UserConfig{RequiredActions: slices.Clone(u.requiredActions)}
	if refused := credentialsFromRep(rep, &uc); refused != nil {
		return *refused
	}
	if uc.TOTPSecret != "" {
		key, err := decodeTOTPSecret(uc.TOTPSecret)
		if err != nil {
			return respErrorMessage(http.StatusBadRequest, "keycloaktest: "+err.Error())
		}
		u.totpSecret, u.totpLastStep = encodeTOTPKey(key), 0
	}
	u.email, u.firstName, u.lastName, u.attributes = prof.email, prof.firstName, prof.lastName, prof.attrs
	if v := rep.boolean("emailVerified"); v != nil {
		u.emailVerified = *v
	}
	if ra, ok := rep.list("requiredActions"); ok {
		keep := knownRequiredActions(ra)
		next := slices.DeleteFunc(slices.Clone(u.requiredActions), func(s string) bool {
			return slices.Contains(keycloakRequiredActions, s) && !slices.Contains(keep, s)
		})
		for _, s := range keep {
			if !slices.Contains(next, s) {
				next = append(next, s)
			}
		}
		u.requiredActions = next
	}
	if slices.Contains(uc.RequiredActions, "UPDATE_PASSWORD") && !slices.Contains(u.requiredActions, "UPDATE_PASSWORD") {
		u.requiredActions = append(u.requiredActions, "UPDATE_PASSWORD")
	}
	if uc.Password != "" || uc.PasswordHash != nil {
		u.password, u.hash = uc.Password, uc.PasswordHash.clone()
	}
	var jobs []logoutJob
	if v := rep.boolean("enabled"); v != nil {
		jobs = a.r.setEnabledLocked(u, *v)
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

// resetPassword serves PUT /users/{id}/reset-password. As in Keycloak the
// credential's type is not looked at: the password is set.
func (a *adminReq) resetPassword(u *user, body []byte) adminResp {
	rep, err := decodeRepBody(body, credentialRepJSON)
	if err != nil {
		return bodyErrorResp(err)
	}
	value := rep.str("value")
	if value == nil {
		return respError(http.StatusBadRequest, "No password provided")
	}
	if javaTrim(*value) == "" {
		return respError(http.StatusBadRequest, "Empty password not allowed")
	}
	u.password, u.hash = *value, nil
	a.r.syncCredsLocked(u)
	u.requiredActions = slices.DeleteFunc(u.requiredActions, func(s string) bool { return s == "UPDATE_PASSWORD" })
	if t := rep.boolean("temporary"); t != nil && *t {
		u.requiredActions = append(u.requiredActions, "UPDATE_PASSWORD")
	}
	return respNoContent()
}

// executeActionsEmail serves PUT /users/{id}/execute-actions-email: the
// email's link runs the actions in a browser.
func (a *adminReq) executeActionsEmail(u *user, body []byte) adminResp {
	actions, err := decodeStringListBody(body)
	if err != nil {
		return bodyErrorResp(err)
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

// userRep renders a UserRepresentation: brief is briefRepresentation (no
// attributes, totp, requiredActions ...); single is GET /users/{id},
// whose "access" lists every permission where lists give only "manage".
// Attributes the realm's user profile does not let admins see are left
// out.
func (a *adminReq) userRep(u *user, brief, single bool) map[string]any {
	m := map[string]any{
		"id": u.id, "username": u.username, "enabled": u.enabled, "emailVerified": u.emailVerified,
		"createdTimestamp": u.created.UnixMilli(),
	}
	for k, v := range map[string]string{"email": u.email, "firstName": u.firstName, "lastName": u.lastName} {
		if v != "" && a.r.profileAttrLocked(k).view {
			m[k] = v
		}
	}
	manage := a.perms.manageUsers()
	if single {
		m["access"] = map[string]bool{
			"view": a.perms.viewUsers(), "manage": manage, "manageGroupMembership": manage,
			"mapRoles": manage, "impersonate": a.perms.has("impersonation"), "resetPassword": manage,
		}
	} else {
		m["access"] = map[string]bool{"manage": manage}
	}
	if brief {
		return m
	}
	attrs := map[string][]string{}
	for k, v := range u.attributes {
		if len(v) > 0 && a.r.profileAttrLocked(k).view {
			attrs[k] = slices.Clone(v)
		}
	}
	if len(attrs) > 0 {
		m["attributes"] = attrs
	}
	m["requiredActions"] = nonNil(slices.Clone(u.requiredActions))
	m["notBefore"] = 0
	m["totp"] = u.totpSecret != ""
	// Keycloak lists only credential types of user storages here.
	m["disableableCredentialTypes"] = []string{}
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
	// Unlike the list, Keycloak counts for a caller with query-users only,
	// except for an "id:" search, which needs view-users.
	n := len(a.r.matchUsersLocked(f))
	if f.search != nil && strings.HasPrefix(strings.TrimSpace(*f.search), "id:") && !a.perms.viewUsers() {
		n = 0
	}
	return adminResp{status: http.StatusOK, raw: []byte(strconv.Itoa(n))}
}
