package directory

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/cloakroom/cloakroom/bearer"
	"github.com/cloakroom/cloakroom/login"
)

// SessionUserID is the session value LoginHook stores the local user id
// under (read it with login's Session.Value).
const SessionUserID = "directory_user_id"

// LoginHook returns a login.Config.AfterLogin hook that upserts the user
// from the ID token (profile) and the access token (roles) on every login
// and stores the local id in the session under SessionUserID. A user
// deactivated before this login's tokens were issued is refused with
// login.ErrLoginRejected (the message the user sees says the account is
// deactivated); other failures fail the login.
//
//	cfg.AfterLogin = dir.LoginHook()
func (d *Directory) LoginHook() func(context.Context, *login.LoginEvent) error {
	return func(ctx context.Context, e *login.LoginEvent) error {
		if e == nil {
			return fmt.Errorf("directory: login hook: %w: no login event", ErrInvalidClaims)
		}
		u, err := d.upsert(ctx, e.IDClaims, e.AccessClaims)
		if errors.Is(err, ErrDeactivated) {
			return &rejected{base: login.ErrLoginRejected, err: err}
		}
		if err != nil {
			return err
		}
		if e.Values == nil {
			e.Values = map[string]string{}
		}
		e.Values[SessionUserID] = strconv.FormatInt(u.ID, 10)
		return nil
	}
}

// BearerMapper returns a bearer.UserMapper that upserts the caller from
// the access token's claims (keyed by its sub, whatever
// bearer.WithIdentityClaim says) and stores the *User in
// bearer.Principal.User (read it with bearer.User[*directory.User]). A
// token that changes nothing costs one indexed read. A token issued
// before the user was deactivated is refused with bearer.ErrUserRejected
// (403 permission_denied).
//
//	bearer.New(verifier, bearer.WithUserMapper(dir.BearerMapper()))
func (d *Directory) BearerMapper() bearer.UserMapper {
	return func(ctx context.Context, p *bearer.Principal) (any, error) {
		if p == nil || p.Claims == nil {
			return nil, fmt.Errorf("directory: bearer mapper: %w: no claims", ErrInvalidClaims)
		}
		u, err := d.UpsertFromClaims(ctx, p.Claims)
		if errors.Is(err, ErrDeactivated) {
			return nil, &rejected{base: bearer.ErrUserRejected, err: err}
		}
		if err != nil {
			return nil, err
		}
		return u, nil
	}
}

// rejected is a refusal for a hook's caller: a short message safe to show
// the user, matching both the caller's sentinel and ErrDeactivated.
type rejected struct {
	base error // login.ErrLoginRejected or bearer.ErrUserRejected
	err  error
}

// Error is the message the user sees.
func (r *rejected) Error() string { return r.base.Error() + ": this account has been deactivated" }

// Unwrap returns the caller's sentinel and the directory's error.
func (r *rejected) Unwrap() []error { return []error{r.base, r.err} }
