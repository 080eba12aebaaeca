#!/usr/bin/env bash
# The floor: what the authenticated hop costs over a bare reverse proxy.
# Against one tiny upstream (`loadgen upstream`), closed-loop load with a
# fixed concurrency on each of
#
#   - the upstream directly;
#   - a bare httputil.ReverseProxy hop with a pooled transport
#     (`loadgen hop`), without and with a pooled 32 KiB copy buffer (the
#     latter is "the floor"), and the floor sent the same session cookie,
#     and the same bearer token, as the cloakroom rows, also with the
#     identity headers the gateway forwards (`loadgen hop -identity`; a
#     second table divides each cloakroom row by the hops that got the
#     same request);
#   - `cloakroom serve` with a session cookie, memory, SQLite and Redis
#     stores, default configuration (access log on, written to a file);
#   - `cloakroom serve` with a bearer token on an `api` route;
#   - oauth2-proxy (keycloak-oidc provider, cookie session, default logging);
#   - the three session-cookie gateways again (separate processes) with
#     SESSIONS live sessions, one cookie per request round-robin;
#
# in ROUNDS interleaved rounds (every target once per round, the order
# rotated each round, each run between two runs of the floor). Per target
# and round: req/s, p50, p99, the target process's CPU time per request
# and its RSS at the end; each as a ratio to the mean of the floor's runs
# just before and after it; the tables give medians over rounds, and the
# last one the goals met or not.
#
#   bench/floor-load.sh            # ROUNDS=4 DURATION=8s CONCURRENCY=16 SESSIONS=10000
#   ROUNDS=2 DURATION=3s SESSIONS=1000 SKIP_OAUTH2_PROXY=1 bench/floor-load.sh
#   ACCESS_LOG=off bench/floor-load.sh   # gateways' access log and oauth2-proxy's request log off
#   SCALE_WARMUP=65s bench/floor-load.sh # the SESSIONS runs warm up for 65 s (default 1s): past
#                                        # the session cache TTL and the once-a-minute expiry
#                                        # extension, so that they are measured at their steady rate
#   PAIRED=0 bench/floor-load.sh         # the floor once per round, like any target (the method
#                                        # before 2026-12-07's seventh round); by default every
#                                        # other target runs between two runs of the floor and is
#                                        # divided by their mean, which cancels most of this
#                                        # machine's slow drift (other VMs' load) and runs
#                                        # twice as many measurements (warm-ups aside)
#   BASELINE=d3ca64e bench/floor-load.sh # also a gateway built from that commit
#                                        # (memory store: session and bearer rows),
#                                        # measured in the same rounds: before/after
#
# Ports 17000-17999 on loopback only. Redis (REDIS=127.0.0.1:6379, database
# 7, a key prefix of its own, deleted at the end) for the Redis rows;
# skipped when Redis does not answer. Needs Go, python3, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-8s}
CONCURRENCY=${CONCURRENCY:-16}
SESSIONS=${SESSIONS:-10000}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-16}
ACCESS_LOG=${ACCESS_LOG:-on}
SCALE_WARMUP=${SCALE_WARMUP:-1s}
PAIRED=${PAIRED:-1}
REDIS=${REDIS:-127.0.0.1:6379}
OAUTH2_PROXY_VERSION=v7.15.3
WORK=$(mktemp -d)
PIDS=()
PREFIX="floorbench:$$:"
REDIS_ROW=""
cleanup() {
	stop_started
	if [ -n "$REDIS_ROW" ]; then
		redis-cli -u "redis://$REDIS/7" --scan --pattern "$PREFIX*" | xargs -r -n 500 redis-cli -u "redis://$REDIS/7" del >/dev/null || true
	fi
	if [ -n "${BASELINE:-}" ]; then git worktree remove --force "$WORK/baseline-src" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

IDP=127.0.0.1:17080
UPSTREAM=127.0.0.1:17090
HOP=127.0.0.1:17091
HOP_POOL=127.0.0.1:17092
HOP_ID=127.0.0.1:17093
O2P=127.0.0.1:17100
SECRET=bench-floor-secret
ISSUER=http://$IDP/realms/bench
KEY=$(head -c 32 /dev/urandom | base64)
T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0))s"; }

