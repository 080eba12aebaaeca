package keycloaktest

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTOTPCodeVectors(t *testing.T) {
	t.Parallel()
	// RFC 6238 appendix B, SHA-1 seed "12345678901234567890", last six of
	// the eight-digit codes.
	secret := encodeTOTPKey([]byte("12345678901234567890"))
	cases := []struct {
		unix int64
		want string
	}{
		{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
		{1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
	}
	for _, tc := range cases {
		got, err := TOTPCode(secret, time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("T=%d: %q %v, want %q", tc.unix, got, err, tc.want)
		}
	}
	// Apps accept lower case, spaces and padding.
	loose := strings.ToLower(groupedSecret(secret)) + "===="
	if got, _ := TOTPCode(loose, time.Unix(59, 0)); got != "287082" {
		t.Errorf("loose secret: %q", got)
	}
	if _, err := TOTPCode("not base32!", time.Now()); err == nil {
		t.Error("bad secret accepted")
	}
	if _, err := New(WithRealm(RealmConfig{Name: "r", Users: []UserConfig{{Username: "a", TOTPSecret: "1!"}}})); err == nil {
		t.Error("user with a bad TOTP secret accepted")
	}
	// The window is one step either side.
	now := time.Unix(1_700_000_000, 0)
	for d, ok := range map[time.Duration]bool{-30 * time.Second: true, 0: true, 30 * time.Second: true, 61 * time.Second: false, -61 * time.Second: false} {
		code, _ := TOTPCode(secret, now.Add(d))
		if _, got := checkTOTP(secret, code, now); got != ok {
			t.Errorf("offset %v: accepted %v", d, got)
		}
	}
}

const aliceTOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

func stepUpServer(t *testing.T, clock *fakeClock) *Server {
	return browserServer(t, clock, func(c *RealmConfig) {
		c.ACRLoA = map[string]int{"silver": 1, "gold": 2, "platinum": 3}
		c.Users[0].TOTPSecret = aliceTOTP
	})
}

func essential(acr string) string {
	return `{"id_token":{"acr":{"essential":true,"values":["` + acr + `"]}}}`
}

func TestTOTPStepUp(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := stepUpServer(t, clock)
	b := newBrowser(t)

	// No level requested: password only, acr "1".
	first := b.login(s, "demo", authParams(), "alice", "alice")
	if c := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", first))["id_token"].(string)).claims; c["acr"] != "1" {
		t.Errorf("password login acr %v", c["acr"])
	}

	// Step-up: the SSO session has level 1; gold asks only for the OTP.
	page := b.get(authURL(s, "demo", authParams("claims", essential("gold"))))
	if !hasForm(page.body, "kc-otp-login-form") || hasForm(page.body, "kc-form-login") {
		t.Fatalf("step-up page:\n%s", page.body)
	}
	for _, want := range []string{`id="otp" name="otp"`, `name="login" id="kc-login"`} {
		if !strings.Contains(string(page.body), want) {
			t.Errorf("OTP page lacks %s", want)
		}
	}
	wrong := b.post(formAction(t, page.body, "kc-otp-login-form"), url.Values{"otp": {"000000"}})
	if wrong.status != http.StatusOK || !hasForm(wrong.body, "kc-otp-login-form") {
		t.Fatalf("wrong code: %d", wrong.status)
	}
	pageHas(t, wrong, msgInvalidTOTP)
	code, _ := TOTPCode(aliceTOTP, clock.Now())
	u := redirectTo(t, b.post(formAction(t, wrong.body, "kc-otp-login-form"), url.Values{"otp": {code}}))
	if u.Query().Get("session_state") != first.Query().Get("session_state") {
		t.Errorf("step-up started a new session")
	}
	tok := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))
	if c := decode(t, tok["id_token"].(string)).claims; c["acr"] != "gold" {
		t.Errorf("stepped-up id token acr %v", c["acr"])
	}
	if c := decode(t, tok["access_token"].(string)).claims; c["acr"] != "gold" {
		t.Errorf("stepped-up access token acr %v", c["acr"])
	}

	// The session now has level 2: gold again needs nothing, and prompt=none
	// works.
	again := redirectTo(t, b.get(authURL(s, "demo", authParams("claims", essential("gold"), "prompt", "none"))))
	if c := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", again))["id_token"].(string)).claims; c["acr"] != "gold" {
		t.Errorf("SSO at gold: acr %v", c["acr"])
	}
	// silver (level 1) from the level-2 session.
	silver := redirectTo(t, b.get(authURL(s, "demo", authParams("acr_values", "silver"))))
	if c := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", silver))["id_token"].(string)).claims; c["acr"] != "silver" {
		t.Errorf("SSO at silver: acr %v", c["acr"])
	}

	// A fresh browser asking for gold (non-essential acr_values): password
	// then OTP. The code used above cannot be used again.
	fresh := newBrowser(t)
	login := fresh.get(authURL(s, "demo", authParams("acr_values", "gold")))
	otpPage := fresh.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
	if !hasForm(otpPage.body, "kc-otp-login-form") {
		t.Fatalf("no OTP page after the password:\n%s", otpPage.body)
	}
	reused := fresh.post(formAction(t, otpPage.body, "kc-otp-login-form"), url.Values{"otp": {code}})
	pageHas(t, reused, msgInvalidTOTP)
	clock.Advance(30 * time.Second)
	next, _ := TOTPCode(aliceTOTP, clock.Now())
	u2 := redirectTo(t, fresh.post(formAction(t, reused.body, "kc-otp-login-form"), url.Values{"otp": {next}}))
	if c := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", u2))["id_token"].(string)).claims; c["acr"] != "gold" {
		t.Errorf("fresh gold login acr %v", c["acr"])
	}

	// prompt=none cannot ask for the OTP.
	pn := newBrowser(t)
	pn.login(s, "demo", authParams(), "alice", "alice")
	if u := redirectTo(t, pn.get(authURL(s, "demo", authParams("claims", essential("gold"), "prompt", "none")))); u.Query().Get("error") != "interaction_required" {
		t.Errorf("prompt=none step-up: %s", u)
	}
}

