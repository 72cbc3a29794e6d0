#!/bin/bash
# Benchmark of job_queue's monitoring on a throwaway cluster:
#
#  - what the trigger that keeps the statistics costs a bulk enqueue;
#  - the cost of SELECT * FROM jq_stats (and of jq_metrics) with a large
#    backlog and a large history, beside the queries that would count the
#    same by scanning jq.job and jq.job_history;
#  - jq.job_history during a sustained run with a short retention: its
#    partitions, rows, size and dead tuples (pruning drops whole partitions).
#
# Needs the extension installed (make install); installs nothing.  Run as
# postgres, or as root (it re-executes itself as postgres).
#
#   BENCH_MONITOR_READY      ready jobs in the backlog                 (1000000)
#   BENCH_MONITOR_HISTORY    finished jobs in jq.job_history           (10000000)
#   BENCH_MONITOR_QUEUES     queues they are spread over               (10)
#   BENCH_MONITOR_CALLS      calls of each query timed                 (50)
#   BENCH_MONITOR_SECONDS    duration of the sustained run             (120)
#   BENCH_MONITOR_RETENTION  jq.history_retention during it            (30s)
#   BENCH_MONITOR_CLIENTS    pgbench clients enqueuing during it       (8)
#   BENCH_MONITOR_BULK       jobs of each bulk enqueue timed           (100000)
#   BENCH_CONF               extra postgresql.conf lines               (none)
set -euo pipefail
. "$(dirname "$0")/cluster.sh"
bench_as_postgres "$@"

READY=${BENCH_MONITOR_READY:-1000000}
HISTORY=${BENCH_MONITOR_HISTORY:-10000000}
QUEUES=${BENCH_MONITOR_QUEUES:-10}
CALLS=${BENCH_MONITOR_CALLS:-50}
SUSTAIN=${BENCH_MONITOR_SECONDS:-120}
RETENTION=${BENCH_MONITOR_RETENTION:-30s}
CLIENTS=${BENCH_MONITOR_CLIENTS:-8}
BULK=${BENCH_MONITOR_BULK:-100000}

# the cluster listens on a socket in $TMP only
bench_cluster job_queue_monitor_bench
export PGDATABASE=bench

# average milliseconds of a query over $3 (default $CALLS) calls by one client, as role $1
query_ms()
{
	printf '%s\n' "$2" >"$TMP/query.sql"
	PGUSER=$1 "$BINDIR/pgbench" -n -c 1 -t "${3:-$CALLS}" -f "$TMP/query.sql" bench >"$TMP/query.out" 2>&1 ||
		{ cat "$TMP/query.out" >&2; exit 1; }
	sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$TMP/query.out"
}

row()
{
	printf '  %-68s %12s %12s\n' "$@"
}

bench_start "listen_addresses = ''" "shared_preload_libraries = 'job_queue'" \
	"max_worker_processes = 32" "${BENCH_CONF:-}"
sql -d postgres -c "CREATE DATABASE bench"
sql -c "CREATE EXTENSION job_queue" -c "CREATE ROLE app LOGIN"
# executors start on demand: wait for the database's pool
await "SELECT count(*) > 0 FROM jq_executors"

echo "job_queue monitoring benchmark"
echo
echo "  machine   $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "  server    $(sql -c "SELECT version()")"
echo

###########################################################################
# what the statistics trigger costs an enqueue
###########################################################################

# bulk enqueues of $BULK jobs into a table with the trigger and without it,
# taking turns, with the executors off
sql -c "ALTER SYSTEM SET jq.execute_in_server = off" -c "SELECT pg_reload_conf()" >/dev/null
await "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'job_queue executor'"
declare -A bulk_ms=([ENABLE]=0 [DISABLE]=0)
for round in 1 2 3; do
	for mode in ENABLE DISABLE; do
		sql -c "ALTER TABLE jq.job $mode TRIGGER job_stats" -c "TRUNCATE jq.job" -c "CHECKPOINT"
		ms=$(sql <<EOC | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
\timing on
SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[$BULK])));
EOC
)
		bulk_ms[$mode]=$(awk -v a="${bulk_ms[$mode]}" -v b="$ms" 'BEGIN { print a + b }')
	done
done
sql -c "ALTER TABLE jq.job ENABLE TRIGGER job_stats" -c "TRUNCATE jq.job" \
	-c "ALTER SYSTEM RESET jq.execute_in_server" -c "SELECT pg_reload_conf()" >/dev/null
# executors start on demand: wait for the database's pool
await "SELECT count(*) > 0 FROM jq_executors"
echo "  jq_enqueue_bulk of $BULK jobs, executors off, 3 rounds each (average ms)"
row "with the statistics trigger on jq.job" "$(awk -v t="${bulk_ms[ENABLE]}" 'BEGIN { printf "%.0f", t / 3 }')"
row "without it (ALTER TABLE jq.job DISABLE TRIGGER job_stats)" "$(awk -v t="${bulk_ms[DISABLE]}" 'BEGIN { printf "%.0f", t / 3 }')"
echo

###########################################################################
# jq_stats with a large backlog and history
###########################################################################

