/*
 * Settings of queues, for members of jq_admin: each C declaration is
 * followed by the jq._jq_ function jq_api_call runs for it (see
 * 62_api_jobs.sql).
 */

CREATE OR REPLACE FUNCTION jq_configure_queue(queue text, external_only boolean DEFAULT NULL,
								   paused boolean DEFAULT NULL,
								   concurrency integer DEFAULT NULL,
								   max_ready integer DEFAULT NULL,
								   rate_limit integer DEFAULT NULL,
								   rate_period interval DEFAULT NULL,
								   default_priority integer DEFAULT NULL,
								   default_max_attempts integer DEFAULT NULL,
								   default_timeout interval DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_configure_queue IS 'change the settings of a queue (members of jq_admin); NULL leaves a setting as it is, 0 removes a limit or default';

/*
 * NULL leaves a setting as it is; 0 removes a limit (concurrency, max_ready,
 * rate_limit) or a default (default_max_attempts, default_timeout).
 */
CREATE OR REPLACE FUNCTION jq._jq_configure_queue(p_caller oid, p_is_admin boolean, p_queue text,
									   p_external_only boolean, p_paused boolean DEFAULT NULL,
									   p_concurrency integer DEFAULT NULL,
									   p_max_ready integer DEFAULT NULL,
									   p_rate_limit integer DEFAULT NULL,
									   p_rate_period interval DEFAULT NULL,
									   p_default_priority integer DEFAULT NULL,
									   p_default_max_attempts integer DEFAULT NULL,
									   p_default_timeout interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	limits CONSTANT text[] := ARRAY['concurrency', 'max_ready', 'rate_limit'];
	given CONSTANT integer[] := ARRAY[p_concurrency, p_max_ready, p_rate_limit];
BEGIN
	IF NOT p_is_admin THEN
		RAISE EXCEPTION 'permission denied to configure queue %', p_queue
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only members of jq_admin can change the settings of a queue.';
	END IF;
	IF p_queue IS NULL THEN
		RAISE EXCEPTION 'queue must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM jq._check_queue_name(p_queue);
	FOR i IN 1 .. cardinality(limits) LOOP
		IF given[i] < 0 THEN
			RAISE EXCEPTION '% must not be negative', limits[i]
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass 0 to remove the limit, NULL to leave it as it is.';
		END IF;
	END LOOP;
	IF p_rate_period <= interval '0' THEN
		RAISE EXCEPTION 'rate_period must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'rate_limit jobs may start per rate_period: 100 per ''1 minute'', for example.';
	END IF;
	IF p_default_max_attempts NOT BETWEEN 0 AND 1000 THEN
		RAISE EXCEPTION 'default_max_attempts must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass 0 to use jq.default_max_attempts again.';
	END IF;
	IF p_default_timeout < interval '0' THEN
		RAISE EXCEPTION 'default_timeout must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass ''0'' to use jq.default_timeout again.';
	END IF;

	INSERT INTO jq.queue AS q (name, external_only, paused)
	VALUES (p_queue, coalesce(p_external_only, false), coalesce(p_paused, false))
	ON CONFLICT (name) DO UPDATE
	SET external_only = coalesce(p_external_only, q.external_only),
		paused = coalesce(p_paused, q.paused);
	UPDATE jq.queue q
	SET concurrency = CASE WHEN p_concurrency IS NULL THEN q.concurrency
						   ELSE nullif(p_concurrency, 0) END,
		max_ready = CASE WHEN p_max_ready IS NULL THEN q.max_ready ELSE nullif(p_max_ready, 0) END,
		rate_limit = CASE WHEN p_rate_limit IS NULL THEN q.rate_limit
						  ELSE nullif(p_rate_limit, 0) END,
		rate_period = coalesce(p_rate_period, q.rate_period),
		default_priority = coalesce(p_default_priority, q.default_priority),
		default_max_attempts = CASE WHEN p_default_max_attempts IS NULL THEN q.default_max_attempts
									ELSE nullif(p_default_max_attempts, 0) END,
		default_timeout = CASE WHEN p_default_timeout IS NULL THEN q.default_timeout
							   ELSE nullif(p_default_timeout, interval '0') END
	WHERE q.name = p_queue;
	-- a new rate limit starts with a full bucket
	IF p_rate_limit IS NOT NULL OR p_rate_period IS NOT NULL THEN
		UPDATE jq.queue q SET rate_tokens = q.rate_limit, rate_refilled_at = clock_timestamp()
		WHERE q.name = p_queue;
	END IF;
	-- the queue's jobs follow its limited flag; those enqueued meanwhile are set by the next claim
	UPDATE jq.job j SET limited = q.limited
	FROM jq.queue q
	WHERE q.name = p_queue AND j.queue = q.name AND j.state = 'ready' AND j.limited = (NOT q.limited);
	-- jobs of a queue given back to the executors may be due now
	PERFORM jq._wake_at_commit(now());
END
$$;

CREATE OR REPLACE FUNCTION jq_pause(queue text)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_pause IS 'stop claiming the jobs of a queue (members of jq_admin)';

CREATE OR REPLACE FUNCTION jq._jq_pause(p_caller oid, p_is_admin boolean, p_queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jq._jq_configure_queue(p_caller, p_is_admin, p_queue, NULL, p_paused => true)
$$;

CREATE OR REPLACE FUNCTION jq_resume(queue text)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_resume IS 'claim the jobs of a paused queue again (members of jq_admin)';

CREATE OR REPLACE FUNCTION jq._jq_resume(p_caller oid, p_is_admin boolean, p_queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jq._jq_configure_queue(p_caller, p_is_admin, p_queue, NULL, p_paused => false)
$$;
