package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrationsTable records the schema version of each cloakroom component
// kept in the file (the session table is component "session:" + its table
// name), so that other components can add their own migrations later.
const migrationsTable = "cloakroom_schema_migrations"

// migration brings the session table from version-1 to version. Append new
// ones at the end (ALTER TABLE ... ADD COLUMN, new indexes); never edit one
// that has shipped.
type migration struct {
	version int
	what    string
	stmts   func(table string) []string
}

var migrations = []migration{
	{1, "sessions table with indexes on sid and subject", func(t string) []string {
		return []string{
			`CREATE TABLE "` + t + `" (
				"key"      TEXT    NOT NULL PRIMARY KEY,
				subject    TEXT    NOT NULL DEFAULT '',
				sid        TEXT    NOT NULL DEFAULT '',
				expires_at INTEGER NOT NULL, -- Unix milliseconds
				version    INTEGER NOT NULL,
				payload    BLOB    NOT NULL
			)`,
			`CREATE INDEX "` + t + `_sid_idx" ON "` + t + `" (sid)`,
			`CREATE INDEX "` + t + `_subject_idx" ON "` + t + `" (subject)`,
		}
	}},
	{2, "index on expires_at for the expiry sweep", func(t string) []string {
		return []string{
			`CREATE INDEX "` + t + `_expires_at_idx" ON "` + t + `" (expires_at)`,
		}
	}},
}

func component(table string) string { return "session:" + table }

// schemaVersion reads the recorded version of the session table (0: none).
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, table string) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, migrationsTable).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM `+migrationsTable+` WHERE component = ?`, component(table)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// migrate brings the session table to version target (len(migrations) in
// production; tests build older files with a lower target). The writer
// connection begins IMMEDIATE transactions, so two processes opening the
// same file at once migrate one after the other.
func migrate(ctx context.Context, db *sql.DB, table string, target int) error {
	v, err := schemaVersion(ctx, db, table)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("table %s has schema version %d, newer than this cloakroom knows (%d): upgrade cloakroom or use another file", table, v, len(migrations))
	}
	if v >= target {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (
		component  TEXT    NOT NULL PRIMARY KEY,
		version    INTEGER NOT NULL,
		applied_at INTEGER NOT NULL -- Unix milliseconds
	)`); err != nil {
		return err
	}
	// Read again under the write lock: another process may have migrated.
	if v, err = schemaVersion(ctx, tx, table); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("table %s has schema version %d, newer than this cloakroom knows (%d): upgrade cloakroom or use another file", table, v, len(migrations))
	}
	for _, m := range migrations[v:target] {
		for _, q := range m.stmts(table) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.what, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+migrationsTable+` (component, version, applied_at) VALUES (?, ?, ?)
		ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at`,
		component(table), target, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}
