package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSoakSmoke runs the soak for 15 seconds with 5 users and 2 gateway
// instances, on Redis when CLOAKROOM_TEST_REDIS is set and on a shared
// SQLite file otherwise, with short think times and tokens that need a
// refresh after 2 s, so that every kind of step happens. The real soak is
// run by hand: go run ./soak (10 minutes).
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s of load; skipped with -short")
	}
	store := "sqlite:" + filepath.Join(t.TempDir(), "soak.db")
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		store = "redis://" + addr + "/0"
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: the gateways share a SQLite file")
	}
	var out bytes.Buffer
	rep, err := run(context.Background(), config{
		duration: 15 * time.Second, users: 5, instances: 2, store: store,
		think: 200 * time.Millisecond, tokenLifespan: 32 * time.Second, sample: 5 * time.Second,
		rpLogout: 0.04, bcLogout: 0.04, bearer: 0.15, out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if !rep.ok() {
		t.Fatal("the soak saw unexpected answers or gateway warnings")
	}
	for _, k := range []string{"logins", "session requests", "bearer calls", "token refreshes", "RP logouts", "back-channel logouts", "checks that ended sessions are refused"} {
		if rep.counts[k] == 0 {
			t.Errorf("no %s in 15 s", k)
		}
	}
}
