#!/bin/bash
# Benchmark of jq_worker on a throwaway cluster where nothing runs in the
# server (jq.execute_in_server = off):
#
#  - SQL no-op jobs (SELECT 1), all enqueued first, drained by one worker
#    with --concurrency 8 (batches of 64 jobs per jq_run_sql_many call, the
#    default, then of 128), side by side with graphile-worker draining as
#    many no-op jobs with --jobs 8 (installed from the npm registry into
#    a temporary directory for this run only; BENCH_GRAPHILE=0 skips it);
#  - the fleet curve: the same drain by 1, 2, 4 and 8 workers, each with
#    --concurrency 4;
#  - shell jobs (true), all enqueued first, drained by one worker with
#    --concurrency 8, side by side with 8 shell loops running
#    /bin/sh -c true; then by the in-server shell executors (the server
#    setting, 2 by default), side by side with as many loops;
#  - what one call of jq_heartbeat, jq_run_sql and jq_complete costs, each
#    its own transaction, and jq_run_sql_many per job of a batch of 32,
#    against a bare committing statement;
#  - pickup latency through LISTEN/NOTIFY: jobs enqueued one at a time into
#    idle workers, from the enqueuing COMMIT to the job's process running,
#    and from the job's creation to its claim (started_at - created_at);
#    then SQL jobs, from the enqueuing COMMIT to the job's statement.
#
# Needs the extension and jq_worker installed (make install).  Run as
# postgres, or as root (it re-executes itself as postgres).
#
#   BENCH_WORKER_JOBS          SQL jobs of the drain phases       (20000)
#   BENCH_WORKER_FLEET         worker counts of the fleet curve   (1 2 4 8)
#   BENCH_WORKER_SHELL_JOBS    shell jobs of the shell phase      (2000)
#   BENCH_WORKER_LATENCY_JOBS  jobs of the latency phase          (200)
#   BENCH_GRAPHILE             0: no graphile-worker reference    (1)
#   BENCH_CONF                 extra postgresql.conf lines        (none)
set -euo pipefail
. "$(dirname "$0")/cluster.sh"
bench_as_postgres "$@"

JOBS=${BENCH_WORKER_JOBS:-20000}
FLEET=${BENCH_WORKER_FLEET:-1 2 4 8}
SHELL_JOBS=${BENCH_WORKER_SHELL_JOBS:-2000}
LATENCY_JOBS=${BENCH_WORKER_LATENCY_JOBS:-200}
GRAPHILE=${BENCH_GRAPHILE:-1}
PARALLEL=8

if [ ! -x "$BINDIR/jq_worker" ]; then
	echo "jq_worker is not installed in $BINDIR: run make install first" >&2
	exit 1
fi

# the cluster listens on a socket in $TMP, and on a free loopback port for
# graphile-worker
bench_cluster job_queue_worker_bench
export PGDATABASE=postgres
AWAIT_POLL=0.02
WORKER_PIDS=()

finish()
{
	for pid in "${WORKER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	bench_finish
}
trap finish EXIT

# start_workers N NAME ARGS...: N jq_worker processes NAME1..NAMEN
start_workers()
{
	local n=$1 name=$2
	shift 2
	for i in $(seq 1 "$n"); do
		"$BINDIR/jq_worker" --quiet --name "$name$i" "$@" 2>>"$TMP/$name$i.log" &
		WORKER_PIDS+=($!)
	done
}

stop_workers()
{
	kill "${WORKER_PIDS[@]}" 2>/dev/null || true
	wait "${WORKER_PIDS[@]}" 2>/dev/null || true
	WORKER_PIDS=()
}

# drain KIND COMMAND JOBS WORKERS ARGS...: enqueue JOBS jobs, start WORKERS
# workers with ARGS, wait until none is left; prints jobs/s from the first
# claim to the last finish
drain()
{
	local kind=$1 command=$2 jobs=$3 workers=$4
	shift 4
	sql -c "TRUNCATE jq.job_history"
	sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('$command'::text, ARRAY[$jobs]), kind => '$kind'))" >/dev/null
	sql -c "CHECKPOINT"
	start_workers "$workers" "$kind" --kinds "$kind" "$@"
	await "SELECT NOT EXISTS (SELECT FROM jq.job)"
	stop_workers
	await "SELECT count(*) = $jobs FROM jq.job_history WHERE state = 'succeeded'"
	sql -c "SELECT round($jobs / extract(epoch FROM max(finished_at) - min(started_at)))
			FROM jq.job_history"
}

