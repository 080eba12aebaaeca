package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// TestRealKeycloakTokenExchange: standard token exchange (RFC 8693,
// Keycloak 26.2+) against a real Keycloak (26.7.3) and against keycloaktest
// configured alike: the library's Exchanger gets a token for the requested
// audience only (aud narrowed, azp the requester, the subject's sid and
// sub), from the cache the second time; Keycloak's refusals become errors
// that say what to configure; and keycloaktest answers every request of
// the scenario as the real server does (status, error, description, and
// the claims that matter). No browser is needed.
func TestRealKeycloakTokenExchange(t *testing.T) {
	base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/")
	if base == "" {
		t.Skip("CLOAKROOM_TEST_KEYCLOAK is not set (scripts/keycloak.sh start prints it; .ci/run sets it)")
	}
	k := &realKC{t: t, base: base, realm: "e2e-exchange"}
	k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0)
	k.call(http.MethodPost, "/admin/realms", exchangeRealmRep(k.realm), http.StatusCreated)
	t.Cleanup(func() { k.call(http.MethodDelete, "/admin/realms/"+k.realm, nil, 0) })

	kc := keycloaktest.NewServer(t, keycloaktest.WithRealm(exchangeRealmConfig(k.realm)))
	servers := map[string]string{"keycloak": k.issuer(), "keycloaktest": kc.Issuer(k.realm)}

	t.Run("library", func(t *testing.T) {
		for name, issuer := range servers {
			t.Run(name, func(t *testing.T) { exchangeWithLibrary(t, issuer) })
		}
	})
	t.Run("answers", func(t *testing.T) {
		real := exchangeAnswers(t, servers["keycloak"])
		fake := exchangeAnswers(t, servers["keycloaktest"])
		for _, name := range slices.Sorted(mapsKeys(real)) {
			if !reflect.DeepEqual(real[name], fake[name]) {
				t.Errorf("%s:\n keycloak     %v\n keycloaktest %v", name, real[name], fake[name])
			}
		}
	})
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// exchangeRealmRep is the scenario's realm for Keycloak's admin API.
func exchangeRealmRep(realm string) map[string]any {
	aud := func(client string) map[string]any {
		return map[string]any{"name": "aud-" + client, "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
			"config": map[string]string{"included.client.audience": client, "access.token.claim": "true", "introspection.token.claim": "true"}}
	}
	on := map[string]string{"standard.token.exchange.enabled": "true"}
	return map[string]any{
		"realm": realm, "enabled": true,
		"roles": map[string]any{"realm": []any{map[string]any{"name": "staff"}},
			"client": map[string]any{"orders-api": []any{map[string]any{"name": "read"}}}},
		"users": []any{map[string]any{
			"username": "alice", "enabled": true, "email": "alice@example.com", "emailVerified": true, "firstName": "Alice", "lastName": "A",
			"credentials": []any{map[string]any{"type": "password", "value": "alice"}},
			"realmRoles":  []string{"staff"}, "clientRoles": map[string][]string{"orders-api": {"read"}},
		}},
		"clients": []any{
			map[string]any{"clientId": "frontend", "secret": "fsecret", "publicClient": false, "directAccessGrantsEnabled": true,
				"protocolMappers": []any{aud("requester")}},
			map[string]any{"clientId": "requester", "secret": "rsecret", "publicClient": false, "directAccessGrantsEnabled": true,
				"attributes": on, "protocolMappers": []any{aud("orders-api"), aud("billing-api")}},
			map[string]any{"clientId": "noexchange", "secret": "nsecret", "publicClient": false, "directAccessGrantsEnabled": true},
			map[string]any{"clientId": "pubx", "publicClient": true, "directAccessGrantsEnabled": true, "attributes": on},
			map[string]any{"clientId": "orders-api", "secret": "osecret", "publicClient": false},
			map[string]any{"clientId": "billing-api", "secret": "bsecret", "publicClient": false},
			map[string]any{"clientId": "other-api", "secret": "xsecret", "publicClient": false},
			map[string]any{"clientId": "disabled-api", "secret": "dsecret", "publicClient": false, "enabled": false},
		},
	}
}

