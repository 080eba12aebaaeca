package keycloaktest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func userinfoURL(s *Server) string { return s.Issuer("demo") + "/protocol/openid-connect/userinfo" }

func introspectURL(s *Server) string {
	return s.Issuer("demo") + "/protocol/openid-connect/token/introspect"
}

func revokeURL(s *Server) string { return s.Issuer("demo") + "/protocol/openid-connect/revoke" }

func getWithBearer(t *testing.T, u, tok string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, req)
}

func TestUserinfo(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(cfg.Users, UserConfig{Username: "carol", Password: "carol"})
	s := NewServer(t, WithRealm(cfg))
	r := s.Realm("demo")
	login := passwordLogin(t, s, "alice", "alice", "openid")
	at := login["access_token"].(string)
	aliceID, _ := r.UserID("alice")

	resp := getWithBearer(t, userinfoURL(s), at)
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	info := resp.json(t)
	want := map[string]any{"sub": aliceID, "email": "alice@example.com", "email_verified": true,
		"preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell"}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("%s = %v, want %v", k, info[k], v)
		}
	}
	post := postForm(t, userinfoURL(s), url.Values{"access_token": {at}})
	if post.status != 200 || post.json(t)["sub"] != aliceID {
		t.Errorf("POST form: %d %s", post.status, post.body)
	}

	bob := passwordLogin(t, s, "bob", "bob", "openid")
	r.EndSession(bob["session_state"].(string))
	carol := passwordLogin(t, s, "carol", "carol", "openid")["access_token"].(string)
	if err := r.SetUserEnabled("carol", false); err != nil {
		t.Fatal(err)
	}
	// Keycloak 26.7 refuses with an empty body and the reason in the
	// challenge only (conformance: userinfo/no-token, userinfo/garbage,
	// userinfo/id-token, userinfo/refresh-token; the other reasons and the
	// 403 observed on Keycloak 26.7.3).
	const verification = `Bearer realm="demo", error="invalid_token", error_description="Token verification failed"`
	tests := []struct {
		name      string
		token     string
		status    int
		challenge string
	}{
		{"no token", "", 401, `Bearer realm="demo"`},
		{"garbage", "abc.def.ghi", 401, verification},
		{"id token", login["id_token"].(string), 401, verification},
		{"refresh token", login["refresh_token"].(string), 401, verification},
		{"expired", r.MustToken(t, "alice", DemoClientID, WithExpired()), 401, verification},
		{"unknown key", r.MustToken(t, "alice", DemoClientID, WithUnknownKey()), 401, verification},
		{"unsigned", r.MustToken(t, "alice", DemoClientID, WithUnsigned()), 401, verification},
		{"other issuer", r.MustToken(t, "alice", DemoClientID, WithIssuer("http://evil/realms/demo")), 401, verification},
		{"ended session", bob["access_token"].(string), 401, `Bearer realm="demo", error="invalid_token", error_description="user_session_not_found"`},
		{"disabled user", carol, 401, `Bearer realm="demo", error="invalid_token", error_description="User disabled"`},
		{"no openid scope", passwordLogin(t, s, "alice", "alice", "")["access_token"].(string), 403,
			`Bearer realm="demo", error="insufficient_scope", error_description="Missing openid scope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := getWithBearer(t, userinfoURL(s), tc.token)
			if resp.status != tc.status || len(resp.body) != 0 {
				t.Errorf("got %d %q", resp.status, resp.body)
			}
			if h := resp.header.Get("WWW-Authenticate"); h != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", h, tc.challenge)
			}
			if ct := resp.header.Get("Content-Type"); ct != "text/plain;charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(cfg.Users, UserConfig{Username: "carol", Password: "carol"})
	cfg.Clients = append(cfg.Clients, ClientConfig{ClientID: "gateway", Secret: "g",
		Attributes: map[string]string{clientAttrIntrospectWithoutAudience: "true"}})
	s := NewServer(t, WithRealm(cfg))
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	introspectHint := func(t *testing.T, tok, hint string) response {
		t.Helper()
		form := url.Values{"token": {tok}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		return postForm(t, introspectURL(s), form, basic)
	}
	introspect := func(t *testing.T, tok string) response {
		t.Helper()
		return introspectHint(t, tok, "")
	}

	login := passwordLogin(t, s, "alice", "alice", "openid")
	resp := introspect(t, login["access_token"].(string))
	if resp.status != 200 {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	active := resp.json(t)
	want := map[string]any{"active": true, "client_id": "cloakroom", "username": "alice", "token_type": "Bearer",
		"typ": "Bearer", "sid": login["session_state"], "iss": s.Issuer("demo")}
	for k, v := range want {
		if active[k] != v {
			t.Errorf("%s = %v, want %v", k, active[k], v)
		}
	}
	// Keycloak 26.7 re-maps the token from its session: a refresh token
	// (with the refresh_token hint) or an ID token is answered with the
	// claims of the client's scopes, without at_hash, prov or aud_x
	// (conformance: introspection/refresh.body, introspection/id.body).
	rt := introspectHint(t, login["refresh_token"].(string), "refresh_token").json(t)
	if rt["active"] != true || rt["token_type"] != "Refresh" || rt["scope"] != decode(t, login["refresh_token"].(string)).claims["scope"] {
		t.Errorf("refresh token: %v", rt)
	}
	id := introspect(t, login["id_token"].(string)).json(t)
	if id["active"] != true || id["token_type"] != "ID" || id["username"] != "alice" {
		t.Errorf("id token: %v", id)
	}
	for name, answer := range map[string]map[string]any{"refresh": rt, "id": id} {
		for _, k := range []string{"realm_access", "resource_access", "allowed-origins", "acr", "email", "preferred_username", "sid", "sub"} {
			if _, ok := answer[k]; !ok {
				t.Errorf("%s: %s missing from %v", name, k, answer)
			}
		}
		for _, k := range []string{"at_hash", "prov", "aud_x", "auth_time"} {
			if _, ok := answer[k]; ok {
				t.Errorf("%s: %s in %v", name, k, answer)
			}
		}
	}
	if _, ok := id["scope"]; ok {
		t.Errorf("id token answer has a scope: %v", id)
	}
	// The aud of the answer is the token's, joined by the mapped audiences.
	if got := aud(id); !slices.Equal(got, []string{"cloakroom", "account"}) {
		t.Errorf("id token answer aud %v", got)
	}

	// The access_token provider (the default) wants the introspecting
	// client in aud; azp does not count (conformance: introspection/access;
	// Keycloak logs "Client 'conf-app' is not in the token audience"). A
	// refresh token's aud is the issuer: inactive without the hint.
	pub := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"},
		"client_id": {DemoPublicClientID}, "scope": {"openid"}}).json(t)
	own := r.MustToken(t, "alice", DemoClientID, WithAudience("account"))
	for name, tok := range map[string]string{
		"refresh token without hint":           login["refresh_token"].(string),
		"another client's token, aud lacks me": pub["access_token"].(string),
		"own token, aud lacks me":              own,
	} {
		if b := introspect(t, tok); string(b.body) != `{"active":false}` {
			t.Errorf("%s: %s", name, b.body)
		}
	}
	// A client allowed to skip the audience check sees them.
	if b := postForm(t, introspectURL(s), url.Values{"token": {own}}, "gateway:g").json(t); b["active"] != true || b["client_id"] != DemoClientID {
		t.Errorf("without audience check: %v", b)
	}
	// The refresh_token provider answers only for refresh tokens of the
	// introspecting client.
	for name, tok := range map[string]string{
		"access token":             login["access_token"].(string),
		"another client's refresh": pub["refresh_token"].(string),
	} {
		if b := introspectHint(t, tok, "refresh_token"); string(b.body) != `{"active":false}` {
			t.Errorf("refresh hint, %s: %s", name, b.body)
		}
	}
	if b := introspectHint(t, login["access_token"].(string), "access_token").json(t); b["active"] != true {
		t.Errorf("access_token hint: %v", b)
	}

	carol := r.MustToken(t, "carol", DemoClientID)
	if err := r.SetUserEnabled("carol", false); err != nil {
		t.Fatal(err)
	}
	ended := passwordLogin(t, s, "bob", "bob", "")
	r.EndSession(ended["session_state"].(string))
	revoked := passwordLogin(t, s, "alice", "alice", "")["access_token"].(string)
	if resp := postForm(t, revokeURL(s), url.Values{"token": {revoked}}, basic); resp.status != 200 {
		t.Fatalf("revoke: %d %s", resp.status, resp.body)
	}
	deletedTok := r.MustToken(t, "bob", DemoClientID)
	if err := r.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	inactive := map[string]string{
		"garbage":        "garbage",
		"expired":        r.MustToken(t, "alice", DemoClientID, WithExpired()),
		"disabled user":  carol,
		"ended session":  ended["access_token"].(string),
		"ended refresh":  ended["refresh_token"].(string),
		"revoked jti":    revoked,
		"deleted user":   deletedTok,
		"unknown key":    r.MustToken(t, "alice", DemoClientID, WithUnknownKey()),
		"key confusion":  r.MustToken(t, "alice", DemoClientID, WithKeyConfusion(PEM)),
		"unsigned":       r.MustToken(t, "alice", DemoClientID, WithUnsigned()),
		"other issuer":   r.MustToken(t, "alice", DemoClientID, WithIssuer("https://elsewhere/realms/demo")),
		"logout token":   r.MustToken(t, "alice", DemoClientID, WithKind(LogoutToken)),
		"unknown kid":    r.MustToken(t, "alice", DemoClientID, WithKeyID("nope")),
		"wrong alg kid":  r.MustToken(t, "alice", DemoClientID, WithHeader("alg", "PS256")),
		"tampered claim": tamper(r.MustToken(t, "alice", DemoClientID)),
	}
	for name, tok := range inactive {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp := introspect(t, tok)
			if resp.status != 200 || string(resp.body) != `{"active":false}` {
				t.Errorf("got %d %s", resp.status, resp.body)
			}
		})
	}

	// Client authentication failures are 401 invalid_client (conformance:
	// introspection/no-client-auth; descriptions observed on 26.7.3).
	errs := []struct {
		name   string
		form   url.Values
		basic  string
		status int
		code   string
		desc   string
	}{
		{"public client", url.Values{"token": {"x"}, "client_id": {DemoPublicClientID}}, "", 403, "invalid_request", "Client not allowed."},
		{"bad secret", url.Values{"token": {"x"}}, DemoClientID + ":bad", 401, "invalid_client", "Client authentication failed."},
		{"no client", url.Values{"token": {"x"}}, "", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"unknown client", url.Values{"token": {"x"}}, "ghost:x", 401, "invalid_client", "Invalid client or Invalid client credentials"},
		{"missing token", url.Values{}, basic, 400, "invalid_request", "Token not provided."},
		{"duplicated token", url.Values{"token": {"a", "b"}}, basic, 400, "invalid_request", "duplicated parameter"},
		{"id_token hint", url.Values{"token": {"x"}, "token_type_hint": {"id_token"}}, basic, 400, "invalid_request", "Unsupported token type."},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := postForm(t, introspectURL(s), tc.form, tc.basic)
			if b := resp.json(t); resp.status != tc.status || b["error"] != tc.code || b["error_description"] != tc.desc {
				t.Errorf("got %d %s", resp.status, resp.body)
			}
		})
	}
}

// tamper flips a character of the payload, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDemoRealm())
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret

	login := passwordLogin(t, s, "alice", "alice", "")
	resp := postForm(t, revokeURL(s), url.Values{"token": {login["refresh_token"].(string)}}, basic)
	if resp.status != 200 || len(resp.body) != 0 {
		t.Fatalf("revoke refresh: %d %s", resp.status, resp.body)
	}
	if b := postForm(t, tokenURL(s, "demo"), refreshForm(login["refresh_token"].(string)), basic).json(t); b["error_description"] != "Session not active" {
		t.Errorf("refresh after revocation: %v", b)
	}
	if ids := r.SessionIDs("alice"); len(ids) != 0 {
		t.Errorf("sessions after revoking the only client: %v", ids)
	}
	if b := postForm(t, introspectURL(s), url.Values{"token": {login["access_token"].(string)}}, basic); string(b.body) != `{"active":false}` {
		t.Errorf("access token of the revoked session: %s", b.body)
	}

	pub := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}, "client_id": {DemoPublicClientID}}).json(t)
	tests := []struct {
		name   string
		form   url.Values
		basic  string
		status int
		body   string
	}{
		{"garbage", url.Values{"token": {"garbage"}}, basic, 200, `{"error":"invalid_token","error_description":"Invalid token"}`},
		{"other client", url.Values{"token": {pub["access_token"].(string)}}, basic, 400, `{"error":"invalid_request","error_description":"Unmatching clients"}`},
		{"id token", url.Values{"token": {r.MustToken(t, "alice", DemoClientID, WithKind(IDToken))}}, basic, 400, `{"error":"unsupported_token_type","error_description":"Unsupported token type"}`},
		{"missing token", url.Values{}, basic, 400, `{"error":"invalid_request","error_description":"Token not provided"}`},
		// A known client with a wrong secret is unauthorized_client, no
		// client at all invalid_client, both 401 (conformance:
		// revocation/no-client-auth; observed on Keycloak 26.7.3).
		{"bad client", url.Values{"token": {"x"}}, DemoClientID + ":nope", 401, `{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}`},
		{"no client", url.Values{"token": {"x"}}, "", 401, `{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}`},
		{"public client own token", url.Values{"token": {pub["access_token"].(string)}, "client_id": {DemoPublicClientID}}, "", 200, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := postForm(t, revokeURL(s), tc.form, tc.basic)
			if resp.status != tc.status || string(resp.body) != tc.body {
				t.Errorf("got %d %s, want %d %s", resp.status, resp.body, tc.status, tc.body)
			}
		})
	}
}

func TestDisabledRealm(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Disabled = true
	s := NewServer(t, WithRealm(cfg))
	resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"client_credentials"}}, DemoClientID+":"+DemoClientSecret)
	if b := resp.json(t); resp.status != 403 || b["error_description"] != "Realm not enabled" {
		t.Errorf("got %d %s", resp.status, resp.body)
	}
}
