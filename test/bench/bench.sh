#!/bin/bash
# Benchmark of job_queue on a throwaway cluster: enqueue rates (vs plain
# INSERTs), bulk enqueue, end-to-end throughput (also of queues with a
# concurrency limit), pickup latency (from idle executors, and from none:
# cold start), lateness of delayed jobs, statements
# run while idle, the footprint of jq.job during a sustained run, and the
# rate of in-server shell jobs.
#
# Needs the extension installed (make install); installs nothing.  Run as
# postgres, or as root (it re-executes itself as postgres).
#
#   BENCH_CLIENTS          pgbench clients for the enqueue phases   (8)
#   BENCH_SECONDS          duration of each enqueue phase           (10)
#   BENCH_ROUNDS           rounds of the enqueue phases             (3)
#   BENCH_BULK_JOBS        jobs in the bulk enqueue                 (100000)
#   BENCH_E2E_JOBS         no-op jobs of the end-to-end phase       (20000)
#   BENCH_LIMITED_QUEUES   queues of concurrency 2 in the next one  (10)
#   BENCH_LIMITED_JOBS     no-op jobs in each of them               (2000)
#   BENCH_LATENCY_JOBS     jobs of the pickup latency phase         (200)
#   BENCH_COLD_JOBS        jobs of the cold start phase             (20)
#   BENCH_LATENESS_JOBS    delayed jobs of the lateness phase       (1000)
#   BENCH_IDLE_SECONDS     idle time watched by pg_stat_statements  (60)
#   BENCH_SUSTAIN_SECONDS  duration of the sustained run            (300)
#   BENCH_SAMPLE_SECONDS   interval of its footprint samples        (30)
#   BENCH_SHELL_JOBS       in-server shell jobs (true) to run       (2000)
#   BENCH_SHELL_EXECUTORS  jq.shell_executors_per_database for them (server default)
#   BENCH_CONF             extra postgresql.conf lines, for example
#                          "autovacuum_naptime = '10s'"             (none)
set -euo pipefail
. "$(dirname "$0")/cluster.sh"
bench_as_postgres "$@"

CLIENTS=${BENCH_CLIENTS:-8}
SECONDS_PER_PHASE=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
BULK_JOBS=${BENCH_BULK_JOBS:-100000}
E2E_JOBS=${BENCH_E2E_JOBS:-20000}
LIMITED_QUEUES=${BENCH_LIMITED_QUEUES:-10}
LIMITED_JOBS=${BENCH_LIMITED_JOBS:-2000}
LATENCY_JOBS=${BENCH_LATENCY_JOBS:-200}
COLD_JOBS=${BENCH_COLD_JOBS:-20}
LATENESS_JOBS=${BENCH_LATENESS_JOBS:-1000}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
SUSTAIN_SECONDS=${BENCH_SUSTAIN_SECONDS:-300}
SAMPLE_SECONDS=${BENCH_SAMPLE_SECONDS:-30}
SHELL_JOBS=${BENCH_SHELL_JOBS:-2000}
SHELL_EXECUTORS=${BENCH_SHELL_EXECUTORS:-}
# jq.job_history is partitioned: its figures are the sums of its partitions
HIST_PARTS="pg_partition_tree('jq.job_history') t"

NPROC=$(nproc)
THREADS=$(( CLIENTS < NPROC ? CLIENTS : NPROC ))

if [ ! -f "$(pg_config --sharedir)/extension/job_queue.control" ]; then
	echo "job_queue is not installed: run make install first" >&2
	exit 1
fi

bench_cluster job_queue_bench
export PGDATABASE=bench

set_conf()
{
	sql -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
}

executors_running()
{
	sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'job_queue executor'"
}

execution_off()
{
	set_conf jq.execute_in_server off
	await "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'job_queue executor'"
}

# turn the executors on and print when
execution_on_at()
{
	sql -c "ALTER SYSTEM SET jq.execute_in_server = on" -c "SELECT pg_reload_conf()" \
		-c "SELECT clock_timestamp()" | tail -1
}

