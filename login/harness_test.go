package login_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeClock is shared by keycloaktest, the Realm and the session Manager so
// tests can move time (token expiry, refresh) without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// idp is a keycloaktest server with the demo realm and a shared clock.
type idp struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	clock *fakeClock
}

func newIDP(t *testing.T, edit func(*keycloaktest.RealmConfig)) *idp {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	cfg := keycloaktest.DemoRealm(keycloaktest.DemoClientSecret)
	cfg.ACRLoA = map[string]int{"silver": 1, "gold": 2}
	cfg.Users = append(cfg.Users, keycloaktest.UserConfig{
		Username: "carol", Password: "carol", Email: "carol@example.com", FirstName: "Carol", LastName: "Otp",
		RealmRoles: []string{"user"}, TOTPSecret: "JBSWY3DPEHPK3PXP",
	})
	if edit != nil {
		edit(&cfg)
	}
	srv := keycloaktest.NewServer(t, keycloaktest.WithRealm(cfg), keycloaktest.WithClock(clock.Now))
	return &idp{srv: srv, kc: srv.Realm("demo"), clock: clock}
}

// app is one instance of a web application using the login package.
type app struct {
	t        *testing.T
	idp      *idp
	srv      *httptest.Server
	h        *login.Handler
	store    session.Store
	events   *events
	handler  atomic.Value
	clientID string
}

type events struct {
	mu          sync.Mutex
	logins      []string
	logouts     []string
	backchannel []*login.BackchannelLogoutEvent
}

type appOptions struct {
	store     session.Store // shared between instances; default a new MemoryStore
	keys      string
	clientID  string // the Keycloak client (default "webapp")
	config    func(*login.Config)
	noClient  bool // another instance registered the client already
	sessionMx func(*session.Config)
}

const webappSecret = "webapp-secret"

// newApp starts an application instance. Instances given the same store
// (and keys) share sessions, like several replicas behind a load balancer.
func newApp(t *testing.T, p *idp, o appOptions) *app {
	t.Helper()
	a := &app{t: t, idp: p, events: &events{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	if o.clientID == "" {
		o.clientID = "webapp"
	}
	a.clientID = o.clientID
	if !o.noClient {
		// One Keycloak client for every instance of the app: like replicas
		// behind one load balancer, the first instance receives back-channel
		// logouts; any port of 127.0.0.1 is a valid redirect.
		err := p.kc.AddClient(keycloaktest.ClientConfig{
			ClientID: o.clientID, Secret: webappSecret, StandardFlow: true,
			RedirectURIs:                     []string{"http://127.0.0.1:*"},
			PostLogoutRedirectURIs:           []string{"http://127.0.0.1:*"},
			BackchannelLogoutURL:             a.srv.URL + "/auth/backchannel-logout",
			BackchannelLogoutSessionRequired: true,
			Roles:                            []string{"editor"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.store == nil {
		o.store = session.NewMemoryStore()
		t.Cleanup(func() { _ = o.store.Close() })
	}
	a.store = o.store
	if o.keys == "" {
		o.keys = testKey
	}
	raw, err := session.ParseKeys(o.keys)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(raw...)
	scfg := session.Config{Store: o.store, Keyring: kr, Now: p.clock.Now}
	if o.sessionMx != nil {
		o.sessionMx(&scfg)
	}
	mgr, err := session.NewManager(scfg)
	if err != nil {
		t.Fatal(err)
	}
	realm, err := cloakroom.NewRealm(p.kc.Issuer(), cloakroom.WithLogger(quiet), cloakroom.WithClock(p.clock.Now), cloakroom.WithRefetchInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	cfg := login.Config{
		Realm: realm, ClientID: o.clientID, ClientSecret: webappSecret,
		BaseURL: a.srv.URL, Sessions: mgr, Logger: quiet,
		ACRLevels: []string{"0", "1", "silver", "gold"},
		AfterLogin: func(ctx context.Context, e *login.LoginEvent) error {
			a.events.mu.Lock()
			a.events.logins = append(a.events.logins, e.IDClaims.Subject())
			a.events.mu.Unlock()
			e.Values["greeting"] = "hello " + e.IDClaims.GivenName()
			return nil
		},
		AfterLogout: func(ctx context.Context, s *login.Session) {
			a.events.mu.Lock()
			a.events.logouts = append(a.events.logouts, s.Subject)
			a.events.mu.Unlock()
		},
		OnBackchannelLogout: func(ctx context.Context, e *login.BackchannelLogoutEvent) {
			a.events.mu.Lock()
			a.events.backchannel = append(a.events.backchannel, e)
			a.events.mu.Unlock()
		},
	}
	if o.config != nil {
		o.config(&cfg)
	}
	h, err := login.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.h = h
	mux := http.NewServeMux()
	h.Mount(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := login.FromContext(r.Context()); ok {
			fmt.Fprintf(w, "home of %s", s.Username)
			return
		}
		io.WriteString(w, "home of nobody")
	})
	mux.Handle("/private", h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		fmt.Fprintf(w, "private page of %s (%s) csrf=%s greeting=%s", s.Username, s.Subject, s.CSRFToken, s.Value("greeting"))
	})))
	mux.Handle("/admin", h.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin page")
	})))
	mux.Handle("/gold", h.RequireACR("gold")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		fmt.Fprintf(w, "gold page acr=%s", s.IDClaims.ACR())
	})))
	mux.Handle("/token", h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := login.FromContext(r.Context())
		io.WriteString(w, s.AccessToken)
	})))
	a.handler.Store(h.Middleware(mux))
	return a
}

