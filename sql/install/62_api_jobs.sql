/* ---------------------------------------------------------------------
 * Internal counterparts of the API functions.  jq_api_call passes the
 * calling role and whether it is a member of jq_admin before the caller's
 * own arguments.
 * --------------------------------------------------------------------- */

/*
 * The functions below run their jq._ counterpart as the extension owner,
 * passing the calling role and whether it is a member of jq_admin first.
 */

-- the active job row a caller may manage, locked (NULL once finished); raises when it may not
CREATE OR REPLACE FUNCTION jq._own_job(p_caller oid, p_is_admin boolean, p_id bigint)
RETURNS jq.job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jq.job;
	job_owner oid;
BEGIN
	IF p_id IS NULL THEN
		RAISE EXCEPTION 'job id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;

	-- another role's job is as absent as a missing one, and is not locked
	SELECT * INTO j FROM jq.job WHERE id = p_id AND (owner = p_caller OR p_is_admin)
	FOR UPDATE;
	job_owner := coalesce(j.owner, (SELECT h.owner FROM jq.job_history h
									WHERE h.id = p_id AND (h.owner = p_caller OR p_is_admin)));

	IF job_owner IS NULL THEN
		RAISE EXCEPTION 'job % does not exist', p_id
			USING ERRCODE = 'no_data_found',
				  HINT = 'A role sees only its own jobs, unless it is a member of jq_admin.';
	END IF;
	RETURN j;
END
$$;

/*
 * The jobs among p_ids that the caller may manage and an external worker
 * holds, each in the attempt at the same place of p_attempts when that is
 * not NULL (the attempt jq_dequeue returned: a worker whose lease expired
 * cannot finish the attempt of the next worker), locked in id order.  The
 * others are looked at as jq._own_job does, which raises for a job the
 * caller may not see.
 */
CREATE OR REPLACE FUNCTION jq._leased_jobs(p_caller oid, p_is_admin boolean, p_ids bigint[],
										   p_attempts integer[])
RETURNS SETOF jq.job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held jq.job[];
BEGIN
	SELECT coalesce(array_agg(l ORDER BY l.id), '{}') INTO held
	FROM (SELECT j.*
		  FROM (SELECT DISTINCT c.id, c.attempt
				FROM unnest(p_ids,
							coalesce(p_attempts,
									 array_fill(NULL::integer,
												ARRAY[coalesce(cardinality(p_ids), 0)])))
					AS c(id, attempt)) c
			  JOIN jq.job j ON j.id = c.id
		  WHERE (j.owner = p_caller OR p_is_admin) AND j.state = 'running'
			AND j.executor_token IS NULL AND (c.attempt IS NULL OR j.attempts = c.attempt)
		  ORDER BY j.id
		  FOR UPDATE OF j) l;
	PERFORM jq._own_job(p_caller, p_is_admin, c.id)
	FROM unnest(p_ids) AS c(id)
	WHERE c.id IS NULL OR c.id <> ALL (ARRAY(SELECT h.id FROM unnest(held) h))
	ORDER BY c.id;
	RETURN QUERY SELECT * FROM unnest(held);
END
$$;

-- jq._leased_jobs for one job: the job, or NULL
CREATE OR REPLACE FUNCTION jq._leased_job(p_caller oid, p_is_admin boolean, p_id bigint,
										  p_attempt integer)
RETURNS jq.job
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT * FROM jq._leased_jobs(p_caller, p_is_admin, ARRAY[p_id], ARRAY[p_attempt])
$$;

CREATE OR REPLACE FUNCTION jq_listen()
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_listen';
COMMENT ON FUNCTION jq_listen IS 'LISTEN on channel jq_jobs and ask enqueuers to NOTIFY it (jq.notify = auto)';

CREATE OR REPLACE FUNCTION jq_dequeue(queue text DEFAULT 'default',
						   max_jobs integer DEFAULT 1,
						   lease interval DEFAULT '5 minutes',
						   worker text DEFAULT NULL,
						   kinds text[] DEFAULT NULL,
						   queues text[] DEFAULT NULL,
						   tasks text[] DEFAULT NULL)
RETURNS TABLE (id bigint, queue text, kind text, command text, argv text[], env jsonb,
			   working_dir text, payload jsonb, attempt integer, max_attempts integer,
			   timeout interval, lease_expires_at timestamptz)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_dequeue IS 'claim ready jobs for an external worker, under a lease; task jobs only when named in tasks, or when kinds lists task and tasks is not given';

CREATE OR REPLACE FUNCTION jq._jq_dequeue(p_caller oid, p_is_admin boolean, p_queue text,
										  p_max_jobs integer, p_lease interval, p_worker text,
										  p_kinds text[], p_queues text[], p_tasks text[])
