package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/internal/sqldb"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sessiontest"
)

func openT(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(sub, sid string) *session.Record {
	return &session.Record{
		Key:       sessiontest.Key(),
		Subject:   sub,
		SID:       sid,
		ExpiresAt: time.Now().Add(time.Hour),
		Payload:   []byte("sealed-" + sub),
	}
}

func mustSave(t testing.TB, s session.Store, r *session.Record) {
	t.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func mustLoad(t testing.TB, s session.Store, key string) *session.Record {
	t.Helper()
	r, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r
}

// rawDB opens the file directly, as an operator would with the sqlite3 tool.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, readers, err := sqldb.OpenSQLite(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = readers.Close()
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	var res string
	if err := rawDB(t, path).QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check = %q", res)
	}
}

// makeReadOnly makes path unwritable for this process until the test ends:
// chmod for ordinary users, chattr +i for root (whom permissions do not stop).
func makeReadOnly(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o400)
		if fi.IsDir() {
			mode = 0o500
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(path, fi.Mode().Perm()) })
		return
	}
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("running as root and `chattr +i` is not available here (%v: %s): cannot make %s read-only", err, bytes.TrimSpace(out), path)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
}

func TestConformance(t *testing.T) {
	t.Parallel()
	sessiontest.Run(t, func(t *testing.T) session.Store {
		s, err := Open(filepath.Join(t.TempDir(), "sessions.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Every subtest gets its own Store on one shared file and table: the suite
// then also exercises several connections writing to the same file.
func TestConformanceSharedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	sessiontest.Run(t, func(t *testing.T) session.Store {
		s, err := Open(path, WithTable("shared_sessions"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsSessions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rec("alice", "sid-1")
	mustSave(t, s, r)
	mustSave(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openT(t, path)
	got := mustLoad(t, s2, r.Key)
	if got.Version != 2 || got.Subject != "alice" || got.SID != "sid-1" || !bytes.Equal(got.Payload, r.Payload) {
		t.Fatalf("after reopening: %+v", got)
	}
	if !got.ExpiresAt.Equal(r.ExpiresAt.Truncate(time.Millisecond)) {
		t.Fatalf("ExpiresAt = %v, want %v (millisecond precision)", got.ExpiresAt, r.ExpiresAt)
	}
	keys, err := s2.DeleteBySID(context.Background(), "sid-1")
	if err != nil || len(keys) != 1 || keys[0] != r.Key {
		t.Fatalf("DeleteBySID after reopening = %v, %v", keys, err)
	}
}

func TestTwoStoresOnOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	a, b := openT(t, path), openT(t, path)
	ctx := context.Background()

	r := rec("alice", "sid-a")
	mustSave(t, a, r)
	fromB := mustLoad(t, b, r.Key)
	fromB.Payload = []byte("written by b")
	mustSave(t, b, fromB)
	if got := mustLoad(t, a, r.Key); string(got.Payload) != "written by b" || got.Version != 2 {
		t.Fatalf("a does not see b's update: %+v", got)
	}
	if err := a.Save(ctx, r); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale save through a: %v, want ErrConflict", err)
	}
	if keys, err := b.DeleteBySubject(ctx, "alice"); err != nil || len(keys) != 1 {
		t.Fatalf("DeleteBySubject through b = %v, %v", keys, err)
	}
	if _, err := a.Load(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a still loads a session b deleted: %v", err)
	}
}

func TestManyWritersOnOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	const stores, workers, rounds = 3, 6, 20
	var wg sync.WaitGroup
	for range stores {
		s := openT(t, path)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				mine := sessiontest.Key()[:12] // other goroutines must not delete our sessions
				for i := range rounds {
					r := rec("u", fmt.Sprintf("sid-%s-%d", mine, i%3))
					if err := s.Save(ctx, r); err != nil {
						t.Error(err)
						return
					}
					r.Payload = append(r.Payload, '!')
					if err := s.Save(ctx, r); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Load(ctx, r.Key); err != nil {
						t.Error(err)
						return
					}
					if i%4 == 0 {
						if _, err := s.DeleteBySID(ctx, r.SID); err != nil {
							t.Error(err)
							return
						}
					} else if err := s.Delete(ctx, r.Key); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
}

func TestFilePermissions(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	path := filepath.Join(base, "a", "b", "sessions.db")
	s := openT(t, path)
	mustSave(t, s, rec("u", ""))
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(base, "a"), 0o700},
		{filepath.Join(base, "a", "b"), 0o700},
		{path, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^c.want != 0 {
			t.Errorf("%s has mode %v, want at most %v", c.path, got, c.want)
		}
	}
}

func TestReadOnlyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rec("alice", "sid-ro")
	mustSave(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	makeReadOnly(t, path)
	_, err = Open(path)
	if err == nil {
		t.Fatal("Open of a read-only database succeeded")
	}
	t.Logf("read-only file: %v", err)
	for _, want := range []string{path, "not writable", "chmod"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a failed Open changed the file")
	}
}

func TestReadOnlyFileKeepsData(t *testing.T) {
	// Separate from TestReadOnlyFile because the cleanup that makes the file
	// writable again must run before the data is checked.
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rec("alice", "sid-ro")
	mustSave(t, s, r)
	_ = s.Close()
	t.Run("read-only", func(t *testing.T) {
		makeReadOnly(t, path)
		if _, err := Open(path); err == nil {
			t.Fatal("Open of a read-only database succeeded")
		}
	})
	s2 := openT(t, path)
	if got := mustLoad(t, s2, r.Key); !bytes.Equal(got.Payload, r.Payload) {
		t.Fatal("session altered")
	}
	integrityOK(t, path)
}

func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// An existing database in a directory where SQLite cannot create its
	// -wal and -shm files fails too, and says why.
	existing := filepath.Join(dir, "existing.db")
	s, err := Open(existing)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	makeReadOnly(t, dir)
	for _, p := range []string{existing, filepath.Join(dir, "sessions.db"), filepath.Join(dir, "sub", "sessions.db")} {
		_, err := Open(p)
		if err == nil {
			t.Fatalf("Open(%s) in an unwritable directory succeeded", p)
		}
		t.Logf("unwritable directory: %v", err)
		if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "writable") {
			t.Errorf("error %q does not name the directory and the fix", err)
		}
	}
}

func TestDiskFull(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := openT(t, path, WithSweepInterval(0))
	ctx := context.Background()
	kept := rec("alice", "sid-full")
	mustSave(t, s, kept)

	// Cap the file at its current size on the single writer connection:
	// SQLite then fails writes with SQLITE_FULL exactly as on a full disk.
	var pages int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	big := rec("bob", "sid-full")
	big.Payload = bytes.Repeat([]byte("SECRET-PAYLOAD"), 20000)
	err := s.Save(ctx, big)
	if err == nil {
		t.Fatal("Save beyond the size limit succeeded")
	}
	t.Logf("full: %v", err)
	if errors.Is(err, session.ErrConflict) || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not say the disk is full and name the file", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatal("the error contains the payload")
	}
	if big.Version != 0 {
		t.Fatalf("a failed Save changed Version to %d", big.Version)
	}
	// Updating the kept session in place still fits; then lift the cap.
	kept.Payload = []byte("sealed-alice2")
	mustSave(t, s, kept)
	if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, big.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the failed Save left a record: %v", err)
	}
	mustSave(t, s, big)
	if got := mustLoad(t, s, kept.Key); string(got.Payload) != "sealed-alice2" || got.Version != 2 {
		t.Fatalf("kept session = %+v", got)
	}
	integrityOK(t, path)
}

func TestNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	garbage := bytes.Repeat([]byte("this is not sqlite "), 512)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil {
		t.Fatal("Open of a non-database file succeeded")
	}
	t.Logf("not a database: %v", err)
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Fatalf("unclear error: %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, garbage) {
		t.Fatal("Open changed a file that is not a database")
	}
}

func TestOpenRefusesBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, path string
		opts       []Option
		want       string
	}{
		{"empty path", "", nil, "no database path"},
		{"path is a directory", dir, nil, "not a regular file"},
		{"parent is a file", filepath.Join(dir, "file", "sessions.db"), nil, "directory"},
		{"table with a quote", filepath.Join(dir, "a.db"), []Option{WithTable(`x"; DROP TABLE y; --`)}, "table name"},
		{"table starting with a digit", filepath.Join(dir, "b.db"), []Option{WithTable("1sessions")}, "table name"},
		{"empty table", filepath.Join(dir, "c.db"), []Option{WithTable("")}, "table name"},
		{"table too long", filepath.Join(dir, "d.db"), []Option{WithTable(strings.Repeat("t", 49))}, "table name"},
	} {
		if tt.name == "parent is a file" {
			if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, tt.opts...)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestMigratesFromOlderVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	if _, err := sqldb.PrepareFile(path, "sqlitestore", "session database"); err != nil {
		t.Fatal(err)
	}
	// A file as version 1 left it, with one session in it.
	old := rawDB(t, path)
	ctx := context.Background()
	if err := migrate(ctx, old, DefaultTable, 1); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	if _, err := old.Exec(`INSERT INTO `+DefaultTable+` ("key", subject, sid, expires_at, version, payload) VALUES ('k1', 'alice', 'sid-1', ?, 4, x'00ff')`, exp); err != nil {
		t.Fatal(err)
	}
	if v, err := sqldb.Version(ctx, old, sqldb.SQLite{}, component(DefaultTable)); err != nil || v != 1 {
		t.Fatalf("schema version before = %d, %v", v, err)
	}
	_ = old.Close()

	s := openT(t, path)
	if v, err := sqldb.Version(ctx, s.r, sqldb.SQLite{}, component(DefaultTable)); err != nil || v != len(migrations) {
		t.Fatalf("schema version after Open = %d, %v; want %d", v, err, len(migrations))
	}
	var idx int
	if err := s.r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, DefaultTable+"_expires_at_idx").Scan(&idx); err != nil || idx != 1 {
		t.Fatalf("migration 2's index: %d, %v", idx, err)
	}
	got := mustLoad(t, s, "k1")
	if got.Version != 4 || got.Subject != "alice" || !bytes.Equal(got.Payload, []byte{0, 0xff}) {
		t.Fatalf("session from version 1 = %+v", got)
	}
	got.Payload = []byte("updated")
	mustSave(t, s, got)

	// A second table in the same file has its own version.
	other := openT(t, path, WithTable("other_sessions"))
	mustSave(t, other, rec("bob", ""))
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`UPDATE `+sqldb.MigrationsTable+` SET version = 99 WHERE component = ?`, component(DefaultTable)); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		expiry time.Duration
		swept  bool
	}{
		{"expired", -time.Second, true},
		{"just expired", -time.Millisecond, true},
		{"live", time.Hour, false},
	}
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := openT(t, path, WithSweepInterval(0))
	ctx := context.Background()
	for _, tt := range tests {
		r := rec("u", "")
		r.ExpiresAt = time.Now().Add(tt.expiry)
		mustSave(t, s, r)
	}
	n, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("Sweep removed %d rows, want 2", n)
	}
	if got := countRows(t, s.r, DefaultTable); got != 1 {
		t.Fatalf("%d rows left, want the live one", got)
	}
}

