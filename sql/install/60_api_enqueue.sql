/*
 * Enqueueing jobs: jq_enqueue, jq_enqueue_shell and jq_enqueue_bulk are C
 * functions; jq_enqueue_group is followed by the jq._jq_ function jq_api_call
 * runs for it (see 62_api_jobs.sql).
 */

CREATE OR REPLACE FUNCTION jq_enqueue(command text,
						   queue text DEFAULT 'default',
						   priority integer DEFAULT NULL,
						   run_at timestamptz DEFAULT NULL,
						   max_attempts integer DEFAULT NULL,
						   timeout interval DEFAULT NULL,
						   payload jsonb DEFAULT NULL,
						   kind text DEFAULT 'sql',
						   unique_key text DEFAULT NULL,
						   depends_on bigint[] DEFAULT NULL,
						   on_dependency_failure text DEFAULT 'cancel')
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_enqueue';
COMMENT ON FUNCTION jq_enqueue IS 'enqueue one job (SQL, a shell command line, or a task for an application''s worker) in the current transaction; returns its id';

CREATE OR REPLACE FUNCTION jq_enqueue_shell(command text DEFAULT NULL,
								 argv text[] DEFAULT NULL,
								 env jsonb DEFAULT NULL,
								 working_dir text DEFAULT NULL,
								 queue text DEFAULT 'default',
								 priority integer DEFAULT NULL,
								 run_at timestamptz DEFAULT NULL,
								 max_attempts integer DEFAULT NULL,
								 timeout interval DEFAULT NULL,
								 payload jsonb DEFAULT NULL,
								 unique_key text DEFAULT NULL,
								 depends_on bigint[] DEFAULT NULL,
								 on_dependency_failure text DEFAULT 'cancel')
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_enqueue_shell';
COMMENT ON FUNCTION jq_enqueue_shell IS 'enqueue one shell job: a command line for /bin/sh, or a program and its arguments; returns its id';

CREATE OR REPLACE FUNCTION jq_enqueue_bulk(commands text[],
								queue text DEFAULT 'default',
								priority integer DEFAULT NULL,
								run_at timestamptz DEFAULT NULL,
								max_attempts integer DEFAULT NULL,
								timeout interval DEFAULT NULL,
								payloads jsonb[] DEFAULT NULL,
								kind text DEFAULT 'sql')
RETURNS bigint[]
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_enqueue_bulk';
COMMENT ON FUNCTION jq_enqueue_bulk IS 'enqueue one job per array element in one statement; returns their ids';

/*
 * jq_enqueue_shell's work for internal callers (groups, schedules): enqueue
 * a job of any kind for the given owner, with the checks the API functions
 * apply as if the owner had called them (shell jobs need its right to run
 * server programs); with check_only, only check it and return NULL.
 */
CREATE OR REPLACE FUNCTION jq._enqueue(owner oid, check_only boolean, kind text, group_id bigint,
							command text, argv text[], env jsonb, working_dir text,
							queue text, priority integer, run_at timestamptz,
							max_attempts integer, timeout interval, payload jsonb,
							unique_key text, depends_on bigint[],
							on_dependency_failure text)
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_enqueue_internal';

CREATE OR REPLACE FUNCTION jq_enqueue_group(jobs jsonb, name text DEFAULT NULL)
RETURNS TABLE (name text, id bigint)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_enqueue_group IS 'enqueue a group of jobs that may depend on each other, all or none; returns each job''s name and id';

CREATE OR REPLACE FUNCTION jq._jq_enqueue_group(p_caller oid, p_is_admin boolean, p_jobs jsonb,
									p_name text)
RETURNS TABLE (name text, id bigint)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM jq._enqueue_group(p_caller, p_jobs, p_name)
$$;