RETURNS TABLE (id bigint, queue text, kind text, command text, argv text[], env jsonb,
			   working_dir text, payload jsonb, attempt integer, max_attempts integer,
			   timeout interval, lease_expires_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'jq_dequeue_claim';

CREATE OR REPLACE FUNCTION jq_complete(id bigint, result jsonb DEFAULT NULL, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_complete IS 'mark a job held by an external worker succeeded';

CREATE OR REPLACE FUNCTION jq._jq_complete(p_caller oid, p_is_admin boolean, p_id bigint, p_result jsonb,
								p_attempt integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (jq._leased_job(p_caller, p_is_admin, p_id, p_attempt)).id IS NULL THEN
		RETURN false;
	END IF;
	PERFORM jq._finish(ARRAY[p_id], ARRAY['succeeded'], ARRAY[p_result], ARRAY[NULL::text],
					   ARRAY[NULL::text], ARRAY[false], ARRAY[NULL::timestamptz],
					   ARRAY[clock_timestamp()]);
	RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION jq_fail(id bigint, error text, retry boolean DEFAULT true,
						attempt integer DEFAULT NULL, result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_fail IS 'record a failed attempt of a job held by an external worker';

CREATE OR REPLACE FUNCTION jq._jq_fail(p_caller oid, p_is_admin boolean, p_id bigint, p_error text,
							p_retry boolean, p_attempt integer, p_result jsonb)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jq.job := jq._leased_job(p_caller, p_is_admin, p_id, p_attempt);
	next_retry timestamptz;
BEGIN
	IF j.id IS NULL THEN
		RETURN false;
	END IF;
	next_retry := jq._finish(ARRAY[p_id],
							 ARRAY[CASE WHEN p_retry IS TRUE THEN 'error' ELSE 'rejected' END],
							 ARRAY[p_result], ARRAY[coalesce(p_error, 'failed')],
							 ARRAY[NULL::text], ARRAY[false], ARRAY[NULL::timestamptz],
							 ARRAY[clock_timestamp()]);
	IF next_retry IS NOT NULL THEN
		PERFORM jq._wake_at_commit(next_retry);
	END IF;
	RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION jq_heartbeat(id bigint, lease interval DEFAULT '5 minutes',
							 attempt integer DEFAULT NULL)
RETURNS timestamptz
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_heartbeat IS 'extend the lease of a job held by an external worker';

CREATE OR REPLACE FUNCTION jq._jq_heartbeat(p_caller oid, p_is_admin boolean, p_id bigint, p_lease interval,
								 p_attempt integer)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	expires timestamptz;
BEGIN
	IF p_lease IS NULL OR p_lease <= interval '0' THEN
		RAISE EXCEPTION 'lease must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (jq._leased_job(p_caller, p_is_admin, p_id, p_attempt)).id IS NULL THEN
		RETURN NULL;
	END IF;
	UPDATE jq.job SET lease_expires_at = clock_timestamp() + p_lease
	WHERE id = p_id
	RETURNING lease_expires_at INTO expires;
	RETURN expires;
END
$$;

/*
 * Calls of external workers beyond jq_dequeue, jq_complete, jq_fail and
 * jq_heartbeat: completing many jobs in one call, and giving a job back.
 *
 * Giving a job back: an external worker that stops before it could finish a
 * job it holds (a shutdown whose grace period ran out) hands it back at
 * once, with the attempt it was charged, instead of letting its lease run
 * out.  Like jq_complete and jq_fail, only the role that holds the job (or a
 * member of jq_admin) may, and only for the attempt it holds.
 */
CREATE OR REPLACE FUNCTION jq_release(id bigint, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_release IS 'give back a job held by an external worker: ready again at once, its attempt not counted';

CREATE OR REPLACE FUNCTION jq._jq_release(p_caller oid, p_is_admin boolean, p_id bigint, p_attempt integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held boolean := (jq._leased_job(p_caller, p_is_admin, p_id, p_attempt)).id IS NOT NULL;
BEGIN
	IF held THEN
		PERFORM jq._finish_all(ARRAY[p_id], 'released', NULL, false);
		-- executors for the kinds they run, external workers through NOTIFY
		PERFORM jq._wake_at_commit(clock_timestamp());
		PERFORM jq._notify_due();
	END IF;
	RETURN held;
END
$$;

/*
 * jq_complete for many jobs at once: one call and one pass of jq._finish
 * instead of one per job.  The jobs are checked as jq_complete checks one
 * (jq._leased_jobs: the caller's, or a member of jq_admin; held; the
 * attempt given, when given); returns the ids of those it completed,
 * passing over the others.
 */
CREATE OR REPLACE FUNCTION jq_complete_many(ids bigint[], results jsonb[] DEFAULT NULL,
								 attempts integer[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_complete_many IS 'mark many jobs held by an external worker succeeded; returns the ids it completed';

CREATE OR REPLACE FUNCTION jq._jq_complete_many(p_caller oid, p_is_admin boolean, p_ids bigint[],
									 p_results jsonb[], p_attempts integer[])
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	done_ids bigint[];
	done_results jsonb[];
	n integer := cardinality(p_ids);
BEGIN
	IF cardinality(p_results) <> n OR cardinality(p_attempts) <> n THEN
		RAISE EXCEPTION 'ids, results and attempts must have as many elements'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	SELECT array_agg(c.id ORDER BY c.id), array_agg(c.result ORDER BY c.id)
	INTO done_ids, done_results
	FROM jq._leased_jobs(p_caller, p_is_admin, p_ids, p_attempts) l
		JOIN (SELECT DISTINCT ON (c.id) c.id, c.result
			  FROM unnest(p_ids, coalesce(p_results, array_fill(NULL::jsonb, ARRAY[n])))
				  AS c(id, result)
			  ORDER BY c.id) c ON c.id = l.id;

	IF done_ids IS NOT NULL THEN
		PERFORM jq._finish(done_ids, array_fill('succeeded'::text, ARRAY[cardinality(done_ids)]),
						   done_results,
						   array_fill(NULL::text, ARRAY[cardinality(done_ids)]),
						   array_fill(NULL::text, ARRAY[cardinality(done_ids)]),
						   array_fill(false, ARRAY[cardinality(done_ids)]),
						   array_fill(NULL::timestamptz, ARRAY[cardinality(done_ids)]),
						   array_fill(clock_timestamp(), ARRAY[cardinality(done_ids)]));
	END IF;
	RETURN coalesce(done_ids, '{}');
END
$$;

CREATE OR REPLACE FUNCTION jq_run_sql(id bigint, attempt integer)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_run_sql';
COMMENT ON FUNCTION jq_run_sql IS 'run a SQL job held by an external worker as the role that enqueued it, and record its outcome; NULL if not held';

/*
 * jq_run_sql for a batch: an external worker runs the SQL jobs it holds in
 * one call and one transaction, their outcomes recorded together (run_sql.c).
 */
CREATE OR REPLACE FUNCTION jq_run_sql_many(ids bigint[], attempts integer[])
RETURNS TABLE (id bigint, succeeded boolean)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_run_sql_many';
COMMENT ON FUNCTION jq_run_sql_many IS 'run SQL jobs held by an external worker, in order, each as the role that enqueued it, and record their outcomes; a row per job dealt with, succeeded NULL if not held';

CREATE OR REPLACE FUNCTION jq_cancel(id bigint)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_cancel IS 'cancel a job that has not finished';

CREATE OR REPLACE FUNCTION jq._jq_cancel(p_caller oid, p_is_admin boolean, p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jq.job := jq._own_job(p_caller, p_is_admin, p_id);
BEGIN
	IF j.id IS NULL THEN
		RETURN false;			-- already finished
	END IF;
	IF j.state = 'running' AND j.executor_token IS NOT NULL THEN
		-- the executor running it records the cancellation when it stops the job
		RETURN jq._request_cancel(j.executor_token, p_id);
	END IF;
	PERFORM jq._finish_all(ARRAY[p_id], 'cancelled', NULL, false);
	RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION jq_retry(id bigint)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_retry IS 'run a failed or cancelled job again, with fresh attempts';

CREATE OR REPLACE FUNCTION jq._jq_retry(p_caller oid, p_is_admin boolean, p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jq.job := jq._own_job(p_caller, p_is_admin, p_id);
	h jq.job_history;
	pending bigint[];
BEGIN
	IF j.id IS NOT NULL THEN
		RAISE EXCEPTION 'job % has not finished', p_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Only failed and cancelled jobs can be retried.';
	END IF;
	DELETE FROM jq.job_history WHERE id = p_id AND state IN ('failed', 'cancelled')
	RETURNING * INTO h;
	IF h.id IS NULL THEN
		RAISE EXCEPTION 'job % succeeded and cannot be retried', p_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Only failed and cancelled jobs can be retried.';
	END IF;
	-- it waits again for those of its dependencies that are active again (retried)
	pending := ARRAY(SELECT d.id FROM jq._hold_dependencies(h.depends_on) d);
	INSERT INTO jq.job (id, queue, kind, command, argv, env, working_dir, payload, priority,
						state, run_at, attempts, max_attempts, timeout, owner, created_at,
						errors, schedule_name, unique_key, depends_on, on_dependency_failure,
						group_id, waiting_for)
	VALUES (h.id, h.queue, h.kind, h.command, h.argv, h.env, h.working_dir, h.payload,
			h.priority,
			CASE WHEN cardinality(pending) > 0 THEN 'waiting' ELSE 'ready' END::jq.state,
			now(), 0, h.max_attempts, h.timeout, h.owner, h.created_at,
			h.errors, h.schedule_name, h.unique_key, h.depends_on, h.on_dependency_failure, h.group_id,
			cardinality(pending))
	ON CONFLICT (owner, unique_key) WHERE unique_key IS NOT NULL DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job % cannot be retried while another job with unique key "%" is active',
			p_id, h.unique_key
			USING ERRCODE = 'unique_violation',
				  HINT = 'Retry it once that job has finished.';
	END IF;
	INSERT INTO jq.dependency (job_id, depends_on) SELECT p_id, unnest(pending);
	PERFORM jq._wake_at_commit(now());
	RETURN true;
END
$$;
