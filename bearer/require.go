package bearer

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Middleware is the standard shape of HTTP middleware; it drops into chi
// (r.Use), gorilla/mux (r.Use), echo (echo.WrapMiddleware) and plain
// net/http.
type Middleware = func(http.Handler) http.Handler

// Require returns middleware that lets a request through only when an
// authenticated caller satisfies allow. what describes the requirement in
// the 403 answer, e.g. "an active subscription". Anonymous requests get 401.
func Require(what string, allow func(*Principal) bool) Middleware {
	return require(what, nil, allow)
}

func require(what string, scopes []string, allow func(*Principal) bool) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, _ := r.Context().Value(ctxKey{}).(*state)
			if st == nil {
				// A Require helper without Authenticate in front is a wiring
				// bug; fail closed and loudly.
				http.Error(w, "server misconfigured: bearer.Authenticate must run before bearer.Require*", http.StatusInternalServerError)
				return
			}
			a := st.auth
			if st.principal == nil {
				a.refuse(w, r, &Error{Status: http.StatusUnauthorized, Code: "not_authenticated", Detail: "Authentication credentials were not provided."})
				return
			}
			if allow != nil && !allow(st.principal) {
				a.refuse(w, r, &Error{Status: http.StatusForbidden, Code: "permission_denied", Detail: "requires " + what, Scope: scopes})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireAuthenticated lets through any authenticated caller.
func RequireAuthenticated() Middleware { return require("", nil, nil) }

func list(roles []string) string { return strings.Join(roles, ", ") }

// RequireAnyRealmRole lets through callers holding at least one of the
// roles: realm_access.roles (Keycloak's realm roles), or the Verifier's
// Config.RolesClaim, e.g. "groups" for another provider (Claims.HasRole).
func RequireAnyRealmRole(roles ...string) Middleware {
	return require(fmt.Sprintf("one of the realm roles: %s", list(roles)), nil, func(p *Principal) bool {
		return slices.ContainsFunc(roles, p.Claims.HasRole)
	})
}

// RequireAllRealmRoles lets through callers holding every one of the roles
// (read as RequireAnyRealmRole reads them).
func RequireAllRealmRoles(roles ...string) Middleware {
	return require(fmt.Sprintf("all of the realm roles: %s", list(roles)), nil, func(p *Principal) bool {
		for _, r := range roles {
			if !p.Claims.HasRole(r) {
				return false
			}
		}
		return true
	})
}

// RequireAnyClientRole lets through callers holding at least one of the
// roles of client clientID (resource_access.{clientID}.roles).
func RequireAnyClientRole(clientID string, roles ...string) Middleware {
	return require(fmt.Sprintf("one of the %s client roles: %s", clientID, list(roles)), nil, func(p *Principal) bool {
		for _, r := range roles {
			if p.Claims.HasClientRole(clientID, r) {
				return true
			}
		}
		return false
	})
}

// RequireAllClientRoles lets through callers holding every one of the
// roles of client clientID.
func RequireAllClientRoles(clientID string, roles ...string) Middleware {
	return require(fmt.Sprintf("all of the %s client roles: %s", clientID, list(roles)), nil, func(p *Principal) bool {
		for _, r := range roles {
			if !p.Claims.HasClientRole(clientID, r) {
				return false
			}
		}
		return true
	})
}

// RequireScopes lets through callers whose token was granted every scope.
// The 403 names the scopes in WWW-Authenticate (RFC 6750 section 3).
func RequireScopes(scopes ...string) Middleware {
	return require(fmt.Sprintf("the scopes: %s", list(scopes)), scopes, func(p *Principal) bool {
		for _, s := range scopes {
			if !p.Claims.HasScope(s) {
				return false
			}
		}
		return true
	})
}

// RequireAnyScope lets through callers whose token was granted at least one
// of the scopes.
func RequireAnyScope(scopes ...string) Middleware {
	return require(fmt.Sprintf("one of the scopes: %s", list(scopes)), scopes, func(p *Principal) bool {
		return slices.ContainsFunc(scopes, p.Claims.HasScope)
	})
}

// RequireAnyPermission lets through callers whose permission claim (see
// WithPermissionsClaim) holds at least one of perms.
func RequireAnyPermission(perms ...string) Middleware {
	return require(fmt.Sprintf("one of the permissions: %s", list(perms)), nil, func(p *Principal) bool {
		return slices.ContainsFunc(perms, func(x string) bool { return slices.Contains(p.permissions, x) })
	})
}

// RequireAllPermissions lets through callers whose permission claim holds
// every one of perms.
func RequireAllPermissions(perms ...string) Middleware {
	return require(fmt.Sprintf("all of the permissions: %s", list(perms)), nil, func(p *Principal) bool {
		for _, x := range perms {
			if !slices.Contains(p.permissions, x) {
				return false
			}
		}
		return true
	})
}