# jobs that ran, so that every window has outcomes and latencies
sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[2000]),
										   queue => 'q' || q)) FROM generate_series(1, $QUEUES) q" >/dev/null
await "SELECT NOT EXISTS (SELECT FROM jq.job)"

# the backlog: no executor takes it
sql -c "ALTER SYSTEM SET jq.execute_in_server = off" -c "SELECT pg_reload_conf()" >/dev/null
await "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'job_queue executor'"
per_queue=$(( READY / QUEUES ))
load_start=$(date +%s)
for q in $(seq 1 "$QUEUES"); do
	sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[$per_queue]), queue => 'q$q'))" >/dev/null
done
sql -c "SET ROLE app" -c "SELECT jq_enqueue('SELECT 1', queue => 'q1')" >/dev/null

# the history, written directly (its trigger skipped: these jobs never ran)
sql <<EOC
SET session_replication_role = replica;
INSERT INTO jq.job_history (id, queue, kind, command, priority, state, run_at, attempts,
							max_attempts, owner, created_at, started_at, finished_at)
SELECT -i, 'q' || (i % $QUEUES + 1), 'sql', 'SELECT 1', 0, 'succeeded', t, 1, 1, 10, t, t,
	   t + interval '1 ms'
FROM generate_series(1, $HISTORY) i,
	 LATERAL (SELECT now() - interval '1 hour' * i / $HISTORY AS t) s;
EOC
sql -c "VACUUM ANALYZE jq.job" -c "ANALYZE jq.job_history"
load_s=$(( $(date +%s) - load_start ))

read -r ready history <<<"$(sql -F ' ' -c "SELECT (SELECT count(*) FROM jq.job), (SELECT count(*) FROM jq.job_history)")"
echo "  jq_stats: $ready ready jobs in $QUEUES queues, $history jobs in jq.job_history (loaded in $load_s s);"
echo "  average of $CALLS calls by one client, unless said otherwise"
echo
row "" "ms" ""
row "SELECT * FROM jq_stats, as a superuser (all roles' jobs)" "$(query_ms postgres 'SELECT * FROM jq_stats')"
row "SELECT * FROM jq_stats, as a role with 1 job in a busy queue" "$(query_ms app 'SELECT * FROM jq_stats')"
row "SELECT jq_metrics(), as a superuser" "$(query_ms postgres 'SELECT jq_metrics()')"
row "reference: count jq.job by queue and state (a scan, 3 calls)" \
	"$(query_ms postgres "SELECT queue, state, count(*) FROM jq.job GROUP BY 1, 2" 3)"
row "reference: outcomes of the last hour from jq.job_history (3 calls)" \
	"$(query_ms postgres "SELECT queue, state, count(*) FROM jq.job_history WHERE finished_at > now() - interval '1 hour' GROUP BY 1, 2" 3)"
echo

###########################################################################
# history during a sustained run with a short retention
###########################################################################

sql -c "TRUNCATE jq.job, jq.job_history" \
	-c "ALTER SYSTEM SET jq.history_retention = '$RETENTION'" \
	-c "ALTER SYSTEM SET jq.execute_in_server = on" -c "SELECT pg_reload_conf()" >/dev/null
# executors start on demand: wait for the database's pool
await "SELECT count(*) > 0 FROM jq_executors"
# the partitions of the long default retention go first
await "SELECT count(*) = 0 FROM jq._history_partitions() p
	   WHERE p.upper - p.lower > jq._history_width('$RETENTION')"

printf '%s\n' "SELECT jq_enqueue('SELECT 1');" >"$TMP/enqueue.sql"
"$BINDIR/pgbench" -n -c "$CLIENTS" -j 2 -T "$SUSTAIN" -f "$TMP/enqueue.sql" bench >"$TMP/sustain.out" 2>&1 &
pgbench_pid=$!
start=$(date +%s)

FMT='  %8s %11s %14s %12s %12s %12s %14s'
sample()
{
	sql -c "
		SELECT format('$FMT', $(date +%s) - $start, count(*) - 1,
					  (SELECT count(*) FROM jq.job_history),
					  pg_size_pretty(sum(pg_total_relation_size(t.relid))),
					  sum(s.n_dead_tup), sum(s.n_tup_del),
					  (SELECT count(*) FROM jq.job))
		FROM pg_partition_tree('jq.job_history') t
		LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
		WHERE t.isleaf"
}
printf "$FMT\n" 'time (s)' 'partitions' 'history rows' 'history size' 'n_dead_tup' 'rows deleted' 'active jobs'
elapsed=0
while [ "$elapsed" -lt "$SUSTAIN" ]; do
	sample
	sleep 15
	elapsed=$(( $(date +%s) - start ))
done
wait "$pgbench_pid" || { cat "$TMP/sustain.out" >&2; exit 1; }
sample
enqueued=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMP/sustain.out")
echo
echo "  sustained run: $CLIENTS clients enqueued $enqueued jobs in $SUSTAIN s, jq.history_retention = $RETENTION"
echo "  (partitions of $(sql -c "SELECT jq._history_width('$RETENTION')"); n_dead_tup and rows deleted: pg_stat_user_tables, summed over the partitions)"
"$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