const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// browser is a cookie-keeping HTTP client that follows redirects by hand,
// so tests can look at every hop.
type browser struct {
	t      *testing.T
	client *http.Client
	hops   []string
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}}
}

type page struct {
	status int
	url    string
	body   string
	header http.Header
}

// do sends one request and follows redirects, returning the final page.
func (b *browser) do(method, target string, form url.Values, header http.Header) page {
	b.t.Helper()
	b.hops = nil
	for range 20 {
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
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.t.Fatalf("%s %s: %v", method, target, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.hops = append(b.hops, target)
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return page{status: resp.StatusCode, url: target, body: string(data), header: resp.Header}
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatal(err)
		}
		target, method, form, header = loc.String(), http.MethodGet, nil, nil
	}
	b.t.Fatalf("too many redirects: %v", b.hops)
	return page{}
}

func (b *browser) get(target string) page { return b.do(http.MethodGet, target, nil, nil) }

var formAction = regexp.MustCompile(`<form id="([^"]+)"[^>]*action="([^"]+)"`)

// submit posts the form with the given id on p.
func (b *browser) submit(p page, formID string, fields url.Values) page {
	b.t.Helper()
	for _, m := range formAction.FindAllStringSubmatch(p.body, -1) {
		if m[1] == formID {
			action, _ := url.Parse(p.url)
			target, err := action.Parse(html.UnescapeString(m[2]))
			if err != nil {
				b.t.Fatal(err)
			}
			return b.do(http.MethodPost, target.String(), fields, nil)
		}
	}
	b.t.Fatalf("no form %q on %s (status %d): %.300s", formID, p.url, p.status, p.body)
	return page{}
}

// login visits path of a, logs in at keycloaktest as user, and returns the
// page the browser lands on.
func (b *browser) login(a *app, path, user, password string) page {
	b.t.Helper()
	p := b.get(a.srv.URL + path)
	if !strings.Contains(p.body, `id="kc-form-login"`) {
		b.t.Fatalf("expected the Keycloak login form, got %d at %s: %.300s", p.status, p.url, p.body)
	}
	return b.submit(p, "kc-form-login", url.Values{"username": {user}, "password": {password}})
}

func (b *browser) cookie(rawURL, name string) *http.Cookie {
	u, _ := url.Parse(rawURL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfRe = regexp.MustCompile(`csrf=(\S+)`)

// logout posts the logout form the way the application's button would.
func (b *browser) logout(a *app) page {
	b.t.Helper()
	p := b.get(a.srv.URL + "/private")
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the private page: %.200s", p.body)
	}
	return b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {m[1]}}, http.Header{"Origin": {a.srv.URL}})
}
