package keycloaktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The credentials of a user as the admin API shows them
// (GET /users/{id}/credentials): a password credential when the user has a
// password, an otp credential when it has a TOTP secret, each with a
// stable id, the time it was set (createdDate), Keycloak's credentialData
// and no secretData.
//
// Passwords and OTP secrets change in several places (the admin API, the
// login flow's UPDATE_PASSWORD and CONFIGURE_TOTP); credentialState keeps
// what was last seen, and a change noticed later is dated when it is
// noticed.
type credentialState struct {
	password credentialMeta
	pwPlain  string
	pwHash   *PasswordHash
	otp      credentialMeta
	otpSeen  string
	nextPrio int
}

type credentialMeta struct {
	id       string
	created  time.Time
	label    string
	priority int
}

// credentialView is Keycloak's CredentialRepresentation as served.
type credentialView struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	UserLabel      string `json:"userLabel,omitempty"`
	CreatedDate    int64  `json:"createdDate"`
	CredentialData string `json:"credentialData,omitempty"`
}

// argon2CredentialData is what Keycloak 26's default password hashing
// (argon2id) records; a plaintext password set through keycloaktest is
// shown as Keycloak would have stored it.
const argon2CredentialData = `{"hashIterations":5,"algorithm":"argon2","additionalParameters":{"hashLength":["32"],"memory":["7168"],"type":["id"],"version":["1.3"],"parallelism":["1"]}}`

// syncCredsLocked brings u.creds up to date with the user's password and
// OTP secret; changes it had not seen yet are dated now.
func (r *Realm) syncCredsLocked(u *user) *credentialState {
	now := r.now()
	cs := u.creds
	if cs == nil {
		// First look: what the user was created with dates from its creation.
		cs = &credentialState{nextPrio: 10}
		u.creds = cs
		now = u.created
	}
	hasPassword := u.hash != nil || u.password != ""
	switch {
	case !hasPassword:
		cs.password = credentialMeta{}
	case cs.password.id == "":
		cs.password = credentialMeta{id: newUUID(), created: now, priority: cs.nextPrio}
		cs.nextPrio += 10
	case cs.pwPlain != u.password || cs.pwHash != u.hash:
		cs.password.created = now
	}
	cs.pwPlain, cs.pwHash = u.password, u.hash
	switch {
	case u.totpSecret == "":
		cs.otp = credentialMeta{}
	case cs.otp.id == "" || cs.otpSeen != u.totpSecret:
		// Configuring OTP again makes a new credential in Keycloak.
		cs.otp = credentialMeta{id: newUUID(), created: now, priority: cs.nextPrio}
		cs.nextPrio += 10
	}
	cs.otpSeen = u.totpSecret
	return cs
}

// credentialViewsLocked lists the user's credentials by priority.
func (r *Realm) credentialViewsLocked(u *user) []credentialView {
	cs := r.syncCredsLocked(u)
	type entry struct {
		prio int
		view credentialView
	}
	var list []entry
	if cs.password.id != "" {
		data := argon2CredentialData
		if u.hash != nil {
			b, _ := json.Marshal(u.hash.credentialData())
			data = string(b)
		}
		list = append(list, entry{cs.password.priority, credentialView{ID: cs.password.id, Type: "password",
			UserLabel: cs.password.label, CreatedDate: cs.password.created.UnixMilli(), CredentialData: data}})
	}
	if cs.otp.id != "" {
		data := fmt.Sprintf(`{"subType":"totp","digits":%d,"counter":0,"period":%d,"algorithm":"HmacSHA1"}`, totpDigits, totpPeriod)
		list = append(list, entry{cs.otp.priority, credentialView{ID: cs.otp.id, Type: "otp",
			UserLabel: cs.otp.label, CreatedDate: cs.otp.created.UnixMilli(), CredentialData: data}})
	}
	slices.SortStableFunc(list, func(a, b entry) int { return a.prio - b.prio })
	out := []credentialView{}
	for _, e := range list {
		out = append(out, e.view)
	}
	return out
}

// credentialRoutes serves /users/{id}/credentials[/{credentialId}[/...]]
// and the credential-type endpoints next to it.
func (a *adminReq) credentialRoutes(u *user, m string, rest []string, body []byte) adminResp {
	view, manage := a.perms.viewUsers(), a.perms.manageUsers()
	only := func(method string, ok bool, f func() adminResp) adminResp {
		if m != method {
			return respMethodNotAllowed()
		}
		if !ok {
			return respForbidden()
		}
		return f()
	}
	switch rest[0] {
	case "configured-user-storage-credential-types":
		if len(rest) == 1 {
			// Always empty for users that no user storage backs.
			return only(http.MethodGet, view, func() adminResp { return respJSON(http.StatusOK, []string{}) })
		}
		return respNoRoute()
	case "disable-credential-types":
		if len(rest) == 1 {
			// Disabling applies to credentials of user storages only.
			return only(http.MethodPut, manage, respNoContent)
		}
		return respNoRoute()
	}
	if len(rest) == 1 {
		return only(http.MethodGet, view, func() adminResp { return respJSON(http.StatusOK, a.r.credentialViewsLocked(u)) })
	}
	cs := a.r.syncCredsLocked(u)
	var meta *credentialMeta
	for _, c := range []*credentialMeta{&cs.password, &cs.otp} {
		if c.id != "" && c.id == rest[1] {
			meta = c
		}
	}
	// An unknown id is hidden from callers that cannot query users.
	notFound := func() adminResp {
		if a.perms.queryUsers() {
			return respError(http.StatusNotFound, "Credential not found")
		}
		return respForbidden()
	}
	switch {
	case len(rest) == 2:
		return only(http.MethodDelete, manage, func() adminResp {
			switch {
			case meta == nil:
				return notFound()
			case meta == &cs.password:
				u.password, u.hash = "", nil
			default:
				u.totpSecret, u.totpLastStep = "", 0
			}
			a.r.syncCredsLocked(u)
			return respNoContent()
		})
	case len(rest) == 3 && rest[2] == "userLabel":
		return only(http.MethodPut, manage, func() adminResp {
			if meta == nil {
				return notFound()
			}
			label := string(body)
			if strings.TrimSpace(label) == "" {
				return respJSON(http.StatusBadRequest, map[string]string{"error": "missingCredentialLabel", "error_description": "Credential label must not be empty"})
			}
			meta.label = label
			return respNoContent()
		})
	case len(rest) == 3 && rest[2] == "moveToFirst", len(rest) == 4 && rest[2] == "moveAfter":
		return only(http.MethodPost, manage, func() adminResp {
			if meta == nil {
				return notFound()
			}
			if len(rest) == 3 {
				meta.priority = min(cs.password.priority, cs.otp.priority) - 10
				return respNoContent()
			}
			var after *credentialMeta
			for _, c := range []*credentialMeta{&cs.password, &cs.otp} {
				if c.id != "" && c.id == rest[3] {
					after = c
				}
			}
			if after == nil {
				return notFound()
			}
			if after != meta {
				meta.priority = after.priority + 5
			}
			return respNoContent()
		})
	}
	return respNoRoute()
}
