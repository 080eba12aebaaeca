package cloakroom

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseIntrospection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		active  bool
		wantErr string
	}{
		{"inactive", `{"active":false}`, false, ""},
		{"active keycloak", `{"active":true,"sub":"u1","client_id":"app","username":"alice","token_type":"Bearer","scope":"openid","exp":1790000000}`, true, ""},
		{"no active member", `{"sub":"u1"}`, false, `no boolean "active"`},
		{"active not boolean", `{"active":"true"}`, false, "wrong type"},
		{"not JSON", `<html>`, false, "not a valid introspection response"},
		{"duplicate active", `{"active":false,"active":true}`, false, "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, err := parseIntrospection([]byte(tt.body), "http://kc/introspect", 200)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v, want %q wrapping ErrUnavailable", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Active != tt.active {
				t.Fatalf("active = %v", in.Active)
			}
			if tt.active && (in.Subject != "u1" || in.Username != "alice" || !in.Expiry.Equal(time.Unix(1790000000, 0)) || in.Raw["client_id"] != "app") {
				t.Fatalf("fields: %+v", in)
			}
		})
	}
	if s := (ClientCredentials{ClientID: "c", ClientSecret: "s3cret"}).String(); strings.Contains(s, "s3cret") {
		t.Fatalf("credentials print their secret: %s", s)
	}
}
