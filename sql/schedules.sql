-- Recurring jobs: jq_schedule, jq_unschedule, jq_schedules, and the runs the
-- scheduler enqueues.  No timestamp is printed: fire times depend on the clock.
CREATE ROLE jq_sched_alice;
CREATE ROLE jq_sched_bob;
CREATE ROLE jq_sched_boss IN ROLE jq_admin;
CREATE TABLE ticks (n serial, job_schedule text, at timestamptz DEFAULT clock_timestamp());
GRANT ALL ON ticks, ticks_n_seq TO PUBLIC;

-- wait until a query returns true (for up to 30 seconds)
CREATE FUNCTION wait_until(cond text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	ok boolean;
BEGIN
	FOR i IN 1..600 LOOP
		EXECUTE 'SELECT ' || cond INTO ok;
		IF ok THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RAISE EXCEPTION 'not true after 30 seconds: %', cond;
END
$$;

-- the first fire time is returned; the schedule is listed with its job
SELECT jq_schedule('nightly', '30 2 * * *', 'VACUUM ticks', time_zone => 'Europe/Paris')
	   = jq._schedule_next('30 2 * * *', now(), 'Europe/Paris') AS first_run;
SELECT name, schedule, time_zone, kind, command, argv, queue, priority, overlap, owner,
	   next_run > now() AS future, last_run, last_job, skipped_runs, last_error,
	   created_at <= now() AS created
FROM jq_schedules;

-- replacing keeps one schedule of that name, with the new settings
SELECT jq_schedule('nightly', '@hourly', 'SELECT 1', queue => 'maintenance', priority => 5,
				   max_attempts => 2, timeout => '1 minute', payload => '{"n": 1}',
				   overlap => 'queue') > now() AS first_run;
SELECT name, schedule, time_zone, command, queue, priority, overlap, count(*) OVER () AS schedules
FROM jq_schedules;
SELECT max_attempts, timeout, payload FROM jq.schedule WHERE name = 'nightly';

-- bad arguments: the error, and nothing changed
SELECT jq_schedule('bad', '61 * * * *', 'SELECT 1');
SELECT jq_schedule('bad', '* * * * MON-XYZ', 'SELECT 1');
SELECT jq_schedule('bad', 'every 0 seconds', 'SELECT 1');
SELECT jq_schedule('bad', '@often', 'SELECT 1');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', time_zone => 'Mars/Olympus_Mons');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', overlap => 'wait');
SELECT jq_schedule(NULL, '@daily', 'SELECT 1');
SELECT jq_schedule('  ', '@daily', 'SELECT 1');
SELECT jq_schedule('bad', NULL, 'SELECT 1');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', time_zone => NULL);
SELECT jq_schedule('bad', '@daily');
SELECT jq_schedule('bad', '@daily', '  ');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', queue => 'no spaces');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', max_attempts => 0);
SELECT jq_schedule('bad', '@daily', 'SELECT 1', timeout => '-1 second');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', kind => 'perl');
SELECT jq_schedule('bad', '@daily', 'SELECT 1', argv => ARRAY['ls']);
SELECT jq_schedule('bad', '@daily', kind => 'shell');
SELECT jq_schedule('bad', '@daily', kind => 'shell', argv => ARRAY['ls'], working_dir => 'tmp');
SELECT count(*) AS schedules FROM jq_schedules;

-- shell schedules need the right to run server programs
SET ROLE jq_sched_alice;
SELECT jq_schedule('alice shell', '@daily', 'echo hi', kind => 'shell');
SELECT jq_schedule('alice shell', '@daily', argv => ARRAY['echo', 'hi'], kind => 'shell');
RESET ROLE;
SELECT jq_schedule('root shell', '@daily', argv => ARRAY['echo', 'hi'], kind => 'shell',
				   env => '{"A": "1"}', working_dir => '/') > now() AS allowed;
SELECT name, kind, command, argv FROM jq_schedules WHERE name = 'root shell';
SELECT jq_unschedule('root shell');

