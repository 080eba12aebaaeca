package keycloaktest

import (
	"net/http"
	"net/url"
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
	s := NewServer(t, WithDemoRealm())
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
	tests := []struct {
		name   string
		token  string
		status int
		code   string
		desc   string
	}{
		{"no token", "", 400, "invalid_request", "Token not provided"},
		{"garbage", "abc.def.ghi", 401, "invalid_token", "Token verification failed"},
		{"id token", login["id_token"].(string), 401, "invalid_token", "Token verification failed"},
		{"refresh token", login["refresh_token"].(string), 401, "invalid_token", "Token verification failed"},
		{"expired", r.MustToken(t, "alice", DemoClientID, WithExpired()), 401, "invalid_token", "Token verification failed"},
		{"unknown key", r.MustToken(t, "alice", DemoClientID, WithUnknownKey()), 401, "invalid_token", "Token verification failed"},
		{"unsigned", r.MustToken(t, "alice", DemoClientID, WithUnsigned()), 401, "invalid_token", "Token verification failed"},
		{"other issuer", r.MustToken(t, "alice", DemoClientID, WithIssuer("http://evil/realms/demo")), 401, "invalid_token", "Token verification failed"},
		{"ended session", bob["access_token"].(string), 401, "invalid_token", "User session not found or doesn't have client attached on it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := getWithBearer(t, userinfoURL(s), tc.token)
			b := resp.json(t)
			if resp.status != tc.status || b["error"] != tc.code || b["error_description"] != tc.desc {
				t.Errorf("got %d %s", resp.status, resp.body)
			}
			if tc.status == 401 {
				h := resp.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(h, `Bearer realm="demo"`) || !strings.Contains(h, `error="`+tc.code+`"`) {
					t.Errorf("WWW-Authenticate %q", h)
				}
			}
		})
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	cfg := DemoRealm(DemoClientSecret)
	cfg.Users = append(cfg.Users, UserConfig{Username: "carol", Password: "carol"})
	s := NewServer(t, WithRealm(cfg))
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	introspect := func(t *testing.T, tok string) response {
		t.Helper()
		return postForm(t, introspectURL(s), url.Values{"token": {tok}}, basic)
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
	if rt := introspect(t, login["refresh_token"].(string)).json(t); rt["active"] != true || rt["token_type"] != "Refresh" {
		t.Errorf("refresh token: %v", rt)
	}
	if id := introspect(t, login["id_token"].(string)).json(t); id["active"] != true || id["token_type"] != "ID" {
		t.Errorf("id token: %v", id)
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

	errs := []struct {
		name   string
		form   url.Values
		basic  string
		status int
		desc   string
	}{
		{"public client", url.Values{"token": {"x"}, "client_id": {DemoPublicClientID}}, "", 403, "Client not allowed."},
		{"bad secret", url.Values{"token": {"x"}}, DemoClientID + ":bad", 401, "Authentication failed."},
		{"no client", url.Values{"token": {"x"}}, "", 401, "Authentication failed."},
		{"missing token", url.Values{}, basic, 400, "Token not provided."},
		{"duplicated token", url.Values{"token": {"a", "b"}}, basic, 400, "duplicated parameter"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := postForm(t, introspectURL(s), tc.form, tc.basic)
			if b := resp.json(t); resp.status != tc.status || b["error"] != "invalid_request" || b["error_description"] != tc.desc {
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
		{"bad client", url.Values{"token": {"x"}}, DemoClientID + ":nope", 401, `{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}`},
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
