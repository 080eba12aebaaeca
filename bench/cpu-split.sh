#!/usr/bin/env bash
# Where the authenticated hop's extra CPU goes: the same closed-loop load
# (the same session cookie) through `cloakroom serve` (memory store unless
# STORE says otherwise, the default configuration, access log to a file) and through the floor of
# bench/floor-load.sh (`loadgen hop -buffer-pool`), each process sampled
# by `perf record -e cpu-clock` (a software clock: this works in VMs
# without hardware counters), and the samples turned into CPU microseconds
# per request: user and kernel, and inclusive figures for the parts of
# the request path named below, side by side with their difference.
#
#   bench/cpu-split.sh                 # DURATION=5s CONCURRENCY=16 FREQ=4000
#   MODE=bearer bench/cpu-split.sh     # the bearer token on the api route instead
#   STORE=sqlite bench/cpu-split.sh    # the session store (memory, the default, or sqlite)
#
# A sample stands for 1/FREQ s of CPU, so each figure is samples ×
# (10⁶/FREQ) µs / requests. Needs Go, python3 and perf (linux-perf) with
# perf_event_paranoid ≤ 1 or root. Ports 18300-18399 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-5s}
CONCURRENCY=${CONCURRENCY:-16}
FREQ=${FREQ:-4000}
MODE=${MODE:-session}
STORE=${STORE:-memory}
check_store
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
scratch_work
SECRET=bench-split-secret
IDP=127.0.0.1:18380
UPSTREAM=127.0.0.1:18390
HOP=127.0.0.1:18392
GW=127.0.0.1:18301

build_tools
write_realm
start "$WORK/cloakroom" dev --listen "$IDP" --realm-file "$WORK/realm.json"
start "$WORK/loadgen" upstream -listen "$UPSTREAM"
start "$WORK/loadgen" hop -listen "$HOP" -upstream "http://$UPSTREAM" -buffer-pool
PID_HOP=${PIDS[-1]}
default_gateway "$GW" "$STORE" "$IDP" "$UPSTREAM"
"$WORK/cloakroom" serve --config "$WORK/gw.yaml" 2>"$WORK/gw.log" &
PID_GW=$!
PIDS+=("$PID_GW")
wait_http "http://$IDP/realms/bench/.well-known/openid-configuration"
wait_http "http://$GW/_cloakroom/readyz"
wait_http "http://$HOP/"

if [ "$MODE" = bearer ]; then
	TOKEN=$("$WORK/loadgen" token -token-url "http://$IDP/realms/bench/protocol/openid-connect/token" -client-id gateway -client-secret "$SECRET")
	REQ=(-H "Authorization: Bearer $TOKEN")
	GW_URL=http://$GW/api/x
else
	"$WORK/loadgen" login -url "http://$GW/" >"$WORK/cookie"
	REQ=(-cookies "$WORK/cookie")
	GW_URL=http://$GW/
fi

# profile NAME URL PID: a warm-up, then DURATION of load with the process
# sampled; the request count in $WORK/NAME.n.
profile() {
	"$WORK/loadgen" run -url "$2" "${REQ[@]}" -concurrency "$CONCURRENCY" -duration 2s >/dev/null
	perf record -q -e cpu-clock -F "$FREQ" -g -p "$3" -o "$WORK/$1.data" 2>/dev/null &
	local perf=$!
	sleep 0.5
	"$WORK/loadgen" run -name "$1" -url "$2" "${REQ[@]}" -concurrency "$CONCURRENCY" -duration "$DURATION" -pid "$3" >"$WORK/$1.json"
	kill -INT "$perf"
	wait "$perf" 2>/dev/null || true
	perf script -i "$WORK/$1.data" -F ip,sym,dso 2>/dev/null >"$WORK/$1.txt"
	echo "  $1: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%d requests, %.0f req/s, %.1f µs CPU per request" % (d["requests"], d["rps"], d["cpu_us_per_req"]))' "$WORK/$1.json")" >&2
}
echo "== $MODE, $STORE store: $DURATION of load each, $CONCURRENCY clients, perf at $FREQ Hz" >&2
profile cloakroom "$GW_URL" "$PID_GW"
profile floor "http://$HOP/" "$PID_HOP"

