package keycloaktest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"regexp"
	"time"
)

// authCode is an issued authorization code and what it is bound to.
type authCode struct {
	clientID      string
	redirectParam string // redirect_uri of the request, "" when defaulted
	sid, userID   string
	scopes        []string
	nonce         string
	challenge     string
	method        string
	acr           string
	issuer        string
	expires       time.Time
	used          bool
}

var pkceVerifierRe = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// authorizationCodeGrant exchanges a code (protocol doc 3.1, 3.4). A code
// works once; presenting it again fails and detaches the client from the
// user session, so refresh tokens from the first exchange stop working.
func authorizationCodeGrant(s *Server, r *Realm, c *client, w http.ResponseWriter, req *http.Request) {
	code := req.PostForm.Get("code")
	if code == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing parameter: code")
		return
	}
	r.mu.Lock()
	set, oerr := r.exchangeCodeLocked(s, c, req, code)
	r.mu.Unlock()
	if oerr != nil {
		oerr.write(w)
		return
	}
	r.writeTokenSet(s, w, set)
}

func (r *Realm) exchangeCodeLocked(s *Server, c *client, req *http.Request, code string) (tokenSet, *oauthErr) {
	now := r.now()
	ac := r.codes[code]
	if ac == nil {
		return tokenSet{}, invalidGrant("Code not valid")
	}
	sess := r.sessions[ac.sid]
	if ac.used {
		if sess != nil && ac.clientID == c.cfg.ClientID {
			delete(sess.clients, ac.clientID)
		}
		return tokenSet{}, invalidGrant("Code not valid")
	}
	ac.used = true
	if !now.Before(ac.expires) {
		return tokenSet{}, invalidGrant("Code not valid")
	}
	if ac.clientID != c.cfg.ClientID {
		return tokenSet{}, invalidGrant("Auth error")
	}
	if !c.cfg.StandardFlow {
		return tokenSet{}, &oauthErr{http.StatusBadRequest, "unauthorized_client", "Client not allowed to exchange code"}
	}
	if ac.redirectParam != "" && req.PostForm.Get("redirect_uri") != ac.redirectParam {
		return tokenSet{}, invalidGrant("Incorrect redirect_uri")
	}
	verifier := req.PostForm.Get("code_verifier")
	switch {
	case ac.challenge == "" && verifier != "":
		return tokenSet{}, invalidGrant("PKCE code verifier specified but challenge not present in authorization")
	case ac.challenge == "":
	case verifier == "":
		return tokenSet{}, invalidGrant("PKCE code verifier not specified")
	case !pkceVerifierRe.MatchString(verifier):
		return tokenSet{}, invalidGrant("PKCE verification failed: Invalid code verifier")
	default:
		want := verifier
		if ac.method == "S256" {
			sum := sha256.Sum256([]byte(verifier))
			want = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(ac.challenge)) != 1 {
			return tokenSet{}, invalidGrant("PKCE verification failed: Code mismatch")
		}
	}
	u := r.users[ac.userID]
	if u == nil {
		return tokenSet{}, invalidGrant("User not found")
	}
	if !u.enabled {
		return tokenSet{}, invalidGrant("User disabled")
	}
	if !r.sessionLiveLocked(sess, now) {
		return tokenSet{}, invalidGrant("Session not active")
	}
	cs := sess.clients[c.cfg.ClientID]
	if cs == nil {
		return tokenSet{}, invalidGrant("Session doesn't have required client")
	}
	g := grant{issuer: s.issuerFor(req, r.name), user: u, client: c, session: sess, scopes: ac.scopes, nonce: ac.nonce, now: now, acr: ac.acr,
		grantType: grantAuthorizationCode, dpopJKT: dpopJKTOf(req)}
	// Keycloak checks the offline_access role when it makes the refresh
	// token, so the code is spent by then.
	if g.offline() && !r.offlineTokensAllowedLocked(u) {
		return tokenSet{}, errOfflineNotAllowed
	}
	sess.last = now
	return r.buildTokenSetLocked(g, true), nil
}
