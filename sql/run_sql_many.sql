-- jq_run_sql_many: an external worker runs the SQL jobs it holds in one
-- call, their effects and outcomes in the caller's transaction.
-- Each job is enqueued and taken in one transaction, so that no executor
-- sees it ready.

CREATE TABLE rsm_log (n integer CONSTRAINT rsm_positive CHECK (n > 0));
GRANT INSERT, SELECT ON rsm_log TO PUBLIC;
-- the job's label from its command, so that ids stay out of the output
CREATE FUNCTION rsm_label(job bigint) RETURNS text LANGUAGE sql
AS $$ SELECT coalesce((SELECT command FROM jq_jobs WHERE id = job), 'not a job') $$;
-- an error, its ids replaced by N
CREATE FUNCTION rsm_try(ids bigint[], attempts integer[]) RETURNS text LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM jq_run_sql_many(ids, attempts);
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g');
END
$$;

-- bad input: an error, and nothing changes
\set VERBOSITY default
SELECT * FROM jq_run_sql_many(NULL, '{1}');
SELECT * FROM jq_run_sql_many('{1}', NULL);
SELECT * FROM jq_run_sql_many('{1, 2}', '{1}');
SELECT * FROM jq_run_sql_many('{7, 8, 7}', '{1, 1, 1}');
SELECT * FROM jq_run_sql_many('{1, NULL}', '{1, 1}');
SELECT * FROM jq_run_sql_many('{1, 2}', '{1, NULL}');
SELECT * FROM jq_run_sql_many('{{1}}', '{{1}}');
\set VERBOSITY terse
-- nothing to run: no row
SELECT count(*) FROM jq_run_sql_many('{}', '{}');

-- a batch whose middle job fails: the others' effects and every outcome
-- commit together; the rows come in the order given
BEGIN;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (1)', queue => 'rsm', priority => 1),
	   jq_enqueue('INSERT INTO rsm_log VALUES (-2)', queue => 'rsm', priority => 2, max_attempts => 1),
	   jq_enqueue('INSERT INTO rsm_log VALUES (3)', queue => 'rsm', priority => 3) \gset
SELECT array_agg(id ORDER BY priority DESC) AS ids, array_agg(attempt ORDER BY priority DESC) AS attempts
FROM jq_dequeue('rsm', 10) d JOIN jq_jobs j USING (id) \gset
COMMIT;
-- rolled back: nothing happened, the jobs are still held
BEGIN;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM rsm_log;
SELECT command, state FROM jq_jobs WHERE queue = 'rsm' ORDER BY priority;
-- committed
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
SELECT n FROM rsm_log ORDER BY n;
SELECT command, state, attempts, last_error FROM jq_jobs WHERE queue = 'rsm' ORDER BY priority;
-- again: none is held any more, nothing runs
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
SELECT count(*) AS rows_now FROM rsm_log;

-- a stale attempt is not held: NULL, and the job does not run
BEGIN;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (4)', queue => 'rsm2', max_attempts => 3) AS j4 \gset
SELECT attempt AS a4 FROM jq_dequeue('rsm2', 1) \gset
COMMIT;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(ARRAY[:j4]::bigint[], ARRAY[:a4 + 1]);
SELECT count(*) AS rows_now FROM rsm_log;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(ARRAY[:j4]::bigint[], ARRAY[:a4]);
SELECT count(*) AS rows_now FROM rsm_log;

-- not a SQL job: an error before any job runs
BEGIN;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (5)', queue => 'rsm3') AS j5,
	   jq_enqueue_shell(command => 'true', queue => 'rsm3') AS j6 \gset
SELECT array_agg(id ORDER BY id) AS ids, array_agg(attempt ORDER BY id) AS attempts
FROM jq_dequeue('rsm3', 10, kinds => ARRAY['sql', 'shell']) \gset
COMMIT;
SELECT rsm_try(:'ids', :'attempts');
SELECT count(*) AS rows_now FROM rsm_log;
SELECT jq_release(:j5), jq_release(:j6), jq_cancel(:j5), jq_cancel(:j6);

