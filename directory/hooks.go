package directory

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/cloakroom/cloakroom"
)

// SessionUserID is the session value AfterLogin stores the local user id
// under (read it with login's Session.Value).
const SessionUserID = "directory_user_id"

// AfterLogin upserts the user from a login's ID token (profile) and access
// token (roles) and stores the local id in values under SessionUserID. A
// user deactivated before this login's tokens were issued is refused with
// an error wrapping cloakroom.ErrRejected (login shows "login rejected:
// this account has been deactivated") and ErrDeactivated; other failures
// fail the login. Wire it into login.Config in one line:
//
//	cfg.AfterLogin = func(ctx context.Context, e *login.LoginEvent) error { return dir.AfterLogin(ctx, e.IDClaims, e.AccessClaims, e.Values) }
func (d *Directory) AfterLogin(ctx context.Context, idClaims, accessClaims *cloakroom.Claims, values map[string]string) error {
	if idClaims == nil {
		return fmt.Errorf("directory: after login: %w: no ID token claims", ErrInvalidClaims)
	}
	u, err := d.upsert(ctx, idClaims, accessClaims)
	if err != nil {
		return refusal("login", err)
	}
	if values != nil {
		values[SessionUserID] = strconv.FormatInt(u.ID, 10)
	}
	return nil
}

// MapUser upserts the caller from a verified access token's claims (keyed
// by its sub) and returns the row. A token that changes nothing costs one
// indexed read. A token issued before the user was deactivated is refused
// with an error wrapping cloakroom.ErrRejected (bearer answers 403
// permission_denied) and ErrDeactivated. Wire it into bearer in one line
// (bearer.User[*directory.User] then returns the row):
//
//	bearer.WithUserMapper(func(ctx context.Context, p *bearer.Principal) (any, error) { return dir.MapUser(ctx, p.Claims) })
func (d *Directory) MapUser(ctx context.Context, claims *cloakroom.Claims) (*User, error) {
	if claims == nil {
		return nil, fmt.Errorf("directory: map user: %w: no claims", ErrInvalidClaims)
	}
	u, err := d.UpsertFromClaims(ctx, claims)
	if err != nil {
		return nil, refusal("user", err)
	}
	return u, nil
}

// refusal turns ErrDeactivated into a refusal whose message is safe to
// show the user; other errors pass unchanged.
func refusal(what string, err error) error {
	if !errors.Is(err, ErrDeactivated) {
		return err
	}
	return &rejected{what: what, err: err}
}

// rejected wraps cloakroom.ErrRejected and the directory's error.
type rejected struct {
	what string // "login" or "user"
	err  error
}

// Error is the message the user sees.
func (r *rejected) Error() string {
	return r.what + " " + cloakroom.ErrRejected.Error() + ": this account has been deactivated"
}

// Unwrap returns cloakroom.ErrRejected and the directory's error.
func (r *rejected) Unwrap() []error { return []error{cloakroom.ErrRejected, r.err} }
