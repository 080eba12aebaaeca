package keycloaktest

import (
	"bytes"
	"html/template"
	"net/http"
)

// page is the data of one HTML page. The pages keep the element ids and
// field names of Keycloak's base login theme, so clients, browser tests and
// scripts written against Keycloak find their way.
type page struct {
	Kind        string // template name
	Title       string
	Realm       string
	Action      string // form action
	Message     string // global message
	MessageType string // "error" (default), "info", "success", "warning"
	Username    string
	Fields      map[string]string // values to show again
	FieldErrors map[string]string // per-field messages
	Hidden      []kv
	PostURL     template.URL // form_post target
	Secret      string       // CONFIGURE_TOTP secret (base32)
	SecretShown string       // the same, grouped for reading
	RegisterURL string
	LoginURL    string
	AIA         bool   // application-initiated action: show Cancel
	ActionID    string // required action id
	ActionName  string
	Email       string
	SessionCode string
	Link        string // "back to application" or "continue" link
	LinkText    string
	Reauth      bool   // username fixed, re-authentication
	Note        string // RealmConfig.LoginNote, under the login form
}

func (p *page) Value(name string) string { return p.Fields[name] }

func (p *page) Error(name string) string { return p.FieldErrors[name] }

const layoutHTML = `<!DOCTYPE html>
<html lang="en" class="login-pf">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex, nofollow">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:sans-serif;background:#f0f0f0;margin:0}
#kc-container{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:4px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
#kc-header{text-align:center;color:#555;letter-spacing:.1em;text-transform:uppercase;margin-bottom:1rem}
label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password],input[type=email]{width:100%;box-sizing:border-box;padding:.5rem}
input[type=submit],button{margin-top:1rem;padding:.5rem 1rem}
.alert-error{color:#c9190b}.alert-success{color:#3e8635}.alert-info,.alert-warning{color:#2b9af3}
.kc-input-error{color:#c9190b;font-size:.85em}
</style>
</head>
<body>
<div id="kc-container">
<div id="kc-header"><div id="kc-header-wrapper">{{.Realm}}</div></div>
<div id="kc-content">
<h1 id="kc-page-title">{{.Title}}</h1>
{{if and .Message (ne .Kind "error")}}<div class="alert-{{if .MessageType}}{{.MessageType}}{{else}}error{{end}} pf-c-alert pf-m-inline"><span class="kc-feedback-text">{{.Message}}</span></div>{{end}}
{{template "body" .}}
</div>
</div>
</body>
</html>
`

