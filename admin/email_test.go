package admin_test

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/admin"
)

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// decodeJWT returns a JWT's claims without verifying it (test helper).
func decodeJWT(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

var formAction = regexp.MustCompile(`<form id="kc-passwd-update-form" action="([^"]+)"`)

// TestExecuteActionsEmail follows the emailed link in a "browser" and sets
// a new password on Keycloak's update-password page.
func TestExecuteActionsEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client(t, saManager)
	ctx := t.Context()
	bob, _ := e.kc.UserID("bob")
	err := c.ExecuteActionsEmail(ctx, bob, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{
		Lifespan: time.Hour, ClientID: "cloakroom", RedirectURI: "http://127.0.0.1:8000/welcome",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := e.kc.Outbox()
	if len(out) != 1 || out[0].To != "bob@example.com" || !strings.Contains(out[0].Body, "Update Password") || !strings.Contains(out[0].Body, "1 hour") {
		t.Fatalf("outbox %+v", out)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	page := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", resp.Request.URL.Path, resp.StatusCode, b)
		}
		return string(b)
	}
	body := page(browser.Get(out[0].Link))
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no update-password form:\n%s", body)
	}
	body = page(browser.PostForm(html.UnescapeString(m[1]), url.Values{"password-new": {"new-bob-pw"}, "password-confirm": {"new-bob-pw"}}))
	if !strings.Contains(body, "Your account has been updated.") || !strings.Contains(body, "http://127.0.0.1:8000/welcome") {
		t.Fatalf("after submit:\n%s", body)
	}
	if _, code := passwordGrant(t, e, "bob", "new-bob-pw"); code != http.StatusOK {
		t.Errorf("login with the new password: %d", code)
	}
	// The link works once.
	resp, err := browser.Get(out[0].Link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second use of the link: %d", resp.StatusCode)
	}
	// A redirect URI the client does not allow is refused.
	err = c.ExecuteActionsEmail(ctx, bob, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{ClientID: "cloakroom", RedirectURI: "https://evil.example/"})
	var ae *admin.APIError
	if !asError(err, &ae) || ae.Message != "Invalid redirect uri." {
		t.Errorf("bad redirect: %v", err)
	}
}

func asError(err error, target **admin.APIError) bool {
	e, ok := err.(*admin.APIError)
	if ok {
		*target = e
	}
	return ok
}
