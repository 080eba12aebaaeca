package cloakroom

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fastPathPayloads are payloads the fast decoder must decode itself (not
// hand to the reference decoder): the shapes Keycloak and common providers
// send.
var fastPathPayloads = []string{
	keycloakPayload,
	`{"acr":"1","allowed-origins":["http://127.0.0.1","http://127.0.0.1:8000","http://[::1]","http://localhost","http://localhost:8000"],"aud":["cloakroom","account"],"azp":"cloakroom","email":"alice@example.com","email_verified":true,"exp":1796593948,"family_name":"Liddell","given_name":"Alice","iat":1796590348,"iss":"http://127.0.0.1:35337/realms/demo","jti":"onrtro:e583ef8e-9e2b-4347-861a-ab3dd2ec9d96","name":"Alice Liddell","preferred_username":"alice","realm_access":{"roles":["admin","default-roles-demo","offline_access","uma_authorization","user"]},"resource_access":{"account":{"roles":["manage-account","manage-account-links","view-profile"]}},"scope":"openid email profile","sid":"a8f204e7-4f30-4f0a-8ccf-f3974825f022","sub":"39dea6fe-b438-4612-8529-35f7d0db27ca","typ":"Bearer"}`,
	`{}`,
	` { "iss" : "x" , "aud" : "api" , "exp" : -1 , "nbf" : 0 , "iat" : 123456789012345 } `,
	`{"aud":[],"realm_access":null,"resource_access":null,"scp":"a b","email_verified":"false"}`,
	`{"aud":["a","b","c"],"sub":"caf\u00e9 \"q\"","iss":null,"nonce":"n","at_hash":null,"c_hash":"c","s_hash":"s"}`,
	`{"realm_access":{"roles":[],"other":{"x":[1,{"y":null}]}},"resource_access":{"a":{"roles":null},"b":null,"c":{}}}`,
	`{"events":{"http://schemas.openid.net/event/backchannel-logout":{}},"jti":"j","sid":"s","acr":2,"token_use":"access","client_id":"c"}`,
	`{"acr":null,"email_verified":null,"auth_time":1,"exp":null,"x":{"a":1,"b":[true,false,null]},"y":"\ud83d\ude00"}`,
}

// referencePayloads are payloads left to the reference decoder (the result
// must still be the same).
var referencePayloads = []string{
	`null`,
	`{"exp":1790000300.75}`,
	`{"exp":1e3}`,
	`{"exp":1234567890123456}`,
	`{"\u0069ss":"x"}`,
	`{"aud":[null,"a"]}`,
	`{"realm_access":{"roles":[null]}}`,
	`{"realm_access":{"rol\u0065s":["a"]}}`,
	`{"sub":"alice","sub":"admin"}`,
	`{"iss":"a","x":1,"iss":"a"}`,
	`{"x":1,"y":2,"x":3}`,
	`{"x":{"a":1,"a":2}}`,
	`{"x":[1,{"a":1,"b":{"c":1,"c":1}}]}`,
	`{"acr":{"a":1,"a":1}}`,
	`{"realm_access":{"roles":[],"roles":[]}}`,
	`{"realm_access":{"x":1,"roles":[],"x":2}}`,
	`{"realm_access":{"roles":[],"x":{"y":1,"y":2}}}`,
	`{"resource_access":{"a":{},"b":{},"a":{}}}`,
	`{"resource_access":{"a":{"roles":["r"],"roles":["s"]}}}`,
	`{"events":{"e":{},"e":{}}}`,
	`{"scp":["a"],"scp":"b"}`,
	`{"sub":42}`,
	`{"sub":"a"} x`,
	`{"email_verified":"yes"}`,
	"{\"sub\":\"\xff\"}",
}

// checkSameClaims fails unless the fast decoder either gives up on payload
// or decodes exactly what the reference decoder decodes.
func checkSameClaims(t *testing.T, payload []byte) (fast bool) {
	t.Helper()
	want, wantErr := decodeClaimsReference(payload)
	got := &Claims{raw: string(payload)}
	if !decodeClaimsFast(got, payload) {
		return false
	}
	if wantErr != nil {
		t.Fatalf("fast decoder accepted %q, reference decoder refused it: %v", payload, wantErr)
	}
	if !reflect.DeepEqual(got.c, want.c) {
		t.Fatalf("payload %q:\nfast      %+v\nreference %+v", payload, got.c, want.c)
	}
	gr, wr := got.loadRoles(), want.loadRoles()
	if !reflect.DeepEqual(gr.realm, wr.realm) || !reflect.DeepEqual(gr.resource, wr.resource) {
		t.Fatalf("payload %q: roles: fast %+v %+v, reference %+v %+v", payload, gr.realm, gr.resource, wr.realm, wr.resource)
	}
	if got.ACR() != want.ACR() {
		t.Fatalf("payload %q: ACR: fast %q, reference %q", payload, got.ACR(), want.ACR())
	}
	return true
}

func TestClaimsFastPath(t *testing.T) {
	t.Parallel()
	for _, p := range fastPathPayloads {
		if !checkSameClaims(t, []byte(p)) {
			t.Errorf("fast decoder gave up on %s", p)
		}
	}
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"sub":"s"`)
		for i := range n {
			fmt.Fprintf(&b, `,"c%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	if !checkSameClaims(t, []byte(many(maxNames))) {
		t.Errorf("fast decoder gave up on %d other claims", maxNames)
	}
	for _, p := range append(referencePayloads, many(maxNames+1)) {
		if checkSameClaims(t, []byte(p)) {
			t.Errorf("fast decoder decoded %s; it should leave it to the reference decoder", p)
		}
		// ParseClaims gives the reference decoder's result or error.
		want, wantErr := decodeClaimsReference([]byte(p))
		got, err := ParseClaims([]byte(p))
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("ParseClaims(%s) err = %v, want %v", p, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got.c, want.c) {
			t.Errorf("ParseClaims(%s) = %+v, want %+v", p, got.c, want.c)
		}
	}
}

