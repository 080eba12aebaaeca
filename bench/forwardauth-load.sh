#!/usr/bin/env bash
# Forward-auth load test: nginx auth_request in front of one upstream, with
# the subrequest answered by `cloakroom serve` (forward_auth: true,
# GET /_cloakroom/auth) or by oauth2-proxy (/oauth2/auth, --reverse-proxy,
# --set-xauthrequest, cookie session), against nginx → upstream with no auth
# (the baseline), in interleaved rounds, on this machine's loopback only.
#
#   bench/forwardauth-load.sh        # ROUNDS=3 DURATION=10s RATE=1000 CONNS=32
#
# Per round and per path (the order rotates every round):
#   1. open loop, RATE req/s for DURATION (bench/loadgen; latency measured
#      from the scheduled send time, so no coordinated omission): p50, p99;
#   2. closed loop, wrk with CONNS connections for DURATION: requests/s, and
#      the CPU the auth service and the nginx workers used meanwhile
#      (/proc/PID/stat utime+stime) divided by wrk's request count.
# Each figure is also given as a ratio to the baseline of the same round.
#
# Every request carries a live session cookie (a browser logged in once
# through nginx and keycloaktest's login form), so the hot path is measured;
# nginx answers 401 with a redirect to the login, so every measurement is
# followed by a check that the cookie still gets 200 and an identity.
#
# oauth2-proxy is built into a temporary folder from the Go module proxy
# (pinned v7.15.3) and never committed. Needs: Go, nginx (auth_request
# module), wrk, python3. STORE (default sqlite in the temporary folder) is
# the gateway's session store; NGINX_WORKERS (default 2), WRK_THREADS
# (default 2); KEEPALIVE=0 makes nginx open a new connection for every
# subrequest and upstream request (the default keeps them alive, for all
# three paths); OAUTH2_PROXY=/path/to/binary skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
CONNS=${CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-2}
NGINX=${NGINX:-/usr/sbin/nginx}
KEEPALIVE=${KEEPALIVE:-1}
OAUTH2_PROXY_VERSION=v7.15.3
WORK=$(mktemp -d)
chmod 755 "$WORK" # nginx workers may run as another user
STORE=${STORE:-sqlite:$WORK/sessions.db}
PIDS=()
cleanup() {
	[ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null
	stop_started
	rm -rf "$WORK"
}
trap cleanup EXIT

for tool in "$NGINX" wrk python3 go curl; do
	command -v "$tool" >/dev/null || { echo "missing: $tool (wrk: apt-get install -y wrk)" >&2; exit 1; }
done

IDP=127.0.0.1:18180
UPSTREAM=127.0.0.1:19100
CR=127.0.0.1:18201  # cloakroom serve, forward_auth
O2P=127.0.0.1:18203 # oauth2-proxy
NG_BASE=127.0.0.1:18210
NG_CR=127.0.0.1:18211
NG_O2P=127.0.0.1:18212
SECRET=bench-forwardauth-secret
ISSUER=http://$IDP/realms/bench
KEY=$(head -c 32 /dev/urandom | base64)
HZ=$(getconf CLK_TCK)

echo "== building (cloakroom, loadgen)" >&2
go build -o "$WORK/cloakroom" ./cmd/cloakroom
(cd bench && go build -o "$WORK/loadgen" ./loadgen)
if [ -n "${OAUTH2_PROXY:-}" ]; then
	cp "$OAUTH2_PROXY" "$WORK/oauth2-proxy"
else
	build_oauth2_proxy "$OAUTH2_PROXY_VERSION"
fi

write_realm

echo "== starting keycloaktest, the upstream, cloakroom, oauth2-proxy" >&2
start "$WORK/cloakroom" dev --listen "$IDP" --realm-file "$WORK/realm.json"
start "$WORK/loadgen" upstream -listen "$UPSTREAM"
wait_http "$ISSUER/.well-known/openid-configuration"
wait_http "http://$UPSTREAM/"

cat >"$WORK/cloakroom.yaml" <<EOF
listen: $CR
public_url: http://$NG_CR
issuer: $ISSUER
client_id: gateway
client_secret: $SECRET
forward_auth: true
trusted_proxies: ["127.0.0.1"]
session:
  store: "$STORE"
  encryption_keys: ["$KEY"]
log: {level: warn, access_log: false}
routes:
  - {name: app, path: /}
EOF
start "$WORK/cloakroom" serve --config "$WORK/cloakroom.yaml"
CR_PID=$!
start "$WORK/oauth2-proxy" --provider=keycloak-oidc --oidc-issuer-url="$ISSUER" \
	--client-id=gateway --client-secret="$SECRET" --code-challenge-method=S256 \
	--cookie-secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" --cookie-secure=false \
	--http-address="$O2P" --redirect-url="http://$NG_O2P/oauth2/callback" --upstream=static://202 \
	--reverse-proxy=true --set-xauthrequest=true \
	--email-domain='*' --skip-provider-button=true --request-logging=false --auth-logging=false --standard-logging=false
O2P_PID=$!

# nginx: one instance, three servers, the same upstream (kept-alive
# connections everywhere, no access log). The auth locations follow
# docs/forward-auth.md and oauth2-proxy's documented auth_request setup.
mkdir -p "$WORK/nginx/tmp"
USER_LINE=""
KA_LINE="keepalive 64; keepalive_requests 1000000;"
[ "$KEEPALIVE" = 0 ] && KA_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_requests 1000000;
  absolute_redirect off;
  proxy_http_version 1.1;

  upstream app       { server $UPSTREAM; $KA_LINE }
  upstream cloakroom { server $CR;       $KA_LINE }
  upstream o2p       { server $O2P;      $KA_LINE }

  # baseline: no auth
  server {
    listen $NG_BASE;
    location / {
      proxy_pass http://app;
      proxy_set_header Connection "";
    }
  }

  # cloakroom forward auth
  server {
    listen $NG_CR;
    location = /_cloakroom/auth {
      internal;
      proxy_pass http://cloakroom;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
    location /_cloakroom/ {
      proxy_pass http://cloakroom;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
    location @login {
      return 302 /_cloakroom/start?rd=\$scheme://\$http_host\$request_uri;
    }
    location / {
      auth_request /_cloakroom/auth;
      auth_request_set \$auth_user \$upstream_http_x_forwarded_user;
      auth_request_set \$auth_email \$upstream_http_x_forwarded_email;
      auth_request_set \$auth_username \$upstream_http_x_forwarded_preferred_username;
      auth_request_set \$auth_groups \$upstream_http_x_forwarded_groups;
      error_page 401 = @login;
      proxy_pass http://app;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-User \$auth_user;
      proxy_set_header X-Forwarded-Email \$auth_email;
      proxy_set_header X-Forwarded-Preferred-Username \$auth_username;
      proxy_set_header X-Forwarded-Groups \$auth_groups;
      add_header X-Bench-User \$auth_user always;
    }
  }

  # oauth2-proxy auth_request
  server {
    listen $NG_O2P;
    location = /oauth2/auth {
      internal;
      proxy_pass http://o2p;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Uri \$request_uri;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
    location /oauth2/ {
      proxy_pass http://o2p;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
    location @login {
      return 302 /oauth2/start?rd=\$request_uri;
    }
    location / {
      auth_request /oauth2/auth;
      auth_request_set \$auth_user \$upstream_http_x_auth_request_user;
      auth_request_set \$auth_email \$upstream_http_x_auth_request_email;
      auth_request_set \$auth_username \$upstream_http_x_auth_request_preferred_username;
      auth_request_set \$auth_groups \$upstream_http_x_auth_request_groups;
      error_page 401 = @login;
      proxy_pass http://app;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-User \$auth_user;
      proxy_set_header X-Forwarded-Email \$auth_email;
      proxy_set_header X-Forwarded-Preferred-Username \$auth_username;
      proxy_set_header X-Forwarded-Groups \$auth_groups;
      add_header X-Bench-User \$auth_user always;
    }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >>"$WORK/servers.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://$CR/_cloakroom/readyz"
wait_http "http://$O2P/ping"
wait_http "http://$NG_BASE/"

echo "== logging in through nginx" >&2
COOKIE_CR=$("$WORK/loadgen" login -url "http://$NG_CR/")
COOKIE_O2P=$("$WORK/loadgen" login -url "http://$NG_O2P/")

check() { # url cookie: 200 and an identity, or fail
	local out
	out=$(curl -sS -o /dev/null -D - -H "Cookie: $2" "$1")
	if ! grep -q '^HTTP/1.1 200' <<<"$out" || ! grep -qi '^X-Bench-User: [^[:space:]]' <<<"$out"; then
		echo "session check failed at $1:" >&2
		echo "$out" >&2
		exit 1
	fi
}
[ -n "${VERBOSE:-}" ] && curl -sS -D - -o /dev/null -H "Cookie: $COOKIE_CR" "http://$NG_CR/" >&2 && curl -sS -D - -o /dev/null -H "Cookie: $COOKIE_O2P" "http://$NG_O2P/" >&2
check "http://$NG_CR/" "$COOKIE_CR"
check "http://$NG_O2P/" "$COOKIE_O2P"

ticks() { # pid...: utime+stime, in clock ticks, summed
	local sum=0 p f
	for p in "$@"; do
		f=$(cat "/proc/$p/stat") || continue
		f=${f##*) } # after the command name
		set -- $f
		sum=$((sum + ${12} + ${13})) # fields 14 and 15 of the full line
	done
	echo "$sum"
}
nginx_workers() { cat /proc/"$NGINX_PID"/task/*/children; }

# name, url, cookie, auth pid; separated by US (\x1f): oauth2-proxy's cookie holds '|'
US=$'\x1f'
PATHS=(
	"nginx → upstream (baseline)${US}http://$NG_BASE/${US}${US}"
	"nginx + cloakroom forward auth${US}http://$NG_CR/${US}$COOKIE_CR${US}$CR_PID"
	"nginx + oauth2-proxy $OAUTH2_PROXY_VERSION /oauth2/auth${US}http://$NG_O2P/${US}$COOKIE_O2P${US}$O2P_PID"
)

echo "== warming up (wrk, 2 s per path)" >&2
for spec in "${PATHS[@]}"; do
	IFS=$US read -r name url cookie pid <<<"$spec"
	wrk -t "$WRK_THREADS" -c "$CONNS" -d 2s -H "Cookie: $cookie" "$url" >/dev/null
done

for round in $(seq "$ROUNDS"); do
	n=${#PATHS[@]}
	for i in $(seq 0 $((n - 1))); do
		spec=${PATHS[$(((i + round - 1) % n))]}
		IFS=$US read -r name url cookie pid <<<"$spec"
		echo "== round $round/$ROUNDS: $name: $RATE req/s for $DURATION, then wrk -c $CONNS for $DURATION" >&2
		"$WORK/loadgen" run -name "$name" -url "$url" -H "Cookie: $cookie" -rate "$RATE" -duration "$DURATION" |
			sed "s/^{/{\"round\":$round,/" >>"$WORK/open.jsonl"
		[ -n "$cookie" ] && check "$url" "$cookie"
		workers=$(nginx_workers)
		a0=0 a1=0
		[ -n "$pid" ] && a0=$(ticks "$pid")
		n0=$(ticks $workers)
		wrk -t "$WRK_THREADS" -c "$CONNS" -d "$DURATION" --latency -H "Cookie: $cookie" "$url" >"$WORK/wrk.out"
		[ -n "$pid" ] && a1=$(ticks "$pid")
		n1=$(ticks $workers)
		[ -n "$cookie" ] && check "$url" "$cookie"
		python3 - "$WORK/wrk.out" "$round" "$name" $((a1 - a0)) $((n1 - n0)) "$HZ" >>"$WORK/closed.jsonl" <<'EOF'
import json, re, sys
out = open(sys.argv[1]).read()
def dur(s):
    v, u = re.fullmatch(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
hz = int(sys.argv[6])
print(json.dumps({
    "round": int(sys.argv[2]), "name": sys.argv[3], "requests": reqs,
    "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
    "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0),
    "p50_ms": dur(lat["50"]), "p99_ms": dur(lat["99"]),
    "auth_cpu_us": int(sys.argv[4]) * 1e6 / hz / reqs,
    "nginx_cpu_us": int(sys.argv[5]) * 1e6 / hz / reqs,
}))
EOF
	done
done

python3 - "$WORK/open.jsonl" "$WORK/closed.jsonl" "$RATE" "$CONNS" "$DURATION" "$ROUNDS" <<'EOF'
import json, statistics, sys
opened = [json.loads(l) for l in open(sys.argv[1])]
closed = [json.loads(l) for l in open(sys.argv[2])]
rate, conns, duration, rounds = sys.argv[3:7]
names = list(dict.fromkeys(r["name"] for r in closed))
base = names[0]
O = {(r["round"], r["name"]): r for r in opened}
C = {(r["round"], r["name"]): r for r in closed}
R = sorted({r["round"] for r in closed})

print(f"\nPer round (open loop {rate} req/s for {duration}: p50/p99 from the scheduled send; "
      f"wrk -c {conns} for {duration}: req/s and CPU per request)\n")
print("| round | path | p50 | p99 | added p50 | added p99 | req/s | × baseline | auth CPU µs/req | nginx CPU µs/req | errors |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
rows = {n: [] for n in names}
for rd in R:
    b, bc = O[(rd, base)], C[(rd, base)]
    for n in names:
        o, c = O[(rd, n)], C[(rd, n)]
        v = dict(p50=o["p50_ms"], p99=o["p99_ms"], a50=o["p50_ms"] - b["p50_ms"], a99=o["p99_ms"] - b["p99_ms"],
                 r50=o["p50_ms"] / b["p50_ms"], r99=o["p99_ms"] / b["p99_ms"],
                 rps=c["rps"], xr=c["rps"] / bc["rps"], acpu=c["auth_cpu_us"], ncpu=c["nginx_cpu_us"],
                 err=o["errors"] + c["errors"])
        rows[n].append(v)
        isb = n == base
        added = lambda k: "—" if isb else f"{v[k]:+.3f} ms"
        acpu = "—" if isb else f"{v['acpu']:.1f}"
        print(f"| {rd} | {n} | {v['p50']:.3f} ms | {v['p99']:.3f} ms | {added('a50')} | {added('a99')} | "
              f"{v['rps']:,.0f} | {v['xr']:.2f} | {acpu} | {v['ncpu']:.1f} | {v['err']} |")

def med(n, k, fmt):
    xs = [v[k] for v in rows[n]]
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"
ms = lambda x: f"{x:.3f}"
sms = lambda x: f"{x:+.3f}"
rat = lambda x: f"{x:.2f}×"
num = lambda x: f"{x:,.0f}"
us = lambda x: f"{x:.1f}"
print(f"\nMedian (min–max) of {len(R)} rounds; ratios are to the baseline of the same round\n")
print("| path | p50 ms | added p50 ms | p50 × baseline | p99 ms | added p99 ms | p99 × baseline | req/s | req/s × baseline | auth CPU µs/req | nginx CPU µs/req |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in names:
    isb = n == base
    d = "—"
    print(f"| {n} | {med(n,'p50',ms)} | {d if isb else med(n,'a50',sms)} | {d if isb else med(n,'r50',rat)} | "
          f"{med(n,'p99',ms)} | {d if isb else med(n,'a99',sms)} | {d if isb else med(n,'r99',rat)} | "
          f"{med(n,'rps',num)} | {d if isb else med(n,'xr',rat)} | {d if isb else med(n,'acpu',us)} | {med(n,'ncpu',us)} |")
if len(names) == 3:
    cr, o2 = names[1], names[2]
    def rel(k, f=lambda a, b: a / b):
        xs = [f(a[k], b[k]) for a, b in zip(rows[cr], rows[o2])]
        return f"{statistics.median(xs):.2f}× ({min(xs):.2f}×–{max(xs):.2f}×)"
    print(f"\n{cr} against {o2}, same round, median (min–max): "
          f"req/s {rel('rps')}; auth CPU per request {rel('acpu', lambda a, b: b / a)} less; "
          f"added p50 {rel('a50', lambda a, b: b / a)} less")
errs = sum(v["err"] for n in names for v in rows[n])
if errs:
    print(f"\nWARNING: {errs} failed requests in total (see the errors column)")
EOF
