package cloakroom

import (
	"net/http"

	"github.com/cloakroom/cloakroom/internal/canonical"
)

// CanonicalPaths is middleware for the outside of an application's router.
// It makes sure that the path the router matched (and so the path that
// login.RequireLogin or a bearer role check protected) is the path every
// handler behind it reads.
//
// Go's ServeMux cleans literal dot segments and double slashes (it
// redirects them), but it routes percent-encoded ones as they are:
// "/public/..%2fadmin/x" reaches the handler for "/" with r.URL.Path
// "/public/../admin/x", and an http.FileServer mounted there serves
// "/admin/x" without the check on "/admin/". CanonicalPaths refuses such
// requests with 400 (encoded '/', '\', ';' or dot segments, control
// characters, invalid, double or overlong percent-encoding), redirects
// GET and HEAD with literal dot or empty segments to the clean path (308),
// and hands the router r.URL.Path in canonical form (RawPath cleared). The
// rules are those of `cloakroom serve` (docs/gateway.md, "Canonical
// requests").
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, cleaned, err := canonical.Path(r.URL.EscapedPath())
		if err != nil || cleaned {
			canonical.Answer(w, r, canonical.Target{Path: path, RawQuery: r.URL.RawQuery, Cleaned: cleaned}, err)
			return
		}
		if path != r.URL.Path || r.URL.RawPath != "" {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path, u.RawPath = path, ""
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}
