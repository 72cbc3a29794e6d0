-- jq_stats on known workloads, jq_progress and jq_wait errors, jq_metrics
CREATE FUNCTION wait_all(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	id bigint;
BEGIN
	FOREACH id IN ARRAY ids LOOP
		IF jq_wait(id, '60s') IS NULL THEN
			RAISE EXCEPTION 'job % did not finish in 60 seconds', id;
		END IF;
	END LOOP;
END
$$;

-- an error's message with the job ids (which depend on the tests before) left out
CREATE FUNCTION error_of(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN regexp_replace(SQLERRM, 'job [0-9]+', 'job N');
END
$$;

-- five jobs that succeed, one that fails three times, one that times out twice
SELECT array_agg(jq_enqueue('SELECT 1', queue => 'mon_ok')) AS ok FROM generate_series(1, 5) \gset
SELECT jq_enqueue('SELECT 1/0', queue => 'mon_fail', max_attempts => 3) AS fail,
	   jq_enqueue('SELECT pg_sleep(10)', queue => 'mon_timeout', max_attempts => 2,
				  timeout => '100ms') AS timeout \gset
SELECT wait_all(:'ok'::bigint[] || ARRAY[:fail, :timeout]);

-- jobs that wait: two delayed an hour, one that depends on them, one ready in
-- a queue no executor takes
SELECT jq_enqueue('SELECT 1', queue => 'mon_later', run_at => now() + interval '1 hour') AS later1,
	   jq_enqueue('SELECT 1', queue => 'mon_later', run_at => now() + interval '1 hour') AS later2 \gset
SELECT jq_enqueue('SELECT 1', queue => 'mon_later', depends_on => ARRAY[:later1, :later2]) AS dependant \gset
SELECT jq_configure_queue('mon_ext', external_only => true);
SELECT jq_enqueue('SELECT 1', queue => 'mon_ext') AS ext \gset

SELECT queue, waiting, scheduled, ready, running, retrying,
	   succeeded_1m, failed_1m, retried_1m, timed_out_1m,
	   (succeeded_5m, failed_5m, retried_5m, timed_out_5m)
		 = (succeeded_1m, failed_1m, retried_1m, timed_out_1m) AS same_5m,
	   (succeeded_1h, failed_1h, retried_1h, timed_out_1h)
		 = (succeeded_1m, failed_1m, retried_1m, timed_out_1m) AS same_1h
FROM jq_stats WHERE queue LIKE 'mon\_%' ORDER BY queue;

-- latencies: attempts that ran have both, in order
SELECT queue, pickup_p50_1m <= pickup_p95_1m AS pickup_ordered, run_p50_1m <= run_p95_1m AS run_ordered
FROM jq_stats WHERE queue IN ('mon_ok', 'mon_timeout') ORDER BY queue;
SELECT run_p50_1h >= interval '50 ms' AS ran_to_the_timeout FROM jq_stats WHERE queue = 'mon_timeout';
SELECT pickup_p50_1m IS NULL AS no_pickup, oldest_ready_age >= interval '0' AS has_oldest
FROM jq_stats WHERE queue = 'mon_ext';

-- the row of all queues adds them up
SELECT t.waiting >= 1 AND t.scheduled >= 2 AND t.ready >= 1 AND t.succeeded_1m >= 5 AS totals
FROM jq_stats t WHERE t.queue IS NULL;

-- a retry that came due counts as ready, not retrying, until it is claimed
SELECT jq_configure_queue('mon_ext2', external_only => true);
SELECT jq_enqueue('SELECT 1', queue => 'mon_ext2') AS ext2 \gset
SELECT id FROM jq_dequeue('mon_ext2') \gset
SELECT jq_fail(:ext2, 'try again');
SELECT pg_sleep(0.5);
SELECT queue, scheduled, ready, running, retrying, retried_1m FROM jq_stats WHERE queue = 'mon_ext2';

-- another role sees none of these queues
CREATE ROLE mon_other;
SET ROLE mon_other;
SELECT count(*) AS others_queues FROM jq_stats WHERE queue LIKE 'mon\_%';
SELECT count(*) AS others_running FROM jq_running;
SELECT error_of(format('SELECT jq_wait(%s, %L)', :ext, '0s'));
RESET ROLE;
DROP ROLE mon_other;

-- waiting
SELECT jq_wait(:ext, '0.2s') IS NULL AS timed_out;
SELECT jq_wait_any(ARRAY[:ext, :later1], '0.2s') IS NULL AS timed_out;
SELECT jq_wait(NULL);
SELECT jq_wait(-1, '1s');
SELECT jq_wait_any('{}');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT jq_wait(:ext, '1s');
ROLLBACK;
SELECT jq_cancel(:ext);
SELECT id = :ext AS same, state, result, attempts FROM jq_wait(:ext, '10s');

-- progress: only from a running job, or for a job one holds
SELECT jq_progress(0.5);
SELECT jq_progress(1.5, id => :later1);
SELECT error_of(format('SELECT jq_progress(0.5, id => %s)', :later1));
SELECT jq_progress(message => repeat('x', 300), id => :later1);
SELECT jq_enqueue('SELECT 1', queue => 'mon_ext') AS held \gset
SELECT id FROM jq_dequeue('mon_ext') \gset
SELECT error_of(format('SELECT jq_progress(0.4, id => %s, attempt => 7)', :held));
SELECT jq_progress(0.4, 'working', '{"step": 2}', :held, 1);
SELECT id = :held AS same, executor_pid, attempt, progress FROM jq_running WHERE id = :held;
SELECT jq_complete(:held);
SELECT progress, progress_at IS NOT NULL AS has_time FROM jq_jobs WHERE id = :held;

-- a job that reports its own progress keeps the last report
SELECT jq_enqueue($$SELECT jq_progress(0.5, 'half'); SELECT jq_progress(1, 'done')$$,
				  queue => 'mon_ok') AS own \gset
SELECT wait_all(ARRAY[:own]);
SELECT progress FROM jq_jobs WHERE queue = 'mon_ok' AND progress IS NOT NULL;

-- metrics name the queues and count what they did
SELECT line FROM regexp_split_to_table(jq_metrics(), E'\n') AS line
WHERE line ~ 'queue="mon_(ok|fail|timeout)"' AND line ~ '^jq_(jobs_finished_total|job_retries_total|job_timeouts_total)'
ORDER BY line;
SELECT count(*) AS families FROM regexp_split_to_table(jq_metrics(), E'\n') AS line WHERE line LIKE '# TYPE %';

SELECT jq_cancel(:later1), jq_cancel(:later2);
SELECT state FROM jq_jobs WHERE id = :dependant;
SELECT queue, waiting, scheduled, ready, running, retrying FROM jq_stats WHERE queue = 'mon_later';

-- their own SQL ignores operators put in the caller's search_path
CREATE SCHEMA mon_evil;
CREATE FUNCTION mon_evil.gt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked >'; END$$;
CREATE OPERATOR mon_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mon_evil.gt);
CREATE FUNCTION mon_evil.arrow(jsonb, integer) RETURNS jsonb
LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked ->'; END$$;
CREATE OPERATOR mon_evil.-> (LEFTARG = jsonb, RIGHTARG = integer, FUNCTION = mon_evil.arrow);
SET search_path = mon_evil, pg_catalog, public;
SELECT count(*) > 0 AS stats FROM jq_stats;
SELECT count(*) >= 0 AS running FROM jq_running;
SELECT length(jq_metrics()) > 0 AS metrics;
SELECT (jq_wait(:held, '1s')).state;
RESET search_path;
DROP SCHEMA mon_evil CASCADE;

-- nothing of this test is left for the tests after it to wait for
SELECT jq_cancel(:ext2);
SELECT count(*) AS unfinished FROM jq_jobs WHERE queue LIKE 'mon\_%' AND finished_at IS NULL;