// TestParseClaimsDoesNotAliasPayload: ParseClaims copies the payload, so a
// caller reusing its buffer cannot change claims already returned (which
// the fast decoder takes as substrings of that copy).
func TestParseClaimsDoesNotAliasPayload(t *testing.T) {
	t.Parallel()
	buf := []byte(keycloakPayload)
	c, err := ParseClaims(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if c.Subject() != "7c9e6679-7425-40de-944b-e07fc1f90ae7" || c.Issuer() != "http://kc/realms/demo" || !c.HasRealmRole("admin") || !strings.HasPrefix(string(c.RawJSON()), `{"exp"`) {
		t.Fatal("claims changed with the caller's buffer")
	}
}

// TestLazyRolesConcurrent: the roles claims are decoded once, on first use,
// also when several goroutines ask at once (run with -race).
func TestLazyRolesConcurrent(t *testing.T) {
	t.Parallel()
	c, err := ParseClaims([]byte(keycloakPayload))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 8 {
		go func() {
			done <- c.HasRealmRole("admin") && c.HasClientRole("cloakroom", "editor") && len(c.ResourceAccess()) == 2
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("roles differ between goroutines")
		}
	}
	if w := c.WithRolesClaim("groups"); !slicesEqual(w.RealmRoles(), []string{"/staff"}) || !w.HasClientRole("account", "view-profile") {
		t.Fatal("WithRolesClaim lost claims")
	}
}

func slicesEqual(a, b []string) bool { return reflect.DeepEqual(a, b) }

// FuzzClaimsFastPath: whenever the fast decoder decodes a payload, the
// reference decoder accepts it and decodes the same claims.
func FuzzClaimsFastPath(f *testing.F) {
	for _, p := range fastPathPayloads {
		f.Add([]byte(p))
	}
	for _, p := range referencePayloads {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkSameClaims(t, payload)
	})
}

// BenchmarkParseClaims decodes a Keycloak access token's payload: fast is
// what Verify does, reference the single jsonv2.Unmarshal it replaces.
func BenchmarkParseClaims(b *testing.B) {
	payload := []byte(fastPathPayloads[1])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseClaims(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeClaimsReference(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast+roles", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := parseClaims(payload)
			if err != nil || !c.HasRealmRole("user") {
				b.Fatal(err)
			}
		}
	})
}
