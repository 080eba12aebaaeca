#!/usr/bin/env bash
# Runs a real Keycloak on loopback for the tests, from its distribution on
# Maven Central (no Docker): fetched once with mvn, unpacked and built once
# under ~/.cache/cloakroom-keycloak, then started in seconds.
#
#   scripts/keycloak.sh start   # fetch if needed, start, wait until ready,
#                               # print the variables the tests read
#   scripts/keycloak.sh stop
#   scripts/keycloak.sh env     # print the variables again (eval "$(…)")
#   scripts/keycloak.sh status
#   scripts/keycloak.sh restart # stop, then start again with the same database
#   scripts/keycloak.sh export SOURCE.json OUT.json
#                               # import a realm into a throw-away Keycloak
#                               # with a file database, then write what
#                               # `kc.sh export` makes of it (users and
#                               # their hashed credentials included): the
#                               # fixtures in interop/conformance/testdata
#
#   KEYCLOAK_VERSION=26.7.3 KEYCLOAK_PORT=8180 KEYCLOAK_MANAGEMENT_PORT=9100
#
# Keycloak runs with `start-dev` and an in-memory H2 database (dev-mem):
# every start is a clean server, the tests import the realms they need
# through the admin API, and nothing is left on disk between runs. A
# production start would need a hostname, TLS or proxy settings and a
# separate build step, none of which the tests exercise; the protocol,
# token and admin behaviour under test is the same.
#
# Opt-in persistent database, for tests that restart Keycloak and need its
# realms, keys and sessions to survive (the chaos soak, e2e/soak_test.go):
#
#   KEYCLOAK_DB=dev-file KEYCLOAK_DATA_DIR=/some/dir scripts/keycloak.sh start
#
# runs a private copy of the distribution unpacked into KEYCLOAK_DATA_DIR
# (default ~/.cache/cloakroom-keycloak/run-PORT/home), with its H2 file
# database under KEYCLOAK_DATA_DIR/data/h2: the shared unpacked server is
# never re-built for another database while another Keycloak runs from it.
# `restart`, or `start` again with the same variables, keeps that
# database; delete the directory for a clean server. `restart` needs no
# variables: it reuses those of the last `start` on that port. Without
# KEYCLOAK_DB (or with KEYCLOAK_DB=dev-mem) nothing changes.
#
# The tests read CLOAKROOM_TEST_KEYCLOAK (the base URL, e.g.
# http://127.0.0.1:8180) and CLOAKROOM_TEST_KEYCLOAK_ADMIN /
# CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD (the master realm's admin).
set -euo pipefail

VERSION=${KEYCLOAK_VERSION:-26.7.3}
PORT=${KEYCLOAK_PORT:-8180}
MGMT_PORT=${KEYCLOAK_MANAGEMENT_PORT:-9100}
ADMIN=${KEYCLOAK_ADMIN_USER:-admin}
ADMIN_PASSWORD=${KEYCLOAK_ADMIN_PASSWORD:-admin}
CACHE=${KEYCLOAK_CACHE:-$HOME/.cache/cloakroom-keycloak}
HOME_DIR=$CACHE/keycloak-$VERSION
RUN=$CACHE/run-$PORT
BASE=http://127.0.0.1:$PORT
DB=${KEYCLOAK_DB:-}
DATA_DIR=${KEYCLOAK_DATA_DIR:-}
# restart and status without the variables: the ones the last start used.
if [ -z "$DB" ] && [ -f "$RUN/db" ] && { [ "${1:-}" = restart ] || [ "${1:-}" = status ]; }; then
	# shellcheck disable=SC1091
	. "$RUN/db"
fi
DB=${DB:-dev-mem}
case "$DB" in
dev-mem) DATA_DIR="" ;;
dev-file) DATA_DIR=${DATA_DIR:-$RUN/home} ;;
*) echo "keycloak: KEYCLOAK_DB=$DB: want dev-mem or dev-file" >&2; exit 2 ;;
esac

log() { printf 'keycloak: %s\n' "$*" >&2; }

print_env() {
	echo "export CLOAKROOM_TEST_KEYCLOAK=$BASE"
	echo "export CLOAKROOM_TEST_KEYCLOAK_ADMIN=$ADMIN"
	echo "export CLOAKROOM_TEST_KEYCLOAK_ADMIN_PASSWORD=$ADMIN_PASSWORD"
	echo "export CLOAKROOM_TEST_KEYCLOAK_VERSION=$VERSION"
}

