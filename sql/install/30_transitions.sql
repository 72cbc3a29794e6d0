/* ---------------------------------------------------------------------
 * Internal SQL: moving jobs between states.  Called by the C code as the
 * extension owner; never executable by PUBLIC.
 * --------------------------------------------------------------------- */

/*
 * Delay before retrying after attempt p_attempt: jq.retry_backoff_base
 * doubled per attempt, capped at jq.retry_backoff_cap, then jittered to
 * between half and all of it.
 */
CREATE OR REPLACE FUNCTION jq._backoff(p_attempt integer)
RETURNS interval
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT make_interval(secs => d * (0.5 + random() / 2))
	FROM (SELECT least(extract(epoch FROM current_setting('jq.retry_backoff_cap')::interval),
					   extract(epoch FROM current_setting('jq.retry_backoff_base')::interval)
					   * power(2, least(greatest(p_attempt - 1, 0), 60)))::float8 AS d) s
$$;

-- an attempt's error as stored in errors[]
CREATE OR REPLACE FUNCTION jq._error(p_attempt integer, p_message text, p_code text, p_timeout boolean)
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_build_object('attempt', p_attempt, 'at', clock_timestamp(),
							  'message', p_message, 'code', p_code, 'timeout', p_timeout)
$$;

/*
 * ready -> running: the one statement that claims jobs, for in-server
 * executors (p_token, no lease) and external workers (p_lease_owner until
 * p_lease_expires) alike.  The callers pick ready jobs and lock them
 * (FOR UPDATE SKIP LOCKED), so that none can change state before this.
 * Each job is looked up by its primary key alone: a condition on its state
 * would let the planner read every ready job through their partial indexes
 * when the statistics say there are few.  The attempt it starts is counted
 * now, so that a claim whose runner dies still uses it up.
 */
CREATE OR REPLACE FUNCTION jq._claim(p_ids bigint[], p_token bigint, p_lease_owner text,
						  p_lease_expires timestamptz)
RETURNS SETOF jq.job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	UPDATE jq.job j
	SET state = 'running', attempts = j.attempts + 1, started_at = clock_timestamp(),
		executor_token = p_token, lease_owner = p_lease_owner,
		lease_expires_at = p_lease_expires
	WHERE j.id = ANY (p_ids)
	RETURNING j.*;
END
$$;

/*
 * ready -> running again for the claims a crash of the server lost: the
 * claim files of in-server executors (src/claim_trace.c) record each job
 * claimed (p_ids) with the attempt its claim started (p_attempts), and the
 * claim's commit may not have reached the disk.  A job the file names that
 * is ready with fewer attempts, or still running for an executor with
 * fewer, is running again with that attempt, for an executor of the
 * earlier server run (token 0), so that jq._reclaim charges it like any
 * job cut off by the restart.  A job claimed again since, or finished, is
 * left alone.  Returns how many jobs were put back.
 */
CREATE OR REPLACE FUNCTION jq._restore_claims(p_ids bigint[], p_attempts integer[])
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	WITH restored AS (
		UPDATE jq.job j
		SET state = 'running', attempts = c.attempts, executor_token = 0,
			lease_owner = 'in-server executor'
		FROM (SELECT r.id, max(r.attempts) AS attempts
			  FROM ROWS FROM (unnest(p_ids), unnest(p_attempts)) AS r(id, attempts)
			  GROUP BY r.id) c
		WHERE j.id = c.id AND j.attempts < c.attempts
		  AND (j.state = 'ready' OR (j.state = 'running' AND j.executor_token IS NOT NULL))
		RETURNING j.id)
	SELECT count(*) FROM restored
$$;

-- the state machine: a job's state changes only as src/transition.c lists
CREATE OR REPLACE FUNCTION jq._job_transition()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'jq_job_transition';

/*
 * Record the outcome of attempts.  An outcome is one of
 *	 succeeded	the job ends succeeded;
 *	 cancelled	the job ends cancelled, with the message as its last error
 *				when one is given;
 *	 error		the error (message, SQLSTATE or exit status, whether it was a
 *				timeout) is added to the job's errors, and the job is retried
 *				with backoff while attempts remain, else it ends failed;
 *	 rejected	an error that no retry can mend: the job ends failed at once;
 *	 released	the attempt was cut short by a shutdown, or by the death of
 *				the executor while the job waited in its batch: the job is
 *				ready again at once, with the attempt given back.
 * A result (jsonb) is kept when the job ends, and the jobs that depend on
 * it learn of it.  Returns the earliest retry.
 */
CREATE OR REPLACE FUNCTION jq._finish(p_ids bigint[], p_outcomes text[], p_results jsonb[],
						   p_messages text[], p_codes text[], p_timeouts boolean[],
						   p_started timestamptz[], p_finished timestamptz[])
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next_retry timestamptz;
	linked bigint[];
	linked_states jq.state[];
