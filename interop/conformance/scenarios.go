package conformance

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// The fixture realm (testdata/conformance-realm.json).
const (
	appClient     = "conf-app"
	appSecret     = "conf-app-secret"
	publicClient  = "conf-public"
	noGrantClient = "conf-nogrant"
	noGrantSecret = "conf-nogrant-secret"
	adminClient   = "conf-admin"
	adminSecret   = "conf-admin-secret"
)

var passwords = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "dave": "dave-pw"}

// Scenarios is the suite, in order.
func Scenarios() []Scenario {
	return []Scenario{
		{"discovery", discovery},
		{"jwks", jwks},
		{"password", passwordGrant},
		{"token-errors", tokenErrors},
		{"client-credentials", clientCredentials},
		{"refresh", refreshGrant},
		{"userinfo", userinfo},
		{"introspection", introspection},
		{"revocation", revocation},
		{"logout", logoutEndpoint},
		{"admin-auth", adminAuth},
		{"admin-users", adminUsers},
		{"admin-roles-groups", adminRolesGroups},
		{"admin-sessions", adminSessions},
		{"admin-permissions", adminPermissions},
		{"disable-user", disableUser},
		{"import", importedRealms},
		{"organizations", organizations},
	}
}

func passwordForm(client, secret, user string, extra ...string) url.Values {
	f := url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {user}, "password": {passwords[user]}}
	if secret != "" {
		f.Set("client_secret", secret)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

// login returns alice's (or another user's) tokens from conf-app.
func login(ctx context.Context, c *Client, r *Recorder, user string, extra ...string) map[string]any {
	res, err := c.Token(ctx, passwordForm(appClient, appSecret, user, extra...))
	if err != nil {
		r.Fail("login."+user, err)
		return nil
	}
	if res.Status != 200 || res.JSON == nil {
		r.Set("login."+user+".status", res.Status)
		return nil
	}
	return res.JSON
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func strings_(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case string:
		out = []string{x}
	}
	return out
}

// words splits a space-separated claim such as scope into a sorted list.
func words(s string) []string {
	w := strings.Fields(s)
	sort.Strings(w)
	return w
}

func discovery(ctx context.Context, c *Client, r *Recorder) {
	res, err := c.Do(ctx, http.MethodGet, c.RealmURL("/.well-known/openid-configuration"), nil, nil)
	if err != nil || res.JSON == nil {
		r.Fail("get", errOr(err, res))
		return
	}
	d := res.JSON
	r.Set("status", res.Status)
	r.Set("content-type", mediaType(res.Header))
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "introspection_endpoint", "userinfo_endpoint",
		"end_session_endpoint", "jwks_uri", "revocation_endpoint", "check_session_iframe", "device_authorization_endpoint",
		"pushed_authorization_request_endpoint", "backchannel_authentication_endpoint", "registration_endpoint"} {
		if v, ok := d[k]; ok {
			r.Set("value."+k, v)
		} else {
			r.Set("value."+k, "<absent>")
		}
	}
	for _, k := range []string{"frontchannel_logout_session_supported", "frontchannel_logout_supported", "backchannel_logout_supported",
		"backchannel_logout_session_supported", "request_parameter_supported", "request_uri_parameter_supported",
		"require_request_uri_registration", "claims_parameter_supported", "tls_client_certificate_bound_access_tokens",
		"authorization_response_iss_parameter_supported", "require_pushed_authorization_requests"} {
		r.Set("flag."+k, d[k])
	}
	members := map[string][]string{
		"grant_types_supported": {"authorization_code", "refresh_token", "password", "client_credentials",
			"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:device_code", "implicit"},
		"response_types_supported":                      {"code", "none", "id_token", "token", "code id_token"},
		"id_token_signing_alg_values_supported":         {"RS256", "ES256", "PS256", "HS256", "none"},
		"code_challenge_methods_supported":              {"S256", "plain"},
		"token_endpoint_auth_methods_supported":         {"client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "tls_client_auth"},
		"introspection_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post"},
		"subject_types_supported":                       {"public", "pairwise"},
		"scopes_supported":                              {"openid", "profile", "email", "roles", "web-origins", "offline_access", "basic", "acr", "address", "phone", "microprofile-jwt"},
		"claims_supported":                              {"sub", "iss", "aud", "name", "given_name", "family_name", "preferred_username", "email", "email_verified", "acr", "auth_time"},
		"response_modes_supported":                      {"query", "fragment", "form_post", "query.jwt"},
	}
	for field, names := range members {
		have := strings_(d[field])
		r.Set("type."+field, jsonType(d[field]))
		for _, n := range names {
			r.Set("has."+field+"."+n, slices.Contains(have, n))
		}
	}
	res, err = c.Do(ctx, http.MethodGet, c.t.Base+"/realms/no-such-realm/.well-known/openid-configuration", nil, nil)
	if err != nil {
		r.Fail("unknown-realm", err)
		return
	}
	r.Set("unknown-realm.status", res.Status)
	r.Set("unknown-realm.error", str(res.JSON, "error"))
}

