package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// orgSeeds are answers of Keycloak 26.7.3's organizations API and some
// garbage.
var orgSeeds = []string{
	`[{"id":"2fbd39d8","name":"Acme","alias":"acme","enabled":true,"domains":[{"name":"acme.com","verified":false}]}]`,
	`[{"id":"2fbd39d8","name":"Acme","alias":"acme","enabled":true,"description":"d","redirectUrl":"https://acme.com/","attributes":{"tier":["gold"]},"domains":[{"name":"acme.org","verified":false},{"name":"acme.com","verified":true}]}]`,
	`[{"id":"42ba","username":"alice","firstName":"Alice","email":"alice@acme.com","emailVerified":false,"enabled":true,"createdTimestamp":1796599628647,"membershipType":"UNMANAGED"}]`,
	`[{"alias":"acme-idp","internalId":"8a7a","providerId":"oidc","enabled":true,"organizationId":"2fbd","config":{"clientSecret":"**********"},"types":["USER_AUTHENTICATION"]}]`,
	`{"errorMessage":"Organizations not enabled for this realm."}`,
	`[{"attributes":{"x":"notalist"}}]`, `[null]`, `3`, ``, `[{"domains":{}}]`,
}

// FuzzDecodeOrganizations: any body decodes into the organization types or
// fails cleanly; what decodes survives a round trip through MarshalJSON;
// orgError never panics and keeps ErrNotFound.
func FuzzDecodeOrganizations(f *testing.F) {
	for _, s := range orgSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var orgs []Organization
		if decodeJSON(body, &orgs) == nil {
			for _, o := range orgs {
				b, err := json.Marshal(o)
				if err != nil {
					t.Fatalf("marshal %+v: %v", o, err)
				}
				var back Organization
				if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(normOrg(back), normOrg(o)) {
					t.Fatalf("round trip: %+v -> %s -> %+v (%v)", o, b, back, err)
				}
			}
		}
		var members []OrganizationMember
		_ = decodeJSON(body, &members)
		var idps []IdentityProvider
		_ = decodeJSON(body, &idps)
		e := DecodeError(http.StatusNotFound, http.MethodGet, "/admin/realms/demo/organizations", body)
		for _, listing := range []bool{true, false} {
			if err := orgError(e, listing); !errors.Is(err, ErrNotFound) {
				t.Fatalf("orgError lost ErrNotFound: %v", err)
			}
		}
	})
}

// normOrg makes empty and nil collections equal.
func normOrg(o Organization) Organization {
	if len(o.Domains) == 0 {
		o.Domains = nil
	}
	for k, v := range o.Attributes {
		if len(v) == 0 {
			o.Attributes[k] = nil
		}
	}
	return o
}

func TestOrgErrorSentinel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body    string
		listing bool
		want    bool
	}{
		{`{"errorMessage":"Organizations not enabled for this realm."}`, false, true},
		{`{"error":"Unable to find matching target resource method"}`, true, true},
		{`{"error":"HTTP 404 Not Found"}`, true, true},
		{`{"error":"HTTP 404 Not Found"}`, false, false},
		{`{"errorMessage":"Organization not found."}`, true, false},
	} {
		err := orgError(DecodeError(404, http.MethodGet, "/x", []byte(tc.body)), tc.listing)
		if errors.Is(err, ErrOrganizationsDisabled) != tc.want || !errors.Is(err, ErrNotFound) {
			t.Errorf("%s (listing %v): %v", tc.body, tc.listing, err)
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: no *APIError in %v", tc.body, err)
		}
	}
}
