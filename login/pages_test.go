package login_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

var (
	tagRe    = regexp.MustCompile(`(?s)<head>.*?</head>|<[^>]*>`)
	spacesRe = regexp.MustCompile(`\s+`)
	styleRe  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	linkRe   = regexp.MustCompile(`<a href="([^"]*)" id="([^"]+)"`)
	buttonRe = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)<button type="submit" id="([^"]+)"`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// readable is the text of a page as a person reads it: no head, no tags,
// entities decoded, whitespace collapsed.
func readable(body string) string {
	return strings.TrimSpace(spacesRe.ReplaceAllString(html.UnescapeString(tagRe.ReplaceAllString(body, " ")), " "))
}

// links returns the page's links by id (their href, decoded).
func links(body string) map[string]string {
	m := map[string]string{}
	for _, l := range linkRe.FindAllStringSubmatch(body, -1) {
		m[l[2]] = html.UnescapeString(l[1])
	}
	return m
}

// forms returns the page's button forms by button id: action and the
// hidden fields.
func forms(body string) map[string]url.Values {
	m := map[string]url.Values{}
	for _, f := range buttonRe.FindAllStringSubmatch(body, -1) {
		v := url.Values{"action": {html.UnescapeString(f[1])}}
		for _, h := range hiddenRe.FindAllStringSubmatch(f[2], -1) {
			v.Set(h[1], html.UnescapeString(h[2]))
		}
		m[f[3]] = v
	}
	return m
}

// checkPage checks what every page of the Handler must be: HTML, not
// cached, not frameable, its inline style allowed by hash (no
// 'unsafe-inline'), no scripts, and accessible basics.
func checkPage(t *testing.T, p page) {
	t.Helper()
	if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	csp := p.header.Get("Content-Security-Policy")
	m := styleRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no inline style: %.300s", p.body)
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") ||
		strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the CSP %q does not allow exactly the page's style", csp)
	}
	if m[1] != login.Stylesheet {
		t.Error("the page's style is not login.Stylesheet")
	}
	for _, want := range []string{`<html lang="en">`, "<title>", `<meta name="viewport"`, "<main>", "<h1>"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(strings.ToLower(p.body), "<script") || strings.Contains(p.body, " style=") {
		t.Errorf("the page has a script or a style attribute: %.500s", p.body)
	}
}

