package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Keycloak's browser-side defaults.
const (
	// authSessionLifespan is the realm "Login timeout": how long a login
	// tab may take.
	authSessionLifespan = 30 * time.Minute
	// codeLifespan is the realm "Client login timeout": how long an
	// authorization code can be exchanged.
	codeLifespan = 60 * time.Second
	// aiaMaxAuthAge is how old the last authentication may be before an
	// application-initiated UPDATE_PASSWORD or CONFIGURE_TOTP asks for the
	// password again.
	aiaMaxAuthAge = 5 * time.Minute
	// maxLoA is the highest level of authentication the browser flow can
	// reach: 1 is the password, 2 adds an OTP code.
	maxLoA = 2
	// maxTabs bounds the login tabs of one browser, as Keycloak does.
	maxTabs = 300
)

// Keycloak's cookie names.
const (
	cookieIdentity    = "KEYCLOAK_IDENTITY"
	cookieSession     = "KEYCLOAK_SESSION"
	cookieAuthSession = "AUTH_SESSION_ID"
)

// typSerializedID is the typ claim of Keycloak's identity cookie token.
const typSerializedID = "Serialized-ID"

// Steps of a login tab.
const (
	stepLogin    = "login"
	stepOTP      = "otp"
	stepRegister = "register"
	stepAction   = "action"
)

// Execution ids put in form URLs, like Keycloak's authenticator execution
// ids; a submission for another execution re-renders the current page.
var (
	execLogin    = newUUID()
	execOTP      = newUUID()
	execRegister = newUUID()
)

// rootAuthSession is one browser's login state (AUTH_SESSION_ID cookie):
// a tab per authorization request in progress.
type rootAuthSession struct {
	id   string
	last time.Time
	tabs map[string]*authSession
}

// authSession is one login tab: the validated authorization request and
// how far the user got.
type authSession struct {
	root  *rootAuthSession
	tabID string

	// The authorization request.
	clientID      string
	redirectURI   string // validated redirect target
	redirectParam string // redirect_uri as sent ("" when defaulted)
	responseMode  string
	state, nonce  string
	scopes        []string
	challenge     string
	method        string
	prompts       []string
	maxAge        int // -1 when not sent
	loginHint     string
	kcAction      string
	requestedLoA  int // -1 when no level was requested
	forced        bool
	essentialACRs []string // essential acr values, for naming the level
	acrValues     []string // other requested acr values
	issuer        string

	// Progress.
	step        string
	action      string // required action shown at stepAction
	sessionCode string
	userID      string
	level       int  // level of authentication reached in this tab
	fresh       bool // credentials were entered in this tab
	ignoreSSO   bool // registration: never attach to the browser's session
	setupOTP    bool // an essential level needs an OTP the user must set up
	done        []string
	aiaDone     bool
	totpSecret  string // CONFIGURE_TOTP secret being set up
	username    string // last username typed, for re-rendering
	reauth      bool   // forced re-authentication of an SSO user
	created     time.Time

	// Execute-actions email link: run the user's required actions, then
	// show "Your account has been updated." instead of logging in.
	actionToken    bool
	actionRedirect string // redirect_uri of the link, for "Back to Application"
}

func (as *authSession) hasPrompt(p string) bool { return slices.Contains(as.prompts, p) }

// env is what a browser request brings: the server, the request, the
// frontend URLs and the browser's live SSO session.
type env struct {
	s        *Server
	req      *http.Request
	issuer   string
	realmURL string // frontend {base}/realms/{realm}
	secure   bool
	sso      *userSession
}

func (r *Realm) newEnv(s *Server, req *http.Request) env {
	e := env{
		s:        s,
		req:      req,
		issuer:   s.issuerFor(req, r.name),
		realmURL: requestBase(req) + s.basePath + "/realms/" + r.name,
		secure:   req.TLS != nil || strings.HasPrefix(s.URL(), "https://"),
	}
	return e
}

// cookiePath is where Keycloak scopes its cookies: /realms/{realm}/.
func (r *Realm) cookiePath(s *Server) string { return s.basePath + "/realms/" + r.name + "/" }

func (r *Realm) cookie(e env, name, value string, httpOnly bool) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: r.cookiePath(e.s), HttpOnly: httpOnly}
	if e.secure {
		c.Secure, c.SameSite = true, http.SameSiteNoneMode
	} else {
		c.SameSite = http.SameSiteLaxMode
	}
	return c
}

func (r *Realm) expiredCookie(e env, name string, httpOnly bool) *http.Cookie {
	c := r.cookie(e, name, "", httpOnly)
	c.MaxAge = -1
	return c
}