func TestStepUpUnreachable(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := stepUpServer(t, clock)

	// bob has no OTP: an essential gold makes him set one up (Keycloak's
	// "setup required" for the OTP authenticator), then he has level 2.
	b := newBrowser(t)
	login := b.get(authURL(s, "demo", authParams("claims", essential("gold"))))
	setup := b.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"bob"}, "password": {"bob"}})
	if !hasForm(setup.body, "kc-totp-settings-form") {
		t.Fatalf("no TOTP setup page:\n%s", setup.body)
	}
	secret := inputValue(setup.body, "totpSecret")
	shown := regexp.MustCompile(`<span id="kc-totp-secret-key">([^<]+)</span>`).FindSubmatch(setup.body)
	if secret == "" || shown == nil || strings.ReplaceAll(string(shown[1]), " ", "") != secret {
		t.Fatalf("secret %q shown %q", secret, shown)
	}
	bad := b.post(formAction(t, setup.body, "kc-totp-settings-form"), url.Values{"totp": {"123"}, "totpSecret": {secret}})
	pageHas(t, bad, msgInvalidTOTP)
	code, _ := TOTPCode(secret, clock.Now())
	u := redirectTo(t, b.post(formAction(t, bad.body, "kc-totp-settings-form"), url.Values{"totp": {code}, "totpSecret": {secret}}))
	if c := decode(t, mustExchange(t, s, "demo", codeOf(t, s, "demo", u))["id_token"].(string)).claims; c["acr"] != "gold" {
		t.Errorf("after setup acr %v", c["acr"])
	}
	export, _ := s.Realm("demo").Export()
	if !strings.Contains(string(export), `\"value\":\"`+secret+`\"`) {
		t.Error("configured secret not in the export")
	}

	// Non-essential gold for a user without OTP: level 1, named by number.
	carolSrv := browserServer(t, clock, func(c *RealmConfig) { c.ACRLoA = map[string]int{"gold": 2} })
	nb := newBrowser(t)
	u2 := nb.login(carolSrv, "demo", authParams("acr_values", "gold"), "bob", "bob")
	if c := decode(t, mustExchange(t, carolSrv, "demo", codeOf(t, carolSrv, "demo", u2))["id_token"].(string)).claims; c["acr"] != "1" {
		t.Errorf("unreached optional level: acr %v", c["acr"])
	}

	// An essential level above what any factor gives fails after the
	// factors, with Keycloak's error page.
	pb := newBrowser(t)
	login = pb.get(authURL(s, "demo", authParams("claims", essential("platinum"))))
	otpPage := pb.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"alice"}, "password": {"alice"}})
	clock.Advance(time.Minute)
	c2, _ := TOTPCode(aliceTOTP, clock.Now())
	fail := pb.post(formAction(t, otpPage.body, "kc-otp-login-form"), url.Values{"otp": {c2}})
	if fail.status != http.StatusBadRequest {
		t.Fatalf("platinum: %d\n%s", fail.status, fail.body)
	}
	pageHas(t, fail, msgACRNotFulfilled)
}

