package main

import (
	"html/template"
	"net/http"
	"slices"

	"github.com/cloakroom/cloakroom/login"
)

// pageCSS is the style of cloakroom's own pages (login.Stylesheet), so the
// application and its sign-in pages look alike, plus the navigation bar and
// the claims table.
const pageCSS = login.Stylesheet +
	`main{max-width:44rem}nav{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding-bottom:.75rem;margin-bottom:1rem;border-bottom:1px solid #d8dce3}nav form{margin:0 0 0 auto}` +
	`table{border-collapse:collapse;width:100%}td,th{border:1px solid #d8dce3;padding:.25rem .5rem;text-align:left;vertical-align:top}th{font-weight:600;background:#f4f5f7}`

var layout = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} · cloakroom webapp</title>
<style>` + pageCSS + `</style>
</head><body><main>
<nav><a href="/">Home</a><a href="/profile">Profile</a><a href="/admin">Admin</a>
{{if .S}}<form method="post" action="{{.LogoutURL}}">{{.S.LogoutFormFields}}<button type="submit" id="logout">Sign out {{.S.Username}}</button></form>
{{else}}<a id="login" href="{{.LoginURL}}">Sign in</a> <a href="{{.RegisterURL}}">Register</a>{{end}}</nav>
<h1>{{.Title}}</h1>
{{if eq .Page "home"}}<p id="greeting">{{if .S}}Hello {{.S.IDClaims.Name}}.{{else}}Hello, stranger. Sign in to see your profile.{{end}}</p>
{{else if eq .Page "profile"}}
<table id="claims">
<tr><th>subject (your id)</th><td id="sub">{{.S.Subject}}</td></tr>
<tr><th>username</th><td id="username">{{.S.Username}}</td></tr>
<tr><th>name</th><td>{{.S.IDClaims.Name}}</td></tr>
<tr><th>email</th><td>{{.S.IDClaims.Email}} {{if .S.IDClaims.EmailVerified}}(verified){{end}}</td></tr>
<tr><th>realm roles</th><td id="roles">{{range .Roles}}{{.}} {{end}}</td></tr>
<tr><th>client roles</th><td>{{range $c, $r := .ClientRoles}}{{$c}}: {{range $r}}{{.}} {{end}}<br>{{end}}</td></tr>
<tr><th>authentication level (acr)</th><td>{{.S.IDClaims.ACR}}</td></tr>
<tr><th>access token expires</th><td>{{.S.ExpiresAt.Format "15:04:05"}}</td></tr>
</table>
{{else if eq .Page "admin"}}<p id="admin">Only users with the realm role "admin" see this page.</p>{{end}}
</main></body></html>`))

type view struct {
	Title, Page string
	S           *login.Session
	Roles       []string
	ClientRoles map[string][]string
	// Where the navigation bar's links and sign-out form lead: the login
	// Handler knows its paths (and the form carries S.LogoutFormFields,
	// the CSRF token).
	LoginURL, RegisterURL, LogoutURL string
}

// pages renders the application's pages; auth gives the sign-in and
// sign-out URLs.
type pages struct{ auth *login.Handler }

func (p pages) render(w http.ResponseWriter, r *http.Request, title, page string) {
	v := view{Title: title, Page: page, LoginURL: p.auth.LoginURL("/profile"), RegisterURL: p.auth.RegisterURL("/profile"), LogoutURL: p.auth.LogoutURL("")}
	if s, ok := login.FromContext(r.Context()); ok {
		v.S = s
		v.Roles = s.AccessClaims.RealmRoles()
		slices.Sort(v.Roles)
		v.ClientRoles = s.AccessClaims.ResourceAccess()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = layout.Execute(w, v)
}

func (p pages) home(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, "Home", "home")
}

func (p pages) profile(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, "Your profile", "profile")
}

func (p pages) admin(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, "Administration", "admin")
}