// sessionCookieValue is KEYCLOAK_SESSION since Keycloak 26.1: the base64url
// SHA-256 of the session id, which the session iframe compares with the
// RP's session_state.
func sessionCookieValue(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// loginCookiesLocked are the SSO cookies for a session: KEYCLOAK_IDENTITY
// (HttpOnly, a token signed with the realm's HMAC key naming the session)
// and KEYCLOAK_SESSION (readable by the session iframe).
func (r *Realm) loginCookiesLocked(e env, sess *userSession) []*http.Cookie {
	claims := map[string]any{
		"iat":           r.now().Unix(),
		"jti":           newUUID(),
		"iss":           e.issuer,
		"sub":           sess.userID,
		"typ":           typSerializedID,
		"sid":           sess.id,
		"state_checker": randomString(24),
	}
	tok, err := signJWT(jose.HS512, r.hmac.secret, claims, map[string]any{"typ": "JWT", "kid": r.hmac.kid})
	if err != nil {
		r.srv.logger.Error("keycloaktest: identity cookie", "realm", r.name, "error", err)
		return nil
	}
	return []*http.Cookie{
		r.cookie(e, cookieIdentity, tok, true),
		r.cookie(e, cookieSession, sessionCookieValue(sess.id), false),
	}
}

func (r *Realm) logoutCookies(e env) []*http.Cookie {
	return []*http.Cookie{r.expiredCookie(e, cookieIdentity, true), r.expiredCookie(e, cookieSession, false)}
}

// ssoSession returns the browser's live SSO session from its identity
// cookie, or nil. It takes the realm lock itself.
func (r *Realm) ssoSession(e env) *userSession {
	c, err := e.req.Cookie(cookieIdentity)
	if err != nil || c.Value == "" {
		return nil
	}
	claims, hmacSigned, err := r.verifySigned(c.Value)
	if err != nil || !hmacSigned || claims.str("typ") != typSerializedID || claims.str("iss") != e.issuer {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.sessions[claims.str("sid")]
	if !r.sessionLiveLocked(s, r.now()) || s.userID != claims.str("sub") {
		return nil
	}
	if u := r.users[s.userID]; u == nil || !u.enabled {
		return nil
	}
	return s
}

// rootLocked finds the browser's root authentication session, or nil.
func (r *Realm) rootLocked(req *http.Request, now time.Time) *rootAuthSession {
	c, err := req.Cookie(cookieAuthSession)
	if err != nil {
		return nil
	}
	root := r.authSessions[c.Value]
	if root == nil || now.Sub(root.last) > authSessionLifespan {
		return nil
	}
	return root
}

// tabLocked finds a live login tab of this browser.
func (r *Realm) tabLocked(req *http.Request, tabID string, now time.Time) (*authSession, bool) {
	root := r.rootLocked(req, now)
	if root == nil {
		return nil, false
	}
	as := root.tabs[tabID]
	if as == nil || now.Sub(as.created) > authSessionLifespan {
		return nil, true
	}
	root.last = now
	return as, true
}

// pruneBrowserLocked drops expired login tabs, codes and logout
// confirmations. Unless forced it only runs once the maps grow.
func (r *Realm) pruneBrowserLocked(now time.Time, force bool) {
	if !force && len(r.authSessions) < 256 && len(r.codes) < 256 && len(r.logoutCodes) < 256 {
		return
	}
	for id, root := range r.authSessions {
		for tab, as := range root.tabs {
			if now.Sub(as.created) > authSessionLifespan {
				delete(root.tabs, tab)
			}
		}
		if now.Sub(root.last) > authSessionLifespan {
			delete(r.authSessions, id)
		}
	}
	for code, c := range r.codes {
		if now.After(c.expires.Add(codeLifespan)) {
			delete(r.codes, code)
		}
	}
	for code, p := range r.logoutCodes {
		if now.Sub(p.created) > authSessionLifespan {
			delete(r.logoutCodes, code)
		}
	}
}

// outcome is what a browser request gets, decided under the realm lock
// and written after it is released.
type outcome struct {
	status   int
	page     *page
	redirect *authResponse
	location string // plain 302
	cookies  []*http.Cookie
	jobs     []logoutJob
	noBody   int // status without body (204)
}

func errorOutcome(status int, msg string) outcome {
	return outcome{status: status, page: &page{Kind: "error", Title: "We are sorry...", Message: msg}}
}

// authResponse is a redirect to the client, in its response mode.
type authResponse struct {
	uri    string
	mode   string
	params url.Values
}

// write delivers the outcome: back-channel logouts first (so their effect
// is visible when the browser follows on), then cookies and the answer.
func (r *Realm) write(w http.ResponseWriter, o outcome) {
	r.deliverLogouts(o.jobs)
	for _, c := range o.cookies {
		http.SetCookie(w, c)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store, must-revalidate, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	switch {
	case o.redirect != nil:
		writeAuthResponse(w, o.redirect)
	case o.location != "":
		h.Set("Location", o.location)
		w.WriteHeader(http.StatusFound)
	case o.page != nil:
		status := o.status
		if status == 0 {
			status = http.StatusOK
		}
		writePage(w, status, o.page)
	case o.noBody != 0:
		w.WriteHeader(o.noBody)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeAuthResponse(w http.ResponseWriter, ar *authResponse) {
	switch ar.mode {
	case "form_post":
		// The redirect URI was matched against the client's registered
		// ones, so it may keep a custom scheme html/template would blank.
		p := &page{Kind: "form_post", Title: "Submit This Form", PostURL: template.URL(ar.uri)}
		for _, k := range sortedKeys(ar.params) {
			for _, v := range ar.params[k] {
				p.Hidden = append(p.Hidden, kv{k, v})
			}
		}
		writePage(w, http.StatusOK, p)
	case "fragment":
		w.Header().Set("Location", ar.uri+"#"+ar.params.Encode())
		w.WriteHeader(http.StatusFound)
	default:
		w.Header().Set("Location", appendQuery(ar.uri, ar.params))
		w.WriteHeader(http.StatusFound)
	}
}

// appendQuery adds parameters to a URI that may already have a query.
func appendQuery(uri string, params url.Values) string {
	if len(params) == 0 {
		return uri
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
		if strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&") {
			sep = ""
		}
	}
	return uri + sep + params.Encode()
}

// kv is one hidden form field.
type kv struct{ Name, Value string }
