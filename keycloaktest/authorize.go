package keycloaktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Keycloak's page messages (base login theme, English).
const (
	msgInvalidUser          = "Invalid username or password."
	msgAccountDisabled      = "Account is disabled, contact your administrator."
	msgInvalidTOTP          = "Invalid authenticator code."
	msgMissingTOTP          = "Please specify authenticator code."
	msgPasswordMismatch     = "Passwords don't match."
	msgMissingPassword      = "Please specify password."
	msgMissingUsername      = "Please specify username."
	msgMissingEmail         = "Please specify email."
	msgMissingFirstName     = "Please specify first name."
	msgMissingLastName      = "Please specify last name."
	msgInvalidEmail         = "Invalid email address."
	msgUsernameExists       = "Username already exists."
	msgEmailExists          = "Email already exists."
	msgClientNotFound       = "Client not found."
	msgClientDisabled       = "Client disabled."
	msgRegistrationDisabled = "Registration not allowed"
	msgLoginTimeout         = "Your login attempt timed out. Login will start from the beginning."
	msgCookieNotFound       = "Cookie not found. Please make sure cookies are enabled in your browser."
	msgACRNotFulfilled      = "Authentication requirements not fulfilled"
	msgReauthenticate       = "Please re-authenticate to continue"
	msgLoggedOut            = "You are logged out"
	msgInvalidRedirectURI   = "Invalid redirect uri"
	msgRealmDisabled        = "Realm not enabled"
	msgEmailVerified        = "Your email address has been verified."
	msgAccountUpdated       = "Your account has been updated."
	msgInvalidRequest       = "Invalid Request"
)

func msgInvalidParameter(p string) string { return "Invalid parameter: " + p }

// responseParams are OIDC authorization-response parameters; a redirect URI
// carrying one in its query is refused (Keycloak 26.x does the same), since
// the client would otherwise read a forged value.
var responseParams = []string{"code", "state", "session_state", "iss", "error", "error_description", "error_uri",
	"id_token", "access_token", "token_type", "expires_in", "kc_action_status", "response"}

// knownActions are the required actions the browser flow implements.
var knownActions = map[string]string{
	"UPDATE_PASSWORD":      "Update Password",
	"UPDATE_PROFILE":       "Update Profile",
	"VERIFY_PROFILE":       "Verify Profile",
	"VERIFY_EMAIL":         "Verify Email",
	"CONFIGURE_TOTP":       "Configure OTP",
	"TERMS_AND_CONDITIONS": "Terms and Conditions",
}

var pkceChallengeRe = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

func handleAuth(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	r.startAuth(s, w, req, false)
}

func handleRegistrations(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	r.startAuth(s, w, req, true)
}

// readParams merges the query and (for POST) the form body.
func readParams(w http.ResponseWriter, req *http.Request) (url.Values, bool) {
	if req.Method == http.MethodPost {
		req.Body = http.MaxBytesReader(w, req.Body, maxFormBytes)
		if err := req.ParseForm(); err != nil {
			return nil, false
		}
		return req.Form, true
	}
	return req.URL.Query(), true
}

// startAuth serves the authorization endpoint (protocol doc section 2) and
// the registrations endpoint.
func (r *Realm) startAuth(s *Server, w http.ResponseWriter, req *http.Request, register bool) {
	e := r.newEnv(s, req)
	params, ok := readParams(w, req)
	if !ok {
		r.write(w, errorOutcome(http.StatusBadRequest, msgInvalidRequest))
		return
	}
	e.sso = r.ssoSession(e)
	r.mu.Lock()
	o := r.startAuthLocked(e, params, register)
	r.mu.Unlock()
	r.write(w, o)
}

