package cloakroom

import "testing"

// FuzzParseMetadata: discovery documents never panic the parser, and an
// accepted one always names an issuer and a JWKS URL.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{"issuer":"http://kc/realms/demo","jwks_uri":"http://kc/realms/demo/protocol/openid-connect/certs","token_endpoint":"http://kc/t"}`,
		`{"issuer":"http://kc/realms/demo","jwks_uri":"/relative"}`,
		`{"issuer":1}`, `{"issuer":"x","jwks_uri":"x","scopes_supported":"openid"}`, `[]`, `null`, `{`,
		`{"issuer":"http://kc","jwks_uri":"http://kc/c","token_introspection_endpoint":"http://kc/i"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMetadata(data)
		if err != nil {
			return
		}
		if m.Issuer == "" || m.JWKSURI == "" {
			t.Fatalf("accepted metadata without issuer or jwks_uri: %+v", m)
		}
	})
}
