package keycloaktest

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoP at the token endpoint, as Keycloak 26.4+ does it (observed on
// 26.7.3, e2e/realkeycloak_dpop_test.go):
//
//   - a token request with a valid DPoP proof gets token_type "DPoP" and an
//     access token with typ "DPoP" and cnf {"jkt": <thumbprint>,
//     "kc-jkt-type": "DPoP"}; a public client's refresh token is bound too
//     (same cnf), a confidential client's is not;
//   - refreshing a bound refresh token needs a proof with the same key:
//     400 invalid_grant "DPoP proof is missing" / "DPoP confirmation
//     doesn't match DPoP proof";
//   - a client with the attribute dpop.bound.access.tokens = "true" needs a
//     proof on every token request: 400 invalid_request "DPoP proof is
//     missing";
//   - a bad proof is 400 invalid_request: "DPoP HTTP method mismatch",
//     "DPoP HTTP URL mismatch", "DPoP proof is not active" (iat),
//     "DPoP proof has already been used" (jti), "DPoP header verification
//     failure" (two headers, or a proof that cannot be read);
//   - an ath on a token request is ignored;
//   - introspection of a bound token answers its cnf and token_type "DPoP".

// typDPoP is the typ claim of DPoP-bound access tokens.
const typDPoP = "DPoP"

// clientAttrDPoPBound is Keycloak's client attribute requiring DPoP.
const clientAttrDPoPBound = "dpop.bound.access.tokens"

// dpopProofLifetime and dpopClockSkew bound a proof's iat: Keycloak's
// defaults (DPoPUtil: a proof lives 10 s, with 2 s of allowed clock skew).
const (
	dpopProofLifetime = 10 * time.Second
	dpopClockSkew     = 2 * time.Second
)

var dpopAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// dpopSeen remembers used proofs (issuer, key and jti) until they expire.
var dpopSeen = struct {
	sync.Mutex
	m map[string]time.Time
}{m: map[string]time.Time{}}

type dpopCtxKey struct{}

// dpopJKTOf returns the thumbprint of the token request's valid DPoP
// proof, "" when it had none.
func dpopJKTOf(req *http.Request) string {
	jkt, _ := req.Context().Value(dpopCtxKey{}).(string)
	return jkt
}

// tokenRequestDPoP checks the DPoP proof of a token request, if any, and
// returns the request carrying its key's thumbprint (dpopJKTOf).
func (r *Realm) tokenRequestDPoP(s *Server, c *client, req *http.Request) (*http.Request, *oauthErr) {
	bad := func(desc string) (*http.Request, *oauthErr) {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_request", desc}
	}
	values := req.Header.Values("DPoP")
	switch {
	case len(values) == 0:
		if c.cfg.Attributes[clientAttrDPoPBound] == "true" {
			return bad("DPoP proof is missing")
		}
		return req, nil
	case len(values) > 1:
		return bad("DPoP header verification failure")
	}
	jws, err := jose.ParseSignedCompact(values[0], dpopAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return bad("DPoP header verification failure")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return bad("DPoP header verification failure")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.Valid() || !h.JSONWebKey.IsPublic() {
		return bad("DPoP header verification failure")
	}
	if _, symmetric := h.JSONWebKey.Key.([]byte); symmetric {
		return bad("DPoP header verification failure")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return bad("DPoP verification failure")
	}
	var p struct {
		HTM string   `json:"htm"`
		HTU string   `json:"htu"`
		IAT *float64 `json:"iat"`
		JTI string   `json:"jti"`
	}
	if json.Unmarshal(payload, &p) != nil || p.JTI == "" || p.IAT == nil {
		return bad("DPoP header verification failure")
	}
	if p.HTM != req.Method {
		return bad("DPoP HTTP method mismatch")
	}
	issuer := s.issuerFor(req, r.name)
	if !sameHTU(p.HTU, issuer+"/protocol/openid-connect/token") {
		return bad("DPoP HTTP URL mismatch")
	}
	now := r.now()
	iat := time.Unix(int64(*p.IAT), 0)
	if iat.After(now.Add(dpopClockSkew)) || iat.Add(dpopProofLifetime+dpopClockSkew).Before(now) {
		return bad("DPoP proof is not active")
	}
	thumb, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return bad("DPoP header verification failure")
	}
	jkt := base64.RawURLEncoding.EncodeToString(thumb)
	key := issuer + "\x00" + jkt + "\x00" + p.JTI
	dpopSeen.Lock()
	for k, until := range dpopSeen.m {
		if now.After(until) {
			delete(dpopSeen.m, k)
		}
	}
	_, replayed := dpopSeen.m[key]
	if !replayed {
		dpopSeen.m[key] = iat.Add(dpopProofLifetime + 2*dpopClockSkew)
	}
	dpopSeen.Unlock()
	if replayed {
		return bad("DPoP proof has already been used")
	}
	return req.WithContext(context.WithValue(req.Context(), dpopCtxKey{}, jkt)), nil
}

// sameHTU compares an htu with the endpoint's URL: scheme and host case-
// insensitively, default ports dropped, query and fragment ignored.
func sameHTU(htu, want string) bool {
	norm := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return "\x00"
		}
		scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		host = strings.TrimSuffix(host, map[string]string{"http": ":80", "https": ":443"}[scheme])
		return scheme + "://" + host + u.EscapedPath()
	}
	return norm(htu) == norm(want)
}

// checkRefreshDPoP applies a refresh token's binding: a bound one (a
// public client's) needs a proof with its key.
func checkRefreshDPoP(claims claimSet, req *http.Request) *oauthErr {
	cnf, _ := claims["cnf"].(map[string]any)
	bound, _ := cnf["jkt"].(string)
	if bound == "" {
		return nil
	}
	switch jkt := dpopJKTOf(req); {
	case jkt == "":
		return invalidGrant("DPoP proof is missing")
	case jkt != bound:
		return invalidGrant("DPoP confirmation doesn't match DPoP proof")
	}
	return nil
}

// dpopBind binds issued claims to the grant's DPoP key: the access token
// always, the refresh token of a public client.
func dpopBind(c map[string]any, g grant, access bool) {
	if g.dpopJKT == "" || (!access && !g.client.cfg.Public) {
		return
	}
	if access {
		c["typ"] = typDPoP
	}
	c["cnf"] = map[string]any{"jkt": g.dpopJKT, "kc-jkt-type": "DPoP"}
}

// tokenTypeOf is the token response's token_type: "DPoP" for a bound
// access token.
func tokenTypeOf(access map[string]any) string {
	if _, bound := access["cnf"]; bound {
		return "DPoP"
	}
	return "Bearer"
}
