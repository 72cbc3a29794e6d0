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
