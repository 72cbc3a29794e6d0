#!/bin/bash
# Benchmark of the Python and Node.js workers of task jobs, side by side with
# the same handlers in the systems their users would otherwise run: Celery
# and RQ on Redis (Python), graphile-worker (PostgreSQL) and BullMQ on Redis
# (Node.js).  For each, on a throwaway PostgreSQL cluster and Redis server:
#
#  - drain: $BENCH_LANG_JOBS no-op jobs enqueued first, then one worker
#    with $BENCH_LANG_CONCURRENCY jobs at once (RQ: that many worker
#    processes) drains them; jobs/s from the first job to the last;
#  - pickup: jobs enqueued one at a time into the idle worker, from the
#    enqueue's return (for job_queue, its COMMIT's) to the handler's start;
#  - idle: statements (PostgreSQL, pg_stat_statements.track = all) or
#    commands (Redis) per minute while the worker waits for work.
#
# The peers are not dependencies of the project: run as root, this script
# installs them on demand (apt: redis-server, python3-celery, python3-rq;
# npm: graphile-worker, bullmq, into /var/tmp/job_queue_bench_node) and says
# so; a peer that is not installed is skipped.  Needs the extension
# installed (make install) and node/ set up (npm install, as
# test/install_deps.sh does).
#
#   BENCH_LANG_JOBS          jobs of the drain phase          (20000)
#   BENCH_LANG_RQ_JOBS       the same for RQ, which forks a process for
#                            each job                         (500)
#   BENCH_LANG_CONCURRENCY   jobs at once of each worker      (8)
#   BENCH_LANG_LATENCY_JOBS  jobs of the pickup phase         (50)
#   BENCH_LANG_IDLE_SECONDS  idle time watched                (20)
#   BENCH_LANG_SYSTEMS       systems to run, in this order    (all: jq-python
#                            celery rq jq-node graphile bullmq)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/test/bench/cluster.sh"
NODE_PEERS=/var/tmp/job_queue_bench_node

if [ "$(id -u)" = 0 ]; then
	missing=""
	for p in redis-server python3-celery python3-rq; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing the benchmark's peers from Debian:$missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
		# the benchmark starts its own Redis
		systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true
	fi
	if [ ! -d "$NODE_PEERS/node_modules/graphile-worker" ] || [ ! -d "$NODE_PEERS/node_modules/ioredis" ]; then
		echo "installing the benchmark's peers from npm: graphile-worker bullmq ioredis"
		mkdir -p "$NODE_PEERS"
		(cd "$NODE_PEERS" && npm install --no-audit --no-fund --loglevel=error graphile-worker bullmq ioredis pg >/dev/null)
	fi
	chown -R postgres "$NODE_PEERS"
	work=$(mktemp -d /tmp/job_queue_lang_bench.XXXXXX)
	cp -a "$src/." "$work/"
	chown -R postgres "$work"
	status=0
	runuser -u postgres -- "$work/test/bench/lang.sh" "$@" || status=$?
	rm -rf "$work"
	exit $status
fi

bench_cluster job_queue_lang_bench_run
export PGDATABASE=postgres
REDIS_PID=""
finish()
{
	[ -z "$REDIS_PID" ] || kill "$REDIS_PID" 2>/dev/null || true
	bench_finish
}
trap finish EXIT

bench_start "listen_addresses = ''" "shared_preload_libraries = 'job_queue, pg_stat_statements'" \
	"pg_stat_statements.track = all" "max_worker_processes = 32"
sql -c 'CREATE EXTENSION job_queue' -c 'CREATE EXTENSION pg_stat_statements'

export BENCH_DSN="host=$TMP port=$PGPORT dbname=postgres"
export DSN_URL="postgresql:///postgres?host=$TMP&port=$PGPORT"
export BENCH_JOBS=${BENCH_LANG_JOBS:-20000}
export BENCH_CONCURRENCY=${BENCH_LANG_CONCURRENCY:-8}
export BENCH_LATENCY_JOBS=${BENCH_LANG_LATENCY_JOBS:-50}
export BENCH_IDLE_SECONDS=${BENCH_LANG_IDLE_SECONDS:-20}
export BENCH_STAMPS=$TMP/stamps
export PYTHONPATH=$src/python
export NODE_PATH=$TMP/node_modules:$src/node/node_modules:$NODE_PEERS/node_modules
mkdir "$TMP/node_modules"
ln -s "$src/node" "$TMP/node_modules/job-queue"