func errOr(err error, res *Response) error {
	if err != nil {
		return err
	}
	return &statusError{res.Status}
}

type statusError struct{ status int }

func (e *statusError) Error() string {
	return "status " + http.StatusText(e.status) + " without a JSON body"
}

func mediaType(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(ct)
}

func jwks(ctx context.Context, c *Client, r *Recorder) {
	res, err := c.Do(ctx, http.MethodGet, c.RealmURL("/protocol/openid-connect/certs"), nil, nil)
	if err != nil || res.JSON == nil {
		r.Fail("get", errOr(err, res))
		return
	}
	r.Set("status", res.Status)
	r.Set("content-type", mediaType(res.Header))
	keys, _ := res.JSON["keys"].([]any)
	count := map[string]int{}
	for _, k := range keys {
		m, _ := k.(map[string]any)
		id := str(m, "use") + "." + str(m, "alg")
		count[id]++
		if count[id] > 1 {
			continue
		}
		for _, f := range []string{"kty", "crv"} {
			if v, ok := m[f]; ok {
				r.Set("key."+id+"."+f, v)
			}
		}
		var fields []string
		for f := range m {
			fields = append(fields, f)
		}
		r.Set("key."+id+".fields", fields)
	}
	for id, n := range count {
		r.Set("count."+id, n)
	}
}

// tokenResponse records a successful token answer's shape and the claims
// of its tokens.
func tokenResponse(r *Recorder, key string, res *Response) {
	r.Set(key+".status", res.Status)
	if res.JSON == nil {
		return
	}
	r.Shape(key+".body", res.JSON)
	r.Set(key+".token_type", res.JSON["token_type"])
	r.Set(key+".scope", words(str(res.JSON, "scope")))
	r.Set(key+".cache-control", res.Header.Get("Cache-Control"))
	for _, t := range []string{"access_token", "id_token", "refresh_token"} {
		tok := str(res.JSON, t)
		if tok == "" {
			continue
		}
		h, claims, err := Claims(tok)
		if err != nil {
			r.Fail(key+"."+t, err)
			continue
		}
		r.Set(key+"."+t+".header.alg", h["alg"])
		r.Set(key+"."+t+".header.typ", h["typ"])
		r.Set(key+"."+t+".header.kid", jsonType(h["kid"]))
		claimsOf(r, key+"."+t, claims)
	}
}

// claimsOf records a token's claim names and types, and the values that
// must match between servers.
func claimsOf(r *Recorder, key string, c map[string]any) {
	r.Shape(key+".claims", c)
	for _, k := range []string{"typ", "azp", "preferred_username", "email", "email_verified", "name", "given_name", "family_name", "acr", "client_id", "clientId"} {
		if v, ok := c[k]; ok {
			r.Set(key+".value."+k, v)
		}
	}
	if v, ok := c["iss"]; ok {
		r.Set(key+".value.iss", v)
	}
	if v, ok := c["aud"]; ok {
		r.Set(key+".value.aud", strings_(v))
	}
	if v, ok := c["scope"]; ok {
		r.Set(key+".value.scope", words(v.(string)))
	}
	if ra, ok := c["realm_access"].(map[string]any); ok {
		r.Set(key+".value.realm_access.roles", strings_(ra["roles"]))
	}
	if ra, ok := c["resource_access"].(map[string]any); ok {
		var clients []string
		for client, v := range ra {
			clients = append(clients, client)
			if m, ok := v.(map[string]any); ok {
				r.Set(key+".value.resource_access."+client+".roles", strings_(m["roles"]))
			}
		}
		r.Set(key+".value.resource_access", clients)
	}
	if e, ok := c["exp"].(float64); ok {
		if i, ok := c["iat"].(float64); ok {
			// Keycloak reads the clock separately for iat and exp, so a
			// slow grant (a 210,000-round pbkdf2 hash) can issue 299 s for
			// 300: compare to the nearest 5 s.
			r.Set(key+".lifetime", (int(e-i)+2)/5*5)
		}
	}
}

func passwordGrant(ctx context.Context, c *Client, r *Recorder) {
	for _, tc := range []struct {
		key   string
		form  url.Values
		basic bool
	}{
		{"alice", passwordForm(appClient, appSecret, "alice"), false},
		{"alice-openid", passwordForm(appClient, appSecret, "alice", "scope", "openid"), false},
		{"alice-basic-auth", passwordForm(appClient, "", "alice", "scope", "openid"), true},
		{"bob-openid", passwordForm(appClient, appSecret, "bob", "scope", "openid"), false},
		{"alice-public", passwordForm(publicClient, "", "alice", "scope", "openid"), false},
		{"alice-offline", passwordForm(appClient, appSecret, "alice", "scope", "openid offline_access"), false},
		{"alice-unknown-scope", passwordForm(appClient, appSecret, "alice", "scope", "openid no-such-scope"), false},
	} {
		var h http.Header
		if tc.basic {
			req, _ := http.NewRequest("GET", "http://x", nil)
			req.SetBasicAuth(url.QueryEscape(appClient), url.QueryEscape(appSecret))
			h = req.Header
		}
		res, err := c.Do(ctx, http.MethodPost, c.RealmURL("/protocol/openid-connect/token"), tc.form, h)
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		if res.Status != 200 {
			r.Set(tc.key+".status", res.Status)
			r.Set(tc.key+".error", str(res.JSON, "error"))
			continue
		}
		tokenResponse(r, tc.key, res)
	}
}