echo "== building (cloakroom, loadgen)" >&2
go build -o "$WORK/cloakroom" ./cmd/cloakroom
(cd bench && go build -o "$WORK/loadgen" ./loadgen)
if [ -n "${BASELINE:-}" ]; then
	BASELINE_REV=$(git rev-parse --short "$BASELINE")
	echo "== building the baseline cloakroom at $BASELINE_REV" >&2
	git worktree add --detach -q "$WORK/baseline-src" "$BASELINE_REV"
	(cd "$WORK/baseline-src" && go build -o "$WORK/cloakroom-baseline" ./cmd/cloakroom)
fi
if [ -z "${SKIP_OAUTH2_PROXY:-}" ]; then
	build_oauth2_proxy "$OAUTH2_PROXY_VERSION"
fi
write_realm

# start_logged LOG CMD... runs a server in the background, its output in
# $WORK/LOG; its PID is then ${PIDS[-1]}.
start_logged() {
	local log=$1
	shift
	"$@" >>"$WORK/$log" 2>&1 &
	PIDS+=($!)
}

echo "== starting keycloaktest, the upstream, the hops ($(elapsed))" >&2
start "$WORK/cloakroom" dev --listen "$IDP" --realm-file "$WORK/realm.json"
start_logged upstream.log "$WORK/loadgen" upstream -listen "$UPSTREAM"
PID_UPSTREAM=${PIDS[-1]}
start_logged hop.log "$WORK/loadgen" hop -listen "$HOP" -upstream "http://$UPSTREAM"
PID_HOP=${PIDS[-1]}
start_logged hop-pool.log "$WORK/loadgen" hop -listen "$HOP_POOL" -upstream "http://$UPSTREAM" -buffer-pool
PID_HOP_POOL=${PIDS[-1]}
start_logged hop-identity.log "$WORK/loadgen" hop -listen "$HOP_ID" -upstream "http://$UPSTREAM" -buffer-pool -identity
PID_HOP_ID=${PIDS[-1]}
wait_http "$ISSUER/.well-known/openid-configuration"
wait_http "http://$UPSTREAM/"
wait_http "http://$HOP/"
wait_http "http://$HOP_POOL/"
wait_http "http://$HOP_ID/"

# The gateways: the default configuration (log level info, access log on,
# to stderr, which goes to a file here), except for the store and the
# logout journal's place (kept out of the working tree).
gateway_config() { # listen store issuer
	cat <<EOF
listen: $1
issuer: $3
client_id: gateway
client_secret: $SECRET
session:
  store: "$2"
  encryption_keys: ["$KEY"]
  logout_journal: "$WORK/journal-${1//:/-}"
EOF
	[ "$ACCESS_LOG" = off ] && echo "log: {access_log: false}"
	cat <<EOF
routes:
  - {name: api, path: /api, mode: api, upstream: "http://$UPSTREAM"}
  - {name: app, path: /, upstream: "http://$UPSTREAM"}
EOF
}
# Two gateways per store: "1" serves the one-session rows (and, for memory,
# the bearer row), "n" the SESSIONS-session rows, so that one's RSS is not
# the other's. Each "n" gateway has a keycloaktest of its own: keycloaktest
# walks all its user sessions on every login (realm.go, pruneLocked), so one
# shared by 3 × SESSIONS logins would slow the logins down more and more.
STORES=(memory sqlite)
if redis-cli -u "redis://$REDIS/7" ping >/dev/null 2>&1; then
	STORES+=(redis)
	REDIS_ROW=1
else
	echo "Redis does not answer at $REDIS: skipping the Redis rows" >&2
