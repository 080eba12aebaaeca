package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Keycloak is a real Keycloak server reached with the master realm's
// administrator, for tests that need realms of their own.
type Keycloak struct {
	Base            string
	Admin, Password string
	HTTP            *http.Client
}

// AdminToken logs the administrator in (admin-cli in the master realm).
func (k *Keycloak) AdminToken(ctx context.Context) (string, error) {
	hc := k.client()
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {k.Admin}, "password": {k.Password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.Base+"/realms/master/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("Keycloak admin login: %w", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body, err := decode(res, &tok)
	if err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("Keycloak admin login as %s: %v %.200s", k.Admin, err, body)
	}
	return tok.AccessToken, nil
}

func (k *Keycloak) client() *http.Client {
	if k.HTTP != nil {
		return k.HTTP
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// ImportRealm deletes the realm name if it exists and creates it from a
// realm representation (a realm export file), renamed to name.
func (k *Keycloak) ImportRealm(ctx context.Context, name string, realmJSON []byte) error {
	tok, err := k.AdminToken(ctx)
	if err != nil {
		return err
	}
	c := &Client{t: &Target{Base: k.Base, HTTP: k.client()}}
	h := bearer(tok)
	del, err := c.Do(ctx, http.MethodDelete, k.Base+"/admin/realms/"+url.PathEscape(name), nil, h)
	if err != nil {
		return fmt.Errorf("deleting realm %s: %w", name, err)
	}
	if del.Status != http.StatusNoContent && del.Status != http.StatusNotFound {
		return fmt.Errorf("deleting realm %s: status %d %.200s", name, del.Status, del.Body)
	}
	var rep map[string]any
	if err := json.Unmarshal(realmJSON, &rep); err != nil {
		return fmt.Errorf("realm file: %w", err)
	}
	rep["realm"] = name
	// An export carries the realm's database id: drop it, so that the
	// same file can be imported under several names.
	delete(rep, "id")
	res, err := c.Do(ctx, http.MethodPost, k.Base+"/admin/realms", rep, h)
	if err != nil {
		return fmt.Errorf("importing realm %s: %w", name, err)
	}
	if res.Status != http.StatusCreated {
		return fmt.Errorf("importing realm %s: status %d %.300s", name, res.Status, res.Body)
	}
	return nil
}

// AdminCall sends one admin REST request as the master administrator, e.g.
// AdminCall(ctx, "POST", "/admin/realms/x/clients/ID/protocol-mappers/models", mapper).
func (k *Keycloak) AdminCall(ctx context.Context, method, path string, body any) (*Response, error) {
	tok, err := k.AdminToken(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{t: &Target{Base: k.Base, HTTP: k.client()}}
	return c.Do(ctx, method, k.Base+path, body, bearer(tok))
}
