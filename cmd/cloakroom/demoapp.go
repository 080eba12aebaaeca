package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/login"
)

// demoApp is the sample upstream application of `cloakroom demo`. It knows
// nothing about Keycloak: it reads the identity headers the gateway sets,
// as any application behind the gateway would, in any language. It trusts
// them because it listens on a loopback port that only the gateway uses.
type demoApp struct {
	gatewayURL string // e.g. http://127.0.0.1:8000
	issuer     string
	clientID   string
}

// demoIdentity is what the gateway told the application about the caller.
type demoIdentity struct {
	User, Email, Username, Roles, Groups string
}

func identityOf(r *http.Request) demoIdentity {
	h := gateway.DefaultHeaders
	return demoIdentity{
		User:     r.Header.Get(h.User),
		Email:    r.Header.Get(h.Email),
		Username: r.Header.Get(h.Username),
		Roles:    r.Header.Get(h.Roles),
		Groups:   r.Header.Get(h.Groups),
	}
}

// realmRoles returns the realm roles in the roles header (client roles
// come as "client:role").
func (id demoIdentity) realmRoles() []string {
	roles := []string{}
	for _, r := range strings.Split(id.Roles, ",") {
		if r = strings.TrimSpace(r); r != "" && !strings.Contains(r, ":") {
			roles = append(roles, r)
		}
	}
	return roles
}

// handler returns the application's routes. The gateway decides who gets
// where (/admin needs realm role admin, /api realm role user); the
// application only displays.
func (a *demoApp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page(demoHomePage))
	mux.HandleFunc("GET /admin", a.page(demoAdminPage))
	mux.HandleFunc("GET /call-api", a.page(demoAPIPage))
	mux.HandleFunc("GET /assets/call-api.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write([]byte(demoCallAPIScript))
	})
	mux.HandleFunc("GET /api/hello", a.hello)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.render(w, r, http.StatusNotFound, demoNotFoundPage)
	})
	return mux
}

func (a *demoApp) page(t *template.Template) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { a.render(w, r, http.StatusOK, t) }
}

func (a *demoApp) render(w http.ResponseWriter, r *http.Request, status int, t *template.Template) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", demoCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = t.Execute(w, struct {
		ID                           demoIdentity
		GatewayURL, Issuer, ClientID string
		Path                         string
	}{identityOf(r), a.gatewayURL, a.issuer, a.clientID, r.URL.Path})
}

// hello is the JSON API behind the gateway's API route: a bearer token or
// the browser session gets here, with realm role user.
func (a *demoApp) hello(w http.ResponseWriter, r *http.Request) {
	id := identityOf(r)
	via := "session"
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
		via = "bearer"
	}
	name := id.Username
	if name == "" {
		name = id.User
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"message":     "Hello, " + name + "!",
		"sub":         id.User,
		"username":    id.Username,
		"realm_roles": id.realmRoles(),
		"via":         via,
	})
}

// demoCSS is the style of the gateway's own pages (login.Stylesheet), so
// the sample application and the sign-in pages look alike, plus the
// navigation bar and the identity table.
const demoCSS = login.Stylesheet +
	`main{max-width:46rem}nav{display:flex;flex-wrap:wrap;gap:.5rem 1rem;padding-bottom:.75rem;margin-bottom:1rem;border-bottom:1px solid #d8dce3}` +
	`table{border-collapse:collapse;margin:1rem 0;width:100%}th,td{border:1px solid #d8dce3;padding:.35rem .6rem;text-align:left;vertical-align:top}` +
	`th{background:#f4f5f7;font-weight:600}code,pre{background:#f4f5f7;padding:.1rem .3rem}pre{padding:.6rem;overflow-x:auto;white-space:pre-wrap}.muted{color:#5b6473}`

