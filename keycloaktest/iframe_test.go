package keycloaktest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestLoginStatusIframe(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) {
		c.Clients = append(c.Clients, ClientConfig{ClientID: "any", Public: true, StandardFlow: true, WebOrigins: []string{"*"}})
	})
	oidc := s.Issuer("demo") + "/protocol/openid-connect"
	page := get(t, oidc+"/login-status-iframe.html")
	if page.status != 200 || !strings.Contains(string(page.body), "KEYCLOAK_SESSION") || !strings.Contains(string(page.body), "/init?client_id=") {
		t.Fatalf("iframe: %d\n%s", page.status, page.body)
	}
	if cc := page.header.Get("Cache-Control"); cc != "no-cache, must-revalidate, no-transform, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if p := get(t, oidc+"/login-status-iframe.html?version=1"); !strings.Contains(p.header.Get("Cache-Control"), "max-age") {
		t.Errorf("versioned iframe Cache-Control %q", p.header.Get("Cache-Control"))
	}
	cases := []struct {
		client, origin string
		want           int
	}{
		{DemoClientID, "http://127.0.0.1:8000", 204},
		{DemoClientID, "http://localhost:8000", 204},
		{DemoClientID, "http://evil.example", 403},
		{"ghost", "http://127.0.0.1:8000", 403},
		{DemoClientID, "", 403},
		{"", "", 403},
		{"any", "http://anything.example", 204},
	}
	for _, tc := range cases {
		q := url.Values{"client_id": {tc.client}, "origin": {tc.origin}}
		if got := get(t, oidc+"/login-status-iframe.html/init?"+q.Encode()).status; got != tc.want {
			t.Errorf("init %s %s: %d, want %d", tc.client, tc.origin, got, tc.want)
		}
	}
	step1 := get(t, oidc+"/3p-cookies/step1.html")
	step2 := get(t, oidc+"/3p-cookies/step2.html")
	if !strings.Contains(string(step1.body), "KEYCLOAK_3P_COOKIE") || !strings.Contains(string(step1.body), "step2.html") {
		t.Errorf("step1:\n%s", step1.body)
	}
	if !strings.Contains(string(step2.body), `"supported"`) || !strings.Contains(string(step2.body), `"unsupported"`) {
		t.Errorf("step2:\n%s", step2.body)
	}
}

func TestDiscoveryBrowserSide(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, func(c *RealmConfig) { c.ACRLoA = map[string]int{"gold": 2, "silver": 1} })
	doc := get(t, s.Issuer("demo")+"/.well-known/openid-configuration").json(t)
	oidc := s.Issuer("demo") + "/protocol/openid-connect"
	for k, v := range map[string]any{
		"authorization_endpoint": oidc + "/auth", "end_session_endpoint": oidc + "/logout",
		"check_session_iframe": oidc + "/login-status-iframe.html", "authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported": true, "backchannel_logout_session_supported": true, "frontchannel_logout_supported": true,
	} {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	has := func(key string, vals ...string) {
		l, _ := doc[key].([]any)
		for _, v := range vals {
			if !slices.Contains(l, any(v)) {
				t.Errorf("%s lacks %s: %v", key, v, l)
			}
		}
	}
	has("code_challenge_methods_supported", "plain", "S256")
	has("response_modes_supported", "query", "fragment", "form_post")
	has("grant_types_supported", "authorization_code")
	has("acr_values_supported", "gold", "silver", "0", "1")
	has("prompt_values_supported", "none", "login")
}

func TestRealmFileBrowserSettings(t *testing.T) {
	t.Parallel()
	s, err := New(WithRealm(RealmConfig{
		Name: "r", RegistrationAllowed: true, ACRLoA: map[string]int{"gold": 2},
		Users: []UserConfig{{Username: "a", Password: "a", TOTPSecret: strings.ToLower(aliceTOTP)}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.Realm("r").Export()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"registrationAllowed": true`, `"acr.loa.map": "{\"gold\":2}"`, `"type": "otp"`, `\"secretEncoding\":\"BASE32\"`, `\"value\":\"` + aliceTOTP + `\"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("export lacks %s", want)
		}
	}
	cfg, err := ParseRealm(data)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.RegistrationAllowed || cfg.ACRLoA["gold"] != 2 || cfg.Users[0].TOTPSecret != aliceTOTP || cfg.Users[0].Password != "a" {
		t.Errorf("round trip: %+v", cfg)
	}

	// Keycloak's own OTP credentials (no secretEncoding) use the secret's
	// bytes as the key.
	raw := `{"realm":"k","users":[{"username":"u","enabled":true,"credentials":[{"type":"otp","userLabel":"phone",
		"secretData":"{\"value\":\"12345678901234567890\"}",
		"credentialData":"{\"subType\":\"totp\",\"digits\":6,\"counter\":0,\"period\":30,\"algorithm\":\"HmacSHA1\"}"}]}]}`
	cfg, err = ParseRealm([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Users[0].TOTPSecret != encodeTOTPKey([]byte("12345678901234567890")) {
		t.Errorf("raw secret %q", cfg.Users[0].TOTPSecret)
	}
	for _, bad := range []RealmConfig{
		{Name: "r", ACRLoA: map[string]int{"": 1}},
		{Name: "r", ACRLoA: map[string]int{"gold": -1}},
		{Name: "r", ACRLoA: map[string]int{"a b": 1}},
	} {
		if _, err := New(WithRealm(bad)); err == nil {
			t.Errorf("accepted %+v", bad.ACRLoA)
		}
	}
}

func TestBrowserHeaders(t *testing.T) {
	t.Parallel()
	s := browserServer(t, nil, nil)
	resp := newBrowser(t).get(authURL(s, "demo", authParams()))
	if resp.header.Get("Cache-Control") == "" || resp.header.Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Errorf("headers %v", resp.header)
	}
	var authCookie *http.Cookie
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		if c.Name == cookieAuthSession {
			authCookie = c
		}
	}
	if authCookie == nil || !authCookie.HttpOnly || authCookie.Path != "/realms/demo/" {
		t.Errorf("AUTH_SESSION_ID %+v", authCookie)
	}
	// Only opaque codes in the form URL: no username, password or secret.
	action := formAction(t, resp.body, "kc-form-login")
	u, _ := url.Parse(action)
	for k := range u.Query() {
		if !slices.Contains([]string{"session_code", "execution", "client_id", "tab_id"}, k) {
			t.Errorf("unexpected form URL parameter %s", k)
		}
	}
}
