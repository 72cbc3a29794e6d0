-- Security: jobs run with exactly the rights of the role that enqueued them,
-- and a role sees and manages only its own jobs unless it is in jq_admin.
-- job ids in the messages below do not depend on the tests before this one
SELECT setval('jq.job_id_seq', 1000, false) IS NOT NULL AS reset;
CREATE ROLE jq_alice;
CREATE ROLE jq_bob;
CREATE ROLE jq_boss IN ROLE jq_admin;
CREATE TABLE secret (x int);
INSERT INTO secret VALUES (42);
CREATE TABLE alice_data (x int);
GRANT ALL ON alice_data TO jq_alice;
GRANT CREATE ON SCHEMA public TO jq_bob;

SET ROLE jq_alice;
SELECT jq_enqueue($$SELECT current_user::text AS current_user,
						   session_user <> current_user AS runs_as_owner$$) AS who,
	   jq_enqueue('RESET ROLE', max_attempts => 1) AS reset_role,
	   jq_enqueue('SET ROLE jq_bob', max_attempts => 1) AS set_role,
	   jq_enqueue('SET SESSION AUTHORIZATION DEFAULT', max_attempts => 1) AS session_auth,
	   jq_enqueue($$SELECT set_config('role', 'none', false)$$, max_attempts => 1) AS set_config,
	   jq_enqueue('SET log_min_messages = debug5', max_attempts => 1) AS suset,
	   jq_enqueue($$SELECT pg_read_file('postgresql.conf')$$, max_attempts => 1) AS read_file,
	   jq_enqueue('SELECT x FROM secret', max_attempts => 1) AS read_secret,
	   jq_enqueue('SELECT count(*) FROM jq.job', max_attempts => 1) AS read_queue,
	   jq_enqueue($$SELECT * FROM jq._claim(0, 10)$$, max_attempts => 1) AS claim,
	   jq_enqueue('INSERT INTO alice_data VALUES (1)', max_attempts => 1) AS own_table,
	   jq_enqueue('SELECT x FROM secret', run_at => now() + interval '1 day') AS later \gset
-- alice cannot reach the tables behind the API
INSERT INTO jq.job (queue, command, priority, run_at, max_attempts, owner)
VALUES ('default', 'SELECT 1', 0, now(), 1, 10);
UPDATE jq_jobs SET state = 'succeeded';
RESET ROLE;

SELECT wait_for_jobs(ARRAY[:who, :reset_role, :set_role, :session_auth, :set_config, :suset,
						   :read_file, :read_secret, :read_queue, :claim, :own_table]);
SELECT c.name, j.owner, j.state, j.result, j.last_error
FROM (VALUES ('who', :who), ('reset_role', :reset_role), ('set_role', :set_role),
			 ('session_auth', :session_auth), ('set_config', :set_config), ('suset', :suset),
			 ('read_file', :read_file), ('read_secret', :read_secret),
			 ('read_queue', :read_queue), ('claim', :claim), ('own_table', :own_table))
	 AS c(name, id)
JOIN jq_jobs j USING (id)
ORDER BY j.id;
SELECT count(*) FROM alice_data;

-- code a job leaves for the executor's commit runs as the job's owner, or not at all
GRANT CREATE ON SCHEMA public TO jq_alice;
SET ROLE jq_alice;
CREATE TABLE whoami (who text, via text);
CREATE FUNCTION note_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO whoami VALUES (current_user, 'deferred trigger');
	RETURN NULL;
END $$;
CREATE TABLE deferring (x int);
CREATE CONSTRAINT TRIGGER note_user AFTER INSERT ON deferring
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_user();
CREATE FUNCTION note_cursor() RETURNS int LANGUAGE sql AS
	$$ INSERT INTO whoami VALUES (current_user, 'holdable cursor') RETURNING 1 $$;
SELECT jq_enqueue('INSERT INTO deferring VALUES (1)') AS deferred,
	   jq_enqueue('DECLARE c CURSOR WITH HOLD FOR SELECT note_cursor()') AS holdable,
	   jq_enqueue('SELECT pg_advisory_lock(4242)') AS advisory \gset
RESET ROLE;
SELECT wait_for_jobs(ARRAY[:deferred, :holdable, :advisory]);
SELECT state FROM jq_jobs WHERE id IN (:deferred, :holdable, :advisory) ORDER BY id;
SELECT who, via FROM whoami ORDER BY via;
-- and a session advisory lock does not outlive its job
SELECT count(*) AS advisory_locks_left FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242;

