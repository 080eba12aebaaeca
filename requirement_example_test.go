package cloakroom_test

import (
	"fmt"

	"github.com/cloakroom/cloakroom"
)

// A rule is written once and used everywhere: bearer.Require(refunds),
// login's handler.Require(refunds), and the gateway's route rules compile
// to the same Requirements. Every refusal reads the same.
func ExampleRequirement() {
	refunds := cloakroom.AllOf(
		cloakroom.AnyRealmRole("admin", "support"),
		cloakroom.AnyClientRole("orders", "refund"),
		cloakroom.AllScopes("orders:write"),
	)

	// Claims from a Verifier carry its VerifierConfig.RolesClaim; ParseClaims'
	// claims read realm_access.roles unless WithRolesClaim says otherwise.
	alice, _ := cloakroom.ParseClaims([]byte(`{"sub":"a1","scope":"openid orders:write",
		"realm_access":{"roles":["support"]},"resource_access":{"orders":{"roles":["refund"]}}}`))
	bob, _ := cloakroom.ParseClaims([]byte(`{"sub":"b1","scope":"openid",
		"realm_access":{"roles":["user"]},"groups":["support"]}`))

	fmt.Println("alice:", refunds.Allows(alice))
	fmt.Println("bob:", refunds.Allows(bob))
	fmt.Println(cloakroom.Refusal("You are signed in as bob", refunds.String()))
	fmt.Println("scope for WWW-Authenticate:", refunds.Scopes())

	// With another roles claim, realm role rules read it instead.
	fmt.Println("bob, roles from groups:", cloakroom.AnyRealmRole("support").Allows(bob.WithRolesClaim("groups")))
	// Output:
	// alice: true
	// bob: false
	// You are signed in as bob, but this page requires the role "admin" or "support", the role "refund" of client "orders" and the scope "orders:write".
	// scope for WWW-Authenticate: [orders:write]
	// bob, roles from groups: true
}