var pageBodies = map[string]string{
	"login": `<form id="kc-form-login" onsubmit="login.disabled = true; return true;" action="{{.Action}}" method="post">
<label for="username">Username or email</label>
<input tabindex="1" id="username" name="username" value="{{.Username}}" type="text" {{if .Reauth}}readonly{{else}}autofocus{{end}} autocomplete="username">
<label for="password">Password</label>
<input tabindex="2" id="password" name="password" type="password" autocomplete="current-password"{{if .Reauth}} autofocus{{end}}>
<div id="kc-form-buttons"><input tabindex="4" name="login" id="kc-login" type="submit" value="Sign In"></div>
</form>
{{if .RegisterURL}}<div id="kc-registration"><span>New user? <a tabindex="6" href="{{.RegisterURL}}">Register</a></span></div>{{end}}
{{with .Note}}<p id="cloakroom-login-note" style="margin-top:1.5rem;color:#555;font-size:.9em">{{.}}</p>{{end}}`,

	"otp": `<form id="kc-otp-login-form" action="{{.Action}}" method="post">
<label for="otp">One-time code</label>
<input id="otp" name="otp" autocomplete="one-time-code" type="text" autofocus dir="ltr">
{{with .Error "totp"}}<span id="input-error-otp-code" class="kc-input-error">{{.}}</span>{{end}}
<div id="kc-form-buttons"><input name="login" id="kc-login" type="submit" value="Sign In"></div>
</form>`,

	"update-password": `<form id="kc-passwd-update-form" action="{{.Action}}" method="post">
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" readonly style="display:none;">
<label for="password-new">New Password</label>
<input type="password" id="password-new" name="password-new" autofocus autocomplete="new-password">
{{with .Error "password"}}<span id="input-error-password" class="kc-input-error">{{.}}</span>{{end}}
<label for="password-confirm">Confirm password</label>
<input type="password" id="password-confirm" name="password-confirm" autocomplete="new-password">
{{with .Error "password-confirm"}}<span id="input-error-password-confirm" class="kc-input-error">{{.}}</span>{{end}}
<div id="kc-form-buttons"><input type="submit" id="kc-submit" value="Submit">{{if .AIA}} <button type="submit" id="kc-cancel" name="cancel-aia" value="true">Cancel</button>{{end}}</div>
</form>`,

	"update-profile": `<form id="kc-update-profile-form" action="{{.Action}}" method="post">
<label for="email">Email</label>
<input type="text" id="email" name="email" value="{{.Value "email"}}">
{{with .Error "email"}}<span id="input-error-email" class="kc-input-error">{{.}}</span>{{end}}
<label for="firstName">First name</label>
<input type="text" id="firstName" name="firstName" value="{{.Value "firstName"}}">
{{with .Error "firstName"}}<span id="input-error-firstName" class="kc-input-error">{{.}}</span>{{end}}
<label for="lastName">Last name</label>
<input type="text" id="lastName" name="lastName" value="{{.Value "lastName"}}">
{{with .Error "lastName"}}<span id="input-error-lastName" class="kc-input-error">{{.}}</span>{{end}}
<div id="kc-form-buttons"><input type="submit" id="kc-submit" value="Submit">{{if .AIA}} <button type="submit" id="kc-cancel" name="cancel-aia" value="true">Cancel</button>{{end}}</div>
</form>`,

	"configure-totp": `<ol id="kc-totp-settings">
<li><p>Install one of the following applications on your mobile: FreeOTP, Google Authenticator, Microsoft Authenticator</p></li>
<li><p>Open the application and enter the key:</p><p><span id="kc-totp-secret-key">{{.SecretShown}}</span></p>
<ul><li id="kc-totp-type">Type: Time-based</li><li id="kc-totp-algorithm">Algorithm: SHA1</li><li id="kc-totp-digits">Digits: 6</li><li id="kc-totp-period">Interval: 30</li></ul></li>
<li><p>Enter the one-time code provided by the application and click Submit to finish the setup.</p></li>
</ol>
<form id="kc-totp-settings-form" action="{{.Action}}" method="post">
<label for="totp">One-time code</label>
<input type="text" id="totp" name="totp" autocomplete="off" autofocus>
{{with .Error "totp"}}<span id="input-error-otp-code" class="kc-input-error">{{.}}</span>{{end}}
<input type="hidden" id="totpSecret" name="totpSecret" value="{{.Secret}}">
<div id="kc-form-buttons"><input type="submit" id="saveTOTPBtn" value="Submit">{{if .AIA}} <button type="submit" id="kc-cancel" name="cancel-aia" value="true">Cancel</button>{{end}}</div>
</form>`,

	"verify-email": `<p class="instruction">An email with instructions to verify your email address has been sent to your address {{.Email}}.</p>
<form id="kc-verify-email-form" action="{{.Action}}" method="post">
<div id="kc-form-buttons"><input type="submit" id="kc-continue" name="continue" value="Continue">{{if .AIA}} <button type="submit" id="kc-cancel" name="cancel-aia" value="true">Cancel</button>{{end}}</div>
</form>`,

	"terms": `<div id="kc-terms-text"><p>Terms and conditions to be defined</p></div>
<form id="kc-terms-form" action="{{.Action}}" method="post">
<div id="kc-form-buttons"><input name="accept" id="kc-accept" type="submit" value="Accept"> <input name="cancel" id="kc-decline" type="submit" value="Decline"></div>
</form>`,

	"required-action": `<p class="instruction">Perform the following action: <span id="kc-required-action">{{.ActionName}}</span></p>
<form id="kc-required-action-form" action="{{.Action}}" method="post">
<div id="kc-form-buttons"><input type="submit" id="kc-continue" name="continue" value="Continue">{{if .AIA}} <button type="submit" id="kc-cancel" name="cancel-aia" value="true">Cancel</button>{{end}}</div>
</form>`,

	"register": `<form id="kc-register-form" action="{{.Action}}" method="post">
<label for="firstName">First name</label>
<input type="text" id="firstName" name="firstName" value="{{.Value "firstName"}}" autocomplete="given-name">
{{with .Error "firstName"}}<span id="input-error-firstName" class="kc-input-error">{{.}}</span>{{end}}
<label for="lastName">Last name</label>
<input type="text" id="lastName" name="lastName" value="{{.Value "lastName"}}" autocomplete="family-name">
{{with .Error "lastName"}}<span id="input-error-lastName" class="kc-input-error">{{.}}</span>{{end}}
<label for="email">Email</label>
<input type="text" id="email" name="email" value="{{.Value "email"}}" autocomplete="email">
{{with .Error "email"}}<span id="input-error-email" class="kc-input-error">{{.}}</span>{{end}}
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Value "username"}}" autocomplete="username">
{{with .Error "username"}}<span id="input-error-username" class="kc-input-error">{{.}}</span>{{end}}
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="new-password">
{{with .Error "password"}}<span id="input-error-password" class="kc-input-error">{{.}}</span>{{end}}
<label for="password-confirm">Confirm password</label>
<input type="password" id="password-confirm" name="password-confirm" autocomplete="new-password">
{{with .Error "password-confirm"}}<span id="input-error-password-confirm" class="kc-input-error">{{.}}</span>{{end}}
<div id="kc-form-options"><span><a href="{{.LoginURL}}">&laquo; Back to Login</a></span></div>
<div id="kc-form-buttons"><button type="submit" id="kc-register" name="register">Register</button></div>
</form>`,

	"logout-confirm": `<div id="kc-logout-confirm" class="content-area">
<p class="instruction">Do you want to log out?</p>
<form class="form-actions" action="{{.Action}}" onsubmit="confirmLogout.disabled = true; return true;" method="POST">
<input type="hidden" name="session_code" value="{{.SessionCode}}">
<div id="kc-form-buttons"><input tabindex="4" name="confirmLogout" id="kc-logout" type="submit" value="Logout"></div>
</form>
{{if .Link}}<div id="kc-info-message"><p><a href="{{.Link}}">&laquo; Back to Application</a></p></div>{{end}}
</div>`,

	"info": `<div id="kc-info-message"><p class="instruction">{{.ActionName}}</p>
{{if .Link}}<p><a id="kc-info-link" href="{{.Link}}">{{.LinkText}}</a></p>{{end}}</div>`,

	"error": `<div id="kc-error-message"><p class="instruction">{{.Message}}</p>
{{if .Link}}<p><a id="backToApplication" href="{{.Link}}">&laquo; Back to Application</a></p>{{end}}</div>`,
}

// formPostHTML is the auto-submitting form of response_mode=form_post.
const formPostHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Submit This Form</title></head>
<body onload="javascript:document.forms[0].submit()">
<noscript><p>JavaScript is disabled. Click the button below to continue.</p></noscript>
<form method="post" action="{{.PostURL}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><button type="submit">Continue</button></noscript>
</form>
</body>
</html>
`

var pageTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for name, body := range pageBodies {
		t := template.Must(template.New("layout").Parse(layoutHTML))
		template.Must(t.New("body").Parse(body))
		out[name] = t
	}
	out["form_post"] = template.Must(template.New("form_post").Parse(formPostHTML))
	return out
}()

// writePage renders a page. The error alert of a failed page is escaped by
// html/template like every other value.
func writePage(w http.ResponseWriter, status int, p *page) {
	t := pageTemplates[p.Kind]
	if t == nil {
		t = pageTemplates["error"]
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	if p.Kind != "form_post" {
		w.Header().Set("X-Frame-Options", "SAMEORIGIN")
		w.Header().Set("Content-Security-Policy", "frame-src 'self'; frame-ancestors 'self'; object-src 'none';")
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
