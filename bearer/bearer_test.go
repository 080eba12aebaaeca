package bearer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	srv   *keycloaktest.Server
	kc    *keycloaktest.Realm
	realm *cloakroom.Realm
	v     *cloakroom.Verifier
}

func newEnv(t *testing.T, logger *slog.Logger) *env {
	t.Helper()
	if logger == nil {
		logger = quiet
	}
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	realm, err := cloakroom.NewRealm(kc.Issuer(), cloakroom.WithLogger(logger), cloakroom.WithRefetchInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, kc: kc, realm: realm, v: v}
}

func (e *env) auth(t *testing.T, opts ...bearer.Option) *bearer.Authenticator {
	t.Helper()
	a, err := bearer.New(e.v, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// whoami answers with the principal's id, or "anonymous".
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := bearer.FromContext(r.Context())
	if !ok {
		io.WriteString(w, "anonymous")
		return
	}
	io.WriteString(w, p.ID)
})

type response struct {
	status int
	header http.Header
	code   string
	detail string
	body   string
}

func do(t *testing.T, h http.Handler, setup func(r *http.Request)) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/things", nil)
	if setup != nil {
		setup(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := response{status: w.Code, header: w.Header(), body: w.Body.String()}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		var body struct{ Code, Detail string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("error body is not JSON: %q", w.Body.String())
		}
		res.code, res.detail = body.Code, body.Detail
	}
	return res
}