execution_on()
{
	set_conf jq.execute_in_server on
	await "SELECT count(*) = current_setting('jq.executors_per_database')::int
			  FROM pg_stat_activity WHERE backend_type = 'job_queue executor'"
}

reset_jobs()
{
	sql -c "TRUNCATE jq.job, jq.job_history" -c "CHECKPOINT"
}

# pgbench on a one-line script; prints transactions per second
pgbench_tps()
{
	local script=$TMP/$1.sql
	shift
	printf '%s\n' "$1" >"$script"
	shift
	"$BINDIR/pgbench" -n -c "$CLIENTS" -j "$THREADS" "$@" -f "$script" bench \
		>"$script.out" 2>&1 || { cat "$script.out" >&2; exit 1; }
	sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$script.out"
}

ROWS=()
row()
{
	ROWS+=("$(printf '  %-50s %14s %14s %9s' "$1" "$2" "${3:-}" "${4:-}")")
}
# a title, then optional column headings
section()
{
	ROWS+=("" "$(printf '%-52s %14s %14s %9s' "$1" "${2:-}" "${3:-}" "${4:-}")")
}
ratio()
{
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}
fmt()
{
	awk -v a="$1" 'BEGIN { printf "%.0f", a }'
}
pretty_bytes()
{
	awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MB", b / 1048576; else printf "%.0f kB", b / 1024 }'
}

###########################################################################
# cluster
###########################################################################

bench_start "listen_addresses = ''" \
	"shared_preload_libraries = 'job_queue, pg_stat_statements'" \
	"max_worker_processes = 32" "max_connections = 100" "pg_stat_statements.track = none" \
	"${BENCH_CONF:-}"
sql -d postgres -c "CREATE DATABASE bench" -c "CREATE EXTENSION pg_stat_statements"
sql -c "CREATE EXTENSION job_queue" -c "CREATE EXTENSION pgstattuple"
# executors start for jobs: wait until the scheduler has found the extension
await "SELECT count(*) > 0 FROM jq_executors"

echo "job_queue benchmark"
echo
echo "  machine       $NPROC CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo) RAM"
echo "  server        $(sql -c "SELECT version()")"
echo "  settings      fsync=$(sql -c 'SHOW fsync'), synchronous_commit=$(sql -c 'SHOW synchronous_commit'), shared_buffers=$(sql -c 'SHOW shared_buffers'), wal_level=$(sql -c 'SHOW wal_level'), autovacuum_naptime=$(sql -c 'SHOW autovacuum_naptime')"
echo "  job_queue     executors_per_database=$(sql -c 'SHOW jq.executors_per_database'), batch_size=$(sql -c 'SHOW jq.batch_size'), batch_time=$(sql -c 'SHOW jq.batch_time')"
echo "  load average  $(cut -d' ' -f1-3 /proc/loadavg) at the start (other processes compete for the CPUs)"
echo "  load          $CLIENTS pgbench clients, $THREADS threads, enqueue phases: $ROUNDS rounds of ${SECONDS_PER_PHASE} s"
echo

# Reference tables for plain INSERTs: one with jq.job's columns and only a
# primary key, one that also has its indexes.
sql <<'EOF'
CREATE TABLE plain_job (
	id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	queue text NOT NULL,
	kind text NOT NULL DEFAULT 'sql',
	command text NOT NULL,
	payload jsonb,
	priority integer NOT NULL,
	state text NOT NULL DEFAULT 'ready',
	run_at timestamptz NOT NULL,
	attempts integer NOT NULL DEFAULT 0,
	max_attempts integer NOT NULL,
	timeout interval,
	owner oid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	lease_owner text,
	lease_expires_at timestamptz,
	executor_token bigint,
	errors jsonb
);
CREATE TABLE plain_job_indexed (LIKE jq.job INCLUDING ALL);
EOF
INSERT_VALUES="(queue, command, priority, run_at, max_attempts, timeout, owner) VALUES ('default', 'SELECT 1', 0, now(), 5, '15 min', 10)"