fi
declare -A GW PID_GW IDP_N
port=17101
idp_port=17081
for st in "${STORES[@]}"; do
	if [ "$SESSIONS" -gt 1 ]; then
		IDP_N[$st]=127.0.0.1:$idp_port
		start "$WORK/cloakroom" dev --listen "${IDP_N[$st]}" --realm-file "$WORK/realm.json"
		idp_port=$((idp_port + 1))
	fi
	for k in 1 n; do
		issuer=$ISSUER
		[ "$k" = n ] && issuer=http://${IDP_N[$st]:-$IDP}/realms/bench
		case $st in
		memory) url="memory:" ;;
		sqlite) url="sqlite:$WORK/sessions-$k.db" ;;
		redis) url="redis://$REDIS/7?prefix=$PREFIX$k:" ;;
		esac
		if [ "$k" = n ] && [ "$SESSIONS" -le 1 ]; then continue; fi
		GW[$st-$k]=127.0.0.1:$port
		gateway_config "${GW[$st-$k]}" "$url" "$issuer" >"$WORK/gw-$st-$k.yaml"
		start_logged "gw-$st-$k.log" "$WORK/cloakroom" serve --config "$WORK/gw-$st-$k.yaml"
		PID_GW[$st-$k]=${PIDS[-1]}
		port=$((port + 1))
	done
done
if [ -n "${BASELINE:-}" ]; then
	GW_BASE=127.0.0.1:17190
	gateway_config "$GW_BASE" "memory:" "$ISSUER" >"$WORK/gw-baseline.yaml"
	start_logged gw-baseline.log "$WORK/cloakroom-baseline" serve --config "$WORK/gw-baseline.yaml"
	PID_GW_BASE=${PIDS[-1]}
	GW[baseline]=$GW_BASE
fi
if [ -x "$WORK/oauth2-proxy" ]; then
	o2p_log=()
	[ "$ACCESS_LOG" = off ] && o2p_log=(--request-logging=false)
	start_logged o2p.log "$WORK/oauth2-proxy" --provider=keycloak-oidc --oidc-issuer-url="$ISSUER" \
		--client-id=gateway --client-secret="$SECRET" --code-challenge-method=S256 \
		--cookie-secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" --cookie-secure=false \
		--http-address="$O2P" --redirect-url="http://$O2P/oauth2/callback" --upstream="http://$UPSTREAM" \
		--email-domain='*' --skip-provider-button=true "${o2p_log[@]}"
	PID_O2P=${PIDS[-1]}
fi
for k in "${!IDP_N[@]}"; do wait_http "http://${IDP_N[$k]}/realms/bench/.well-known/openid-configuration"; done
for k in "${!GW[@]}"; do wait_http "http://${GW[$k]}/_cloakroom/readyz"; done
[ -x "$WORK/oauth2-proxy" ] && wait_http "http://$O2P/ping"

echo "== logging in once through each ($(elapsed))" >&2
for k in "${!GW[@]}"; do
	"$WORK/loadgen" login -url "http://${GW[$k]}/" >"$WORK/cookie-$k"
done
[ -x "$WORK/oauth2-proxy" ] && "$WORK/loadgen" login -url "http://$O2P/" >"$WORK/cookie-o2p"
TOKEN=$("$WORK/loadgen" token -token-url "$ISSUER/protocol/openid-connect/token" -client-id gateway -client-secret "$SECRET")

# The targets: name, URL, PID, and "H:header" or "C:cookie file".
T_NAME=() T_URL=() T_PID=() T_ARG=()
target() { T_NAME+=("$1") T_URL+=("$2") T_PID+=("$3") T_ARG+=("$4"); }
target "upstream direct" "http://$UPSTREAM/" "$PID_UPSTREAM" "H:X-Bench: 1"
target "bare hop" "http://$HOP/" "$PID_HOP" "H:X-Bench: 1"
target "bare hop, pooled buffer (floor)" "http://$HOP_POOL/" "$PID_HOP_POOL" "H:X-Bench: 1"
# The floor again, sent the same request as the cloakroom rows (the
# session cookie; the bearer token, 1.1 kB, which a hop passes on to the
# upstream as the gateway does): what those bytes cost any proxy, and the
# upstream and the load generator sharing the cores with it.
target "bare hop, pooled buffer, + session cookie" "http://$HOP_POOL/" "$PID_HOP_POOL" "C:$WORK/cookie-memory-1"
target "bare hop, pooled buffer, + bearer token" "http://$HOP_POOL/" "$PID_HOP_POOL" "H:Authorization: Bearer $TOKEN"
# And a hop (`loadgen hop -identity`) that also forwards what the gateway
# adds for a logged-in user (X-Real-Ip, X-Forwarded-User, -Email,
# -Preferred-Username, -Roles) and drops the cookie, as the gateway does:
# what forwarding an identity costs, whoever computes it.
target "bare hop, pooled buffer, + session cookie, + identity headers" "http://$HOP_ID/" "$PID_HOP_ID" "C:$WORK/cookie-memory-1"
target "bare hop, pooled buffer, + bearer token, + identity headers" "http://$HOP_ID/" "$PID_HOP_ID" "H:Authorization: Bearer $TOKEN"
for st in "${STORES[@]}"; do
	target "cloakroom, session, $st" "http://${GW[$st-1]}/" "${PID_GW[$st-1]}" "C:$WORK/cookie-$st-1"
