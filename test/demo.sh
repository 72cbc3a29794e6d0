#!/bin/bash
# Set up job_queue on a throwaway cluster and show it running jobs.
# As root on a fresh Debian machine: installs PostgreSQL 15 and the build
# tools if missing, builds and installs the extension, then runs the
# cluster as user postgres.  The cluster keeps running; the script prints
# how to connect and how to stop it.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${JQ_DEMO_DIR:-/tmp/job_queue_demo}
port=${JQ_DEMO_PORT:-5488}

if [ "$(id -u)" = 0 ]; then
	"$src/test/install_deps.sh"
	make -C "$src" -s
	make -C "$src" -s install
	mkdir -p "$dir"
	chown postgres "$dir"
	exec runuser -u postgres -- env JQ_DEMO_DIR="$dir" JQ_DEMO_PORT="$port" "$0"
fi

bindir=$(pg_config --bindir)
if [ -f "$dir/data/postmaster.pid" ]; then
	"$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null || true
fi
rm -rf "$dir/data"
"$bindir/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'job_queue'
jq.retry_backoff_base = '200ms'
CONF
"$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null

psql="$bindir/psql -X -q -h $dir -p $port -U postgres -d postgres"
$psql <<'SQL'
CREATE EXTENSION job_queue;
CREATE TABLE signups (email text PRIMARY KEY, welcomed boolean DEFAULT false);
CREATE SEQUENCE flaky_calls;

-- the app's transaction: business data and its jobs commit together
BEGIN;
INSERT INTO signups (email) VALUES ('ada@example.com'), ('alan@example.com');
SELECT jq_enqueue(format($$UPDATE signups SET welcomed = true WHERE email = %L$$, email),
				  queue => 'mail', payload => jsonb_build_object('email', email))
FROM signups;
COMMIT;

-- a job that fails once, then succeeds on its retry
SELECT jq_enqueue($$SELECT 10 / (nextval('flaky_calls') - 1)::int AS answer$$);
-- a job that always fails: after max_attempts it is in the dead-letter set
SELECT jq_enqueue('SELECT * FROM no_such_table', max_attempts => 2);
-- a job in the future
SELECT jq_enqueue('SELECT now() AS ran_at', run_at => now() + interval '1 minute');
SQL

echo "Waiting for the jobs to finish..."
for _ in $(seq 1 100); do
	left=$($psql -At -c "SELECT count(*) FROM jq_jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled', 'scheduled')")
	[ "$left" = 0 ] && break
	sleep 0.1
done

$psql <<'SQL'
\echo
\echo jq_jobs:
SELECT id, queue, state, attempts, left(command, 45) AS command, result, last_error
FROM jq_jobs ORDER BY id;
\echo signups:
SELECT * FROM signups ORDER BY email;
SQL

cat <<MSG
The cluster is still running, with job_queue loaded:
  connect:  $bindir/psql -h $dir -p $port -U postgres postgres
  try:      SELECT jq_enqueue('SELECT 1'); SELECT * FROM jq_jobs;
  log:      $dir/server.log
  stop:     runuser -u postgres -- $bindir/pg_ctl -D $dir/data stop   (as root)
MSG
