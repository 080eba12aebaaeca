package directory

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/keycloaktest"
)

// rowCount counts the rows of the users table, and the active ones.
func rowCount(t testing.TB, d *Directory) (all, active int) {
	t.Helper()
	q := `SELECT count(*), count(*) FILTER (WHERE deactivated_at IS NULL) FROM ` + d.q.users
	if err := d.r.QueryRow(q).Scan(&all, &active); err != nil {
		t.Fatal(err)
	}
	return all, active
}

func wantCounts(t testing.TB, label string, got SyncReport, want SyncCounts) {
	t.Helper()
	if got.SyncCounts != want {
		t.Fatalf("%s: counts %+v, want %+v (failures %v)", label, got.SyncCounts, want, got.Failures)
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			e.addUsers(t, "user", 1234)
			const total = 1236 // with alice and bob
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			var phases []SyncPhase
			opts := SyncOptions{PageSize: 100, BatchSize: 200, Progress: func(p SyncProgress) {
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
				}
				if p.Total != total {
					t.Errorf("progress total %d", p.Total)
				}
			}}

			first := must[SyncReport](t)(d.Sync(ctx, opts))
			wantCounts(t, "first run", first, SyncCounts{Seen: total, Created: total})
			if !slices.Equal(phases, []SyncPhase{PhaseUsers, PhaseVerify, PhaseDone}) && !slices.Equal(phases, []SyncPhase{PhaseUsers, PhaseDone}) {
				t.Errorf("phases %v", phases)
			}
			if all, active := rowCount(t, d); all != total || active != total {
				t.Fatalf("rows %d, active %d", all, active)
			}
			u := must[[]*User](t)(d.List(ctx, Query{Username: "user00042"}))
			if len(u) != 1 || u[0].Email != "user00042@example.com" || u[0].FirstName != "First00042" || u[0].SyncedAt.IsZero() {
				t.Fatalf("row %+v", u)
			}

			// Idempotent: nothing changed in Keycloak, nothing changes here.
			second := must[SyncReport](t)(d.Sync(ctx, SyncOptions{PageSize: 100, BatchSize: 200}))
			wantCounts(t, "second run", second, SyncCounts{Seen: total, Unchanged: total})
			if second.RunID == first.RunID || second.Resumed {
				t.Fatalf("second run %s resumed %v", second.RunID, second.Resumed)
			}

			// Changes in Keycloak: 10 updated, 5 disabled, 7 deleted, 3 new.
			for i := range 10 {
				id, _ := e.kc.UserID("user" + pad(100+i))
				if err := e.admin.UpdateUser(ctx, id, admin.UserUpdate{LastName: admin.Ptr("Changed")}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 5 {
				if err := e.kc.SetUserEnabled("user"+pad(200+i), false); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 7 {
				if err := e.kc.DeleteUser("user" + pad(300+i)); err != nil {
					t.Fatal(err)
				}
			}
			e.addUsers(t, "zz", 3)
			var notified atomic.Int32
			third := must[SyncReport](t)(d.Sync(ctx, SyncOptions{PageSize: 100, BatchSize: 200, OnDeactivate: func(*User) { notified.Add(1) }}))
			wantCounts(t, "third run", third, SyncCounts{Seen: total - 7 + 3, Created: 3, Updated: 10, Unchanged: total - 22, Deactivated: 12})
			if len(third.DeactivatedUsers) != 12 || notified.Load() != 12 {
				t.Fatalf("reported %d deactivations, notified %d", len(third.DeactivatedUsers), notified.Load())
			}
			reasons := map[Reason]int{}
			for _, u := range third.DeactivatedUsers {
				reasons[u.Reason]++
			}
			if reasons[ReasonDisabled] != 5 || reasons[ReasonNotInKeycloak] != 7 {
				t.Fatalf("reasons %v", reasons)
			}
			if all, active := rowCount(t, d); all != total+3 || active != total+3-12 {
				t.Fatalf("rows %d, active %d", all, active)
			}

			// Re-enabled users are reactivated; the deleted stay deactivated.
			for i := range 5 {
				if err := e.kc.SetUserEnabled("user"+pad(200+i), true); err != nil {
					t.Fatal(err)
				}
			}
			fourth := must[SyncReport](t)(d.Sync(ctx, SyncOptions{}))
			wantCounts(t, "fourth run", fourth, SyncCounts{Seen: total - 4, Unchanged: total - 9, Reactivated: 5})
		})
	}
}

