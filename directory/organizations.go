package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloakroom/cloakroom/admin"
)

// OrganizationsTable holds the users' Keycloak organization memberships
// (Keycloak 26+), one row per user and organization, keyed by the user's
// sub like the users table.
const OrganizationsTable = "cloakroom_user_organizations"

// Membership is a user's membership of a Keycloak organization, as the
// last organization sync found it.
type Membership struct {
	// Subject is the member's Keycloak user id (User.Subject).
	Subject string
	// OrganizationID is Keycloak's organization id.
	OrganizationID string
	// Alias is the organization alias (what the organization claim and
	// cloakroom.MemberOf name); Name its display name.
	Alias, Name string
	// Enabled reports whether the organization is enabled: members of a
	// disabled one get no organization claim.
	Enabled bool
	// SyncedAt is when the membership was last read from Keycloak.
	SyncedAt time.Time
}

// OrganizationSyncReport is the result of SyncOrganizations.
type OrganizationSyncReport struct {
	// Enabled is false when the realm has no organizations (not enabled,
	// or a Keycloak before 26): nothing was read and the memberships
	// table was emptied.
	Enabled bool
	// Organizations is the number of organizations read.
	Organizations int
	// Memberships is the number of memberships stored.
	Memberships int
	// Removed is the number of stored memberships Keycloak no longer has.
	Removed int
	// Duration is the time the sync took.
	Duration time.Duration
}

// orgT is the quoted memberships table.
func (d *Directory) orgT() string {
	if d.pg {
		return pgx.Identifier{d.schema, OrganizationsTable}.Sanitize()
	}
	return `"` + OrganizationsTable + `"`
}

// Organizations returns the organizations the user sub belongs to, by
// alias, as the last organization sync (SyncOrganizations, or Sync with
// SyncOptions.Organizations) stored them. None is an empty list, not an
// error.
func (d *Directory) Organizations(ctx context.Context, sub string) ([]Membership, error) {
	rows, err := d.r.QueryContext(ctx, d.q.rebind(`SELECT sub, org_id, alias, name, enabled, synced_at FROM `+d.orgT()+
		` WHERE sub = ? ORDER BY alias`), sub)
	if err != nil {
		return nil, fmt.Errorf("directory: organizations of %q: %w", sub, err)
	}
	defer rows.Close()
	out := []Membership{}
	for rows.Next() {
		var m Membership
		var at dbTime
		if err := rows.Scan(&m.Subject, &m.OrganizationID, &m.Alias, &m.Name, &m.Enabled, &at); err != nil {
			return nil, fmt.Errorf("directory: organizations of %q: %w", sub, err)
		}
		m.SyncedAt = at.t
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: organizations of %q: %w", sub, err)
	}
	return out, nil
}

// OrganizationMembers returns the users of the table who are members of
// the organization alias, ordered by id. Members the table has no row for
// (never logged in, not synced) are left out.
func (d *Directory) OrganizationMembers(ctx context.Context, alias string) ([]*User, error) {
	rows, err := d.r.QueryContext(ctx, d.q.rebind(`SELECT `+userCols+` FROM `+d.q.users+
		` WHERE sub IN (SELECT sub FROM `+d.orgT()+` WHERE alias = ?) ORDER BY id`), alias)
	if err != nil {
		return nil, fmt.Errorf("directory: members of organization %q: %w", alias, err)
	}
	defer rows.Close()
	out := []*User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("directory: members of organization %q: %w", alias, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: members of organization %q: %w", alias, err)
	}
	return out, nil
}

