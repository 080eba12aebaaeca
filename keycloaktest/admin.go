package keycloaktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// The admin REST API (protocol doc section 6): {base}/admin/realms/{realm}/...
//
// Authorization follows Keycloak: the bearer token must be a live access
// token of the realm itself or of the "master" realm, and the caller's
// current role mappings decide. In the realm itself the client roles of
// realm-management count (realm-admin holds all of them; view-users holds
// query-users and query-groups; view-clients holds query-clients). A
// master-realm caller with the realm role "admin" may do everything in every
// realm; otherwise the roles of the master client "{realm}-realm" count.

// masterRealm is Keycloak's administration realm.
const masterRealm = "master"

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// splitAdminPath splits {base}/admin/realms/{realm}/{rest}.
func (s *Server) splitAdminPath(path string) (realm, rest string, ok bool) {
	if s.basePath != "" {
		p, found := strings.CutPrefix(path, s.basePath)
		if !found || !strings.HasPrefix(p, "/") {
			return "", "", false
		}
		path = p
	}
	p, found := strings.CutPrefix(path, "/admin/realms/")
	if !found {
		return "", "", false
	}
	realm, rest, _ = strings.Cut(p, "/")
	return realm, rest, realm != ""
}

// adminPerms are the caller's effective admin roles on the target realm.
type adminPerms map[string]bool

func (p adminPerms) has(roles ...string) bool {
	return slices.ContainsFunc(roles, func(r string) bool { return p[r] })
}

func (p adminPerms) viewUsers() bool   { return p.has("manage-users", "view-users") }
func (p adminPerms) queryUsers() bool  { return p.has("query-users") || p.viewUsers() }
func (p adminPerms) manageUsers() bool { return p.has("manage-users") }
func (p adminPerms) queryGroups() bool { return p.has("query-groups") || p.viewUsers() }
func (p adminPerms) viewClients() bool { return p.has("view-clients", "manage-clients") }
func (p adminPerms) queryClients() bool {
	return p.has("query-clients") || p.viewClients()
}
func (p adminPerms) viewRealm() bool { return p.has("view-realm", "manage-realm") }

// expandAdminRoles resolves the composite admin roles.
func expandAdminRoles(roles []string) adminPerms {
	p := adminPerms{}
	for _, r := range roles {
		if r == "realm-admin" || r == "*" {
			for _, a := range adminRoles {
				p[a] = true
			}
			continue
		}
		p[r] = true
		for _, c := range adminComposites[r] {
			p[c] = true
		}
	}
	return p
}

// adminCaller authenticates the bearer token of an admin request. It
// returns the realm that issued the token and the token's user id.
func (s *Server) adminCaller(req *http.Request) (*Realm, string, bool) {
	tok := bearerToken(req)
	if tok == "" {
		return nil, "", false
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.HS512})
	if err != nil {
		return nil, "", false
	}
	unverified, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, "", false
	}
	iss := unverified.str("iss")
	for _, r := range s.Realms() {
		issuer := s.issuerFor(req, r.name)
		if issuer != iss {
			continue
		}
		c, hmacSigned, err := r.verifySigned(tok)
		if err != nil || hmacSigned || c.str("typ") != typBearer {
			return nil, "", false
		}
		u, state := r.checkLive(c, issuer)
		if state != tokenOK {
			return nil, "", false
		}
		return r, u.id, true
	}
	return nil, "", false
}

// adminPermsFor computes what the caller may do in target.
func (s *Server) adminPermsFor(caller *Realm, userID string, target *Realm) (adminPerms, bool) {
	caller.mu.RLock()
	defer caller.mu.RUnlock()
	u := caller.users[userID]
	if u == nil {
		return nil, false
	}
	if caller != target {
		if caller.name != masterRealm {
			return nil, false
		}
		if slices.Contains(caller.effectiveRealmRoles(u), "admin") {
			return expandAdminRoles([]string{"realm-admin"}), true
		}
		return expandAdminRoles(caller.effectiveClientRoles(u)[target.name+"-realm"]), true
	}
	roles := caller.effectiveClientRoles(u)[realmManagementClientID]
	if caller.name == masterRealm && slices.Contains(caller.effectiveRealmRoles(u), "admin") {
		roles = append(roles, "realm-admin")
	}
	return expandAdminRoles(roles), true
}

// adminReq is one admin request being served under the target realm lock.
type adminReq struct {
	s     *Server
	r     *Realm
	req   *http.Request
	perms adminPerms
	seg   []string // path segments below /admin/realms/{realm}/
	query map[string][]string
}

// adminResp is the answer, written after the realm lock is released.
type adminResp struct {
	status   int
	body     any // nil: no body
	raw      []byte
	location string
	jobs     []logoutJob
}

