#!/usr/bin/env bash
# What SESSIONS live sessions cost a request, split in two: what the
# process holding them pays on every request, and what rotating through
# them adds. Two gateways (`cloakroom serve`, the default configuration,
# access log to a file), each with a keycloaktest of its own:
#
#   A  holds 1 session;
#   B  holds SESSIONS sessions;
#
# and, in each of PAIRS rounds (the order rotated), closed-loop load on
#
#   "A, 1 session"            A, its one cookie;
#   "B, 1 of SESSIONS"        B, one of its cookies on every request;
#   "B, SESSIONS rotating"    B, its cookies round-robin (one per request).
#
# Per round and target: req/s, p99, the gateway's CPU per request and RSS;
# then the per-round ratios B1/A (what holding the sessions costs), BN/B1
# (what rotating through them adds) and BN/A (both: floor-load.sh's scale
# goal, without the floor), and their medians. Runs a minute apart on this
# kind of machine drift by ±10 %; runs seconds apart, in the same round,
# much less, which is why the ratios are taken per round.
#
#   bench/scale-pairs.sh               # STORE=memory SESSIONS=10000 PAIRS=4 DURATION=6s WARMUP=65s
#   STORE=sqlite bench/scale-pairs.sh  # memory or sqlite
#   PERF=1 bench/scale-pairs.sh        # also perf (cpu-clock) profiles of every run: the
#                                      # functions whose inclusive CPU per request differs
#                                      # most between the targets, summed over the rounds
#
# WARMUP (65 s by default) is B's load over all its cookies before the
# rounds: past the decoded-session cache's TTL and the once-a-minute
# expiry extension. Needs Go and python3 (and perf with PERF=1). Ports
# 18400-18499 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

STORE=${STORE:-memory}
SESSIONS=${SESSIONS:-10000}
PAIRS=${PAIRS:-4}
DURATION=${DURATION:-6s}
WARMUP=${WARMUP:-65s}
CONCURRENCY=${CONCURRENCY:-16}
PERF=${PERF:-0}
FREQ=2000
check_store
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
	echo "PERF=1: perf is not installed (Debian: linux-perf)" >&2
	exit 1
fi
scratch_work
SECRET=bench-pairs-secret
IDP_A=127.0.0.1:18480
IDP_B=127.0.0.1:18481
UPSTREAM=127.0.0.1:18490
GW_A=127.0.0.1:18401
GW_B=127.0.0.1:18402
T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0))s"; }

build_tools
write_realm
start "$WORK/cloakroom" dev --listen "$IDP_A" --realm-file "$WORK/realm.json"
start "$WORK/cloakroom" dev --listen "$IDP_B" --realm-file "$WORK/realm.json"
start "$WORK/loadgen" upstream -listen "$UPSTREAM"
wait_http "http://$IDP_A/realms/bench/.well-known/openid-configuration"
wait_http "http://$IDP_B/realms/bench/.well-known/openid-configuration"
# default_gateway writes $WORK/gw.yaml; each gateway gets its own copy,
# store file and logout journal.
for g in A B; do
	listen=GW_$g idp=IDP_$g
	default_gateway "${!listen}" "$STORE" "${!idp}" "$UPSTREAM"
	sed -e "s|$WORK/sessions.db|$WORK/sessions-$g.db|" -e "s|$WORK/journal\"|$WORK/journal-$g\"|" "$WORK/gw.yaml" >"$WORK/gw-$g.yaml"
	"$WORK/cloakroom" serve --config "$WORK/gw-$g.yaml" 2>"$WORK/gw-$g.log" &
	PIDS+=($!)
	declare "PID_$g=$!"
done
wait_http "http://$GW_A/_cloakroom/readyz"
wait_http "http://$GW_B/_cloakroom/readyz"

echo "== logging in: 1 session on A, $SESSIONS on B ($(elapsed))" >&2
"$WORK/loadgen" login -url "http://$GW_A/" >"$WORK/cookie-A"
"$WORK/loadgen" login -n "$SESSIONS" -concurrency 16 -url "http://$GW_B/" >"$WORK/cookies-B"
head -1 "$WORK/cookies-B" >"$WORK/cookie-B1"
echo "== warming up: A 3s, B ${WARMUP} over all its sessions ($(elapsed))" >&2
"$WORK/loadgen" run -url "http://$GW_A/" -cookies "$WORK/cookie-A" -concurrency "$CONCURRENCY" -duration 3s >/dev/null
"$WORK/loadgen" run -url "http://$GW_B/" -cookies "$WORK/cookies-B" -concurrency "$CONCURRENCY" -duration 1s -warmup "$WARMUP" >/dev/null

