#!/usr/bin/env bash
# Highly available Redis topologies for the tests, from plain redis-server
# processes on loopback (no persistence, data under a temporary directory):
#
#   sentinel  1 master + 2 replicas, watched by 3 Sentinels (quorum 2),
#             master name "cloakroom"
#   cluster   Redis Cluster of 3 masters + 3 replicas
#
# Usage:
#   scripts/redis-ha.sh start  [sentinel|cluster|all]   (default all)
#   scripts/redis-ha.sh stop   [sentinel|cluster|all]
#   scripts/redis-ha.sh status [sentinel|cluster|all]
#   scripts/redis-ha.sh env    [sentinel|cluster|all]   prints the export lines
#
# `start` prints progress on stderr and, when everything answers, the export
# lines of `env` on stdout, so eval "$(scripts/redis-ha.sh start)" works.
#
# Ports (the environment chooses them, so that a test can start a private
# topology, e.g. one whose master it kills, next to the shared one):
#
#   REDIS_HA_BASE            data ports: master B, replicas B+1, B+2,
#                            cluster nodes B+3 … B+8        (default 7100)
#   REDIS_HA_SENTINEL_BASE   Sentinels S, S+1, S+2; cluster bus ports
#                            S+3 … S+8                       (default 26400)
#   REDIS_HA_DIR             data, logs, pid files
#                            (default ${TMPDIR:-/tmp}/cloakroom-redis-ha-B)
#   REDIS_HA_DOWN_AFTER_MS   Sentinel down-after-milliseconds (default 1000)
#   REDIS_HA_NODE_TIMEOUT_MS cluster-node-timeout            (default 1000)
#   REDIS_HA_HOST            address to bind and announce    (default 127.0.0.1)
#   REDIS_HA_FRESH=1         fail if a port already answers (a test's own
#                            topology) instead of leaving it as it is
#
# The pid of the process on port P is in $REDIS_HA_DIR/redis-P.pid (the
# failover tests kill -9 the master through it).
set -euo pipefail

B=${REDIS_HA_BASE:-7100}
S=${REDIS_HA_SENTINEL_BASE:-26400}
H=${REDIS_HA_HOST:-127.0.0.1}
DIR=${REDIS_HA_DIR:-${TMPDIR:-/tmp}/cloakroom-redis-ha-$B}
DOWN_AFTER=${REDIS_HA_DOWN_AFTER_MS:-1000}
NODE_TIMEOUT=${REDIS_HA_NODE_TIMEOUT_MS:-1000}
MASTER=cloakroom