func respJSON(status int, body any) adminResp { return adminResp{status: status, body: body} }
func respNoContent() adminResp                { return adminResp{status: http.StatusNoContent} }
func respError(status int, msg string) adminResp {
	return respJSON(status, map[string]string{"error": msg})
}
func respErrorMessage(status int, msg string) adminResp {
	return respJSON(status, map[string]string{"errorMessage": msg})
}
func respForbidden() adminResp { return respError(http.StatusForbidden, "HTTP 403 Forbidden") }
func respBadRequest() adminResp {
	return respError(http.StatusBadRequest, "HTTP 400 Bad Request")
}
func respMethodNotAllowed() adminResp {
	return respError(http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
}
func respNoRoute() adminResp {
	return respError(http.StatusNotFound, "Unable to find matching target resource method")
}

// adminRoute serves {base}/admin/realms/{realm}/{rest}.
func (s *Server) adminRoute(w http.ResponseWriter, req *http.Request, name, rest string) {
	w.Header().Set("Cache-Control", "no-cache")
	caller, userID, ok := s.adminCaller(req)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
		return
	}
	target := s.Realm(name)
	if target == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm not found."})
		return
	}
	perms, ok := s.adminPermsFor(caller, userID, target)
	if !ok {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "HTTP 403 Forbidden"})
		return
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	a := &adminReq{s: s, r: target, req: req, perms: perms, seg: seg, query: req.URL.Query()}
	var body []byte
	if req.Body != nil && (req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodDelete) {
		b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxAdminBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "HTTP 413 Request Entity Too Large"})
			return
		}
		body = b
	}
	target.mu.Lock()
	resp := a.dispatch(body)
	target.mu.Unlock()
	target.deliverLogouts(resp.jobs)
	if resp.location != "" {
		w.Header().Set("Location", resp.location)
	}
	switch {
	case resp.raw != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.status)
		_, _ = w.Write(resp.raw)
	case resp.body != nil:
		writeJSON(w, resp.status, resp.body)
	default:
		w.WriteHeader(resp.status)
	}
}

// dispatch routes the request; the realm lock is held.
func (a *adminReq) dispatch(body []byte) adminResp {
	seg, m := a.seg, a.req.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	switch {
	case len(seg) == 1 && seg[0] == "users":
		switch m {
		case http.MethodGet:
			return a.listUsers()
		case http.MethodPost:
			return a.createUser(body)
		}
		return respMethodNotAllowed()
	case len(seg) == 2 && seg[0] == "users" && seg[1] == "count":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		return a.countUsers()
	case len(seg) >= 2 && seg[0] == "users" && seg[1] == "profile":
		return a.profileRoutes(m, body)
	case len(seg) >= 2 && seg[0] == "users":
		return a.userRoutes(m, body)
	case len(seg) == 2 && seg[0] == "sessions":
		if m != http.MethodDelete {
			return respMethodNotAllowed()
		}
		return a.deleteSession(seg[1])
	case seg[0] == "groups":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		return a.groupRoutes()
	case seg[0] == "group-by-path" && len(seg) >= 2:
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		if !a.perms.viewUsers() {
			return respForbidden()
		}
		// Clients join the path naively ("group-by-path//a/b"): empty
		// segments do not count.
		g := a.r.groupByPathLocked("/" + strings.Join(slices.DeleteFunc(slices.Clone(seg[1:]), func(s string) bool { return s == "" }), "/"))
		if g == nil {
			return respError(http.StatusNotFound, "Group path does not exist")
		}
		return respJSON(http.StatusOK, a.groupRep(g, true, true))
	case seg[0] == "roles":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		return a.realmRoleRoutes()
	case seg[0] == "organizations":
		return a.organizationRoutes(m, body)
	case seg[0] == "clients":
		if m != http.MethodGet {
			return respMethodNotAllowed()
		}
		return a.clientRoutes()
	}
	return respNoRoute()
}