func tokenErrors(ctx context.Context, c *Client, r *Recorder) {
	base := func() url.Values { return passwordForm(appClient, appSecret, "alice") }
	with := func(f url.Values, k, v string) url.Values {
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	cases := []struct {
		key  string
		form url.Values
	}{
		{"wrong-password", with(base(), "password", "nope")},
		{"unknown-user", with(base(), "username", "nobody")},
		{"disabled-user", passwordForm(appClient, appSecret, "dave")},
		{"no-password", with(base(), "password", "")},
		{"no-username", with(base(), "username", "")},
		{"wrong-secret", with(base(), "client_secret", "nope")},
		{"no-secret", with(base(), "client_secret", "")},
		{"unknown-client", with(base(), "client_id", "no-such-client")},
		{"no-client", with(with(base(), "client_id", ""), "client_secret", "")},
		{"direct-grants-off", passwordForm(noGrantClient, noGrantSecret, "alice")},
		{"no-grant-type", with(base(), "grant_type", "")},
		{"unsupported-grant-type", with(base(), "grant_type", "magic")},
		{"public-client-credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {publicClient}}},
		{"code-without-code", url.Values{"grant_type": {"authorization_code"}, "client_id": {appClient}, "client_secret": {appSecret}, "redirect_uri": {"http://127.0.0.1/cb"}}},
		{"bad-code", url.Values{"grant_type": {"authorization_code"}, "client_id": {appClient}, "client_secret": {appSecret}, "code": {"nonsense"}, "redirect_uri": {"http://127.0.0.1/cb"}}},
		{"refresh-garbage", url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {"garbage"}}},
		{"refresh-missing", url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}}},
	}
	for _, tc := range cases {
		res, err := c.Token(ctx, tc.form)
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		r.Set(tc.key+".status", res.Status)
		r.Set(tc.key+".error", str(res.JSON, "error"))
		r.Set(tc.key+".has-description", str(res.JSON, "error_description") != "")
		r.Set(tc.key+".content-type", mediaType(res.Header))
		if res.Status == http.StatusUnauthorized {
			r.Set(tc.key+".www-authenticate", res.Header.Get("WWW-Authenticate") != "")
		}
	}
	res, err := c.Do(ctx, http.MethodGet, c.RealmURL("/protocol/openid-connect/token"), nil, nil)
	if err != nil {
		r.Fail("get", err)
		return
	}
	r.Set("get.status", res.Status)
}

func clientCredentials(ctx context.Context, c *Client, r *Recorder) {
	res, err := c.Token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {appClient}, "client_secret": {appSecret}})
	if err != nil {
		r.Fail("conf-app", err)
		return
	}
	tokenResponse(r, "conf-app", res)
	res, err = c.Token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {noGrantClient}, "client_secret": {noGrantSecret}})
	if err != nil {
		r.Fail("no-service-account", err)
		return
	}
	r.Set("no-service-account.status", res.Status)
	r.Set("no-service-account.error", str(res.JSON, "error"))
}

func refreshGrant(ctx context.Context, c *Client, r *Recorder) {
	t := login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {str(t, "refresh_token")}}
	res, err := c.Token(ctx, form)
	if err != nil {
		r.Fail("refresh", err)
		return
	}
	tokenResponse(r, "refresh", res)
	r.Set("refresh.new-refresh-token", str(res.JSON, "refresh_token") != str(t, "refresh_token"))
	// The first refresh token again (Keycloak's default does not revoke it).
	res, err = c.Token(ctx, form)
	if err == nil {
		r.Set("reuse.status", res.Status)
		r.Set("reuse.error", str(res.JSON, "error"))
	}
	// Another client's refresh token.
	form.Set("client_id", publicClient)
	form.Del("client_secret")
	res, err = c.Token(ctx, form)
	if err == nil {
		r.Set("other-client.status", res.Status)
		r.Set("other-client.error", str(res.JSON, "error"))
	}
	// A narrower scope on refresh.
	res, err = c.Token(ctx, url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {str(t, "refresh_token")}, "scope": {"openid"}})
	if err == nil {
		r.Set("same-scope.status", res.Status)
	}
}