// A run interrupted (context cancelled) in either phase resumes from its
// checkpoint and reports the counts of the whole run.
func TestSyncResume(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := newKC(t)
			e.addUsers(t, "u", 1000)
			const total = 1002
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))

			ctx, cancel := context.WithCancel(context.Background())
			batches := 0
			rep, err := d.Sync(ctx, SyncOptions{PageSize: 150, BatchSize: 200, Progress: func(p SyncProgress) {
				if p.Phase == PhaseUsers {
					if batches++; batches == 2 {
						cancel()
					}
				}
			}})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: %v", err)
			}
			wantCounts(t, "interrupted", rep, SyncCounts{Seen: 400, Created: 400})
			if all, _ := rowCount(t, d); all != 400 {
				t.Fatalf("%d rows written before the interruption", all)
			}

			resumed := must[SyncReport](t)(d.Sync(context.Background(), SyncOptions{PageSize: 150, BatchSize: 200, Resume: true}))
			if !resumed.Resumed || resumed.RunID != rep.RunID || !resumed.Started.Equal(rep.Started) {
				t.Fatalf("not resumed: %+v (first %s)", resumed, rep.RunID)
			}
			wantCounts(t, "resumed", resumed, SyncCounts{Seen: total, Created: total})

			// Nothing left to resume: Resume starts a new run.
			again := must[SyncReport](t)(d.Sync(context.Background(), SyncOptions{Resume: true}))
			if again.Resumed || again.RunID == rep.RunID {
				t.Fatalf("finished run resumed: %+v", again)
			}
			wantCounts(t, "after", again, SyncCounts{Seen: total, Unchanged: total})

			// Interrupted while checking unseen rows.
			for i := range 12 {
				if err := e.kc.DeleteUser("u" + pad(i*10)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel = context.WithCancel(context.Background())
			rep, err = d.Sync(ctx, SyncOptions{BatchSize: 5, Progress: func(p SyncProgress) {
				if p.Phase == PhaseVerify {
					cancel()
				}
			}})
			cancel()
			if !errors.Is(err, context.Canceled) || rep.Deactivated != 5 {
				t.Fatalf("interrupted verify: %v, %+v", err, rep.SyncCounts)
			}
			resumed = must[SyncReport](t)(d.Sync(context.Background(), SyncOptions{BatchSize: 5, Resume: true}))
			wantCounts(t, "resumed verify", resumed, SyncCounts{Seen: total - 12, Unchanged: total - 12, Deactivated: 12})
			if _, active := rowCount(t, d); active != total-12 {
				t.Fatalf("%d active", active)
			}
		})
	}
}

// Logins and Deactivate while a sync runs: every user is counted once,
// nothing fails, and a row written after its Keycloak page was fetched is
// not overwritten with the older data.
func TestSyncConcurrentLogins(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			e.addUsers(t, "user", 600)
			const total = 602
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			victim := "user00260" // on the second page of 300, in the second batch of 200
			vrow := must[*User](t)(d.UpsertFromClaims(ctx, e.claims(t, victim)))

			tokens := make([]*cloakroom.Claims, 200)
			for i := range tokens {
				tokens[i] = e.claims(t, "user"+pad(rand.IntN(600)))
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var logins atomic.Int64
			errs := make(chan error, 8)
			for w := range 4 {
				wg.Go(func() {
					for i := w; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						c := tokens[i%len(tokens)]
						if c.Username() == victim {
							continue
						}
						if _, err := d.UpsertFromClaims(ctx, c); err != nil {
							errs <- err
							return
						}
						logins.Add(1)
					}
				})
			}
			deactivated := false
			rep, err := d.Sync(ctx, SyncOptions{PageSize: 300, BatchSize: 200, Progress: func(p SyncProgress) {
				if !deactivated && p.Phase == PhaseUsers {
					// Page 1 (users 0-299) is fetched; the victim waits in
					// the next batch with data from before this.
					deactivated = true
					if _, err := d.Deactivate(ctx, vrow.ID); err != nil {
						t.Error(err)
					}
				}
			}})
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("login during sync: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if logins.Load() == 0 {
				t.Fatal("no login ran during the sync")
			}
			c := rep.SyncCounts
			if c.Seen != total || c.Created+c.Updated+c.Unchanged+c.Deactivated+c.Reactivated != total || c.Errors != 0 {
				t.Fatalf("counts %+v", c)
			}
			if all, active := rowCount(t, d); all != total || active != total-1 {
				t.Fatalf("rows %d active %d", all, active)
			}
			v := must[*User](t)(d.Get(ctx, vrow.ID))
			if v.Active() || v.Reason != ReasonDeactivated {
				t.Fatalf("the sync undid Deactivate: %+v", v)
			}
			again := must[SyncReport](t)(d.Sync(ctx, SyncOptions{}))
			wantCounts(t, "after", again, SyncCounts{Seen: total, Unchanged: total})
		})
	}
}