NAMES=("A, 1 session" "B, 1 of $SESSIONS" "B, $SESSIONS rotating")
TPID=("$PID_A" "$PID_B" "$PID_B")
TURL=("http://$GW_A/" "http://$GW_B/" "http://$GW_B/")
TCOOKIES=("$WORK/cookie-A" "$WORK/cookie-B1" "$WORK/cookies-B")
# measure ROUND T: one run of target T, its JSON in $WORK/r$ROUND-t$T.json
# (and its perf samples, with PERF=1, in $WORK/r$ROUND-t$T.txt).
measure() {
	local out=$WORK/r$1-t$2 perf=
	"$WORK/loadgen" run -url "${TURL[$2]}" -cookies "${TCOOKIES[$2]}" -concurrency "$CONCURRENCY" -duration 1s >/dev/null
	if [ "$PERF" = 1 ]; then
		perf record -q -e cpu-clock -F "$FREQ" -g -p "${TPID[$2]}" -o "$out.data" 2>/dev/null &
		perf=$!
		sleep 0.3
	fi
	"$WORK/loadgen" run -name "${NAMES[$2]}" -url "${TURL[$2]}" -cookies "${TCOOKIES[$2]}" -concurrency "$CONCURRENCY" \
		-duration "$DURATION" -warmup 0s -pid "${TPID[$2]}" >"$out.json"
	if [ -n "$perf" ]; then
		kill -INT "$perf"
		wait "$perf" 2>/dev/null || true
		perf script -i "$out.data" -F ip,sym 2>/dev/null >"$out.txt"
		rm -f "$out.data"
	fi
}
for r in $(seq "$PAIRS"); do
	echo "== round $r of $PAIRS ($(elapsed))" >&2
	for k in 0 1 2; do measure "$r" $(((k + r) % 3)); done
done

python3 - "$WORK" "$PAIRS" "$FREQ" "$PERF" "$STORE" "$SESSIONS" "${NAMES[@]}" <<'PY'
import collections, json, re, statistics, sys
work, pairs, freq, perf, store, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5], int(sys.argv[6])
names = sys.argv[7:]
runs = [[json.load(open(f"{work}/r{r}-t{t}.json")) for t in range(3)] for r in range(1, pairs + 1)]
print(f"\n{store} store, {sessions:,} sessions on B: {pairs} rounds, closed loop; per round, then the median of each per-round ratio.\n")
print("| round | target | req/s | p99 | CPU per request | RSS |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for r, row in enumerate(runs, 1):
    for t, d in enumerate(row):
        print(f"| {r} | {names[t]} | {d['rps']:,.0f} | {d['p99_ms']:.2f} ms | {d['cpu_us_per_req']:.1f} µs | {d['rss_kb'] / 1024:.1f} MiB |")
RATIOS = [("holding the sessions: B, 1 of N ÷ A", 1, 0), ("rotating through them: B, N ÷ B, 1 of N", 2, 1), ("both: B, N ÷ A", 2, 0)]
print("\n| ratio | req/s | p99 | CPU per request |")
print("| --- | ---: | ---: | ---: |")
for label, x, y in RATIOS:
    cells = []
    for key in ("rps", "p99_ms", "cpu_us_per_req"):
        v = [row[x][key] / row[y][key] for row in runs]
        cells.append(f"{statistics.median(v):.3f} ({min(v):.2f}–{max(v):.2f})")
    print(f"| {label} | " + " | ".join(cells) + " |")
if not perf:
    sys.exit()
# Inclusive samples per function (a function counts once per sample, wherever
# it is on the stack), as µs of CPU per request, summed over the rounds.
us = 1e6 / freq
def profile(t):
    count, requests = collections.Counter(), 0
    for r in range(1, pairs + 1):
        requests += runs[r - 1][t]["requests"]
        stack = set()
        for line in open(f"{work}/r{r}-t{t}.txt"):
            line = line.strip()
            if not line:
                count.update(stack)
                stack = set()
            elif " " in line:
                stack.add(re.sub(r"\+0x[0-9a-f]+$", "", line.split(None, 1)[1]))
        count.update(stack)
    return {f: n * us / requests for f, n in count.items()}
prof = [profile(t) for t in range(3)]
for label, x, y in RATIOS:
    diff = sorted(set(prof[x]) | set(prof[y]), key=lambda f: -(prof[x].get(f, 0) - prof[y].get(f, 0)))
    print(f"\nInclusive CPU per request (µs), {label}: the 25 functions that grew most\n")
    print("| function | " + names[y] + " | " + names[x] + " | difference |")
    print("| --- | ---: | ---: | ---: |")
    for f in diff[:25]:
        print(f"| `{f[:90]}` | {prof[y].get(f, 0):.2f} | {prof[x].get(f, 0):.2f} | {prof[x].get(f, 0) - prof[y].get(f, 0):+.2f} |")
PY