-- bob sees none of alice's jobs and cannot touch them
SET ROLE jq_bob;
SELECT count(*) AS visible FROM jq_jobs WHERE owner = 'jq_alice'::regrole;
SELECT jq_cancel(:later);
SELECT jq_retry(:read_secret);
SELECT count(*) FROM jq_dequeue(NULL, 100);
-- a job enqueued from bob's SECURITY DEFINER function belongs to bob
CREATE FUNCTION bob_enqueue() RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path = public, pg_catalog
AS $$ SELECT jq_enqueue('SELECT current_user::text AS current_user') $$;
RESET ROLE;
SELECT bob_enqueue() AS from_definer \gset
SELECT wait_for_jobs(ARRAY[:from_definer]);
SELECT owner, result FROM jq_jobs WHERE id = :from_definer;

-- a member of jq_admin sees and manages every job
SET ROLE jq_boss;
SELECT count(*) > 0 AS sees_alice FROM jq_jobs WHERE owner = 'jq_alice'::regrole;
SELECT jq_cancel(:later);
RESET ROLE;
SELECT state FROM jq_jobs WHERE id = :later;

-- PUBLIC has no rights on the internals; the API is C or pins search_path
SELECT has_schema_privilege('jq_alice', 'jq', 'USAGE') AS schema_usage,
	   has_table_privilege('jq_alice', 'jq.job', 'SELECT, INSERT, UPDATE, DELETE') AS job_table,
	   has_table_privilege('jq_alice', 'jq.job_history', 'SELECT, INSERT, UPDATE, DELETE') AS history_table,
	   has_table_privilege('jq_alice', 'jq_jobs', 'INSERT, UPDATE, DELETE') AS write_view;
SELECT p.oid::regprocedure AS unpinned
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'job_queue'
JOIN pg_language l ON l.oid = p.prolang
WHERE l.lanname <> 'c'
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);
SELECT count(*) AS security_definer_functions
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'job_queue'
WHERE p.prosecdef;

-- look-alike objects first in the search path reach none of the internal SQL:
-- bob's "=" on text would make him superuser if it ran as anyone else
SELECT jq_configure_queue('sec-lookalike', default_priority => 3);
SET ROLE jq_bob;
CREATE FUNCTION public.evil_texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'jq_bob' THEN
		EXECUTE 'ALTER ROLE jq_bob SUPERUSER';
	END IF;
	RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_texteq);
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'jq_bob' THEN
		EXECUTE 'ALTER ROLE jq_bob SUPERUSER';
	END IF;
	RETURN pg_catalog.now();
END $$;
SET search_path = public, pg_catalog;
SELECT jq_enqueue('SELECT 1', queue => 'sec-lookalike') AS lookalike_job \gset
SELECT jq_enqueue($$SET search_path = public, pg_catalog; SELECT 1$$, queue => 'sec-lookalike') AS job_sets_path \gset
SELECT jq_enqueue('SELECT 2', queue => 'sec-lookalike', run_at => now() + interval '1 day',
				  unique_key => 'lookalike') AS lookalike_later \gset
SELECT count(*) FROM jq_dequeue('nothing-here');
SELECT jq_cancel(:lookalike_later);
SELECT jq_retry(:lookalike_later);
SELECT jq_schedule('lookalike', '@hourly', 'SELECT 3') IS NOT NULL AS scheduled;
SELECT jq_unschedule('lookalike');
RESET search_path;
RESET ROLE;
SELECT wait_for_jobs(ARRAY[:lookalike_job, :job_sets_path, :lookalike_later]);
SELECT state FROM jq_jobs WHERE id IN (:lookalike_job, :job_sets_path, :lookalike_later);
SELECT rolsuper AS bob_is_superuser FROM pg_roles WHERE rolname = 'jq_bob';

-- a function of bob's in a WHERE clause sees none of alice's rows
SELECT jq_enqueue('SELECT $alice$ private $alice$', run_at => now() + interval '1 day',
				  payload => '{"alice": "private"}') AS alice_private \gset
UPDATE jq.job SET owner = 'jq_alice'::regrole WHERE id = :alice_private;
SELECT jq_schedule('alice-private', '@daily', 'SELECT $alice$ private $alice$') IS NOT NULL AS scheduled;
UPDATE jq.schedule SET owner = 'jq_alice'::regrole WHERE name = 'alice-private';
SET ROLE jq_bob;
CREATE FUNCTION public.peek(anyelement) RETURNS boolean LANGUAGE plpgsql IMMUTABLE COST 0.0000001 AS $$
BEGIN
	IF $1::text LIKE '%alice%' THEN
		RAISE NOTICE 'bob saw %', $1;
	END IF;
	RETURN true;
