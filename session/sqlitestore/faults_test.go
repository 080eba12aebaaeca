package sqlitestore

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/faulttest"
)

// loginOutage describes the faulttest LoginApp for RunStoreOutage.
func loginOutage(t *testing.T, app *faulttest.LoginApp) faulttest.Outage {
	return faulttest.Outage{
		KC:        app.KC,
		Protected: app.URL + "/private",
		Whoami: func(p faulttest.Page) string {
			if p.Status != 200 || !strings.HasPrefix(p.Body, "private page of ") {
				return ""
			}
			return strings.Fields(p.Body)[3]
		},
		Logout: app.URL + "/auth/logout",
		Origin: app.URL,
		CSRF:   func(b *faulttest.Browser) string { return faulttest.CSRF(b.Get(app.URL + "/private")) },
		Cookie: faulttest.AppCookie,
	}
}

// TestLoginMiddlewareReadOnlyFile: the session file (and its WAL) become
// unwritable while an application on the login package runs. Sessions
// still read, so they keep working as their own user; every write (login,
// logout, back-channel logout) fails with 503 and changes nothing; once the
// file is writable again everything works without a restart and the file
// is intact.
func TestLoginMiddlewareReadOnlyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := openT(t, path)
	app := faulttest.NewLoginApp(t, s)
	o := loginOutage(t, app)
	var thaw func()
	o.Break = func() { thaw = faulttest.FreezeFiles(t, path, path+"-wal") }
	o.Repair = func() { thaw() }
	o.ReadsSurvive = true
	faulttest.RunStoreOutage(t, o)
	if logs := app.Logs.String(); !strings.Contains(logs, "session store failed") || !strings.Contains(logs, path) {
		t.Errorf("the store failures were not logged with the file name: %.500s", logs)
	}
	integrityOK(t, path)
}

// TestLoginMiddlewareDiskFull: the session file cannot grow (SQLITE_FULL,
// as on a full disk). Existing sessions keep working; a login completing
// then gets 503 and no cookie; logouts still work (deleting needs no new
// space); once space is back, logins work again without a restart.
func TestLoginMiddlewareDiskFull(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := openT(t, path, WithSweepInterval(0))
	app := faulttest.NewLoginApp(t, s)
	aliceSub, _ := app.KC.UserID("alice")

	alice := faulttest.NewBrowser(t)
	if p := alice.Login(app.URL+"/private", "alice"); !strings.Contains(p.Body, "private page of "+aliceSub) {
		t.Fatalf("login: %d %.200s", p.Status, p.Body)
	}
	late := faulttest.NewBrowser(t)
	callback := late.CallbackURL(app.URL+"/private", "bob")

	ctx := context.Background()
	var pages int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}

	for range 3 {
		if p := alice.Do(http.MethodGet, app.URL+"/private", nil); p.Status != 200 || !strings.Contains(p.Body, aliceSub) {
			t.Fatalf("existing session with a full file: %d %.200s", p.Status, p.Body)
		}
	}
	p := late.Do(http.MethodGet, callback, nil)
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" {
		t.Fatalf("login with a full file: %d %.200s", p.Status, p.Body)
	}
	if set, _ := faulttest.SetsCookie(p, faulttest.AppCookie); set {
		t.Fatal("a login got a session cookie although its session could not be stored")
	}
	if logs := app.Logs.String(); !strings.Contains(logs, "full") {
		t.Errorf("the log does not say the disk is full: %.500s", logs)
	}

	if _, err := s.w.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if p := faulttest.NewBrowser(t).Login(app.URL+"/private", "bob"); p.Status != 200 || !strings.Contains(p.Body, "private page of ") {
		t.Fatalf("login after space came back: %d %.200s", p.Status, p.Body)
	}
	if p := alice.Do(http.MethodGet, app.URL+"/private", nil); p.Status != 200 || !strings.Contains(p.Body, aliceSub) {
		t.Fatalf("the existing session after space came back: %d %.200s", p.Status, p.Body)
	}
	integrityOK(t, path)
}