func (r *Realm) startAuthLocked(e env, params url.Values, register bool) outcome {
	if r.cfg.Disabled {
		return errorOutcome(http.StatusBadRequest, msgRealmDisabled)
	}
	clientID := params.Get("client_id")
	if clientID == "" {
		return errorOutcome(http.StatusBadRequest, "Missing parameters: client_id")
	}
	c := r.clients[clientID]
	if c == nil {
		return errorOutcome(http.StatusBadRequest, msgClientNotFound)
	}
	if c.cfg.Disabled {
		return errorOutcome(http.StatusBadRequest, msgClientDisabled)
	}
	redirectParam := params.Get("redirect_uri")
	redirectURI, ok := validRedirect(c.cfg.RedirectURIs, redirectParam)
	if !ok {
		r.logRefusedRedirect(e.s, clientID, redirectParam, c.cfg.RedirectURIs)
		return errorOutcome(http.StatusBadRequest, msgInvalidParameter("redirect_uri"))
	}

	// From here on, problems are reported to the client by redirect.
	as := &authSession{
		clientID: clientID, redirectURI: redirectURI, redirectParam: redirectParam,
		state: params.Get("state"), nonce: params.Get("nonce"), issuer: e.issuer,
		maxAge: -1, requestedLoA: -1, loginHint: params.Get("login_hint"),
	}
	mode := params.Get("response_mode")
	switch mode {
	case "", "query", "fragment", "form_post":
		as.responseMode = mode
		if mode == "" {
			as.responseMode = "query"
		}
	default:
		as.responseMode = "query"
		return r.errorRedirect(as, "invalid_request", msgInvalidParameter("response_mode"))
	}
	switch rt := params.Get("response_type"); {
	case rt == "":
		return r.errorRedirect(as, "invalid_request", "Missing parameter: response_type")
	case rt != "code":
		if mode == "" && rt != "none" {
			as.responseMode = "fragment" // implicit and hybrid responses default to the fragment
		}
		return r.errorRedirect(as, "unsupported_response_type", "Client is not allowed to initiate browser login with given response_type. Implicit flow is disabled for the client.")
	}
	if !c.cfg.StandardFlow {
		return r.errorRedirect(as, "unauthorized_client", "Client is not allowed to initiate browser login with given response_type. Standard flow is disabled for the client.")
	}
	if params.Has("request") {
		return r.errorRedirect(as, "request_not_supported", "Request objects are not supported")
	}
	if params.Has("request_uri") {
		return r.errorRedirect(as, "request_uri_not_supported", "Request URIs are not supported")
	}
	scope := params.Get("scope")
	scopes, ok := grantScopes(c, scope, false, r.dynamicOrganizationScope)
	if !ok {
		return r.errorRedirect(as, "invalid_scope", "Invalid scopes: "+scope)
	}
	as.scopes = scopes

	as.prompts = strings.Fields(params.Get("prompt"))
	for _, p := range as.prompts {
		if !slices.Contains([]string{"none", "login", "consent", "create"}, p) {
			return r.errorRedirect(as, "invalid_request", msgInvalidParameter("prompt"))
		}
	}
	if as.hasPrompt("none") && len(as.prompts) > 1 {
		return r.errorRedirect(as, "invalid_request", msgInvalidParameter("prompt"))
	}
	if v := params.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return r.errorRedirect(as, "invalid_request", msgInvalidParameter("max_age"))
		}
		as.maxAge = n
	}
	if o, bad := checkPKCE(c, params.Get("code_challenge"), params.Get("code_challenge_method")); bad != "" {
		return r.errorRedirect(as, "invalid_request", bad)
	} else {
		as.challenge, as.method = params.Get("code_challenge"), o
	}
	if errPage := r.requestedLevel(as, params); errPage != nil {
		return *errPage
	}
	if a := params.Get("kc_action"); a != "" {
		as.kcAction, _, _ = strings.Cut(a, ":")
	}

	register = register || as.hasPrompt("create")
	if register && !r.cfg.RegistrationAllowed {
		return errorOutcome(http.StatusBadRequest, msgRegistrationDisabled)
	}

	// The request is valid: open a login tab for it.
	var cookies []*http.Cookie
	now := r.now()
	r.pruneBrowserLocked(now, false)
	root := r.rootLocked(e.req, now)
	if root == nil {
		root = &rootAuthSession{id: randomString(24), tabs: map[string]*authSession{}}
		r.authSessions[root.id] = root
		cookies = append(cookies, r.cookie(e, cookieAuthSession, root.id, true))
	}
	root.last = now
	if len(root.tabs) >= maxTabs {
		// Like Keycloak, a browser keeps a bounded number of login tabs:
		// the oldest goes.
		var oldest *authSession
		for _, t := range root.tabs {
			if oldest == nil || t.created.Before(oldest.created) {
				oldest = t
			}
		}
		delete(root.tabs, oldest.tabID)
	}
	as.root, as.tabID, as.created = root, randomString(8), now
	root.tabs[as.tabID] = as

	sso := e.sso
	if sso != nil && sso.ended {
		sso = nil
	}
	if register {
		// Keycloak drops the SSO cookie when sign-up starts.
		as.ignoreSSO, as.step = true, stepRegister
		o := r.renderStepLocked(e, as, "", nil)
		o.cookies = append(append(cookies, r.logoutCookies(e)...), o.cookies...)
		return o
	}

	forceLogin := as.hasPrompt("login")
	if sso != nil {
		authAge := now.Sub(unixTime(sso.authTime))
		if as.maxAge >= 0 && authAge > secondsDuration(as.maxAge) {
			forceLogin = true
		}
		if (as.kcAction == "UPDATE_PASSWORD" || as.kcAction == "CONFIGURE_TOTP") && authAge > aiaMaxAuthAge {
			forceLogin = true
		}
	}
	if as.hasPrompt("none") {
		if sso == nil || forceLogin {
			delete(root.tabs, as.tabID)
			o := r.errorRedirect(as, "login_required", "")
			o.cookies = cookies
			return o
		}
	}
	if sso != nil {
		as.username = r.users[sso.userID].username
		if forceLogin {
			as.reauth = true
		} else {
			as.userID = sso.userID
			as.level = 0
			if as.requestedLoA > 0 {
				as.level = min(as.requestedLoA, sso.loa)
			}
		}
	}
	if as.username == "" {
		as.username = as.loginHint
	}
	o := r.advanceLocked(e, as)
	if as.hasPrompt("none") && o.page != nil {
		// Something needs the user (OTP, a required action): prompt=none
		// cannot show it.
		delete(root.tabs, as.tabID)
		o = r.errorRedirect(as, "interaction_required", "")
	}
	o.cookies = append(cookies, o.cookies...)
	return o
}