say() { printf 'redis-ha: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install -y redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is not installed (apt-get install -y redis-tools)"

data_ports() { echo "$B" $((B + 1)) $((B + 2)); }
sentinel_ports() { echo "$S" $((S + 1)) $((S + 2)); }
cluster_ports() { echo $((B + 3)) $((B + 4)) $((B + 5)) $((B + 6)) $((B + 7)) $((B + 8)); }

cli() { redis-cli -h "$H" -p "$1" "${@:2}"; }
up() { cli "$1" ping 2>/dev/null | grep -q PONG; }

# wait_for SECONDS WHAT CMD...: retry CMD every 0.1 s.
wait_for() {
	local n=$(($1 * 10)) what=$2
	shift 2
	for _ in $(seq "$n"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "timed out waiting for $what (logs in $DIR)"
}

# server PORT ARGS...: start a redis-server (or Sentinel) on PORT unless
# one answers there already.
server() {
	local port=$1
	shift
	if up "$port"; then
		[ -z "${REDIS_HA_FRESH:-}" ] || die "port $port is in use: stop what runs there or choose another REDIS_HA_BASE"
		say "port $port already answers: left as it is"
		return
	fi
	mkdir -p "$DIR/$port"
	redis-server "$@" --port "$port" --bind "$H" --daemonize yes \
		--dir "$DIR/$port" --logfile "$DIR/redis-$port.log" --pidfile "$DIR/redis-$port.pid"
}

common=(--save "" --appendonly no --protected-mode no)

start_sentinel() {
	local t0=$SECONDS p
	say "sentinel: master $H:$B, replicas $((B + 1)), $((B + 2)), Sentinels $(sentinel_ports | tr ' ' ','), data in $DIR"
	server "$B" "${common[@]}"
	for p in $((B + 1)) $((B + 2)); do server "$p" "${common[@]}" --replicaof "$H" "$B"; done
	for p in $(sentinel_ports); do
		mkdir -p "$DIR/$p"
		if [ ! -f "$DIR/$p/sentinel.conf" ]; then
			cat >"$DIR/$p/sentinel.conf" <<EOF
sentinel resolve-hostnames no
sentinel monitor $MASTER $H $B 2
sentinel down-after-milliseconds $MASTER $DOWN_AFTER
sentinel failover-timeout $MASTER 10000
sentinel parallel-syncs $MASTER 1
EOF
		fi
		server "$p" "$DIR/$p/sentinel.conf" --sentinel
	done
	for p in $(data_ports) $(sentinel_ports); do wait_for 10 "port $p" up "$p"; done
	for p in $((B + 1)) $((B + 2)); do
		wait_for 15 "replica $p in sync" sh -c "redis-cli -h $H -p $p info replication | grep -q 'master_link_status:up'"
	done
	# Each Sentinel must know both replicas and the two other Sentinels
	# before a failover can be voted.
	for p in $(sentinel_ports); do
		wait_for 20 "Sentinel $p to see 2 replicas and 2 Sentinels" sh -c \
			"[ \$(redis-cli -h $H -p $p sentinel replicas $MASTER | grep -c '^name\$') = 2 ] && [ \$(redis-cli -h $H -p $p sentinel sentinels $MASTER | grep -c '^name\$') = 2 ]"
	done
	say "sentinel: ready in $((SECONDS - t0)) s"
}

start_cluster() {
	local t0=$SECONDS p i=3 addrs=()
	say "cluster: nodes $H:$((B + 3))…$((B + 8)), bus ports $((S + 3))…$((S + 8)), data in $DIR"
	for p in $(cluster_ports); do
		server "$p" "${common[@]}" --cluster-enabled yes --cluster-config-file "$DIR/$p/nodes.conf" \
			--cluster-node-timeout "$NODE_TIMEOUT" --cluster-port $((S + i)) \
			--cluster-replica-validity-factor 0 --cluster-announce-ip "$H"
		addrs+=("$H:$p")
		i=$((i + 1))
	done
	for p in $(cluster_ports); do wait_for 10 "port $p" up "$p"; done
	if cli $((B + 3)) cluster info | grep -q 'cluster_state:ok'; then
		say "cluster: already created"
	else
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/cluster-create.log" 2>&1 ||
			die "redis-cli --cluster create failed: $(tail -5 "$DIR/cluster-create.log")"
	fi
	for p in $(cluster_ports); do
		wait_for 20 "node $p to report cluster_state:ok" sh -c "redis-cli -h $H -p $p cluster info | grep -q 'cluster_state:ok'"
	done
	# Every replica must be attached and in sync before a failover test
	# can count on it.
	for p in $(cluster_ports); do
		if cli "$p" info replication | grep -q 'role:slave'; then
			wait_for 20 "cluster replica $p in sync" sh -c "redis-cli -h $H -p $p info replication | grep -q 'master_link_status:up'"
		fi
	done
	say "cluster: ready in $((SECONDS - t0)) s"
}

stop_ports() {
	local p pid
	for p in "$@"; do
		if [ -f "$DIR/redis-$p.pid" ]; then
			pid=$(cat "$DIR/redis-$p.pid")
			if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
			for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
			rm -f "$DIR/redis-$p.pid"
		fi
		rm -rf "${DIR:?}/$p" "$DIR/redis-$p.log"
	done
}

env_sentinel() {
	echo "export CLOAKROOM_TEST_REDIS_SENTINEL=redis+sentinel://$H:$S,$H:$((S + 1)),$H:$((S + 2))/$MASTER"
}

env_cluster() {
	echo "export CLOAKROOM_TEST_REDIS_CLUSTER=redis+cluster://$H:$((B + 3)),$H:$((B + 4)),$H:$((B + 5))"
}

status_sentinel() {
	local p
	for p in $(sentinel_ports); do
		if up "$p"; then
			echo "sentinel $p: master $(cli "$p" sentinel get-master-addr-by-name "$MASTER" | paste -sd: -)"
		else
			echo "sentinel $p: down"
		fi
	done
	for p in $(data_ports); do
		if up "$p"; then
			echo "redis $p: $(cli "$p" info replication | grep -E '^role:' | tr -d '\r')"
		else
			echo "redis $p: down"
		fi
	done
}

status_cluster() {
	local p
	for p in $(cluster_ports); do
		if up "$p"; then
			echo "cluster $p: $(cli "$p" info replication | grep -E '^role:' | tr -d '\r') $(cli "$p" cluster info | grep -E '^cluster_state:' | tr -d '\r')"
		else
			echo "cluster $p: down"
		fi
	done
}

cmd=${1:-}
what=${2:-all}
case $what in sentinel | cluster | all) ;; *) die "unknown topology $what: want sentinel, cluster or all" ;; esac
has() { [ "$what" = all ] || [ "$what" = "$1" ]; }

case $cmd in
start)
	mkdir -p "$DIR"
	if [ "$what" = all ]; then
		# Both at once: each spends most of its time waiting.
		start_sentinel &
		s_pid=$!
		start_cluster &
		c_pid=$!
		s_rc=0 c_rc=0
		wait "$s_pid" || s_rc=$?
		wait "$c_pid" || c_rc=$?
		[ "$s_rc" = 0 ] && [ "$c_rc" = 0 ] || die "start failed (see above)"
	else
		if has sentinel; then start_sentinel; fi
		if has cluster; then start_cluster; fi
	fi
	if has sentinel; then env_sentinel; fi
	if has cluster; then env_cluster; fi
	;;
stop)
	if has sentinel; then stop_ports $(sentinel_ports) $(data_ports); fi
	if has cluster; then
		stop_ports $(cluster_ports)
		rm -f "$DIR/cluster-create.log"
	fi
	rmdir "$DIR" 2>/dev/null || true
	say "stopped ($what)"
	;;
status)
	if has sentinel; then status_sentinel; fi
	if has cluster; then status_cluster; fi
	;;
env)
	if has sentinel; then env_sentinel; fi
	if has cluster; then env_cluster; fi
	;;
*)
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
