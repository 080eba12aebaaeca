package keycloaktest

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// exchangeRealm is the realm the real Keycloak 26.7.3 was asked in
// (e2e/realkeycloak_exchange_test.go builds the same one there): frontend
// (the client the user logs in with, whose tokens name requester in aud),
// requester (standard token exchange on, audience mappers for orders-api
// and billing-api), noexchange (exchange off), pubx (public), and the
// audiences.
func exchangeRealm() RealmConfig {
	aud := func(name, client string) MapperConfig {
		return MapperConfig{Name: name, Type: "oidc-audience-mapper", Config: map[string]string{
			"included.client.audience": client, "access.token.claim": "true", "introspection.token.claim": "true"}}
	}
	on := map[string]string{ClientAttrStandardTokenExchange: "true"}
	return RealmConfig{
		Name:       "tx",
		RealmRoles: []string{"staff"},
		Clients: []ClientConfig{
			{ClientID: "frontend", Secret: "fsecret", DirectAccessGrants: true, StandardFlow: true,
				RedirectURIs: []string{"http://127.0.0.1/*"}, Mappers: []MapperConfig{aud("aud-requester", "requester")}},
			{ClientID: "requester", Secret: "rsecret", DirectAccessGrants: true, Attributes: on,
				Mappers: []MapperConfig{aud("aud-orders", "orders-api"), aud("aud-billing", "billing-api")}},
			{ClientID: "noexchange", Secret: "nsecret", DirectAccessGrants: true},
			{ClientID: "pubx", Public: true, DirectAccessGrants: true, Attributes: on},
			{ClientID: "orders-api", Secret: "osecret", Roles: []string{"read"}},
			{ClientID: "other-api", Secret: "xsecret"},
			{ClientID: "billing-api", Secret: "s"},
			{ClientID: "inventory-api", Secret: "s", Roles: []string{"view"}},
			{ClientID: "disabled-api", Secret: "dsecret", Disabled: true},
		},
		Users: []UserConfig{{
			Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true,
			FirstName: "Alice", LastName: "A", NoDefaultRoles: true, RealmRoles: []string{"staff"},
			ClientRoles: map[string][]string{"orders-api": {"read"}, "inventory-api": {"view"}},
		}},
	}
}

func exchangeLogin(t *testing.T, s *Server, client, secret string) string {
	t.Helper()
	resp := postForm(t, tokenURL(s, "tx"), url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}}, client+":"+secret)
	if resp.status != http.StatusOK {
		t.Fatalf("login with %s: %d %s", client, resp.status, resp.body)
	}
	return resp.json(t)["access_token"].(string)
}