// requestedLevel reads acr_values and the claims parameter's acr request
// as Keycloak does: the requested level is the lowest of the requested
// values; an essential request is forced; an essential value that is
// neither mapped nor a number is refused.
func (r *Realm) requestedLevel(as *authSession, params url.Values) *outcome {
	if raw := params.Get("claims"); raw != "" {
		var claims map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &claims); err != nil {
			o := errorOutcome(http.StatusBadRequest, msgInvalidParameter("claims"))
			return &o
		}
		var req struct {
			Essential bool     `json:"essential"`
			Value     string   `json:"value"`
			Values    []string `json:"values"`
		}
		if acr, ok := claims["id_token"]["acr"]; ok && json.Unmarshal(acr, &req) == nil {
			vals := req.Values
			if req.Value != "" {
				vals = append(vals, req.Value)
			}
			if req.Essential && len(vals) > 0 {
				as.forced, as.essentialACRs = true, vals
			} else {
				as.acrValues = append(as.acrValues, vals...)
			}
		}
	}
	as.acrValues = append(as.acrValues, strings.Fields(params.Get("acr_values"))...)
	values := as.acrValues
	if as.forced {
		values = as.essentialACRs
	}
	for _, v := range values {
		loa, ok := r.loaOf(v)
		if !ok {
			if as.forced {
				o := errorOutcome(http.StatusBadRequest, msgInvalidParameter("claims"))
				return &o
			}
			loa = 0
		}
		if as.requestedLoA < 0 || loa < as.requestedLoA {
			as.requestedLoA = loa
		}
	}
	return nil
}

// loaOf maps an ACR value to its level: the realm mapping, else a number.
func (r *Realm) loaOf(acr string) (int, bool) {
	if loa, ok := r.cfg.ACRLoA[acr]; ok {
		return loa, true
	}
	n, err := strconv.Atoi(acr)
	return n, err == nil && n >= 0
}

// acrFor names a reached level as Keycloak's acr mapper does: the first
// requested value (essential ones first) that maps to exactly that level,
// else the number.
func (r *Realm) acrFor(as *authSession, level int) string {
	for _, list := range [][]string{as.essentialACRs, as.acrValues} {
		for _, v := range list {
			if loa, ok := r.loaOf(v); ok && loa == level {
				return v
			}
		}
	}
	return strconv.Itoa(level)
}

// checkPKCE applies Keycloak's PKCE parameter rules; it returns the
// effective method, or an error description.
func checkPKCE(c *client, challenge, method string) (string, string) {
	if enforced := c.cfg.Attributes["pkce.code.challenge.method"]; enforced != "" {
		switch {
		case method == "":
			return "", "Missing parameter: code_challenge_method"
		case method != enforced:
			return "", "Invalid parameter: code challenge method is not configured one"
		case challenge == "":
			return "", "Missing parameter: code_challenge"
		case !pkceChallengeRe.MatchString(challenge):
			return "", msgInvalidParameter("code_challenge")
		}
		return method, ""
	}
	if challenge == "" {
		if method != "" {
			return "", "Missing parameter: code_challenge"
		}
		return "", ""
	}
	if method == "" {
		method = "plain"
	}
	if method != "plain" && method != "S256" {
		return "", "Invalid parameter: unsupported code challenge method"
	}
	if !pkceChallengeRe.MatchString(challenge) {
		return "", msgInvalidParameter("code_challenge")
	}
	return method, ""
}

// errorRedirect sends an OAuth error to the validated redirect URI, with
// state and iss (RFC 9207).
func (r *Realm) errorRedirect(as *authSession, code, desc string) outcome {
	p := url.Values{"error": {code}}
	if desc != "" {
		p.Set("error_description", desc)
	}
	if as.state != "" {
		p.Set("state", as.state)
	}
	p.Set("iss", as.issuer)
	return outcome{redirect: &authResponse{uri: as.redirectURI, mode: as.responseMode, params: p}}
}