// demoCSP allows the page's one inline stylesheet by its hash, the API
// page's script from this origin, and nothing else.
var demoCSP = func() string {
	sum := sha256.Sum256([]byte(demoCSS))
	return "default-src 'self'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

const demoLayout = `{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{block "title" .}}cloakroom demo{{end}}</title>
<style>` + demoCSS + `</style></head><body><main>
<nav><a id="home-link" href="/">Home</a><a id="admin-link" href="/admin">Admin page</a><a id="api-page-link" href="/call-api">Call the API</a><a id="logout-link" href="/_cloakroom/logout">Log out</a></nav>
{{end}}
{{define "bottom"}}<p class="muted">Signed in as <strong id="signed-in-as">{{.ID.Username}}</strong> through the cloakroom gateway.</p>
</main></body></html>
{{end}}`

func demoTemplate(name, body string) *template.Template {
	t := template.Must(template.New("layout").Parse(demoLayout))
	return template.Must(t.New(name).Parse(body))
}

var demoHomePage = demoTemplate("home", `{{template "top" .}}
<h1>Hello, <span id="greeting">{{.ID.Username}}</span></h1>
<p>This application knows nothing about Keycloak. The gateway logged you in
and sends your identity with every request, in these headers
(any copy sent by a browser is removed first):</p>
<table id="identity">
<tr><th>X-Forwarded-User <span class="muted">(sub: key your data on this)</span></th><td id="user">{{.ID.User}}</td></tr>
<tr><th>X-Forwarded-Email</th><td id="email">{{.ID.Email}}</td></tr>
<tr><th>X-Forwarded-Preferred-Username <span class="muted">(display only)</span></th><td id="username">{{.ID.Username}}</td></tr>
<tr><th>X-Forwarded-Roles</th><td id="roles">{{.ID.Roles}}</td></tr>
<tr><th>X-Forwarded-Groups</th><td id="groups">{{.ID.Groups}}</td></tr>
</table>
<p>Try the <a href="/admin">admin page</a> (the gateway lets only realm role
<code>admin</code> in: alice, not bob), <a href="/call-api">call the API</a>, or
see what the gateway knows at <a href="/_cloakroom/me">/_cloakroom/me</a>.</p>
{{template "bottom" .}}`)

var demoAdminPage = demoTemplate("admin", `{{template "top" .}}
<h1>Admin area</h1>
<p id="admin">Welcome to the admin area, {{.ID.Username}}.</p>
<p>The gateway checked that you have the realm role <code>admin</code> before
this application saw the request. Your roles: <span id="roles">{{.ID.Roles}}</span>.</p>
{{template "bottom" .}}`)

var demoAPIPage = demoTemplate("api", `{{template "top" .}}
<h1>Calling the API</h1>
<p>The gateway route <code>/api</code> accepts a bearer token (for programs)
or the browser session (for this page), and requires realm role <code>user</code>.</p>
<p><button id="call-api" type="button">Call /api/hello from this page</button>
or open <a id="api-link" href="/api/hello">/api/hello</a>.</p>
<pre id="api-result" class="muted">(not called yet)</pre>
<h2>From a terminal</h2>
<p>Get a token from the provider with the client secret printed where
<code>cloakroom demo</code> runs, and send it:</p>
<pre id="curl">TOKEN=$(curl -s {{.Issuer}}/protocol/openid-connect/token \
  -d grant_type=password -d client_id={{.ClientID}} -d client_secret=$CLIENT_SECRET \
  -d username=alice -d password=alice | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -H "Authorization: Bearer $TOKEN" {{.GatewayURL}}/api/hello</pre>
<script src="/assets/call-api.js"></script>
{{template "bottom" .}}`)

var demoNotFoundPage = demoTemplate("notfound", `{{template "top" .}}
<h1>Not found</h1>
<p>This demo application has no page at <code>{{.Path}}</code>.</p>
{{template "bottom" .}}`)

// demoCallAPIScript calls the API with the page's own session: a same-origin
// fetch sends the gateway's session cookie.
const demoCallAPIScript = `document.getElementById("call-api").addEventListener("click", async () => {
  const out = document.getElementById("api-result");
  out.textContent = "calling…";
  try {
    const resp = await fetch("/api/hello", {headers: {"Accept": "application/json"}});
    out.textContent = resp.status + " " + resp.statusText + "\n" + await resp.text();
  } catch (err) {
    out.textContent = "failed: " + err;
  }
});
`