// SyncOrganizations reads every organization of the realm and its members
// from Keycloak (one listing of organizations, then the members of each,
// page by page: not one request per user) and makes the memberships table
// match: each organization's memberships are replaced in one
// transaction, and memberships of organizations Keycloak no longer has
// are removed at the end. A realm without organizations (not enabled, or
// a Keycloak before 26) is not an error: the report says so and the table
// is emptied. The admin account needs the realm-management roles
// view-organizations and view-users. It cannot run alongside Sync
// (ErrSyncRunning).
func (d *Directory) SyncOrganizations(ctx context.Context) (OrganizationSyncReport, error) {
	if err := d.needAdmin("sync organizations"); err != nil {
		return OrganizationSyncReport{}, err
	}
	if !d.syncing.CompareAndSwap(false, true) {
		return OrganizationSyncReport{}, ErrSyncRunning
	}
	defer d.syncing.Store(false)
	return d.syncOrganizations(ctx, 0)
}

// syncOrganizations is SyncOrganizations without the run guard.
func (d *Directory) syncOrganizations(ctx context.Context, pageSize int) (rep OrganizationSyncReport, err error) {
	begin := time.Now()
	defer func() { rep.Duration = time.Since(begin) }()
	stamp := d.stamp()
	rep.Enabled = true
	for org, err := range d.admin.AllOrganizations(ctx, admin.OrganizationQuery{Max: pageSize}) {
		if errors.Is(err, admin.ErrOrganizationsDisabled) {
			rep.Enabled = false
			break
		}
		if err != nil {
			return rep, fmt.Errorf("directory: sync organizations: list organizations: %w", err)
		}
		var subs []string
		for m, err := range d.admin.AllOrganizationMembers(ctx, org.ID, admin.MemberQuery{Max: pageSize}) {
			if err != nil {
				return rep, fmt.Errorf("directory: sync organizations: members of %q: %w", org.Alias, err)
			}
			subs = append(subs, m.ID)
		}
		var removed int
		if err := d.inTx(ctx, func(tx *sql.Tx) (err error) {
			removed, err = d.replaceMembers(ctx, tx, org, subs, stamp)
			return err
		}); err != nil {
			return rep, fmt.Errorf("directory: sync organizations: store the members of %q: %w", org.Alias, err)
		}
		rep.Organizations++
		rep.Memberships += len(subs)
		rep.Removed += removed
	}
	// Rows not written by this run belong to organizations that are gone
	// (or to every organization, when the realm has none any more).
	res, err := d.w.ExecContext(ctx, d.q.rebind(`DELETE FROM `+d.orgT()+` WHERE synced_at <> ?`), d.timeArg(stamp))
	if err != nil {
		return rep, fmt.Errorf("directory: sync organizations: remove stale memberships: %w", err)
	}
	n, _ := res.RowsAffected()
	rep.Removed += int(n)
	return rep, nil
}

// replaceMembers makes the stored members of org exactly subs; it
// returns how many stored members were dropped.
func (d *Directory) replaceMembers(ctx context.Context, tx *sql.Tx, org admin.Organization, subs []string, stamp time.Time) (int, error) {
	keep := make(map[string]bool, len(subs))
	for _, s := range subs {
		keep[s] = true
	}
	rows, err := tx.QueryContext(ctx, d.q.rebind(`SELECT sub FROM `+d.orgT()+` WHERE org_id = ?`+d.q.forUpdate), org.ID)
	if err != nil {
		return 0, err
	}
	removed := 0
	for rows.Next() {
		var sub string
		if err := rows.Scan(&sub); err != nil {
			rows.Close()
			return 0, err
		}
		if !keep[sub] {
			removed++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, d.q.rebind(`DELETE FROM `+d.orgT()+` WHERE org_id = ?`), org.ID); err != nil {
		return 0, err
	}
	if len(subs) > 0 {
		stmt, err := tx.PrepareContext(ctx, d.q.rebind(`INSERT INTO `+d.orgT()+` (sub, org_id, alias, name, enabled, synced_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sub, org_id) DO NOTHING`))
		if err != nil {
			return 0, err
		}
		defer stmt.Close()
		for _, sub := range subs {
			if _, err := stmt.ExecContext(ctx, sub, org.ID, org.Alias, org.Name, org.Enabled, d.timeArg(stamp)); err != nil {
				return 0, err
			}
		}
	}
	return removed, nil
}
