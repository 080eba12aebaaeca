#!/usr/bin/env bash
# Gateway load test: requests through `cloakroom serve` (session cookie with
# the SQLite and the Redis store, and bearer tokens) against the upstream
# directly and against oauth2-proxy on the same upstream, in one run, on
# this machine's loopback only.
#
#   bench/gateway-load.sh                 # DURATION=10s RATE=1000 CONCURRENCY=32
#   SKIP_OAUTH2_PROXY=1 bench/gateway-load.sh
#
# oauth2-proxy is built into a temporary folder from the Go module proxy
# (pinned v7.15.3) and never committed. Needs: Go, redis-server running on
# 127.0.0.1:6379 (for the Redis row), python3 (to print the table).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
CONCURRENCY=${CONCURRENCY:-32}
OAUTH2_PROXY_VERSION=v7.15.3
scratch_work

IDP=127.0.0.1:18080
UPSTREAM=127.0.0.1:19000
GW_SQLITE=127.0.0.1:18001
GW_REDIS=127.0.0.1:18002
O2P=127.0.0.1:18003
SECRET=bench-gateway-secret
ISSUER=http://$IDP/realms/bench
KEY=$(head -c 32 /dev/urandom | base64)

echo "== building (cloakroom, loadgen)" >&2
go build -o "$WORK/cloakroom" ./cmd/cloakroom
(cd bench && go build -o "$WORK/loadgen" ./loadgen)
if [ -z "${SKIP_OAUTH2_PROXY:-}" ]; then
	build_oauth2_proxy "$OAUTH2_PROXY_VERSION"
fi

write_realm

echo "== starting keycloaktest, the upstream and the gateways" >&2
start "$WORK/cloakroom" dev --listen "$IDP" --realm-file "$WORK/realm.json"
start "$WORK/loadgen" upstream -listen "$UPSTREAM"
wait_http "$ISSUER/.well-known/openid-configuration"
wait_http "http://$UPSTREAM/"

gateway_config() { # listen store
	cat <<EOF
listen: $1
issuer: $ISSUER
client_id: gateway
client_secret: $SECRET
session:
  store: "$2"
  encryption_keys: ["$KEY"]
log: {level: warn, access_log: false}
routes:
  - {name: api, path: /api, mode: api, upstream: "http://$UPSTREAM"}
  - {name: app, path: /, upstream: "http://$UPSTREAM"}
EOF
}
gateway_config "$GW_SQLITE" "sqlite:$WORK/sessions.db" >"$WORK/gw-sqlite.yaml"
start "$WORK/cloakroom" serve --config "$WORK/gw-sqlite.yaml"
REDIS_ROW=""
if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
	gateway_config "$GW_REDIS" "redis://127.0.0.1:6379/0" >"$WORK/gw-redis.yaml"
	start "$WORK/cloakroom" serve --config "$WORK/gw-redis.yaml"
	REDIS_ROW=1
else
	echo "Redis is not running on 127.0.0.1:6379: skipping the Redis row" >&2
fi
if [ -x "$WORK/oauth2-proxy" ]; then
	start "$WORK/oauth2-proxy" --provider=keycloak-oidc --oidc-issuer-url="$ISSUER" \
		--client-id=gateway --client-secret="$SECRET" --code-challenge-method=S256 \
		--cookie-secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" --cookie-secure=false \
		--http-address="$O2P" --redirect-url="http://$O2P/oauth2/callback" --upstream="http://$UPSTREAM" \
		--email-domain='*' --skip-provider-button=true --request-logging=false --auth-logging=false --standard-logging=false
fi
wait_http "http://$GW_SQLITE/_cloakroom/readyz"
[ -n "$REDIS_ROW" ] && wait_http "http://$GW_REDIS/_cloakroom/readyz"
[ -x "$WORK/oauth2-proxy" ] && wait_http "http://$O2P/ping"

echo "== logging in" >&2
COOKIE_SQLITE=$("$WORK/loadgen" login -url "http://$GW_SQLITE/")
[ -n "$REDIS_ROW" ] && COOKIE_REDIS=$("$WORK/loadgen" login -url "http://$GW_REDIS/")
[ -x "$WORK/oauth2-proxy" ] && COOKIE_O2P=$("$WORK/loadgen" login -url "http://$O2P/")
TOKEN=$("$WORK/loadgen" token -token-url "$ISSUER/protocol/openid-connect/token" -client-id gateway -client-secret "$SECRET")

measure() { # name url [header]
	local name=$1 url=$2
	shift 2
	local hdr=()
	[ $# -gt 0 ] && hdr=(-H "$1")
	echo "== $name: $RATE req/s for $DURATION, then $CONCURRENCY clients for $DURATION" >&2
	"$WORK/loadgen" run -name "$name" -url "$url" "${hdr[@]}" -rate "$RATE" -duration "$DURATION" >>"$WORK/results.jsonl"
	"$WORK/loadgen" run -name "$name" -url "$url" "${hdr[@]}" -concurrency "$CONCURRENCY" -duration "$DURATION" >>"$WORK/results.jsonl"
}
measure "upstream direct" "http://$UPSTREAM/"
measure "cloakroom, session, SQLite" "http://$GW_SQLITE/" "Cookie: $COOKIE_SQLITE"
[ -n "$REDIS_ROW" ] && measure "cloakroom, session, Redis" "http://$GW_REDIS/" "Cookie: $COOKIE_REDIS"
measure "cloakroom, bearer token" "http://$GW_SQLITE/api/" "Authorization: Bearer $TOKEN"
[ -x "$WORK/oauth2-proxy" ] && measure "oauth2-proxy $OAUTH2_PROXY_VERSION, cookie" "http://$O2P/" "Cookie: $COOKIE_O2P"

python3 - "$WORK/results.jsonl" "$RATE" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = sys.argv[2]
fixed = {r["name"]: r for r in rows if r["mode"].startswith("open")}
maxed = {r["name"]: r for r in rows if r["mode"].startswith("closed")}
base = fixed.get("upstream direct")
o2p = next((maxed[n] for n in maxed if n.startswith("oauth2-proxy")), None)
print(f"| path | p50 at {rate} req/s | p99 | added p50 | max req/s | vs oauth2-proxy | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, f in fixed.items():
    m = maxed[name]
    added = f"{f['p50_ms'] - base['p50_ms']:+.3f} ms" if base and name != "upstream direct" else "—"
    ratio = f"{m['rps'] / o2p['rps']:.2f}×" if o2p and not name.startswith("upstream") else "—"
    errs = f["errors"] + m["errors"]
    print(f"| {name} | {f['p50_ms']:.3f} ms | {f['p99_ms']:.3f} ms | {added} | {m['rps']:,.0f} | {ratio} | {errs} |")
EOF