BEGIN
	/*
	 * A job that finishes when no partition of the history covers its time
	 * goes to the default partition; the scheduler attaching the partition
	 * that covers it meanwhile would make that insert fail.  Attaching
	 * needs the default partition to itself, so holding it from here on
	 * makes the scheduler wait (or try again at its next tick).
	 */
	LOCK TABLE jq.job_history_default IN ROW EXCLUSIVE MODE;
	WITH o AS (
		SELECT o.id, o.outcome, o.result, o.started, o.finished,
			   CASE WHEN o.outcome IN ('error', 'rejected', 'cancelled') THEN o.message END
				   AS message,
			   o.code, o.timeout
		FROM unnest(p_ids, p_outcomes, p_results, p_messages, p_codes, p_timeouts,
					p_started, p_finished)
			AS o(id, outcome, result, message, code, timeout, started, finished)
	), done AS (
		DELETE FROM jq.job j
		USING o
		WHERE j.id = o.id
		  AND (j.state = 'running' OR o.outcome = 'cancelled')
		  AND o.outcome <> 'released'
		  AND (o.outcome <> 'error' OR j.attempts >= j.max_attempts)
		RETURNING j.*, o.outcome, o.result, o.started, o.finished,
				  CASE WHEN o.message IS NOT NULL
					   THEN jq._error(j.attempts, o.message, o.code, o.timeout) END AS error,
				  CASE WHEN o.outcome IN ('error', 'rejected') THEN 'failed'
					   ELSE o.outcome END::jq.state AS final_state
	), moved AS (
		INSERT INTO jq.job_history
			(id, queue, kind, command, argv, env, working_dir, payload, priority, state,
			 run_at, attempts, max_attempts, timeout, owner, created_at, started_at,
			 finished_at, lease_owner, result, errors, schedule_name, unique_key,
			 depends_on, on_dependency_failure, group_id)
		SELECT d.id, d.queue, d.kind, d.command, d.argv, d.env, d.working_dir, d.payload,
			   d.priority, d.final_state,
			   d.run_at, d.attempts, d.max_attempts, d.timeout, d.owner, d.created_at,
			   coalesce(d.started, d.started_at), coalesce(d.finished, clock_timestamp()),
			   d.lease_owner, d.result,
			   CASE WHEN d.error IS NULL THEN d.errors
					ELSE coalesce(d.errors, '[]') || jsonb_build_array(d.error) END,
			   d.schedule_name, d.unique_key, d.depends_on, d.on_dependency_failure, d.group_id
		FROM done d
	)
	SELECT array_agg(d.id), array_agg(d.final_state) INTO linked, linked_states
	FROM done d
	WHERE d.has_dependants OR d.depends_on IS NOT NULL;

	IF linked IS NOT NULL THEN
		PERFORM jq._release_dependants(linked, linked_states);
	END IF;

	-- running -> ready: an attempt that failed with attempts left, retried
	-- after its backoff; an attempt given back (released), ready again at
	-- once in its place in line
	WITH o AS (
		SELECT * FROM unnest(p_ids, p_outcomes, p_messages, p_codes, p_timeouts, p_started)
			AS o(id, outcome, message, code, timeout, started)
		WHERE o.outcome IN ('error', 'released')
	), requeued AS (
		UPDATE jq.job j
		SET state = 'ready',
			attempts = CASE WHEN o.outcome = 'released' THEN j.attempts - 1 ELSE j.attempts END,
			run_at = CASE WHEN o.outcome = 'released' THEN j.run_at
						  ELSE clock_timestamp() + jq._backoff(j.attempts) END,
			started_at = coalesce(o.started, j.started_at),
			lease_owner = CASE WHEN o.outcome = 'released' THEN NULL ELSE j.lease_owner END,
			lease_expires_at = NULL,
			executor_token = NULL,
			errors = CASE WHEN o.outcome = 'released' THEN j.errors
						  ELSE coalesce(j.errors, '[]')
							   || jsonb_build_array(jq._error(j.attempts, o.message, o.code,
															  o.timeout)) END
		FROM o
		WHERE j.id = o.id AND j.state = 'running'
		RETURNING j.run_at, o.outcome
	)
	SELECT min(r.run_at) FILTER (WHERE r.outcome = 'error') INTO next_retry FROM requeued r;

	-- a job of a queue with a concurrency limit left a slot free: wake the executors
	IF EXISTS (SELECT FROM jq.queue q
			   WHERE q.concurrency IS NOT NULL
				 AND q.name IN (SELECT h.queue FROM jq.job_history h WHERE h.id = ANY (p_ids)
								UNION ALL
								SELECT j.queue FROM jq.job j WHERE j.id = ANY (p_ids))) THEN
		PERFORM jq._wake_at_commit(clock_timestamp());
	END IF;

	RETURN next_retry;
