package keycloaktest

import (
	"net/http"
	"slices"
)

// Keycloak's CORS answers (its Cors builder), which browser clients such as
// keycloak-js depend on: the token, revocation and userinfo endpoints, the
// Account REST API, discovery and JWKS send
//
//	Access-Control-Allow-Origin: <the request's Origin>
//	Access-Control-Allow-Credentials: true
//
// when the Origin is allowed, and nothing when it is not (the request itself
// is still served; the browser withholds the answer). Which origins are
// allowed depends on the endpoint: the authenticated client's web origins
// (token, revoke), the web origins of the client the access token was issued
// to (userinfo), the token's allowed-origins claim (account), any origin
// (discovery, JWKS, and some errors raised before the client is known).
// Pre-flight OPTIONS requests are answered for any origin.
const (
	corsAllowHeaders = "Origin, Accept, X-Requested-With, Content-Type, Access-Control-Request-Method, Access-Control-Request-Headers, DPoP, Authorization"
	corsMaxAge       = "3600" // one hour, Keycloak's DEFAULT_MAX_AGE
	// corsDefaultMethods is what a pre-flight allows when the endpoint names
	// no methods (userinfo).
	corsDefaultMethods = "GET, HEAD, OPTIONS"
)

// Pre-flight method lists of the endpoints that answer cross-origin calls.
const (
	corsPostMethods    = "POST, OPTIONS"
	corsGetMethods     = "GET"
	corsAccountMethods = "GET, POST, DELETE, PUT, HEAD, OPTIONS"
)

// corsResponse adds the CORS headers to one response once the endpoint
// knows which origins it allows. Headers must be added before the body is
// written.
type corsResponse struct {
	w      http.ResponseWriter
	origin string
	// exposeMethods adds "Access-Control-Expose-Headers:
	// Access-Control-Allow-Methods", as Keycloak's token, revocation and
	// userinfo endpoints do.
	exposeMethods bool
}

func newCORS(w http.ResponseWriter, req *http.Request, exposeMethods bool) *corsResponse {
	return &corsResponse{w: w, origin: req.Header.Get("Origin"), exposeMethods: exposeMethods}
}

// allowAll allows any origin.
func (c *corsResponse) allowAll() { c.set() }

// allowClient allows the client's web origins ("+" standing for the
// origins of its redirect URIs, "*" for any).
func (c *corsResponse) allowClient(cfg ClientConfig) {
	if c.origin != "" && originAllowed(cfg, c.origin) {
		c.set()
	}
}

// allowOrigins allows an explicit list, such as an access token's
// allowed-origins claim.
func (c *corsResponse) allowOrigins(origins []string) {
	if c.origin != "" && (slices.Contains(origins, "*") || slices.Contains(origins, c.origin)) {
		c.set()
	}
}

func (c *corsResponse) set() {
	if c.origin == "" {
		return
	}
	h := c.w.Header()
	h.Set("Access-Control-Allow-Origin", c.origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if c.exposeMethods {
		h.Set("Access-Control-Expose-Headers", "Access-Control-Allow-Methods")
	}
}

// writePreflight answers a CORS pre-flight request for an endpoint that
// accepts cross-origin calls. Keycloak allows any origin here: the real
// request is checked.
func writePreflight(w http.ResponseWriter, req *http.Request, methods string) {
	if origin := req.Header.Get("Origin"); origin != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
	}
	w.WriteHeader(http.StatusOK)
}