// exchangeRealmConfig is the same realm for keycloaktest.
func exchangeRealmConfig(realm string) keycloaktest.RealmConfig {
	aud := func(client string) keycloaktest.MapperConfig {
		return keycloaktest.MapperConfig{Name: "aud-" + client, Type: "oidc-audience-mapper", Config: map[string]string{
			"included.client.audience": client, "access.token.claim": "true", "introspection.token.claim": "true"}}
	}
	on := map[string]string{keycloaktest.ClientAttrStandardTokenExchange: "true"}
	return keycloaktest.RealmConfig{
		Name: realm, RealmRoles: []string{"staff"},
		Clients: []keycloaktest.ClientConfig{
			{ClientID: "frontend", Secret: "fsecret", DirectAccessGrants: true, Mappers: []keycloaktest.MapperConfig{aud("requester")}},
			{ClientID: "requester", Secret: "rsecret", DirectAccessGrants: true, Attributes: on,
				Mappers: []keycloaktest.MapperConfig{aud("orders-api"), aud("billing-api")}},
			{ClientID: "noexchange", Secret: "nsecret", DirectAccessGrants: true},
			{ClientID: "pubx", Public: true, DirectAccessGrants: true, Attributes: on},
			{ClientID: "orders-api", Secret: "osecret", Roles: []string{"read"}},
			{ClientID: "billing-api", Secret: "bsecret"},
			{ClientID: "other-api", Secret: "xsecret"},
			{ClientID: "disabled-api", Secret: "dsecret", Disabled: true},
		},
		Users: []keycloaktest.UserConfig{{
			Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true, FirstName: "Alice", LastName: "A",
			NoDefaultRoles: true, RealmRoles: []string{"staff"}, ClientRoles: map[string][]string{"orders-api": {"read"}},
		}},
	}
}

func exchangeLogin(t *testing.T, issuer, client, secret string) string {
	t.Helper()
	res, err := http.PostForm(issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"password"},
		"client_id": {client}, "client_secret": {secret}, "username": {"alice"}, "password": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("login with %s: status %d, %v", client, res.StatusCode, err)
	}
	return body.AccessToken
}