-- a role sees and manages only its own schedules; names are shared by all
SET ROLE jq_sched_alice;
SELECT jq_schedule('alice', 'every 1 day', 'SELECT 1') > now() AS created;
SELECT name, owner FROM jq_schedules ORDER BY name;
SELECT jq_schedule('nightly', '@daily', 'SELECT 1');
SELECT jq_unschedule('nightly');
SET ROLE jq_sched_bob;
SELECT count(*) AS visible FROM jq_schedules;
SELECT jq_schedule('alice', '@daily', 'SELECT 2');
SELECT jq_unschedule('alice');
SELECT jq_unschedule('no such schedule');
SELECT command FROM jq.schedule;
SET ROLE jq_sched_boss;
SELECT name, owner FROM jq_schedules ORDER BY name;
-- even a member of jq_admin cannot replace another role's schedule: its jobs run as that role
SELECT jq_schedule('alice', '@daily', 'SELECT 2');
SELECT jq_unschedule('alice');
RESET ROLE;
SELECT name, owner FROM jq_schedules ORDER BY name;

-- in a rolled-back transaction, nothing happens
BEGIN;
SELECT jq_schedule('rolled back', 'every 1 second', 'SELECT 1') > now() AS created;
SELECT jq_unschedule('nightly');
ROLLBACK;
SELECT name FROM jq_schedules ORDER BY name;
SELECT jq_unschedule('nightly');
SELECT jq_unschedule('nightly');

-- a real schedule: every second a job runs, as the schedule's owner, linked to it
SET ROLE jq_sched_alice;
SELECT jq_schedule('tick', 'every 1 second',
				   $$INSERT INTO ticks (job_schedule) VALUES ('tick')$$) > now() AS created;
RESET ROLE;
SELECT wait_until($$(SELECT count(*) >= 3 FROM jq_jobs
					 WHERE schedule_name = 'tick' AND state = 'succeeded')$$);
SELECT count(DISTINCT owner) AS owners, min(owner::text) AS owner, min(command) AS command,
	   count(DISTINCT run_at) = count(*) AS one_job_per_fire_time,
	   bool_and(started_at >= run_at) AS none_early
FROM jq_jobs WHERE schedule_name = 'tick';
-- fire times one second apart, and the schedule points at its last job
SELECT bool_and(gap = interval '1 second') AS one_second_apart
FROM (SELECT run_at - lag(run_at) OVER (ORDER BY run_at) AS gap
	  FROM jq_jobs WHERE schedule_name = 'tick') g
WHERE gap IS NOT NULL;
SELECT s.last_job = (SELECT max(id) FROM jq_jobs WHERE schedule_name = 'tick') AS last_job,
	   s.last_run = (SELECT max(run_at) FROM jq_jobs WHERE schedule_name = 'tick') AS last_run,
	   s.next_run = s.last_run + interval '1 second' AS anchored,
	   s.skipped_runs, s.last_error
FROM jq_schedules s WHERE s.name = 'tick';

-- jq_unschedule stops it; the jobs it enqueued stay
SET ROLE jq_sched_alice;
SELECT jq_unschedule('tick');
RESET ROLE;
SELECT wait_until($$NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'tick'
								AND state NOT IN ('succeeded', 'failed', 'cancelled'))$$);
SELECT count(*) AS tick_jobs FROM jq_jobs WHERE schedule_name = 'tick' \gset
SELECT pg_sleep(2.5);
SELECT count(*) = :tick_jobs AS stopped, count(*) >= 3 AS kept
FROM jq_jobs WHERE schedule_name = 'tick';
SELECT count(*) = :tick_jobs AS ticks_match FROM ticks WHERE job_schedule = 'tick';

-- overlap 'skip': while a run has not finished, fire times enqueue nothing
SELECT jq_schedule('slow', 'every 1 second', 'SELECT pg_sleep(3)') > now() AS created;
SELECT wait_until($$(SELECT skipped_runs >= 2 FROM jq_schedules WHERE name = 'slow')$$);
SELECT jq_unschedule('slow');
SELECT wait_until($$NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'slow'
								AND state NOT IN ('succeeded', 'failed', 'cancelled'))$$);
-- no two runs overlapped
SELECT count(*) >= 1 AS ran, bool_and(state = 'succeeded') AS succeeded,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM jq_jobs o
		   WHERE o.schedule_name = 'slow' AND o.id <> j.id
			 AND o.started_at < j.finished_at AND j.started_at < o.finished_at)) AS overlapping
FROM jq_jobs j WHERE schedule_name = 'slow';

-- overlap 'queue': runs are enqueued even while the last one has not finished
SELECT jq_schedule('queued', 'every 1 second', 'SELECT pg_sleep(3)', overlap => 'queue',
				   queue => 'sched_queued') > now() AS created;
SELECT wait_until($$(SELECT count(*) >= 2 FROM jq_jobs
					 WHERE schedule_name = 'queued' AND finished_at IS NULL)$$);