###########################################################################
# enqueue rate, one job per transaction
###########################################################################

# Rounds interleave the four variants, so that drifts of the machine hit
# them alike; each figure is the mean of its rounds.
execution_off
sum_enqueue=0 sum_notify=0 sum_plain=0 sum_plain_idx=0
for round in $(seq 1 "$ROUNDS"); do
	reset_jobs
	tps=$(pgbench_tps enqueue "SELECT jq_enqueue('SELECT 1');" -T "$SECONDS_PER_PHASE")
	sum_enqueue=$(awk -v a="$sum_enqueue" -v b="$tps" 'BEGIN { print a + b }')
	reset_jobs
	sql -c "TRUNCATE plain_job" -c "CHECKPOINT"
	tps=$(pgbench_tps plain "INSERT INTO plain_job $INSERT_VALUES;" -T "$SECONDS_PER_PHASE")
	sum_plain=$(awk -v a="$sum_plain" -v b="$tps" 'BEGIN { print a + b }')
	sql -c "TRUNCATE plain_job_indexed" -c "CHECKPOINT"
	tps=$(pgbench_tps plain_indexed "INSERT INTO plain_job_indexed $INSERT_VALUES;" -T "$SECONDS_PER_PHASE")
	sum_plain_idx=$(awk -v a="$sum_plain_idx" -v b="$tps" 'BEGIN { print a + b }')
	reset_jobs
	set_conf jq.notify on
	tps=$(pgbench_tps enqueue_notify "SELECT jq_enqueue('SELECT 1');" -T "$SECONDS_PER_PHASE")
	sum_notify=$(awk -v a="$sum_notify" -v b="$tps" 'BEGIN { print a + b }')
	sql -c "ALTER SYSTEM RESET jq.notify" -c "SELECT pg_reload_conf()" >/dev/null
done
sql -c "TRUNCATE plain_job, plain_job_indexed"
tps_enqueue=$(awk -v a="$sum_enqueue" -v n="$ROUNDS" 'BEGIN { print a / n }')
tps_notify=$(awk -v a="$sum_notify" -v n="$ROUNDS" 'BEGIN { print a / n }')
tps_plain=$(awk -v a="$sum_plain" -v n="$ROUNDS" 'BEGIN { print a / n }')
tps_plain_idx=$(awk -v a="$sum_plain_idx" -v n="$ROUNDS" 'BEGIN { print a / n }')

section "Enqueue, one job per transaction (jobs/s)" job_queue reference ratio
row "jq_enqueue vs INSERT, table with primary key" "$(fmt "$tps_enqueue")" "$(fmt "$tps_plain")" "$(ratio "$tps_enqueue" "$tps_plain")"
row "jq_enqueue vs INSERT, table with jq.job's indexes" "$(fmt "$tps_enqueue")" "$(fmt "$tps_plain_idx")" "$(ratio "$tps_enqueue" "$tps_plain_idx")"
row "jq_enqueue with jq.notify = on vs off" "$(fmt "$tps_notify")" "$(fmt "$tps_enqueue")" "$(ratio "$tps_notify" "$tps_enqueue")"

###########################################################################
# bulk enqueue
###########################################################################

reset_jobs
bulk_s=$(sql <<EOF
SELECT clock_timestamp() AS t0 \gset
SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[$BULK_JOBS]))) \g /dev/null
SELECT extract(epoch FROM clock_timestamp() - :'t0');
EOF
)
sql -c "CHECKPOINT"
plain_bulk_s=$(sql <<EOF
SELECT clock_timestamp() AS t0 \gset
INSERT INTO plain_job_indexed (queue, command, priority, run_at, max_attempts, timeout, owner)
SELECT 'default', 'SELECT 1', 0, now(), 5, '15 min', 10 FROM generate_series(1, $BULK_JOBS);
SELECT extract(epoch FROM clock_timestamp() - :'t0');
EOF
)
sql -c "TRUNCATE plain_job_indexed"
bulk_rate=$(awk -v n="$BULK_JOBS" -v s="$bulk_s" 'BEGIN { print n / s }')
plain_bulk_rate=$(awk -v n="$BULK_JOBS" -v s="$plain_bulk_s" 'BEGIN { print n / s }')

