package login

import "testing"

// TestRoleRequirementWording: refusals name roles as a person reads them,
// never as Go slice text.
func TestRoleRequirementWording(t *testing.T) {
	tests := []struct {
		all    bool
		client string
		roles  []string
		want   string
	}{
		{false, "", []string{"admin"}, `the role "admin"`},
		{true, "", []string{"admin"}, `the role "admin"`},
		{false, "", []string{"admin", "editor"}, `the role "admin" or "editor"`},
		{false, "", []string{"admin", "editor", "auditor"}, `the role "admin", "editor" or "auditor"`},
		{true, "", []string{"admin", "editor"}, `the roles "admin" and "editor"`},
		{true, "", []string{"a", "b", "c"}, `the roles "a", "b" and "c"`},
		{false, "orders", []string{"refund"}, `the role "refund" of client "orders"`},
		{false, "orders", []string{"refund", "void"}, `the role "refund" or "void" of client "orders"`},
		{true, "orders", []string{"refund", "void"}, `the roles "refund" and "void" of client "orders"`},
		{false, "", nil, "a role, but none is configured"},
		{false, "", []string{`say "hi"`}, `the role "say \"hi\""`},
	}
	for _, tt := range tests {
		if got := roleRequirement(tt.all, tt.client, tt.roles); got != tt.want {
			t.Errorf("roleRequirement(%v, %q, %q) = %s, want %s", tt.all, tt.client, tt.roles, got, tt.want)
		}
	}
}
