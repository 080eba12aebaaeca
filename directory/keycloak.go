package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cloakroom/cloakroom/admin"
)

// outcome is what comparing a row with Keycloak's user did.
type outcome int

const (
	outUnchanged   outcome = iota
	outCreated             // no row: a new one
	outUpdated             // profile fields changed
	outReactivated         // deactivated row, enabled user
	outDeactivated         // active row, disabled user
	outSkipped             // the row was written after Keycloak's answer was read: left alone
)

// applyKeycloak returns the row as Keycloak's user ku says it should be.
// cur is nil when there is no row; fetchedAt is a time before Keycloak was
// asked, so that a row written since (by a login, Deactivate, ...) is not
// overwritten with older data.
func applyKeycloak(cur *User, ku *admin.User, fetchedAt, now time.Time) (*User, outcome) {
	if cur == nil {
		u := &User{Subject: ku.ID, Username: ku.Username, Email: ku.Email, FirstName: ku.FirstName, LastName: ku.LastName,
			EmailVerified: ku.EmailVerified, Enabled: ku.Enabled, RealmRoles: []string{}, ClientRoles: map[string][]string{},
			Extra: map[string]any{}, Created: now, Updated: now, SyncedAt: now}
		if !ku.Enabled {
			u.DeactivatedAt, u.Reason = now, ReasonDisabled
		}
		return u, outCreated
	}
	if cur.Updated.After(fetchedAt) {
		return cur, outSkipped
	}
	next := cur.clone()
	next.Username, next.Email, next.FirstName, next.LastName = ku.Username, ku.Email, ku.FirstName, ku.LastName
	next.EmailVerified, next.Enabled = ku.EmailVerified, ku.Enabled
	next.SyncedAt = now
	out := outUnchanged
	switch {
	case ku.Enabled && !cur.Active():
		next.DeactivatedAt, next.Reason = time.Time{}, ""
		out = outReactivated
	case !ku.Enabled && cur.Active():
		next.DeactivatedAt, next.Reason = now, ReasonDisabled
		out = outDeactivated
	case !sameUser(cur, next):
		out = outUpdated
	}
	if out != outUnchanged {
		next.Updated = now
	}
	return next, out
}

// RefreshFromKeycloak reads the Keycloak user sub (admin GetUser) and
// updates its row, creating it if there is none. A user Keycloak does not
// have is deactivated locally (ReasonNotInKeycloak) and returned without
// error; with no row either, the error matches ErrNotFound and
// admin.ErrNotFound. Roles and extra claims are kept (they come from
// tokens).
func (d *Directory) RefreshFromKeycloak(ctx context.Context, sub string) (*User, error) {
	if err := d.needAdmin("refresh user from Keycloak"); err != nil {
		return nil, err
	}
	if err := validSubject(sub); err != nil {
		return nil, fmt.Errorf("directory: refresh user from Keycloak: %w: %v", ErrInvalidClaims, err)
	}
	fetchedAt := d.stamp()
	ku, err := d.admin.GetUser(ctx, sub)
	if errors.Is(err, admin.ErrNotFound) {
		u, derr := d.markGone(ctx, sub)
		if derr != nil {
			return nil, fmt.Errorf("directory: refresh user with sub %q: %w (Keycloak: %w)", sub, derr, err)
		}
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("directory: refresh user with sub %q from Keycloak: %w", sub, err)
	}
	var out *User
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := d.lockedBySub(ctx, tx, sub)
		if err != nil {
			return err
		}
		next, oc := applyKeycloak(cur, ku, fetchedAt, d.stamp())
		out = next
		if oc == outSkipped {
			return nil
		}
		inserted, err := d.writeUser(ctx, tx, nil, next)
		if err == nil && cur == nil && !inserted {
			return errRaced
		}
		return err
	})
	if errors.Is(err, errRaced) {
		// A login created the row meanwhile; its data is as fresh.
		return d.BySubject(ctx, sub)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: refresh user with sub %q: %w", sub, err)
	}
	return out, nil
}

// markGone deactivates the row of a sub Keycloak does not know.
func (d *Directory) markGone(ctx context.Context, sub string) (*User, error) {
	var out *User
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := d.lockedBySub(ctx, tx, sub)
		if err != nil {
			return err
		}
		if cur == nil {
			return ErrNotFound
		}
		out = cur
		if !cur.Active() && cur.Reason == ReasonNotInKeycloak {
			return nil
		}
		next := cur.clone()
		now := d.stamp()
		next.Enabled = false
		if cur.Active() {
			next.DeactivatedAt = now
		}
		next.Reason, next.Updated, next.SyncedAt = ReasonNotInKeycloak, now, now
		out = next
		_, err = d.writeUser(ctx, tx, nil, next)
		return err
	})
	return out, err
}

// Changes are local edits for PushToKeycloak; nil fields are left alone.
type Changes struct {
	// Email, FirstName and LastName replace the Keycloak user's values.
	Email, FirstName, LastName *string
	// Enabled false disables the Keycloak user (and deactivates the row);
	// true enables it (and reactivates the row).
	Enabled *bool
}