func TestBackgroundSweep(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := openT(t, path, WithSweepInterval(20*time.Millisecond))
	r := rec("u", "sid")
	r.ExpiresAt = time.Now().Add(50 * time.Millisecond)
	mustSave(t, s, r)
	live := rec("u", "sid")
	mustSave(t, s, live)
	deadline := time.Now().Add(5 * time.Second)
	for countRows(t, s.r, DefaultTable) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweep did not remove the expired row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustLoad(t, s, live.Key)
}

func TestExpiredRowsAreNotReturned(t *testing.T) {
	t.Parallel()
	s := openT(t, filepath.Join(t.TempDir(), "sessions.db"), WithSweepInterval(0))
	ctx := context.Background()
	r := rec("u", "sid-x")
	r.ExpiresAt = time.Now().Add(-time.Second)
	mustSave(t, s, r)
	if _, err := s.Load(ctx, r.Key); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of an expired row: %v", err)
	}
	r.Version = 1
	r.ExpiresAt = time.Now().Add(time.Hour)
	if err := s.Save(ctx, r); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("update of an expired row: %v, want ErrConflict", err)
	}
	if keys, err := s.DeleteBySID(ctx, "sid-x"); err != nil || len(keys) != 0 {
		t.Fatalf("DeleteBySID reported expired rows: %v, %v", keys, err)
	}
	if n := countRows(t, s.r, DefaultTable); n != 0 {
		t.Fatalf("DeleteBySID left %d expired rows", n)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Load(context.Background(), "k"); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Close: %v, want an error", err)
	}
}

func BenchmarkLoad(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "sessions.db"))
	r := rec("alice", "sid-bench")
	r.Payload = bytes.Repeat([]byte{0xab}, 1024)
	mustSave(b, s, r)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, r.Key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Load(ctx, r.Key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
