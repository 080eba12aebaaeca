package sqlitestore

import (
	"context"
	"database/sql"

	"github.com/cloakroom/cloakroom/internal/sqldb"
)

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
	// AUTOINCREMENT, so that a seq is never handed out twice, even after
	// the newest entries were pruned: subscribers keep their position as
	// a seq. No index on at: pruning walks the entries in seq order.
	{3, "deletion log for Subscribe", func(t string) []string {
		return []string{
			`CREATE TABLE "` + t + `_deleted" (
				seq   INTEGER PRIMARY KEY AUTOINCREMENT,
				"key" TEXT    NOT NULL,
				at    INTEGER NOT NULL -- Unix milliseconds
			)`,
		}
	}},
}

// component is the session table's key in sqldb.MigrationsTable, so that
// several tables (and other components) share one file.
func component(table string) string { return "session:" + table }

// migrate brings the session table to version target (len(migrations) in
// production; tests build older files with a lower target), under the
// writer's IMMEDIATE transaction (sqldb.Migrate).
func migrate(ctx context.Context, db *sql.DB, table string, target int) error {
	s := sqldb.Schema{Component: component(table), Name: "table " + table}
	for _, m := range migrations {
		s.Migrations = append(s.Migrations, sqldb.Migration{Version: m.version, What: m.what, Stmts: m.stmts(table)})
	}
	return sqldb.Migrate(ctx, db, sqldb.SQLite{}, s, target)
}