section "Bulk enqueue, $BULK_JOBS jobs in one call (jobs/s)" job_queue reference ratio
row "jq_enqueue_bulk vs INSERT ... SELECT (indexed)" "$(fmt "$bulk_rate")" "$(fmt "$plain_bulk_rate")" "$(ratio "$bulk_rate" "$plain_bulk_rate")"
row "  time (s)" "$(printf '%.2f' "$bulk_s")" "$(printf '%.2f' "$plain_bulk_s")"

###########################################################################
# end-to-end throughput
###########################################################################

reset_jobs
sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[$E2E_JOBS])))" >/dev/null
sql -c "CHECKPOINT"
switch_at=$(execution_on_at)
await "SELECT NOT EXISTS (SELECT FROM jq.job)" 3600
sleep 2		# let the workers' statistics reach pg_stat_user_tables
IFS='|' read -r e2e_total e2e_exec e2e_ok <<<"$(sql -c "
	SELECT extract(epoch FROM max(finished_at) - '$switch_at'::timestamptz),
		   extract(epoch FROM max(finished_at) - min(started_at)),
		   count(*) FILTER (WHERE state = 'succeeded')
	FROM jq.job_history")"
IFS='|' read -r size_job_e2e size_hist_e2e dead_job_e2e dead_hist_e2e sdead_job_e2e sdead_hist_e2e \
	live_job_e2e live_hist_e2e <<<"$(sql -c "
	SELECT pg_total_relation_size('jq.job'),
		   (SELECT sum(pg_total_relation_size(t.relid)) FROM $HIST_PARTS),
		   (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'jq.job'::regclass),
		   (SELECT sum(s.n_dead_tup) FROM pg_stat_user_tables s JOIN $HIST_PARTS USING (relid)),
		   (SELECT dead_tuple_count FROM pgstattuple('jq.job')),
		   (SELECT sum((pgstattuple(t.relid)).dead_tuple_count) FROM $HIST_PARTS WHERE t.isleaf),
		   (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'jq.job'::regclass),
		   (SELECT sum(s.n_live_tup) FROM pg_stat_user_tables s JOIN $HIST_PARTS USING (relid))")"

section "End to end, $E2E_JOBS no-op jobs already enqueued" "jobs/s"
row "from jq.execute_in_server = on to the last finish" "$(fmt "$(awk -v n="$E2E_JOBS" -v s="$e2e_total" 'BEGIN { print n / s }')")"
row "from the first start to the last finish" "$(fmt "$(awk -v n="$E2E_JOBS" -v s="$e2e_exec" 'BEGIN { print n / s }')")"
row "  seconds, from the switch and from the first start" "$(printf '%.2f' "$e2e_total")" "$(printf '%.2f' "$e2e_exec")"
row "  jobs succeeded, of" "$e2e_ok" "$E2E_JOBS"
section "Footprint after those jobs" jq.job jq.job_history
row "table + indexes" "$(pretty_bytes "$size_job_e2e")" "$(pretty_bytes "$size_hist_e2e")"
row "dead tuples (pg_stat_user_tables.n_dead_tup)" "$dead_job_e2e" "$dead_hist_e2e"
row "live tuples (pg_stat_user_tables.n_live_tup)" "$live_job_e2e" "$live_hist_e2e"
row "dead tuples (pgstattuple)" "$sdead_job_e2e" "$sdead_hist_e2e"

###########################################################################
# end-to-end throughput of queues with a concurrency limit
###########################################################################

