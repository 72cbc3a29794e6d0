-- External workers: jq_dequeue, jq_complete, jq_fail, jq_heartbeat, jq_cancel, leases.
-- In-server execution is switched off so that only this session takes jobs.
ALTER SYSTEM SET jq.execute_in_server = off;
SELECT pg_reload_conf();
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
							  WHERE backend_type = 'job_queue executor'
								AND datname = current_database());
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT count(*) AS executors FROM pg_stat_activity
WHERE backend_type = 'job_queue executor' AND datname = current_database();

SELECT jq_enqueue('job one', queue => 'ext', priority => 2) AS j1,
	   jq_enqueue('job two', queue => 'ext', priority => 1) AS j2,
	   jq_enqueue('job three', queue => 'ext', priority => 1,
				  payload => '{"k": "v"}') AS j3,
	   jq_enqueue('job of another queue', queue => 'other') AS j4 \gset

-- lower priority number first, then run_at, then id; only the queue asked for
SELECT id = :j2 AS is_j2, command, payload, attempt, max_attempts,
	   lease_expires_at > now() + interval '50 seconds' AS leased
FROM jq_dequeue('ext', 2, '1 minute', 'worker-1');
SELECT id = :j2 AS is_j2, state, attempts, lease_owner FROM jq_jobs
WHERE id IN (:j2, :j3) ORDER BY id;

-- complete: once
SELECT jq_complete(:j2, '{"done": true}');
SELECT jq_complete(:j2);
SELECT state, result, finished_at IS NOT NULL AS finished FROM jq_jobs WHERE id = :j2;

-- heartbeat extends the lease of a held job, and only of a held job
SELECT jq_heartbeat(:j3, '10 minutes') > now() + interval '9 minutes' AS extended;
SELECT jq_heartbeat(:j2);

-- fail: retried with backoff while attempts remain
SELECT jq_fail(:j3, 'remote error');
SELECT state IN ('retrying', 'ready') AS will_retry, attempts, last_error, lease_owner
FROM jq_jobs WHERE id = :j3;
SELECT jq_fail(:j3, 'not held any more');
-- out of the way of the next claim, whenever its retry comes due
SELECT jq_cancel(:j3);

-- fail without retry ends the job at once
SELECT id = :j1 AS is_j1 FROM jq_dequeue('ext', 1);
SELECT jq_fail(:j1, 'fatal', retry => false);
SELECT state, attempts, max_attempts, last_error FROM jq_jobs WHERE id = :j1;

-- cancelling a job an external worker holds: the worker's outcome is refused
SELECT id = :j4 AS is_j4 FROM jq_dequeue(NULL, 10, queues => ARRAY['other']);
SELECT jq_cancel(:j4);
SELECT jq_complete(:j4, '{"late": true}');
SELECT state, result FROM jq_jobs WHERE id = :j4;

-- an expired lease gives the job back for another attempt
SELECT jq_enqueue('short lease', queue => 'lease', max_attempts => 2) AS j5 \gset
SELECT id = :j5 AS is_j5 FROM jq_dequeue('lease', 1, '100 ms');
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN EXISTS (SELECT FROM jq_jobs WHERE queue = 'lease' AND state <> 'running');
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SELECT state IN ('retrying', 'ready') AS given_back, attempts, last_error, last_error_timeout
FROM jq_jobs WHERE id = :j5;
SELECT jq_complete(:j5);
-- a worker whose lease expired cannot finish the next worker's attempt
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN EXISTS (SELECT FROM jq_dequeue('lease', 1, '1 minute'));
		PERFORM pg_sleep(0.05);
		COMMIT;	-- jq_dequeue takes jobs due by the start of its transaction
	END LOOP;
END
$$;
SELECT jq_heartbeat(:j5, '1 minute', attempt => 1) AS stale_heartbeat,
	   jq_complete(:j5, attempt => 1) AS stale_complete,
	   jq_fail(:j5, 'stale', attempt => 1) AS stale_fail;
SELECT state, attempts FROM jq_jobs WHERE id = :j5;
SELECT jq_fail(:j5, 'second worker gave up', attempt => 2);
-- no attempts left: failed, with both attempts' errors
SELECT state, attempts, jsonb_array_length(errors) AS errors FROM jq_jobs WHERE id = :j5;

-- a role dequeues only its own jobs; jq_admin members dequeue everyone's
CREATE ROLE jq_carol;
CREATE ROLE jq_dave;
SET ROLE jq_carol;
SELECT jq_enqueue('carol''s job', queue => 'roles') AS j6 \gset
SET ROLE jq_dave;
SELECT count(*) AS dave_gets FROM jq_dequeue('roles', 10);
SET ROLE jq_carol;
SELECT id = :j6 AS carol_gets_hers FROM jq_dequeue('roles', 10);
RESET ROLE;
SELECT jq_complete(:j6);
DROP ROLE jq_carol;
DROP ROLE jq_dave;

-- bad arguments
SELECT * FROM jq_dequeue('ext', 0);
SELECT * FROM jq_dequeue('ext', 1, '0 seconds');
SELECT * FROM jq_dequeue('ext', 1, NULL);
SELECT jq_heartbeat(:j3, '-1 minute');
SELECT jq_complete(0);
SELECT jq_fail(NULL, 'x');

-- from every queue, kinds mixed: claim order across kinds, each kind read
-- in claim order from its index
SELECT jq_enqueue('mixed sql low', queue => 'mixed', priority => 5) AS m1,
	   jq_enqueue_shell(argv => ARRAY['true'], queue => 'mixed', priority => 1) AS m2,
	   jq_enqueue('mixed sql high', queue => 'mixed', priority => 0) AS m3,
	   jq_enqueue('mixed task', queue => 'mixed', priority => 2, kind => 'task') AS m4 \gset
SELECT d.kind, j.priority FROM jq_dequeue(queue => NULL, max_jobs => 2, queues => ARRAY['mixed']) d
JOIN jq_jobs j USING (id) ORDER BY j.priority;
SELECT kind FROM jq_dequeue(queue => NULL, max_jobs => 5, queues => ARRAY['mixed'],
							kinds => ARRAY['sql', 'task']);
SELECT * FROM jq_dequeue(kinds => ARRAY['sql', NULL]);
SELECT cardinality(jq_complete_many(ARRAY[:m1, :m2, :m3, :m4]::bigint[])) AS completed;

-- nothing ready: an empty set
SELECT count(*) FROM jq_dequeue('nothing here', 5);

ALTER SYSTEM RESET jq.execute_in_server;
SELECT pg_reload_conf();