func userinfo(ctx context.Context, c *Client, r *Recorder) {
	t := login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	u := c.RealmURL("/protocol/openid-connect/userinfo")
	for _, tc := range []struct {
		key, method, auth string
	}{
		{"get", http.MethodGet, "Bearer " + str(t, "access_token")},
		{"post", http.MethodPost, "Bearer " + str(t, "access_token")},
		{"no-token", http.MethodGet, ""},
		{"garbage", http.MethodGet, "Bearer garbage"},
		{"id-token", http.MethodGet, "Bearer " + str(t, "id_token")},
		{"refresh-token", http.MethodGet, "Bearer " + str(t, "refresh_token")},
	} {
		var h http.Header
		if tc.auth != "" {
			h = http.Header{"Authorization": {tc.auth}}
		}
		res, err := c.Do(ctx, tc.method, u, nil, h)
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		r.Set(tc.key+".status", res.Status)
		if res.Status == 200 && res.JSON != nil {
			r.Shape(tc.key+".body", res.JSON)
			for _, k := range []string{"preferred_username", "email", "email_verified", "name", "given_name", "family_name"} {
				r.Set(tc.key+".value."+k, res.JSON[k])
			}
			continue
		}
		r.Set(tc.key+".error", str(res.JSON, "error"))
		r.Set(tc.key+".www-authenticate", wwwAuthScheme(res.Header))
	}
}

// wwwAuthScheme is the challenge's scheme and error attribute, e.g.
// `Bearer error="invalid_token"`.
func wwwAuthScheme(h http.Header) string {
	v := h.Get("WWW-Authenticate")
	if v == "" {
		return "<absent>"
	}
	scheme, _, _ := strings.Cut(v, " ")
	if i := strings.Index(v, `error="`); i >= 0 {
		rest := v[i+len(`error="`):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return scheme + " error=" + rest[:j]
		}
	}
	return scheme
}

func introspect(ctx context.Context, c *Client, token, hint string, auth bool) (*Response, error) {
	f := url.Values{"token": {token}}
	if hint != "" {
		f.Set("token_type_hint", hint)
	}
	if auth {
		f.Set("client_id", appClient)
		f.Set("client_secret", appSecret)
	}
	return c.Form(ctx, c.RealmURL("/protocol/openid-connect/token/introspect"), f, "")
}

func introspection(ctx context.Context, c *Client, r *Recorder) {
	t := login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	for _, tc := range []struct {
		key, token, hint string
		auth             bool
	}{
		{"access", str(t, "access_token"), "", true},
		{"access-hinted", str(t, "access_token"), "access_token", true},
		{"refresh", str(t, "refresh_token"), "refresh_token", true},
		{"id", str(t, "id_token"), "", true},
		{"garbage", "garbage", "", true},
		{"no-client-auth", str(t, "access_token"), "", false},
	} {
		res, err := introspect(ctx, c, tc.token, tc.hint, tc.auth)
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		r.Set(tc.key+".status", res.Status)
		if res.JSON == nil {
			continue
		}
		if res.Status != 200 {
			r.Set(tc.key+".error", str(res.JSON, "error"))
			continue
		}
		r.Set(tc.key+".active", res.JSON["active"])
		if res.JSON["active"] == true {
			r.Shape(tc.key+".body", res.JSON)
			for _, k := range []string{"typ", "token_type", "client_id", "username", "azp"} {
				if v, ok := res.JSON[k]; ok {
					r.Set(tc.key+".value."+k, v)
				}
			}
		} else {
			r.Set(tc.key+".fields", len(res.JSON))
		}
	}
}

func revocation(ctx context.Context, c *Client, r *Recorder) {
	t := login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	u := c.RealmURL("/protocol/openid-connect/revoke")
	creds := func(f url.Values) url.Values {
		f.Set("client_id", appClient)
		f.Set("client_secret", appSecret)
		return f
	}
	res, err := c.Form(ctx, u, creds(url.Values{"token": {str(t, "refresh_token")}, "token_type_hint": {"refresh_token"}}), "")
	if err != nil {
		r.Fail("refresh", err)
		return
	}
	r.Set("refresh.status", res.Status)
	res, err = c.Token(ctx, creds(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(t, "refresh_token")}}))
	if err == nil {
		r.Set("refresh-after.status", res.Status)
		r.Set("refresh-after.error", str(res.JSON, "error"))
	}
	res, err = introspect(ctx, c, str(t, "access_token"), "", true)
	if err == nil {
		r.Set("access-after-refresh-revoked.active", res.JSON["active"])
	}
	t = login(ctx, c, r, "alice")
	if t == nil {
		return
	}
	res, err = c.Form(ctx, u, creds(url.Values{"token": {str(t, "access_token")}}), "")
	if err == nil {
		r.Set("access.status", res.Status)
	}
	res, err = introspect(ctx, c, str(t, "access_token"), "", true)
	if err == nil {
		r.Set("access-after.active", res.JSON["active"])
	}
	for _, tc := range []struct {
		key  string
		form url.Values
	}{
		{"garbage", creds(url.Values{"token": {"garbage"}})},
		{"no-token", creds(url.Values{})},
		{"no-client-auth", url.Values{"token": {"garbage"}}},
	} {
		res, err := c.Form(ctx, u, tc.form, "")
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		r.Set(tc.key+".status", res.Status)
		r.Set(tc.key+".error", str(res.JSON, "error"))
	}
}