func withToken(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	h := e.auth(t).Authenticate(whoami)
	aliceID, _ := e.kc.UserID("alice")
	good := e.kc.MustToken(t, "alice", "cloakroom")
	tests := []struct {
		name       string
		setup      func(*http.Request)
		wantStatus int
		wantCode   string
		wantBody   string
		wantAuth   string // substring of WWW-Authenticate
	}{
		{"no header is anonymous", nil, 200, "", "anonymous", ""},
		{"other scheme is anonymous", func(r *http.Request) { r.Header.Set("Authorization", "Basic YTpi") }, 200, "", "anonymous", ""},
		{"token in URL only is ignored", func(r *http.Request) { r.URL.RawQuery = "access_token=" + good }, 200, "", "anonymous", ""},
		{"valid token", withToken(good), 200, "", aliceID, ""},
		{"scheme is case-insensitive", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+good) }, 200, "", aliceID, ""},
		{"invalid token", withToken(e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithUnknownKey())), 401, "token_not_valid", "", `error="invalid_token"`},
		{"expired token", withToken(e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithExpired())), 401, "token_expired", "", `error="invalid_token"`},
		{"wrong audience", withToken(e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithAudience("account"))), 401, "token_not_valid", "", "Audience mapper"},
		{"garbage", withToken("not-a-jwt"), 401, "token_not_valid", "", `error="invalid_token"`},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401, "token_not_valid", "", `error="invalid_token"`},
		{"space inside token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc def") }, 401, "token_not_valid", "", `error="invalid_token"`},
		{"1 MB token", withToken(strings.Repeat("a", 1<<20)), 401, "token_not_valid", "", `error="invalid_token"`},
		{"two Authorization headers", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+good)
			r.Header.Add("Authorization", "Bearer "+good)
		}, 400, "invalid_request", "", `error="invalid_request"`},
		{"header and URL token", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+good)
			r.URL.RawQuery = "access_token=" + good
		}, 400, "invalid_request", "", `error="invalid_request"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := do(t, h, tt.setup)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", res.status, tt.wantStatus, res.body)
			}
			if tt.wantBody != "" && res.body != tt.wantBody {
				t.Fatalf("body = %q, want %q", res.body, tt.wantBody)
			}
			if res.code != tt.wantCode {
				t.Fatalf("code = %q, want %q", res.code, tt.wantCode)
			}
			if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wantAuth) {
				t.Fatalf("WWW-Authenticate = %q, want it to contain %q", got, tt.wantAuth)
			}
			if tt.wantStatus >= 400 {
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), `Bearer realm="demo"`) {
					t.Fatalf("WWW-Authenticate = %q, want the realm", res.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(res.body, good[:40]) || strings.Contains(res.header.Get("WWW-Authenticate"), good[:40]) {
					t.Fatal("the answer echoes the token")
				}
			}
		})
	}
}

func TestRequire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.auth(t, bearer.WithPermissionsClaim("resource_access.account.roles"))
	alice := e.kc.MustToken(t, "alice", "cloakroom")
	bob := e.kc.MustToken(t, "bob", "cloakroom")
	tests := []struct {
		name       string
		mw         bearer.Middleware
		token      string
		wantStatus int
		wantAuth   string
	}{
		{"authenticated, anonymous", bearer.RequireAuthenticated(), "", 401, `Bearer realm="demo"`},
		{"authenticated, bob", bearer.RequireAuthenticated(), bob, 200, ""},
		{"any realm role, alice", bearer.RequireAnyRealmRole("admin", "auditor"), alice, 200, ""},
		{"any realm role, bob", bearer.RequireAnyRealmRole("admin", "auditor"), bob, 403, `error="insufficient_scope"`},
		{"all realm roles, alice", bearer.RequireAllRealmRoles("admin", "user"), alice, 200, ""},
		{"all realm roles, bob", bearer.RequireAllRealmRoles("admin", "user"), bob, 403, `error_description="This page requires the roles 'admin' and 'user'."`},
		{"any client role", bearer.RequireAnyClientRole("account", "view-profile"), bob, 200, ""},
		{"any client role, other client", bearer.RequireAnyClientRole("cloakroom", "view-profile"), bob, 403, ""},
		{"all client roles", bearer.RequireAllClientRoles("account", "view-profile", "manage-account"), alice, 200, ""},
		{"all client roles, missing one", bearer.RequireAllClientRoles("account", "view-profile", "delete-everything"), alice, 403, ""},
		{"scopes", bearer.RequireScopes("email", "profile"), alice, 200, ""},
		{"scopes, missing", bearer.RequireScopes("email", "orders:write"), alice, 403, `scope="email orders:write"`},
		{"any scope", bearer.RequireAnyScope("orders:write", "email"), alice, 200, ""},
		{"permission claim", bearer.RequireAnyPermission("manage-account"), alice, 200, ""},
		{"permission claim, missing", bearer.RequireAllPermissions("manage-account", "admin-everything"), alice, 403, ""},
		{"predicate", bearer.RequireFunc("an example.com email", func(p *bearer.Principal) bool { return strings.HasSuffix(p.Claims.Email(), "@example.com") }), bob, 200, ""},
		{"predicate refused", bearer.RequireFunc("the name Alice", func(p *bearer.Principal) bool { return p.Claims.GivenName() == "Alice" }), bob, 403, "requires the name Alice"},
		{"anonymous on a role route", bearer.RequireAnyRealmRole("user"), "", 401, ""},
		{"requirement", bearer.Require(cloakroom.AllOf(cloakroom.AnyRealmRole("admin"), cloakroom.AllScopes("email"))), alice, 200, ""},
		{"requirement refused, scope named", bearer.Require(cloakroom.AllOf(cloakroom.AnyRealmRole("user"), cloakroom.AllScopes("orders:write"))), alice, 403, `error="insufficient_scope", error_description="This page requires the role 'user' and the scope 'orders:write'.", scope="orders:write"`},
		{"no roles configured", bearer.RequireAllRealmRoles(), alice, 403, "a role, but none is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := a.Authenticate(tt.mw(whoami))
			var setup func(*http.Request)
			if tt.token != "" {
				setup = withToken(tt.token)
			}
			res := do(t, h, setup)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", res.status, tt.wantStatus, res.body)
			}
			if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wantAuth) {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, tt.wantAuth)
			}
			switch tt.wantStatus {
			case 401:
				if res.code != "not_authenticated" || strings.Contains(res.header.Get("WWW-Authenticate"), "error=") {
					t.Fatalf("anonymous refusal: code %q, header %q", res.code, res.header.Get("WWW-Authenticate"))
				}
			case 403:
				if res.code != "permission_denied" {
					t.Fatalf("code = %q", res.code)
				}
			}
		})
	}
}

func TestRequireWithoutAuthenticateFailsClosed(t *testing.T) {
	t.Parallel()
	res := do(t, bearer.RequireAuthenticated()(whoami), nil)
	if res.status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", res.status)
	}
}

func TestUserMapper(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	type localUser struct{ ID, Sub string }
	var mu sync.Mutex
	calls := 0
	a := e.auth(t, bearer.WithUserMapper(func(ctx context.Context, p *bearer.Principal) (any, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		switch p.Username {
		case "bob":
			return nil, errors.Join(bearer.ErrUserRejected, errors.New("bob is deactivated here"))
		case "service-account-cloakroom":
			return nil, errors.New("database down")
		}
		return localUser{ID: "local-1", Sub: p.ID}, nil
	}))
	h := a.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := bearer.User[localUser](r.Context())
		if !ok {
			http.Error(w, "no user", 500)
			return
		}
		io.WriteString(w, u.ID+" "+u.Sub)
	}))
	aliceID, _ := e.kc.UserID("alice")
	if res := do(t, h, withToken(e.kc.MustToken(t, "alice", "cloakroom"))); res.status != 200 || res.body != "local-1 "+aliceID {
		t.Fatalf("alice: %d %q", res.status, res.body)
	}
	if res := do(t, h, withToken(e.kc.MustToken(t, "bob", "cloakroom"))); res.status != 403 || res.code != "permission_denied" {
		t.Fatalf("bob: %d %q", res.status, res.body)
	}
	if res := do(t, h, withToken(e.kc.MustToken(t, "service-account-cloakroom", "cloakroom"))); res.status != 500 || strings.Contains(res.body, "database") {
		t.Fatalf("mapper failure: %d %q", res.status, res.body)
	}
	if calls != 3 {
		t.Fatalf("mapper called %d times, want 3", calls)
	}
}

func TestIdentityClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, bad := range []string{"preferred_username", "email", ""} {
		if _, err := bearer.New(e.v, bearer.WithIdentityClaim(bad)); err == nil {
			t.Errorf("WithIdentityClaim(%q) accepted", bad)
		}
	}
	h := e.auth(t, bearer.WithIdentityClaim("employee_id")).Authenticate(whoami)
	if res := do(t, h, withToken(e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithClaim("employee_id", "E-7")))); res.body != "E-7" {
		t.Fatalf("body = %q", res.body)
	}
	if res := do(t, h, withToken(e.kc.MustToken(t, "alice", "cloakroom"))); res.status != 401 {
		t.Fatalf("token without the identity claim: %d", res.status)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	creds := cloakroom.ClientCredentials{ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret}
	h := e.auth(t, bearer.WithIntrospection(bearer.IntrospectionConfig{Client: creds})).Authenticate(bearer.RequireAuthenticated()(whoami))

	token := e.kc.MustToken(t, "alice", "cloakroom")
	if res := do(t, h, withToken(token)); res.status != 200 {
		t.Fatalf("active token: %d %s", res.status, res.body)
	}
	// The session ends in Keycloak: the token is refused before its exp.
	for _, sid := range e.kc.SessionIDs("alice") {
		e.kc.EndSession(sid)
	}
	if res := do(t, h, withToken(token)); res.status != 401 || res.code != "token_not_valid" {
		t.Fatalf("token of an ended session: %d %s", res.status, res.body)
	}
	// Keycloak unreachable: 503, never anonymous, never a pass.
	live := e.kc.MustToken(t, "bob", "cloakroom")
	for _, f := range []keycloaktest.Fault{{Refuse: true}, {Status: 500, Paths: []string{"/introspect"}}} {
		e.srv.SetFault(f)
		res := do(t, h, withToken(live))
		if res.status != 503 || res.code != "idp_unavailable" || res.header.Get("Retry-After") == "" {
			t.Fatalf("fault %+v: %d %s", f, res.status, res.body)
		}
		e.srv.ClearFault()
	}
	// Wrong client credentials fail closed too.
	bad := e.auth(t, bearer.WithIntrospection(bearer.IntrospectionConfig{Client: cloakroom.ClientCredentials{ClientID: "cloakroom", ClientSecret: "wrong"}}))
	if res := do(t, bad.Authenticate(whoami), withToken(live)); res.status != 503 {
		t.Fatalf("wrong introspection secret: %d %s", res.status, res.body)
	}
}

func TestIntrospectionCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	creds := cloakroom.ClientCredentials{ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret}
	h := e.auth(t, bearer.WithIntrospection(bearer.IntrospectionConfig{Client: creds, CacheTTL: time.Minute})).Authenticate(whoami)
	token := e.kc.MustToken(t, "alice", "cloakroom")
	if res := do(t, h, withToken(token)); res.status != 200 {
		t.Fatalf("first: %d", res.status)
	}
	// Within the TTL the answer comes from the cache, even with Keycloak down.
	e.srv.SetFault(keycloaktest.Fault{Refuse: true})
	defer e.srv.ClearFault()
	if res := do(t, h, withToken(token)); res.status != 200 {
		t.Fatalf("cached: %d %s", res.status, res.body)
	}
	if _, err := bearer.New(e.v, bearer.WithIntrospection(bearer.IntrospectionConfig{})); err == nil {
		t.Fatal("introspection without credentials accepted")
	}
}

func TestErrorDescriptionIsHeaderSafe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	h := e.auth(t).Authenticate(whoami)
	tok := e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithIssuer("http://evil\"\\\n\x01é/realms/demo"))
	res := do(t, h, withToken(tok))
	got := res.header.Get("WWW-Authenticate")
	_, desc, _ := strings.Cut(got, `error_description="`)
	desc = strings.TrimSuffix(desc, `"`)
	if res.status != 401 || desc == "" || strings.ContainsAny(desc, "\"\\\n\x01é") {
		t.Fatalf("WWW-Authenticate = %q", got)
	}
}

func TestNoTokenInLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, logger)
	a := e.auth(t, bearer.WithLogger(logger), bearer.WithIntrospection(bearer.IntrospectionConfig{
		Client: cloakroom.ClientCredentials{ClientID: "cloakroom", ClientSecret: keycloaktest.DemoClientSecret},
	}))
	h := a.Authenticate(bearer.RequireAnyRealmRole("admin")(whoami))
	tokens := []string{
		e.kc.MustToken(t, "alice", "cloakroom"),
		e.kc.MustToken(t, "bob", "cloakroom"),
		e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithExpired()),
		e.kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithUnknownKey()),
	}
	for _, tok := range tokens {
		do(t, h, withToken(tok))
	}
	e.srv.SetFault(keycloaktest.Fault{Status: 503})
	do(t, h, withToken(tokens[0]))
	e.srv.ClearFault()
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if !strings.Contains(logs, "refused") {
		t.Fatalf("no refusal logged: %q", logs)
	}
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(logs, part) {
				t.Fatal("token material in the logs")
			}
		}
	}
	if strings.Contains(logs, keycloaktest.DemoClientSecret) {
		t.Fatal("client secret in the logs")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestCustomErrorWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.auth(t, bearer.WithErrorWriter(func(w http.ResponseWriter, r *http.Request, err *bearer.Error) {
		w.WriteHeader(err.Status)
		io.WriteString(w, "custom:"+err.Code)
	}))
	res := do(t, a.Authenticate(bearer.RequireAuthenticated()(whoami)), nil)
	if res.status != 401 || res.body != "custom:not_authenticated" {
		t.Fatalf("%d %q", res.status, res.body)
	}
}

func TestNewRejectsOtherVerifierKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	idv, _ := e.realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "cloakroom", Kind: cloakroom.IDToken})
	if _, err := bearer.New(idv); err == nil {
		t.Fatal("bearer accepted an ID-token verifier")
	}
	if _, err := bearer.New(nil); err == nil {
		t.Fatal("bearer accepted a nil verifier")
	}
}

func TestVerifyOutsideMiddleware(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.auth(t)
	r := httptest.NewRequest("GET", "/ws", nil)
	if p, err := a.Verify(r); p != nil || err != nil {
		t.Fatalf("anonymous: %v %v", p, err)
	}
	r.Header.Set("Authorization", "Bearer "+e.kc.MustToken(t, "bob", "cloakroom"))
	p, err := a.Verify(r)
	if err != nil || p.Username != "bob" || !strings.Contains(p.String(), "bob") || strings.Contains(p.String(), p.Token) {
		t.Fatalf("Verify = %v, %v", p, err)
	}
	r.Header.Set("Authorization", "Bearer x.y.z")
	var be *bearer.Error
	if _, err := a.Verify(r); !errors.As(err, &be) || be.Status != 401 {
		t.Fatalf("invalid: %v", err)
	}
}

func TestOpenAPISecurityScheme(t *testing.T) {
	t.Parallel()
	realm, _ := cloakroom.NewRealm("https://sso.example.com/realms/demo")
	s := bearer.OpenAPISecurityScheme(realm)
	if s["type"] != "openIdConnect" || s["openIdConnectUrl"] != "https://sso.example.com/realms/demo/.well-known/openid-configuration" {
		t.Fatalf("%v", s)
	}
}
