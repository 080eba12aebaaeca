package conformance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

var update = flag.Bool("update", false, "with CLOAKROOM_TEST_KEYCLOAK: rewrite testdata/keycloak.golden from the real server")

const (
	realmFile  = "testdata/conformance-realm.json"
	goldenFile = "testdata/keycloak.golden"
	allowFile  = "allowlist.txt"
)

// TestConformance runs the suite against keycloaktest and against real
// Keycloak (CLOAKROOM_TEST_KEYCLOAK), or, without one, against the
// observations recorded from real Keycloak, and fails on every difference
// that allowlist.txt does not explain.
func TestConformance(t *testing.T) {
	allow, err := LoadAllowlist(allowFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	twin := keycloaktest.NewServer(t, keycloaktest.WithRealmFile(realmFile))
	for _, f := range ImportFixtures {
		cfg, err := keycloaktest.LoadRealmFile(f.File)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Name = importName("conformance", f)
		if _, err := twin.AddRealm(cfg); err != nil {
			t.Fatalf("%s: %v", f.File, err)
		}
	}
	got := Run(ctx, &Target{Base: twin.URL(), Realm: "conformance"}, Scenarios())
	// Several runs can share one Keycloak when each imports the fixture
	// under its own realm name.
	realm := os.Getenv("CLOAKROOM_CONFORMANCE_REALM")
	if realm == "" {
		realm = "conformance"
	}

	var want Observations
	source := ""
	if base := os.Getenv("CLOAKROOM_TEST_KEYCLOAK"); base != "" {
		base = strings.TrimSuffix(base, "/")
		importRealm(t, base, realm, realmFile)
		for _, f := range ImportFixtures {
			importRealm(t, base, importName(realm, f), f.File)
		}
		want = Run(ctx, &Target{Base: base, Realm: realm}, Scenarios())
		want = renameRealm(want, realm)
		source = "Keycloak at " + base
		if *update {
			if err := os.WriteFile(goldenFile, want.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		data, err := os.ReadFile(goldenFile)
		if err != nil {
			t.Skipf("no real Keycloak (set CLOAKROOM_TEST_KEYCLOAK; scripts/keycloak.sh starts one) and no %s", goldenFile)
		}
		want = ParseObservations(data)
		source = goldenFile + " (recorded from real Keycloak)"
	}
	if dir := os.Getenv("CLOAKROOM_CONFORMANCE_OUT"); dir != "" {
		os.WriteFile(filepath.Join(dir, "keycloak.observations"), want.Format(), 0o644)
		os.WriteFile(filepath.Join(dir, "keycloaktest.observations"), got.Format(), 0o644)
	}

	diffs := Compare(want, got, allow)
	allowed, used := 0, map[string]bool{}
	var report strings.Builder
	for _, d := range diffs {
		if d.Allowed != "" {
			allowed++
			continue
		}
		fmt.Fprintf(&report, "\n  %s\n      Keycloak:     %s\n      keycloaktest: %s", d.Key, d.A, d.B)
	}
	for _, e := range allow {
		for _, d := range diffs {
			if matchPattern(e.Pattern, d.Key) {
				used[e.Pattern] = true
			}
		}
	}
	t.Logf("%d observations from %s, %d from keycloaktest; %d differ, %d of them allow-listed (%d entries)",
		len(want), source, len(got), len(diffs), allowed, len(allow))
	if report.Len() > 0 {
		t.Errorf("keycloaktest differs from %s on %d observations (fix keycloaktest, or explain the difference in %s):%s",
			source, len(diffs)-allowed, allowFile, report.String())
	}
	for _, e := range allow {
		if !used[e.Pattern] {
			t.Errorf("%s: %q matches no difference any more: remove it", allowFile, e.Pattern)
		}
	}
	if len(want) < 300 {
		t.Errorf("only %d observations: the suite has lost scenarios", len(want))
	}
}

// importRealm (re)creates a realm from file on a real Keycloak with the
// master realm's admin.
func importRealm(t *testing.T, base, realm, file string) {
	t.Helper()
	user, pass := os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN"), os.Getenv("CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD")
	if user == "" {
		user, pass = "admin", "admin"
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kc := &Keycloak{Base: base, Admin: user, Password: pass}
	if err := kc.ImportRealm(t.Context(), realm, data); err != nil {
		t.Fatal(err)
	}
}

// renameRealm writes the observations of a run on another realm name as if
// it had been "conformance".
func renameRealm(o Observations, realm string) Observations {
	if realm == "conformance" {
		return o
	}
	out := Observations{}
	for k, v := range o {
		out[k] = strings.ReplaceAll(strings.ReplaceAll(v, "/realms/"+realm, "/realms/conformance"), "default-roles-"+realm, "default-roles-conformance")
	}
	return out
}
