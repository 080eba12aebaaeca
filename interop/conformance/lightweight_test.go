package conformance

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

const (
	lightweightGolden = "testdata/lightweight.golden"
	lightweightAllow  = "lightweight-allowlist.txt"
)

// TestLightweightConformance runs LightweightScenarios against
// keycloaktest and against real Keycloak (CLOAKROOM_TEST_KEYCLOAK), or,
// without one, against the observations recorded from it
// (testdata/lightweight.golden, rewritten with -update), and fails on
// every difference lightweight-allowlist.txt does not explain.
func TestLightweightConformance(t *testing.T) {
	allow, err := LoadAllowlist(lightweightAllow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const realm = "conformance-lightweight"
	twin := keycloaktest.NewServer(t, keycloaktest.WithRealmFile(LightweightRealmFile))
	got := Run(ctx, &Target{Base: twin.URL(), Realm: realm}, LightweightScenarios())

	var want Observations
	source := ""
	if base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/"); base != "" {
		importRealm(t, base, realm, LightweightRealmFile)
		want = Run(ctx, &Target{Base: base, Realm: realm}, LightweightScenarios())
		source = "Keycloak at " + base
		if *update {
			if err := os.WriteFile(lightweightGolden, want.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		data, err := os.ReadFile(lightweightGolden)
		if err != nil {
			t.Skipf("no real Keycloak (set CLOAKROOM_TEST_KEYCLOAK) and no %s", lightweightGolden)
		}
		want = ParseObservations(data)
		source = lightweightGolden + " (recorded from real Keycloak)"
	}
	var report strings.Builder
	diffs := Compare(want, got, allow)
	for _, d := range diffs {
		if d.Allowed == "" {
			fmt.Fprintf(&report, "\n  %s\n      Keycloak:     %s\n      keycloaktest: %s", d.Key, d.A, d.B)
		}
	}
	t.Logf("%d observations from %s, %d from keycloaktest, %d differ", len(want), source, len(got), len(diffs))
	if report.Len() > 0 {
		t.Errorf("keycloaktest differs from %s (fix keycloaktest, or explain in %s):%s", source, lightweightAllow, report.String())
	}
	for _, e := range allow {
		used := false
		for _, d := range diffs {
			used = used || matchPattern(e.Pattern, d.Key)
		}
		if !used {
			t.Errorf("%s: %q matches no difference any more: remove it", lightweightAllow, e.Pattern)
		}
	}
	if len(want) < 100 {
		t.Errorf("only %d observations: the scenario has lost parts", len(want))
	}
}