ready() { curl -sf -o /dev/null "http://127.0.0.1:$MGMT_PORT/health/ready"; }

fetch() {
	if [ -x "$HOME_DIR/bin/kc.sh" ]; then
		return
	fi
	command -v mvn >/dev/null || { log "mvn is not installed (apt-get install maven)"; exit 1; }
	command -v unzip >/dev/null || { log "unzip is not installed (apt-get install unzip)"; exit 1; }
	mkdir -p "$CACHE/dl"
	local zip=$CACHE/dl/keycloak-quarkus-dist-$VERSION.zip
	if [ ! -s "$zip" ]; then
		log "fetching org.keycloak:keycloak-quarkus-dist:$VERSION:zip from Maven Central"
		local t0=$SECONDS
		mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" -DoutputDirectory="$CACHE/dl" >&2
		log "fetched in $((SECONDS - t0)) s"
	fi
	local tmp
	tmp=$(mktemp -d "$CACHE/unpack.XXXXXX")
	unzip -q "$zip" -d "$tmp"
	rm -rf "$HOME_DIR"
	mv "$tmp/keycloak-$VERSION" "$HOME_DIR"
	rmdir "$tmp"
}

java_home() {
	# Keycloak 26 runs on Java 17, 21 and 25: take the newest installed.
	if [ -n "${JAVA_HOME:-}" ]; then echo "$JAVA_HOME"; return; fi
	local j jdks=(/usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-amd64)
	# Older versions (for the export fixtures) predate Java 25.
	[ "${VERSION%%.*}" -lt 26 ] && jdks=(/usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-amd64)
	for j in "${jdks[@]}"; do
		if [ -x "$j/bin/java" ]; then echo "$j"; return; fi
	done
	dirname "$(dirname "$(readlink -f "$(command -v java)")")"
}

start() {
	if ready; then
		log "already running on $BASE"
		print_env
		return
	fi
	fetch
	mkdir -p "$RUN"
	local t0=$SECONDS home=$HOME_DIR
	if [ "$DB" = dev-file ]; then
		# A private copy: start-dev re-builds the server for another
		# database, which must not happen under a Keycloak running from
		# the shared copy.
		if [ ! -x "$DATA_DIR/bin/kc.sh" ]; then
			mkdir -p "$(dirname "$DATA_DIR")"
			rmdir "$DATA_DIR" 2>/dev/null || true # an empty directory made for it
			[ -e "$DATA_DIR" ] && { log "KEYCLOAK_DATA_DIR=$DATA_DIR is neither empty nor a Keycloak copy"; exit 1; }
			rm -rf "$DATA_DIR.tmp"
			cp -a "$HOME_DIR" "$DATA_DIR.tmp"
			rm -rf "$DATA_DIR.tmp/data"
			mv "$DATA_DIR.tmp" "$DATA_DIR"
		fi
		home=$DATA_DIR
		printf 'DB=%q\nDATA_DIR=%q\n' "$DB" "$DATA_DIR" >"$RUN/db"
	else
		rm -f "$RUN/db"
	fi
	log "starting Keycloak $VERSION on $BASE (management $MGMT_PORT${DATA_DIR:+, database $DB in $DATA_DIR})"
	(
		cd "$home"
		export JAVA_HOME
		JAVA_HOME=$(java_home)
		KC_BOOTSTRAP_ADMIN_USERNAME=$ADMIN KC_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PASSWORD \
			setsid nohup bin/kc.sh start-dev --db="$DB" \
			--http-host=127.0.0.1 --http-port="$PORT" \
			--http-management-port="$MGMT_PORT" --health-enabled=true \
			--hostname-strict=false --log-level=warn,org.keycloak.services:info \
			>"$RUN/keycloak.log" 2>&1 </dev/null &
		echo $! >"$RUN/pid"
	)
	for i in $(seq 240); do
		if ready; then
			log "ready in $((SECONDS - t0)) s"
			print_env
			return
		fi
		if ! kill -0 "$(cat "$RUN/pid")" 2>/dev/null; then
			log "Keycloak exited; its log:"
			tail -50 "$RUN/keycloak.log" >&2
			exit 1
		fi
		if [ $((i % 15)) = 0 ]; then log "waiting for readiness ($((SECONDS - t0)) s)"; fi
		sleep 1
	done
	log "not ready after $((SECONDS - t0)) s; its log:"
	tail -50 "$RUN/keycloak.log" >&2
	exit 1
}