func TestKCActionUpdatePassword(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := browserServer(t, clock, nil)
	b := newBrowser(t)
	b.login(s, "demo", authParams(), "bob", "bob")

	page := b.get(authURL(s, "demo", authParams("kc_action", "UPDATE_PASSWORD")))
	if !hasForm(page.body, "kc-passwd-update-form") || !strings.Contains(string(page.body), `name="cancel-aia" value="true"`) {
		t.Fatalf("AIA page:\n%s", page.body)
	}
	action := formAction(t, page.body, "kc-passwd-update-form")
	mismatch := b.post(action, url.Values{"password-new": {"n3w"}, "password-confirm": {"other"}})
	pageHas(t, mismatch, msgPasswordMismatch)
	u := redirectTo(t, b.post(formAction(t, mismatch.body, "kc-passwd-update-form"), url.Values{"password-new": {"n3w"}, "password-confirm": {"n3w"}}))
	q := u.Query()
	if q.Get("kc_action_status") != "success" || q.Get("kc_action") != "UPDATE_PASSWORD" || q.Get("code") == "" || q.Get("state") != "st-1" {
		t.Errorf("AIA redirect %s", u)
	}
	if resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"n3w"}}, DemoClientID+":"+DemoClientSecret); resp.status != 200 {
		t.Errorf("new password refused: %s", resp.body)
	}

	// Cancel: status cancelled, no code, still logged in.
	page = b.get(authURL(s, "demo", authParams("kc_action", "UPDATE_PASSWORD")))
	cancel := redirectTo(t, b.post(formAction(t, page.body, "kc-passwd-update-form"), url.Values{"cancel-aia": {"true"}}))
	if q := cancel.Query(); q.Get("kc_action_status") != "cancelled" || q.Get("kc_action") != "UPDATE_PASSWORD" || q.Get("code") != "" {
		t.Errorf("cancel redirect %s", cancel)
	}
	codeOf(t, s, "demo", redirectTo(t, b.get(authURL(s, "demo", authParams("prompt", "none")))))

	// An old authentication makes UPDATE_PASSWORD ask for the password first.
	clock.Advance(6 * time.Minute)
	page = b.get(authURL(s, "demo", authParams("kc_action", "UPDATE_PASSWORD")))
	if !hasForm(page.body, "kc-form-login") {
		t.Fatalf("no re-authentication:\n%s", page.body)
	}
	next := b.post(formAction(t, page.body, "kc-form-login"), url.Values{"password": {"n3w"}})
	if !hasForm(next.body, "kc-passwd-update-form") {
		t.Fatalf("after re-authentication:\n%s", next.body)
	}

	// Unknown actions complete the login with status error.
	unknown := redirectTo(t, b.get(authURL(s, "demo", authParams("kc_action", "NO_SUCH_ACTION"))))
	if unknown.Query().Get("kc_action_status") != "error" {
		t.Errorf("unknown kc_action: %s", unknown)
	}
}

