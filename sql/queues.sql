-- Queues and flow control: pause and resume, concurrency and rate limits,
-- max_ready, per-queue defaults, claim order.  Uses wait_for_jobs from api.

-- the most of the given jobs that ran at the same time
CREATE FUNCTION runs_overlap(ids bigint[]) RETURNS integer
LANGUAGE sql AS $$
	SELECT max(n)::integer FROM (
		SELECT (SELECT count(*) FROM jq_jobs b
				WHERE b.id = ANY (ids)
				  AND b.started_at <= a.started_at AND b.finished_at > a.started_at) AS n
		FROM jq_jobs a WHERE a.id = ANY (ids)) s
$$;

CREATE TABLE queue_ran (job text, at timestamptz DEFAULT clock_timestamp());

-- every setting, shown by jq_queues
SELECT jq_configure_queue('flow', concurrency => 2, max_ready => 10, rate_limit => 100,
						  rate_period => '1 minute', default_priority => 5,
						  default_max_attempts => 2, default_timeout => '1 minute');
SELECT * FROM jq_queues WHERE queue = 'flow';
-- NULL leaves a setting as it is; 0 removes a limit or a default
SELECT jq_configure_queue('flow', concurrency => 0, rate_limit => 0, default_timeout => '0');
SELECT * FROM jq_queues WHERE queue = 'flow';
SELECT jq_configure_queue('flow', max_ready => 0, default_max_attempts => 0,
						  default_priority => 0);
SELECT * FROM jq_queues WHERE queue = 'flow';

-- bad settings: a clear error, and nothing changed
SELECT jq_configure_queue('flow', concurrency => -1);
SELECT jq_configure_queue('flow', max_ready => -1);
SELECT jq_configure_queue('flow', rate_limit => -5);
SELECT jq_configure_queue('flow', rate_limit => 10, rate_period => '0');
SELECT jq_configure_queue('flow', default_max_attempts => 1001);
SELECT jq_configure_queue('flow', default_timeout => '-1 second');
SELECT jq_pause('bad queue');
SELECT jq_resume(NULL);
CREATE ROLE jq_flow_user;
SET ROLE jq_flow_user;
SELECT jq_pause('flow');
SELECT jq_resume('flow');
SELECT jq_configure_queue('flow', concurrency => 1);
RESET ROLE;
DROP ROLE jq_flow_user;
SELECT * FROM jq_queues WHERE queue = 'flow';

-- the queue's defaults apply when the caller passes NULL; explicit values win
SELECT jq_configure_queue('defaults', default_priority => 7, default_max_attempts => 2,
						  default_timeout => '2 minutes', paused => true);
SELECT jq_enqueue('SELECT 1', queue => 'defaults') AS d1,
	   jq_enqueue('SELECT 1', queue => 'defaults', priority => -1, max_attempts => 9,
				  timeout => '3 seconds') AS d2,
	   jq_enqueue_shell('true', queue => 'defaults') AS d3,
	   (jq_enqueue_bulk(ARRAY['SELECT 1'], queue => 'defaults'))[1] AS d4,
	   jq_enqueue('SELECT 1', queue => 'no-settings', run_at => now() + interval '1 day') AS d5
\gset
SELECT priority, max_attempts, timeout FROM jq_jobs
WHERE id IN (:d1, :d2, :d3, :d4, :d5) ORDER BY id;
SELECT jq_cancel(id) FROM jq_jobs WHERE id IN (:d1, :d2, :d3, :d4, :d5) ORDER BY id;

-- max_ready: an enqueue beyond it fails and changes nothing
SELECT jq_configure_queue('small', max_ready => 2, paused => true);
SELECT jq_enqueue('SELECT 1', queue => 'small') IS NOT NULL AS first,
	   jq_enqueue('SELECT 1', queue => 'small') IS NOT NULL AS second;
SELECT count(*) AS jobs_before FROM jq_jobs \gset
SELECT jq_enqueue('SELECT 1', queue => 'small');
SELECT jq_enqueue_shell('true', queue => 'small');
SELECT jq_configure_queue('small', max_ready => 3);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', 'SELECT 2'], queue => 'small');
SELECT count(*) = :jobs_before AS nothing_changed FROM jq_jobs;
SELECT ready, scheduled, running FROM jq_queues WHERE queue = 'small';
SELECT jq_cancel(id) FROM jq_jobs WHERE queue = 'small' AND state = 'ready';

-- a paused queue keeps its jobs until it is resumed; other queues run meanwhile
SELECT jq_pause('held');
SELECT jq_enqueue_bulk(ARRAY[$$INSERT INTO queue_ran VALUES ('held 1')$$,
							 $$INSERT INTO queue_ran VALUES ('held 2')$$,
							 $$INSERT INTO queue_ran VALUES ('held 3')$$], queue => 'held') AS held \gset
SELECT jq_enqueue($$INSERT INTO queue_ran VALUES ('free')$$, queue => 'free') AS free \gset
SELECT wait_for_jobs(ARRAY[:free]::bigint[]);
SELECT pg_sleep(0.5);
SELECT job FROM queue_ran ORDER BY job;
SELECT queue, paused, ready, running FROM jq_queues WHERE queue = 'held';
SELECT jq_resume('held');
SELECT wait_for_jobs(:'held'::bigint[]);
SELECT job FROM queue_ran ORDER BY job;
SELECT queue, paused, ready, running FROM jq_queues WHERE queue = 'held';

