package cloakroom

import (
	"slices"
	"strconv"
	"strings"
)

// A Requirement is an authorization rule over a token's verified claims:
// a predicate, and the words a refused person reads. bearer.Require,
// login's Handler.Require and the gateway's route rules all take
// Requirements, so a rule is written once, checked the same way
// everywhere and refused with the same sentence (see Refusal).
//
// Roles are read from the claims' roles claim (Claims.RealmRoles): the
// Verifier's VerifierConfig.RolesClaim, realm_access.roles by default.
//
// The zero Requirement allows nothing. Every Requirement refuses nil
// claims, and a rule given no names (AnyRealmRole() with no roles, a
// client role without a client) refuses everyone rather than letting
// everyone through.
type Requirement struct {
	what   string
	scopes []string // named in WWW-Authenticate scope="…" (RFC 6750 §3)
	allow  func(*Claims) bool
	// group marks AllOf/AnyOf combinations, bracketed inside others.
	group bool
}

// NewRequirement returns a Requirement of your own: what describes it as
// the object of "this page requires …" (e.g. "a verified email
// address"), allow decides. allow is never called with nil claims.
func NewRequirement(what string, allow func(*Claims) bool) Requirement {
	return Requirement{what: what, allow: allow}
}

// Allows reports whether claims c satisfy the requirement. Nil claims
// never do.
func (r Requirement) Allows(c *Claims) bool {
	return c != nil && r.allow != nil && r.allow(c)
}

// String describes the requirement as the object of "this page
// requires …": `the role "admin"`, `the role "admin" or "editor"`, `the
// roles "a" and "b"`, `the role "refund" of client "orders"`.
func (r Requirement) String() string {
	if r.what == "" {
		return "a requirement, but none is configured"
	}
	return r.what
}

// Scopes returns the OAuth scopes the requirement asks for (scope
// requirements, also inside AllOf and AnyOf), for the scope attribute of
// an RFC 6750 insufficient_scope challenge.
func (r Requirement) Scopes() []string { return slices.Clone(r.scopes) }

// Refusal is the one sentence a refused caller reads, in bearer's 403
// detail and error_description, login's 403 page and JSON, and the
// gateway: "This page requires the role "admin"." With who (e.g. "You
// are signed in as bob") it reads "You are signed in as bob, but this
// page requires the role "admin"." what is a Requirement's String, or
// the description given to bearer.RequireFunc or login's RequireFunc.
func Refusal(who, what string) string {
	if who == "" {
		return "This page requires " + what + "."
	}
	return who + ", but this page requires " + what + "."
}

// AnyRealmRole requires at least one of the roles (Claims.HasRealmRole:
// the roles claim, realm_access.roles unless VerifierConfig.RolesClaim says
// otherwise).
func AnyRealmRole(roles ...string) Requirement {
	return named(nameRule{noun: "role", join: "or"}, roles, (*Claims).HasRealmRole)
}

// AllRealmRoles requires every one of the roles (read as AnyRealmRole
// reads them).
func AllRealmRoles(roles ...string) Requirement {
	return named(nameRule{noun: "role", join: "and"}, roles, (*Claims).HasRealmRole)
}

// AnyClientRole requires at least one of the roles of client clientID
// (resource_access.{clientID}.roles).
func AnyClientRole(clientID string, roles ...string) Requirement {
	return clientRoles("or", clientID, roles)
}

// AllClientRoles requires every one of the roles of client clientID.
func AllClientRoles(clientID string, roles ...string) Requirement {
	return clientRoles("and", clientID, roles)
}

func clientRoles(join, clientID string, roles []string) Requirement {
	if clientID == "" {
		return Requirement{what: "a client role, but no client is configured"}
	}
	rule := nameRule{noun: "role", join: join, suffix: " of client " + strconv.Quote(clientID)}
	return named(rule, roles, func(c *Claims, role string) bool { return c.HasClientRole(clientID, role) })
}

// AllScopes requires every one of the scopes to have been granted
// (Claims.HasScope). A refusal names them in WWW-Authenticate (RFC 6750).
func AllScopes(scopes ...string) Requirement {
	r := named(nameRule{noun: "scope", join: "and"}, scopes, (*Claims).HasScope)
	r.scopes = slices.Clone(scopes)
	return r
}

// AnyScope requires at least one of the scopes.
func AnyScope(scopes ...string) Requirement {
	r := named(nameRule{noun: "scope", join: "or"}, scopes, (*Claims).HasScope)
	r.scopes = slices.Clone(scopes)
	return r
}