if command -v redis-server >/dev/null; then
	export BENCH_REDIS_PORT=$(free_port)
	export BENCH_REDIS="redis://127.0.0.1:$BENCH_REDIS_PORT/0"
	redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$TMP" --logfile "$TMP/redis.log" &
	REDIS_PID=$!
	sleep 0.5
fi

# whether a system can run here
available()
{
	case $1 in
	jq-python) /usr/bin/python3 -c 'import psycopg' 2>/dev/null ;;
	celery) [ -n "$REDIS_PID" ] && /usr/bin/python3 -c 'import celery' 2>/dev/null ;;
	rq) [ -n "$REDIS_PID" ] && /usr/bin/python3 -c 'import rq' 2>/dev/null ;;
	jq-node) [ -d "$src/node/node_modules/pg" ] ;;
	graphile) [ -d "$NODE_PEERS/node_modules/graphile-worker" ] ;;
	bullmq) [ -n "$REDIS_PID" ] && [ -d "$NODE_PEERS/node_modules/bullmq" ] ;;
	esac
}

declare -A DRAIN LAT50 LAT95 IDLE
for system in ${BENCH_LANG_SYSTEMS:-jq-python celery rq jq-node graphile bullmq}; do
	if ! available "$system"; then
		echo "$system: not installed, skipped (run as root to install it)"
		continue
	fi
	rm -f "$BENCH_STAMPS"
	[ -z "$REDIS_PID" ] || redis-cli -p "$BENCH_REDIS_PORT" FLUSHALL >/dev/null
	sql -c "DELETE FROM jq.job" -c "TRUNCATE jq.job_history" -c "VACUUM ANALYZE jq.job"
	driver=(node "$src/test/bench/lang/drive.js")
	case $system in jq-python | celery | rq) driver=(/usr/bin/python3 "$src/test/bench/lang/drive.py") ;; esac
	jobs=$BENCH_JOBS
	[ "$system" != rq ] || jobs=${BENCH_LANG_RQ_JOBS:-500}
	if ! out=$(BENCH_JOBS=$jobs "${driver[@]}" "$system"); then
		echo "$system: failed"
		continue
	fi
	echo "$system: $(echo $out)"
	DRAIN[$system]=$(awk '$1 == "drain" { print $2 }' <<<"$out")
	LAT50[$system]=$(awk '$1 == "latency" { print $2 }' <<<"$out")
	LAT95[$system]=$(awk '$1 == "latency" { print $3 }' <<<"$out")
	IDLE[$system]=$(awk '$1 == "idle" { print $2 }' <<<"$out")
done

# the ratio of two rates, or n/a
ratio()
{
	if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f x", a / b }'
	else
		echo n/a
	fi
}

echo
echo "Workers of task jobs: $BENCH_JOBS no-op jobs, $BENCH_CONCURRENCY at once; load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| system | drain (jobs/s) | pickup from idle, p50 / p95 (ms) | idle (per minute) |"
echo "|---|---|---|---|"
for system in jq-python celery rq jq-node graphile bullmq; do
	[ -n "${DRAIN[$system]:-}" ] || continue
	unit="statements"
	case $system in celery | rq | bullmq) unit="Redis commands" ;; esac
	echo "| $system | ${DRAIN[$system]}$([ "$system" != rq ] || echo " (${BENCH_LANG_RQ_JOBS:-500} jobs)") | ${LAT50[$system]} / ${LAT95[$system]} | ${IDLE[$system]} $unit |"
done
echo
echo "Python worker / Celery: $(ratio "${DRAIN[jq-python]:-}" "${DRAIN[celery]:-}") (target >= 3 x)"
echo "Python worker / RQ: $(ratio "${DRAIN[jq-python]:-}" "${DRAIN[rq]:-}")"
echo "Node worker / graphile-worker: $(ratio "${DRAIN[jq-node]:-}" "${DRAIN[graphile]:-}") (target >= 3 x)"
echo "Node worker / BullMQ: $(ratio "${DRAIN[jq-node]:-}" "${DRAIN[bullmq]:-}") (target > 1 x)"
echo "pickup p50 target: <= 2 ms"
