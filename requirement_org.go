package cloakroom

// MemberOf requires membership of at least one of the Keycloak
// organizations aliases (Keycloak 26+), as the token's organization claim
// states it (Claims.InOrganization; both of the claim's shapes). A
// refusal reads `membership of the organization "acme"`.
//
// The claim is there only when the organization client scope is
// granted: have clients request "organization" (enough for users who
// belong to one organization), "organization:*" (every organization of
// the user) or "organization:{alias}". No aliases refuses everyone.
func MemberOf(aliases ...string) Requirement {
	if len(aliases) == 0 {
		return Requirement{what: "membership of an organization, but none is configured"}
	}
	r := named(nameRule{noun: "organization", join: "or"}, aliases, (*Claims).InOrganization)
	r.what = "membership of " + r.what
	return r
}
