// Package genericop is a small OpenID Provider that is not Keycloak, for
// tests of cloakroom's generic profile: its discovery document has no
// Keycloak layout, its tokens carry no Keycloak typ claim, its ID tokens
// carry nonce and at_hash, and its access tokens are opaque strings or
// RFC 9068 JWTs (JOSE typ at+jwt, client_id, scp) as configured.
//
// Its authorization endpoint logs the configured user in at once (no login
// page); the token endpoint does the authorization_code grant (with PKCE
// S256) and refresh_token; end_session redirects back with the state.
package genericop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Options configure a Server.
type Options struct {
	ClientID, ClientSecret string
	// Subject is the logged-in user's sub (default "user-1").
	Subject string
	// Claims are added to ID tokens and JWT access tokens (e.g. groups).
	Claims map[string]any
	// JWTAccessTokens issues RFC 9068 JWT access tokens instead of opaque
	// ones.
	JWTAccessTokens bool
	// AccessOverrides change the claims of the JWT access tokens the token
	// endpoint issues (a nil value removes one).
	AccessOverrides map[string]any
	// ExpiresIn is the access token lifetime (default 5 minutes); a
	// negative value leaves expires_in out of the token response.
	ExpiresIn time.Duration
	// NoEndSession leaves end_session_endpoint out of discovery.
	NoEndSession bool
}

// Server is a running provider. Close it with the test (New registers it).
type Server struct {
	srv    *httptest.Server
	issuer string
	opts   Options
	key    *rsa.PrivateKey
	kid    string

	mu        sync.Mutex
	codes     map[string]grant
	refresh   map[string]grant
	loggedIn  int
	refreshed int
}

type grant struct {
	nonce, challenge, redirect, sid string
}

// New starts a provider on 127.0.0.1 whose issuer is {URL}/op.
func New(tb testing.TB, o Options) *Server {
	tb.Helper()
	if o.Subject == "" {
		o.Subject = "user-1"
	}
	if o.ExpiresIn == 0 {
		o.ExpiresIn = 5 * time.Minute
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{opts: o, key: key, kid: "k1", codes: map[string]grant{}, refresh: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /op/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /op/keys", s.keys)
	mux.HandleFunc("GET /op/authorize", s.authorize)
	mux.HandleFunc("POST /op/token", s.token)
	mux.HandleFunc("GET /op/logout", s.logout)
	s.srv = httptest.NewServer(mux)
	s.issuer = s.srv.URL + "/op"
	tb.Cleanup(s.srv.Close)
	return s
}

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.issuer }

// Logins counts the authorization requests answered with a code.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loggedIn
}

// Refreshes counts the refresh_token grants answered with tokens.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshed
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                                s.issuer,
		"authorization_endpoint":                s.issuer + "/authorize",
		"token_endpoint":                        s.issuer + "/token",
		"jwks_uri":                              s.issuer + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
	}
	if !s.opts.NoEndSession {
		doc["end_session_endpoint"] = s.issuer + "/logout"
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) keys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "RS256", Use: "sig"}}})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.opts.ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := random()
	s.mu.Lock()
	s.codes[code] = grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), sid: "sid-" + random()[:8]}
	s.loggedIn++
	s.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	rq := u.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	u.RawQuery = rq.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	var g grant
	s.mu.Lock()
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		var found bool
		g, found = s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		ok = found && g.redirect == r.PostForm.Get("redirect_uri") && base64.RawURLEncoding.EncodeToString(sum[:]) == g.challenge
	case "refresh_token":
		g, ok = s.refresh[r.PostForm.Get("refresh_token")]
		delete(s.refresh, r.PostForm.Get("refresh_token"))
		g.nonce = ""
		if ok {
			s.refreshed++
		}
	default:
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	resp, err := s.tokenResponse(g)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) tokenResponse(g grant) (map[string]any, error) {
	now := time.Now()
	life := s.opts.ExpiresIn
	if life < 0 {
		life = 5 * time.Minute
	}
	access := "opaque-" + random()
	if s.opts.JWTAccessTokens {
		var err error
		extra := map[string]any{"exp": now.Add(life).Unix()}
		for k, v := range s.opts.AccessOverrides {
			extra[k] = v
		}
		access, err = s.AccessToken(extra)
		if err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256([]byte(access))
	idc := s.claims(now)
	idc["aud"] = s.opts.ClientID
	idc["sid"] = g.sid
	idc["at_hash"] = base64.RawURLEncoding.EncodeToString(sum[:16])
	if g.nonce != "" {
		idc["nonce"] = g.nonce
	}
	idToken, err := s.Sign(idc, nil)
	if err != nil {
		return nil, err
	}
	rt := random()
	s.mu.Lock()
	s.refresh[rt] = g
	s.mu.Unlock()
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "id_token": idToken, "refresh_token": rt}
	if s.opts.ExpiresIn > 0 {
		resp["expires_in"] = int(life / time.Second)
	}
	return resp, nil
}

func (s *Server) claims(now time.Time) map[string]any {
	c := map[string]any{"iss": s.issuer, "sub": s.opts.Subject, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range s.opts.Claims {
		c[k] = v
	}
	return c
}

// AccessToken mints an RFC 9068 access token (JOSE typ at+jwt, client_id,
// scp, aud "api") with the configured claims; extra claims override, a nil
// value removes one.
func (s *Server) AccessToken(extra map[string]any) (string, error) {
	c := s.claims(time.Now())
	c["aud"] = []string{"api"}
	c["client_id"] = s.opts.ClientID
	c["scp"] = []string{"openid", "read"}
	c["jti"] = random()
	return s.Sign(c, map[string]any{"typ": "at+jwt"}, extra)
}

// IDToken mints an ID token for the client with the configured claims;
// extra claims override, a nil value removes one.
func (s *Server) IDToken(extra map[string]any) (string, error) {
	c := s.claims(time.Now())
	c["aud"] = s.opts.ClientID
	c["nonce"] = "n-" + random()[:8]
	return s.Sign(c, nil, extra)
}

// LogoutToken mints a back-channel logout token for sid.
func (s *Server) LogoutToken(sid string) (string, error) {
	now := time.Now()
	return s.Sign(map[string]any{
		"iss": s.issuer, "aud": s.opts.ClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": random(), "sid": sid, "sub": s.opts.Subject,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}, map[string]any{"typ": "logout+jwt"})
}

// Sign signs claims (with overrides applied; nil removes a claim) with the
// provider's key, adding header members.
func (s *Server) Sign(claims, header map[string]any, overrides ...map[string]any) (string, error) {
	for _, o := range overrides {
		for k, v := range o {
			if v == nil {
				delete(claims, k)
			} else {
				claims[k] = v
			}
		}
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", s.kid)
	for k, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, opts)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("post_logout_redirect_uri")
	u, err := url.Parse(target)
	if err != nil || target == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	q := u.Query()
	q.Set("state", r.URL.Query().Get("state"))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func random() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