stop() {
	if [ -f "$RUN/pid" ]; then
		local pid
		pid=$(cat "$RUN/pid")
		kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
		for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 -- -"$pid" 2>/dev/null || true
		rm -f "$RUN/pid"
		log "stopped"
	fi
}

# export imports SOURCE (a realm representation) through the admin API of a
# private copy of the server using a file database, stops it, and runs
# `kc.sh export` with the users in the same file: the realm as that Keycloak version
# stores and exports it (migrations applied, passwords hashed with the
# version's default algorithm, every default scope and flow filled in).
export_realm() {
	local src=$1 out=$2
	[ -f "$src" ] || { log "export: no such file: $src"; exit 2; }
	fetch
	local realm work port=$((PORT + 17)) t0=$SECONDS
	realm=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["realm"])' "$src")
	work=$(mktemp -d "${TMPDIR:-/tmp}/keycloak-export.XXXXXX")
	export_work=$work
	trap 'rm -rf "$export_work"' EXIT
	cp -a "$HOME_DIR" "$work/kc"
	local mgmt=()
	# Keycloak 25 moved health and metrics to a management port.
	[ "${VERSION%%.*}" -ge 25 ] && mgmt=(--http-management-port=$((port + 1)))
	export JAVA_HOME
	JAVA_HOME=$(java_home)
	log "export: Keycloak $VERSION with a file database on 127.0.0.1:$port"
	(
		cd "$work/kc"
		KC_BOOTSTRAP_ADMIN_USERNAME=$ADMIN KC_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PASSWORD \
			KEYCLOAK_ADMIN=$ADMIN KEYCLOAK_ADMIN_PASSWORD=$ADMIN_PASSWORD \
			setsid nohup bin/kc.sh start-dev --db=dev-file --http-host=127.0.0.1 --http-port="$port" \
			"${mgmt[@]}" --log-level=warn >"$work/keycloak.log" 2>&1 </dev/null &
		echo $! >"$work/pid"
	)
	local base=http://127.0.0.1:$port ok=""
	for _ in $(seq 240); do
		if curl -sf -o /dev/null "$base/realms/master/.well-known/openid-configuration"; then ok=1; break; fi
		kill -0 "$(cat "$work/pid")" 2>/dev/null || break
		sleep 1
	done
	if [ -z "$ok" ]; then
		log "export: Keycloak did not start; its log:"; tail -40 "$work/keycloak.log" >&2
		kill -- -"$(cat "$work/pid")" 2>/dev/null || true; exit 1
	fi
	local tok code
	tok=$(curl -sf "$base/realms/master/protocol/openid-connect/token" \
		-d grant_type=password -d client_id=admin-cli -d username="$ADMIN" -d password="$ADMIN_PASSWORD" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
	code=$(curl -s -o "$work/import.out" -w '%{http_code}' -H "Authorization: Bearer $tok" \
		-H 'Content-Type: application/json' --data-binary @"$src" "$base/admin/realms")
	kill -- -"$(cat "$work/pid")" 2>/dev/null || true
	for _ in $(seq 60); do kill -0 "$(cat "$work/pid")" 2>/dev/null || break; sleep 0.5; done
	if [ "$code" != 201 ]; then
		log "export: importing $src answered $code: $(head -c 400 "$work/import.out")"; exit 1
	fi
	# Keycloak 25 renamed "users in the realm file" for single-file exports.
	local users=same_file
	[ "${VERSION%%.*}" -lt 25 ] && users=realm_file
	(cd "$work/kc" && bin/kc.sh export --db=dev-file --realm "$realm" --users "$users" --file "$work/export.json" >"$work/export.log" 2>&1) ||
		{ log "export: kc.sh export failed:"; tail -40 "$work/export.log" >&2; exit 1; }
	cp "$work/export.json" "$out"
	log "export: $out written by Keycloak $VERSION in $((SECONDS - t0)) s"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
env) print_env ;;
export) [ $# = 3 ] || { echo "usage: $0 export SOURCE.json OUT.json" >&2; exit 2; }; export_realm "$2" "$3" ;;
restart) stop; start ;;
status) if ready; then log "ready on $BASE${DATA_DIR:+ (database $DB in $DATA_DIR)}"; else log "not running"; exit 1; fi ;;
*) echo "usage: $0 start|stop|restart|env|status|export" >&2; exit 2 ;;
esac
