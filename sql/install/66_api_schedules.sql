/*
 * Recurring jobs of the calling role: each C declaration is followed by
 * the jq._jq_ function jq_api_call runs for it (see 62_api_jobs.sql).
 */

CREATE OR REPLACE FUNCTION jq_schedule(name text,
							schedule text,
							command text DEFAULT NULL,
							kind text DEFAULT 'sql',
							queue text DEFAULT 'default',
							priority integer DEFAULT NULL,
							max_attempts integer DEFAULT NULL,
							timeout interval DEFAULT NULL,
							payload jsonb DEFAULT NULL,
							time_zone text DEFAULT 'UTC',
							overlap text DEFAULT 'skip',
							argv text[] DEFAULT NULL,
							env jsonb DEFAULT NULL,
							working_dir text DEFAULT NULL,
							jobs jsonb DEFAULT NULL)
RETURNS timestamptz
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_schedule IS 'create or replace a recurring job of the current role; returns its first fire time';

/*
 * Create or replace the caller's schedule p_name.  The job is checked as
 * jq_enqueue checks it, with the caller's rights; the schedule and the time
 * zone by computing the first fire time.  A replaced schedule keeps its
 * history (last run, last job, skipped runs) and starts again from now.
 * Nobody, not even a member of jq_admin, can replace another role's
 * schedule: its jobs would run as that role.
 */
CREATE OR REPLACE FUNCTION jq._jq_schedule(p_caller oid, p_is_admin boolean, p_name text,
								p_schedule text, p_command text, p_kind text, p_queue text,
								p_priority integer, p_max_attempts integer,
								p_timeout interval, p_payload jsonb, p_time_zone text,
								p_overlap text, p_argv text[], p_env jsonb,
								p_working_dir text, p_jobs jsonb)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	first_run timestamptz;
BEGIN
	IF p_name IS NULL OR p_schedule IS NULL OR p_time_zone IS NULL OR p_overlap IS NULL THEN
		RAISE EXCEPTION '% must not be null',
			CASE WHEN p_name IS NULL THEN 'name' WHEN p_schedule IS NULL THEN 'schedule'
				 WHEN p_time_zone IS NULL THEN 'time_zone' ELSE 'overlap' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF btrim(p_name) = '' THEN
		RAISE EXCEPTION 'schedule name must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_overlap NOT IN ('skip', 'queue') THEN
		RAISE EXCEPTION 'unknown overlap policy "%"', p_overlap
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use skip (no new run while the last one has not finished) or queue (enqueue every run).';
	END IF;
	first_run := jq._schedule_next(p_schedule, clock_timestamp(), p_time_zone);
	IF p_jobs IS NULL THEN
		PERFORM jq._enqueue(p_caller, true, p_kind, NULL, p_command, p_argv, p_env,
							p_working_dir, p_queue, p_priority, NULL, p_max_attempts, p_timeout,
							p_payload, NULL, NULL, 'cancel');
	ELSIF p_command IS NOT NULL OR p_argv IS NOT NULL THEN
		RAISE EXCEPTION 'pass either command, argv or jobs'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'jobs is a group of jobs, as jq_enqueue_group takes it; the other job arguments then do not apply.';
	ELSE
		-- the group's own checks, by enqueueing it in a subtransaction undone at once
		BEGIN
			PERFORM jq._enqueue_group(p_caller, p_jobs, p_name);
			RAISE EXCEPTION USING ERRCODE = 'JQ000';
		EXCEPTION WHEN SQLSTATE 'JQ000' THEN
			NULL;
		END;
	END IF;

	INSERT INTO jq.schedule AS s
		(name, owner, schedule, time_zone, overlap, kind, command, argv, env, working_dir,
		 queue, priority, max_attempts, timeout, payload, next_run, jobs)
	VALUES (p_name, p_caller, p_schedule, p_time_zone, p_overlap, p_kind, p_command, p_argv,
			p_env, p_working_dir, p_queue, p_priority, p_max_attempts, p_timeout, p_payload,
			first_run, p_jobs)
	ON CONFLICT (name) DO UPDATE
	SET schedule = excluded.schedule, time_zone = excluded.time_zone,
		overlap = excluded.overlap, kind = excluded.kind, command = excluded.command,
		argv = excluded.argv, env = excluded.env, working_dir = excluded.working_dir,
		queue = excluded.queue, priority = excluded.priority,
		max_attempts = excluded.max_attempts, timeout = excluded.timeout,
		payload = excluded.payload, next_run = excluded.next_run, jobs = excluded.jobs,
		last_error = NULL
	WHERE s.owner = p_caller;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'permission denied for schedule "%"', p_name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Another role owns a schedule of that name.',
				  HINT = 'Choose another name.  Only the owner of a schedule can replace it.';
	END IF;

	PERFORM jq._wake_scheduler_at_commit(first_run);
	RETURN first_run;
END
$$;

CREATE OR REPLACE FUNCTION jq_unschedule(name text)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_unschedule IS 'remove a recurring job; false if there is none of that name';

-- remove a schedule; the jobs it already enqueued stay
CREATE OR REPLACE FUNCTION jq._jq_unschedule(p_caller oid, p_is_admin boolean, p_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	schedule_owner oid;
BEGIN
	-- the error undoes the delete
	DELETE FROM jq.schedule s WHERE s.name = p_name RETURNING s.owner INTO schedule_owner;
	IF schedule_owner <> p_caller AND NOT p_is_admin THEN
		RAISE EXCEPTION 'permission denied for schedule "%"', p_name
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only the role that created a schedule and members of jq_admin can remove it.';
	END IF;
	RETURN schedule_owner IS NOT NULL;
END
$$;