// TestForbiddenPage: a signed-in user without the role reads who they are
// and which role the page needs, in words, and gets a way home and a way
// to sign in as someone else (sign out, sign in, come back).
func TestForbiddenPage(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "bob", "bob")

	pg := b.get(a.srv.URL + "/admin?tab=2")
	if pg.status != http.StatusForbidden {
		t.Fatalf("bob on /admin: %d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	text := readable(pg.body)
	want := `Access denied You are signed in as bob, but this page requires the role "admin". If you need access, ask the site's administrator. Go to the home page Sign in as someone else`
	if text != want {
		t.Errorf("the page reads\n%q\nwant\n%q", text, want)
	}
	if l := links(pg.body); l["home"] != "/" {
		t.Errorf("home link %q", l["home"])
	}
	f := forms(pg.body)["switch-user"]
	if f == nil || f.Get("action") != "/auth/logout" || f.Get("return_to") != "/auth/login?return_to=%2Fadmin%3Ftab%3D2" || f.Get("csrf_token") == "" {
		t.Fatalf("sign in as someone else: %v", f)
	}
	// The button signs bob out (Keycloak too) and opens the login form;
	// alice lands on the page bob could not see.
	out := b.do(http.MethodPost, a.srv.URL+f.Get("action"), url.Values{"csrf_token": {f.Get("csrf_token")}, "return_to": {f.Get("return_to")}}, http.Header{"Origin": {a.srv.URL}})
	if !strings.Contains(out.body, `id="kc-form-login"`) {
		t.Fatalf("after sign in as someone else: %d %s", out.status, out.url)
	}
	if len(p.kc.SessionIDs("bob")) != 0 {
		t.Error("bob's Keycloak session survived")
	}
	if in := b.submit(out, "kc-form-login", url.Values{"username": {"alice"}, "password": {"alice"}}); in.body != "admin page" || in.url != a.srv.URL+"/admin?tab=2" {
		t.Errorf("alice landed on %s: %q", in.url, in.body)
	}

	// Scripts get JSON with the same words, and no page.
	b2 := newBrowser(t)
	b2.login(a, "/private", "bob", "bob")
	js := b2.do(http.MethodGet, a.srv.URL+"/admin", nil, http.Header{"Accept": {"application/json"}})
	var body map[string]string
	if err := json.Unmarshal([]byte(js.body), &body); err != nil || js.status != 403 || body["code"] != "permission_denied" || body["detail"] != `This page requires the role "admin".` {
		t.Errorf("JSON refusal: %d %s", js.status, js.body)
	}
}

// TestForbiddenPageEscapes: a role name and a return address full of HTML
// are shown as text, never as markup.
func TestForbiddenPageEscapes(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	const role = `<script>alert(1)</script>" onmouseover="x`
	mux := http.NewServeMux()
	a.h.Mount(mux)
	mux.Handle("/private", a.h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		io.WriteString(w, "private csrf="+s.CSRFToken)
	})))
	mux.Handle("/hostile/", a.h.RequireAllClientRoles(`<b>client</b>`, role, "editor")(http.NotFoundHandler()))
	a.handler.Store(a.h.Middleware(mux))
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")

	pg := b.get(a.srv.URL + `/hostile/%3Cimg%20src=x%3E?q=%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E`)
	if pg.status != http.StatusForbidden {
		t.Fatalf("%d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	for _, bad := range []string{"<script", "<b>", "<img", `" onmouseover`} {
		if strings.Contains(pg.body, bad) {
			t.Errorf("the page carries %s unescaped: %s", bad, pg.body)
		}
	}
	want := `You are signed in as alice, but this page requires the roles "<script>alert(1)</script>\" onmouseover=\"x" and "editor" of client "<b>client</b>".`
	if text := readable(pg.body); !strings.Contains(text, want) {
		t.Errorf("the page reads %q, want it to contain %q", text, want)
	}
	f := forms(pg.body)["switch-user"]
	if f == nil {
		t.Fatal("no sign in as someone else")
	}
	ret, _ := url.Parse(f.Get("return_to"))
	if ret.Path != "/auth/login" || ret.Query().Get("return_to") != `/hostile/%3Cimg%20src=x%3E?q=%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E` {
		t.Errorf("return_to %q", f.Get("return_to"))
	}
}

// TestLogoutConfirmationPage: the confirmation names the user, signs out
// with a real button, and Cancel goes back to the page of this site the
// user came from (home otherwise).
func TestLogoutConfirmationPage(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")

	pg := b.do(http.MethodGet, a.srv.URL+"/auth/logout", nil, http.Header{"Referer": {a.srv.URL + "/private?tab=2#top"}})
	if pg.status != 200 {
		t.Fatalf("%d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	want := "Sign out You are signed in as alice. Do you want to sign out? This also ends your single sign-on session, so you will need your password to sign in again. Sign out Cancel"
	if text := readable(pg.body); text != want {
		t.Errorf("the page reads\n%q\nwant\n%q", text, want)
	}
	if !strings.Contains(pg.body, `<button type="submit" id="logout" class="primary">Sign out</button>`) {
		t.Errorf("no sign-out button: %s", pg.body)
	}
	f := forms(pg.body)["logout"]
	if f == nil || f.Get("action") != "/auth/logout" || f.Get("csrf_token") == "" || f.Has("return_to") {
		t.Errorf("the sign-out form: %v", f)
	}
	cancel := func(header http.Header, query string) string {
		t.Helper()
		pg := b.do(http.MethodGet, a.srv.URL+"/auth/logout"+query, nil, header)
		return links(pg.body)["cancel"]
	}
	tests := []struct {
		referer, query, want string
	}{
		{a.srv.URL + "/private?tab=2#top", "", "/private?tab=2"},
		{"", "", "/"},
		{"https://evil.example/private", "", "/"},
		{a.srv.URL + "/auth/logout", "", "/"},
		{a.srv.URL + "//evil.example/", "", "/"},
		{a.srv.URL + `/x"><script>alert(1)</script>`, "", `/x%22%3E%3Cscript%3Ealert%281%29%3C/script%3E`},
		{a.srv.URL + "/private", "?return_to=%2Fbye", "/private"},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.referer != "" {
			h.Set("Referer", tt.referer)
		}
		if got := cancel(h, tt.query); got != tt.want {
			t.Errorf("Referer %q: Cancel leads to %q, want %q", tt.referer, got, tt.want)
		}
	}
	// A hostile return_to is carried as text in the form.
	pg = b.get(a.srv.URL + "/auth/logout?return_to=" + url.QueryEscape(`/bye"><script>alert(1)</script>`))
	if strings.Contains(pg.body, "<script") {
		t.Errorf("return_to unescaped: %s", pg.body)
	}
	if f := forms(pg.body)["logout"]; f.Get("return_to") != `/bye"><script>alert(1)</script>` {
		t.Errorf("return_to in the form: %q", f.Get("return_to"))
	}
	// The session's tokens never appear on the page.
	token := b.get(a.srv.URL + "/token").body
	if pg := b.get(a.srv.URL + "/auth/logout"); token == "" || strings.Contains(pg.body, token) || strings.Contains(pg.body, "eyJ") {
		t.Error("a token is on the confirmation page")
	}
}

