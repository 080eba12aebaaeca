package keycloaktest

import (
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func secondsDuration(n int) time.Duration { return time.Duration(n) * time.Second }

// advanceLocked moves a login tab to its next step: the password, then the
// OTP when the requested level needs it, then required actions and the
// application-initiated action, then the redirect with a code.
func (r *Realm) advanceLocked(e env, as *authSession) outcome {
	if as.userID == "" {
		if as.step != stepRegister {
			as.step = stepLogin
		}
		return r.renderStepLocked(e, as, "", nil)
	}
	u := r.users[as.userID]
	if u == nil || !u.enabled {
		as.userID, as.step, as.fresh, as.level = "", stepLogin, false, 0
		return r.renderStepLocked(e, as, msgAccountDisabled, nil)
	}
	if as.requestedLoA >= maxLoA && as.level < maxLoA {
		switch {
		case u.totpSecret != "":
			as.step = stepOTP
			return r.renderStepLocked(e, as, "", nil)
		case as.forced:
			// Keycloak's required OTP authenticator, not configured for the
			// user: "setup required", i.e. the CONFIGURE_TOTP action.
			as.setupOTP = true
		}
	}
	if next := r.nextActionLocked(as, u); next != "" {
		as.step, as.action = stepAction, next
		return r.renderStepLocked(e, as, "", nil)
	}
	if as.actionToken {
		delete(as.root.tabs, as.tabID)
		p := &page{Kind: "info", Title: msgAccountUpdated, Realm: r.name, ActionName: msgAccountUpdated}
		if as.actionRedirect != "" {
			p.Link, p.LinkText = as.actionRedirect, "« Back to Application"
		}
		return outcome{page: p}
	}
	if as.forced && as.level < as.requestedLoA {
		delete(as.root.tabs, as.tabID)
		return errorOutcome(http.StatusBadRequest, msgACRNotFulfilled)
	}
	status := ""
	if as.kcAction != "" {
		status = "success"
		if _, known := knownActions[as.kcAction]; !known {
			status = "error"
		}
	}
	return r.completeLocked(e, as, u, status)
}

// pendingActionsLocked is the user's required actions, with VERIFY_PROFILE
// when the realm verifies profiles and the user's is incomplete (Keycloak
// evaluates that action at every login instead of storing it).
func (r *Realm) pendingActionsLocked(u *user) []string {
	if !r.cfg.VerifyProfile || u.serviceAccountOf != "" || slices.Contains(u.requiredActions, verifyProfile) ||
		(u.email != "" && u.firstName != "" && u.lastName != "") {
		return u.requiredActions
	}
	return append(slices.Clone(u.requiredActions), verifyProfile)
}

const verifyProfile = "VERIFY_PROFILE"

// nextActionLocked is the next required action to run, "" when none is left.
func (r *Realm) nextActionLocked(as *authSession, u *user) string {
	for _, a := range r.pendingActionsLocked(u) {
		if !slices.Contains(as.done, a) {
			return a
		}
	}
	if as.setupOTP && u.totpSecret == "" && !slices.Contains(as.done, "CONFIGURE_TOTP") {
		return "CONFIGURE_TOTP"
	}
	if as.kcAction != "" && !as.aiaDone {
		if slices.Contains(as.done, as.kcAction) {
			as.aiaDone = true
			return ""
		}
		if _, known := knownActions[as.kcAction]; known {
			return as.kcAction
		}
	}
	return ""
}

// actionURL builds a login-actions URL for the tab.
func (r *Realm) actionURL(e env, as *authSession, path, execution string) string {
	q := url.Values{"client_id": {as.clientID}, "tab_id": {as.tabID}}
	if execution != "" {
		q.Set("session_code", as.sessionCode)
		q.Set("execution", execution)
	}
	return e.realmURL + "/login-actions/" + path + "?" + q.Encode()
}

// renderStepLocked renders the tab's current step with a fresh session code.
func (r *Realm) renderStepLocked(e env, as *authSession, msg string, p *page) outcome {
	as.sessionCode = randomString(32)
	if p == nil {
		p = &page{}
	}
	p.Realm, p.Message = r.name, msg
	switch as.step {
	case stepRegister:
		p.Kind, p.Title = "register", "Register"
		p.Action = r.actionURL(e, as, "registration", execRegister)
		p.LoginURL = r.actionURL(e, as, "authenticate", "")
	case stepOTP:
		p.Kind, p.Title = "otp", "Sign in to "+r.name
		p.Action = r.actionURL(e, as, "authenticate", execOTP)
		if msg != "" {
			p.FieldErrors = map[string]string{"totp": msg}
		}
	case stepAction:
		if r.users[as.userID] == nil {
			as.userID, as.step = "", stepLogin
			return r.renderStepLocked(e, as, msgInvalidUser, nil)
		}
		r.actionPageLocked(e, as, p)
	default:
		p.Kind, p.Title = "login", "Sign in to "+r.name
		p.Action = r.actionURL(e, as, "authenticate", execLogin)
		p.Note = r.cfg.LoginNote
		if p.Username == "" {
			p.Username = as.username
		}
		p.Reauth = as.reauth
		if msg == "" && as.reauth {
			p.Message, p.MessageType = msgReauthenticate, "info"
		}
		if r.cfg.RegistrationAllowed && !as.reauth {
			p.RegisterURL = r.actionURL(e, as, "registration", "")
		}
	}
	return outcome{page: p}
}

// actionPageLocked fills the page of a required action.
func (r *Realm) actionPageLocked(e env, as *authSession, p *page) {
	u := r.users[as.userID]
	p.Action = r.actionURL(e, as, "required-action", as.action)
	p.ActionID = as.action
	p.ActionName = knownActions[as.action]
	if p.ActionName == "" {
		p.ActionName = as.action
	}
	p.AIA = as.action == as.kcAction && !as.aiaDone
	p.Title = p.ActionName
	switch as.action {
	case "UPDATE_PASSWORD":
		p.Kind, p.Title, p.Username = "update-password", "Update password", u.username
		if p.Message == "" && !p.AIA {
			p.Message, p.MessageType = "You need to change your password to activate your account.", "warning"
		}
	case "UPDATE_PROFILE", verifyProfile:
		p.Kind, p.Title = "update-profile", "Update Account Information"
		if p.Fields == nil {
			p.Fields = map[string]string{"email": u.email, "firstName": u.firstName, "lastName": u.lastName}
		}
	case "CONFIGURE_TOTP":
		if as.totpSecret == "" {
			as.totpSecret = newTOTPSecret()
		}
		p.Kind, p.Title = "configure-totp", "Mobile Authenticator Setup"
		p.Secret, p.SecretShown = as.totpSecret, groupedSecret(as.totpSecret)
		if p.Message == "" && !p.AIA {
			p.Message, p.MessageType = "You need to set up Mobile Authenticator to activate your account.", "warning"
		}
		if p.Message != "" && p.MessageType == "" {
			p.FieldErrors = map[string]string{"totp": p.Message}
		}
	case "VERIFY_EMAIL":
		p.Kind, p.Title, p.Email = "verify-email", "Email verification", u.email
		r.sendVerifyEmailLocked(e, as, u)
	case "TERMS_AND_CONDITIONS":
		p.Kind = "terms"
	default:
		p.Kind = "required-action"
	}
}

// sendVerifyEmailLocked puts the verification email in the outbox once per
// tab; its link verifies the address like Keycloak's action token.
func (r *Realm) sendVerifyEmailLocked(e env, as *authSession, u *user) {
	if slices.Contains(as.done, "mail:VERIFY_EMAIL") || u.email == "" {
		return
	}
	as.done = append(as.done, "mail:VERIFY_EMAIL")
	now := r.now()
	claims := map[string]any{
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": newUUID(),
		"iss": e.issuer, "aud": e.issuer, "sub": u.id, "typ": "verify-email",
		"eml": u.email, "azp": as.clientID, "asid": as.root.id + "." + as.tabID,
	}
	key, err := signJWT(jose.HS512, r.hmac.secret, claims, map[string]any{"typ": "JWT", "kid": r.hmac.kid})
	if err != nil {
		r.srv.logger.Error("keycloaktest: action token", "realm", r.name, "error", err)
		return
	}
	link := e.realmURL + "/login-actions/action-token?" + url.Values{"key": {key}, "client_id": {as.clientID}, "tab_id": {as.tabID}}.Encode()
	r.sendEmailLocked(Email{
		To:      u.email,
		Subject: "Verify email",
		Body: fmt.Sprintf("Someone has created a %s account with this email address. If this was you, click the link below to verify your email address\n\n%s\n\nThis link will expire within 5 minutes.\n\nIf you didn't create this account, just ignore this message.\n",
			r.name, link),
		Link: link,
	})
}

// completeLocked ends a successful login: the browser's SSO session is
// created or reused, the SSO cookies are set, and the client gets a code
// (or, for a cancelled application-initiated action, just the status).
func (r *Realm) completeLocked(e env, as *authSession, u *user, aiaStatus string) outcome {
	now := r.now()
	var sess *userSession
	if !as.ignoreSSO && e.sso != nil && r.sessionLiveLocked(e.sso, now) {
		sess = e.sso
	}
	if sess != nil && sess.userID != u.id {
		delete(as.root.tabs, as.tabID)
		return errorOutcome(http.StatusBadRequest, fmt.Sprintf("You are already authenticated as different user '%s' in this session. Please sign out first.", r.users[sess.userID].username))
	}
	if sess == nil {
		sess = r.newSessionLocked(u, as.clientID, now)
		sess.issuer = as.issuer
		sess.ip = remoteHost(e.req)
		sess.loa = as.level
	} else if sess.clients[as.clientID] == nil {
		sess.clients[as.clientID] = &clientSession{issued: map[string]uint64{}}
	}
	if as.fresh {
		sess.authTime = now.Unix()
		sess.loa = max(sess.loa, as.level)
	}
	sess.last = now
	acr := r.acrFor(as, as.level)
	sess.clients[as.clientID].acr = acr
	delete(as.root.tabs, as.tabID)

	p := url.Values{}
	if as.state != "" {
		p.Set("state", as.state)
	}
	p.Set("session_state", sess.id)
	p.Set("iss", as.issuer)
	if aiaStatus != "" {
		p.Set("kc_action_status", aiaStatus)
		p.Set("kc_action", as.kcAction)
	}
	if aiaStatus != "cancelled" {
		code := randomString(32) + "." + sess.id
		r.codes[code] = &authCode{
			clientID: as.clientID, redirectParam: as.redirectParam, sid: sess.id, userID: u.id,
			scopes: as.scopes, nonce: as.nonce, challenge: as.challenge, method: as.method,
			acr: acr, expires: now.Add(codeLifespan), issuer: as.issuer,
		}
		p.Set("code", code)
	}
	return outcome{
		redirect: &authResponse{uri: as.redirectURI, mode: as.responseMode, params: p},
		cookies:  r.loginCookiesLocked(e, sess),
	}
}

// loginAction resolves the tab of a login-actions request; on failure the
// outcome is the page Keycloak shows.
func (r *Realm) loginActionLocked(e env, q url.Values) (*authSession, *outcome) {
	now := r.now()
	as, haveRoot := r.tabLocked(e.req, q.Get("tab_id"), now)
	if !haveRoot {
		if _, err := e.req.Cookie(cookieAuthSession); err != nil {
			o := errorOutcome(http.StatusBadRequest, msgCookieNotFound)
			return nil, &o
		}
		o := errorOutcome(http.StatusBadRequest, msgLoginTimeout)
		return nil, &o
	}
	if as == nil || as.clientID != q.Get("client_id") {
		o := errorOutcome(http.StatusBadRequest, msgLoginTimeout)
		return nil, &o
	}
	return as, nil
}

// handleLoginActions serves {realm}/login-actions/{authenticate,
// required-action,registration}: the forms of a login tab.
func handleLoginActions(kind string) realmHandler {
	return func(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
		e := r.newEnv(s, req)
		form, ok := readParams(w, req)
		if !ok {
			r.write(w, errorOutcome(http.StatusBadRequest, msgInvalidRequest))
			return
		}
		q := req.URL.Query()
		e.sso = r.ssoSession(e)
		r.mu.Lock()
		o := r.loginActionsLocked(e, kind, q, form)
		r.mu.Unlock()
		r.write(w, o)
	}
}

func (r *Realm) loginActionsLocked(e env, kind string, q, form url.Values) outcome {
	as, fail := r.loginActionLocked(e, q)
	if fail != nil {
		return *fail
	}
	if e.req.Method == http.MethodGet {
		// Links: "Register", "Back to Login", a reload.
		switch {
		case kind == "registration" && as.userID == "" && r.cfg.RegistrationAllowed:
			as.step = stepRegister
		case kind == "authenticate" && as.step == stepRegister:
			as.step = stepLogin
		}
		if as.userID != "" {
			return r.advanceLocked(e, as)
		}
		return r.renderStepLocked(e, as, "", nil)
	}
	wantStep := map[string]string{"authenticate": "", "registration": stepRegister, "required-action": stepAction}[kind]
	stale := q.Get("session_code") != as.sessionCode ||
		(kind == "authenticate" && as.step != stepLogin && as.step != stepOTP) ||
		(kind != "authenticate" && as.step != wantStep) ||
		(kind == "required-action" && q.Get("execution") != as.action) ||
		(kind == "authenticate" && q.Get("execution") != map[string]string{stepLogin: execLogin, stepOTP: execOTP}[as.step])
	if stale {
		// A resubmitted or outdated page: show where the tab is now.
		if as.userID != "" {
			return r.advanceLocked(e, as)
		}
		return r.renderStepLocked(e, as, "", nil)
	}
	switch as.step {
	case stepLogin:
		return r.passwordStepLocked(e, as, form)
	case stepOTP:
		return r.otpStepLocked(e, as, form)
	case stepRegister:
		return r.registerStepLocked(e, as, form)
	default:
		return r.actionStepLocked(e, as, form)
	}
}

// findLoginUserLocked finds a user by username, or by email as Keycloak's
// "login with email" does.
func (r *Realm) findLoginUserLocked(name string) *user {
	if id, ok := r.byName[strings.ToLower(name)]; ok {
		return r.users[id]
	}
	if !strings.Contains(name, "@") {
		return nil
	}
	var found *user
	for _, u := range r.users {
		if u.email != "" && strings.EqualFold(u.email, name) {
			if found != nil {
				return nil
			}
			found = u
		}
	}
	return found
}

func (r *Realm) passwordStepLocked(e env, as *authSession, form url.Values) outcome {
	username := strings.TrimSpace(form.Get("username"))
	if as.reauth {
		username = as.username
	}
	as.username = username
	u := r.findLoginUserLocked(username)
	if u == nil || u.serviceAccountOf != "" || !checkPassword(form.Get("password"), u.password, u.hash) {
		return r.renderStepLocked(e, as, msgInvalidUser, nil)
	}
	if !u.enabled {
		return r.renderStepLocked(e, as, msgAccountDisabled, nil)
	}
	as.userID, as.fresh, as.level = u.id, true, 1
	return r.advanceLocked(e, as)
}

func (r *Realm) otpStepLocked(e env, as *authSession, form url.Values) outcome {
	u := r.users[as.userID]
	if u == nil {
		return r.advanceLocked(e, as)
	}
	code := form.Get("otp")
	if strings.TrimSpace(code) == "" {
		return r.renderStepLocked(e, as, msgMissingTOTP, nil)
	}
	step, ok := checkTOTP(u.totpSecret, code, r.now())
	if !ok || step <= u.totpLastStep {
		// A code already used is refused too (Keycloak's default OTP
		// policy: codes are not reusable).
		return r.renderStepLocked(e, as, msgInvalidTOTP, nil)
	}
	u.totpLastStep = step
	as.level, as.fresh = maxLoA, true
	return r.advanceLocked(e, as)
}

func (r *Realm) actionStepLocked(e env, as *authSession, form url.Values) outcome {
	u := r.users[as.userID]
	if u == nil || !u.enabled {
		return r.advanceLocked(e, as)
	}
	aia := as.action == as.kcAction && !as.aiaDone
	if aia && (form.Get("cancel-aia") == "true" || form.Has("cancel")) {
		as.aiaDone = true
		return r.completeLocked(e, as, u, "cancelled")
	}
	switch as.action {
	case "UPDATE_PASSWORD":
		pw, confirm := form.Get("password-new"), form.Get("password-confirm")
		switch {
		case pw == "":
			return r.renderStepLocked(e, as, msgMissingPassword, &page{FieldErrors: map[string]string{"password": msgMissingPassword}})
		case pw != confirm:
			return r.renderStepLocked(e, as, msgPasswordMismatch, &page{FieldErrors: map[string]string{"password-confirm": msgPasswordMismatch}})
		}
		u.password, u.hash = pw, nil
	case "UPDATE_PROFILE", verifyProfile:
		fields := map[string]string{"email": strings.TrimSpace(form.Get("email")),
			"firstName": strings.TrimSpace(form.Get("firstName")), "lastName": strings.TrimSpace(form.Get("lastName"))}
		errs := r.profileErrorsLocked(fields, u)
		if len(errs) > 0 {
			return r.renderStepLocked(e, as, firstError(errs), &page{Fields: fields, FieldErrors: errs})
		}
		if !strings.EqualFold(u.email, fields["email"]) {
			u.emailVerified = false
		}
		u.email, u.firstName, u.lastName = fields["email"], fields["firstName"], fields["lastName"]
	case "CONFIGURE_TOTP":
		code := form.Get("totp")
		if strings.TrimSpace(code) == "" {
			return r.renderStepLocked(e, as, msgMissingTOTP, nil)
		}
		step, ok := checkTOTP(as.totpSecret, code, r.now())
		if !ok {
			return r.renderStepLocked(e, as, msgInvalidTOTP, nil)
		}
		u.totpSecret, u.totpLastStep = as.totpSecret, step
		if as.setupOTP {
			as.level, as.fresh = maxLoA, true
		}
	case "VERIFY_EMAIL":
		u.emailVerified = true
	case "TERMS_AND_CONDITIONS":
		if form.Has("cancel") {
			delete(as.root.tabs, as.tabID)
			return r.errorRedirect(as, "access_denied", "")
		}
	}
	as.done = append(as.done, as.action)
	u.requiredActions = slices.DeleteFunc(u.requiredActions, func(a string) bool { return a == as.action })
	if aia {
		as.aiaDone = true
	}
	return r.advanceLocked(e, as)
}

// profileErrorsLocked validates the profile fields of Keycloak's default
// user profile (email, first and last name required).
func (r *Realm) profileErrorsLocked(f map[string]string, self *user) map[string]string {
	errs := map[string]string{}
	if f["email"] == "" {
		errs["email"] = msgMissingEmail
	} else if a, err := mail.ParseAddress(f["email"]); err != nil || a.Address != f["email"] || a.Name != "" {
		errs["email"] = msgInvalidEmail
	} else {
		for _, u := range r.users {
			if u != self && strings.EqualFold(u.email, f["email"]) {
				errs["email"] = msgEmailExists
				break
			}
		}
	}
	if f["firstName"] == "" {
		errs["firstName"] = msgMissingFirstName
	}
	if f["lastName"] == "" {
		errs["lastName"] = msgMissingLastName
	}
	return errs
}

// firstError picks the message shown at the top, in form order.
func firstError(errs map[string]string) string {
	for _, f := range []string{"firstName", "lastName", "email", "username", "password", "password-confirm"} {
		if m, ok := errs[f]; ok {
			return m
		}
	}
	return ""
}

func (r *Realm) registerStepLocked(e env, as *authSession, form url.Values) outcome {
	if !r.cfg.RegistrationAllowed {
		delete(as.root.tabs, as.tabID)
		return errorOutcome(http.StatusBadRequest, msgRegistrationDisabled)
	}
	fields := map[string]string{
		"firstName": strings.TrimSpace(form.Get("firstName")), "lastName": strings.TrimSpace(form.Get("lastName")),
		"email": strings.TrimSpace(form.Get("email")), "username": strings.ToLower(strings.TrimSpace(form.Get("username"))),
	}
	errs := r.profileErrorsLocked(fields, nil)
	switch name := fields["username"]; {
	case name == "":
		errs["username"] = msgMissingUsername
	case strings.ContainsFunc(name, isControl) || strings.HasPrefix(name, serviceAccountPrefix):
		errs["username"] = msgInvalidParameter("username")
	default:
		if _, taken := r.byName[name]; taken {
			errs["username"] = msgUsernameExists
		}
	}
	pw := form.Get("password")
	switch {
	case pw == "":
		errs["password"] = msgMissingPassword
	case pw != form.Get("password-confirm"):
		errs["password-confirm"] = msgPasswordMismatch
	}
	if len(errs) > 0 {
		return r.renderStepLocked(e, as, firstError(errs), &page{Fields: fields, FieldErrors: errs})
	}
	id, err := r.addUserLocked(UserConfig{Username: fields["username"], Password: pw, Email: fields["email"],
		FirstName: fields["firstName"], LastName: fields["lastName"]}, "")
	if err != nil {
		return r.renderStepLocked(e, as, msgUsernameExists, &page{Fields: fields})
	}
	as.userID, as.fresh, as.level, as.step = id, true, 1, stepLogin
	return r.advanceLocked(e, as)
}

// handleActionToken serves the links of emails: email verification, and
// the execute-actions link of the admin API, which runs the user's required
// actions in a login tab of this browser.
func handleActionToken(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	e := r.newEnv(s, req)
	claims, hmacSigned, err := r.verifySigned(req.URL.Query().Get("key"))
	typ := claims.str("typ")
	if err != nil || !hmacSigned || (typ != "verify-email" && typ != typExecuteActions) || claims.str("iss") != e.issuer {
		r.write(w, errorOutcome(http.StatusBadRequest, "Action expired."))
		return
	}
	if exp, ok := claims.num("exp"); !ok || r.now().Unix() >= exp {
		r.write(w, errorOutcome(http.StatusBadRequest, "Action expired."))
		return
	}
	if typ == typExecuteActions {
		r.mu.Lock()
		o := r.executeActionsLocked(e, claims)
		r.mu.Unlock()
		r.write(w, o)
		return
	}
	r.mu.Lock()
	u := r.users[claims.str("sub")]
	if u == nil || !strings.EqualFold(u.email, claims.str("eml")) {
		r.mu.Unlock()
		r.write(w, errorOutcome(http.StatusBadRequest, "The link you clicked is an old stale link and is no longer valid.  Maybe you have already verified your email."))
		return
	}
	u.emailVerified = true
	u.requiredActions = slices.DeleteFunc(u.requiredActions, func(a string) bool { return a == "VERIFY_EMAIL" })
	r.mu.Unlock()
	r.write(w, outcome{page: &page{Kind: "info", Title: "Email verified", Realm: r.name, ActionName: msgEmailVerified}})
}

// executeActionsLocked starts the required actions of an execute-actions
// link: they are added to the user's required actions (as Keycloak does)
// and run in a new login tab.
func (r *Realm) executeActionsLocked(e env, claims claimSet) outcome {
	u := r.users[claims.str("sub")]
	if u == nil || !u.enabled || !strings.EqualFold(u.email, claims.str("eml")) {
		return errorOutcome(http.StatusBadRequest, "The link you clicked is an old stale link and is no longer valid.")
	}
	if jti := claims.str("jti"); r.usedActionTokens[jti] {
		return errorOutcome(http.StatusBadRequest, "Action expired.")
	} else if jti != "" {
		r.usedActionTokens[jti] = true
	}
	if list, ok := claims["rqac"].([]any); ok {
		for _, v := range list {
			if a, ok := v.(string); ok && a != "" && !slices.Contains(u.requiredActions, a) {
				u.requiredActions = append(u.requiredActions, a)
			}
		}
	}
	now := r.now()
	r.pruneBrowserLocked(now, false)
	var cookies []*http.Cookie
	root := r.rootLocked(e.req, now)
	if root == nil {
		root = &rootAuthSession{id: randomString(24), tabs: map[string]*authSession{}}
		r.authSessions[root.id] = root
		cookies = append(cookies, r.cookie(e, cookieAuthSession, root.id, true))
	}
	root.last = now
	as := &authSession{
		root: root, tabID: randomString(8), created: now, clientID: claims.str("azp"),
		issuer: e.issuer, maxAge: -1, requestedLoA: -1, userID: u.id, username: u.username,
		step: stepAction, actionToken: true, actionRedirect: claims.str("reduri"),
	}
	root.tabs[as.tabID] = as
	o := r.advanceLocked(e, as)
	o.cookies = append(cookies, o.cookies...)
	return o
}