END
$$;

-- _finish for jobs that all end the same way, with a message each and no result
CREATE OR REPLACE FUNCTION jq._finish_each(p_ids bigint[], p_outcome text, p_messages text[],
								p_timeout boolean)
RETURNS timestamptz
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jq._finish(p_ids,
					  array_fill(p_outcome, ARRAY[cardinality(p_ids)]),
					  array_fill(NULL::jsonb, ARRAY[cardinality(p_ids)]),
					  p_messages,
					  array_fill(NULL::text, ARRAY[cardinality(p_ids)]),
					  array_fill(p_timeout, ARRAY[cardinality(p_ids)]),
					  array_fill(NULL::timestamptz, ARRAY[cardinality(p_ids)]),
					  array_fill(clock_timestamp(), ARRAY[cardinality(p_ids)]))
$$;

-- _finish for jobs that all end the same way, with no result
CREATE OR REPLACE FUNCTION jq._finish_all(p_ids bigint[], p_outcome text, p_message text,
							   p_timeout boolean)
RETURNS timestamptz
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jq._finish_each(p_ids, p_outcome, array_fill(p_message, ARRAY[cardinality(p_ids)]),
						   p_timeout)
$$;

/*
 * Give back the jobs of an in-server executor that exited (p_token), or of
 * every in-server executor of an earlier server run (p_token NULL).  The job
 * it was running (p_current), or every job when that cannot be known, is
 * charged the attempt it used; the others get their attempt back.
 */
CREATE OR REPLACE FUNCTION jq._reclaim(p_token bigint, p_current bigint, p_reason text)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	given_back bigint[];
	charged bigint[];
BEGIN
	IF p_token IS NOT NULL THEN
		SELECT array_agg(j.id ORDER BY j.id) INTO given_back
		FROM jq.job j
		WHERE j.state = 'running' AND j.executor_token = p_token
		  AND j.id IS DISTINCT FROM p_current;
		IF given_back IS NOT NULL THEN
			PERFORM jq._finish_all(given_back, 'released', NULL, false);
			-- due again, and not delayed jobs the scheduler's timer would find
			PERFORM jq._wake_at_commit(clock_timestamp());
		END IF;
		SELECT array_agg(j.id) INTO charged
		FROM jq.job j
		WHERE j.state = 'running' AND j.executor_token = p_token;
	ELSE
		-- locked, so that concurrent callers (jq_dequeue) charge each job once
		SELECT array_agg(r.id) INTO charged
		FROM (SELECT j.id FROM jq.job j
			  WHERE j.state = 'running' AND j.executor_token IS NOT NULL
			  ORDER BY j.id
			  FOR UPDATE SKIP LOCKED) r;
	END IF;

	IF charged IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN jq._finish_all(charged, 'error', p_reason, false);
END
$$;

/*
 * Claim up to p_max_jobs due jobs of limited queues that are not paused,
 * queue by queue in the order of each queue's first job, for an in-server
 * executor (p_token, p_lease_expires NULL) or an external worker.  Each
 * queue gives at most its free slots (concurrency minus running jobs) and
 * its rate tokens; an in-server executor takes only its share of the free
 * slots (p_claimers executors share them), and a job on its second or later
 * attempt only alone, when nothing else is claimed in its transaction
 * (p_claimed jobs are already).  Returns the claimed jobs.
 */
CREATE OR REPLACE FUNCTION jq._claim_limited(p_max_jobs integer, p_kinds text[], p_queues text[],
								  p_owner oid, p_token bigint, p_claimed integer,
								  p_claimers integer, p_lease_owner text,
								  p_lease_expires timestamptz, p_tasks text[] DEFAULT NULL)
RETURNS SETOF jq.job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	q jq.queue;
	running integer;
	tokens float8;
	free integer;
	take integer;
	ids bigint[];
	retries boolean[];
	first_retry integer;
	n integer;
	claimed integer := 0;
