-- Shell jobs run by the in-server executors: output, exit status, environment,
-- permissions, timeouts, cancellation, queues left to external workers.
-- job ids in the output below do not depend on the tests before this one
SELECT setval('jq.job_id_seq', 2000, false) IS NOT NULL AS reset;

-- a command line run by /bin/sh -c: its output, and the variables that say which job it is
SELECT jq_enqueue($$echo "job $JQ_JOB_ID attempt $JQ_ATTEMPT/$JQ_MAX_ATTEMPTS queue $JQ_QUEUE payload $JQ_PAYLOAD"; echo note >&2$$,
				  kind => 'shell', queue => 'sh', payload => '{"n": 1}') AS hello \gset
-- a program and its arguments, run without a shell: nothing is expanded or split
SELECT jq_enqueue_shell(argv => ARRAY['printf', '[%s]', 'two words', '$HOME', 'it''s', '*']) AS argv_job \gset
-- extra environment variables and a working directory
SELECT jq_enqueue_shell('echo "$GREETING from $(pwd)"', env => '{"GREETING": "hello"}',
						working_dir => '/') AS env_job \gset
-- output beyond jq.shell_output_limit (1kB here) is dropped and the result says so
SELECT jq_enqueue_shell('head -c 5000 /dev/zero | tr "\0" x') AS big \gset
-- output that is not valid UTF-8 is kept as valid text
SELECT jq_enqueue_shell($$printf 'ok\377\000end'$$) AS binary \gset
SELECT wait_for_jobs();
SELECT id, state, attempts, result FROM jq_jobs WHERE id IN (:hello, :argv_job, :env_job) ORDER BY id;
SELECT length(result->>'stdout') AS kept, result->'stdout_truncated' AS truncated
FROM jq_jobs WHERE id = :big;
SELECT result->>'stdout' AS stdout FROM jq_jobs WHERE id = :binary;

-- a non-zero exit is a failure: retried, then failed with the exit code and
-- the last line of stderr; a signal and a missing program fail too
SELECT jq_enqueue_shell('echo first line >&2; echo "disk full" >&2; exit 3', max_attempts => 2) AS exit3 \gset
SELECT jq_enqueue_shell('kill -KILL $$', max_attempts => 1) AS killed \gset
SELECT jq_enqueue_shell(argv => ARRAY['/no/such/program'], max_attempts => 1) AS missing \gset
SELECT jq_enqueue_shell('true', working_dir => '/no/such/dir', max_attempts => 1) AS bad_dir \gset
SELECT wait_for_jobs();
SELECT id, state, attempts, result->'exit_code' AS exit_code, result->'signal' AS signal,
	   last_error, last_error_code
FROM jq_jobs WHERE id IN (:exit3, :killed, :missing, :bad_dir) ORDER BY id;
SELECT e->>'attempt' AS attempt, e->>'message' AS message, e->>'code' AS code
FROM jq_jobs, jsonb_array_elements(errors) AS e WHERE id = :exit3;

-- a timeout stops the whole process group: the background sleep goes too
-- (jobs run in the data directory unless told otherwise)
SELECT jq_enqueue_shell('sleep 1000 & echo $! > jq_bg_timeout.pid; wait', timeout => '1 second',
						max_attempts => 1) AS timed_out \gset
-- SIGTERM ignored: SIGKILL follows after jq.shell_kill_grace (1s here)
SELECT jq_enqueue_shell($$trap '' TERM; sleep 1000$$, timeout => '1 second',
						max_attempts => 1) AS stubborn \gset
-- a job that ends normally leaves nothing behind either
SELECT jq_enqueue_shell('sleep 1000 & echo $! > jq_bg_done.pid') AS left_behind \gset
SELECT wait_for_jobs();
SELECT id, state, last_error, last_error_timeout FROM jq_jobs
WHERE id IN (:timed_out, :stubborn, :left_behind) ORDER BY id;
SELECT jq_enqueue_shell($$for f in jq_bg_timeout.pid jq_bg_done.pid; do
							state=$(cut -d' ' -f3 "/proc/$(cat $f)/stat" 2>/dev/null)
							# a killed orphan may linger as a zombie until init reaps it
							if [ -n "$state" ] && [ "$state" != Z ]; then echo "$f: alive"; else echo "$f: gone"; fi
							rm -f $f
						  done$$) AS check_gone \gset