// PushToKeycloak sends local edits of user id to Keycloak (admin
// UpdateUser), then reads the user back and updates the row (Keycloak may
// normalise what it stores). A refused change (e.g. an email another user
// has: admin.ErrDuplicateEmail) changes nothing.
func (d *Directory) PushToKeycloak(ctx context.Context, id int64, c Changes) (*User, error) {
	if err := d.needAdmin("push changes to Keycloak"); err != nil {
		return nil, err
	}
	u, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if c == (Changes{}) {
		return u, nil
	}
	upd := admin.UserUpdate{Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, Enabled: c.Enabled}
	if err := d.admin.UpdateUser(ctx, u.Subject, upd); err != nil {
		return nil, fmt.Errorf("directory: push changes of user %d (sub %s) to Keycloak: %w", id, u.Subject, err)
	}
	out, err := d.RefreshFromKeycloak(ctx, u.Subject)
	if err != nil {
		return nil, fmt.Errorf("directory: push changes of user %d: %w", id, err)
	}
	return out, nil
}

// Deactivate disables user id in Keycloak, ends all of its sessions there
// (back-channel logouts reach the applications) and marks the row
// deactivated (ReasonDeactivated). Tokens issued before are refused by
// UpsertFromClaims from then on. A user Keycloak no longer has is
// deactivated locally all the same.
func (d *Directory) Deactivate(ctx context.Context, id int64) (*User, error) {
	if err := d.needAdmin("deactivate user"); err != nil {
		return nil, err
	}
	u, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	reason := ReasonDeactivated
	if err := d.admin.DisableUserAndLogout(ctx, u.Subject); errors.Is(err, admin.ErrNotFound) {
		reason = ReasonNotInKeycloak
	} else if err != nil {
		return nil, fmt.Errorf("directory: deactivate user %d (sub %s) in Keycloak: %w", id, u.Subject, err)
	}
	return d.markDeactivated(ctx, id, reason, "deactivate")
}

// Delete deletes user id in Keycloak, or with DisableInKeycloak only
// disables it and ends its sessions, and marks the row deactivated
// (ReasonDeleted). The row itself stays, so that the application's data
// can keep referring to its id. A user Keycloak no longer has is fine.
func (d *Directory) Delete(ctx context.Context, id int64) (*User, error) {
	if err := d.needAdmin("delete user"); err != nil {
		return nil, err
	}
	u, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.deletePolicy == DisableInKeycloak {
		err = d.admin.DisableUserAndLogout(ctx, u.Subject)
	} else {
		err = d.admin.DeleteUser(ctx, u.Subject)
	}
	if err != nil && !errors.Is(err, admin.ErrNotFound) {
		return nil, fmt.Errorf("directory: delete user %d (sub %s) in Keycloak (policy %s): %w", id, u.Subject, d.deletePolicy, err)
	}
	return d.markDeactivated(ctx, id, ReasonDeleted, "delete")
}

// markDeactivated records a deactivation done in Keycloak.
func (d *Directory) markDeactivated(ctx context.Context, id int64, reason Reason, op string) (*User, error) {
	var out *User
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := d.lockedByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur == nil {
			return ErrNotFound
		}
		now := d.stamp()
		next := cur.clone()
		next.Enabled = false
		next.DeactivatedAt, next.Reason, next.Updated = now, reason, now
		out = next
		_, err = d.writeUser(ctx, tx, nil, next)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("directory: %s user %d: Keycloak done, local row: %w", op, id, err)
	}
	return out, nil
}

// ResetMethod says how ResetPassword makes the user choose a password.
type ResetMethod int

const (
	// ByEmail emails the user a link (Keycloak's execute-actions email
	// with UPDATE_PASSWORD). The user must have an email address and be
	// enabled, and the realm needs SMTP settings.
	ByEmail ResetMethod = iota + 1
	// AtNextLogin adds the required action UPDATE_PASSWORD: Keycloak asks
	// for a new password at the next login.
	AtNextLogin
)

// ResetPassword makes user id choose a new password, by email or at the
// next login.
func (d *Directory) ResetPassword(ctx context.Context, id int64, how ResetMethod) error {
	if err := d.needAdmin("reset password"); err != nil {
		return err
	}
	if how != ByEmail && how != AtNextLogin {
		return fmt.Errorf("directory: reset password of user %d: unknown method %d (use ByEmail or AtNextLogin)", id, how)
	}
	u, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	if how == ByEmail {
		err = d.admin.ExecuteActionsEmail(ctx, u.Subject, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{})
	} else {
		err = d.admin.AddRequiredActions(ctx, u.Subject, "UPDATE_PASSWORD")
	}
	if err != nil {
		return fmt.Errorf("directory: reset password of user %d (sub %s): %w", id, u.Subject, err)
	}
	return nil
}

// EndSessions ends every Keycloak session of user id (with back-channel
// logouts to the applications); the row is unchanged.
func (d *Directory) EndSessions(ctx context.Context, id int64) error {
	if err := d.needAdmin("end sessions"); err != nil {
		return err
	}
	u, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := d.admin.LogoutUser(ctx, u.Subject); err != nil {
		return fmt.Errorf("directory: end sessions of user %d (sub %s): %w", id, u.Subject, err)
	}
	return nil
}
