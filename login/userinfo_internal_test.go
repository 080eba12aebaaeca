package login

import (
	"encoding/json"
	"testing"
)

// TestAddProfileMembers: userinfo adds the profile members an ID token
// lacks, never overrides one it has, and never supplies token or
// authentication members.
func TestAddProfileMembers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, info string
		want           map[string]any
		wantExtra      bool
	}{
		{
			name: "profile members added",
			id:   `{"iss":"i","sub":"s","aud":"c"}`, info: `{"sub":"s","email":"a@example.com","preferred_username":"alice"}`,
			want:      map[string]any{"iss": "i", "sub": "s", "aud": "c", "email": "a@example.com", "preferred_username": "alice"},
			wantExtra: true,
		},
		{
			name: "ID token members win",
			id:   `{"sub":"s","email":"id@example.com"}`, info: `{"sub":"s","email":"info@example.com"}`,
			want: map[string]any{"sub": "s", "email": "id@example.com"},
		},
		{
			name: "token and authentication members never taken",
			id:   `{"sub":"s"}`, info: `{"sub":"s","iss":"x","aud":"x","exp":9,"acr":"gold","amr":["otp"],"auth_time":1,"sid":"x","nonce":"x","typ":"x"}`,
			want: map[string]any{"sub": "s"},
		},
		{name: "userinfo not an object", id: `{"sub":"s"}`, info: `[1]`, want: map[string]any{"sub": "s"}},
	}
	for _, tt := range tests {
		got, extra := addProfileMembers([]byte(tt.id), []byte(tt.info))
		var m map[string]any
		if err := json.Unmarshal(got, &m); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		gotJSON, _ := json.Marshal(m)
		wantJSON, _ := json.Marshal(tt.want)
		if string(gotJSON) != string(wantJSON) || (extra != nil) != tt.wantExtra {
			t.Errorf("%s: got %s (extra %q), want %s", tt.name, gotJSON, extra, wantJSON)
		}
	}
}
