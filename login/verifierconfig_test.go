package login_test

import (
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
)

// TestConfigVerifier: login makes its verifiers from Config.Verifier, the
// same cloakroom.VerifierConfig bearer's Verifier is made from; it sets
// the client id and the token kinds itself and refuses settings that
// would widen whom the tokens of a login may be issued to.
func TestConfigVerifier(t *testing.T) {
	t.Parallel()
	realm, err := cloakroom.NewRealm("http://127.0.0.1:1/realms/x", cloakroom.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := session.NewKeyring(mustKeys(t)...)
	mgr, _ := session.NewManager(session.Config{Store: session.NewMemoryStore(), Keyring: kr})
	for _, tc := range []struct {
		name    string
		vc      cloakroom.VerifierConfig
		wantErr string
	}{
		{"zero value", cloakroom.VerifierConfig{}, ""},
		{"shared settings", cloakroom.VerifierConfig{Algorithms: []string{"RS256", "ES256"}, Profile: cloakroom.AutoDetect, RolesClaim: "groups", LogoutTokenMaxAge: 1}, ""},
		{"same client id", cloakroom.VerifierConfig{ClientID: "app"}, ""},
		{"other client id", cloakroom.VerifierConfig{ClientID: "api"}, "Config.Verifier.ClientID"},
		{"audiences", cloakroom.VerifierConfig{Audiences: []string{"other"}}, "Config.Verifier.Audiences"},
		{"authorized parties", cloakroom.VerifierConfig{AuthorizedParties: []string{"other"}}, "AuthorizedParties"},
		{"audience check off", cloakroom.VerifierConfig{SkipAudienceCheck: true}, "SkipAudienceCheck"},
		{"kind", cloakroom.VerifierConfig{Kind: cloakroom.IDToken}, "Config.Verifier.Kind"},
		{"checked by the verifier", cloakroom.VerifierConfig{Algorithms: []string{"HS256"}}, "VerifierConfig.Algorithms"},
	} {
		_, err := login.New(login.Config{Realm: realm, ClientID: "app", ClientSecret: "s", BaseURL: "https://app.example", Sessions: mgr, Logger: quiet, Verifier: tc.vc})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.wantErr)
		}
	}
}