SELECT wait_for_jobs();
SELECT result->>'stdout' AS processes FROM jq_jobs WHERE id = :check_gone;

-- cancelling a running shell job kills its process group and records cancelled
SELECT jq_enqueue_shell('sleep 1000') AS sleeper \gset
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		EXIT WHEN EXISTS (SELECT FROM jq_jobs WHERE command = 'sleep 1000' AND state = 'running');
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT jq_cancel(:sleeper);
SELECT wait_for_jobs();
SELECT state, attempts, last_error FROM jq_jobs WHERE id = :sleeper;

-- only superusers and roles with the privileges of pg_execute_server_program
CREATE ROLE jq_sh;
SELECT count(*) AS jobs_before FROM jq_jobs \gset
SET ROLE jq_sh;
SELECT jq_enqueue('true', kind => 'shell');
SELECT jq_enqueue_shell('true');
RESET ROLE;
GRANT pg_execute_server_program TO jq_sh;
SET ROLE jq_sh;
SELECT jq_enqueue_shell('echo "runs as the server user"', run_at => now() + interval '1 second') AS revoked \gset
RESET ROLE;
-- checked again when the job starts: a revoked right fails the job, which does not run
REVOKE pg_execute_server_program FROM jq_sh;
SELECT wait_for_jobs();
SELECT state, attempts, max_attempts, result, last_error, last_error_code FROM jq_jobs WHERE id = :revoked;

-- bad arguments change nothing
SELECT count(*) AS jobs_before FROM jq_jobs \gset
SELECT jq_enqueue('true', kind => 'perl');
SELECT jq_enqueue('true', kind => NULL);
SELECT jq_enqueue_shell();
SELECT jq_enqueue_shell('true', argv => ARRAY['true']);
SELECT jq_enqueue_shell('  ');
SELECT jq_enqueue_shell(argv => '{}');
SELECT jq_enqueue_shell(argv => ARRAY['ls', NULL]);
SELECT jq_enqueue_shell(argv => ARRAY['', '-l']);
SELECT jq_enqueue_shell('true', env => '["A=1"]');
SELECT jq_enqueue_shell('true', env => '{"1X": "a"}');
SELECT jq_enqueue_shell('true', env => '{"A-B": "a"}');
SELECT jq_enqueue_shell('true', env => '{"N": 4}');
SELECT jq_enqueue_shell('true', working_dir => 'tmp');
SELECT count(*) = :jobs_before AS nothing_changed FROM jq_jobs;

-- a queue for external workers only: the executors leave its jobs alone
SELECT jq_configure_queue('outside', external_only => true);
SELECT * FROM jq_queues;
SELECT jq_enqueue_shell('echo outside', queue => 'outside') AS outside \gset
SELECT jq_enqueue('SELECT 1', queue => 'outside') AS outside_sql \gset
SELECT pg_sleep(1);
SELECT id, state FROM jq_jobs WHERE queue = 'outside' ORDER BY id;
SELECT id = :outside AS got_shell_job, kind, command, attempt
FROM jq_dequeue(queue => 'outside', kinds => ARRAY['shell']);
SELECT jq_fail(:outside, 'exited with code 1', retry => false, attempt => 1,
			   result => '{"exit_code": 1}');
SELECT state, result FROM jq_jobs WHERE id = :outside;
SELECT id = :outside_sql AS got_sql_job FROM jq_dequeue(queue => NULL, queues => ARRAY['outside', 'other']);
SELECT jq_complete(:outside_sql);
SELECT jq_dequeue(queue => 'x', queues => ARRAY['y']);
SELECT jq_dequeue(kinds => ARRAY['perl']);
SET ROLE jq_sh;
SELECT jq_configure_queue('outside', external_only => false);
RESET ROLE;
SELECT jq_configure_queue('bad queue');
SELECT jq_configure_queue('outside', external_only => false);
SELECT * FROM jq_queues;
DROP ROLE jq_sh;
