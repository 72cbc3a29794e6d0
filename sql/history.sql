-- Finished jobs stay in jq_jobs for jq.history_retention, then are pruned.
SELECT jq_enqueue('SELECT 1') AS kept,
	   jq_enqueue('SELECT 1', run_at => now() + interval '1 day') AS later \gset
SELECT wait_for_jobs(ARRAY[:kept]);
SELECT count(*) > 0 AS history_kept FROM jq_jobs WHERE state = 'succeeded';

ALTER SYSTEM SET jq.history_retention = '1s';
SELECT pg_reload_conf();
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM jq_jobs WHERE finished_at IS NOT NULL);
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT count(*) AS finished_left FROM jq_jobs WHERE finished_at IS NOT NULL;
-- jobs that have not finished are never pruned
SELECT count(*) AS scheduled_left FROM jq_jobs WHERE state = 'scheduled';

SELECT jq_cancel(:later);

ALTER SYSTEM RESET jq.history_retention;
SELECT pg_reload_conf();
