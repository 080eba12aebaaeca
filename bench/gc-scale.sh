#!/usr/bin/env bash
# What N live sessions cost the collector: one `cloakroom serve` gateway
# (default configuration, STORE's session store) run with
# GODEBUG=gctrace=1 under closed-loop load in phases: one session; then N
# real logins and a warm-up over all of them; then all N round-robin, the
# one session alone again, and all N again. Per phase: req/s, the
# gateway's CPU per request, and from gctrace the collector's cycles, its
# CPU per request (assist, background and idle marking, both pauses) and
# the live heap after the last cycle. The collector's CPU does not depend
# on this machine's speed the way req/s does.
#
#   bench/gc-scale.sh                      # STORE=sqlite N=10000 WARM=65s DURATION=8s CONCURRENCY=16
#   STORE=memory N=2000 WARM=5s bench/gc-scale.sh
#
# STORE: memory, sqlite or a store URL. Ports 18600-18699 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

STORE=${STORE:-sqlite}
N=${N:-10000}
WARM=${WARM:-65s}
DURATION=${DURATION:-8s}
CONCURRENCY=${CONCURRENCY:-16}
scratch_work
SECRET=bench-gc-secret
IDP=127.0.0.1:18680
UPSTREAM=127.0.0.1:18690
GW=127.0.0.1:18601

build_tools
write_realm
start "$WORK/cloakroom" dev --listen "$IDP" --realm-file "$WORK/realm.json"
start "$WORK/loadgen" upstream -listen "$UPSTREAM"
default_gateway "$GW" "$STORE" "$IDP" "$UPSTREAM"
# gctrace writes to stderr, with the gateway's own log lines.
GODEBUG=gctrace=1 "$WORK/cloakroom" serve --config "$WORK/gw.yaml" 2>"$WORK/gw.log" &
PID_GW=$!
PIDS+=("$PID_GW")
wait_http "http://$IDP/realms/bench/.well-known/openid-configuration"
wait_http "http://$GW/_cloakroom/readyz"
"$WORK/loadgen" login -url "http://$GW/" >"$WORK/cookie"

# phase NAME COOKIES: one measured run; its line on stdout.
phase() {
	local g0 g1 out
	g0=$(grep -c '^gc ' "$WORK/gw.log" || true)
	out=$("$WORK/loadgen" run -name "$1" -url "http://$GW/" -cookies "$2" -concurrency "$CONCURRENCY" -duration "$DURATION" -warmup 0s -pid "$PID_GW")
	g1=$(grep -c '^gc ' "$WORK/gw.log" || true)
	python3 - "$WORK/gw.log" "$g0" "$g1" "$out" <<'PY'
import json, re, sys
cycles = [l for l in open(sys.argv[1]) if l.startswith("gc ")][int(sys.argv[2]):int(sys.argv[3])]
cpu_ms, live = 0.0, "?"
for l in cycles:
    # gc N @T s P%: clock..., A+B/C/D+E ms cpu, H0->H1->LIVE MB, ...
    m = re.search(r"ms clock, ([\d.]+)\+([\d.]+)/([\d.]+)/([\d.]+)\+([\d.]+) ms cpu, \d+->\d+->(\d+) MB", l)
    if m:
        cpu_ms += sum(float(m.group(i)) for i in range(1, 6))
        live = m.group(6)
d = json.loads(sys.argv[4])
print(f"| {d['name']} | {d['rps']:,.0f} | {d['cpu_us_per_req']:.1f} µs | {len(cycles)} | {live} MB | {cpu_ms * 1000 / d['requests']:.1f} µs |")
PY
}
echo "== $STORE store, $CONCURRENCY clients, $DURATION per phase" >&2
"$WORK/loadgen" run -url "http://$GW/" -cookies "$WORK/cookie" -concurrency "$CONCURRENCY" -duration 3s >/dev/null
echo "| phase | req/s | CPU per request | GC cycles | live heap after the last | GC CPU per request |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
phase "one session, before the logins" "$WORK/cookie"
echo "== $N logins, then a warm-up of $WARM over all of them" >&2
"$WORK/loadgen" login -n "$N" -concurrency "$CONCURRENCY" -url "http://$GW/" >"$WORK/cookies" 2>/dev/null
"$WORK/loadgen" run -url "http://$GW/" -cookies "$WORK/cookies" -concurrency "$CONCURRENCY" -duration 1s -warmup "$WARM" >/dev/null
phase "$N sessions" "$WORK/cookies"
phase "one session, after" "$WORK/cookie"
phase "$N sessions again" "$WORK/cookies"