// TestSignedOutPage: with Config.SignedOutPage, logging out ends on "You
// have been signed out" with a button to sign in again, after Keycloak's
// end-session endpoint; a logout with return_to still goes there.
func TestSignedOutPage(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{config: func(c *login.Config) { c.SignedOutPage = true }})
	b := newBrowser(t)
	b.login(a, "/private", "alice", "alice")

	out := b.logout(a)
	if out.status != 200 || out.url != a.srv.URL+"/auth/logged-out" && !strings.HasPrefix(out.url, a.srv.URL+"/auth/logged-out?") {
		t.Fatalf("after logout: %d %s %q (hops %v)", out.status, out.url, out.body, b.hops)
	}
	if !strings.Contains(strings.Join(b.hops, " "), "/protocol/openid-connect/logout") {
		t.Fatalf("logout did not go through Keycloak: %v", b.hops)
	}
	checkPage(t, out)
	if text := readable(out.body); text != "Signed out You have been signed out. Sign in again" {
		t.Errorf("the page reads %q", text)
	}
	if l := links(out.body)["login"]; l != "/auth/login?return_to=%2F" {
		t.Errorf("sign in again: %q", l)
	}
	if len(p.kc.SessionIDs("alice")) != 0 {
		t.Fatal("the Keycloak session survived the logout")
	}
	if pg := b.get(a.srv.URL + links(out.body)["login"]); !strings.Contains(pg.body, `id="kc-form-login"`) {
		t.Fatalf("sign in again does not ask for the password: %d %s", pg.status, pg.url)
	}

	// Without a session, the logout link and the logged-out URL say so too.
	for _, u := range []string{"/auth/logout", "/auth/logged-out"} {
		if pg := b.get(a.srv.URL + u); pg.status != 200 || !strings.Contains(pg.body, "You have been signed out.") {
			t.Errorf("%s without a session: %d %.200s", u, pg.status, pg.body)
		}
	}
	// Signed in, the logged-out URL has nothing to tell: it goes home.
	b.login(a, "/private", "alice", "alice")
	if pg := b.get(a.srv.URL + "/auth/logged-out"); pg.body != "home of alice" {
		t.Errorf("logged-out while signed in: %d %s %.200s", pg.status, pg.url, pg.body)
	}
	// An explicit return_to wins over the page.
	m := csrfRe.FindStringSubmatch(b.get(a.srv.URL + "/private").body)
	out = b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {m[1]}, "return_to": {"/bye"}}, http.Header{"Origin": {a.srv.URL}})
	if out.url != a.srv.URL+"/bye" || out.body != "home of nobody" {
		t.Errorf("logout with return_to landed on %s: %q", out.url, out.body)
	}
}

// TestErrorPages: login failures and an unreachable identity provider say
// what happened and offer the next step; a browser's form post gets a
// page, not JSON.
func TestErrorPages(t *testing.T) {
	t.Parallel()
	p := newIDP(t, nil)
	a := newApp(t, p, appOptions{})
	b := newBrowser(t)

	pg := b.get(a.srv.URL + "/auth/callback?state=unknown&code=x")
	if pg.status != http.StatusBadRequest {
		t.Fatalf("%d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	if text := readable(pg.body); !strings.HasPrefix(text, "Login expired ") || !strings.HasSuffix(text, " Sign in again Go to the home page") {
		t.Errorf("the page reads %q", text)
	}
	if l := links(pg.body); l["retry"] != "/auth/login" || l["home"] != "/" {
		t.Errorf("links %v", l)
	}

	// A logout form posted from another site: a page, since a browser
	// navigates (Sec-Fetch-Mode), with the way to sign out for real.
	b.login(a, "/private", "alice", "alice")
	pg = b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {"forged"}}, http.Header{"Sec-Fetch-Mode": {"navigate"}, "Origin": {"https://evil.example"}})
	if pg.status != http.StatusForbidden {
		t.Fatalf("%d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	if text := readable(pg.body); text != "Logout refused You are still signed in: this sign-out request did not come from this site's sign-out button. Sign out Go to the home page" {
		t.Errorf("the page reads %q", text)
	}
	if l := links(pg.body); l["logout-confirm"] != "/auth/logout" {
		t.Errorf("links %v", l)
	}
	if js := b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {"forged"}}, nil); !strings.HasPrefix(js.header.Get("Content-Type"), "application/json") {
		t.Errorf("a script's refused logout: %s %.200s", js.header.Get("Content-Type"), js.body)
	}
}

// TestUnavailablePage: the identity provider cannot be reached.
func TestUnavailablePage(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	issuer := dead.URL + "/realms/gone"
	dead.Close()
	realm, err := cloakroom.NewRealm(issuer, cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(mustKeys(t)...)
	mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: kr})
	h, err := login.New(login.Config{Realm: realm, ClientID: "app", ClientSecret: "s", BaseURL: "http://app.example", Sessions: mgr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := h.RequireLogin(http.NotFoundHandler())
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://app.example/reports?month=11&access_token=secret", nil))
	pg := page{status: rec.Code, body: rec.Body.String(), header: rec.Header()}
	if pg.status != http.StatusServiceUnavailable || pg.header.Get("Retry-After") == "" {
		t.Fatalf("%d %.300s", pg.status, pg.body)
	}
	checkPage(t, pg)
	if text := readable(pg.body); text != "Sign-in temporarily unavailable The sign-in service cannot be reached right now. Please try again in a moment. Try again Go to the home page" {
		t.Errorf("the page reads %q", text)
	}
	if l := links(pg.body); l["retry"] != "/reports?month=11" || l["home"] != "/" {
		t.Errorf("links %v", l)
	}
}

func mustKeys(t *testing.T) [][]byte {
	t.Helper()
	k, err := session.ParseKeys(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
