package bearer

import (
	"net/http"

	"github.com/cloakroom/cloakroom"
)

// Middleware is the standard shape of HTTP middleware; it drops into chi
// (r.Use), gorilla/mux (r.Use), echo (echo.WrapMiddleware) and plain
// net/http.
type Middleware = func(http.Handler) http.Handler

// Require returns middleware that lets a request through only when an
// authenticated caller's token satisfies req, e.g.
// Require(cloakroom.AnyRealmRole("admin")) or
// Require(cloakroom.AllOf(cloakroom.AnyRealmRole("admin"), cloakroom.AllScopes("orders"))).
// Anonymous requests get 401; others 403 insufficient_scope with
// cloakroom.Refusal's sentence, and scope="…" when req names scopes.
func Require(req cloakroom.Requirement) Middleware {
	return require(func(*state) cloakroom.Requirement { return req })
}

// RequireFunc is Require for a rule on the whole Principal (e.g. the
// local user of WithUserMapper): what describes it in the 403 answer,
// as in "This page requires "+what+"." (e.g. "an active subscription").
func RequireFunc(what string, allow func(*Principal) bool) Middleware {
	return require(func(st *state) cloakroom.Requirement {
		return cloakroom.NewRequirement(what, func(*cloakroom.Claims) bool { return allow(st.principal) })
	})
}

// require checks the Requirement rule gives for the request (nil: any
// authenticated caller).
func require(rule func(*state) cloakroom.Requirement) Middleware {
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
			if rule != nil {
				if req := rule(st); !req.Allows(st.principal.Claims) {
					a.refuse(w, r, &Error{Status: http.StatusForbidden, Code: "permission_denied", Detail: cloakroom.Refusal("", req.String()), Scope: req.Scopes()})
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireAuthenticated lets through any authenticated caller.
func RequireAuthenticated() Middleware { return require(nil) }

// RequireAnyRealmRole is Require(cloakroom.AnyRealmRole(roles...)): at
// least one of the roles, read from the roles claim (Claims.RealmRoles:
// realm_access.roles, or the Verifier's VerifierConfig.RolesClaim).
func RequireAnyRealmRole(roles ...string) Middleware {
	return Require(cloakroom.AnyRealmRole(roles...))
}

// RequireAllRealmRoles is Require(cloakroom.AllRealmRoles(roles...)).
func RequireAllRealmRoles(roles ...string) Middleware {
	return Require(cloakroom.AllRealmRoles(roles...))
}

// RequireAnyClientRole is Require(cloakroom.AnyClientRole(clientID, roles...)).
func RequireAnyClientRole(clientID string, roles ...string) Middleware {
	return Require(cloakroom.AnyClientRole(clientID, roles...))
}

// RequireAllClientRoles is Require(cloakroom.AllClientRoles(clientID, roles...)).
func RequireAllClientRoles(clientID string, roles ...string) Middleware {
	return Require(cloakroom.AllClientRoles(clientID, roles...))
}

// RequireScopes is Require(cloakroom.AllScopes(scopes...)): every scope.
// The 403 names the scopes in WWW-Authenticate (RFC 6750 section 3).
func RequireScopes(scopes ...string) Middleware {
	return Require(cloakroom.AllScopes(scopes...))
}

// RequireAnyScope is Require(cloakroom.AnyScope(scopes...)).
func RequireAnyScope(scopes ...string) Middleware {
	return Require(cloakroom.AnyScope(scopes...))
}

// RequireAnyPermission is Require(cloakroom.AnyPermission(path, perms...))
// with the path set by WithPermissionsClaim (none set: refused).
func RequireAnyPermission(perms ...string) Middleware {
	return require(func(st *state) cloakroom.Requirement { return cloakroom.AnyPermission(st.auth.permClaim, perms...) })
}

// RequireAllPermissions is RequireAnyPermission for every one of perms.
func RequireAllPermissions(perms ...string) Middleware {
	return require(func(st *state) cloakroom.Requirement { return cloakroom.AllPermissions(st.auth.permClaim, perms...) })
}