// A newer run takes the checkpoint over; the older one stops at its next
// batch. A second Sync of the same Directory is refused while one runs.
func TestSyncConflict(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			e.addUsers(t, "u", 300)
			loc := newLocation(t, backend)
			a := loc.open(t, WithAdmin(e.admin))
			b := loc.open(t, WithAdmin(e.admin))
			var inner error
			var bRep SyncReport
			_, err := a.Sync(ctx, SyncOptions{BatchSize: 100, Progress: func(p SyncProgress) {
				if bRep.RunID == "" {
					_, inner = a.Sync(ctx, SyncOptions{})
					bRep, _ = b.Sync(ctx, SyncOptions{})
				}
			}})
			if !errors.Is(inner, ErrSyncRunning) {
				t.Fatalf("nested sync: %v", inner)
			}
			if !errors.Is(err, ErrSyncConflict) {
				t.Fatalf("older run: %v", err)
			}
			if bRep.Seen != 302 {
				t.Fatalf("newer run: %+v", bRep)
			}
		})
	}
}

// Users Keycloak fails to answer for are counted as errors and left alone;
// an unreadable checkpoint is replaced by a new run.
func TestSyncFailuresAndCorruptCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newKC(t)
	d := newLocation(t, "sqlite").open(t, WithAdmin(e.admin))
	ghost := must[*User](t)(d.UpsertFromClaims(ctx, mustClaims(t, `{"sub":"ghost-1","preferred_username":"ghost"}`)))
	e.srv.SetFault(keycloaktest.Fault{Status: http.StatusInternalServerError, Paths: []string{"/users/ghost-1"}})
	rep := must[SyncReport](t)(d.Sync(ctx, SyncOptions{}))
	if rep.Errors != 1 || len(rep.Failures) != 1 || rep.Failures[0].Subject != "ghost-1" || !errors.Is(rep.Failures[0].Err, admin.ErrServer) {
		t.Fatalf("report %+v", rep)
	}
	if g := must[*User](t)(d.Get(ctx, ghost.ID)); !g.Active() {
		t.Fatal("deactivated on a server error")
	}
	e.srv.ClearFault()

	if _, err := d.w.Exec(`UPDATE `+SyncTable+` SET checkpoint = '{"v":1,"run":"x"' WHERE name = ?`, syncName); err != nil {
		t.Fatal(err)
	}
	rep = must[SyncReport](t)(d.Sync(ctx, SyncOptions{Resume: true}))
	if rep.Resumed || rep.Deactivated != 1 {
		t.Fatalf("after a corrupt checkpoint: %+v", rep)
	}
}

// rowsBySub reads every row of the table, keyed by sub.
func rowsBySub(t testing.TB, d *Directory) map[string]*User {
	t.Helper()
	out := map[string]*User{}
	var after int64
	for {
		page := must[[]*User](t)(d.List(context.Background(), Query{AfterID: after, Limit: MaxListLimit}))
		if len(page) == 0 {
			return out
		}
		for _, u := range page {
			out[u.Subject] = u
		}
		after = page[len(page)-1].ID
	}
}