func exchangeWithLibrary(t *testing.T, issuer string) {
	ctx := context.Background()
	realm, err := cloakroom.NewRealm(issuer)
	if err != nil {
		t.Fatal(err)
	}
	x, err := cloakroom.NewExchanger(realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: "requester", ClientSecret: "rsecret"}})
	if err != nil {
		t.Fatal(err)
	}
	subject := exchangeLogin(t, issuer, "frontend", "fsecret")
	tok, err := x.Exchange(ctx, subject, "orders-api")
	if err != nil {
		t.Fatal(err)
	}
	v, err := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "orders-api"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("orders-api refuses the exchanged token: %v", err)
	}
	subj, err := (func() (*cloakroom.Claims, error) {
		sv, _ := realm.NewVerifier(cloakroom.VerifierConfig{ClientID: "requester"})
		return sv.Verify(ctx, subject)
	})()
	if err != nil {
		t.Fatal(err)
	}
	if got := claims.Audience(); !slices.Equal(got, []string{"orders-api"}) || claims.AuthorizedParty() != "requester" ||
		claims.Subject() != subj.Subject() || claims.SessionID() != subj.SessionID() || !claims.HasClientRole("orders-api", "read") {
		t.Errorf("exchanged token: aud %v azp %q sub %q sid %q", got, claims.AuthorizedParty(), claims.Subject(), claims.SessionID())
	}
	if again, err := x.Exchange(ctx, subject, "orders-api"); err != nil || again.AccessToken != tok.AccessToken {
		t.Errorf("second exchange not from the cache: %v", err)
	}

	for _, tc := range []struct {
		name, client, secret, audience string
		says                           string
	}{
		{"exchange disabled", "noexchange", "nsecret", "orders-api", `enable Standard token exchange on client "noexchange"`},
		{"audience not available", "requester", "rsecret", "other-api", `Keycloak puts "other-api" in aud of client "requester"`},
		{"audience not found", "requester", "rsecret", "nope", `has no client with Client ID "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := cloakroom.NewExchanger(realm, cloakroom.ExchangerConfig{Credentials: cloakroom.ClientCredentials{ClientID: tc.client, ClientSecret: tc.secret}})
			_, err := x.Exchange(ctx, subject, tc.audience)
			if !errors.Is(err, cloakroom.ErrMisconfigured) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want ErrMisconfigured saying %q", err, tc.says)
			}
		})
	}
	if _, err := x.Exchange(ctx, "not.a.token", "orders-api"); !errors.Is(err, cloakroom.ErrSubjectTokenRefused) {
		t.Errorf("garbage subject token: %v", err)
	}
}

// exchangeAnswers sends the scenario's raw requests and keeps what must
// match: status, error and description, and of a success the claims that
// the exchange decides.
func exchangeAnswers(t *testing.T, issuer string) map[string]any {
	subject := exchangeLogin(t, issuer, "frontend", "fsecret")
	own := exchangeLogin(t, issuer, "noexchange", "nsecret")
	const (
		te = "urn:ietf:params:oauth:grant-type:token-exchange"
		at = "urn:ietf:params:oauth:token-type:access_token"
	)
	requests := map[string]struct {
		client string
		form   url.Values
	}{
		"orders":               {"requester:rsecret", url.Values{"audience": {"orders-api"}}},
		"billing":              {"requester:rsecret", url.Values{"audience": {"billing-api"}}},
		"orders and billing":   {"requester:rsecret", url.Values{"audience": {"orders-api", "billing-api"}}},
		"phone":                {"requester:rsecret", url.Values{"audience": {"orders-api"}, "scope": {"phone"}}},
		"offline dropped":      {"requester:rsecret", url.Values{"audience": {"orders-api"}, "scope": {"offline_access"}}},
		"id token":             {"requester:rsecret", url.Values{"audience": {"orders-api"}, "requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}},
		"not available":        {"requester:rsecret", url.Values{"audience": {"other-api"}}},
		"two not available":    {"requester:rsecret", url.Values{"audience": {"other-api", "requester"}}},
		"audience not found":   {"requester:rsecret", url.Values{"audience": {"nope"}}},
		"audience disabled":    {"requester:rsecret", url.Values{"audience": {"disabled-api"}}},
		"exchange disabled":    {"noexchange:nsecret", url.Values{"audience": {"orders-api"}}},
		"public client":        {"", url.Values{"client_id": {"pubx"}, "audience": {"orders-api"}}},
		"invalid subject":      {"requester:rsecret", url.Values{"subject_token": {"a.b.c"}}},
		"not in subject's aud": {"requester:rsecret", url.Values{"subject_token": {own}, "audience": {"orders-api"}}},
		"no subject":           {"requester:rsecret", url.Values{"subject_token": nil}},
		"no subject type":      {"requester:rsecret", url.Values{"subject_token_type": nil}},
		"jwt subject type":     {"requester:rsecret", url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}},
		"refresh token type":   {"requester:rsecret", url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}},
		"unknown type":         {"requester:rsecret", url.Values{"requested_token_type": {"foo"}, "audience": {"nope"}}},
		"bad scope":            {"requester:rsecret", url.Values{"scope": {"zzz"}, "audience": {"other-api"}}},
		"requested_subject":    {"requester:rsecret", url.Values{"requested_subject": {"alice"}}},
		"subject_issuer":       {"requester:rsecret", url.Values{"subject_issuer": {"other"}}},
	}
	out := map[string]any{}
	for name, r := range requests {
		form := url.Values{"grant_type": {te}, "subject_token": {subject}, "subject_token_type": {at}}
		for k, v := range r.form {
			if v == nil {
				delete(form, k)
			} else {
				form[k] = v
			}
		}
		req, _ := http.NewRequest(http.MethodPost, issuer+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id, secret, ok := strings.Cut(r.client, ":"); ok {
			req.SetBasicAuth(id, secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.StatusCode != http.StatusOK {
			out[name] = []any{res.StatusCode, body["error"], body["error_description"]}
			continue
		}
		c := jwtClaims(t, body["access_token"].(string))
		sc, _ := c["scope"].(string)
		scope := strings.Fields(sc) // compared as a set
		slices.Sort(scope)
		kept := map[string]any{"status": res.StatusCode, "token_type": body["token_type"], "issued_token_type": body["issued_token_type"],
			"refresh": body["refresh_token"] != nil, "id_token": body["id_token"] != nil,
			"aud": c["aud"], "azp": c["azp"], "typ": c["typ"], "scope": scope, "resource_access": c["resource_access"], "realm_access": c["realm_access"],
			"sid kept": c["sid"] == jwtClaims(t, subject)["sid"], "session_state": body["session_state"] == c["sid"]}
		if jti, _ := c["jti"].(string); strings.Contains(jti, ":") {
			kept["jti prefix"], _, _ = strings.Cut(jti, ":")
		}
		out[name] = kept
	}
	return out
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
