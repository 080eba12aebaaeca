package cloakroom

import "strings"

// ConfirmationJKT returns the token's cnf.jkt claim (RFC 9449 6.1): the
// JWK SHA-256 thumbprint of the key a DPoP-bound access token is bound to,
// or "" when the token carries none (or carries one that is not a
// string). Keycloak 26.4 and later set it, with typ "DPoP", on tokens
// requested with a DPoP proof.
func (c *Claims) ConfirmationJKT() string {
	cnf, _ := c.Lookup("cnf")
	m, _ := cnf.(map[string]any)
	jkt, _ := m["jkt"].(string)
	return jkt
}

// IsDPoPBound reports whether the token is bound to a DPoP key: its typ
// is "DPoP" or its cnf claim has a jkt member. Such a token is only good
// with a proof of possession of that key (bearer.WithDPoP checks it); sent
// as a plain bearer token it must be refused (RFC 9449 7.2).
func (c *Claims) IsDPoPBound() bool {
	switch c.bound.Load() {
	case 1:
		return false
	case 2:
		return true
	}
	if c.isDPoPBound() {
		c.bound.Store(2)
		return true
	}
	c.bound.Store(1)
	return false
}

func (c *Claims) isDPoPBound() bool {
	if strings.EqualFold(c.Type(), "dpop") {
		return true
	}
	cnf, _ := c.Lookup("cnf")
	m, _ := cnf.(map[string]any)
	_, ok := m["jkt"]
	return ok
}