# seconds a command takes
timed()
{
	local t0
	t0=$(date +%s.%N)
	"$@" >>"$TMP/timed.log" 2>&1
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'
}

# graphile-worker ARGS...: in its directory, with the no-op task
graphile()
{
	(cd "$TMP/graphile" && ./node_modules/.bin/graphile-worker \
		-c "postgres://postgres@127.0.0.1:$PGPORT/postgres" "$@")
}

# "version jobs/s" of graphile-worker --jobs $PARALLEL --once draining $JOBS
# no-op jobs; the time of a run on an empty queue (start and exit) is taken off
graphile_rate()
{
	local empty full
	mkdir -p "$TMP/graphile/tasks"
	echo 'module.exports = async () => {};' >"$TMP/graphile/tasks/noop.js"
	(cd "$TMP/graphile" && npm_config_cache="$TMP/npm" npm install --silent --no-audit \
		--no-fund graphile-worker >>"$TMP/npm.log" 2>&1) || return 1
	graphile --schema-only >>"$TMP/graphile.log" 2>&1 || return 1
	empty=$(timed graphile --once --jobs "$PARALLEL")
	sql -c "SELECT count(graphile_worker.add_job('noop')) FROM generate_series(1, $JOBS)" >/dev/null
	sql -c "CHECKPOINT"
	full=$(timed graphile --once --jobs "$PARALLEL")
	[ "$(sql -c "SELECT count(*) FROM graphile_worker.jobs")" = 0 ] || return 1
	echo "$(cd "$TMP/graphile" && node -p 'require("graphile-worker/package.json").version')" \
		"$(awk -v n="$JOBS" -v f="$full" -v e="$empty" 'BEGIN { printf "%.0f", n / (f - e) }')"
}

# jobs/s of N loops running /bin/sh -c true, $SHELL_JOBS in all
shell_loop_rate()
{
	local loops=$1 pids=() t0
	t0=$(date +%s.%N)
	for _ in $(seq 1 "$loops"); do
		(for _ in $(seq 1 $(( SHELL_JOBS / loops ))); do /bin/sh -c true; done) &
		pids+=($!)
	done
	wait "${pids[@]}"
	awk -v n="$(( SHELL_JOBS / loops * loops ))" -v a="$t0" -v b="$(date +%s.%N)" \
		'BEGIN { printf "%.0f", n / (b - a) }'
}

# jobs/s of the in-server shell executors running $SHELL_JOBS true jobs,
# from the first start to the last finish
in_server_shell_rate()
{
	sql -c "TRUNCATE jq.job_history"
	sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('true'::text, ARRAY[$SHELL_JOBS]), kind => 'shell'))" >/dev/null
	sql -c "CHECKPOINT"
	sql -c "ALTER SYSTEM SET jq.execute_in_server = on" -c "SELECT pg_reload_conf()" >/dev/null
	await "SELECT NOT EXISTS (SELECT FROM jq.job)"
	sql -c "ALTER SYSTEM RESET jq.execute_in_server" -c "SELECT pg_reload_conf()" >/dev/null
	await "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type LIKE 'job_queue%executor')"
	sql -c "SELECT round($SHELL_JOBS / extract(epoch FROM max(finished_at) - min(started_at)))
			FROM jq.job_history"
}

bench_start "listen_addresses = '127.0.0.1'" "shared_preload_libraries = 'job_queue'" \
	"jq.execute_in_server = off" "${BENCH_CONF:-}"
sql -c "CREATE EXTENSION job_queue"

echo "jq_worker benchmark"
echo
echo "  machine   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "  server    $(sql -c "SELECT version()")"
echo "  settings  fsync=$(sql -c 'SHOW fsync'), synchronous_commit=$(sql -c 'SHOW synchronous_commit')"
echo "  workers   jq_worker processes on the same machine, --quiet"

sql_rate=$(drain sql 'SELECT 1' "$JOBS" 1 --concurrency "$PARALLEL")
sql_rate_128=$(drain sql 'SELECT 1' "$JOBS" 1 --concurrency "$PARALLEL" --batch-size 128)
echo
printf '%-60s %10s\n' "SQL no-op jobs (SELECT 1), $JOBS enqueued beforehand" "jobs/s"
printf '  %-58s %10s\n' "jq_worker, --concurrency $PARALLEL (batches of 64)" "$sql_rate" \
	"jq_worker, --concurrency $PARALLEL --batch-size 128" "$sql_rate_128"
