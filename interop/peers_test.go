package interop_test

// Real OpenID Providers other than Keycloak, built from the Go module proxy
// by peers/build.sh and started on 127.0.0.1 by the tests: dex, the
// zitadel/oidc example OP and ORY Hydra. They run when
// CLOAKROOM_INTEROP_PEERS=1 and skip otherwise.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/realmx"
	rplogin "github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// Peer versions, as peers/build.sh builds them.
const (
	dexVersion     = "v0.0.0-20260303133905-11d2eeb52b42" // dex v2.45.1
	zitadelVersion = "v3.49.2"
	hydraVersion   = "v2.3.0"
)

var (
	peersOnce sync.Once
	peersDir  string
	peersErr  error
)

// peerBinary returns the path of a peer program, building every peer once
// per test binary (in parallel, reused across runs from the cache). The
// test is skipped unless CLOAKROOM_INTEROP_PEERS=1.
func peerBinary(t *testing.T, name, version string) string {
	t.Helper()
	if os.Getenv("CLOAKROOM_INTEROP_PEERS") != "1" {
		t.Skip("set CLOAKROOM_INTEROP_PEERS=1 to build dex, the zitadel/oidc example OP and ORY Hydra from the Go module proxy (cached in ~/.cache/cloakroom-peers) and test cloakroom against them")
	}
	peersOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join("peers", "build.sh"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			peersErr = fmt.Errorf("peers/build.sh: %v\n%s", err, out.String())
			return
		}
		fmt.Fprintf(os.Stderr, "interop peers ready in %s:\n%s", time.Since(start).Round(time.Second), out.String())
		peersDir = os.Getenv("CLOAKROOM_PEERS_DIR")
		if peersDir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				peersErr = err
				return
			}
			peersDir = filepath.Join(cache, "cloakroom-peers")
		}
	})
	if peersErr != nil {
		t.Fatal(peersErr)
	}
	bin := filepath.Join(peersDir, name+"-"+version, name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("peer %s: %v", name, err)
	}
	return bin
}

// freeAddr returns a free 127.0.0.1 port for a peer to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a peer's output for the failure report.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPeer runs a peer program until the test ends and waits (bounded)
// until ready answers 200. Its output is shown if the test fails.
func startPeer(t *testing.T, bin string, args, env []string, ready string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), tail(out.String(), 6000))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before it was ready (%v):\n%s", filepath.Base(bin), err, tail(out.String(), 4000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after 90 s:\n%s", filepath.Base(bin), ready, tail(out.String(), 4000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// lateServer is an httptest server whose address is known before its
// handler exists: a provider must know the redirect URIs before the
// relying party can be built against it.
type lateServer struct {
	*httptest.Server
	h atomic.Value
}

func newLateServer(t *testing.T) *lateServer {
	t.Helper()
	s := &lateServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := s.h.Load().(http.Handler)
		if h == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *lateServer) set(h http.Handler) { s.h.Store(h) }

// rp is an application using cloakroom's login package against a peer.
type rp struct {
	srv         *lateServer
	h           *rplogin.Handler
	realm       *cloakroom.Realm
	backchannel atomic.Int32
}

// rpConfig describes the client registered at the peer.
type rpConfig struct {
	issuer, clientID, secret string
	scopes                   []string
	rolesClaim               string
}

// detectsGeneric reports whether a Verifier with the AutoDetect profile
// applies the generic OIDC rules to tokens of realm.
func detectsGeneric(ctx context.Context, realm *cloakroom.Realm) (bool, error) {
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "any", Profile: cloakroom.AutoDetect})
	if err != nil {
		return false, err
	}
	return realmx.OfVerifier[*cloakroom.Realm](v).Generic(ctx)
}

// startRP builds the rplogin.Handler for srv (generic profile detected
// automatically) with an in-memory session store. Pages: /private (login
// required, prints the session), /admin (role "admin" required).
func startRP(t *testing.T, srv *lateServer, c rpConfig) *rp {
	t.Helper()
	realm, err := cloakroom.NewRealm(c.issuer, cloakroom.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(bytes.Repeat([]byte{7}, 32))
	store := session.NewMemoryStore()
	t.Cleanup(func() { _ = store.Close() })
	mgr, err := session.NewManager(session.Config{Store: store, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	a := &rp{srv: srv, realm: realm}
	a.h, err = rplogin.New(rplogin.Config{
		Realm: realm, ClientID: c.clientID, ClientSecret: c.secret, BaseURL: srv.URL,
		Sessions: mgr, Scopes: c.scopes, Verifier: cloakroom.VerifierConfig{Profile: cloakroom.AutoDetect, RolesClaim: c.rolesClaim},
		FetchUserinfo: true,
		Logger:        quietLog,
		// Every request refreshes (the peers' tokens live minutes to
		// hours), so that a test sees refresh without waiting.
		RefreshBefore: 48 * time.Hour,
		OnBackchannelLogout: func(ctx context.Context, e *rplogin.BackchannelLogoutEvent) {
			a.backchannel.Add(int32(len(e.Keys)))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.h.Mount(mux)
	mux.Handle("/private", a.h.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := rplogin.FromContext(r.Context())
		fmt.Fprintf(w, "private sub=%s user=%s email=%s sid=%s access-claims=%v csrf=%s token=%s",
			s.Subject, s.Username, s.IDClaims.Email(), s.SID(), s.AccessClaims != nil, s.CSRFToken, s.AccessToken)
	})))
	mux.Handle("/admin", a.h.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin page")
	})))
	srv.set(a.h.Middleware(mux))
	return a
}

