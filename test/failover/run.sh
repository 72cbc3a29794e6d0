#!/bin/bash
# Failover under load with Patroni and etcd, everything on loopback on this
# machine: a primary and a streaming standby, each under its own Patroni.
#
#  1. A shell job that kills the primary's postmaster and its own executor
#     (kill -9) every time it runs: Patroni restarts the primary in place
#     each time, and the job ends failed after its max_attempts instead of
#     crashing it forever.  The standby joins after this step: with one in
#     the cluster, Patroni may promote it when a restart of the primary
#     takes longer than the leader key's TTL, and which node ends primary
#     would then be a matter of timing.
#  2. In-server executors run SQL jobs, and jq_worker, connected through a
#     multi-host DSN with target_session_attrs=read-write, runs SQL and
#     shell jobs of an external-only queue.  Meanwhile the primary's host
#     "dies": kill -9 of its Patroni and of its postmaster.  Patroni
#     promotes the standby, whose executors take over, and jq_worker
#     reconnects to it.  At the end every job has succeeded on the new
#     primary, each SQL job's effect is there exactly once, and the attempts
#     a failover costs are checked: at most one more per job.
#
# Bounded in time (FAILOVER_TIMEOUT seconds, 600 by default); everything it
# starts is stopped and its files removed at the end.  Run as postgres, or
# as root (it re-executes itself as postgres).  Needs the extension and
# jq_worker installed, and Debian's patroni and etcd-server.
set -euo pipefail
[ "$(id -u)" != 0 ] || exec runuser -u postgres -- bash "$(readlink -f "$0")" "$@"

TIMEOUT=${FAILOVER_TIMEOUT:-600}
DEADLINE=$(( $(date +%s) + TIMEOUT ))
BINDIR=$(pg_config --bindir)
for program in patroni etcd; do
	command -v "$program" >/dev/null || { echo "$program not found: run test/install_deps.sh" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/job_queue_failover.XXXXXX)
declare -A PATRONI
WORKER=
ETCD=
FAILED=1