func TestRequiredActionsAtLogin(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := browserServer(t, clock, func(c *RealmConfig) {
		c.Users = append(c.Users, UserConfig{Username: "nina", Password: "nina", Email: "nina@example.com",
			RequiredActions: []string{"UPDATE_PASSWORD", "UPDATE_PROFILE", "VERIFY_EMAIL", "CONFIGURE_TOTP", "TERMS_AND_CONDITIONS"}})
	})
	r := s.Realm("demo")
	basic := DemoClientID + ":" + DemoClientSecret
	pw := func(p string) response {
		return postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"nina"}, "password": {p}}, basic)
	}
	if b := pw("nina").json(t); b["error_description"] != "Account is not fully set up" {
		t.Fatalf("password grant with pending actions: %v", b)
	}

	b := newBrowser(t)
	login := b.get(authURL(s, "demo", authParams()))
	p := b.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"nina"}, "password": {"nina"}})
	if !hasForm(p.body, "kc-passwd-update-form") || strings.Contains(string(p.body), "cancel-aia") {
		t.Fatalf("UPDATE_PASSWORD page:\n%s", p.body)
	}
	p = b.post(formAction(t, p.body, "kc-passwd-update-form"), url.Values{"password-new": {"secret2"}, "password-confirm": {"secret2"}})

	if !hasForm(p.body, "kc-update-profile-form") {
		t.Fatalf("UPDATE_PROFILE page:\n%s", p.body)
	}
	if inputValue(p.body, "email") != "nina@example.com" {
		t.Errorf("profile form not prefilled")
	}
	missing := b.post(formAction(t, p.body, "kc-update-profile-form"), url.Values{"email": {"alice@example.com"}, "firstName": {""}, "lastName": {"Simone"}})
	pageHas(t, missing, msgMissingFirstName)
	pageHas(t, missing, msgEmailExists)
	p = b.post(formAction(t, missing.body, "kc-update-profile-form"), url.Values{"email": {"nina@example.com"}, "firstName": {"Nina"}, "lastName": {"Simone"}})

	if !hasForm(p.body, "kc-verify-email-form") {
		t.Fatalf("VERIFY_EMAIL page:\n%s", p.body)
	}
	out := r.Outbox()
	if len(out) != 1 || out[0].To != "nina@example.com" || out[0].Link == "" || !strings.Contains(out[0].Body, out[0].Link) {
		t.Fatalf("outbox %+v", out)
	}
	p = b.post(formAction(t, p.body, "kc-verify-email-form"), url.Values{"continue": {"Continue"}})

	if !hasForm(p.body, "kc-totp-settings-form") {
		t.Fatalf("CONFIGURE_TOTP page:\n%s", p.body)
	}
	code, _ := TOTPCode(inputValue(p.body, "totpSecret"), clock.Now())
	p = b.post(formAction(t, p.body, "kc-totp-settings-form"), url.Values{"totp": {code}})

	if !hasForm(p.body, "kc-terms-form") {
		t.Fatalf("TERMS_AND_CONDITIONS page:\n%s", p.body)
	}
	u := redirectTo(t, b.post(formAction(t, p.body, "kc-terms-form"), url.Values{"accept": {"Accept"}}))
	tok := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))
	if c := decode(t, tok["id_token"].(string)).claims; c["given_name"] != "Nina" || c["email_verified"] != true {
		t.Errorf("claims after the actions: %v", c)
	}
	if resp := pw("secret2"); resp.status != 200 {
		t.Errorf("password grant after the actions: %s", resp.body)
	}
	exported, _ := r.Export()
	if !strings.Contains(string(exported), `"username": "nina"`) || !strings.Contains(string(exported), `"type": "otp"`) {
		t.Errorf("export lacks nina's OTP credential")
	}

	// The verification link works by itself too.
	_, err := r.AddUser(UserConfig{Username: "otto", Password: "otto", Email: "otto@example.com", RequiredActions: []string{"VERIFY_EMAIL"}})
	if err != nil {
		t.Fatal(err)
	}
	ob := newBrowser(t)
	login = ob.get(authURL(s, "demo", authParams()))
	p = ob.post(formAction(t, login.body, "kc-form-login"), url.Values{"username": {"otto"}, "password": {"otto"}})
	if !hasForm(p.body, "kc-verify-email-form") {
		t.Fatalf("otto: %s", p.body)
	}
	out = r.Outbox()
	link := out[len(out)-1].Link
	if v := ob.get(link); v.status != 200 {
		t.Fatalf("verification link: %d %s", v.status, v.body)
	} else {
		pageHas(t, v, msgEmailVerified)
	}
	if resp := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"password"}, "username": {"otto"}, "password": {"otto"}}, basic); resp.status != 200 {
		t.Errorf("otto still has actions: %s", resp.body)
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	off := browserServer(t, nil, nil)
	if resp := newBrowser(t).get(off.Issuer("demo") + "/protocol/openid-connect/registrations?" + authParams().Encode()); resp.status != 400 {
		t.Errorf("registration off: %d", resp.status)
	} else {
		pageHas(t, resp, msgRegistrationDisabled)
	}
	if p := newBrowser(t).get(authURL(off, "demo", authParams())); strings.Contains(string(p.body), "kc-registration") {
		t.Error("register link shown with registration off")
	}
	disc := get(t, off.Issuer("demo")+"/.well-known/openid-configuration").json(t)
	if slices.Contains(disc["prompt_values_supported"].([]any), any("create")) {
		t.Error("create advertised with registration off")
	}

	s := browserServer(t, nil, func(c *RealmConfig) { c.RegistrationAllowed = true })
	disc = get(t, s.Issuer("demo")+"/.well-known/openid-configuration").json(t)
	if !slices.Contains(disc["prompt_values_supported"].([]any), any("create")) {
		t.Error("create not advertised")
	}
	good := url.Values{"firstName": {"Rita"}, "lastName": {"Reg"}, "email": {"rita@example.com"}, "username": {"rita"},
		"password": {"pw"}, "password-confirm": {"pw"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		f.Set(k, v)
		return f
	}
	cases := []struct {
		name string
		form url.Values
		msg  string
	}{
		{"username taken", with("username", "Alice"), msgUsernameExists},
		{"email taken", with("email", "bob@example.com"), msgEmailExists},
		{"mismatch", with("password-confirm", "other"), msgPasswordMismatch},
		{"no username", with("username", ""), msgMissingUsername},
		{"no password", with("password", ""), msgMissingPassword},
		{"bad email", with("email", "not-an-email"), msgInvalidEmail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t)
			page := b.get(s.Issuer("demo") + "/protocol/openid-connect/registrations?" + authParams().Encode())
			resp := b.post(formAction(t, page.body, "kc-register-form"), tc.form)
			if resp.status != 200 || !hasForm(resp.body, "kc-register-form") {
				t.Fatalf("%d\n%s", resp.status, resp.body)
			}
			pageHas(t, resp, tc.msg)
			if tc.name == "mismatch" && inputValue(resp.body, "username") != "rita" {
				t.Error("values not kept")
			}
		})
	}

	// prompt=create, then the link back to login and to registration again.
	b := newBrowser(t)
	page := b.get(authURL(s, "demo", authParams("prompt", "create")))
	if !hasForm(page.body, "kc-register-form") {
		t.Fatalf("prompt=create:\n%s", page.body)
	}
	back := regexp.MustCompile(`<a href="([^"]+)">&laquo; Back to Login`).FindSubmatch(page.body)
	loginPage := b.get(htmlUnescapeBytes(back[1]))
	if !hasForm(loginPage.body, "kc-form-login") {
		t.Fatalf("back to login:\n%s", loginPage.body)
	}
	reg := regexp.MustCompile(`<div id="kc-registration"><span>New user\? <a tabindex="6" href="([^"]+)">`).FindSubmatch(loginPage.body)
	if reg == nil {
		t.Fatalf("no register link:\n%s", loginPage.body)
	}
	regPage := b.get(htmlUnescapeBytes(reg[1]))
	u := redirectTo(t, b.post(formAction(t, regPage.body, "kc-register-form"), good))
	tok := mustExchange(t, s, "demo", codeOf(t, s, "demo", u))
	c := decode(t, tok["access_token"].(string)).claims
	if c["preferred_username"] != "rita" || c["email"] != "rita@example.com" {
		t.Errorf("new user's token: %v", c)
	}
	roles, _ := c["realm_access"].(map[string]any)["roles"].([]any)
	if !slices.Contains(roles, any("default-roles-demo")) {
		t.Errorf("default roles missing: %v", roles)
	}
	if _, ok := s.Realm("demo").UserID("rita"); !ok {
		t.Error("user not created")
	}
	// The new session is the browser's SSO session.
	codeOf(t, s, "demo", redirectTo(t, b.get(authURL(s, "demo", authParams("prompt", "none")))))
}

func htmlUnescapeBytes(b []byte) string { return strings.ReplaceAll(string(b), "&amp;", "&") }