// userRoutes serves /users/{id}[/...].
func (a *adminReq) userRoutes(m string, body []byte) adminResp {
	u := a.r.users[a.seg[1]]
	if u == nil {
		// Keycloak hides unknown ids from callers that cannot query users.
		if a.perms.queryUsers() {
			return respError(http.StatusNotFound, "User not found")
		}
		return respForbidden()
	}
	rest := a.seg[2:]
	need := func(ok bool, f func() adminResp) adminResp {
		if !ok {
			return respForbidden()
		}
		return f()
	}
	view, manage := a.perms.viewUsers(), a.perms.manageUsers()
	if len(rest) == 0 {
		switch m {
		case http.MethodGet:
			return need(view, func() adminResp {
				rep := a.userRep(u, false, true)
				if meta, _ := a.queryBool("userProfileMetadata"); meta != nil && *meta {
					rep["userProfileMetadata"] = a.r.profileMetadataLocked(profileAdmin, true)
				}
				return respJSON(http.StatusOK, rep)
			})
		case http.MethodPut:
			return need(manage, func() adminResp { return a.updateUser(u, body) })
		case http.MethodDelete:
			return need(manage, func() adminResp { return a.deleteUser(u) })
		}
		return respMethodNotAllowed()
	}
	only := func(method string, ok bool, f func() adminResp) adminResp {
		if m != method {
			return respMethodNotAllowed()
		}
		return need(ok, f)
	}
	switch rest[0] {
	case "reset-password":
		if len(rest) == 1 {
			return only(http.MethodPut, manage, func() adminResp { return a.resetPassword(u, body) })
		}
	case "execute-actions-email":
		if len(rest) == 1 {
			return only(http.MethodPut, manage, func() adminResp { return a.executeActionsEmail(u, body) })
		}
	case "send-verify-email":
		if len(rest) == 1 {
			return only(http.MethodPut, manage, func() adminResp {
				actions, _ := json.Marshal([]string{"VERIFY_EMAIL"})
				return a.executeActionsEmail(u, actions)
			})
		}
	case "logout":
		if len(rest) == 1 {
			return only(http.MethodPost, manage, func() adminResp {
				return adminResp{status: http.StatusNoContent, jobs: a.r.endUserSessionsLocked(u.id)}
			})
		}
	case "sessions":
		if len(rest) == 1 {
			return only(http.MethodGet, view, func() adminResp { return respJSON(http.StatusOK, a.userSessions(u)) })
		}
	case "consents":
		// keycloaktest records no consents and issues no offline tokens.
		switch {
		case len(rest) == 1:
			return only(http.MethodGet, view, func() adminResp { return respJSON(http.StatusOK, []any{}) })
		case len(rest) == 2:
			return only(http.MethodDelete, manage, func() adminResp {
				if a.r.clients[rest[1]] == nil {
					return respError(http.StatusNotFound, "Client not found")
				}
				return respError(http.StatusNotFound, "Consent nor offline token not found")
			})
		}
	case "credentials", "configured-user-storage-credential-types", "disable-credential-types":
		return a.credentialRoutes(u, m, rest, body)
	case "role-mappings":
		return a.roleMappingRoutes(u, m, rest[1:], body)
	case "groups":
		switch {
		case len(rest) == 1:
			return only(http.MethodGet, view, func() adminResp { return a.userGroups(u) })
		case len(rest) == 2 && rest[1] == "count":
			return only(http.MethodGet, view, func() adminResp {
				return respJSON(http.StatusOK, map[string]int{"count": len(u.groups)})
			})
		case len(rest) == 2:
			if m != http.MethodPut && m != http.MethodDelete {
				return respMethodNotAllowed()
			}
			return need(manage, func() adminResp { return a.groupMembership(u, rest[1], m == http.MethodPut) })
		}
	case "federated-identity":
		switch len(rest) {
		case 1:
			return only(http.MethodGet, view, func() adminResp { return respJSON(http.StatusOK, nonNilLinks(u.federated)) })
		case 2:
			if m != http.MethodPost && m != http.MethodDelete {
				return respMethodNotAllowed()
			}
			return need(manage, func() adminResp { return a.federatedLink(u, rest[1], m == http.MethodPost, body) })
		}
	}
	return respNoRoute()
}

func nonNilLinks(l []FederatedIdentity) []FederatedIdentity {
	if l == nil {
		return []FederatedIdentity{}
	}
	out := slices.Clone(l)
	slices.SortFunc(out, func(a, b FederatedIdentity) int { return strings.Compare(a.IdentityProvider, b.IdentityProvider) })
	return out
}

// queryInt reads an integer query parameter; ok is false when it is not a
// number.
func (a *adminReq) queryInt(name string, def int) (int, bool) {
	v := a.query[name]
	if len(v) == 0 || v[0] == "" {
		return def, true
	}
	n, err := strconv.Atoi(v[0])
	return n, err == nil
}

func (a *adminReq) queryBool(name string) (*bool, bool) {
	v := a.query[name]
	if len(v) == 0 || v[0] == "" {
		return nil, true
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return nil, false
	}
	return &b, true
}

func (a *adminReq) has(name string) bool { _, ok := a.query[name]; return ok }
func (a *adminReq) get(name string) string {
	if v := a.query[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// page applies Keycloak's first/max paging; max < 0 means no limit.
func pageOf[T any](items []T, first, max int) []T {
	if first < 0 {
		first = 0
	}
	if first >= len(items) {
		return []T{}
	}
	items = items[first:]
	if max >= 0 && max < len(items) {
		items = items[:max]
	}
	return items
}

// decodeBody decodes a JSON request body; false means it is not valid.
func decodeBody(body []byte, dst any) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		return false
	}
	var extra json.RawMessage
	return errors.Is(dec.Decode(&extra), io.EOF)
}

// remoteHost is the client address of a request, for session records.
func remoteHost(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil || host == "" {
		return "127.0.0.1"
	}
	return host
}
