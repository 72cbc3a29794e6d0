/* ---------------------------------------------------------------------
 * Internal SQL: queues and flow control.
 *
 * A limited queue (paused, or with a concurrency or rate limit) is claimed
 * from one transaction at a time, under the lock of its row in jq.queue:
 * the claimer locks the row, then counts the queue's running jobs in a new
 * snapshot, which sees every claim committed before the lock was free.
 * Claimers skip a queue whose row another transaction holds, so that none
 * ever waits for another.
 * --------------------------------------------------------------------- */

-- raise jq_enqueue's error for a queue name it would refuse
CREATE OR REPLACE FUNCTION jq._check_queue_name(queue text)
RETURNS void
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_check_queue_name';

-- every backend drops its copy of the queue settings (queue_settings.c) once they change
CREATE OR REPLACE FUNCTION jq._queue_changed()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'jq_queue_changed';

-- when the next token of a queue's rate limit comes, if it has none left now
CREATE OR REPLACE FUNCTION jq._rate_token_at(q jq.queue)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN q.rate_tokens < 1
				THEN q.rate_refilled_at + (1 - q.rate_tokens) * q.rate_period / q.rate_limit END
$$;

-- the earliest instant a rate-limited queue with due jobs gets a token back
CREATE OR REPLACE FUNCTION jq._next_rate_token()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT min(jq._rate_token_at(q))
	FROM jq.queue q
	WHERE q.rate_limit IS NOT NULL AND NOT q.paused
	  AND jq._rate_token_at(q) > clock_timestamp()
	  AND EXISTS (SELECT FROM jq.job j
				  WHERE j.queue = q.name AND j.state = 'ready' AND j.run_at <= clock_timestamp())
$$;

/*
 * Raise configuration_limit_exceeded when p_adding more jobs would put more
 * than p_max_ready jobs of p_queue in wait (ready, scheduled or retrying).
 * Approximate: enqueuers that run at the same time do not see each other's
 * uncommitted jobs.
 */
CREATE OR REPLACE FUNCTION jq._check_max_ready(p_queue text, p_max_ready integer, p_adding integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	waiting integer;
BEGIN
	SELECT count(*) INTO waiting
	FROM (SELECT FROM jq.job j WHERE j.queue = p_queue AND j.state = 'ready'
		  LIMIT p_max_ready) w;
	IF waiting + p_adding > p_max_ready THEN
		RAISE EXCEPTION 'queue "%" is full', p_queue
			USING ERRCODE = 'configuration_limit_exceeded',
				  DETAIL = format('It has %s jobs waiting to run, its max_ready is %s, and %s more were enqueued.',
								  waiting, p_max_ready, p_adding),
				  HINT = 'Enqueue again once its jobs have run, or raise the limit with jq_configure_queue(queue, max_ready => ...).';
	END IF;
	RETURN true;
END
$$;