free_port()
{
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

finish()
{
	local node
	# the shell's notes on the processes killed below are noise
	exec 2>/dev/null
	[ -z "$WORKER" ] || kill -KILL "$WORKER" 2>/dev/null || true
	for node in "${!PATRONI[@]}"; do
		kill -KILL "${PATRONI[$node]}" 2>/dev/null || true
	done
	for node in node1 node2; do
		if [ -f "$TMP/$node/postmaster.pid" ]; then
			kill -KILL "$(head -1 "$TMP/$node/postmaster.pid")" 2>/dev/null || true
		fi
	done
	[ -z "$ETCD" ] || kill -KILL "$ETCD" 2>/dev/null || true
	wait 2>/dev/null || true
	if [ "$FAILED" = 1 ]; then
		for log in "$TMP"/*.log; do
			echo "--- last lines of $log"
			tail -n 30 "$log"
		done
	fi
	rm -rf "$TMP"
}
trap finish EXIT

say()
{
	echo "$(date +%H:%M:%S) $*"
}

fail()
{
	say "FAILED: $*"
	exit 1
}

ETCD_CLIENT=$(free_port)
ETCD_PEER=$(free_port)
declare -A PG_PORT REST_PORT
for node in node1 node2; do
	PG_PORT[$node]=$(free_port)
	REST_PORT[$node]=$(free_port)
done
DSN="host=127.0.0.1,127.0.0.1 port=${PG_PORT[node1]},${PG_PORT[node2]} dbname=postgres target_session_attrs=read-write connect_timeout=2"

# psql NODE ARGS...: on that node, through its own port
psql_on()
{
	local node=$1
	shift
	"$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PG_PORT[$node]}" -d postgres "$@"
}

# psql on whichever node is the primary now
psql_primary()
{
	"$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DSN" "$@"
}

# await WHAT COMMAND...: run COMMAND every 0.2 s until it succeeds
await()
{
	local what=$1
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$DEADLINE" ] || fail "gave up waiting: $what"
		sleep 0.2
	done
}

is_primary()
{
	[ "$(psql_on "$1" -c 'SELECT pg_is_in_recovery()')" = f ]
}

# Patroni's REST API says NODE is the leader: it has finished bootstrapping
# (a crash before that makes Patroni give up) and holds the leader key
is_leader()
{
	python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${REST_PORT[$1]}/primary', timeout=2)"
}

is_streaming()
{
	[ "$(psql_on node1 -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]
}

replayed_on()
{
	[ "$(psql_on "$1" -c "SELECT pg_last_wal_replay_lsn() >= '$2'")" = t ]
}

primary_says_t()
{
	[ "$(psql_primary -c "$1")" = t ]
}

start_patroni()
{
	local node=$1
	cat >"$TMP/$node.yml" <<EOF
scope: job_queue_failover
name: $node
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:${REST_PORT[$node]}
  connect_address: 127.0.0.1:${REST_PORT[$node]}
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1073741824
    postgresql:
      use_pg_rewind: false
      parameters:
        shared_preload_libraries: job_queue
        max_worker_processes: 32
        max_wal_senders: 10
        max_replication_slots: 10
        wal_level: replica
        hot_standby: 'on'
        jq.retry_backoff_base: 50ms
        jq.retry_backoff_cap: 100ms
  initdb:
  - auth: trust
postgresql:
  listen: 127.0.0.1:${PG_PORT[$node]}
  connect_address: 127.0.0.1:${PG_PORT[$node]}
  data_dir: $TMP/$node
  bin_dir: $BINDIR
  pgpass: $TMP/$node.pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: $TMP
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
EOF
	patroni "$TMP/$node.yml" >>"$TMP/patroni_$node.log" 2>&1 &
	PATRONI[$node]=$!
}

say "starting etcd on 127.0.0.1:$ETCD_CLIENT"
etcd --name jq --data-dir "$TMP/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
	--advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
	--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
	--initial-cluster "jq=http://127.0.0.1:$ETCD_PEER" >"$TMP/etcd.log" 2>&1 &
ETCD=$!

say "starting node1 under Patroni"
start_patroni node1
await "node1 is the leader" is_leader node1
psql_on node1 -c "CREATE EXTENSION job_queue" \
	-c "CREATE TABLE effects (job text NOT NULL)" \
	-c "SELECT jq_configure_queue('ext', external_only => true)" >/dev/null

# 1. a job that kills the primary's postmaster whenever it runs
say "1. a shell job that kills the primary's postmaster and its executor, max_attempts 3"
poison=$(psql_on node1 -c "SELECT jq_enqueue_shell(command => 'kill -9 \$(head -1 postmaster.pid) \$PPID',
															 max_attempts => 3)")
await "the poison job to end" primary_says_t \
	"SELECT state = 'failed' FROM jq_jobs WHERE id = $poison"
attempts=$(psql_primary -c "SELECT attempts FROM jq_jobs WHERE id = $poison")
[ "$attempts" = 3 ] || fail "the poison job used $attempts attempts, not 3"
is_primary node1 || fail "node1 is no longer the primary"
say "   ended failed after 3 attempts; Patroni restarted node1 in place each time"
say "   starting node2 under Patroni as node1's standby"
start_patroni node2
await "node2 streams from node1" is_streaming

# 2. failover under load
IN_SERVER=2000
EXT_SQL=1000
EXT_SHELL=200
say "2. $IN_SERVER SQL jobs for the executors, $EXT_SQL SQL and $EXT_SHELL shell jobs for jq_worker"
psql_on node1 -c "SELECT jq_pause('default')" \
	-c "SELECT count(jq_enqueue(format('INSERT INTO effects VALUES (%L); SELECT pg_sleep(0.005)', 's' || i)))
		FROM generate_series(1, $IN_SERVER) i" \
	-c "SELECT count(jq_enqueue(format('INSERT INTO effects VALUES (%L); SELECT pg_sleep(0.005)', 'x' || i),
								queue => 'ext'))
		FROM generate_series(1, $EXT_SQL) i" \
	-c "SELECT count(jq_enqueue_shell(command => 'echo \$JQ_JOB_ID >> $TMP/shell_runs; sleep 0.02',
									  queue => 'ext'))
		FROM generate_series(1, $EXT_SHELL)" >/dev/null
"$BINDIR/jq_worker" --dsn "$DSN" --name failover-worker --kinds sql,shell --concurrency 4 --lease 10 \
	--recheck 1 --queue ext 2>>"$TMP/jq_worker.log" &
WORKER=$!
# the standby must have the jobs: an enqueue it never received is lost with
# the primary, like any write under asynchronous replication
enqueued=$(psql_on node1 -c "SELECT pg_current_wal_lsn()")
await "node2 to replay the enqueues" replayed_on node2 "$enqueued"
psql_on node1 -c "SELECT jq_resume('default')" >/dev/null
await "a third of the jobs to run" primary_says_t \
	"SELECT count(*) >= $(( (IN_SERVER + EXT_SQL) / 3 )) FROM effects"

say "   the primary's host dies: kill -9 of node1's Patroni and postmaster"
kill -KILL "${PATRONI[node1]}" "$(head -1 "$TMP/node1/postmaster.pid")"
wait "${PATRONI[node1]}" 2>/dev/null || true
unset 'PATRONI[node1]'
failed_at=$(date +%s)
await "node2 to be promoted" is_primary node2
say "   node2 promoted after $(( $(date +%s) - failed_at )) s"
psql_on node2 -c "SELECT now()" >"$TMP/promoted_at"

await "every job to end" primary_says_t \
	"SELECT count(*) = $(( IN_SERVER + EXT_SQL + EXT_SHELL )) FROM jq_jobs
	 WHERE state = 'succeeded' AND id <> $poison"
read -r effects distinct <<<"$(psql_on node2 -F ' ' -c "SELECT count(*), count(DISTINCT job) FROM effects")"
[ "$effects" = $(( IN_SERVER + EXT_SQL )) ] && [ "$distinct" = "$effects" ] ||
	fail "$effects effects of $distinct distinct jobs, expected $(( IN_SERVER + EXT_SQL )) of each"
say "   every job succeeded; each of the $effects SQL jobs took effect exactly once"
after=$(psql_on node2 -c "SELECT count(*) FROM jq_jobs WHERE queue = 'default'
						   AND finished_at > '$(cat "$TMP/promoted_at")'")
[ "$after" -gt 0 ] || fail "no in-server job ran on the new primary"
shell_ran=$(sort -u "$TMP/shell_runs" | wc -l)
[ "$shell_ran" = "$EXT_SHELL" ] || fail "$shell_ran shell jobs ran, not $EXT_SHELL"
awk '/control connection failed/ { lost = 1 } lost && /connected to database/ { back = 1 }
	 END { exit !back }' "$TMP/jq_worker.log" || fail "jq_worker did not reconnect"
say "   $after in-server jobs finished on the new primary; jq_worker reconnected and ran every shell job"
read -r max_attempts charged <<<"$(psql_on node2 -F ' ' -c "
	SELECT max(attempts), count(*) FILTER (WHERE attempts > 1) FROM jq_jobs WHERE id <> $poison")"
[ "$max_attempts" -le 2 ] || fail "a job used $max_attempts attempts"
say "   attempts: $charged jobs used a second attempt (running at the failover), none more"

kill -TERM "$WORKER"
wait "$WORKER" || fail "jq_worker exited with status $?"
WORKER=

FAILED=0
say "passed"
