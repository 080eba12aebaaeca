package gateway

import (
	"strings"
	"testing"
)

// TestProfileConfig: profile and roles_claim are validated with the
// field named, and come from CLOAKROOM_PROFILE / CLOAKROOM_ROLES_CLAIM.
func TestProfileConfig(t *testing.T) {
	t.Parallel()
	base := func() Config {
		return Config{Issuer: "https://idp.example.com", ClientID: "gw", ClientSecret: "s", Session: SessionConfig{Store: "memory:"},
			Routes: []Route{{Path: "/", Upstream: "http://127.0.0.1:9000"}}}
	}
	tests := []struct {
		profile, roles string
		wantErr        string
	}{
		{"", "", ""},
		{"keycloak", "", ""},
		{"generic", "groups", ""},
		{"auto", "urn:zitadel:iam:org:project:roles", ""},
		{"okta", "", "profile:"},
		{"generic", ".groups", "roles_claim:"},
	}
	for _, tt := range tests {
		c := base()
		c.Profile, c.RolesClaim = tt.profile, tt.roles
		err := c.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("profile %q roles_claim %q: %v", tt.profile, tt.roles, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("profile %q roles_claim %q: err = %v, want %q", tt.profile, tt.roles, err, tt.wantErr)
		}
	}
	c := base()
	env := map[string]string{"CLOAKROOM_PROFILE": "generic", "CLOAKROOM_ROLES_CLAIM": "groups"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil || c.Profile != "generic" || c.RolesClaim != "groups" {
		t.Errorf("ApplyEnv: %v, profile %q, roles_claim %q", err, c.Profile, c.RolesClaim)
	}
}