func logoutEndpoint(ctx context.Context, c *Client, r *Recorder) {
	t := login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	u := c.RealmURL("/protocol/openid-connect/logout")
	res, err := c.Form(ctx, u, url.Values{"client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {str(t, "refresh_token")}}, "")
	if err != nil {
		r.Fail("refresh-token", err)
		return
	}
	r.Set("refresh-token.status", res.Status)
	res, err = introspect(ctx, c, str(t, "access_token"), "", true)
	if err == nil {
		r.Set("access-after.active", res.JSON["active"])
	}
	res, err = c.Token(ctx, url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {str(t, "refresh_token")}})
	if err == nil {
		r.Set("refresh-after.status", res.Status)
		r.Set("refresh-after.error", str(res.JSON, "error"))
	}
	res, err = c.Form(ctx, u, url.Values{"client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {"garbage"}}, "")
	if err == nil {
		r.Set("garbage.status", res.Status)
		r.Set("garbage.error", str(res.JSON, "error"))
	}
	// The browser end-session endpoint without id_token_hint shows a
	// confirmation page; with a hint and a registered redirect it redirects.
	res, err = c.Do(ctx, http.MethodGet, u, nil, nil)
	if err == nil {
		r.Set("browser-no-hint.status", res.Status)
		r.Set("browser-no-hint.content-type", mediaType(res.Header))
	}
	t = login(ctx, c, r, "alice", "scope", "openid")
	if t == nil {
		return
	}
	q := url.Values{"id_token_hint": {str(t, "id_token")}, "post_logout_redirect_uri": {"http://127.0.0.1/bye"}, "state": {"s1"}}
	res, err = c.Do(ctx, http.MethodGet, u+"?"+q.Encode(), nil, nil)
	if err == nil {
		r.Set("browser-hint.status", res.Status)
		loc, _ := url.Parse(res.Header.Get("Location"))
		if loc != nil {
			r.Set("browser-hint.location", loc.Scheme+"://"+loc.Host+loc.Path)
			r.Set("browser-hint.location.state", loc.Query().Get("state"))
		}
	}
	res, err = introspect(ctx, c, str(t, "access_token"), "", true)
	if err == nil {
		r.Set("browser-hint.access-after.active", res.JSON["active"])
	}
	q.Set("post_logout_redirect_uri", "http://evil.example/bye")
	res, err = c.Do(ctx, http.MethodGet, u+"?"+q.Encode(), nil, nil)
	if err == nil {
		r.Set("browser-bad-redirect.status", res.Status)
	}
}

// adminToken is conf-admin's service-account token (realm-admin).
func adminToken(ctx context.Context, c *Client, r *Recorder) string {
	res, err := c.Token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {adminClient}, "client_secret": {adminSecret}})
	if err != nil || res.Status != 200 {
		r.Fail("admin-token", errOr(err, res))
		return ""
	}
	return str(res.JSON, "access_token")
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func adminAuth(ctx context.Context, c *Client, r *Recorder) {
	alice := login(ctx, c, r, "alice")
	admin := adminToken(ctx, c, r)
	if alice == nil || admin == "" {
		return
	}
	for _, tc := range []struct {
		key string
		h   http.Header
	}{
		{"no-token", nil},
		{"garbage", bearer("garbage")},
		{"user-without-admin-roles", bearer(str(alice, "access_token"))},
		{"realm-admin", bearer(admin)},
	} {
		res, err := c.Do(ctx, http.MethodGet, c.AdminURL("/users?max=1"), nil, tc.h)
		if err != nil {
			r.Fail(tc.key, err)
			continue
		}
		r.Set(tc.key+".status", res.Status)
		if res.Status != 200 {
			r.Set(tc.key+".error", str(res.JSON, "error"))
		}
	}
	res, err := c.Do(ctx, http.MethodGet, c.t.Base+"/admin/realms/no-such-realm/users", nil, bearer(admin))
	if err == nil {
		r.Set("other-realm.status", res.Status)
	}
}

// findUser returns the representation of username (exact search).
func findUser(ctx context.Context, c *Client, tok, username string) map[string]any {
	res, err := c.Do(ctx, http.MethodGet, c.AdminURL("/users?exact=true&username="+url.QueryEscape(username)), nil, bearer(tok))
	if err != nil || len(res.List) != 1 {
		return nil
	}
	m, _ := res.List[0].(map[string]any)
	return m
}

func adminUsers(ctx context.Context, c *Client, r *Recorder) {
	tok := adminToken(ctx, c, r)
	if tok == "" {
		return
	}
	get := func(key, path string) *Response {
		res, err := c.Do(ctx, http.MethodGet, c.AdminURL(path), nil, bearer(tok))
		if err != nil {
			r.Fail(key, err)
			return nil
		}
		r.Set(key+".status", res.Status)
		return res
	}
	send := func(key, method, path string, body any) *Response {
		res, err := c.Do(ctx, method, c.AdminURL(path), body, bearer(tok))
		if err != nil {
			r.Fail(key, err)
			return nil
		}
		r.Set(key+".status", res.Status)
		if res.Status >= 400 && res.JSON != nil {
			r.Set(key+".error-fields", keysOf(res.JSON))
		}
		return res
	}
	if res := get("search-exact", "/users?exact=true&username=alice"); res != nil {
		r.Set("search-exact.count", len(res.List))
		if len(res.List) == 1 {
			u, _ := res.List[0].(map[string]any)
			r.Shape("search-exact.user", u)
			for _, k := range []string{"username", "email", "emailVerified", "firstName", "lastName", "enabled", "totp"} {
				r.Set("search-exact.user.value."+k, u[k])
			}
		}
	}
	if res := get("search-brief", "/users?search=alice&briefRepresentation=true"); res != nil && len(res.List) > 0 {
		u, _ := res.List[0].(map[string]any)
		r.Set("search-brief.fields", keysOf(u))
	}
	if res := get("search-prefix", "/users?search=b"); res != nil {
		r.Set("search-prefix.usernames", usernames(res.List))
	}
	if res := get("search-email", "/users?email=alice@example.com"); res != nil {
		r.Set("search-email.count", len(res.List))
	}
	if res := get("search-disabled", "/users?enabled=false"); res != nil {
		r.Set("search-disabled.usernames", usernames(res.List))
	}
	if res := get("paging", "/users?first=1&max=2"); res != nil {
		r.Set("paging.count", len(res.List))
	}
	if res := get("count", "/users/count"); res != nil {
		r.Set("count.body", string(res.Body))
	}
	if res := get("count-search", "/users/count?search=alice"); res != nil {
		r.Set("count-search.body", string(res.Body))
	}

	// Create, read, update, delete.
	carol := map[string]any{"username": "carol", "email": "carol@example.com", "emailVerified": true, "firstName": "Carol", "lastName": "Singer", "enabled": true}
	res := send("create", http.MethodPost, "/users", carol)
	if res != nil {
		r.Set("create.location", strings.Contains(res.Header.Get("Location"), "/admin/realms/"+c.t.Realm+"/users/"))
		r.Set("create.body", len(res.Body))
	}
	send("create-duplicate-username", http.MethodPost, "/users", map[string]any{"username": "carol"})
	send("create-duplicate-email", http.MethodPost, "/users", map[string]any{"username": "carol2", "email": "carol@example.com"})
	send("create-no-username", http.MethodPost, "/users", map[string]any{"email": "x@example.com"})
	send("create-bad-email", http.MethodPost, "/users", map[string]any{"username": "erin", "email": "not-an-email"})
	send("create-uppercase", http.MethodPost, "/users", map[string]any{"username": "Frank"})
	if u := findUser(ctx, c, tok, "frank"); u != nil {
		r.Set("create-uppercase.stored-username", u["username"])
	}
	u := findUser(ctx, c, tok, "carol")
	if u == nil {
		r.Fail("carol", &statusError{404})
		return
	}
	id := str(u, "id")
	if res := get("get", "/users/"+id); res != nil && res.JSON != nil {
		r.Shape("get.user", res.JSON)
		r.Set("get.user.value.requiredActions", res.JSON["requiredActions"])
	}
	if res := get("get-unknown", "/users/00000000-0000-0000-0000-000000000000"); res != nil {
		r.Set("get-unknown.error-fields", keysOf(res.JSON))
		r.Set("get-unknown.error", res.JSON["error"])
	}
	// Changing the email keeps emailVerified (Keycloak 24+).
	send("update-email", http.MethodPut, "/users/"+id, map[string]any{"email": "carol.new@example.com"})
	if res := get("after-update-email", "/users/"+id); res != nil && res.JSON != nil {
		r.Set("after-update-email.email", res.JSON["email"])
		r.Set("after-update-email.emailVerified", res.JSON["emailVerified"])
		r.Set("after-update-email.firstName", valueOr(res.JSON, "firstName"))
	}
	// A body with only attributes: the profile fields it leaves out.
	send("update-attributes-only", http.MethodPut, "/users/"+id, map[string]any{"attributes": map[string]any{"dept": []string{"sales"}}})
	if res := get("after-update-attributes", "/users/"+id); res != nil && res.JSON != nil {
		for _, k := range []string{"email", "firstName", "lastName", "emailVerified", "enabled", "username"} {
			r.Set("after-update-attributes."+k, valueOr(res.JSON, k))
		}
		attrs, _ := res.JSON["attributes"].(map[string]any)
		r.Set("after-update-attributes.attributes", keysOf(attrs))
	}
	send("update-disable", http.MethodPut, "/users/"+id, map[string]any{"enabled": false})
	if res := get("after-disable", "/users/"+id); res != nil && res.JSON != nil {
		r.Set("after-disable.enabled", res.JSON["enabled"])
	}
	send("update-rename", http.MethodPut, "/users/"+id, map[string]any{"username": "carola"})
	if res := get("after-rename", "/users/"+id); res != nil && res.JSON != nil {
		r.Set("after-rename.username", res.JSON["username"])
	}
	send("update-unknown", http.MethodPut, "/users/00000000-0000-0000-0000-000000000000", map[string]any{"enabled": false})
	send("update-bad-json", http.MethodPut, "/users/"+id, []byte("{not json"))
	send("required-actions", http.MethodPut, "/users/"+id, map[string]any{"requiredActions": []string{"UPDATE_PASSWORD", "VERIFY_EMAIL"}})
	if res := get("after-required-actions", "/users/"+id); res != nil && res.JSON != nil {
		r.Set("after-required-actions.value", strings_(res.JSON["requiredActions"]))
	}
	send("reset-password", http.MethodPut, "/users/"+id+"/reset-password", map[string]any{"type": "password", "value": "Carol-pw-1", "temporary": false})
	send("reset-password-temporary", http.MethodPut, "/users/"+id+"/reset-password", map[string]any{"type": "password", "value": "Carol-pw-2", "temporary": true})
	send("reset-password-empty", http.MethodPut, "/users/"+id+"/reset-password", map[string]any{"type": "password", "value": ""})
	if res := get("credentials", "/users/"+id+"/credentials"); res != nil {
		r.Set("credentials.count", len(res.List))
		if len(res.List) > 0 {
			cr, _ := res.List[0].(map[string]any)
			r.Set("credentials.fields", keysOf(cr))
			r.Set("credentials.type", cr["type"])
		}
	}
	if res := get("groups-of-user", "/users/"+id+"/groups"); res != nil {
		r.Set("groups-of-user.count", len(res.List))
	}
	send("execute-actions-email", http.MethodPut, "/users/"+id+"/execute-actions-email", []string{"UPDATE_PASSWORD"})
	send("send-verify-email", http.MethodPut, "/users/"+id+"/send-verify-email", nil)
	send("delete", http.MethodDelete, "/users/"+id, nil)
	get("after-delete", "/users/"+id)
	send("delete-again", http.MethodDelete, "/users/"+id, nil)
}

func valueOr(m map[string]any, k string) any {
	if v, ok := m[k]; ok {
		return v
	}
	return "<absent>"
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func usernames(list []any) []string {
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, str(m, "username"))
		}
	}
	return out
}