if [ "$GRAPHILE" != 0 ]; then
	if read -r gversion grate < <(graphile_rate) && [ -n "${grate:-}" ]; then
		printf '  %-58s %10s\n' "graphile-worker $gversion, --jobs $PARALLEL (from npm, for this run)" \
			"$grate" "jq_worker / graphile-worker" \
			"$(awk -v a="$sql_rate" -v b="$grate" 'BEGIN { printf "%.2f", a / b }')"
	else
		printf '  %-58s %10s\n' "graphile-worker: could not install or run it" "-"
	fi
fi

echo
printf '%-60s %10s\n' "Fleet: the same drain, each worker --concurrency 4" "jobs/s"
for n in $FLEET; do
	printf '  %-58s %10s\n' "$n worker$([ "$n" = 1 ] || echo s)" \
		"$(drain sql 'SELECT 1' "$JOBS" "$n" --concurrency 4)"
done

# ms per call of the external workers' functions, each its own transaction,
# 300 calls in one session, against a bare committing statement
per_call()
{
	local t0
	sql -c "SELECT id || ' ' || attempt FROM jq_dequeue(NULL, 300, '10 minutes')" >"$TMP/held"
	awk -v f="$1" '{ printf f "\n", $1, $2 }' "$TMP/held" >"$TMP/calls.sql"
	t0=$(date +%s.%N)
	sql -f "$TMP/calls.sql" >/dev/null
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", (b - a) * 1000 / 300 }'
}
# ms per job of jq_run_sql_many, N jobs a call, 10 calls in one session
per_batch_job()
{
	local n=$1 t0
	sql -c "SELECT id || ' ' || attempt FROM jq_dequeue(NULL, 10 * $n, '10 minutes')" >"$TMP/held"
	awk -v n="$n" '{ ids = ids (ids == "" ? "" : ",") $1; att = att (att == "" ? "" : ",") $2 }
		NR % n == 0 { printf "SELECT count(*) FROM jq_run_sql_many(%c{%s}%c, %c{%s}%c);\n", 39, ids, 39, 39, att, 39; ids = ""; att = "" }' \
		"$TMP/held" >"$TMP/calls.sql"
	t0=$(date +%s.%N)
	sql -f "$TMP/calls.sql" >/dev/null
	awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1000 / (10 * n) }'
}
sql -c "TRUNCATE jq.job_history" \
	-c "SELECT cardinality(jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[1520])))" >/dev/null
echo
printf '%-60s %10s\n' "Cost per call, 300 calls in one session, each committed" "ms"
printf '  %-58s %10s\n' "SELECT txid_current()" \
	"$(per_call 'SELECT txid_current(); -- %s %s')" \
	"jq_heartbeat(id, attempt => ...)" \
	"$(per_call 'SELECT jq_heartbeat(%s, attempt => %s);')" \
	"jq_run_sql(id, attempt), a SELECT 1 job" \
	"$(per_call 'SELECT jq_run_sql(%s, %s);')" \
	"jq_complete(id, attempt => ...)" \
	"$(per_call 'SELECT jq_complete(%s, attempt => %s);')" \
	"jq_run_sql_many(ids, attempts), 32 SELECT 1 jobs a call, per job" \
	"$(per_batch_job 32)"
sql -c "SELECT count(jq_cancel(id)) FROM jq.job" >/dev/null

shell_rate=$(drain shell true "$SHELL_JOBS" 1 --concurrency "$PARALLEL")
loop_rate=$(shell_loop_rate "$PARALLEL")
executors=$(sql -c "SHOW jq.shell_executors_per_database")
server_rate=$(in_server_shell_rate)
server_loop_rate=$(shell_loop_rate "$executors")
echo
printf '%-60s %10s\n' "Shell jobs (true), $SHELL_JOBS enqueued beforehand" "jobs/s"
printf '  %-58s %10s\n' "jq_worker, --concurrency $PARALLEL" "$shell_rate" \
	"$PARALLEL loops of /bin/sh -c true" "$loop_rate" \
	"jq_worker / loops" "$(awk -v a="$shell_rate" -v b="$loop_rate" 'BEGIN { printf "%.2f", a / b }')" \
	"in-server shell executors ($executors)" "$server_rate" \
	"$executors loops of /bin/sh -c true" "$server_loop_rate" \
	"in-server / loops" "$(awk -v a="$server_rate" -v b="$server_loop_rate" 'BEGIN { printf "%.2f", a / b }')"