-- another role's job: as for a job that does not exist, and nothing runs
CREATE ROLE rsm_alice;
CREATE ROLE rsm_bob;
SELECT max(id) + 1000 AS missing FROM jq_jobs \gset
BEGIN;
SET ROLE rsm_alice;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (6)', queue => 'rsm_a') AS alice_job \gset
SELECT attempt AS alice_attempt FROM jq_dequeue('rsm_a', 1) \gset
SET ROLE rsm_bob;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (7)', queue => 'rsm_b') AS bob_job \gset
SELECT attempt AS bob_attempt FROM jq_dequeue('rsm_b', 1) \gset
COMMIT;
SELECT rsm_try(ARRAY[:bob_job, :alice_job]::bigint[], ARRAY[:bob_attempt, :alice_attempt]);
SELECT rsm_try(ARRAY[:bob_job, :missing]::bigint[], ARRAY[1, 1]);
SELECT count(*) AS rows_now FROM rsm_log;
-- his own job runs as him; alice's, run by the superuser as a worker, as her
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(ARRAY[:bob_job]::bigint[], ARRAY[:bob_attempt]);
RESET ROLE;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(ARRAY[:alice_job]::bigint[], ARRAY[:alice_attempt]);
SELECT n, owner::regrole FROM rsm_log JOIN jq_jobs j ON j.command LIKE '%(' || n || ')'
WHERE n IN (6, 7) ORDER BY n;

-- a job that changes the rest of the transaction (SET CONSTRAINTS): the
-- batch stops after it, and the jobs after it stay held for the next call
BEGIN;
SELECT jq_enqueue('SET CONSTRAINTS ALL DEFERRED', queue => 'rsm4', priority => 1),
	   jq_enqueue('INSERT INTO rsm_log VALUES (8)', queue => 'rsm4', priority => 2) \gset
SELECT array_agg(id ORDER BY priority) AS ids, array_agg(attempt ORDER BY priority) AS attempts
FROM jq_dequeue('rsm4', 10) d JOIN jq_jobs j USING (id) \gset
COMMIT;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
SELECT command, state FROM jq_jobs WHERE queue = 'rsm4' ORDER BY priority;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
SELECT command, state FROM jq_jobs WHERE queue = 'rsm4' ORDER BY priority;

-- a query cancel during a job: that job fails, the statement goes on, and
-- the jobs after it stay held, for the caller to release
BEGIN;
SELECT jq_enqueue('INSERT INTO rsm_log VALUES (9)', queue => 'rsm5', priority => 1),
	   jq_enqueue('SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)', queue => 'rsm5',
				  priority => 2, max_attempts => 1),
	   jq_enqueue('INSERT INTO rsm_log VALUES (10)', queue => 'rsm5', priority => 3) \gset
SELECT array_agg(id ORDER BY priority) AS ids, array_agg(attempt ORDER BY priority) AS attempts
FROM jq_dequeue('rsm5', 10) d JOIN jq_jobs j USING (id) \gset
COMMIT;
SELECT rsm_label(id), succeeded FROM jq_run_sql_many(:'ids', :'attempts');
SELECT command, state, last_error FROM jq_jobs WHERE queue = 'rsm5' ORDER BY priority;
-- given back, then cancelled before any executor could take it
BEGIN;
SELECT count(jq_release(id)) AS released FROM jq_jobs WHERE queue = 'rsm5' AND state = 'running';
SELECT jq_cancel((:'ids'::bigint[])[3]) AS cancelled;
COMMIT;
SELECT n FROM rsm_log WHERE n >= 8 ORDER BY n;

SELECT count(jq_cancel(id)) >= 0 AS cleaned FROM jq_jobs WHERE queue LIKE 'rsm%' AND state NOT IN ('succeeded', 'failed', 'cancelled');
DROP TABLE rsm_log;
DROP FUNCTION rsm_label(bigint);
DROP FUNCTION rsm_try(bigint[], integer[]);
DROP ROLE rsm_alice;
DROP ROLE rsm_bob;
