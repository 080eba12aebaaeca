package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationsTable records the schema version of each cloakroom component in
// a schema (the session table is component "session:" + its table name), so
// that other packages can keep their own migrations in it.
const migrationsTable = "cloakroom_schema_migrations"

// migrationLock is the pg_advisory_xact_lock key every cloakroom component
// takes while migrating ("cloakroom" in ASCII, truncated to 8 bytes).
const migrationLock int64 = 0x636c6f616b726f6f

// migration brings the session table from version-1 to version. Append new
// ones at the end; never edit one that has shipped.
type migration struct {
	version int
	what    string
	stmts   func(schema, table string) []string
}

var migrations = []migration{
	{1, "sessions table with indexes on sid, subject and expires_at", func(schema, table string) []string {
		t := pgx.Identifier{schema, table}.Sanitize()
		idx := func(suffix string) string { return pgx.Identifier{table + suffix}.Sanitize() }
		return []string{
			`CREATE TABLE ` + t + ` (
				key        text        NOT NULL PRIMARY KEY,
				subject    text        NOT NULL DEFAULT '',
				sid        text        NOT NULL DEFAULT '',
				expires_at timestamptz NOT NULL,
				version    bigint      NOT NULL,
				payload    bytea       NOT NULL
			)`,
			`CREATE INDEX ` + idx("_sid_idx") + ` ON ` + t + ` (sid) WHERE sid <> ''`,
			`CREATE INDEX ` + idx("_subject_idx") + ` ON ` + t + ` (subject) WHERE subject <> ''`,
			`CREATE INDEX ` + idx("_expires_at_idx") + ` ON ` + t + ` (expires_at)`,
		}
	}},
}

func component(table string) string { return "session:" + table }

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion reads the recorded version (0: none yet).
func schemaVersion(ctx context.Context, q querier, schema, table string) (int, error) {
	var exists bool
	mt := pgx.Identifier{schema, migrationsTable}.Sanitize()
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, mt).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM `+mt+` WHERE component = $1`, component(table)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

func newerError(schema, table string, v int) error {
	return fmt.Errorf("%s.%s has schema version %d, newer than this cloakroom knows (%d): upgrade cloakroom or use another table", schema, table, v, len(migrations))
}

// migrate brings the table to version target. When it is current nothing
// but two SELECTs run; otherwise the work happens in one transaction holding
// the advisory lock, so concurrent instances wait for each other and then
// find nothing left to do.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema, table string, target int) error {
	v, err := schemaVersion(ctx, pool, schema, table)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return newerError(schema, table, v)
	}
	if v >= target {
		return nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return err
	}
	var schemaExists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&schemaExists); err != nil {
		return err
	}
	if !schemaExists {
		return fmt.Errorf("schema %q does not exist: create it (CREATE SCHEMA %s) or choose another with WithSchema", schema, pgx.Identifier{schema}.Sanitize())
	}
	mt := pgx.Identifier{schema, migrationsTable}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+mt+` (
		component  text        NOT NULL PRIMARY KEY,
		version    integer     NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	if v, err = schemaVersion(ctx, tx, schema, table); err != nil {
		return err
	}
	if v > len(migrations) {
		return newerError(schema, table, v)
	}
	for _, m := range migrations[v:target] {
		for _, q := range m.stmts(schema, table) {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.what, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+mt+` (component, version) VALUES ($1, $2)
		ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now()`,
		component(table), target); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
