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
	exchangeGolden = "testdata/exchange.golden"
	exchangeAllow  = "exchange-allowlist.txt"
)

// TestExchangeConformance runs ExchangeScenarios against
// keycloaktest and against real Keycloak (CLOAKROOM_TEST_KEYCLOAK), or,
// without one, against the observations recorded from it
// (testdata/exchange.golden, rewritten with -update), and fails on
// every difference exchange-allowlist.txt does not explain.
func TestExchangeConformance(t *testing.T) {
	allow, err := LoadAllowlist(exchangeAllow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const realm = "conformance-exchange"
	twin := keycloaktest.NewServer(t, keycloaktest.WithRealmFile(ExchangeRealmFile))
	got := Run(ctx, &Target{Base: twin.URL(), Realm: realm}, ExchangeScenarios())

	var want Observations
	source := ""
	if base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/"); base != "" {
		importRealm(t, base, realm, ExchangeRealmFile)
		want = Run(ctx, &Target{Base: base, Realm: realm}, ExchangeScenarios())
		source = "Keycloak at " + base
		if *update {
			if err := os.WriteFile(exchangeGolden, want.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		data, err := os.ReadFile(exchangeGolden)
		if err != nil {
			t.Skipf("no real Keycloak (set CLOAKROOM_TEST_KEYCLOAK) and no %s", exchangeGolden)
		}
		want = ParseObservations(data)
		source = exchangeGolden + " (recorded from real Keycloak)"
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
		t.Errorf("keycloaktest differs from %s (fix keycloaktest, or explain in %s):%s", source, exchangeAllow, report.String())
	}
	for _, e := range allow {
		used := false
		for _, d := range diffs {
			used = used || matchPattern(e.Pattern, d.Key)
		}
		if !used {
			t.Errorf("%s: %q matches no difference any more: remove it", exchangeAllow, e.Pattern)
		}
	}
	if len(want) < 100 {
		t.Errorf("only %d observations: the scenario has lost parts", len(want))
	}
}
