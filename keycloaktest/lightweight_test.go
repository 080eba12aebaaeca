package keycloaktest

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// lightweightRealm is the demo realm with lightweight access tokens for
// the demo client, and mappers with and without "Add to lightweight
// access token".
func lightweightRealm() RealmConfig {
	cfg := DemoRealm(DemoClientSecret)
	app := &cfg.Clients[0]
	app.Attributes = map[string]string{clientAttrLightweight: "true"}
	hc := func(name string, conf map[string]string) MapperConfig {
		c := map[string]string{"claim.name": name, "claim.value": "yes", "jsonType.label": "String"}
		maps.Copy(c, conf)
		return MapperConfig{Name: name, Type: mapperHardcodedClaim, Config: c}
	}
	app.Mappers = []MapperConfig{
		hc("light", map[string]string{"access.token.claim": "true", mapperLightweight: "true"}),
		hc("lightonly", map[string]string{"access.token.claim": "false", mapperLightweight: "true"}),
		hc("heavy", map[string]string{"access.token.claim": "true"}),
		hc("nointro", map[string]string{"access.token.claim": "true", "introspection.token.claim": "false"}),
	}
	return cfg
}

// TestLightweightTokens checks the claims of lightweight access tokens
// and their introspection against what Keycloak 26.7.3 answered (see
// lightweight.go).
func TestLightweightTokens(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRealm(lightweightRealm()))
	aliceID, _ := s.Realm("demo").UserID("alice")
	login := passwordLogin(t, s, "alice", "alice", "openid")
	at := login["access_token"].(string)
	cc := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"client_credentials"}}, DemoClientID+":"+DemoClientSecret)
	if cc.status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", cc.status, cc.body)
	}
	refreshed := postForm(t, tokenURL(s, "demo"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login["refresh_token"].(string)}}, DemoClientID+":"+DemoClientSecret)
	if refreshed.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", refreshed.status, refreshed.body)
	}

	tests := []struct {
		name      string
		token     string
		jtiPrefix string
		claims    []string // exactly these
	}{
		{"password", at, "onltro:", []string{"exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope", "light", "lightonly"}},
		{"refresh", refreshed.json(t)["access_token"].(string), "onltrt:", []string{"exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope", "light", "lightonly"}},
		{"client_credentials", cc.json(t)["access_token"].(string), "trltcc:", []string{"exp", "iat", "jti", "iss", "typ", "azp", "sub", "scope", "light", "lightonly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := verifyWithJWKS(t, s, "demo", tt.token)
			got := slices.Sorted(maps.Keys(c))
			want := slices.Sorted(slices.Values(tt.claims))
			if !slices.Equal(got, want) {
				t.Errorf("claims %v, want %v", got, want)
			}
			if jti, _ := c["jti"].(string); !strings.HasPrefix(jti, tt.jtiPrefix) {
				t.Errorf("jti %q, want prefix %q", jti, tt.jtiPrefix)
			}
		})
	}

	t.Run("id token unchanged", func(t *testing.T) {
		t.Parallel()
		id := decode(t, login["id_token"].(string)).claims
		if id["sub"] != aliceID || id["preferred_username"] != "alice" {
			t.Errorf("ID token %v", id)
		}
	})

	t.Run("introspection answers the full claims", func(t *testing.T) {
		t.Parallel()
		resp := postForm(t, introspectURL(s), url.Values{"token": {at}}, DemoClientID+":"+DemoClientSecret)
		in := resp.json(t)
		if in["active"] != true {
			t.Fatalf("introspection: %s", resp.body)
		}
		if in["sub"] != aliceID || in["preferred_username"] != "alice" || in["email"] != "alice@example.com" || in["heavy"] != "yes" || in["light"] != "yes" {
			t.Errorf("introspection %v", in)
		}
		if _, ok := in["lightonly"]; ok {
			t.Error("a mapper only for lightweight tokens is in the introspection answer")
		}
		if _, ok := in["nointro"]; ok {
			t.Error("a mapper without introspection is in the introspection answer")
		}
		roles, _ := in["realm_access"].(map[string]any)["roles"].([]any)
		if !slices.Contains(roles, any("admin")) {
			t.Errorf("realm_access %v", in["realm_access"])
		}
		if !slices.Contains(aud(in), DemoClientID) {
			t.Errorf("aud %v", in["aud"])
		}
		if jti, _ := in["jti"].(string); !strings.HasPrefix(jti, "onltro:") {
			t.Errorf("jti %q", jti)
		}
	})
}

// TestLightweightIntrospectionAudience: a client not in the audience the
// introspection mappers give is answered active=false, unless its
// allow.token.introspection.without.audience.check is on (observed on
// Keycloak 26.7.3).
func TestLightweightIntrospectionAudience(t *testing.T) {
	t.Parallel()
	cfg := lightweightRealm()
	cfg.Clients = append(cfg.Clients,
		ClientConfig{ClientID: "api", Secret: "api-secret", ServiceAccounts: true},
		ClientConfig{ClientID: "api-any", Secret: "api-any-secret", ServiceAccounts: true,
			Attributes: map[string]string{clientAttrIntrospectWithoutAudience: "true"}})
	s := NewServer(t, WithRealm(cfg))
	at := passwordLogin(t, s, "alice", "alice", "")["access_token"].(string)
	for _, tt := range []struct {
		client string
		active bool
	}{
		{DemoClientID + ":" + DemoClientSecret, true},
		{"api:api-secret", false},
		{"api-any:api-any-secret", true},
	} {
		in := postForm(t, introspectURL(s), url.Values{"token": {at}}, tt.client).json(t)
		if in["active"] != tt.active {
			t.Errorf("%s: active %v, want %v", tt.client, in["active"], tt.active)
		}
	}
}
