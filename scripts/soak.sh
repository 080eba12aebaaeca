#!/usr/bin/env bash
# The chaos soak (e2e/soak_test.go, TestChaosSoak) for as long as you like:
# three `cloakroom serve` processes built from this tree behind a
# round-robin load balancer, one Redis, its own real Keycloak with a file
# database, steady browser/bearer/refresh/logout load and faults injected
# in turn (gateway kill -9, Keycloak restart, store outage or Redis
# failover, signing-key rotation, provider latency), then prints the
# figures.
#
#   scripts/soak.sh            # 30m
#   scripts/soak.sh 2h
#
# It starts and stops its own Keycloak with scripts/keycloak.sh on ports
# 8380/9300 (KEYCLOAK: CLOAKROOM_SOAK_KEYCLOAK_PORT,
# CLOAKROOM_SOAK_KEYCLOAK_MANAGEMENT_PORT), with the file database kept
# in ~/.cache/cloakroom-keycloak/run-8380/home between runs (the soak
# re-creates its realm) or CLOAKROOM_SOAK_KEYCLOAK_DATA. Everything else
# listens on loopback ports from 18300 (CLOAKROOM_SOAK_PORT_BASE) within
# 18000–18999. With CLOAKROOM_TEST_REDIS_SENTINEL set it starts its own
# Sentinel topology (scripts/redis-ha.sh) and fails its master over instead
# of cutting the store.
#
# Other knobs (environment): CLOAKROOM_SOAK_BROWSERS (4),
# CLOAKROOM_SOAK_GAP (time between faults: 10s up to 5m, then 30s),
# CLOAKROOM_SOAK_MARGIN (10s after a fault still counted in its window),
# CLOAKROOM_SOAK_LATENCY (1.5s), CLOAKROOM_SOAK_LATENCY_WINDOW (15s),
# CLOAKROOM_SOAK_STORE_OUTAGE (8s), CLOAKROOM_SOAK_WARMUP (15s),
# CLOAKROOM_SOAK_TAIL (25s).
#
# The run's files (gateway logs and configs, redis.log, the report) stay in
# CLOAKROOM_SOAK_DIR (default: a new directory under /tmp); the exit status
# is the test's.
set -euo pipefail
cd "$(dirname "$0")/.."

dur=${1:-30m}
export CLOAKROOM_SOAK=$dur
export CLOAKROOM_SOAK_DIR=${CLOAKROOM_SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cloakroom-soak.XXXXXX")}
export CLOAKROOM_SOAK_REPORT=$CLOAKROOM_SOAK_DIR/report.txt
mkdir -p "$CLOAKROOM_SOAK_DIR"

# go test's own limit: the soak, plus set-up, faults in progress and the tail.
secs=0 rest=$dur
while [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]]; do
	case ${BASH_REMATCH[2]} in
	h) secs=$((secs + BASH_REMATCH[1] * 3600)) ;;
	m) secs=$((secs + BASH_REMATCH[1] * 60)) ;;
	s) secs=$((secs + BASH_REMATCH[1])) ;;
	esac
	rest=${BASH_REMATCH[3]}
done
if [ -n "$rest" ] || [ "$secs" -lt 30 ]; then
	echo "scripts/soak.sh: want a duration of at least 30s such as 30m, 2h or 1h30m, not $dur" >&2
	exit 2
fi
timeout=$((secs + 900))s

echo "chaos soak for $dur (files in $CLOAKROOM_SOAK_DIR)" >&2
status=0
(cd e2e && go test -race -count=1 -run '^TestChaosSoak$' -timeout "$timeout" -v .) \
	>"$CLOAKROOM_SOAK_DIR/test.log" 2>&1 || status=$?
if [ -s "$CLOAKROOM_SOAK_REPORT" ]; then
	cat "$CLOAKROOM_SOAK_REPORT"
else
	tail -60 "$CLOAKROOM_SOAK_DIR/test.log"
fi
grep -E '^\s+soak_.*_test.go:[0-9]+: (invariant|fault|gateway)' "$CLOAKROOM_SOAK_DIR/test.log" || true
echo >&2
echo "test log: $CLOAKROOM_SOAK_DIR/test.log; exit status $status" >&2
exit "$status"
