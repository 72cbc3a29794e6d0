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
CREATE FUNCTION jq_release(id bigint, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_release IS 'give back a job held by an external worker: ready again at once, its attempt not counted';

CREATE FUNCTION jq._jq_release(p_caller oid, p_is_admin boolean, p_id bigint, p_attempt integer)
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
 * instead of one per job.  Each job is checked as jq_complete checks it
 * (jq._leased_job: the caller's, or a member of jq_admin; held; the attempt
 * given, when given); returns the ids of those it completed, passing over
 * the others.
 */
CREATE FUNCTION jq_complete_many(ids bigint[], results jsonb[] DEFAULT NULL,
								 attempts integer[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_complete_many IS 'mark many jobs held by an external worker succeeded; returns the ids it completed';

CREATE FUNCTION jq._jq_complete_many(p_caller oid, p_is_admin boolean, p_ids bigint[],
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
	-- the jobs held, locked in id order; then the others as jq._own_job sees
	-- them (it raises for a job the caller may not see)
	WITH held AS (
		SELECT c.id, c.result
		FROM unnest(p_ids,
					coalesce(p_results, array_fill(NULL::jsonb, ARRAY[n])),
					coalesce(p_attempts, array_fill(NULL::integer, ARRAY[n])))
				AS c(id, result, attempt)
			JOIN jq.job j ON j.id = c.id
		WHERE (j.owner = p_caller OR p_is_admin) AND j.state = 'running'
		  AND j.executor_token IS NULL AND (c.attempt IS NULL OR j.attempts = c.attempt)
		ORDER BY c.id
		FOR UPDATE OF j
	)
	SELECT array_agg(h.id ORDER BY h.id), array_agg(h.result ORDER BY h.id)
	INTO done_ids, done_results
	FROM held h;
	PERFORM jq._own_job(p_caller, p_is_admin, c.id)
	FROM unnest(p_ids) AS c(id)
	WHERE c.id <> ALL (coalesce(done_ids, '{}'))
	ORDER BY c.id;

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