execution_off
reset_jobs
sql -c "SELECT jq_configure_queue('limited-' || i, concurrency => 2)
	  FROM generate_series(1, $LIMITED_QUEUES) i" \
  -c "SELECT jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[$LIMITED_JOBS]), queue => 'limited-' || i)
	  FROM generate_series(1, $LIMITED_QUEUES) i" >/dev/null
sql -c "CHECKPOINT"
switch_at=$(execution_on_at)
await "SELECT NOT EXISTS (SELECT FROM jq.job)" 3600
IFS='|' read -r limited_s limited_ok <<<"$(sql -c "
	SELECT extract(epoch FROM max(finished_at) - '$switch_at'::timestamptz),
		   count(*) FILTER (WHERE state = 'succeeded')
	FROM jq.job_history")"
sql -c "DELETE FROM jq.queue"

section "End to end, $LIMITED_QUEUES queues of concurrency 2, $LIMITED_JOBS no-op jobs each" "jobs/s"
row "from jq.execute_in_server = on to the last finish" \
	"$(fmt "$(awk -v n="$(( LIMITED_QUEUES * LIMITED_JOBS ))" -v s="$limited_s" 'BEGIN { print n / s }')")"
row "  seconds; jobs succeeded, of" "$(printf '%.2f' "$limited_s")" "$limited_ok" "$(( LIMITED_QUEUES * LIMITED_JOBS ))"

###########################################################################
# pickup latency
###########################################################################

sql -c "CREATE TABLE lat (k int PRIMARY KEY, started timestamptz NOT NULL)" \
  -c "CREATE TABLE enq (k int PRIMARY KEY, committed timestamptz NOT NULL)"
sleep 1
# One session, autocommit: the enqueuer reads its clock as soon as the
# enqueuing transaction's COMMIT has returned to the client, with a query
# that writes nothing (a write would compete with the job's claim for the
# WAL flush); the readings are loaded into enq afterwards.
for k in $(seq 1 "$LATENCY_JOBS"); do
	echo "SELECT jq_enqueue('INSERT INTO lat VALUES ($k, clock_timestamp())');"
	echo "SELECT $k, clock_timestamp();"
	echo "SELECT pg_sleep(0.02);"
done >"$TMP/latency.sql"
sql -F, -f "$TMP/latency.sql" | grep , >"$TMP/enq.csv"
sql -c "\\copy enq FROM '$TMP/enq.csv' (FORMAT csv)"
await "SELECT count(*) = $LATENCY_JOBS FROM lat"
IFS='|' read -r p50 p95 p99 pmax c50 c99 <<<"$(sql -c "
	SELECT to_char(p[1], 'FM9990.00'), to_char(p[2], 'FM9990.00'), to_char(p[3], 'FM9990.00'),
		   to_char(mx, 'FM9990.00'), to_char(c[1], 'FM9990.00'), to_char(c[2], 'FM9990.00')
	FROM (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY d) AS p,
				 max(d) AS mx
		  FROM (SELECT extract(epoch FROM l.started - e.committed) * 1000 AS d
				FROM lat l JOIN enq e USING (k)) s) a,
		 (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY d) AS c
		  FROM (SELECT extract(epoch FROM l.started - j.created_at) * 1000 AS d
				FROM lat l
				JOIN jq_jobs j ON j.command = format('INSERT INTO lat VALUES (%s, clock_timestamp())', l.k)) s) b")"

section "Pickup latency, $LATENCY_JOBS jobs enqueued one by one" "ms"
row "to idle executors; COMMIT returned -> job ran, p50" "$p50"
row "                                               p95" "$p95"
row "                                               p99" "$p99"
row "                                               max" "$pmax"
row "enqueue statement began -> job ran, p50" "$c50"
row "                                    p99" "$c99"

###########################################################################
# lateness of delayed jobs
###########################################################################