// startGateway runs cloakroom's gateway at srv in front of an upstream
// that echoes the identity headers.
func startGateway(t *testing.T, srv *lateServer, c rpConfig) {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream user=%s email=%s roles=%s", r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Forwarded-Email"), r.Header.Get("X-Forwarded-Roles"))
	}))
	t.Cleanup(upstream.Close)
	g, err := gateway.New(t.Context(), gateway.Config{
		PublicURL: srv.URL, Issuer: c.issuer, ClientID: c.clientID, ClientSecret: c.secret,
		Profile: "auto", RolesClaim: c.rolesClaim,
		Session: gateway.SessionConfig{Store: "memory:"},
		Routes:  []gateway.Route{{Path: "/", Upstream: upstream.URL}},
	}, gateway.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv.set(g)
}

// browser follows redirects by hand and keeps cookies, like a browser
// without JavaScript.
type peerBrowser struct {
	t      *testing.T
	client *http.Client
	hops   []string
}

func newPeerBrowser(t *testing.T) *peerBrowser {
	jar, _ := cookiejar.New(nil)
	return &peerBrowser{t: t, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}}
}

type peerPage struct {
	status int
	url    string
	body   string
}

func (b *peerBrowser) do(method, target string, form url.Values, header http.Header) peerPage {
	b.t.Helper()
	b.hops = nil
	for range 30 {
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
			return peerPage{status: resp.StatusCode, url: target, body: string(data)}
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.t.Fatal(err)
		}
		target, method, form, header = loc.String(), http.MethodGet, nil, nil
	}
	b.t.Fatalf("too many redirects: %v", b.hops)
	return peerPage{}
}

func (b *peerBrowser) get(target string) peerPage { return b.do(http.MethodGet, target, nil, nil) }

func (b *peerBrowser) visited(prefix string) bool {
	for _, h := range b.hops {
		if strings.HasPrefix(h, prefix) {
			return true
		}
	}
	return false
}

var formRe = regexp.MustCompile(`(?is)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>`)
var hiddenRe = regexp.MustCompile(`(?is)<input[^>]*type="hidden"[^>]*>`)
var attrRe = regexp.MustCompile(`(?i)(name|value)="([^"]*)"`)

// submitLogin fills the first form of p that has a password field with
// the credentials (and its hidden fields) and posts it.
func (b *peerBrowser) submitLogin(p peerPage, userField, user, password string) peerPage {
	b.t.Helper()
	for _, m := range formRe.FindAllStringSubmatch(p.body, -1) {
		if !strings.Contains(m[2], `name="password"`) {
			continue
		}
		fields := url.Values{userField: {user}, "password": {password}}
		for _, in := range hiddenRe.FindAllString(m[2], -1) {
			var name, value string
			for _, a := range attrRe.FindAllStringSubmatch(in, -1) {
				if strings.EqualFold(a[1], "name") {
					name = html.UnescapeString(a[2])
				} else {
					value = html.UnescapeString(a[2])
				}
			}
			if name != "" {
				fields.Set(name, value)
			}
		}
		base, _ := url.Parse(p.url)
		action, err := base.Parse(html.UnescapeString(m[1]))
		if err != nil {
			b.t.Fatal(err)
		}
		return b.do(http.MethodPost, action.String(), fields, nil)
	}
	b.t.Fatalf("no login form at %s (status %d): %.500s", p.url, p.status, p.body)
	return peerPage{}
}

// field reads name=value out of a page printed by the rp.
func pageField(t *testing.T, body, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, name+"=")
	if !ok {
		t.Fatalf("no %s= in %.300q", name, body)
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// logout posts the rp's logout form as its button would.
func (b *peerBrowser) logout(a *rp, csrf string) peerPage {
	b.t.Helper()
	return b.do(http.MethodPost, a.srv.URL+"/auth/logout", url.Values{"csrf_token": {csrf}}, http.Header{"Origin": {a.srv.URL}})
}

// accessTokenChanged loads /private again (the rp refreshes on every
// request) and reports whether the access token changed.
func accessTokenChanged(t *testing.T, b *peerBrowser, a *rp, before string) bool {
	t.Helper()
	p := b.get(a.srv.URL + "/private")
	if p.status != http.StatusOK {
		t.Fatalf("/private after refresh: %d %.300s", p.status, p.body)
	}
	return pageField(t, p.body, "token") != before
}

// bearerCheck verifies an access token as an API would (generic profile
// detected from discovery; the audience is given).
func bearerCheck(t *testing.T, issuer, audience string, parties []string, token string) (*cloakroom.Claims, error) {
	t.Helper()
	realm, err := cloakroom.NewRealm(issuer, cloakroom.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: audience, AuthorizedParties: parties, Profile: cloakroom.AutoDetect})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := bearer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	p, err := auth.Verify(req)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("anonymous")
	}
	return p.Claims, nil
}