SELECT skipped_runs FROM jq_schedules WHERE name = 'queued';
SELECT jq_unschedule('queued');
SELECT count(*) > 0 AS cancelled
FROM (SELECT jq_cancel(id) FROM jq_jobs WHERE schedule_name = 'queued' AND finished_at IS NULL) c;
SELECT wait_until($$NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'queued'
								AND state NOT IN ('succeeded', 'failed', 'cancelled'))$$);

-- a fire time whose job cannot be enqueued is passed over, and says why:
-- here the owner of a shell schedule lost the right to run server programs
CREATE ROLE jq_sched_sh IN ROLE pg_execute_server_program;
SET ROLE jq_sched_sh;
SELECT jq_schedule('lost right', 'every 1 second', 'true', kind => 'shell') > now() AS created;
RESET ROLE;
REVOKE pg_execute_server_program FROM jq_sched_sh;
SELECT wait_until($$(SELECT last_error IS NOT NULL FROM jq_schedules WHERE name = 'lost right')$$);
SELECT last_error, next_run IS NOT NULL AS moves_on
FROM jq_schedules WHERE name = 'lost right';
SELECT jq_unschedule('lost right');
SELECT wait_until($$NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'lost right'
								AND state NOT IN ('succeeded', 'failed', 'cancelled'))$$);

-- a group of jobs as the recurring work: each run is a new group, its jobs in
-- dependency order; with overlap skip a run waits for the whole last group
SELECT jq_schedule('pipeline', 'every 1 second', jobs => $$[
	{"name": "load",    "command": "INSERT INTO ticks (job_schedule) VALUES ('load'); SELECT pg_sleep(0.2)"},
	{"name": "report",  "command": "INSERT INTO ticks (job_schedule) VALUES ('report')", "depends_on": ["load"]},
	{"name": "publish", "command": "INSERT INTO ticks (job_schedule) VALUES ('publish')", "depends_on": ["report"]}
]$$) > now() AS created;
SELECT wait_until($$(SELECT count(*) >= 2 FROM jq_groups WHERE name = 'pipeline'
					 AND state = 'succeeded')$$);
SELECT jq_unschedule('pipeline');
SELECT wait_until($$NOT EXISTS (SELECT FROM jq_jobs WHERE schedule_name = 'pipeline'
								AND state NOT IN ('succeeded', 'failed', 'cancelled'))$$);
-- every job of every run belongs to a group of the schedule, three per group
SELECT count(DISTINCT group_id) >= 2 AS runs, count(*) = 3 * count(DISTINCT group_id) AS three_each,
	   bool_and(group_id IS NOT NULL) AS grouped
FROM jq_jobs WHERE schedule_name = 'pipeline';
-- in each run, report started after load finished, publish after report
SELECT bool_and(r.started_at >= l.finished_at AND p.started_at >= r.finished_at) AS in_order
FROM jq_jobs l
JOIN jq_jobs r ON r.group_id = l.group_id AND r.command LIKE '%''report''%'
JOIN jq_jobs p ON p.group_id = l.group_id AND p.command LIKE '%''publish''%'
WHERE l.schedule_name = 'pipeline' AND l.command LIKE '%''load''%';
-- runs never overlapped: each group started after the one before finished
SELECT bool_and(g.first_start >= g.prev_end) AS no_overlap
FROM (SELECT min(started_at) AS first_start,
			 lag(max(finished_at)) OVER (ORDER BY group_id) AS prev_end
	  FROM jq_jobs WHERE schedule_name = 'pipeline' GROUP BY group_id) g
WHERE g.prev_end IS NOT NULL;
-- a bad group is refused when the schedule is made, and nothing is left of it
SELECT jq_schedule('bad group', '@daily', jobs => '[{"name": "a", "command": "SELECT 1", "depends_on": ["b"]},
													{"name": "b", "command": "SELECT 1", "depends_on": ["a"]}]');
SELECT jq_schedule('bad group', '@daily', 'SELECT 1', jobs => '[{"name": "a", "command": "SELECT 1"}]');
SELECT count(*) AS bad_groups FROM jq_schedules WHERE name = 'bad group';

-- the tables stay out of reach
SET ROLE jq_sched_alice;
SELECT count(*) FROM jq.schedule;
RESET ROLE;

SELECT count(*) AS schedules_left FROM jq_schedules;
DROP TABLE ticks;
DROP FUNCTION wait_until(text);
DROP ROLE jq_sched_alice, jq_sched_bob, jq_sched_boss, jq_sched_sh;
