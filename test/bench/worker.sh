#!/bin/bash
# Benchmark of jq_worker on a throwaway cluster where nothing runs in the
# server (jq.execute_in_server = off):
#
#  - throughput: trivial shell jobs (true), all enqueued first, drained by
#    two jq_worker processes;
#  - pickup latency through LISTEN/NOTIFY: jobs enqueued one at a time into
#    idle workers, from the enqueuing COMMIT to the job's process running,
#    and from the job's creation to its claim (started_at - created_at).
#
# Needs the extension and jq_worker installed (make install); installs
# nothing.  Run as postgres, or as root (it re-executes itself as postgres).
#
#   BENCH_WORKER_JOBS          jobs of the throughput phase       (5000)
#   BENCH_WORKER_CONCURRENCY   --concurrency of each worker       (4)
#   BENCH_WORKER_LATENCY_JOBS  jobs of the latency phase          (200)
#   BENCH_CONF                 extra postgresql.conf lines        (none)
set -euo pipefail

# PostgreSQL refuses to run as root: start again as postgres
[ "$(id -u)" != 0 ] || exec runuser -u postgres -- bash "$(readlink -f "$0")" "$@"

JOBS=${BENCH_WORKER_JOBS:-5000}
CONCURRENCY=${BENCH_WORKER_CONCURRENCY:-4}
LATENCY_JOBS=${BENCH_WORKER_LATENCY_JOBS:-200}

BINDIR=$(pg_config --bindir)
if [ ! -x "$BINDIR/jq_worker" ]; then
	echo "jq_worker is not installed in $BINDIR: run make install first" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/job_queue_worker_bench.XXXXXX)
PGDATA=$TMP/data
WORKER_PIDS=()

finish()
{
	for pid in "${WORKER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ -f "$PGDATA/postmaster.pid" ]; then
		"$BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
}
trap finish EXIT

# the cluster listens on a socket in $TMP only
export PGHOST=$TMP PGPORT=5432 PGDATABASE=postgres PGUSER=postgres
sql()
{
	"$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# poll (every 20 ms) until a query returns t
await()
{
	local give_up=$(( $(date +%s) + 600 ))
	while [ "$(sql -c "$1")" != t ]; do
		if [ "$(date +%s)" -gt "$give_up" ]; then
			echo "gave up waiting for: $1" >&2
			exit 1
		fi
		sleep 0.02
	done
}

start_workers()
{
	for n in 1 2; do
		"$BINDIR/jq_worker" --concurrency "$CONCURRENCY" --name "bench$n" \
			2>>"$TMP/worker$n.log" &
		WORKER_PIDS+=($!)
	done
	await "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = 'jq_worker'"
}

"$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust --no-instructions >"$TMP/initdb.log" 2>&1
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
shared_preload_libraries = 'job_queue'
jq.execute_in_server = off
${BENCH_CONF:-}
EOF
"$BINDIR/pg_ctl" -D "$PGDATA" -l "$TMP/server.log" -w start >/dev/null
sql -c "CREATE EXTENSION job_queue"

echo "jq_worker benchmark"
echo
echo "  machine   $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "  server    $(sql -c "SELECT version()")"
echo "  settings  fsync=$(sql -c 'SHOW fsync'), synchronous_commit=$(sql -c 'SHOW synchronous_commit')"
echo "  workers   2 jq_worker processes, --concurrency $CONCURRENCY each, on the same machine"

# throughput: every job enqueued before the workers start
sql -c "SELECT cardinality(jq_enqueue_bulk(array_fill('true'::text, ARRAY[$JOBS]), kind => 'shell'))" >/dev/null
sql -c "CHECKPOINT"
start_workers
await "SELECT NOT EXISTS (SELECT FROM jq.job)"
IFS='|' read -r drain_s succeeded <<<"$(sql -c "
	SELECT extract(epoch FROM max(finished_at) - min(started_at)),
		   count(*) FILTER (WHERE state = 'succeeded')
	FROM jq.job_history")"
echo
printf '%-60s %10s\n' "Shell jobs (true), $JOBS enqueued beforehand" "jobs/s"
printf '  %-58s %10.0f\n' "from the first claim to the last finish" \
	"$(awk -v n="$JOBS" -v s="$drain_s" 'BEGIN { print n / s }')"
printf '  %-58s %10s\n' "jobs succeeded" "$succeeded/$JOBS"

# latency: one job at a time into idle workers; each job records when its
# process ran, the session when its COMMIT returned
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
