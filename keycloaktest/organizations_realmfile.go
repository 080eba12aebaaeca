package keycloaktest

import (
	"encoding/json"
	"fmt"
)

// parseOrganizations reads a realm file's organizationsEnabled,
// identityProviders and organizations (Keycloak 26 realm representation:
// members by username, identity providers by alias).
func parseOrganizations(root jsonObj, cfg *RealmConfig) error {
	if b, err := root.optBool("organizationsEnabled"); err != nil {
		return err
	} else if b != nil {
		cfg.OrganizationsEnabled = *b
	}
	idps, err := root.array("identityProviders")
	if err != nil {
		return err
	}
	for i, raw := range idps {
		o, err := parseObject(root.index("identityProviders", i), raw)
		if err != nil {
			return err
		}
		var p IdentityProviderConfig
		if p.Alias, err = o.str("alias"); err != nil {
			return err
		}
		if p.Alias == "" {
			return o.errAt("alias", "missing identity provider alias")
		}
		if p.ProviderID, err = o.str("providerId"); err != nil {
			return err
		}
		if p.DisplayName, err = o.str("displayName"); err != nil {
			return err
		}
		enabled, err := o.optBool("enabled")
		if err != nil {
			return err
		}
		p.Disabled = enabled != nil && !*enabled
		if p.Config, err = o.strMap("config"); err != nil {
			return err
		}
		cfg.IdentityProviders = append(cfg.IdentityProviders, p)
	}
	orgs, err := root.array("organizations")
	if err != nil {
		return err
	}
	for i, raw := range orgs {
		o, err := parseObject(root.index("organizations", i), raw)
		if err != nil {
			return err
		}
		var oc OrganizationConfig
		for _, f := range []struct {
			key string
			dst *string
		}{{"id", &oc.ID}, {"name", &oc.Name}, {"alias", &oc.Alias}, {"description", &oc.Description}, {"redirectUrl", &oc.RedirectURL}} {
			if *f.dst, err = o.str(f.key); err != nil {
				return err
			}
		}
		if oc.Name == "" {
			return o.errAt("name", "missing organization name")
		}
		enabled, err := o.optBool("enabled")
		if err != nil {
			return err
		}
		oc.Disabled = enabled != nil && !*enabled
		if oc.Attributes, err = o.multiMap("attributes"); err != nil {
			return err
		}
		var domains []struct {
			Name     string `json:"name"`
			Verified bool   `json:"verified"`
		}
		if _, err := o.decode("domains", &domains, `an array of {"name","verified"} objects`); err != nil {
			return err
		}
		for _, d := range domains {
			oc.Domains = append(oc.Domains, OrganizationDomainConfig{Name: d.Name, Verified: d.Verified})
		}
		for _, list := range []struct {
			key, member string
			dst         *[]string
		}{{"members", "username", &oc.Members}, {"identityProviders", "alias", &oc.IdentityProviders}} {
			items, err := o.array(list.key)
			if err != nil {
				return err
			}
			for j, item := range items {
				var m map[string]json.RawMessage
				var name string
				if json.Unmarshal(item, &m) != nil || json.Unmarshal(m[list.member], &name) != nil || name == "" {
					return &RealmFileError{Path: o.index(list.key, j), Err: fmt.Errorf("expected an object with a %q", list.member)}
				}
				*list.dst = append(*list.dst, name)
			}
		}
		cfg.Organizations = append(cfg.Organizations, oc)
	}
	return nil
}