// validRedirect checks a redirect_uri against the client's valid redirect
// URIs: exact match, or a pattern ending in "*" that matches as a prefix
// (and "{base}/*" also matches "{base}"). Without a redirect_uri, a client
// with exactly one non-wildcard URI uses it. URIs with userinfo, "/../", a
// fragment, control characters or OIDC response parameters are refused.
func validRedirect(valid []string, redirect string) (string, bool) {
	if redirect == "" {
		if len(valid) == 1 && !strings.Contains(valid[0], "*") {
			return valid[0], true
		}
		return "", false
	}
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme == "" || slices.Contains([]string{"javascript", "data", "vbscript"}, strings.ToLower(u.Scheme)) ||
		u.User != nil || u.Fragment != "" || strings.Contains(redirect, "#") ||
		strings.ContainsFunc(redirect, isControl) || strings.Contains(redirect, "\\") {
		return "", false
	}
	if strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") || strings.Contains(u.EscapedPath(), "%2e%2e") || strings.Contains(u.EscapedPath(), "%2E%2E") {
		return "", false
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		for _, p := range responseParams {
			if q.Has(p) {
				return "", false
			}
		}
	} else {
		return "", false
	}
	if matchesRedirect(valid, redirect) {
		return redirect, true
	}
	return "", false
}

// Log messages of a refused redirect_uri at the authorization endpoint
// (`cloakroom dev` recognises the first and adds the flag that fixes it).
const (
	logRedirectNotRegistered = "keycloaktest: redirect_uri refused: it is not one of the client's valid redirect URIs"
	logRedirectMissing       = "keycloaktest: redirect_uri refused: the request has none and the client has no single fixed redirect URI to use instead"
	logRedirectMalformed     = "keycloaktest: redirect_uri refused: it has userinfo, a fragment, a \"..\" segment, control characters or an OAuth response parameter"
)

// logRefusedRedirect tells the developer why the authorization endpoint
// answered "Invalid parameter: redirect_uri": the page only says that, as
// Keycloak's does, and Keycloak's log says little more.
func (r *Realm) logRefusedRedirect(s *Server, clientID, redirect string, valid []string) {
	if s == nil || s.logger == nil {
		return
	}
	msg := logRedirectNotRegistered
	switch {
	case redirect == "":
		msg = logRedirectMissing
	case matchesRedirect(valid, redirect):
		msg = logRedirectMalformed
	}
	s.logger.Warn(msg, "realm", r.name, "client", clientID, "redirect_uri", redirect, "valid_redirect_uris", strings.Join(valid, " "))
}

// loopbackHosts are the hosts whose port Keycloak ignores in an http
// redirect URI (RFC 8252 section 7.3), as url.URL.Hostname spells them.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// matchesRedirect is Keycloak's redirect-URI matching. Like Keycloak 26.x,
// when nothing matches and the URI is http on localhost, 127.0.0.1 or
// [::1] (spelled so, in lower case), it is matched again without its port:
// a valid redirect URI registered without a port, such as
// "http://127.0.0.1/*", accepts a loopback redirect URI on any port, while
// one registered with a port accepts that port only (observed on Keycloak
// 26.7.3). The three hosts are not interchangeable, and https is matched
// as written.
func matchesRedirect(valid []string, redirect string) bool {
	if matchesRedirectAsWritten(valid, redirect) {
		return true
	}
	if portless, ok := withoutLoopbackPort(redirect); ok {
		return matchesRedirectAsWritten(valid, portless)
	}
	return false
}

// withoutLoopbackPort returns an http loopback URI without its port.
func withoutLoopbackPort(redirect string) (string, bool) {
	const scheme = "http://"
	if !strings.HasPrefix(redirect, scheme) {
		return "", false
	}
	u, err := url.Parse(redirect)
	if err != nil || u.User != nil || !strings.HasPrefix(redirect[len(scheme):], u.Host) || !slices.Contains(loopbackHosts, u.Hostname()) {
		return "", false
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + host + redirect[len(scheme)+len(u.Host):], true
}

// matchesRedirectAsWritten matches exactly or against "*" patterns.
func matchesRedirectAsWritten(valid []string, redirect string) bool {
	noQuery, _, _ := strings.Cut(redirect, "?")
	for _, v := range valid {
		if v == redirect {
			return true
		}
		if !strings.HasSuffix(v, "*") || strings.Contains(v, "?") {
			continue
		}
		prefix := strings.TrimSuffix(v, "*")
		if prefix == "" {
			return true // "*" alone allows anything, as in Keycloak
		}
		if strings.HasPrefix(noQuery, prefix) {
			return true
		}
		if strings.HasSuffix(prefix, "/") && noQuery == strings.TrimSuffix(prefix, "/") {
			return true
		}
	}
	return false
}
