package conformance

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// ExchangeRealmFile is the realm of ExchangeScenarios: alice logs in with
// tx-frontend (whose tokens name tx-requester in aud); tx-requester has
// standard token exchange on (standard.token.exchange.enabled) and
// Audience mappers for tx-orders and tx-billing; tx-noexchange has it off,
// tx-public is public; tx-other is a client tx-requester's tokens never
// name, tx-disabled a disabled one.
const ExchangeRealmFile = "testdata/exchange-realm.json"

// ExchangeScenarios compare standard token exchange (RFC 8693, Keycloak
// 26.2+): the exchanged tokens for each audience, scope and requested
// token type, and every refusal (status, error, description), in
// Keycloak's order of checks.
func ExchangeScenarios() []Scenario {
	return []Scenario{{"token-exchange", tokenExchange}}
}

func tokenExchange(ctx context.Context, c *Client, r *Recorder) {
	login := func(client string) string {
		res, err := c.Token(ctx, url.Values{"grant_type": {"password"}, "client_id": {client}, "client_secret": {client + "-secret"},
			"username": {"alice"}, "password": {"alice-pw"}})
		if err != nil || res.Status != http.StatusOK {
			r.Fail("login."+client, errOr(err, res))
			return ""
		}
		return str(res.JSON, "access_token")
	}
	subject, own := login("tx-frontend"), login("tx-noexchange")
	if subject == "" || own == "" {
		return
	}
	_, subjectClaims, _ := Claims(subject)
	const (
		te = "urn:ietf:params:oauth:grant-type:token-exchange"
		at = "urn:ietf:params:oauth:token-type:access_token"
	)
	requests := []struct {
		key    string
		client string // "" for tx-public (no secret)
		form   url.Values
	}{
		{"orders", "tx-requester", url.Values{"audience": {"tx-orders"}}},
		{"billing", "tx-requester", url.Values{"audience": {"tx-billing"}}},
		{"orders-billing", "tx-requester", url.Values{"audience": {"tx-orders", "tx-billing"}}},
		{"no-audience", "tx-requester", nil},
		{"scope-phone", "tx-requester", url.Values{"audience": {"tx-orders"}, "scope": {"phone"}}},
		{"scope-openid", "tx-requester", url.Values{"audience": {"tx-orders"}, "scope": {"openid"}}},
		{"scope-offline", "tx-requester", url.Values{"audience": {"tx-orders"}, "scope": {"offline_access"}}},
		{"id-token", "tx-requester", url.Values{"audience": {"tx-orders"}, "requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}},
		{"not-available", "tx-requester", url.Values{"audience": {"tx-other"}}},
		{"two-not-available", "tx-requester", url.Values{"audience": {"tx-other", "tx-requester"}}},
		{"audience-not-found", "tx-requester", url.Values{"audience": {"nope"}}},
		{"audience-empty", "tx-requester", url.Values{"audience": {""}}},
		{"audience-disabled", "tx-requester", url.Values{"audience": {"tx-disabled"}}},
		{"exchange-disabled", "tx-noexchange", url.Values{"audience": {"tx-orders"}}},
		{"public-client", "", url.Values{"client_id": {"tx-public"}, "audience": {"tx-orders"}}},
		{"invalid-subject", "tx-requester", url.Values{"subject_token": {"a.b.c"}}},
		{"not-in-subject-aud", "tx-requester", url.Values{"subject_token": {own}, "audience": {"tx-orders"}}},
		{"no-subject", "tx-requester", url.Values{"subject_token": nil}},
		{"no-subject-type", "tx-requester", url.Values{"subject_token_type": nil}},
		{"id-subject-type", "tx-requester", url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}},
		{"refresh-requested", "tx-requester", url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}},
		{"unknown-requested-type", "tx-requester", url.Values{"requested_token_type": {"foo"}, "audience": {"nope"}}},
		{"bad-scope", "tx-requester", url.Values{"scope": {"zzz"}, "audience": {"tx-other"}}},
		{"requested-subject", "tx-requester", url.Values{"requested_subject": {"alice"}}},
		{"requested-issuer", "tx-requester", url.Values{"requested_issuer": {"x"}}},
		{"subject-issuer", "tx-requester", url.Values{"subject_issuer": {"x"}}},
		{"wrong-secret", "tx-requester:wrong", url.Values{"audience": {"tx-orders"}}},
	}
	for _, q := range requests {
		form := url.Values{"grant_type": {te}, "subject_token": {subject}, "subject_token_type": {at}}
		for k, v := range q.form {
			if v == nil {
				delete(form, k)
			} else {
				form[k] = v
			}
		}
		if id, secret, wrong := strings.Cut(q.client, ":"); wrong {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
		} else if q.client != "" {
			form.Set("client_id", q.client)
			form.Set("client_secret", q.client+"-secret")
		}
		res, err := c.Token(ctx, form)
		if err != nil {
			r.Fail(q.key, err)
			continue
		}
		if res.Status != http.StatusOK {
			r.Set(q.key+".status", res.Status)
			if res.JSON != nil {
				r.Set(q.key+".error", res.JSON["error"])
				r.Set(q.key+".error_description", res.JSON["error_description"])
			}
			continue
		}
		tokenResponse(r, q.key, res)
		r.Set(q.key+".issued_token_type", res.JSON["issued_token_type"])
		if _, claims, err := Claims(str(res.JSON, "access_token")); err == nil {
			jti := str(claims, "jti")
			if i := strings.IndexByte(jti, ':'); i > 0 {
				r.Set(q.key+".access_token.jti-context", jti[:i])
			}
			r.Set(q.key+".access_token.sid-kept", claims["sid"] == subjectClaims["sid"])
			r.Set(q.key+".access_token.sub-kept", claims["sub"] == subjectClaims["sub"])
			r.Set(q.key+".session_state-is-sid", res.JSON["session_state"] == claims["sid"])
		}
	}
}