python3 - "$WORK" "$FREQ" "$MODE, $STORE store" <<'PY'
import json, re, sys
work, freq, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Inclusive figures: a sample counts for a part when the part's function
# is anywhere on its stack (perf's own frames excluded).
PARTS = [
    # (depth, label, the function on the stack for cloakroom, for the floor)
    (0, "the connection's goroutine (all of the request in net/http's server)", r"net/http\.\(\*conn\)\.serve", None),
    (1, "reading the request (net/http)", r"net/http\.\(\*conn\)\.readRequest", None),
    (1, "the handler: Gateway.ServeHTTP / the hop's ReverseProxy", r"gateway\.\(\*Gateway\)\.ServeHTTP", r"httputil\.\(\*ReverseProxy\)\.ServeHTTP"),
    (2, "httputil.ReverseProxy.ServeHTTP", r"httputil\.\(\*ReverseProxy\)\.ServeHTTP", None),
    (3, "the Rewrite hook (cloakroom's adds the identity headers)", r"gateway\.\(\*Gateway\)\.rewrite", r"main\.hop\.func1"),
    (3, "Transport.RoundTrip", r"net/http\.\(\*Transport\)\.RoundTrip", None),
    (2, "the session (login's load: cookie, store, claims memo)", r"login\.\(\*Handler\)\.load", None),
    (2, "the bearer token (verification, cached)", r"cloakroom\.\(\*Verifier\)\.Verify(Bound)?", None),
    (2, "the access log line", r"gateway\.\(\*Gateway\)\.logAccess", None),
    (2, "the path and host checks (canonicalize, sanitize)", r"gateway\.\(\*Gateway\)\.(canonicalize|sanitize)", None),
    (1, "finishing the response (net/http)", r"net/http\.\(\*response\)\.finishRequest", None),
    (0, "writing requests to the upstream (Transport's writeLoop)", r"net/http\.\(\*persistConn\)\.writeLoop", None),
    (0, "reading the upstream's answers (Transport's readLoop)", r"net/http\.\(\*persistConn\)\.readLoop", None),
    (0, "allocation (runtime.mallocgc, anywhere)", r"runtime\.mallocgc", None),
    (0, "garbage collection (background mark, sweep, scavenge)", r"runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)", None),
    (0, "the scheduler (runtime.mcall: parking, finding work)", r"runtime\.mcall", None),
    (0, "sysmon", r"runtime\.sysmon", None),
]
def load(name):
    d = json.load(open(f"{work}/{name}.json"))
    stacks, cur = [], []
    for line in open(f"{work}/{name}.txt"):
        line = line.strip()
        if not line:
            if cur: stacks.append(cur)
            cur = []
            continue
        m = re.fullmatch(r"[0-9a-f]+ (.*) \((.*)\)", line)
        if m:
            cur.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    if cur: stacks.append(cur)
    return d, stacks
us = 1e6 / freq
rows = {}
for name in ("cloakroom", "floor"):
    d, stacks = load(name)
    n = d["requests"]
    kernel = sum(1 for s in stacks if "kernel" in s[0][1])
    r = {"all": len(stacks) * us / n, "user": (len(stacks) - kernel) * us / n, "kernel": kernel * us / n}
    for depth, label, rx, rx_floor in PARTS:
        p = re.compile("(^|/)(" + (rx_floor if name == "floor" and rx_floor else rx) + ")$")
        r[label] = sum(1 for s in stacks if any(p.search(f) for f, _ in s)) * us / n
    r["_req"], r["_rps"] = n, d["rps"]
    rows[name] = r
c, f = rows["cloakroom"], rows["floor"]
print(f"\nCPU per request (µs), {mode}: cloakroom {c['_req']:,} requests ({c['_rps']:,.0f} req/s), floor {f['_req']:,} ({f['_rps']:,.0f} req/s); perf cpu-clock at {freq} Hz.\n")
print("| part | cloakroom | floor | difference |")
print("| --- | ---: | ---: | ---: |")
for depth, label in [(0, "all"), (1, "user"), (1, "kernel")] + [(d, l) for d, l, _, _ in PARTS]:
    if c[label] == 0 and f[label] == 0:
        continue
    print(f"| {'↳ ' * depth}{label} | {c[label]:.2f} | {f[label]:.2f} | {c[label] - f[label]:+.2f} |")
PY