# One transaction enqueues jobs due at random instants of the 10 s that
# start 1 s later (so that none is due before it commits); the scheduler's
# timer has to start each on time.  Lateness: the job started - its run_at.
sql -c "SELECT count(jq_enqueue('SELECT 1', queue => 'lateness',
								run_at => clock_timestamp() + interval '1 second'
										  + random() * interval '10 seconds'))
	  FROM generate_series(1, $LATENESS_JOBS)" >/dev/null
# quiet while they come due: a psql connection every 50 ms would compete
# with the scheduler and the executors for the CPUs
sleep 11.5
await "SELECT count(*) = $LATENESS_JOBS FROM jq.job_history WHERE queue = 'lateness'" 60
IFS='|' read -r l50 l99 lmax lneg <<<"$(sql -c "
	SELECT to_char(p[1], 'FM9990.00'), to_char(p[2], 'FM9990.00'), to_char(mx, 'FM9990.00'), neg
	FROM (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY d) AS p,
				 max(d) AS mx, count(*) FILTER (WHERE d < 0) AS neg
		  FROM (SELECT extract(epoch FROM h.started_at - h.run_at) * 1000 AS d
				FROM jq.job_history h WHERE h.queue = 'lateness') s) a")"

section "Lateness, $LATENESS_JOBS jobs due at random in 10 s" "ms"
row "job started - run_at, p50" "$l50"
row "                      p99" "$l99"
row "                      max" "$lmax"
row "  jobs started before their run_at" "$lneg"

###########################################################################
# cold start: pickup once the database's workers have left
###########################################################################

# Executors leave 200 ms after their last job, then the scheduler; each job
# is enqueued once none of them is left, so that it waits for the launcher
# to start the scheduler and the scheduler an executor.
set_conf jq.executor_idle_timeout 200ms
sql -c "CREATE TABLE cold (k int PRIMARY KEY, started timestamptz NOT NULL)" \
  -c "CREATE TABLE cold_enq (k int PRIMARY KEY, committed timestamptz NOT NULL)"
for k in $(seq 1 "$COLD_JOBS"); do
	await "SELECT count(*) = 0 FROM pg_stat_activity
			  WHERE backend_type IN ('job_queue scheduler', 'job_queue executor',
									 'job_queue shell executor')"
	sql -F, -c "SELECT jq_enqueue('INSERT INTO cold VALUES ($k, clock_timestamp())')" \
		-c "SELECT $k, clock_timestamp()" | grep , >>"$TMP/cold.csv"
	await "SELECT count(*) = $k FROM cold"
done
sql -c "\\copy cold_enq FROM '$TMP/cold.csv' (FORMAT csv)"
IFS='|' read -r k50 k95 kmax <<<"$(sql -c "
	SELECT to_char(p[1], 'FM9990.00'), to_char(p[2], 'FM9990.00'), to_char(mx, 'FM9990.00')
	FROM (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY d) AS p, max(d) AS mx
		  FROM (SELECT extract(epoch FROM c.started - e.committed) * 1000 AS d
				FROM cold c JOIN cold_enq e USING (k)) s) a")"

section "Cold start, $COLD_JOBS jobs each enqueued once no worker of the database was left" "ms"
row "COMMIT returned -> job ran, p50" "$k50"
row "                            p95" "$k95"
row "                            max" "$kmax"

###########################################################################
# statements while idle: the scheduler and an executor wait for work, and
# stay (no idle timeout), so that the window holds no departure of theirs
###########################################################################