BEGIN
	-- jobs enqueued or retried while their queue's limited flag changed
	UPDATE jq.job j SET limited = NOT j.limited
	WHERE j.id IN (SELECT s.id FROM jq.queue sq JOIN jq.job s ON s.queue = sq.name
				   WHERE s.state = 'ready' AND s.limited = (NOT sq.limited)
				   FOR UPDATE OF s SKIP LOCKED);

	FOR q IN
		SELECT lq.*
		FROM jq.queue lq
		CROSS JOIN LATERAL (SELECT j.priority, j.run_at, j.id FROM jq.job j
							WHERE j.queue = lq.name AND j.limited AND j.state = 'ready'
							  AND j.run_at <= now()
							  AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
							  AND (j.kind <> 'task' OR j.command = ANY (p_tasks) OR (p_tasks IS NULL AND p_kinds IS NOT NULL))
							  AND (p_owner IS NULL OR j.owner = p_owner)
							ORDER BY j.priority, j.run_at, j.id LIMIT 1) head
		WHERE lq.limited AND NOT lq.paused
		  AND (p_token IS NULL OR NOT lq.external_only)
		  AND (p_queues IS NULL OR lq.name = ANY (p_queues))
		ORDER BY head.priority, head.run_at, head.id
	LOOP
		EXIT WHEN claimed >= p_max_jobs;

		-- the lock, and the settings and tokens as the last claimer left them
		SELECT * INTO q FROM jq.queue lq WHERE lq.name = q.name AND NOT lq.paused
		FOR UPDATE SKIP LOCKED;
		CONTINUE WHEN q.name IS NULL;
		IF current_setting('transaction_isolation') <> 'read committed' THEN
			RAISE EXCEPTION 'jobs of queue "%" can only be claimed in a READ COMMITTED transaction', q.name
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = 'Its concurrency and rate limits count the jobs other transactions claimed, which a transaction snapshot does not see.',
					  HINT = 'Call jq_dequeue in a READ COMMITTED transaction.';
		END IF;

		-- a new snapshot, taken after the lock
		SELECT count(*) INTO running FROM jq.job j WHERE j.queue = q.name AND j.state = 'running';
		free := q.concurrency - running;
		tokens := least(q.rate_limit, q.rate_tokens
						+ extract(epoch FROM clock_timestamp() - q.rate_refilled_at)
						  * q.rate_limit / extract(epoch FROM q.rate_period));
		take := least(p_max_jobs - claimed,
					  ceil(free::float8 / CASE WHEN p_token IS NULL THEN 1 ELSE p_claimers END),
					  floor(tokens));
		CONTINUE WHEN take <= 0;

		SELECT array_agg(c.id ORDER BY c.priority, c.run_at, c.id),
			   array_agg(c.attempts > 0 ORDER BY c.priority, c.run_at, c.id)
		INTO ids, retries
		FROM (SELECT j.id, j.attempts, j.priority, j.run_at FROM jq.job j
			  WHERE j.queue = q.name AND j.limited AND j.state = 'ready' AND j.run_at <= now()
				AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
				AND (j.kind <> 'task' OR j.command = ANY (p_tasks) OR (p_tasks IS NULL AND p_kinds IS NOT NULL))
				AND (p_owner IS NULL OR j.owner = p_owner)
			  ORDER BY j.priority, j.run_at, j.id
			  LIMIT take
			  FOR UPDATE SKIP LOCKED) c;
		CONTINUE WHEN ids IS NULL;

		-- in-server executors claim a retry alone (see the executors' own claim)
		first_retry := array_position(retries, true);
		IF p_token IS NOT NULL AND first_retry IS NOT NULL THEN
			ids := CASE WHEN first_retry = 1 AND p_claimed + claimed = 0 THEN ids[1:1]
						ELSE ids[1:first_retry - 1] END;
		END IF;

		RETURN QUERY
		SELECT * FROM jq._claim(ids, p_token, p_lease_owner, p_lease_expires);
		GET DIAGNOSTICS n = ROW_COUNT;
		claimed := claimed + n;

		IF q.rate_limit IS NOT NULL THEN
			UPDATE jq.queue lq SET rate_tokens = tokens - n, rate_refilled_at = clock_timestamp()
			WHERE lq.name = q.name
			RETURNING * INTO q;
			-- out of tokens: the scheduler wakes the executors when the next one comes
			IF q.rate_tokens < 1 THEN
				PERFORM jq._wake_at_commit(jq._rate_token_at(q));
			END IF;
		END IF;
		-- the queue has room left that this claimer did not take: let another
		IF n > 0 AND n < least(free, floor(tokens)) THEN
			PERFORM jq._wake_at_commit(clock_timestamp());
		END IF;

		EXIT WHEN p_token IS NOT NULL AND first_retry IS NOT NULL;
	END LOOP;
END
$$;

/*
 * Give the jobs of external workers whose lease expired another attempt.
 * A job whose lease is being extended right now is left for the next time.
 */
CREATE OR REPLACE FUNCTION jq._expire_leases()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	expired bigint[];
BEGIN
	SELECT array_agg(e.id) INTO expired
	FROM (SELECT j.id FROM jq.job j
		  WHERE j.state = 'running' AND j.lease_expires_at <= clock_timestamp()
		  ORDER BY j.id
		  FOR UPDATE SKIP LOCKED) e;

	IF expired IS NOT NULL THEN
		PERFORM jq._finish_all(expired, 'error', 'lease expired', true);
	END IF;
END
$$;
