-- The SQL API: enqueue, validation, execution, results, failures, retries.
CREATE EXTENSION job_queue;

-- wait until the given jobs (all visible ones when NULL) have finished
CREATE FUNCTION wait_for_jobs(ids bigint[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..600 LOOP
		IF NOT EXISTS (SELECT FROM jq_jobs
					   WHERE state NOT IN ('succeeded', 'failed', 'cancelled')
						 AND (ids IS NULL OR id = ANY (ids))) THEN
			RETURN;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RAISE EXCEPTION 'jobs did not finish in 30 seconds';
END
$$;

CREATE TABLE effects (job text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());

-- a job runs, its effects and its result are kept
SELECT jq_enqueue($$INSERT INTO effects (job) VALUES ('first'); SELECT 42 AS answer, 'yes' AS ok$$) AS first \gset
SELECT wait_for_jobs();
SELECT state, attempts, result, last_error FROM jq_jobs WHERE id = :first;
SELECT job FROM effects;

-- defaults come from the settings
SELECT queue, kind, priority, max_attempts, timeout, owner = current_user::regrole AS mine,
	   payload, run_at <= now() AS due
FROM jq_jobs WHERE id = :first;

-- every argument, by name
SELECT jq_enqueue('SELECT 1', queue => 'mail.outbound', priority => -5,
				  run_at => now() + interval '1 hour', max_attempts => 7,
				  timeout => '30 seconds', payload => '{"to": "a@b.c"}') AS later \gset
SELECT queue, priority, state, max_attempts, timeout, payload FROM jq_jobs WHERE id = :later;
SELECT jq_cancel(:later);
SELECT state FROM jq_jobs WHERE id = :later;
SELECT jq_cancel(:later);		-- already finished: false

-- enqueue is part of the caller's transaction
BEGIN;
SELECT jq_enqueue($$INSERT INTO effects (job) VALUES ('rolled back')$$) IS NOT NULL AS enqueued;
ROLLBACK;
SELECT count(*) FROM jq_jobs WHERE command LIKE '%rolled back%';

-- bad arguments: a clear error, and nothing enqueued
SELECT count(*) AS jobs_before FROM jq_jobs \gset
SELECT jq_enqueue('');
SELECT jq_enqueue('   ');
SELECT jq_enqueue(NULL);
SELECT jq_enqueue('SELECT 1', queue => NULL);
SELECT jq_enqueue('SELECT 1', queue => 'bad queue');
SELECT jq_enqueue('SELECT 1', queue => '');
SELECT jq_enqueue('SELECT 1', queue => repeat('q', 64));
SELECT jq_enqueue('SELECT 1', max_attempts => 0);
SELECT jq_enqueue('SELECT 1', max_attempts => -1);
SELECT jq_enqueue('SELECT 1', max_attempts => 1001);
SELECT jq_enqueue('SELECT 1', timeout => '0');
SELECT jq_enqueue('SELECT 1', timeout => '-1 second');
SELECT jq_enqueue('SELECT 1', run_at => 'infinity');
SELECT jq_enqueue_bulk(NULL);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', NULL]);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', '']);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', 'SELECT 2'], payloads => ARRAY['{}'::jsonb]);
SELECT jq_enqueue_bulk(ARRAY[['SELECT 1'], ['SELECT 2']]);
SELECT count(*) = :jobs_before AS nothing_enqueued FROM jq_jobs;

-- bulk enqueue returns the ids in order
SELECT cardinality(jq_enqueue_bulk(ARRAY[]::text[])) AS empty;
SELECT jq_enqueue_bulk(ARRAY[$$INSERT INTO effects (job) VALUES ('bulk 1')$$,
							 $$INSERT INTO effects (job) VALUES ('bulk 2')$$,
							 $$INSERT INTO effects (job) VALUES ('bulk 3')$$],
					   payloads => ARRAY['{"n": 1}', '{"n": 2}', NULL]::jsonb[]) AS bulk \gset
SELECT wait_for_jobs();
SELECT j.command, j.payload, j.state
FROM unnest(:'bulk'::bigint[]) WITH ORDINALITY AS b(id, n) JOIN jq_jobs j USING (id)
ORDER BY b.n;

-- a failing job records message, SQLSTATE and attempt, is retried, then ends failed
SELECT jq_enqueue('SELECT 1 / 0', max_attempts => 3) AS failing \gset
SELECT wait_for_jobs();
SELECT state, attempts, last_error, last_error_code, last_error_timeout FROM jq_jobs WHERE id = :failing;
SELECT e ->> 'attempt' AS attempt, e ->> 'message' AS message, e ->> 'code' AS code
FROM jq_jobs, jsonb_array_elements(errors) AS e WHERE id = :failing;

-- jq_retry revives a failed job with fresh attempts
SELECT jq_retry(:failing);
SELECT wait_for_jobs();
SELECT state, attempts, jsonb_array_length(errors) AS errors_kept FROM jq_jobs WHERE id = :failing;
SELECT jq_retry(:first);
SELECT jq_retry(-1);
SELECT jq_retry(NULL);

