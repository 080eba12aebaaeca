package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// testRedirect is a valid redirect URI of the demo clients; nothing
// listens there, so browsers here never follow redirects to it.
const testRedirect = "http://127.0.0.1:8000/callback"

// browser is a cookie-keeping HTTP client that stops at every redirect,
// like a test driving Keycloak's pages by hand.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (b *browser) get(u string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// cookie returns the value the jar would send to u.
func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.c.Jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// authParams are the usual parameters of a code-flow request for the
// demo confidential client.
func authParams(extra ...string) url.Values {
	v := url.Values{"client_id": {DemoClientID}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"st-1"}, "nonce": {"n-1"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
		} else {
			v.Set(extra[i], extra[i+1])
		}
	}
	return v
}

func authURL(s *Server, realm string, params url.Values) string {
	return s.Issuer(realm) + "/protocol/openid-connect/auth?" + params.Encode()
}

// formAction finds <form id="id" ... action="..."> in a page.
func formAction(t testing.TB, page []byte, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<form id="` + regexp.QuoteMeta(id) + `"[^>]*action="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form %q in page:\n%s", id, page)
	}
	return html.UnescapeString(string(m[1]))
}

// hasForm reports whether the page has a form with that id.
func hasForm(page []byte, id string) bool {
	return regexp.MustCompile(`<form id="` + regexp.QuoteMeta(id) + `"`).Match(page)
}

// inputValue reads value="..." of the input with that id.
func inputValue(page []byte, id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*value="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(string(m[1]))
}

// redirectTo parses the Location of a 302 to the client.
func redirectTo(t testing.TB, resp response) *url.URL {
	t.Helper()
	if resp.status != http.StatusFound {
		t.Fatalf("want a redirect, got %d:\n%s", resp.status, resp.body)
	}
	u, err := url.Parse(resp.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// login runs the login form for the request and returns where the browser
// was sent.
func (b *browser) login(s *Server, realm string, params url.Values, user, pass string) *url.URL {
	b.t.Helper()
	page := b.get(authURL(s, realm, params))
	if page.status != http.StatusOK {
		b.t.Fatalf("auth: %d %s", page.status, page.body)
	}
	resp := b.post(formAction(b.t, page.body, "kc-form-login"), url.Values{"username": {user}, "password": {pass}})
	return redirectTo(b.t, resp)
}

// codeOf checks a success redirect and returns its code.
func codeOf(t testing.TB, s *Server, realm string, u *url.URL) string {
	t.Helper()
	q := u.Query()
	if q.Get("error") != "" {
		t.Fatalf("error redirect: %s", u)
	}
	if q.Get("code") == "" || q.Get("iss") != s.Issuer(realm) {
		t.Fatalf("bad success redirect: %s", u)
	}
	return q.Get("code")
}

// exchange runs the authorization_code grant for the demo client.
func exchange(t testing.TB, s *Server, realm, code string, extra ...string) response {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return postForm(t, tokenURL(s, realm), form, DemoClientID+":"+DemoClientSecret)
}

func mustExchange(t testing.TB, s *Server, realm, code string, extra ...string) map[string]any {
	t.Helper()
	resp := exchange(t, s, realm, code, extra...)
	if resp.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", resp.status, resp.body)
	}
	return resp.json(t)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// pageHas fails unless the page contains the text (HTML-escaped as the
// templates escape it).
func pageHas(t testing.TB, resp response, text string) {
	t.Helper()
	if !strings.Contains(string(resp.body), html.EscapeString(text)) {
		t.Errorf("page (%d) lacks %q:\n%s", resp.status, text, resp.body)
	}
}

// browserServer serves the demo realm, adjusted by mutate, at a test
// clock.
func browserServer(t testing.TB, clock *fakeClock, mutate func(*RealmConfig)) *Server {
	t.Helper()
	cfg := DemoRealm(DemoClientSecret)
	if mutate != nil {
		mutate(&cfg)
	}
	opts := []Option{WithRealm(cfg)}
	if clock != nil {
		opts = append(opts, WithClock(clock.Now))
	}
	return NewServer(t, opts...)
}
