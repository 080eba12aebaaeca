package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/bearer"
)

// Lightweight access tokens (Keycloak 24+, "Always use lightweight access
// token") against a real Keycloak (CLOAKROOM_TEST_KEYCLOAK): what its
// tokens carry (mirrored by keycloaktest, keycloaktest/lightweight.go),
// and bearer.WithLightweightTokens completing them by introspection so
// that role requirements work, failing closed.

// newLightweightRealm imports a realm whose client "app" issues
// lightweight access tokens; "api" is the resource server that
// introspects them, in their audience through an Audience mapper with
// "Add to token introspection" only.
func newLightweightRealm(t *testing.T, realm string) *realKC {
	t.Helper()
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	k := &realKC{t: t, base: base, realm: realm}
	user := func(name string, roles ...string) map[string]any {
		return map[string]any{"username": name, "enabled": true, "email": name + "@example.com", "emailVerified": true,
			"firstName": name, "lastName": "L", "realmRoles": roles,
			"credentials": []any{map[string]any{"type": "password", "value": name + "-pw", "temporary": false}}}
	}
	rep := map[string]any{
		"realm": realm, "enabled": true,
		"roles": map[string]any{"realm": []any{map[string]any{"name": "admin"}, map[string]any{"name": "user"}}},
		"clients": []any{
			map[string]any{"clientId": "app", "publicClient": false, "secret": "app-secret", "directAccessGrantsEnabled": true,
				"serviceAccountsEnabled": true,
				"attributes":             map[string]string{"client.use.lightweight.access.token.enabled": "true"},
				"protocolMappers": []any{map[string]any{
					"name": "audience-api", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
					"config": map[string]string{"included.client.audience": "api", "access.token.claim": "true", "introspection.token.claim": "true"},
				}}},
			map[string]any{"clientId": "api", "publicClient": false, "secret": "api-secret", "serviceAccountsEnabled": true},
		},
		"users": []any{user("alice", "admin", "user"), user("bob", "user")},
	}
	k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", rep, http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+realm, nil, 0) })
	return k
}

func lightweightToken(t *testing.T, k *realKC, user string) string {
	t.Helper()
	res, err := http.PostForm(k.issuer()+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {"app"}, "client_secret": {"app-secret"},
		"username": {user}, "password": {user + "-pw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("password grant for %s: status %d, %v", user, res.StatusCode, err)
	}
	return body.AccessToken
}

// failIntrospection makes the introspection endpoint unreachable.
type failIntrospection struct{}

func (failIntrospection) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/introspect") {
		return nil, errors.New("introspection endpoint unreachable (test)")
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestRealKeycloakLightweightTokens(t *testing.T) {
	k := newLightweightRealm(t, "cloakroom-lightweight")
	alice := lightweightToken(t, k, "alice")

	// What Keycloak 26.7.3 puts in a lightweight token: no sub, no aud,
	// no roles, no profile; the jti says "lt".
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(alice, ".")[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	if got, want := slices.Sorted(maps.Keys(claims)), []string{"azp", "exp", "iat", "iss", "jti", "scope", "sid", "typ"}; !slices.Equal(got, want) {
		t.Errorf("lightweight token claims %v, want %v", got, want)
	}
	if jti, _ := claims["jti"].(string); !strings.HasPrefix(jti, "onltro:") {
		t.Errorf("jti %q", jti)
	}

	newAuth := func(t *testing.T, client *http.Client, creds cloakroom.ClientCredentials, opts ...bearer.Option) http.Handler {
		t.Helper()
		ropts := []cloakroom.RealmOption{}
		if client != nil {
			ropts = append(ropts, cloakroom.WithHTTPClient(client))
		}
		realm, err := cloakroom.NewRealm(k.issuer(), ropts...)
		if err != nil {
			t.Fatal(err)
		}
		v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "api"})
		if err != nil {
			t.Fatal(err)
		}
		if creds.ClientID != "" {
			opts = append(opts, bearer.WithLightweightTokens(creds))
		}
		a, err := bearer.New(v, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return a.Authenticate(bearer.RequireAnyRealmRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := bearer.FromContext(r.Context())
			fmt.Fprintf(w, "%s %s %v", p.Username, p.Claims.Email(), p.Claims.HasRealmRole("user"))
		})))
	}
	api := cloakroom.ClientCredentials{ClientID: "api", ClientSecret: "api-secret"}
	app := cloakroom.ClientCredentials{ClientID: "app", ClientSecret: "app-secret"}
	down := &http.Client{Transport: failIntrospection{}}

	tests := []struct {
		name       string
		h          http.Handler
		user       string
		wantStatus int
		wantCode   string
		wantBody   string
	}{
		{"lightweight token, roles from introspection", newAuth(t, nil, api), "alice", 200, "", "alice alice@example.com true"},
		{"role missing", newAuth(t, nil, api), "bob", 403, "permission_denied", ""},
		{"without WithLightweightTokens", newAuth(t, nil, cloakroom.ClientCredentials{}), "alice", 401, "token_not_valid", ""},
		{"Keycloak unreachable", newAuth(t, down, api), "alice", 503, "idp_unavailable", ""},
		// Keycloak 26.7 answers active=false to a client outside the
		// audience its introspection mappers give the token.
		{"introspecting client not in the audience", newAuth(t, nil, app), "alice", 401, "token_not_valid", ""},
		{"with WithIntrospection too", newAuth(t, nil, api, bearer.WithIntrospection(bearer.IntrospectionConfig{Client: api})), "alice", 200, "", "alice alice@example.com true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
			req.Header.Set("Authorization", "Bearer "+lightweightToken(t, k, tt.user))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				var e struct{ Code string }
				json.Unmarshal(body, &e)
				if e.Code != tt.wantCode {
					t.Fatalf("code %q, want %q: %s", e.Code, tt.wantCode, body)
				}
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Fatalf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}