-- a job that fails once and then succeeds
CREATE TABLE tries (n int);
CREATE SEQUENCE attempt_no;
SELECT jq_enqueue($$INSERT INTO tries VALUES (1);
				   SELECT 1 / (nextval('attempt_no') - 1)::int AS ok$$) AS flaky \gset
SELECT wait_for_jobs();
SELECT state, attempts, last_error FROM jq_jobs WHERE id = :flaky;
-- the failed attempt's insert was rolled back with it
SELECT count(*) FROM tries;

-- a timeout cancels the running statement and is recorded as a timeout
SELECT jq_enqueue('SELECT pg_sleep(10)', timeout => '100 ms', max_attempts => 1) AS slow \gset
SELECT wait_for_jobs();
SELECT state, attempts, last_error, last_error_code, last_error_timeout FROM jq_jobs WHERE id = :slow;

-- transaction control inside a job gets a clear error
CREATE PROCEDURE commits() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;
SELECT jq_enqueue('COMMIT', max_attempts => 1) AS tc1,
	   jq_enqueue('SELECT 1; ROLLBACK', max_attempts => 1) AS tc2,
	   jq_enqueue('VACUUM effects', max_attempts => 1) AS tc3,
	   jq_enqueue('CALL commits()', max_attempts => 1) AS tc4 \gset
SELECT wait_for_jobs();
SELECT id = :tc1 AS is_commit, state, last_error, last_error_code
FROM jq_jobs WHERE id IN (:tc1, :tc2, :tc3, :tc4) ORDER BY id;

-- settings and session state do not leak from one job to the next
SELECT jq_enqueue($$SET work_mem = '77MB'; SET search_path = nowhere;
				   PREPARE leak AS SELECT 1; CREATE TEMP TABLE leak (x int);
				   SELECT current_setting('work_mem') AS work_mem$$) AS setter \gset
SELECT wait_for_jobs();
SELECT jq_enqueue($$SELECT current_setting('work_mem') AS work_mem,
						   current_setting('search_path') AS search_path,
						   (SELECT count(*) FROM pg_prepared_statements) AS prepared,
						   to_regclass('pg_temp.leak') IS NULL AS no_temp_table$$) AS reader \gset
SELECT wait_for_jobs();
SELECT id = :setter AS setter, state, result FROM jq_jobs WHERE id IN (:setter, :reader) ORDER BY id;

-- a job that returns no rows has no result; many rows are kept up to 100
SELECT jq_enqueue($$INSERT INTO effects (job) VALUES ('no result')$$) AS nores,
	   jq_enqueue('SELECT g FROM generate_series(1, 500) g') AS many \gset
SELECT wait_for_jobs();
SELECT id = :nores AS nores, state, jsonb_array_length(result) AS rows FROM jq_jobs
WHERE id IN (:nores, :many) ORDER BY id;

-- the view's states
SELECT jq_enqueue('SELECT 1', run_at => now() + interval '1 day') AS sched \gset
SELECT state FROM jq_jobs WHERE id = :sched;
SELECT jq_cancel(:sched);

-- cancelling a job an executor is running stops its statement; it is not retried
SELECT jq_enqueue($$INSERT INTO effects (job) VALUES ('cancelled'); SELECT pg_sleep(30)$$) AS long \gset
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		EXIT WHEN EXISTS (SELECT FROM jq_jobs WHERE state = 'running');
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT jq_cancel(:long);
SELECT wait_for_jobs();
SELECT state, attempts, last_error, finished_at - started_at < interval '10 seconds' AS stopped_early
FROM jq_jobs WHERE id = :long;
SELECT count(*) FROM effects WHERE job = 'cancelled';

-- several jobs of one executor's claim can be cancelled before they start
SELECT jq_enqueue_bulk(ARRAY['SELECT pg_sleep(1)',
							 $$INSERT INTO effects (job) VALUES ('claimed 1')$$,
							 $$INSERT INTO effects (job) VALUES ('claimed 2')$$]) AS claim \gset
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		EXIT WHEN EXISTS (SELECT FROM jq_jobs WHERE state = 'running' AND command LIKE 'SELECT pg_sleep(1)');
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT count(*) AS claimed_together FROM jq_jobs
WHERE id = ANY (:'claim'::bigint[]) AND state = 'running';
SELECT jq_cancel(id) FROM unnest(:'claim'::bigint[]) WITH ORDINALITY AS c(id, n) WHERE n > 1 ORDER BY n;
SELECT wait_for_jobs(:'claim'::bigint[]);
SELECT c.n, j.state FROM unnest(:'claim'::bigint[]) WITH ORDINALITY AS c(id, n)
JOIN jq_jobs j USING (id) ORDER BY c.n;
SELECT count(*) FROM effects WHERE job LIKE 'claimed%';
