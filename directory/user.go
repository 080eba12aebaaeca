package directory

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Reason says why a user was deactivated.
type Reason string

// Deactivation reasons.
const (
	// ReasonNotInKeycloak: a sync or refresh found no such Keycloak user.
	ReasonNotInKeycloak Reason = "not found in Keycloak"
	// ReasonDisabled: Keycloak shows the user disabled.
	ReasonDisabled Reason = "disabled in Keycloak"
	// ReasonDeactivated: Deactivate disabled the user and ended its
	// sessions.
	ReasonDeactivated Reason = "deactivated"
	// ReasonDeleted: Delete deleted (or, by policy, disabled) the user in
	// Keycloak.
	ReasonDeleted Reason = "deleted"
)

// User is one row of the directory.
type User struct {
	// ID is the local id: stable, never reused, for the application's own
	// foreign keys.
	ID int64 `json:"id"`
	// Subject is the Keycloak user id (the token sub): the link to
	// Keycloak, unique in the table.
	Subject string `json:"sub"`
	// Username is for display only: Keycloak usernames can be renamed and
	// reused, and several rows may hold the same one (see the package
	// documentation).
	Username string `json:"username"`
	// Email, FirstName, LastName and EmailVerified are the profile as
	// the latest token or Keycloak read said.
	Email         string `json:"email,omitempty"`
	FirstName     string `json:"first_name,omitempty"` // given_name
	LastName      string `json:"last_name,omitempty"`  // family_name
	EmailVerified bool   `json:"email_verified"`       // email_verified
	// Enabled mirrors Keycloak's flag as last seen.
	Enabled bool `json:"enabled"`
	// RealmRoles and ClientRoles (client id -> roles) are the effective
	// roles of the user's latest token (Keycloak's brief user
	// representation has none, so Sync and RefreshFromKeycloak keep them).
	RealmRoles  []string            `json:"realm_roles"`
	ClientRoles map[string][]string `json:"client_roles"` // client id -> roles
	// Extra holds the other claims of the user's tokens (WithExtraClaims).
	Extra map[string]any `json:"extra"`
	// LastLogin is when the user last authenticated at Keycloak (the
	// token's auth_time, else iat); zero if never seen logging in.
	LastLogin time.Time `json:"last_login,omitzero"`
	// Created and Updated are when the row was created and last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"` // last change of a stored value
	// DeactivatedAt is when the user was deactivated; zero while active.
	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	// Reason says why (empty while active).
	Reason Reason `json:"deactivated_reason,omitempty"`
	// SyncedAt is when the row was last compared with Keycloak's user
	// (Sync, RefreshFromKeycloak, PushToKeycloak); zero if never.
	SyncedAt time.Time `json:"synced_at,omitzero"`

	syncRun string
}

// Active reports whether the user is not deactivated.
func (u *User) Active() bool { return u.DeactivatedAt.IsZero() }

// Name is "First Last", or the username when both are empty.
func (u *User) Name() string {
	n := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if n == "" {
		return u.Username
	}
	return n
}

func (u *User) clone() *User {
	c := *u
	c.RealmRoles = slices.Clone(u.RealmRoles)
	c.ClientRoles = cloneRoles(u.ClientRoles)
	c.Extra = maps.Clone(u.Extra)
	return &c
}

