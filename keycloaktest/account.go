package keycloaktest

import (
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Account roles that let a token read the profile (Keycloak's
// AccountRestService requires one of them).
var accountProfileRoles = []string{"manage-account", "view-profile"}

// handleAccount serves GET {realm}/account with "Accept: application/json":
// the Account REST API's profile of the token's user, which keycloak-js
// loadUserProfile() reads. As in Keycloak the bearer token must be a live
// access token whose aud includes "account" (401 otherwise), of a user, not
// a service account (401), holding the account role manage-account or
// view-profile (403). The answer is the user's id, username, firstName,
// lastName, email, emailVerified and the custom attributes the user
// profile lets the user see, with the user profile's metadata for the user
// (userProfileMetadata) unless the query says userProfileMetadata=false. Its CORS headers allow the token's allowed-origins.
// Without a JSON Accept header Keycloak serves the account console, which
// keycloaktest does not have (404).
func handleAccount(s *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	if !wantsJSON(req) {
		writeNotFound(w)
		return
	}
	unauthorized := func() {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "HTTP 401 Unauthorized"})
	}
	tok := bearerToken(req)
	if tok == "" {
		unauthorized()
		return
	}
	c, hmacSigned, err := r.verifySigned(tok)
	if err != nil || hmacSigned || c.str("typ") != typBearer {
		unauthorized()
		return
	}
	u, state := r.checkLive(c, s.issuerFor(req, r.name))
	if state != tokenOK || !slices.Contains(stringList(c["aud"]), accountClientID) {
		unauthorized()
		return
	}
	newCORS(w, req, false).allowOrigins(stringList(c["allowed-origins"]))
	r.mu.RLock()
	serviceAccount := u.serviceAccountOf != ""
	out := map[string]any{"id": u.id, "username": u.username, "emailVerified": u.emailVerified}
	for k, v := range map[string]string{"firstName": u.firstName, "lastName": u.lastName, "email": u.email} {
		if v != "" && r.profileAttrForLocked(k, profileUser).view {
			out[k] = v
		}
	}
	attrs := map[string][]string{}
	for k, v := range u.attributes {
		if len(v) > 0 && r.profileAttrForLocked(k, profileUser).view {
			attrs[k] = slices.Clone(v)
		}
	}
	if len(attrs) > 0 {
		out["attributes"] = attrs
	}
	if req.URL.Query().Get("userProfileMetadata") != "false" {
		out["userProfileMetadata"] = r.profileMetadataLocked(profileUser, true)
	}
	r.mu.RUnlock()
	if serviceAccount {
		unauthorized()
		return
	}
	var roles []string
	if ra, ok := c["resource_access"].(map[string]any); ok {
		if acct, ok := ra[accountClientID].(map[string]any); ok {
			roles = stringList(acct["roles"])
		}
	}
	if !slices.ContainsFunc(roles, func(role string) bool { return slices.Contains(accountProfileRoles, role) }) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "HTTP 403 Forbidden"})
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, out)
}

// wantsJSON is Keycloak's test for the Account REST API: an Accept or a
// Content-Type of application/json.
func wantsJSON(req *http.Request) bool {
	isJSON := func(v string) bool {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(v))
		return err == nil && mt == "application/json"
	}
	for _, a := range req.Header.Values("Accept") {
		for part := range strings.SplitSeq(a, ",") {
			if isJSON(part) {
				return true
			}
		}
	}
	return isJSON(req.Header.Get("Content-Type"))
}

// stringList reads a claim that is a string or an array of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}
