# Shared by the load scripts in bench/ (sourced, not run): the
# scratch-module build of oauth2-proxy, the benchmark realm, and starting,
# waiting for and stopping the servers, and a default gateway. The caller
# sets WORK (a temporary folder), PIDS=() and SECRET, and calls
# stop_started on exit (scratch_work does all of that but SECRET).

# scratch_work sets WORK to a new temporary folder and PIDS=(), and on exit
# stops the servers started and removes WORK. For scripts that need no
# other cleanup.
scratch_work() {
	WORK=$(mktemp -d)
	PIDS=()
	trap 'stop_started; rm -rf "$WORK"' EXIT
}

# build_tools builds cloakroom (the working tree) and loadgen into $WORK.
build_tools() {
	echo "== building (cloakroom, loadgen)" >&2
	go build -o "$WORK/cloakroom" ./cmd/cloakroom
	(cd bench && go build -o "$WORK/loadgen" ./loadgen)
}

# check_store exits with a usage error unless $STORE is a store
# default_gateway knows (memory or sqlite).
check_store() {
	case $STORE in
	memory | sqlite) ;;
	*) echo "STORE: memory or sqlite, not $STORE" >&2; exit 2 ;;
	esac
}

# default_gateway LISTEN STORE IDP UPSTREAM writes $WORK/gw.yaml, a
# gateway in its default configuration (access log on) for realm bench at
# IDP, with a route api (mode api, /api) and a route app (/) to UPSTREAM,
# and the session store STORE: memory, sqlite (a file in $WORK) or a
# store URL.
default_gateway() {
	local store=$2
	case $store in
	memory) store="memory:" ;;
	sqlite) store="sqlite:$WORK/sessions.db" ;;
	esac
	cat >"$WORK/gw.yaml" <<EOF
listen: $1
issuer: http://$3/realms/bench
client_id: gateway
client_secret: $SECRET
session:
  store: "$store"
  encryption_keys: ["$(head -c 32 /dev/urandom | base64)"]
  logout_journal: "$WORK/journal"
routes:
  - {name: api, path: /api, mode: api, upstream: "http://$4"}
  - {name: app, path: /, upstream: "http://$4"}
EOF
}

# build_oauth2_proxy VERSION builds oauth2-proxy from the Go module proxy
# into $WORK/oauth2-proxy, in a scratch module (nothing of it is kept).
build_oauth2_proxy() {
	echo "== building oauth2-proxy $1 in a scratch module" >&2
	mkdir "$WORK/o2p"
	(
		cd "$WORK/o2p"
		go mod init o2pbuild >/dev/null 2>&1
		printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/oauth2-proxy/oauth2-proxy/v7"\n' >tools.go
		go get "github.com/oauth2-proxy/oauth2-proxy/v7@$1" >/dev/null 2>&1
		go build -o "$WORK/oauth2-proxy" github.com/oauth2-proxy/oauth2-proxy/v7
	)
}

# write_realm writes $WORK/realm.json: realm "bench", user alice/alice
# (role user), confidential client "gateway" with secret $SECRET and an
# audience mapper, redirect URIs on any loopback port.
write_realm() {
	cat >"$WORK/realm.json" <<JSON
{"realm":"bench","enabled":true,"accessTokenLifespan":3600,"ssoSessionIdleTimeout":7200,"ssoSessionMaxLifespan":36000,
 "roles":{"realm":[{"name":"user"}]},
 "users":[{"username":"alice","enabled":true,"email":"alice@example.com","emailVerified":true,"firstName":"Alice","lastName":"Liddell",
   "credentials":[{"type":"password","value":"alice"}],"realmRoles":["user"]}],
 "clients":[{"clientId":"gateway","secret":"$SECRET","enabled":true,"publicClient":false,"standardFlowEnabled":true,"directAccessGrantsEnabled":true,
   "redirectUris":["http://127.0.0.1:*"],"attributes":{"post.logout.redirect.uris":"+"},
   "protocolMappers":[{"name":"aud","protocol":"openid-connect","protocolMapper":"oidc-audience-mapper",
     "config":{"included.client.audience":"gateway","access.token.claim":"true","id.token.claim":"false"}}]}]}
JSON
}

# start runs a server in the background, its output in $WORK/servers.log.
start() { "$@" >>"$WORK/servers.log" 2>&1 & PIDS+=($!); }

# stop_started stops the servers in PIDS and waits for them (for the
# caller's EXIT trap).
stop_started() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}

# wait_http waits (up to 15 s) until URL answers with a 2xx.
wait_http() {
	for _ in $(seq 150); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "not up: $1" >&2
	tail -20 "$WORK/servers.log" >&2
	exit 1
}
