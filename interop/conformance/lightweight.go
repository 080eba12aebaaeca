package conformance

import (
	"context"
	"net/http"
	"net/url"
)

// LightweightRealmFile is the realm of LightweightScenarios: client
// lw-app issues lightweight access tokens (client attribute
// client.use.lightweight.access.token.enabled) and has mappers with and
// without "Add to lightweight access token" (lightweight.claim) and "Add
// to token introspection"; lw-api is in the audience introspection
// computes (an Audience mapper without lightweight.claim), lw-other is
// not, lw-any skips the audience check
// (allow.token.introspection.without.audience.check).
const LightweightRealmFile = "testdata/lightweight-realm.json"

// LightweightScenarios compare lightweight access tokens: their claims for
// each grant, the token-type part of their jti, the ID and refresh tokens
// issued with them, userinfo, and what introspection answers each
// introspecting client.
func LightweightScenarios() []Scenario {
	return []Scenario{{"lightweight", lightweight}}
}

func lightweight(ctx context.Context, c *Client, r *Recorder) {
	grant := func(key string, form url.Values) map[string]any {
		form.Set("client_id", "lw-app")
		form.Set("client_secret", "lw-app-secret")
		res, err := c.Token(ctx, form)
		if err != nil || res.Status != http.StatusOK {
			r.Fail(key, errOr(err, res))
			return nil
		}
		tokenResponse(r, key, res)
		if _, claims, err := Claims(str(res.JSON, "access_token")); err == nil {
			jti := str(claims, "jti")
			r.Set(key+".access_token.jti-context", jti[:min(7, len(jti))])
			for _, k := range []string{"light", "lightonly", "heavy", "nointro"} {
				if v, ok := claims[k]; ok {
					r.Set(key+".access_token.value."+k, v)
				}
			}
		}
		return res.JSON
	}
	alice := grant("password.alice", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "scope": {"openid"}})
	grant("password.bob", url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-pw"}})
	cc := grant("client-credentials", url.Values{"grant_type": {"client_credentials"}})
	if alice == nil || cc == nil {
		return
	}
	grant("refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(alice, "refresh_token")}})

	res, err := c.Do(ctx, http.MethodGet, c.RealmURL("/protocol/openid-connect/userinfo"), nil, bearer(str(alice, "access_token")))
	if err != nil {
		r.Fail("userinfo", err)
	} else {
		r.Set("userinfo.status", res.Status)
		if res.JSON != nil {
			r.Shape("userinfo.body", res.JSON)
		}
	}

	for _, tc := range []struct{ key, token string }{
		{"user", str(alice, "access_token")},
		{"service-account", str(cc, "access_token")},
	} {
		for _, client := range []string{"lw-api", "lw-other", "lw-any", "lw-app"} {
			key := "introspection." + tc.key + "." + client
			res, err := c.Form(ctx, c.RealmURL("/protocol/openid-connect/token/introspect"),
				url.Values{"token": {tc.token}, "client_id": {client}, "client_secret": {client + "-secret"}}, "")
			if err != nil {
				r.Fail(key, err)
				continue
			}
			r.Set(key+".status", res.Status)
			if res.JSON == nil {
				continue
			}
			r.Set(key+".active", res.JSON["active"])
			if res.JSON["active"] != true {
				continue
			}
			claimsOf(r, key, res.JSON)
			for _, k := range []string{"light", "lightonly", "heavy", "nointro", "username", "token_type"} {
				if v, ok := res.JSON[k]; ok {
					r.Set(key+".value."+k, v)
				}
			}
			jti := str(res.JSON, "jti")
			r.Set(key+".jti-context", jti[:min(7, len(jti))])
		}
	}
}
