#!/usr/bin/env bash
# Runs `cloakroom serve` (SQLite store, the default) in a control group
# with a memory limit, as a container would, logs SESSIONS browsers in
# through the real login flow, then sends DURATION of requests round-robin
# over every session, and reports whether the gateway survived, its peak
# memory, its RSS and its throughput. It does this for the working tree
# and for BASELINE (a commit before the gateway gave the Go runtime a soft
# memory limit below the group's), one after the other.
#
#   bench/memory-limit.sh                      # LIMIT=200M SESSIONS=12000 DURATION=20s BASELINE=7ca700e
#   LIMIT=400M SESSIONS=12000 bench/memory-limit.sh   # plenty of memory: the cost of the limit
#
# Needs root and a writable cgroup file system (v1 or v2), Go, python3,
# curl. Ports 17300-17399 on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

LIMIT=${LIMIT:-200M}
SESSIONS=${SESSIONS:-12000}
DURATION=${DURATION:-20s}
CONCURRENCY=${CONCURRENCY:-16}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-16}
BASELINE=${BASELINE:-7ca700e}
SECRET=bench-memory-secret
KEY=$(head -c 32 /dev/urandom | base64)
WORK=$(mktemp -d)
PIDS=()
GROUPS_MADE=()
cleanup() {
	stop_started
	for g in "${GROUPS_MADE[@]}"; do rmdir "$g" 2>/dev/null || true; done
	git worktree remove --force "$WORK/baseline-src" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

limit_bytes=$(numfmt --from=iec "$LIMIT")
if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
	CG=v1 CG_ROOT=/sys/fs/cgroup/memory
elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
	CG=v2 CG_ROOT=/sys/fs/cgroup
else
	echo "no writable memory controller under /sys/fs/cgroup" >&2
	exit 1
fi

echo "== building the working tree and $BASELINE ($CG control groups, limit $LIMIT)" >&2
go build -o "$WORK/cloakroom-current" ./cmd/cloakroom
(cd bench && go build -o "$WORK/loadgen" ./loadgen)
git worktree add --detach -q "$WORK/baseline-src" "$BASELINE"
(cd "$WORK/baseline-src" && go build -o "$WORK/cloakroom-baseline" ./cmd/cloakroom)
write_realm
start "$WORK/loadgen" upstream -listen 127.0.0.1:17390
wait_http http://127.0.0.1:17390/

# group_stat GROUP: peak memory and OOM kills of the group, as "PEAK KILLS".
group_stat() {
	if [ "$CG" = v1 ]; then
		echo "$(cat "$1/memory.max_usage_in_bytes") $(awk '$1 == "oom_kill" {print $2}' "$1/memory.oom_control")"
	else
		echo "$(cat "$1/memory.peak" 2>/dev/null || echo 0) $(awk '$1 == "oom_kill" {print $2}' "$1/memory.events")"
	fi
}

port=17301
for build in baseline current; do
	echo "== $build: keycloaktest and the gateway in a group limited to $LIMIT" >&2
	idp=127.0.0.1:$((port + 50))
	start "$WORK/cloakroom-current" dev --listen "$idp" --realm-file "$WORK/realm.json"
	wait_http "http://$idp/realms/bench/.well-known/openid-configuration"
	gw=127.0.0.1:$port
	cat >"$WORK/gw-$build.yaml" <<EOF
listen: $gw
issuer: http://$idp/realms/bench
client_id: gateway
client_secret: $SECRET
session:
  store: "sqlite:$WORK/sessions-$build.db"
  encryption_keys: ["$KEY"]
routes:
  - {name: app, path: /, upstream: "http://127.0.0.1:17390"}
EOF
	group=$CG_ROOT/cloakroom-bench-$$-$build
	mkdir "$group"
	GROUPS_MADE+=("$group")
	if [ "$CG" = v1 ]; then
		echo "$limit_bytes" >"$group/memory.limit_in_bytes"
	else
		echo "$limit_bytes" >"$group/memory.max"
		echo 0 >"$group/memory.swap.max" 2>/dev/null || true
	fi
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$group" \
		"$WORK/cloakroom-$build" serve --config "$WORK/gw-$build.yaml" >"$WORK/gw-$build.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_http "http://$gw/_cloakroom/healthz"
	grep -h "memory limit" "$WORK/gw-$build.log" | sed 's/^/  log: /' >&2 || true
	t0=$(date +%s)
	echo "  logging in $SESSIONS browsers ($LOGIN_CONCURRENCY at a time)" >&2
	"$WORK/loadgen" login -n "$SESSIONS" -concurrency "$LOGIN_CONCURRENCY" -url "http://$gw/" \
		>"$WORK/cookies-$build" 2>"$WORK/login-$build.log" || true
	logged=$(wc -l <"$WORK/cookies-$build")
	echo "  $logged logged in, $(($(date +%s) - t0)) s" >&2
	run='{}'
	if kill -0 "$pid" 2>/dev/null && [ "$logged" -gt 0 ]; then
		run=$("$WORK/loadgen" run -name "$build" -url "http://$gw/" -cookies "$WORK/cookies-$build" \
			-pid "$pid" -concurrency "$CONCURRENCY" -duration "$DURATION" 2>>"$WORK/run-$build.log" || echo '{}')
	fi
	alive=yes
	kill -0 "$pid" 2>/dev/null || alive=no
	rss_kb=0
	[ "$alive" = yes ] && rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	read -r peak kills < <(group_stat "$group")
	printf '{"build":"%s","sessions":%s,"alive":"%s","rss_kb":%s,"peak":%s,"oom_kills":%s,"run":%s}\n' \
		"$build" "$logged" "$alive" "$rss_kb" "$peak" "${kills:-0}" "$run" >>"$WORK/results.jsonl"
	tail -1 "$WORK/results.jsonl" | sed 's/^/  /' >&2
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	port=$((port + 1))
done

python3 - "$WORK/results.jsonl" "$LIMIT" "$SESSIONS" "$DURATION" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nLimit {sys.argv[2]}, {int(sys.argv[3]):,} sessions asked for, {sys.argv[4]} round-robin over all of them.\n")
print("| build | sessions logged in | survived | OOM kills | peak of the group | RSS at the end | req/s | p99 | errors |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    run = r["run"] or {}
    rps = f'{round(run["rps"]):,}' if "rps" in run else "–"
    p99 = f'{run["p99_ms"]:.1f} ms' if "p99_ms" in run else "–"
    print(f'| {r["build"]} | {r["sessions"]:,} | {r["alive"]} | {r["oom_kills"]} | {r["peak"]/2**20:.0f} MiB | '
          f'{r["rss_kb"]/1024:.0f} MiB | {rps} | {p99} | {run.get("errors", "–")} |')
EOF