// sameAsClean compares the table of a resumed run with that of a clean
// sync of Keycloak's present state into a new table: every user's data
// must be equal. The resumed table may hold more rows only for the users
// in gone (deleted in Keycloak), deactivated as such.
func sameAsClean(t testing.TB, resumed, clean *Directory, gone ...string) {
	t.Helper()
	got, want := rowsBySub(t, resumed), rowsBySub(t, clean)
	type data struct {
		Username, Email, First, Last string
		Verified, Enabled, Active    bool
		Reason                       Reason
	}
	of := func(u *User) data {
		return data{u.Username, u.Email, u.FirstName, u.LastName, u.EmailVerified, u.Enabled, u.Active(), u.Reason}
	}
	for sub, w := range want {
		g, ok := got[sub]
		if !ok {
			t.Errorf("user %s (%s) has no row after the resumed run", w.Username, sub)
			continue
		}
		if of(g) != of(w) {
			t.Errorf("user %s:\n  resumed %+v\n  clean   %+v", w.Username, of(g), of(w))
		}
		delete(got, sub)
	}
	var extra []string
	for _, u := range got {
		extra = append(extra, u.Username)
		if u.Active() || u.Reason != ReasonNotInKeycloak {
			t.Errorf("row of %s, gone from Keycloak: %+v", u.Username, of(u))
		}
	}
	slices.Sort(extra)
	slices.Sort(gone)
	if !slices.Equal(extra, gone) {
		t.Errorf("rows of users gone from Keycloak %v, want %v", extra, gone)
	}
}

// Keycloak changes while a run is interrupted: a user is added (sorting
// first, so every later user shifts past the checkpoint's offset), one the
// run wrote is deleted, one renamed (moving past the offset), one gets a
// new name, one is disabled. The resumed run, interrupted again while it
// lists again what came before its start, and resumed once more, leaves
// the table a clean sync of the new state leaves, and counts every user
// once.
func TestSyncResumeAfterKeycloakChanged(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			e.addUsers(t, "u", 1000)
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))

			// Interrupted after 3 batches: alice, bob, u00000-u00297.
			cctx, cancel := context.WithCancel(ctx)
			batches := 0
			first, err := d.Sync(cctx, SyncOptions{PageSize: 100, BatchSize: 100, Progress: func(p SyncProgress) {
				if batches++; batches == 3 {
					cancel()
				}
			}})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: %v", err)
			}
			wantCounts(t, "interrupted", first, SyncCounts{Seen: 300, Created: 300})

			if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: "a-newcomer", Email: "new@example.com"}); err != nil {
				t.Fatal(err)
			}
			if err := e.kc.DeleteUser("u" + pad(10)); err != nil {
				t.Fatal(err)
			}
			// keycloaktest keeps usernames, as Keycloak does by default: the
			// renamed user comes back under its id with another name.
			id, _ := e.kc.UserID("u" + pad(20))
			if err := e.kc.DeleteUser("u" + pad(20)); err != nil {
				t.Fatal(err)
			}
			if _, err := e.kc.AddUser(keycloaktest.UserConfig{ID: id, Username: "zz-renamed", Email: "renamed@example.com"}); err != nil {
				t.Fatal(err)
			}
			id, _ = e.kc.UserID("u" + pad(30))
			if err := e.admin.UpdateUser(ctx, id, admin.UserUpdate{FirstName: admin.Ptr("Renamed")}); err != nil {
				t.Fatal(err)
			}
			if err := e.kc.SetUserEnabled("u"+pad(40), false); err != nil {
				t.Fatal(err)
			}

			// Resumed, and interrupted again while listing the users before
			// its start (offset 300) again.
			var notified []string
			opts := SyncOptions{PageSize: 100, BatchSize: 100, Resume: true, OnDeactivate: func(u *User) { notified = append(notified, u.Username) }}
			cctx, cancel = context.WithCancel(ctx)
			opts.Progress = func(SyncProgress) {
				if cp := must[*checkpoint](t)(d.loadCheckpoint(ctx)); cp.Wrapped && cp.First >= 100 {
					cancel()
				}
			}
			second, err := d.Sync(cctx, opts)
			cancel()
			if !errors.Is(err, context.Canceled) || !second.Resumed || second.RunID != first.RunID {
				t.Fatalf("second interruption: %v, %+v", err, second)
			}
			if cp := must[*checkpoint](t)(d.loadCheckpoint(ctx)); cp.Pass != 1 || cp.Start != 300 || !cp.Wrapped || cp.First < 100 || cp.First >= 300 {
				t.Fatalf("checkpoint %+v", cp)
			}
			// Meanwhile a user the resumed run saw is deleted.
			if err := e.kc.DeleteUser("u" + pad(500)); err != nil {
				t.Fatal(err)
			}

			opts.Progress = nil
			last := must[SyncReport](t)(d.Sync(ctx, opts))
			if !last.Resumed || last.RunID != first.RunID {
				t.Fatalf("last run %+v", last)
			}
			// 1003 users seen: the 1001 there now, and u00010 and u00500
			// before they were deleted; zz-renamed and u00030 updated,
			// u00040 disabled, u00010 and u00500 gone.
			wantCounts(t, "resumed twice", last, SyncCounts{Seen: 1003, Created: 1003, Updated: 2, Deactivated: 3})
			slices.Sort(notified)
			if want := []string{"u00010", "u00040", "u00500"}; !slices.Equal(notified, want) {
				t.Errorf("OnDeactivate saw %v, want %v", notified, want)
			}
			if cp := must[*checkpoint](t)(d.loadCheckpoint(ctx)); cp.Phase != PhaseDone || cp.Pass != 2 {
				t.Fatalf("checkpoint %+v", cp)
			}

			clean := newLocation(t, backend).open(t, WithAdmin(e.admin))
			must[SyncReport](t)(clean.Sync(ctx, SyncOptions{}))
			sameAsClean(t, d, clean, "u00010", "u00500")

			// A run after that finds every user unchanged.
			again := must[SyncReport](t)(d.Sync(ctx, SyncOptions{Resume: true}))
			wantCounts(t, "next run", again, SyncCounts{Seen: 1001, Unchanged: 1001})
		})
	}
}