done
target "cloakroom, bearer token" "http://${GW[memory-1]}/api/" "${PID_GW[memory-1]}" "H:Authorization: Bearer $TOKEN"
if [ -n "${BASELINE:-}" ]; then
	target "cloakroom @$BASELINE_REV (baseline), session, memory" "http://$GW_BASE/" "$PID_GW_BASE" "C:$WORK/cookie-baseline"
	target "cloakroom @$BASELINE_REV (baseline), bearer token" "http://$GW_BASE/api/" "$PID_GW_BASE" "H:Authorization: Bearer $TOKEN"
fi
[ -x "$WORK/oauth2-proxy" ] && target "oauth2-proxy $OAUTH2_PROXY_VERSION, cookie" "http://$O2P/" "$PID_O2P" "C:$WORK/cookie-o2p"

# drain_logs empties the gateways' and oauth2-proxy's logs (access logs),
# keeping their warnings and errors in $WORK/servers.log, and prints how
# many bytes they held.
drain_logs() {
	local f n=0
	for f in "$WORK"/gw-*.log "$WORK/o2p.log"; do
		[ -f "$f" ] || continue
		n=$((n + $(stat -c %s "$f")))
		grep -aE '"level":"(WARN|ERROR)"|level=(WARN|ERROR)' "$f" >>"$WORK/servers.log" || true
		: >"$f"
	done
	echo "$n"
}

# measure ROUND NAME URL PID ARG [DURATION]: one closed-loop run, its JSON
# line (with the round, and the bytes logged meanwhile) appended to
# $WORK/results.jsonl and summarised on stderr.
SEQ=0
measure() {
	local round=$1 name=$2 url=$3 pid=$4 arg=$5 dur=${6:-$DURATION} extra=()
	case $arg in
	H:*) extra=(-H "${arg#H:}") ;;
	C:*) extra=(-cookies "${arg#C:}") ;;
	esac
	# The runs over SESSIONS sessions may warm up for longer (SCALE_WARMUP):
	# a session's periodic store work (its cache TTL, its expiry extended
	# once a minute) then falls at its steady rate, instead of all at the
	# start of a short run that follows minutes of idleness.
	# The warm-up (1 s, or SCALE_WARMUP) is a run of its own, so that the
	# log bytes below count the measured requests' lines only.
	local warm=1s
	case $name in
	*" $SESSIONS sessions") warm=$SCALE_WARMUP ;;
	esac
	"$WORK/loadgen" run -name "$name (warm-up)" -url "$url" "${extra[@]}" -concurrency "$CONCURRENCY" -duration "$warm" -warmup 0s >/dev/null
	local out logb
	drain_logs >/dev/null
	out=$("$WORK/loadgen" run -name "$name" -url "$url" "${extra[@]}" -pid "$pid" -concurrency "$CONCURRENCY" -duration "$dur" -warmup 0s)
	logb=$(drain_logs)
	out=${out%\}}
	out="$out,\"log_bytes\":$logb}"
	SEQ=$((SEQ + 1))
	printf '{"round":%s,"seq":%s,"run":%s}\n' "$round" "$SEQ" "$out" >>"$WORK/results.jsonl"
	python3 -c '
