#!/usr/bin/env bash
# Runs every check of every module: formatting, go vet, and the tests with
# the race detector (benchmarks once each, as a smoke test).
#
#   ./test.sh              # everything
#   ./test.sh -run Verify  # extra flags go to every `go test`
#
# Tests that need Redis, PostgreSQL or Chromium run when their variables are
# set (CLOAKROOM_TEST_REDIS, CLOAKROOM_TEST_POSTGRES, CLOAKROOM_TEST_CHROMIUM)
# and skip with a message otherwise; the run ends with a list of every
# skipped test and its reason. .ci/run sets every variable. The interop
# tests against dex, the zitadel/oidc example OP and ORY Hydra run with
# CLOAKROOM_INTEROP_PEERS=1 (they build the peers once, see
# interop/peers/build.sh). The conformance suite and the tests against a
# real Keycloak run with CLOAKROOM_TEST_KEYCLOAK (eval "$(scripts/keycloak.sh
# start)" sets it); without it, keycloaktest is compared with the
# observations recorded from Keycloak (interop/conformance/testdata).
# CLOAKROOM_SOAK=2m adds the chaos soak against a real Keycloak (it starts
# its own, on ports 8380/9300, and its own redis-server; scripts/soak.sh
# runs long ones).
set -euo pipefail
cd "$(dirname "$0")"

modules=(. interop bench e2e)

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

for m in "${modules[@]}"; do
	[ -f "$m/go.mod" ] || continue
	echo "== $m: go vet"
	(cd "$m" && go vet ./...)
done

# The tests of every module go through internal/testreport, which prints
# what `go test` prints and then every skipped test with its reason.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/testreport" ./internal/testreport
# The chaos soak (e2e TestChaosSoak, CLOAKROOM_SOAK=2m) runs on its own
# after the rest of e2e, with a longer timeout, on a full run only.
soak=""
if [ -n "${CLOAKROOM_SOAK:-}" ] && [ $# -eq 0 ]; then soak=1; fi
for m in "${modules[@]}"; do
	[ -f "$m/go.mod" ] || continue
	echo "== $m: go test -race"
	if [ "$m" = bench ]; then
		(cd "$m" && go test -json -race -count=1 -bench . -benchtime 1x "$@" ./...) || echo "$m" >>"$work/failed"
	elif [ "$m" = e2e ] && [ -n "$soak" ]; then
		(cd "$m" && go test -json -race -count=1 -skip '^TestChaosSoak$' ./...) || echo "$m" >>"$work/failed"
		echo "== e2e: chaos soak (CLOAKROOM_SOAK=$CLOAKROOM_SOAK: its own Keycloak and Redis)"
		(cd "$m" && go test -json -race -count=1 -timeout 30m -run '^TestChaosSoak$' .) || echo "e2e (chaos soak)" >>"$work/failed"
	else
		(cd "$m" && go test -json -race -count=1 "$@" ./...) || echo "$m" >>"$work/failed"
	fi
	if [ "$m" = . ] && [ $# -eq 0 ]; then
		# The gateway's benchmark against the floor, once (it checks
		# every answer), as the bench module's are.
		go test -json -race -count=1 -run '^$' -bench HopCPU -benchtime 1x ./gateway || echo "gateway (BenchmarkHopCPU)" >>"$work/failed"
	fi
done | "$work/testreport"
if [ -s "$work/failed" ]; then
	echo "tests failed in: $(tr '\n' ' ' <"$work/failed")" >&2
	exit 1
fi
echo "all checks passed"