// AnyPermission requires at least one of perms among the strings at the
// dotted claim path (Claims.Strings), e.g. drf-keycloak's
// "resource_access.account.roles", or "groups". An empty path refuses.
func AnyPermission(path string, perms ...string) Requirement {
	return permissions("or", path, perms)
}

// AllPermissions requires every one of perms at the claim path.
func AllPermissions(path string, perms ...string) Requirement {
	return permissions("and", path, perms)
}

func permissions(join, path string, perms []string) Requirement {
	rule := nameRule{noun: "permission", join: join}
	if path == "" {
		rule.suffix = ", but no permission claim is configured"
		return named(rule, perms, nil)
	}
	return named(rule, perms, func(c *Claims, p string) bool { return slices.Contains(c.Strings(path), p) })
}

// MinACR requires an authentication level (the acr claim) of at least
// level. levels orders the known levels from weakest to strongest (e.g.
// login.Config.ACRLevels, the gateway's acr_levels); without them
// numeric levels compare as numbers and others only by equality.
func MinACR(level string, levels []string) Requirement {
	if level == "" {
		return Requirement{what: "an authentication level, but none is configured"}
	}
	levels = slices.Clone(levels)
	return Requirement{
		what:  "authentication level " + strconv.Quote(level) + " or higher",
		allow: func(c *Claims) bool { return acrAtLeast(c.ACR(), level, levels) },
	}
}

// acrAtLeast reports whether authentication level have reaches want: by
// their order in levels (weakest first) when given, else as numbers,
// else by equality.
func acrAtLeast(have, want string, levels []string) bool {
	if have == want {
		return true
	}
	if len(levels) > 0 {
		hi, wi := slices.Index(levels, have), slices.Index(levels, want)
		return hi >= 0 && wi >= 0 && hi >= wi
	}
	hn, err1 := strconv.Atoi(have)
	wn, err2 := strconv.Atoi(want)
	return err1 == nil && err2 == nil && hn >= wn
}

// AllOf requires every one of reqs: "X and Y". With none it allows
// nothing.
func AllOf(reqs ...Requirement) Requirement { return combine("and", reqs) }

// AnyOf requires at least one of reqs: "X or Y". With none it allows
// nothing.
func AnyOf(reqs ...Requirement) Requirement { return combine("or", reqs) }

func combine(join string, reqs []Requirement) Requirement {
	switch len(reqs) {
	case 0:
		return Requirement{}
	case 1:
		return reqs[0]
	}
	reqs = slices.Clone(reqs)
	words := make([]string, len(reqs))
	var scopes []string
	for i, r := range reqs {
		words[i] = r.String()
		if r.group {
			words[i] = "(" + words[i] + ")"
		}
		for _, s := range r.scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	all := join == "and"
	return Requirement{
		what:   joinWords(words, join),
		scopes: scopes,
		group:  true,
		allow: func(c *Claims) bool {
			return matchNames(all, reqs, c, func(c *Claims, r Requirement) bool { return r.Allows(c) })
		},
	}
}

// nameRule is how a rule on a list of names reads: `the role "a"`, `the
// role "a" or "b"` (join "or"), `the roles "a" and "b"` (join "and"),
// followed by suffix.
type nameRule struct {
	noun, join, suffix string
}

// named builds the Requirement "any of" (join "or") or "all of" (join
// "and") names, each tested by has. No names, or no has: refuses
// everyone.
func named(rule nameRule, names []string, has func(*Claims, string) bool) Requirement {
	if len(names) == 0 {
		return Requirement{what: "a " + rule.noun + ", but none is configured"}
	}
	names = slices.Clone(names)
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	noun := rule.noun
	if len(names) > 1 && rule.join == "and" {
		noun += "s"
	}
	all := rule.join == "and"
	r := Requirement{what: "the " + noun + " " + joinWords(q, rule.join) + rule.suffix}
	if has != nil {
		r.allow = func(c *Claims) bool { return matchNames(all, names, c, has) }
	}
	return r
}

// matchNames reports whether in has every one (all) or at least one of
// names.
func matchNames[N, S any](all bool, names []N, in S, has func(S, N) bool) bool {
	for _, n := range names {
		if has(in, n) != all {
			return !all
		}
	}
	return all
}

// joinWords writes "a", "a or b", "a, b or c" (join "or"; "and" alike).
func joinWords(words []string, join string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + join + " " + words[len(words)-1]
}