func adminRolesGroups(ctx context.Context, c *Client, r *Recorder) {
	tok := adminToken(ctx, c, r)
	if tok == "" {
		return
	}
	bob := findUser(ctx, c, tok, "bob")
	alice := findUser(ctx, c, tok, "alice")
	if bob == nil || alice == nil {
		r.Fail("users", &statusError{404})
		return
	}
	do := func(key, method, path string, body any) *Response {
		res, err := c.Do(ctx, method, c.AdminURL(path), body, bearer(tok))
		if err != nil {
			r.Fail(key, err)
			return nil
		}
		r.Set(key+".status", res.Status)
		return res
	}
	if res := do("realm-roles", http.MethodGet, "/roles", nil); res != nil {
		var names []string
		for _, e := range res.List {
			m, _ := e.(map[string]any)
			names = append(names, str(m, "name"))
			if str(m, "name") == "admin" {
				r.Shape("realm-roles.admin", m)
			}
		}
		r.Set("realm-roles.names", names)
	}
	var admin map[string]any
	if res := do("role-by-name", http.MethodGet, "/roles/admin", nil); res != nil {
		admin = res.JSON
		r.Set("role-by-name.description", valueOr(res.JSON, "description"))
	}
	do("role-unknown", http.MethodGet, "/roles/no-such-role", nil)
	if res := do("alice-realm-mappings", http.MethodGet, "/users/"+str(alice, "id")+"/role-mappings/realm", nil); res != nil {
		r.Set("alice-realm-mappings.names", roleNames(res.List))
	}
	if res := do("alice-effective", http.MethodGet, "/users/"+str(alice, "id")+"/role-mappings/realm/composite", nil); res != nil {
		r.Set("alice-effective.names", roleNames(res.List))
	}
	if res := do("bob-effective", http.MethodGet, "/users/"+str(bob, "id")+"/role-mappings/realm/composite", nil); res != nil {
		r.Set("bob-effective.names", roleNames(res.List))
	}
	if res := do("alice-all-mappings", http.MethodGet, "/users/"+str(alice, "id")+"/role-mappings", nil); res != nil && res.JSON != nil {
		r.Set("alice-all-mappings.fields", keysOf(res.JSON))
		if cm, ok := res.JSON["clientMappings"].(map[string]any); ok {
			r.Set("alice-all-mappings.clients", keysOf(cm))
			if app, ok := cm[appClient].(map[string]any); ok {
				r.Set("alice-all-mappings.conf-app.fields", keysOf(app))
			}
		}
	}
	if admin != nil {
		body := []any{map[string]any{"id": admin["id"], "name": "admin"}}
		do("grant", http.MethodPost, "/users/"+str(bob, "id")+"/role-mappings/realm", body)
		if res := do("after-grant", http.MethodGet, "/users/"+str(bob, "id")+"/role-mappings/realm", nil); res != nil {
			r.Set("after-grant.names", roleNames(res.List))
		}
		do("revoke", http.MethodDelete, "/users/"+str(bob, "id")+"/role-mappings/realm", body)
		if res := do("after-revoke", http.MethodGet, "/users/"+str(bob, "id")+"/role-mappings/realm", nil); res != nil {
			r.Set("after-revoke.names", roleNames(res.List))
		}
		do("grant-unknown-role", http.MethodPost, "/users/"+str(bob, "id")+"/role-mappings/realm", []any{map[string]any{"id": "00000000-0000-0000-0000-000000000000", "name": "nope"}})
	}
	if res := do("role-users", http.MethodGet, "/roles/admin/users", nil); res != nil {
		r.Set("role-users.usernames", usernames(res.List))
	}
	var staff string
	if res := do("groups", http.MethodGet, "/groups", nil); res != nil {
		for _, e := range res.List {
			m, _ := e.(map[string]any)
			if str(m, "name") == "staff" {
				staff = str(m, "id")
				r.Shape("groups.staff", m)
				r.Set("groups.staff.path", m["path"])
			}
		}
		r.Set("groups.count", len(res.List))
	}
	if res := do("alice-groups", http.MethodGet, "/users/"+str(alice, "id")+"/groups", nil); res != nil {
		var paths []string
		for _, e := range res.List {
			m, _ := e.(map[string]any)
			paths = append(paths, str(m, "path"))
		}
		r.Set("alice-groups.paths", paths)
	}
	if staff != "" {
		do("join", http.MethodPut, "/users/"+str(bob, "id")+"/groups/"+staff, nil)
		if res := do("members", http.MethodGet, "/groups/"+staff+"/members", nil); res != nil {
			r.Set("members.usernames", usernames(res.List))
		}
		do("leave", http.MethodDelete, "/users/"+str(bob, "id")+"/groups/"+staff, nil)
		if res := do("members-after", http.MethodGet, "/groups/"+staff+"/members", nil); res != nil {
			r.Set("members-after.usernames", usernames(res.List))
		}
	}
	if res := do("clients", http.MethodGet, "/clients?clientId="+appClient, nil); res != nil && len(res.List) == 1 {
		m, _ := res.List[0].(map[string]any)
		for _, k := range []string{"clientId", "publicClient", "serviceAccountsEnabled", "directAccessGrantsEnabled", "standardFlowEnabled", "fullScopeAllowed", "protocol", "bearerOnly", "enabled"} {
			r.Set("clients.conf-app."+k, valueOr(m, k))
		}
		if res := do("client-roles", http.MethodGet, "/clients/"+str(m, "id")+"/roles", nil); res != nil {
			r.Set("client-roles.names", roleNames(res.List))
		}
	}
}

