package cloakroom_test

import (
	"testing"

	"github.com/cloakroom/cloakroom"
)

func TestClaimsIsLightweight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    bool
	}{
		{"Keycloak 26.2+ lightweight", `{"jti":"onltro:1","sub":"u","realm_access":{"roles":["a"]}}`, true},
		{"Keycloak 26.2+ lightweight service account", `{"jti":"trltcc:1","sub":"u"}`, true},
		{"Keycloak 26.2+ regular without roles", `{"jti":"onrtro:1","sub":"u"}`, false},
		{"Keycloak 26.2+ regular without sub", `{"jti":"onrtac:1"}`, false},
		{"no prefix, no sub", `{"jti":"9c0e","realm_access":{"roles":["a"]}}`, true},
		{"no prefix, no roles", `{"jti":"9c0e","sub":"u"}`, true},
		{"no prefix, realm roles", `{"jti":"9c0e","sub":"u","realm_access":{"roles":[]}}`, false},
		{"no prefix, client roles", `{"sub":"u","resource_access":{"api":{"roles":["x"]}}}`, false},
		{"colon elsewhere", `{"jti":"onltrox:1","sub":"u","realm_access":{"roles":[]}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := cloakroom.ParseClaims([]byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.IsLightweight(); got != tt.want {
				t.Fatalf("IsLightweight() = %v, want %v", got, tt.want)
			}
		})
	}
	// The roles claim a Verifier reads counts too.
	c, _ := cloakroom.ParseClaims([]byte(`{"sub":"u","groups":["a"]}`))
	if !c.IsLightweight() || c.WithRolesClaim("groups").IsLightweight() {
		t.Fatal("the configured roles claim is not taken into account")
	}
}