set_conf jq.executor_idle_timeout 0
idle_job=$(sql -c "SELECT jq_enqueue('SELECT 1')")
await "SELECT state = 'succeeded' FROM jq_jobs WHERE id = $idle_job"
set_conf pg_stat_statements.track all
sleep 2
sql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
sleep "$IDLE_SECONDS"
idle_calls=$(sql -d postgres -c "
	SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
	WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')")
idle_workers=$(sql -c "SELECT count(*) FROM pg_stat_activity
					   WHERE backend_type IN ('job_queue scheduler', 'job_queue executor')")
set_conf pg_stat_statements.track none
sql -c "ALTER SYSTEM RESET jq.executor_idle_timeout" -c "SELECT pg_reload_conf()" >/dev/null

section "Idle, ${IDLE_SECONDS} s (pg_stat_statements.track = all)"
row "statements per minute in the jobs' database" \
	"$(awk -v c="$idle_calls" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.1f", c * 60 / s }')"
row "  its workers waiting meanwhile" "$idle_workers"

###########################################################################
# sustained run
###########################################################################

reset_jobs
printf '%s\n' "SELECT jq_enqueue('SELECT 1');" >"$TMP/sustain.sql"
vacuums_before=$(sql -c "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'jq.job'::regclass")
sustain_start=$(sql -c "SELECT clock_timestamp()")
"$BINDIR/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$SUSTAIN_SECONDS" \
	-f "$TMP/sustain.sql" bench >"$TMP/sustain.out" 2>&1 &
pgbench_pid=$!

SAMPLE_FMT='  %8s %12s %12s %11s %12s %12s %13s %14s'
sample()
{
	sql -c "
		SELECT format('$SAMPLE_FMT',
					  round(extract(epoch FROM clock_timestamp() - '$sustain_start'::timestamptz)),
					  pg_size_pretty(pg_total_relation_size('jq.job')),
					  (SELECT count(*) FROM jq.job),
					  s.n_dead_tup, (SELECT dead_tuple_count FROM pgstattuple('jq.job')),
					  s.autovacuum_count - $vacuums_before,
					  pg_size_pretty((SELECT sum(pg_total_relation_size(t.relid)) FROM $HIST_PARTS)),
					  (SELECT count(*) FROM jq.job_history))
		FROM pg_stat_user_tables s WHERE s.relid = 'jq.job'::regclass"
}

SAMPLES=()
SAMPLES+=("$(printf "$SAMPLE_FMT" 'time (s)' 'jq.job size' 'active jobs' 'n_dead_tup' 'dead (scan)' 'autovacuums' 'history size' 'finished jobs')")
SAMPLES+=("$(sample)")
elapsed=0
while [ "$elapsed" -lt "$SUSTAIN_SECONDS" ]; do
	step=$(( SUSTAIN_SECONDS - elapsed < SAMPLE_SECONDS ? SUSTAIN_SECONDS - elapsed : SAMPLE_SECONDS ))
	sleep "$step"
	elapsed=$(( elapsed + step ))
	SAMPLES+=("$(sample)")
done
wait "$pgbench_pid" || { cat "$TMP/sustain.out" >&2; exit 1; }
sustain_end=$(sql -c "SELECT clock_timestamp()")
sustain_enqueued=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMP/sustain.out")
IFS='|' read -r sustain_done sustain_secs backlog <<<"$(sql -c "
	SELECT count(*), extract(epoch FROM '$sustain_end'::timestamptz - '$sustain_start'::timestamptz),
		   (SELECT count(*) FROM jq.job)
	FROM jq.job_history
	WHERE finished_at BETWEEN '$sustain_start' AND '$sustain_end'")"
drain_start=$(date +%s.%N)
await "SELECT NOT EXISTS (SELECT FROM jq.job)" 3600
drain_s=$(awk -v a="$drain_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep 2
SAMPLES+=("$(sample)   (after the backlog drained)")

section "Sustained run, ${SUSTAIN_SECONDS} s: $CLIENTS clients enqueuing at full speed" total "per second"
row "jobs enqueued" "$sustain_enqueued" "$(fmt "$(awk -v n="$sustain_enqueued" -v s="$sustain_secs" 'BEGIN { print n / s }')")"
row "jobs processed by the executors" "$sustain_done" "$(fmt "$(awk -v n="$sustain_done" -v s="$sustain_secs" 'BEGIN { print n / s }')")"
row "jobs left at the end, seconds to drain them" "$backlog" "$drain_s"
IFS='|' read -r heap_job idx_job heap_hist idx_hist <<<"$(sql -c "
	SELECT pg_relation_size('jq.job'), pg_indexes_size('jq.job'),
		   (SELECT sum(pg_relation_size(t.relid)) FROM $HIST_PARTS),
		   (SELECT sum(pg_indexes_size(t.relid)) FROM $HIST_PARTS)")"
section "Footprint after the sustained run" heap indexes
row "jq.job" "$(pretty_bytes "$heap_job")" "$(pretty_bytes "$idx_job")"
row "jq.job_history" "$(pretty_bytes "$heap_hist")" "$(pretty_bytes "$idx_hist")"

###########################################################################
# in-server shell jobs
###########################################################################

# The jobs wait while the database has no shell executor, then the switch
# releases them all; each runs /bin/sh -c true.  The reference is the same
# command run one after the other by this script.  The jobs before stay in
# jq.job_history, for the check of the report.
shell_executors=${SHELL_EXECUTORS:-$(sql -c "SHOW jq.shell_executors_per_database")}
set_conf jq.shell_executors_per_database 0
await "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'job_queue shell executor'"
sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('true'::text, ARRAY[$SHELL_JOBS]), kind => 'shell'))" >/dev/null
sql -c "CHECKPOINT"
shell_switch_at=$(sql -c "ALTER SYSTEM SET jq.shell_executors_per_database = '$shell_executors'" \
	-c "SELECT pg_reload_conf()" -c "SELECT clock_timestamp()" | tail -1)