import json, sys
r = json.loads(sys.argv[1])
err = "  ERRORS %d (first bad status %s)" % (r["errors"], r.get("first_bad_status")) if r["errors"] else ""
print("  %-48s %8s req/s  p50 %.2f ms  p99 %.2f ms  CPU %.1f µs/req  RSS %.1f MiB  log %.0f B/req%s" % (
    r["name"], format(round(r["rps"]), ","), r["p50_ms"], r["p99_ms"], r.get("cpu_us_per_req", 0), r.get("rss_kb", 0) / 1024,
    r["log_bytes"] / max(r["requests"], 1), err),
    file=sys.stderr)' "$out"
}

if [ "$SESSIONS" -gt 1 ]; then
	echo "== $SESSIONS sessions per store ($(elapsed))" >&2
	# The RSS with one session: after a short run with it, before the
	# logins.
	for st in "${STORES[@]}"; do
		measure 0 "baseline $st, 1 session" "http://${GW[$st-n]}/" "${PID_GW[$st-n]}" "C:$WORK/cookie-$st-n" 3s
	done
	echo "  logging in $SESSIONS browsers through each of the ${#STORES[@]} gateways, at the same time (the real login flow, $LOGIN_CONCURRENCY at a time per gateway)" >&2
	lp=()
	for st in "${STORES[@]}"; do
		(
			t=$(date +%s.%N)
			"$WORK/loadgen" login -n "$SESSIONS" -concurrency "$LOGIN_CONCURRENCY" -url "http://${GW[$st-n]}/" 2>&1 >"$WORK/cookies-$st-n" | sed -u "s/^ */  [$st] /" >&2
			python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t" "$(date +%s.%N)" >"$WORK/login-seconds-$st"
		) &
		lp+=($!)
	done
	for p in "${lp[@]}"; do wait "$p"; done
	for st in "${STORES[@]}"; do
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID_GW[$st-n]}/status")
		printf '{"round":0,"run":{"name":"logins %s","logins":%s,"seconds":%s,"rss_kb":%s}}\n' "$st" "$SESSIONS" "$(cat "$WORK/login-seconds-$st")" "$rss" >>"$WORK/results.jsonl"
		target "cloakroom, session, $st, $SESSIONS sessions" "http://${GW[$st-n]}/" "${PID_GW[$st-n]}" "C:$WORK/cookies-$st-n"
	done
fi

