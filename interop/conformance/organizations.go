package conformance

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Organizations (Keycloak 26): the realm testdata/organizations-realm.json
// (organizationsEnabled, three organizations, two identity providers, a
// realm-admin and a view-organizations service account) is imported next
// to the conformance realm as "{realm}-orgs", like the ImportFixtures
// (whose login scenario logs its users in too), and the organizations
// scenario drives the admin API and the organization claim there.
func init() {
	ImportFixtures = append(ImportFixtures, ImportFixture{
		Name: "orgs", File: "testdata/organizations-realm.json",
		Clients: map[string]string{"orgs-app": "orgs-app-secret"},
		Users:   map[string]string{"olga": "olga-pw", "tom": "tom-pw", "nina": "nina-pw"},
	})
}

// orgsFixture is the organizations fixture.
func orgsFixture() ImportFixture {
	for _, f := range ImportFixtures {
		if f.Name == "orgs" {
			return f
		}
	}
	return ImportFixture{}
}

// organizations records the organizations admin API (statuses, error
// messages, representation shapes, what lists hold) and the organization
// claim, against the orgs fixture realm; and the 404 of a realm without
// organizations (the conformance realm).
func organizations(ctx context.Context, c *Client, r *Recorder) {
	// The conformance realm has organizations off.
	if tok := adminToken(ctx, c, r); tok != "" {
		if res, err := c.Do(ctx, http.MethodGet, c.AdminURL("/organizations"), nil, bearer(tok)); err == nil {
			r.Set("disabled.status", res.Status)
			r.Set("disabled.errorMessage", str(res.JSON, "errorMessage"))
		}
	}

	o := &Client{t: &Target{Base: c.t.Base, Realm: importName(c.t.Realm, orgsFixture()), HTTP: c.t.HTTP}}
	tokenOf := func(client, secret string) string {
		res, err := o.Token(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secret}})
		if err != nil || res.Status != http.StatusOK {
			r.Fail("token."+client, errOr(err, res))
			return ""
		}
		return str(res.JSON, "access_token")
	}
	tok := tokenOf("orgs-admin", "orgs-admin-secret")
	if tok == "" {
		return
	}
	call := func(key, method, path string, body any) *Response {
		res, err := o.Do(ctx, method, o.AdminURL(path), body, bearer(tok))
		if err != nil {
			r.Fail(key, err)
			return nil
		}
		r.Set(key+".status", res.Status)
		if res.Status >= 400 {
			r.Set(key+".error", str(res.JSON, "error"))
			// Messages may name the realm, whose name differs per run.
			r.Set(key+".errorMessage", strings.ReplaceAll(str(res.JSON, "errorMessage"), o.t.Realm, "{realm}"))
		}
		return res
	}
	byAlias := map[string]map[string]any{}
	if res := call("list", http.MethodGet, "/organizations", nil); res != nil {
		r.Set("list.aliases", orgAliases(res.List))
		for _, e := range res.List {
			if m, ok := e.(map[string]any); ok {
				byAlias[str(m, "alias")] = m
				if str(m, "alias") == "acme" {
					r.Shape("list.acme", m)
					r.Set("list.acme.domains", m["domains"])
				}
			}
		}
	}
	acme := str(byAlias["acme"], "id")
	if acme == "" {
		r.Set("acme", "missing")
		return
	}
	for key, q := range map[string]string{
		"search-substring": "?search=CM", "search-domain": "?search=acme.test", "search-exact": "?search=Acme&exact=true",
		"search-exact-lower": "?search=acme&exact=true", "q-attribute": "?q=tier:gold", "page": "?first=1&max=1",
		"full": "?briefRepresentation=false&search=acme",
	} {
		if res := call(key, http.MethodGet, "/organizations"+q, nil); res != nil {
			r.Set(key+".aliases", orgAliases(res.List))
			if key == "full" && len(res.List) == 1 {
				m, _ := res.List[0].(map[string]any)
				r.Shape(key+".acme", m)
				r.Set(key+".acme.attributes", m["attributes"])
			}
		}
	}
	if res := call("count", http.MethodGet, "/organizations/count", nil); res != nil {
		r.Set("count.body", strings.TrimSpace(string(res.Body)))
	}
	if res := call("get", http.MethodGet, "/organizations/"+acme, nil); res != nil {
		r.Shape("get", res.JSON)
		r.Set("get.attributes", res.JSON["attributes"])
	}
	call("get-unknown", http.MethodGet, "/organizations/no-such-org", nil)

	// Create: the answers to good and bad representations.
	if res := call("create", http.MethodPost, "/organizations", map[string]any{"name": "Initech", "domains": []any{map[string]any{"name": "initech.test"}}}); res != nil {
		loc := res.Header.Get("Location")
		r.Set("create.location", strings.HasPrefix(loc, o.AdminURL("/organizations/")) && len(loc) > len(o.AdminURL("/organizations/")))
	}
	for key, body := range map[string]any{
		"create-same-name":    map[string]any{"name": "Acme", "alias": "acme-2"},
		"create-same-alias":   map[string]any{"name": "Other", "alias": "acme"},
		"create-space-name":   map[string]any{"name": "Acme Inc"},
		"create-no-name":      map[string]any{"alias": "noname"},
		"create-bad-domain":   map[string]any{"name": "bad", "domains": []any{map[string]any{"name": "not a domain"}}},
		"create-taken-domain": map[string]any{"name": "taken", "domains": []any{map[string]any{"name": "acme.test"}}},
	} {
		call(key, http.MethodPost, "/organizations", body)
	}
	if res := call("list-after-create", http.MethodGet, "/organizations?max=100", nil); res != nil {
		r.Set("list-after-create.aliases", orgAliases(res.List))
		for _, e := range res.List {
			if m, ok := e.(map[string]any); ok && str(m, "alias") == "Initech" {
				r.Set("list-after-create.initech.enabled", m["enabled"])
				r.Set("list-after-create.initech.domains", m["domains"])
			}
		}
	}

	// Update: a full replacement; attributes kept when left out; the
	// alias is fixed.
	call("update", http.MethodPut, "/organizations/"+acme, map[string]any{"name": "Acme", "alias": "acme", "enabled": true,
		"redirectUrl": "https://acme.test/", "domains": []any{map[string]any{"name": "acme.test", "verified": true}, map[string]any{"name": "acme2.test"}}})
	if res := call("after-update", http.MethodGet, "/organizations/"+acme, nil); res != nil {
		r.Set("after-update.description", valueOr(res.JSON, "description"))
		r.Set("after-update.redirectUrl", valueOr(res.JSON, "redirectUrl"))
		r.Set("after-update.attributes", res.JSON["attributes"])
		r.Set("after-update.domains", sortedDomains(res.JSON["domains"]))
	}
	call("update-alias", http.MethodPut, "/organizations/"+acme, map[string]any{"name": "Acme", "alias": "acme-x"})
	call("update-no-alias", http.MethodPut, "/organizations/"+acme, map[string]any{"name": "Acme"})
	call("update-taken-name", http.MethodPut, "/organizations/"+acme, map[string]any{"name": "Globex", "alias": "acme"})
	call("update-unknown", http.MethodPut, "/organizations/no-such-org", map[string]any{"name": "x", "alias": "x"})

	// Members.
	users := map[string]string{}
	for _, u := range []string{"olga", "tom", "nina"} {
		if m := findUser(ctx, o, tok, u); m != nil {
			users[u] = str(m, "id")
		}
	}
	if res := call("members", http.MethodGet, "/organizations/"+acme+"/members", nil); res != nil {
		r.Set("members.usernames", usernames(res.List))
		if len(res.List) > 0 {
			m, _ := res.List[0].(map[string]any)
			r.Shape("members.first", m)
			r.Set("members.first.membershipType", m["membershipType"])
		}
	}
	for key, q := range map[string]string{"members-search": "?search=OLG", "members-exact": "?search=two&exact=true",
		"members-page": "?first=1&max=1", "members-managed": "?membershipType=MANAGED"} {
		if res := call(key, http.MethodGet, "/organizations/"+acme+"/members"+q, nil); res != nil {
			r.Set(key+".usernames", usernames(res.List))
		}
	}
	if res := call("members-count", http.MethodGet, "/organizations/"+acme+"/members/count", nil); res != nil {
		r.Set("members-count.body", strings.TrimSpace(string(res.Body)))
	}
	if res := call("member", http.MethodGet, "/organizations/"+acme+"/members/"+users["olga"], nil); res != nil {
		r.Shape("member", res.JSON)
	}
	call("member-not-member", http.MethodGet, "/organizations/"+acme+"/members/"+users["nina"], nil)
	if res := call("add-member", http.MethodPost, "/organizations/"+acme+"/members", users["nina"]); res != nil {
		r.Set("add-member.location", strings.HasSuffix(res.Header.Get("Location"), "/members/"+users["nina"]))
	}
	call("add-member-again", http.MethodPost, "/organizations/"+acme+"/members", users["nina"])
	call("add-member-unquoted", http.MethodPost, "/organizations/"+acme+"/members", []byte(users["nina"]))
	call("add-member-unknown", http.MethodPost, "/organizations/"+acme+"/members", "no-such-user")
	if res := call("user-orgs", http.MethodGet, "/organizations/members/"+users["olga"]+"/organizations", nil); res != nil {
		r.Set("user-orgs.aliases", orgAliases(res.List))
	}
	if res := call("user-orgs-full", http.MethodGet, "/organizations/members/"+users["olga"]+"/organizations?briefRepresentation=false", nil); res != nil {
		for _, e := range res.List {
			if m, ok := e.(map[string]any); ok && str(m, "alias") == "acme" {
				r.Set("user-orgs-full.acme.attributes", m["attributes"])
			}
		}
	}
	call("user-orgs-unknown", http.MethodGet, "/organizations/members/no-such-user/organizations", nil)
	call("remove-member", http.MethodDelete, "/organizations/"+acme+"/members/"+users["nina"], nil)
	call("remove-member-again", http.MethodDelete, "/organizations/"+acme+"/members/"+users["nina"], nil)

	// Identity providers.
	if res := call("idps", http.MethodGet, "/organizations/"+acme+"/identity-providers", nil); res != nil {
		var aliases []string
		for _, e := range res.List {
			if m, ok := e.(map[string]any); ok {
				aliases = append(aliases, str(m, "alias"))
				r.Shape("idps."+str(m, "alias"), m)
				r.Set("idps."+str(m, "alias")+".organizationId-is-org", str(m, "organizationId") == acme)
				if conf, ok := m["config"].(map[string]any); ok {
					r.Set("idps."+str(m, "alias")+".clientSecret", conf["clientSecret"])
				}
			}
		}
		r.Set("idps.aliases", aliases)
	}
	globex := str(byAlias["globex"], "id")
	call("idp-link", http.MethodPost, "/organizations/"+acme+"/identity-providers", "spare-idp")
	call("idp-link-again", http.MethodPost, "/organizations/"+acme+"/identity-providers", "spare-idp")
	call("idp-link-other-org", http.MethodPost, "/organizations/"+globex+"/identity-providers", "acme-idp")
	call("idp-link-unknown", http.MethodPost, "/organizations/"+acme+"/identity-providers", "no-such-idp")
	call("idp-get", http.MethodGet, "/organizations/"+acme+"/identity-providers/spare-idp", nil)
	call("idp-get-unlinked", http.MethodGet, "/organizations/"+globex+"/identity-providers/spare-idp", nil)
	call("idp-unlink", http.MethodDelete, "/organizations/"+acme+"/identity-providers/spare-idp", nil)
	call("idp-unlink-again", http.MethodDelete, "/organizations/"+acme+"/identity-providers/spare-idp", nil)

	// Which realm-management roles organizations need: view-organizations
	// alone reads organizations but not their members or providers.
	if vt := tokenOf("orgs-viewer", "orgs-viewer-secret"); vt != "" {
		for key, p := range map[string]string{"list": "/organizations", "get": "/organizations/" + acme,
			"members": "/organizations/" + acme + "/members", "idps": "/organizations/" + acme + "/identity-providers"} {
			if res, err := o.Do(ctx, http.MethodGet, o.AdminURL(p), nil, bearer(vt)); err == nil {
				r.Set("view-organizations."+key+".status", res.Status)
			}
		}
		if res, err := o.Do(ctx, http.MethodPost, o.AdminURL("/organizations"), map[string]any{"name": "nope"}, bearer(vt)); err == nil {
			r.Set("view-organizations.create.status", res.Status)
		}
	}

	// The organization claim: olga is in acme and globex, tom in acme,
	// nina only in the disabled dormant.
	for _, tc := range []struct{ user, scope string }{
		{"tom", "openid"}, {"tom", "openid organization"}, {"olga", "openid organization"},
		{"nina", "openid organization"}, {"olga", "openid organization:*"}, {"olga", "openid organization:globex"},
		{"tom", "openid organization:globex"}, {"tom", "openid organization:no-such-org"},
	} {
		key := "claim." + tc.user + "." + strings.ReplaceAll(tc.scope, " ", "+")
		res, err := o.Token(ctx, url.Values{"grant_type": {"password"}, "client_id": {"orgs-app"}, "client_secret": {"orgs-app-secret"},
			"username": {tc.user}, "password": {orgsFixture().Users[tc.user]}, "scope": {tc.scope}})
		if err != nil {
			r.Fail(key, err)
			continue
		}
		r.Set(key+".status", res.Status)
		if res.Status != http.StatusOK {
			r.Set(key+".error", str(res.JSON, "error"))
			continue
		}
		for _, t := range []string{"access_token", "id_token"} {
			_, claims, err := Claims(str(res.JSON, t))
			if err != nil {
				r.Fail(key+"."+t, err)
				continue
			}
			if v, ok := claims["organization"]; ok {
				if l, isList := v.([]any); isList {
					v = strings_(l) // Keycloak's order is a hash set's
				}
				r.Set(key+"."+t+".organization", v)
			} else {
				r.Set(key+"."+t+".organization", "absent")
			}
			if t == "access_token" {
				r.Set(key+".scope", words(str(claims, "scope")))
			}
		}
	}

	// Delete.
	call("delete", http.MethodDelete, "/organizations/"+globex, nil)
	call("delete-again", http.MethodDelete, "/organizations/"+globex, nil)
	if res := call("user-orgs-after-delete", http.MethodGet, "/organizations/members/"+users["olga"]+"/organizations", nil); res != nil {
		r.Set("user-orgs-after-delete.aliases", orgAliases(res.List))
	}
}

// orgAliases are the sorted aliases of a list of organizations.
func orgAliases(list []any) []string {
	out := []string{}
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, str(m, "alias"))
		}
	}
	sort.Strings(out)
	return out
}

// sortedDomains lists domains as "name/verified", sorted (Keycloak's
// order is a hash set's).
func sortedDomains(v any) []string {
	list, _ := v.([]any)
	out := []string{}
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			verified, _ := m["verified"].(bool)
			out = append(out, str(m, "name")+"/"+map[bool]string{true: "verified", false: "unverified"}[verified])
		}
	}
	sort.Strings(out)
	return out
}
