package faulttest

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Browser keeps cookies and follows redirects by hand, so tests can stop
// at any hop (for example at the redirect back from Keycloak, to replay the
// callback while something is broken).
type Browser struct {
	t      testing.TB
	Client *http.Client // never follows redirects by itself
}

// Page is one answer.
type Page struct {
	Status int
	URL    string
	Body   string
	Header http.Header
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}}
}

// Do sends one request without following a redirect. header holds name,
// value pairs.
func (b *Browser) Do(method, target string, form url.Values, header ...string) Page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return Page{Status: resp.StatusCode, URL: target, Body: string(data), Header: resp.Header}
}

// Get fetches target and follows redirects.
func (b *Browser) Get(target string, header ...string) Page {
	b.t.Helper()
	return b.Follow(http.MethodGet, target, nil, header...)
}

// Follow sends a request and follows redirects (as GETs, without the
// headers) until an answer that is not a redirect.
func (b *Browser) Follow(method, target string, form url.Values, header ...string) Page {
	b.t.Helper()
	for range 20 {
		p := b.Do(method, target, form, header...)
		if p.Status < 300 || p.Status >= 400 {
			return p
		}
		next, err := url.Parse(target)
		if err == nil {
			next, err = next.Parse(p.Header.Get("Location"))
		}
		if err != nil {
			b.t.Fatalf("bad redirect from %s: %v", target, err)
		}
		target, method, form, header = next.String(), http.MethodGet, nil, nil
	}
	b.t.Fatalf("too many redirects from %s", target)
	return Page{}
}

// LoginForm matches the keycloaktest login form.
var LoginForm = regexp.MustCompile(`<form id="kc-form-login"[^>]*action="([^"]+)"`)

// CallbackURL opens target (a protected page), logs in as user at
// keycloaktest (password = username) and returns the URL Keycloak sends
// the browser back to, with the code and state, without visiting it.
func (b *Browser) CallbackURL(target, user string) string {
	b.t.Helper()
	p := b.Get(target)
	m := LoginForm.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("expected the Keycloak login form at %s, got %d: %.300s", p.URL, p.Status, p.Body)
	}
	action, _ := url.Parse(p.URL)
	post, err := action.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	r := b.Do(http.MethodPost, post.String(), url.Values{"username": {user}, "password": {user}})
	if r.Status != http.StatusFound && r.Status != http.StatusSeeOther {
		b.t.Fatalf("login at Keycloak: %d %.300s", r.Status, r.Body)
	}
	back, err := post.Parse(r.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" {
		b.t.Fatalf("Keycloak did not send the browser back with a code: %q", r.Header.Get("Location"))
	}
	return back.String()
}

// Login opens target, logs in as user and follows the browser back to
// the application; it returns the page the browser lands on.
func (b *Browser) Login(target, user string) Page {
	b.t.Helper()
	return b.Get(b.CallbackURL(target, user))
}

// Cookie returns the browser's cookie name for rawURL, or nil.
func (b *Browser) Cookie(rawURL, name string) *http.Cookie {
	u, _ := url.Parse(rawURL)
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// SetsCookie reports whether p sets cookie name to a non-empty value, and
// whether it deletes it.
func SetsCookie(p Page, name string) (set, deleted bool) {
	for _, line := range p.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Name != name {
			continue
		}
		if c.MaxAge < 0 || c.Value == "" {
			deleted = true
		} else {
			set = true
		}
	}
	return set, deleted
}