func roleNames(list []any) []string {
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, str(m, "name"))
		}
	}
	return out
}

func adminSessions(ctx context.Context, c *Client, r *Recorder) {
	tok := adminToken(ctx, c, r)
	if tok == "" {
		return
	}
	bob := findUser(ctx, c, tok, "bob")
	if bob == nil {
		r.Fail("bob", &statusError{404})
		return
	}
	t := login(ctx, c, r, "bob", "scope", "openid")
	if t == nil {
		return
	}
	id := str(bob, "id")
	res, err := c.Do(ctx, http.MethodGet, c.AdminURL("/users/"+id+"/sessions"), nil, bearer(tok))
	if err != nil {
		r.Fail("sessions", err)
		return
	}
	r.Set("sessions.status", res.Status)
	r.Set("sessions.count", len(res.List))
	if len(res.List) > 0 {
		s, _ := res.List[0].(map[string]any)
		r.Shape("sessions.session", s)
		if cl, ok := s["clients"].(map[string]any); ok {
			var names []string
			for _, v := range cl {
				names = append(names, v.(string))
			}
			r.Set("sessions.session.clients", names)
		}
	}
	res, err = c.Do(ctx, http.MethodPost, c.AdminURL("/users/"+id+"/logout"), nil, bearer(tok))
	if err == nil {
		r.Set("logout.status", res.Status)
	}
	res, err = introspect(ctx, c, str(t, "access_token"), "", true)
	if err == nil {
		r.Set("after-logout.active", res.JSON["active"])
	}
	res, err = c.Token(ctx, url.Values{"grant_type": {"refresh_token"}, "client_id": {appClient}, "client_secret": {appSecret}, "refresh_token": {str(t, "refresh_token")}})
	if err == nil {
		r.Set("after-logout.refresh.status", res.Status)
		r.Set("after-logout.refresh.error", str(res.JSON, "error"))
	}
	res, err = c.Do(ctx, http.MethodGet, c.AdminURL("/users/"+id+"/sessions"), nil, bearer(tok))
	if err == nil {
		r.Set("after-logout.sessions.count", len(res.List))
	}
}
