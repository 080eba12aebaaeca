package main

import (
	"html/template"
	"net/http"
	"slices"

	"github.com/cloakroom/cloakroom/login"
)

var layout = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · cloakroom webapp</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}nav a,nav form{margin-right:1rem;display:inline}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}</style>
</head><body>
<nav><a href="/">Home</a><a href="/profile">Profile</a><a href="/admin">Admin</a>
{{if .S}}<form method="post" action="/auth/logout"><input type="hidden" name="csrf_token" value="{{.S.CSRFToken}}"><button id="logout">Log out {{.S.Username}}</button></form>
{{else}}<a id="login" href="/auth/login?return_to=/profile">Log in</a> <a href="/auth/register">Register</a>{{end}}</nav>
<h1>{{.Title}}</h1>
{{if eq .Page "home"}}<p id="greeting">{{if .S}}Hello {{.S.IDClaims.Name}}.{{else}}Hello, stranger. Log in to see your profile.{{end}}</p>
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
</body></html>`))

type view struct {
	Title, Page string
	S           *login.Session
	Roles       []string
	ClientRoles map[string][]string
}

func render(w http.ResponseWriter, r *http.Request, title, page string) {
	v := view{Title: title, Page: page}
	if s, ok := login.FromContext(r.Context()); ok {
		v.S = s
		v.Roles = s.AccessClaims.RealmRoles()
		slices.Sort(v.Roles)
		v.ClientRoles = s.AccessClaims.ResourceAccess()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = layout.Execute(w, v)
}

func home(w http.ResponseWriter, r *http.Request)      { render(w, r, "Home", "home") }
func profile(w http.ResponseWriter, r *http.Request)   { render(w, r, "Your profile", "profile") }
func adminPage(w http.ResponseWriter, r *http.Request) { render(w, r, "Administration", "admin") }