func TestStandardTokenExchange(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRealm(exchangeRealm()))
	subject := exchangeLogin(t, s, "frontend", "fsecret")
	own := exchangeLogin(t, s, "noexchange", "nsecret")
	cases := []struct {
		name   string
		client string // "id:secret"; "" for pubx in the form
		form   url.Values
		status int
		err    [2]string
		claims map[string]any // expected claims of the new access token
	}{
		{name: "audience", client: "requester:rsecret", form: url.Values{"audience": {"orders-api"}}, status: 200,
			claims: map[string]any{"aud": "orders-api", "azp": "requester", "scope": "profile email",
				"resource_access": map[string]any{"orders-api": map[string]any{"roles": []any{"read"}}},
				"realm_access":    map[string]any{"roles": []any{"staff"}}}},
		{name: "audience mapped only", client: "requester:rsecret", form: url.Values{"audience": {"billing-api"}}, status: 200,
			claims: map[string]any{"aud": "billing-api", "resource_access": map[string]any{}}},
		{name: "audience from role", client: "requester:rsecret", form: url.Values{"audience": {"inventory-api"}}, status: 200,
			claims: map[string]any{"aud": "inventory-api"}},
		{name: "optional scope", client: "requester:rsecret", form: url.Values{"audience": {"orders-api"}, "scope": {"phone"}}, status: 200,
			claims: map[string]any{"scope": "profile phone email"}},
		{name: "offline dropped", client: "requester:rsecret", form: url.Values{"audience": {"orders-api"}, "scope": {"offline_access"}}, status: 200,
			claims: map[string]any{"scope": "profile email"}},
		{name: "not available", client: "requester:rsecret", form: url.Values{"audience": {"other-api"}}, status: 400,
			err: [2]string{"invalid_request", "Requested audience not available: other-api"}},
		{name: "two not available", client: "requester:rsecret", form: url.Values{"audience": {"other-api", "requester"}}, status: 400,
			err: [2]string{"invalid_request", "Requested audience not available: requester, other-api"}},
		{name: "unknown audience", client: "requester:rsecret", form: url.Values{"audience": {"nope"}}, status: 400,
			err: [2]string{"invalid_client", "Audience not found"}},
		{name: "empty audience", client: "requester:rsecret", form: url.Values{"audience": {""}}, status: 400,
			err: [2]string{"invalid_client", "Audience not found"}},
		{name: "disabled audience", client: "requester:rsecret", form: url.Values{"audience": {"disabled-api"}}, status: 400,
			err: [2]string{"invalid_client", "Client disabled"}},
		{name: "exchange off", client: "noexchange:nsecret", form: url.Values{"audience": {"orders-api"}}, status: 400,
			err: [2]string{"invalid_request", "Standard token exchange is not enabled for the requested client"}},
		{name: "public", form: url.Values{"client_id": {"pubx"}, "audience": {"orders-api"}}, status: 400,
			err: [2]string{"invalid_client", "Public client is not allowed to exchange token"}},
		{name: "garbage subject", client: "requester:rsecret", form: url.Values{"subject_token": {"a.b.c"}}, status: 400,
			err: [2]string{"invalid_request", "Invalid token"}},
		{name: "not in aud", client: "requester:rsecret", form: url.Values{"subject_token": {own}, "audience": {"orders-api"}}, status: 403,
			err: [2]string{"access_denied", "Client is not within the token audience"}},
		{name: "no subject", client: "requester:rsecret", form: url.Values{"subject_token": nil}, status: 400,
			err: [2]string{"invalid_request", "Parameter 'subject_token' required for standard token exchange"}},
		{name: "no subject type", client: "requester:rsecret", form: url.Values{"subject_token_type": nil}, status: 400,
			err: [2]string{"invalid_request", "Parameter 'subject_token_type' required for standard token exchange"}},
		{name: "id subject type", client: "requester:rsecret", form: url.Values{"subject_token_type": {tokenTypeID}}, status: 400,
			err: [2]string{"invalid_request", "Parameter 'subject_token' supports access tokens only"}},
		{name: "requested_subject", client: "requester:rsecret", form: url.Values{"requested_subject": {"alice"}}, status: 400,
			err: [2]string{"invalid_request", "Parameter 'requested_subject' is not supported for standard token exchange"}},
		{name: "refresh type", client: "requester:rsecret", form: url.Values{"requested_token_type": {tokenTypeRefresh}}, status: 400,
			err: [2]string{"invalid_request", "requested_token_type unsupported"}},
		{name: "bad scope", client: "requester:rsecret", form: url.Values{"audience": {"other-api"}, "scope": {"zzz"}}, status: 400,
			err: [2]string{"invalid_scope", "Invalid scopes: zzz"}},
		{name: "type before audience", client: "requester:rsecret", form: url.Values{"audience": {"nope"}, "requested_token_type": {"foo"}}, status: 400,
			err: [2]string{"invalid_request", "requested_token_type unsupported"}},
		{name: "wrong secret", client: "requester:x", form: url.Values{"audience": {"orders-api"}}, status: 401,
			err: [2]string{"unauthorized_client", "Invalid client or Invalid client credentials"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeAccess}}
			for k, v := range tc.form {
				if v == nil {
					delete(form, k)
				} else {
					form[k] = v
				}
			}
			resp := postForm(t, tokenURL(s, "tx"), form, tc.client)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
			body := resp.json(t)
			if tc.status != http.StatusOK {
				if got := [2]string{body["error"].(string), body["error_description"].(string)}; got != tc.err {
					t.Fatalf("error %q, want %q", got, tc.err)
				}
				return
			}
			if body["issued_token_type"] != tokenTypeAccess || body["token_type"] != "Bearer" || body["refresh_token"] != nil {
				t.Errorf("answer %v", body)
			}
			c := decode(t, body["access_token"].(string)).claims
			subj := decode(t, subject).claims
			if c["sid"] != subj["sid"] || c["sub"] != subj["sub"] || body["session_state"] != subj["sid"] {
				t.Errorf("sid/sub %v %v, subject's %v %v", c["sid"], c["sub"], subj["sid"], subj["sub"])
			}
			if jti, _ := c["jti"].(string); len(jti) < 7 || jti[:7] != "ntrtte:" {
				t.Errorf("jti %q, want Keycloak's transient client session prefix ntrtte:", jti)
			}
			for k, want := range tc.claims {
				if k == "scope" {
					// Compared as sets: keycloaktest orders scope claims
					// its own way everywhere (not only here).
					got := strings.Fields(c[k].(string))
					slices.Sort(got)
					w := strings.Fields(want.(string))
					slices.Sort(w)
					if !slices.Equal(got, w) {
						t.Errorf("scope %q, want %q", c[k], want)
					}
					continue
				}
				if !reflect.DeepEqual(c[k], want) {
					t.Errorf("claim %s = %#v, want %#v", k, c[k], want)
				}
			}
		})
	}
}

func TestStandardTokenExchangeTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRealm(exchangeRealm()))
	subject := exchangeLogin(t, s, "frontend", "fsecret")
	exchange := func(t *testing.T, subject string, extra url.Values) map[string]any {
		t.Helper()
		form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeAccess}}
		for k, v := range extra {
			form[k] = v
		}
		resp := postForm(t, tokenURL(s, "tx"), form, "requester:rsecret")
		if resp.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", resp.status, resp.body)
		}
		return resp.json(t)
	}
	t.Run("no audience keeps the requester's", func(t *testing.T) {
		c := decode(t, exchange(t, subject, nil)["access_token"].(string)).claims
		got := audienceOf(c["aud"])
		for _, want := range []string{"orders-api", "billing-api", "inventory-api"} {
			if !slices.Contains(got, want) {
				t.Errorf("aud %v lacks %s", got, want)
			}
		}
	})
	t.Run("exchanged token exchanged again", func(t *testing.T) {
		first := exchange(t, subject, url.Values{"audience": {"orders-api"}})["access_token"].(string)
		// The requester is the holder (azp) of the exchanged token.
		c := decode(t, exchange(t, first, url.Values{"audience": {"orders-api"}})["access_token"].(string)).claims
		if c["aud"] != "orders-api" || c["azp"] != "requester" {
			t.Errorf("claims %v", c)
		}
	})
	t.Run("id token", func(t *testing.T) {
		body := exchange(t, subject, url.Values{"audience": {"orders-api"}, "requested_token_type": {tokenTypeID}})
		c := decode(t, body["access_token"].(string)).claims
		if body["token_type"] != "N_A" || body["issued_token_type"] != tokenTypeID || c["typ"] != "ID" || c["aud"] != "requester" || body["id_token"] != nil {
			t.Errorf("answer %v, claims %v", body, c)
		}
	})
	t.Run("openid adds an ID token", func(t *testing.T) {
		body := exchange(t, subject, url.Values{"audience": {"orders-api"}, "scope": {"openid"}})
		c := decode(t, body["access_token"].(string)).claims
		if body["id_token"] == nil || !strings.HasPrefix(c["scope"].(string), "openid ") {
			t.Errorf("answer %v", body)
		}
	})
	t.Run("ended session", func(t *testing.T) {
		t.Parallel()
		other := NewServer(t, WithRealm(exchangeRealm()))
		subject := exchangeLogin(t, other, "frontend", "fsecret")
		for _, sid := range other.Realm("tx").SessionIDs("alice") {
			other.Realm("tx").EndSession(sid)
		}
		form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeAccess}}
		resp := postForm(t, tokenURL(other, "tx"), form, "requester:rsecret")
		if resp.status != http.StatusBadRequest || resp.json(t)["error_description"] != "Invalid token" {
			t.Errorf("after logout: %d %s", resp.status, resp.body)
		}
	})
}
