package conformance

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/cloakroom/cloakroom/dpop"
)

// DPoPRealmFile is the realm of DPoPScenarios: alice logs in with a public
// client (dp-public), a confidential one (dp-conf), and one that requires
// DPoP (dp-bound: dpop.bound.access.tokens).
const DPoPRealmFile = "testdata/dpop-realm.json"

// DPoPScenarios compare DPoP at the token endpoint (RFC 9449, Keycloak
// 26.4+): what a proof binds (token_type, typ, cnf of access and refresh
// tokens), the refusals of bad proofs (status, error, description), and
// refreshing with and without the bound key.
func DPoPScenarios() []Scenario {
	return []Scenario{{"dpop", dpopTokenEndpoint}}
}

func dpopTokenEndpoint(ctx context.Context, c *Client, r *Recorder) {
	key, err1 := dpop.GenerateKey()
	other, err2 := dpop.GenerateKey()
	if err1 != nil || err2 != nil {
		r.Fail("keys", errOr(err1, nil))
		return
	}
	tokenURL := c.RealmURL("/protocol/openid-connect/token")
	proof := func(k *dpop.Key, p dpop.Proof) string {
		if p.Method == "" {
			p.Method = http.MethodPost
		}
		if p.URL == "" {
			p.URL = tokenURL
		}
		s, err := k.Sign(p)
		if err != nil {
			r.Fail("sign", err)
		}
		return s
	}
	post := func(form url.Values, proofs ...string) (*Response, error) {
		h := http.Header{}
		for _, p := range proofs {
			h.Add("DPoP", p)
		}
		return c.Do(ctx, http.MethodPost, tokenURL, form, h)
	}
	password := func(client string) url.Values {
		f := url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {"alice"}, "password": {"alice-pw"}}
		if client != "dp-public" {
			f.Set("client_secret", client+"-secret")
		}
		return f
	}
	// observe records an answer; cnf.jkt is recorded as which of the two
	// keys it names (the keys differ per run).
	observe := func(name string, res *Response, err error, jkt, otherJKT string) map[string]any {
		if err != nil {
			r.Fail(name, err)
			return nil
		}
		r.Set(name+".status", res.Status)
		if res.JSON == nil {
			return nil
		}
		if res.Status != http.StatusOK {
			r.Set(name+".error", res.JSON["error"])
			r.Set(name+".error_description", res.JSON["error_description"])
			return nil
		}
		r.Set(name+".token_type", res.JSON["token_type"])
		for _, t := range []string{"access_token", "refresh_token"} {
			_, claims, err := Claims(str(res.JSON, t))
			if err != nil {
				continue
			}
			r.Set(name+"."+t+".typ", claims["typ"])
			cnf, _ := claims["cnf"].(map[string]any)
			bound := "none"
			switch cnf["jkt"] {
			case nil:
			case jkt:
				bound = "proof-key"
			case otherJKT:
				bound = "other-key"
			default:
				bound = "unknown-key"
			}
			r.Set(name+"."+t+".cnf.jkt", bound)
			r.Set(name+"."+t+".cnf.kc-jkt-type", cnf["kc-jkt-type"])
		}
		return res.JSON
	}

	// Bound tokens, and what a refresh needs.
	for _, client := range []string{"dp-public", "dp-conf", "dp-bound"} {
		res, err := post(password(client), proof(key, dpop.Proof{}))
		body := observe("bound."+client, res, err, key.Thumbprint(), other.Thumbprint())
		if body == nil {
			continue
		}
		refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {str(body, "refresh_token")}}
		if client != "dp-public" {
			refresh.Set("client_secret", client+"-secret")
		}
		res, err = post(refresh)
		observe("bound."+client+".refresh-without-proof", res, err, key.Thumbprint(), other.Thumbprint())
		res, err = post(refresh, proof(other, dpop.Proof{}))
		observe("bound."+client+".refresh-other-key", res, err, key.Thumbprint(), other.Thumbprint())
	}
	res, err := post(password("dp-bound"))
	observe("required.no-proof", res, err, key.Thumbprint(), other.Thumbprint())
	res, err = post(password("dp-conf"))
	observe("plain.no-proof", res, err, key.Thumbprint(), other.Thumbprint())

	// Bad proofs.
	replayed := proof(key, dpop.Proof{})
	bad := []struct {
		name   string
		proofs []string
	}{
		{"wrong-method", []string{proof(key, dpop.Proof{Method: http.MethodGet})}},
		{"wrong-url", []string{proof(key, dpop.Proof{URL: c.RealmURL("/protocol/openid-connect/userinfo")})}},
		{"old-iat", []string{proof(key, dpop.Proof{IssuedAt: time.Now().Add(-5 * time.Minute)})}},
		{"future-iat", []string{proof(key, dpop.Proof{IssuedAt: time.Now().Add(5 * time.Minute)})}},
		{"two-proofs", []string{proof(key, dpop.Proof{}), proof(key, dpop.Proof{})}},
		{"garbage", []string{"a.b.c"}},
		{"replay-first", []string{replayed}},
		{"replay-second", []string{replayed}},
	}
	for _, b := range bad {
		res, err := post(password("dp-conf"), b.proofs...)
		observe("bad-proof."+b.name, res, err, key.Thumbprint(), other.Thumbprint())
	}
}
