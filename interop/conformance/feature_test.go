package conformance

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// featureSuite is a scenario set with a realm of its own, compared on its
// own golden file and allow-list (Keycloak 26 features added one by one).
type featureSuite struct {
	realm     string // realm name in the realm file
	realmFile string // path of the realm file
	scenarios func() []Scenario
	golden    string // testdata/NAME.golden
	allowlist string // NAME-allowlist.txt
	// min is the fewest observations a complete run makes (default 100):
	// fewer means the scenario lost parts.
	min int
}

// run compares the suite on keycloaktest with real Keycloak
// (CLOAKROOM_TEST_KEYCLOAK), or, without one, with the observations
// recorded from it (the golden file, rewritten with -update), and fails on
// every difference the allow-list does not explain, and on allow-list
// entries that explain nothing any more.
func (s featureSuite) run(t *testing.T) {
	allow, err := LoadAllowlist(s.allowlist)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	twin := keycloaktest.NewServer(t, keycloaktest.WithRealmFile(s.realmFile))
	got := Run(ctx, &Target{Base: twin.URL(), Realm: s.realm}, s.scenarios())

	var want Observations
	source := ""
	if base := strings.TrimSuffix(os.Getenv("CLOAKROOM_TEST_KEYCLOAK"), "/"); base != "" {
		importRealm(t, base, s.realm, s.realmFile)
		want = Run(ctx, &Target{Base: base, Realm: s.realm}, s.scenarios())
		source = "Keycloak at " + base
		if *update {
			if err := os.WriteFile(s.golden, want.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		data, err := os.ReadFile(s.golden)
		if err != nil {
			t.Skipf("no real Keycloak (set CLOAKROOM_TEST_KEYCLOAK) and no %s", s.golden)
		}
		want = ParseObservations(data)
		source = s.golden + " (recorded from real Keycloak)"
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
		t.Errorf("keycloaktest differs from %s (fix keycloaktest, or explain in %s):%s", source, s.allowlist, report.String())
	}
	for _, e := range allow {
		used := false
		for _, d := range diffs {
			used = used || matchPattern(e.Pattern, d.Key)
		}
		if !used {
			t.Errorf("%s: %q matches no difference any more: remove it", s.allowlist, e.Pattern)
		}
	}
	if len(want) < cmp.Or(s.min, 100) {
		t.Errorf("only %d observations: the scenario has lost parts", len(want))
	}
}

// TestExchangeConformance: standard token exchange (exchange.go).
func TestExchangeConformance(t *testing.T) {
	featureSuite{realm: "conformance-exchange", realmFile: ExchangeRealmFile, scenarios: ExchangeScenarios,
		golden: "testdata/exchange.golden", allowlist: "exchange-allowlist.txt"}.run(t)
}

// TestLightweightConformance: lightweight access tokens (lightweight.go).
func TestLightweightConformance(t *testing.T) {
	featureSuite{realm: "conformance-lightweight", realmFile: LightweightRealmFile, scenarios: LightweightScenarios,
		golden: "testdata/lightweight.golden", allowlist: "lightweight-allowlist.txt"}.run(t)
}

// TestDPoPConformance: DPoP at the token endpoint (dpop.go).
func TestDPoPConformance(t *testing.T) {
	featureSuite{realm: "conformance-dpop", realmFile: DPoPRealmFile, scenarios: DPoPScenarios,
		golden: "testdata/dpop.golden", allowlist: "dpop-allowlist.txt", min: 90}.run(t)
}