N=${#T_NAME[@]}
FLOOR_I=2 # "bare hop, pooled buffer (floor)" (the third target above)
run_floor() { measure "$1" "${T_NAME[$FLOOR_I]}" "${T_URL[$FLOOR_I]}" "${T_PID[$FLOOR_I]}" "${T_ARG[$FLOOR_I]}"; }
if [ "$PAIRED" = 1 ]; then
	echo "== $ROUNDS rounds of $((N - 1)) targets, each between two runs of the floor; $CONCURRENCY clients for $DURATION each ($(elapsed))" >&2
else
	echo "== $ROUNDS rounds of $N targets, $CONCURRENCY clients for $DURATION each ($(elapsed))" >&2
fi
for r in $(seq 1 "$ROUNDS"); do
	echo "== round $r/$ROUNDS ($(elapsed))" >&2
	for j in $(seq 0 $((N - 1))); do
		i=$(((j + r - 1) % N))
		if [ "$PAIRED" = 1 ]; then
			[ "$i" = "$FLOOR_I" ] && continue
			run_floor "$r"
		fi
		measure "$r" "${T_NAME[$i]}" "${T_URL[$i]}" "${T_PID[$i]}" "${T_ARG[$i]}"
	done
	if [ "$PAIRED" = 1 ]; then run_floor "$r"; fi
done
echo "== done ($(elapsed))" >&2
if [ -s "$WORK/servers.log" ] && grep -qaE 'WARN|ERROR' "$WORK/servers.log"; then
	echo "== warnings and errors logged by the servers (first 20):" >&2
	grep -aE 'WARN|ERROR' "$WORK/servers.log" | head -20 >&2
fi

python3 - "$WORK/results.jsonl" "$SESSIONS" "$CONCURRENCY" "$DURATION" "$ROUNDS" "$PAIRED" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sessions, conc, dur, nrounds, paired = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1"
FLOOR = "bare hop, pooled buffer (floor)"
med = statistics.median
runs = [(r["round"], r.get("seq", 0), r["run"]) for r in rows if r["round"] > 0]
names = []
for rr, _, x in runs:
    if rr == 1 and x["name"] not in names:
        names.append(x["name"])
order = [n for n in names if " sessions" not in n] + [n for n in names if " sessions" in n]
# by[name][round]: that target's run in that round, with its seq;
# floors[round][seq]: the floor's runs (several per round when paired).
by, floors = {}, {}
for rr, sq, x in runs:
    if x["name"] == FLOOR:
        floors.setdefault(rr, {})[sq] = x
    by.setdefault(x["name"], {})[rr] = dict(x, seq=sq)
def ref(rr, sq, key):
    """The floor a run is divided by: paired, the mean of the floor's runs
    just before and just after it; otherwise the floor's run of the round."""
    fl = floors.get(rr, {})
    near = [fl[s][key] for s in (sq - 1, sq + 1) if s in fl] if paired else []
    if near:
        return sum(near) / len(near)
    return next(iter(fl.values()))[key] if fl else float("nan")
def ratio(name, rr, key):
    x = by[name][rr]
    if name == FLOOR:
        return 1.0
    d = ref(rr, x["seq"], key)
    return x[key] / d if d else float("nan")
def stat(name, key):
    if name == FLOOR:
        vals = [x[key] for fl in floors.values() for x in fl.values()]
    else:
        vals = [x[key] for x in by[name].values()]
    ratios = [ratio(name, rr, key) for rr in by[name]]
    return med(vals), med(ratios), min(ratios), max(ratios)
against = ("the mean of the floor's two runs just before and just after it (the same round)" if paired
           else "the pooled bare hop of the same round")
print(f"\nClosed loop, {conc} clients, {dur} per run, {nrounds} rounds; median over rounds, and median (min–max) of the per-round ratio to {against}.\n")
print("| target | req/s | × floor | p50 | × floor | p99 | × floor | CPU per request | × floor | RSS at end | × floor | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in order:
    rps, p50, p99, cpu, rss = (stat(n, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_kb"))
    errs = sum(x["errors"] for x in by[n].values()) if n != FLOOR else sum(x["errors"] for fl in floors.values() for x in fl.values())
    label = f"**{n}**" if n.startswith("cloakroom") else n
    print(f"| {label} | {rps[0]:,.0f} | {rps[1]:.2f} ({rps[2]:.2f}–{rps[3]:.2f}) "
          f"| {p50[0]:.2f} ms | {p50[1]:.2f} ({p50[2]:.2f}–{p50[3]:.2f}) "
          f"| {p99[0]:.2f} ms | {p99[1]:.2f} ({p99[2]:.2f}–{p99[3]:.2f}) "
          f"| {cpu[0]:.0f} µs | {cpu[1]:.2f} ({cpu[2]:.2f}–{cpu[3]:.2f}) "
          f"| {rss[0]/1024:.1f} MiB | {rss[1]:.2f} ({rss[2]:.2f}–{rss[3]:.2f}) | {errs} |")
# Like for like: each cloakroom row against the floor sent the same
# request (cookie or token) in the same round, each as its ratio to the
# floor (so, paired, each against its own neighbouring floor runs).
SAME = {"session": "bare hop, pooled buffer, + session cookie", "bearer": "bare hop, pooled buffer, + bearer token"}
like = [(n, ref) for n in order if n.startswith("cloakroom") and " sessions" not in n
        for ref in (SAME["bearer" if "bearer" in n else "session"], SAME["bearer" if "bearer" in n else "session"] + ", + identity headers")
        if ref in by]
if like:
    print(f"\nLike for like: each row against the pooled bare hop sent the same request (the same Cookie or Authorization header), and against that hop also forwarding the identity headers the gateway adds, in the same round, each first divided by {against}; median (min–max) of the per-round ratio.\n")
    print("| target | against | req/s | × | p99 | × | CPU per request | × |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, rn in like:
        cells = []
        for key in ("rps", "p99_ms", "cpu_us_per_req"):
            rs = [ratio(n, rr, key) / ratio(rn, rr, key) for rr in by[n] if rr in by[rn]]
            cells.append(f"{med([x[key] for x in by[n].values()]):,.{0 if key != 'p99_ms' else 2}f} | {med(rs):.2f} ({min(rs):.2f}–{max(rs):.2f})")
        print(f"| **{n}** | {rn.removeprefix('bare hop, pooled buffer, ')} | " + " | ".join(cells) + " |")
scale = [n for n in order if " sessions" in n]
def scale_ratios(n, key):
    """Per round: the SESSIONS-session row over the same store's 1-session
    row, each first divided by its floor."""
    one = "cloakroom, session, " + n.split(", ")[2]
    return [ratio(n, r, key) / ratio(one, r, key) for r in by[n] if r in by.get(one, {})]
if scale:
    base = {x["name"].split(", ")[0].removeprefix("baseline "): x for rr, x in ((r["round"], r["run"]) for r in rows) if rr == 0 and x["name"].startswith("baseline")}
    logins = {x["name"].removeprefix("logins "): x for rr, x in ((r["round"], r["run"]) for r in rows) if rr == 0 and x["name"].startswith("logins")}
    print(f"\n1 session against {sessions:,} sessions (cookies round-robin, one per request): median over rounds, and median (min–max) of the per-round ratio" + (", each first divided by its neighbouring floor runs" if paired else "") + ".\n")
    print(f"| store | req/s, 1 | req/s, {sessions:,} | ratio | p99, 1 | p99, {sessions:,} | ratio | logins/s (stores at once) | RSS, 1 session | after the logins | after a run over all | growth per session |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in scale:
        st = n.split(", ")[2]
        one = by[f"cloakroom, session, {st}"]
        many = by[n]
        rps_r, p99_r = scale_ratios(n, "rps"), scale_ratios(n, "p99_ms")
        rss1 = base[st]["rss_kb"]
        rss_login = logins[st]["rss_kb"]
        rss_all = med([x["rss_kb"] for x in many.values()])
        per = (rss_all - rss1) * 1024 / sessions
        print(f"| {st} | {med([x['rps'] for x in one.values()]):,.0f} | {med([x['rps'] for x in many.values()]):,.0f} "
              f"| {med(rps_r):.2f} ({min(rps_r):.2f}–{max(rps_r):.2f}) "
              f"| {med([x['p99_ms'] for x in one.values()]):.2f} ms | {med([x['p99_ms'] for x in many.values()]):.2f} ms "
              f"| {med(p99_r):.2f} ({min(p99_r):.2f}–{max(p99_r):.2f}) "
              f"| {logins[st]['logins'] / logins[st]['seconds']:.0f} "
              f"| {rss1/1024:.1f} MiB | {rss_login/1024:.1f} MiB | {rss_all/1024:.1f} MiB | {per:,.0f} B |")
# The issue's goals, from this run's medians of the ratios above.
goals = []
sess = [n for n in order if n.startswith("cloakroom, session, ") and " sessions" not in n]
for n in sess:
    goals.append((f"{n}: req/s ≥ 0.85× floor", stat(n, "rps")[1], lambda v: v >= 0.85))
    goals.append((f"{n}: p99 ≤ 1.2× floor", stat(n, "p99_ms")[1], lambda v: v <= 1.2))
if "cloakroom, bearer token" in by:
    goals.append(("cloakroom, bearer token: req/s ≥ 0.8× floor", stat("cloakroom, bearer token", "rps")[1], lambda v: v >= 0.8))
for n in scale:
    goals.append((f"{n.split(', ')[2]}: req/s at {sessions:,} sessions within 5 % of 1 session", med(scale_ratios(n, "rps")), lambda v: abs(v - 1) <= 0.05))
if goals:
    print("\nGoals (bench/README.md, issue 16), from this run:\n")
    print("| goal | median ratio | met |")
    print("| --- | ---: | --- |")
    for g, v, ok in goals:
        print(f"| {g} | {v:.3f} | {'yes' if ok(v) else 'no'} |")
EOF