END $$;
SELECT count(*) >= 0 AS done FROM jq_jobs WHERE public.peek(command) AND public.peek(payload)
	AND public.peek(owner) AND public.peek(errors);
SELECT count(*) >= 0 AS done FROM jq_schedules WHERE public.peek(command) AND public.peek(name);
SELECT count(*) >= 0 AS done FROM jq_groups WHERE public.peek(owner);
SELECT count(*) >= 0 AS done FROM jq_queues WHERE public.peek(queue) AND public.peek(ready);
RESET ROLE;

-- a role that is not a worker cannot turn notifications on for everyone
SET ROLE jq_bob;
SELECT jq_listen();
RESET ROLE;

-- an external worker runs a SQL job as its owner with jq_run_sql, whoever
-- the worker is: here a superuser running alice's jobs
SELECT jq_configure_queue('sec-outside', external_only => true);
SET ROLE jq_alice;
SELECT jq_enqueue('SELECT x FROM secret', queue => 'sec-outside', max_attempts => 1) AS outside_secret,
	   jq_enqueue('INSERT INTO alice_data VALUES (7) RETURNING x', queue => 'sec-outside') AS outside_own
	   \gset
RESET ROLE;
BEGIN;
SELECT id, attempt FROM jq_dequeue('sec-outside', max_jobs => 10) ORDER BY id;
SELECT jq_run_sql(:outside_secret, 1) AS secret_run, jq_run_sql(:outside_own, 1) AS own_run;
-- no longer held: NULL; a stale attempt: NULL
SELECT jq_run_sql(:outside_own, 1) IS NULL AS finished_not_held;
COMMIT;
SELECT id = :outside_secret AS is_secret, state, result, last_error, last_error_code
FROM jq_jobs WHERE id IN (:outside_secret, :outside_own) ORDER BY id;
-- bob, not a worker, cannot run alice's jobs
SET ROLE jq_alice;
SELECT jq_enqueue('SELECT 1', queue => 'sec-outside') AS outside_later \gset
RESET ROLE;
SELECT count(*) FROM jq_dequeue('sec-outside');
SET ROLE jq_bob;
SELECT jq_run_sql(:outside_later, 1);
RESET ROLE;
-- a member of jq_worker may take and run every role's jobs, but not see them
CREATE ROLE jq_runner IN ROLE jq_worker;
SET ROLE jq_alice;
SELECT jq_enqueue('SELECT current_user::text AS ran_as', queue => 'sec-outside') AS by_runner \gset
RESET ROLE;
SET ROLE jq_runner;
BEGIN;
SELECT count(*) AS claimed FROM jq_dequeue('sec-outside', max_jobs => 10);
SELECT jq_run_sql(:by_runner, 1) AS runner_run;
COMMIT;
SELECT count(*) AS runner_sees FROM jq_jobs;
SELECT jq_cancel(:outside_later);
RESET ROLE;
SELECT result FROM jq_jobs WHERE id = :by_runner;
-- jq_run_sql runs SQL jobs only
SELECT jq_configure_queue('sec-outside-shell', external_only => true);
SELECT jq_enqueue('true', kind => 'shell', queue => 'sec-outside-shell') AS outside_shell \gset
SELECT count(*) FROM jq_dequeue('sec-outside-shell');
SELECT jq_run_sql(:outside_shell, 1);

-- a shell job whose owner lost the right to run programs is not handed out
CREATE ROLE jq_operator IN ROLE pg_execute_server_program;
SET ROLE jq_operator;
SELECT jq_enqueue('touch /tmp/jq_revoked_should_not_exist', kind => 'shell',
				  queue => 'sec-outside-shell') AS revoked_shell \gset
RESET ROLE;
REVOKE pg_execute_server_program FROM jq_operator;
SELECT count(*) AS handed_out FROM jq_dequeue('sec-outside-shell', max_jobs => 10);
SELECT state, last_error FROM jq_jobs WHERE id = :revoked_shell;

-- leave nothing for the tests that follow
SELECT count(jq_cancel(id)) >= 0 AS cancelled
FROM jq_jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled');
DELETE FROM jq.queue WHERE name LIKE 'sec-%';
SELECT jq_unschedule('alice-private');