await "SELECT NOT EXISTS (SELECT FROM jq.job)" 3600
IFS='|' read -r shell_total shell_exec shell_ok <<<"$(sql -c "
	SELECT extract(epoch FROM max(finished_at) - '$shell_switch_at'::timestamptz),
		   extract(epoch FROM max(finished_at) - min(started_at)),
		   count(*) FILTER (WHERE state = 'succeeded')
	FROM jq.job_history WHERE kind = 'shell'")"
fork_start=$(date +%s.%N)
for _ in $(seq 1 "$SHELL_JOBS"); do
	/bin/sh -c true
done
fork_s=$(awk -v a="$fork_start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
fork_rate=$(awk -v n="$SHELL_JOBS" -v s="$fork_s" 'BEGIN { print n / s }')
shell_rate=$(awk -v n="$SHELL_JOBS" -v s="$shell_exec" 'BEGIN { print n / s }')

section "In-server shell jobs: $SHELL_JOBS x true, $shell_executors executors" "jobs/s" "/bin/sh -c" ratio
row "from the switch to the last finish" "$(fmt "$(awk -v n="$SHELL_JOBS" -v s="$shell_total" 'BEGIN { print n / s }')")"
row "from the first start to the last finish, vs in a loop" "$(fmt "$shell_rate")" "$(fmt "$fork_rate")" "$(ratio "$shell_rate" "$fork_rate")"
row "  per shell executor" "$(fmt "$(awk -v r="$shell_rate" -v n="$shell_executors" 'BEGIN { print r / n }')")"
row "  seconds, from the switch and from the first start" "$(printf '%.2f' "$shell_total")" "$(printf '%.2f' "$shell_exec")"
row "  jobs succeeded, of" "$shell_ok" "$SHELL_JOBS"
sql -c "ALTER SYSTEM RESET jq.shell_executors_per_database" -c "SELECT pg_reload_conf()" >/dev/null

###########################################################################
# report
###########################################################################

failed=$(sql -c "SELECT count(*) FROM jq.job_history WHERE state <> 'succeeded'")
printf '%s\n' "${ROWS[@]}"
echo
echo "  jq.job footprint during the sustained run (n_dead_tup: pg_stat_user_tables; dead (scan): pgstattuple)"
printf '%s\n' "${SAMPLES[@]}"
echo
if [ "$failed" != 0 ]; then
	echo "  WARNING: $failed jobs did not succeed"
fi
"$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