// Interrupted while checking unseen rows, then users change: the resumed
// run lists every user again before it checks the rest.
func TestSyncResumeVerifyAfterKeycloakChanged(t *testing.T) {
	t.Parallel()
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newKC(t)
			e.addUsers(t, "u", 300)
			d := newLocation(t, backend).open(t, WithAdmin(e.admin))
			must[SyncReport](t)(d.Sync(ctx, SyncOptions{}))
			for i := 100; i < 200; i++ {
				if err := e.kc.DeleteUser("u" + pad(i)); err != nil {
					t.Fatal(err)
				}
			}
			cctx, cancel := context.WithCancel(ctx)
			rep, err := d.Sync(cctx, SyncOptions{BatchSize: 10, Progress: func(p SyncProgress) {
				if p.Phase == PhaseVerify {
					cancel()
				}
			}})
			cancel()
			if !errors.Is(err, context.Canceled) || rep.Deactivated != 10 {
				t.Fatalf("interrupted verify: %v, %+v", err, rep.SyncCounts)
			}
			// The run saw u00005 and u00006 (unchanged) before this.
			if _, err := e.kc.AddUser(keycloaktest.UserConfig{Username: "a-newcomer"}); err != nil {
				t.Fatal(err)
			}
			if err := e.kc.DeleteUser("u" + pad(5)); err != nil {
				t.Fatal(err)
			}
			id, _ := e.kc.UserID("u" + pad(6))
			if err := e.admin.UpdateUser(ctx, id, admin.UserUpdate{LastName: admin.Ptr("Changed")}); err != nil {
				t.Fatal(err)
			}
			last := must[SyncReport](t)(d.Sync(ctx, SyncOptions{BatchSize: 10, Resume: true}))
			// u00006 was counted unchanged before the interruption, and
			// is counted again as updated.
			wantCounts(t, "resumed", last, SyncCounts{Seen: 203, Created: 1, Updated: 1, Unchanged: 202, Deactivated: 101})

			clean := newLocation(t, backend).open(t, WithAdmin(e.admin))
			must[SyncReport](t)(clean.Sync(ctx, SyncOptions{}))
			gone := []string{"u00005"}
			for i := 100; i < 200; i++ {
				gone = append(gone, "u"+pad(i))
			}
			sameAsClean(t, d, clean, gone...)
		})
	}
}