func cloneRoles(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// maxJSONColumn bounds what decodeJSON reads back from a JSON column.
const maxJSONColumn = 1 << 20

// decodeRealmRoles reads the realm_roles column: a JSON array of strings.
func decodeRealmRoles(b []byte) ([]string, error) {
	var out []string
	if err := decodeColumn(b, '[', &out); err != nil {
		return nil, fmt.Errorf("%w: realm_roles: %v", ErrCorrupt, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// decodeClientRoles reads the client_roles column: a JSON object of
// string arrays.
func decodeClientRoles(b []byte) (map[string][]string, error) {
	var out map[string][]string
	if err := decodeColumn(b, '{', &out); err != nil {
		return nil, fmt.Errorf("%w: client_roles: %v", ErrCorrupt, err)
	}
	if out == nil {
		out = map[string][]string{}
	}
	for k, v := range out {
		if v == nil {
			out[k] = []string{}
		}
	}
	return out, nil
}

// decodeExtra reads the extra column: a JSON object.
func decodeExtra(b []byte) (map[string]any, error) {
	var out map[string]any
	if err := decodeColumn(b, '{', &out); err != nil {
		return nil, fmt.Errorf("%w: extra: %v", ErrCorrupt, err)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// decodeColumn decodes one JSON value that must start with open ('[' or
// '{'); empty input is the empty value. Trailing data is an error.
func decodeColumn(b []byte, open byte, dst any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxJSONColumn {
		return fmt.Errorf("%d bytes, more than %d", len(b), maxJSONColumn)
	}
	if !utf8.Valid(b) {
		return errors.New("not UTF-8")
	}
	if b[0] != open {
		return fmt.Errorf("not a JSON %s", map[byte]string{'[': "array", '{': "object"}[open])
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func encodeRealmRoles(r []string) string {
	if r == nil {
		r = []string{}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func encodeClientRoles(m map[string][]string) string {
	if m == nil {
		m = map[string][]string{}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// encodeExtra is canonical (sorted keys), so equal maps encode equally.
func encodeExtra(m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("directory: encode extra claims: %w", err)
	}
	return string(b), nil
}

type rowScanner interface{ Scan(dest ...any) error }

// scanUser reads the columns userCols.
func scanUser(s rowScanner) (*User, error) {
	var u User
	var realm, client, extra []byte
	var last, created, updated, deact, synced dbTime
	var reason string
	if err := s.Scan(&u.ID, &u.Subject, &u.Username, &u.Email, &u.FirstName, &u.LastName, &u.EmailVerified, &u.Enabled,
		&realm, &client, &extra, &last, &created, &updated, &deact, &reason, &synced, &u.syncRun); err != nil {
		return nil, err
	}
	var err error
	if u.RealmRoles, err = decodeRealmRoles(realm); err != nil {
		return nil, err
	}
	if u.ClientRoles, err = decodeClientRoles(client); err != nil {
		return nil, err
	}
	if u.Extra, err = decodeExtra(extra); err != nil {
		return nil, err
	}
	u.LastLogin, u.Created, u.Updated, u.DeactivatedAt, u.SyncedAt = last.t, created.t, updated.t, deact.t, synced.t
	u.Reason = Reason(reason)
	return &u, nil
}

// Get returns the user with the local id (ErrNotFound if none).
func (d *Directory) Get(ctx context.Context, id int64) (*User, error) {
	u, err := scanUser(d.r.QueryRowContext(ctx, d.q.get, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("directory: get user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get user %d: %w", id, err)
	}
	return u, nil
}

// BySubject returns the user linked to the Keycloak user id sub
// (ErrNotFound if none).
func (d *Directory) BySubject(ctx context.Context, sub string) (*User, error) {
	u, err := scanUser(d.r.QueryRowContext(ctx, d.q.bySub, sub))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("directory: user with sub %q: %w", sub, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: user with sub %q: %w", sub, err)
	}
	return u, nil
}

// Status filters List by deactivation.
type Status int

const (
	// AnyStatus lists active and deactivated users (the default).
	AnyStatus Status = iota
	// ActiveOnly lists users that are not deactivated.
	ActiveOnly
	// DeactivatedOnly lists deactivated users.
	DeactivatedOnly
)

// DefaultListLimit and MaxListLimit bound Query.Limit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Query filters List. Its filters are ANDed.
type Query struct {
	// Search matches a case-insensitive substring of the username, email,
	// first or last name.
	Search string
	// Username matches exactly; Email exactly but case-insensitively.
	Username, Email string
	// Status filters on deactivation.
	Status Status
	// AfterID lists users whose id is larger: pass the last id of a page
	// to get the next one (results are ordered by id).
	AfterID int64
	// Limit caps the number of users (default DefaultListLimit, at most
	// MaxListLimit).
	Limit int
}

// List returns one page of users matching q, ordered by id.
func (d *Directory) List(ctx context.Context, q Query) ([]*User, error) {
	var where []string
	var args []any
	if q.Search != "" {
		pat := "%" + likeEscape(strings.ToLower(q.Search)) + "%"
		where = append(where, `(lower(username) LIKE ? ESCAPE '\' OR lower(email) LIKE ? ESCAPE '\' OR lower(first_name) LIKE ? ESCAPE '\' OR lower(last_name) LIKE ? ESCAPE '\')`)
		args = append(args, pat, pat, pat, pat)
	}
	if q.Username != "" {
		where = append(where, `username = ?`)
		args = append(args, q.Username)
	}
	if q.Email != "" {
		if d.pg {
			where = append(where, `lower(email) = lower(?)`)
		} else {
			where = append(where, `email = ? COLLATE NOCASE`)
		}
		args = append(args, q.Email)
	}
	switch q.Status {
	case ActiveOnly:
		where = append(where, `deactivated_at IS NULL`)
	case DeactivatedOnly:
		where = append(where, `deactivated_at IS NOT NULL`)
	}
	where = append(where, `id > ?`)
	args = append(args, q.AfterID)
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	args = append(args, limit)
	query := d.q.rebind(`SELECT ` + userCols + ` FROM ` + d.q.users + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id LIMIT ?`)
	rows, err := d.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("directory: list users: %w", err)
	}
	defer rows.Close()
	out := []*User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("directory: list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directory: list users: %w", err)
	}
	return out, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// writeUser inserts u (ID 0) or updates its row, in tx (with update, a
// statement prepared on tx, when given). An insert that meets an existing
// sub (a concurrent writer got there first) reports inserted=false and
// leaves u.ID at 0.
func (d *Directory) writeUser(ctx context.Context, tx *sql.Tx, update *sql.Stmt, u *User) (bool, error) {
	extra, err := encodeExtra(u.Extra)
	if err != nil {
		return false, err
	}
	if u.ID == 0 {
		args, err := d.insertArgs(u)
		if err != nil {
			return false, err
		}
		err = tx.QueryRowContext(ctx, d.q.insert, args...).Scan(&u.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	_, err = stmt(tx, update, d.q.update).ExecContext(ctx, u.Username, u.Email, u.FirstName, u.LastName, u.EmailVerified, u.Enabled,
		encodeRealmRoles(u.RealmRoles), encodeClientRoles(u.ClientRoles), extra, d.timeArg(u.LastLogin), d.timeArg(u.Updated),
		d.timeArg(u.DeactivatedAt), string(u.Reason), d.timeArg(u.SyncedAt), u.syncRun, u.ID)
	return false, err
}

// userInsertCols is the number of columns an INSERT of a user sets.
const userInsertCols = 17

// insertArgs are the values of an INSERT of u, in the order of
// queries.insertHead.
func (d *Directory) insertArgs(u *User) ([]any, error) {
	extra, err := encodeExtra(u.Extra)
	if err != nil {
		return nil, err
	}
	return []any{u.Subject, u.Username, u.Email, u.FirstName, u.LastName,
		u.EmailVerified, u.Enabled, encodeRealmRoles(u.RealmRoles), encodeClientRoles(u.ClientRoles), extra,
		d.timeArg(u.LastLogin), d.timeArg(u.Created), d.timeArg(u.Updated), d.timeArg(u.DeactivatedAt), string(u.Reason),
		d.timeArg(u.SyncedAt), u.syncRun}, nil
}

// stmt returns the prepared statement bound to tx, or prepares query on
// the fly (for one-off writes).
func stmt(tx *sql.Tx, prepared *sql.Stmt, query string) stmtRunner {
	if prepared != nil {
		return prepared
	}
	return txStmt{tx: tx, q: query}
}

type stmtRunner interface {
	QueryRowContext(ctx context.Context, args ...any) *sql.Row
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
}

type txStmt struct {
	tx *sql.Tx
	q  string
}

// QueryRowContext runs the statement in the transaction.
func (t txStmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.q, args...)
}

// ExecContext runs the statement in the transaction.
func (t txStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.q, args...)
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (d *Directory) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// lockedBySub reads the row of sub in tx (locking it on PostgreSQL); nil
// when there is none.
func (d *Directory) lockedBySub(ctx context.Context, tx *sql.Tx, sub string) (*User, error) {
	u, err := scanUser(tx.QueryRowContext(ctx, d.q.bySubLocked, sub))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return u, err
}

// lockedByID reads the row of id in tx; nil when there is none.
func (d *Directory) lockedByID(ctx context.Context, tx *sql.Tx, id int64) (*User, error) {
	u, err := scanUser(tx.QueryRowContext(ctx, d.q.getLocked, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return u, err
}