# latency: one job at a time into idle workers; each job records when its
# process ran, the session when its COMMIT returned
start_workers 2 latency --concurrency 4
await "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = 'jq_worker'"
sql -c "TRUNCATE jq.job_history" \
	-c "CREATE TABLE committed (id bigint PRIMARY KEY, at timestamptz NOT NULL)" \
	-c "CREATE TABLE ran (id bigint PRIMARY KEY, at timestamptz NOT NULL)"
mkdir "$TMP/ran"
sleep 1
for _ in $(seq 1 "$LATENCY_JOBS"); do
	echo "SELECT jq_enqueue_shell(command => 'date +%s.%N > $TMP/ran/\$JQ_JOB_ID') AS id \\gset"
	echo "INSERT INTO committed VALUES (:id, clock_timestamp());"
	echo "SELECT pg_sleep(0.05);"
done | sql >/dev/null
await "SELECT count(*) = $LATENCY_JOBS FROM jq.job_history WHERE state = 'succeeded'"
for f in "$TMP"/ran/*; do
	printf '%s,%s\n' "${f##*/}" "$(cat "$f")"
done >"$TMP/ran.csv"
sql -c "CREATE TEMP TABLE epochs (id bigint, t float8)" \
	-c "\\copy epochs FROM '$TMP/ran.csv' WITH (FORMAT csv)" \
	-c "INSERT INTO ran SELECT id, to_timestamp(t) FROM epochs"
IFS='|' read -r r50 r95 r99 rmax c50 c95 c99 cmax <<<"$(sql -c "
	WITH run AS (SELECT extract(epoch FROM r.at - c.at) * 1000 AS ms
				 FROM ran r JOIN committed c USING (id)),
		 claim AS (SELECT extract(epoch FROM h.started_at - h.created_at) * 1000 AS ms
				   FROM jq.job_history h JOIN committed c USING (id))
	SELECT to_char(r.p[1], 'FM99990.0'), to_char(r.p[2], 'FM99990.0'),
		   to_char(r.p[3], 'FM99990.0'), to_char(r.mx, 'FM99990.0'),
		   to_char(c.p[1], 'FM99990.0'), to_char(c.p[2], 'FM99990.0'),
		   to_char(c.p[3], 'FM99990.0'), to_char(c.mx, 'FM99990.0')
	FROM (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p,
				 max(ms) AS mx FROM run) r,
		 (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p,
				 max(ms) AS mx FROM claim) c")"
echo
printf '%-60s %10s\n' "Pickup latency, $LATENCY_JOBS jobs enqueued one by one (LISTEN/NOTIFY)" "ms"
printf '  %-58s %10s\n' "COMMIT returned -> the job's process ran, p50" "$r50" \
	"                                          p95" "$r95" \
	"                                          p99" "$r99" \
	"                                          max" "$rmax" \
	"created_at -> claimed (started_at), p50" "$c50" \
	"                                    p95" "$c95" \
	"                                    p99" "$c99" \
	"                                    max" "$cmax"

# the same with SQL jobs, into idle workers of SQL jobs: each job records
# when its statement ran, without a process to start
start_workers 2 latency_sql --concurrency 4 --kinds sql
await "SELECT count(*) >= 4 FROM pg_stat_activity WHERE application_name = 'jq_worker'"
sql -c "CREATE TABLE sql_committed (k integer PRIMARY KEY, at timestamptz NOT NULL)" \
	-c "CREATE TABLE sql_ran (k integer PRIMARY KEY, at timestamptz NOT NULL)"
sleep 1
for k in $(seq 1 "$LATENCY_JOBS"); do
	echo "SELECT jq_enqueue('INSERT INTO sql_ran VALUES ($k, clock_timestamp())');"
	echo "INSERT INTO sql_committed VALUES ($k, clock_timestamp());"
	echo "SELECT pg_sleep(0.05);"
done | sql >/dev/null
await "SELECT count(*) = $LATENCY_JOBS FROM sql_ran"
IFS='|' read -r s50 s95 s99 smax <<<"$(sql -c "
	SELECT to_char(p[1], 'FM99990.0'), to_char(p[2], 'FM99990.0'),
		   to_char(p[3], 'FM99990.0'), to_char(mx, 'FM99990.0')
	FROM (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p,
				 max(ms) AS mx
		  FROM (SELECT extract(epoch FROM r.at - c.at) * 1000 AS ms
				FROM sql_ran r JOIN sql_committed c USING (k)) t) s")"
printf '  %-58s %10s\n' "SQL jobs: COMMIT returned -> the job's statement ran, p50" "$s50" \
	"                                                    p95" "$s95" \
	"                                                    p99" "$s99" \
	"                                                    max" "$smax"