-- claim order: lower priority first, then run_at, then id (one at a time here)
SELECT jq_configure_queue('order', concurrency => 1, paused => true);
-- (every job already due: a claim in a transaction that began before the
-- enqueue would see a job due at its now() as not due yet)
SELECT ARRAY[jq_enqueue($$INSERT INTO queue_ran VALUES ('order p2')$$, queue => 'order', priority => 2,
						run_at => now() - interval '1 second'),
			 jq_enqueue($$INSERT INTO queue_ran VALUES ('order p1 later')$$, queue => 'order', priority => 1,
						run_at => now() - interval '1 second'),
			 jq_enqueue($$INSERT INTO queue_ran VALUES ('order p1 earlier')$$, queue => 'order',
						priority => 1, run_at => now() - interval '2 seconds'),
			 jq_enqueue($$INSERT INTO queue_ran VALUES ('order p1 earlier, next id')$$, queue => 'order',
						priority => 1, run_at => now() - interval '2 seconds'),
			 jq_enqueue($$INSERT INTO queue_ran VALUES ('order p0')$$, queue => 'order', priority => 0,
						run_at => now() - interval '1 second')]
	AS ordered \gset
SELECT jq_resume('order');
SELECT wait_for_jobs(:'ordered'::bigint[]);
SELECT job FROM queue_ran WHERE job LIKE 'order%' ORDER BY at;

-- concurrency 1: six jobs of 0.3 s never overlap
SELECT jq_configure_queue('one', concurrency => 1);
SELECT jq_enqueue_bulk(array_fill('SELECT pg_sleep(0.3)'::text, ARRAY[6]), queue => 'one') AS one \gset
SELECT wait_for_jobs(:'one'::bigint[]);
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded, runs_overlap(:'one'::bigint[]) AS most_at_once
FROM jq_jobs WHERE id = ANY (:'one'::bigint[]);

-- concurrency 2: never more than two at once
SELECT jq_configure_queue('two', concurrency => 2);
SELECT jq_enqueue_bulk(array_fill('SELECT pg_sleep(0.2)'::text, ARRAY[6]), queue => 'two') AS two \gset
SELECT wait_for_jobs(:'two'::bigint[]);
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded, runs_overlap(:'two'::bigint[]) <= 2 AS at_most_two
FROM jq_jobs WHERE id = ANY (:'two'::bigint[]);

-- rate limit, 3 per second: three start at once, then one every third of a second
SELECT jq_configure_queue('rated', rate_limit => 3, rate_period => '1 second');
SELECT jq_enqueue_bulk(array_fill('SELECT 1'::text, ARRAY[9]), queue => 'rated') AS rated \gset
SELECT wait_for_jobs(:'rated'::bigint[]);
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
	   max(started_at) - min(started_at) >= interval '1.9 seconds' AS spread_over_two_seconds,
	   max(started_at) - min(started_at) < interval '3 seconds' AS not_slower
FROM jq_jobs WHERE id = ANY (:'rated'::bigint[]);
-- no second holds more than the bucket (3) plus what refills in it (3)
SELECT max((SELECT count(*) FROM jq_jobs b
			WHERE b.id = ANY (:'rated'::bigint[])
			  AND b.started_at >= a.started_at
			  AND b.started_at < a.started_at + interval '1 second')) <= 6 AS within_rate
FROM jq_jobs a WHERE a.id = ANY (:'rated'::bigint[]);

-- external workers obey the same limits
SELECT jq_configure_queue('outside-one', external_only => true, concurrency => 1);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', 'SELECT 2', 'SELECT 3'], queue => 'outside-one') AS ext \gset
SELECT command, attempt FROM jq_dequeue('outside-one', max_jobs => 3);
SELECT count(*) AS while_one_runs FROM jq_dequeue('outside-one', max_jobs => 3);
SELECT jq_complete(id) FROM jq_jobs WHERE queue = 'outside-one' AND state = 'running';
SELECT command FROM jq_dequeue('outside-one', max_jobs => 3);
SELECT queue, external_only, concurrency, ready, running FROM jq_queues WHERE queue = 'outside-one';
-- the limit counts claims other transactions committed: a transaction snapshot cannot
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT jq_dequeue('outside-one');
ROLLBACK;
SELECT jq_cancel(id) FROM jq_jobs WHERE queue = 'outside-one' AND state IN ('ready', 'running') ORDER BY id;

-- a queue whose limit is removed runs the jobs it kept
SELECT jq_configure_queue('later', paused => true, concurrency => 1);
SELECT jq_enqueue_bulk(ARRAY['SELECT 1', 'SELECT 2'], queue => 'later') AS later \gset
SELECT jq_configure_queue('later', paused => false, concurrency => 0);
SELECT wait_for_jobs(:'later'::bigint[]);
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded FROM jq_jobs
WHERE id = ANY (:'later'::bigint[]);

-- leave no settings behind for the tests that follow
DELETE FROM jq.queue;
