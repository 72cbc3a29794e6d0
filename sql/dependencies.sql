-- Unique keys, dependencies between jobs, and groups of jobs.
-- job ids in the output below do not depend on the tests before this one;
-- the sequence is put back at the end for the tests after it
SELECT last_value AS seq_before FROM jq.job_id_seq \gset
SELECT setval('jq.job_id_seq', 3000, false) IS NOT NULL AS reset;

CREATE TABLE ran (job text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
CREATE ROLE jq_dep_user;
GRANT INSERT ON ran TO jq_dep_user;

-- whether each job started after all its dependencies finished
CREATE FUNCTION dependencies_respected(ids bigint[]) RETURNS boolean
LANGUAGE sql AS $$
	SELECT bool_and(j.started_at >= d.finished_at)
	FROM jq_jobs j, unnest(j.depends_on) AS dep(id) JOIN jq_jobs d USING (id)
	WHERE j.id = ANY (ids)
$$;

-------------------------------------------------------------------------
-- unique keys
-------------------------------------------------------------------------

-- an active job holds its key: the same key returns its id, with a notice
SELECT jq_enqueue('SELECT 1', unique_key => 'sync:7', run_at => now() + interval '1 day') AS u1 \gset
SELECT jq_enqueue('SELECT 2', unique_key => 'sync:7') = :u1 AS same_job;
SELECT jq_enqueue_shell('true', unique_key => 'sync:7') = :u1 AS same_job_shell;
SELECT count(*) AS jobs_with_key FROM jq_jobs WHERE unique_key = 'sync:7';
-- keys are per owner: another role gets its own job
SET ROLE jq_dep_user;
SELECT jq_enqueue('SELECT 3', unique_key => 'sync:7', run_at => now() + interval '1 day') AS u2 \gset
SELECT jq_enqueue('SELECT 4', unique_key => 'sync:7') = :u2 AS same_job;
SELECT jq_cancel(:u2);
RESET ROLE;
SELECT :u1 <> :u2 AS own_jobs;
-- a finished job does not hold its key any more
SELECT jq_cancel(:u1);
SELECT jq_enqueue('SELECT 5', unique_key => 'sync:7') AS u3 \gset
SELECT :u3 <> :u1 AS new_job;
SELECT wait_for_jobs(ARRAY[:u3]::bigint[]);
-- a retry may not take a key another active job holds
SELECT jq_enqueue('SELECT 6', unique_key => 'sync:7', run_at => now() + interval '1 day') AS u4 \gset
SELECT jq_retry(:u1);
SELECT jq_cancel(:u4);
SELECT jq_retry(:u1);
SELECT wait_for_jobs(ARRAY[:u1]::bigint[]);
SELECT state FROM jq_jobs WHERE id = :u1;
SELECT jq_enqueue('SELECT 1', unique_key => '');
SELECT jq_enqueue('SELECT 1', unique_key => '  ');

-------------------------------------------------------------------------
-- dependencies
-------------------------------------------------------------------------

-- a chain: each job waits for the one before (enqueued in one transaction,
-- so that none starts before the others are enqueued)
BEGIN;
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('chain 1'); SELECT pg_sleep(0.2)$$) AS c1 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('chain 2')$$, depends_on => ARRAY[:c1]) AS c2 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('chain 3')$$, depends_on => ARRAY[:c2]) AS c3 \gset
SELECT id - :c1 AS n, state, depends_on = ARRAY[id - 1] AS waits_for_previous, on_dependency_failure
FROM jq_jobs WHERE id IN (:c2, :c3) ORDER BY id;
COMMIT;
SELECT wait_for_jobs(ARRAY[:c1, :c2, :c3]::bigint[]);
SELECT id - :c1 AS n, state FROM jq_jobs WHERE id IN (:c1, :c2, :c3) ORDER BY id;
SELECT dependencies_respected(ARRAY[:c2, :c3]::bigint[]);
SELECT string_agg(job, ', ' ORDER BY at) AS order_of_effects FROM ran WHERE job LIKE 'chain%';

-- a diamond: b and c wait for a, d waits for both
BEGIN;
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('diamond a'); SELECT pg_sleep(0.1)$$) AS da \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('diamond b'); SELECT pg_sleep(0.2)$$,
				  depends_on => ARRAY[:da]) AS db \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('diamond c')$$, depends_on => ARRAY[:da]) AS dc \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('diamond d')$$,
				  depends_on => ARRAY[:db, :dc, :db]) AS dd \gset
COMMIT;
SELECT wait_for_jobs(ARRAY[:da, :db, :dc, :dd]::bigint[]);
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded FROM jq_jobs
WHERE id IN (:da, :db, :dc, :dd);
SELECT dependencies_respected(ARRAY[:db, :dc, :dd]::bigint[]);
SELECT job FROM ran WHERE job LIKE 'diamond%' ORDER BY at LIMIT 1;
SELECT job FROM ran WHERE job LIKE 'diamond%' ORDER BY at DESC LIMIT 1;

-- waiting jobs are shown as such, never claimed, and may be cancelled:
-- the jobs that depend on them (policy cancel) are cancelled down the chain
SELECT jq_configure_queue('deps_outside', external_only => true);
SELECT jq_enqueue('SELECT 1', run_at => now() + interval '1 day') AS later \gset
SELECT jq_enqueue('SELECT 2', queue => 'deps_outside', depends_on => ARRAY[:later]) AS w1 \gset
SELECT jq_enqueue('SELECT 3', queue => 'deps_outside', depends_on => ARRAY[:w1]) AS w2 \gset
SELECT jq_enqueue('SELECT 4', queue => 'deps_outside', depends_on => ARRAY[:w2],
				  on_dependency_failure => 'run') AS w3 \gset
SELECT id - :later AS n, state FROM jq_jobs WHERE id IN (:later, :w1, :w2, :w3) ORDER BY id;
SELECT count(*) AS dequeued FROM jq_dequeue('deps_outside', 10);
SELECT jq_cancel(:later);
SELECT id - :later AS n, state, last_error FROM jq_jobs WHERE id IN (:later, :w1, :w2, :w3) ORDER BY id;
-- the one that runs anyway is ready now
SELECT id = :w3 AS is_w3, command FROM jq_dequeue('deps_outside', 10);
SELECT jq_complete(:w3);
-- cancelling a waiting job: it and its dependants end, its dependency goes on
SELECT jq_enqueue('SELECT 1', run_at => now() + interval '1 day') AS later \gset
SELECT jq_enqueue('SELECT 2', depends_on => ARRAY[:later]) AS w1 \gset
SELECT jq_enqueue('SELECT 3', depends_on => ARRAY[:w1]) AS w2 \gset
SELECT jq_cancel(:w1);
SELECT id - :later AS n, state, last_error FROM jq_jobs WHERE id IN (:later, :w1, :w2) ORDER BY id;
SELECT count(*) AS dependency_rows FROM jq.dependency WHERE job_id IN (:w1, :w2);

-- a failure: cancel cascades, run runs anyway once everything it waits for has finished
BEGIN;
SELECT jq_enqueue('SELECT 1 / 0', max_attempts => 2) AS f \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('after failure, cancel')$$,
				  depends_on => ARRAY[:f]) AS f1 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('after cancel, cancel')$$,
				  depends_on => ARRAY[:f1]) AS f2 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('after cancel, run')$$,
				  depends_on => ARRAY[:f1], on_dependency_failure => 'run') AS f3 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('after failure and success, run')$$,
				  depends_on => ARRAY[:f, :c1], on_dependency_failure => 'run') AS f4 \gset
COMMIT;
SELECT wait_for_jobs(ARRAY[:f, :f1, :f2, :f3, :f4]::bigint[]);
SELECT id - :f AS n, state, attempts, last_error, last_error_code FROM jq_jobs
WHERE id IN (:f, :f1, :f2, :f3, :f4) ORDER BY id;
SELECT e->>'attempt' AS attempt, e->>'message' AS message FROM jq_jobs, jsonb_array_elements(errors) e
WHERE id = :f2;
SELECT job FROM ran WHERE job LIKE 'after%' ORDER BY job;
SELECT dependencies_respected(ARRAY[:f3, :f4]::bigint[]);

-- jq_retry of a cancelled dependant: it waits again for the dependencies
-- that are active again (here its retried dependency), and runs at once if
-- none is
CREATE TABLE fixed (ok boolean);
BEGIN;
SELECT jq_enqueue('SELECT 1 / (SELECT count(*) FROM fixed)::int', max_attempts => 1) AS g \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('retried dependant')$$, depends_on => ARRAY[:g]) AS g1 \gset
SELECT jq_enqueue($$INSERT INTO ran (job) VALUES ('retried alone')$$, depends_on => ARRAY[:g]) AS g2 \gset
COMMIT;
SELECT wait_for_jobs(ARRAY[:g, :g1, :g2]::bigint[]);
SELECT id - :g AS n, state, last_error FROM jq_jobs WHERE id IN (:g, :g1, :g2) ORDER BY id;
INSERT INTO fixed VALUES (true);
BEGIN;
SELECT jq_retry(:g), jq_retry(:g1);
SELECT id - :g AS n, state FROM jq_jobs WHERE id IN (:g, :g1) ORDER BY id;
COMMIT;
SELECT wait_for_jobs(ARRAY[:g, :g1]::bigint[]);
SELECT id - :g AS n, state FROM jq_jobs WHERE id IN (:g, :g1) ORDER BY id;
SELECT dependencies_respected(ARRAY[:g1]::bigint[]);
SELECT jq_retry(:g2);
SELECT wait_for_jobs(ARRAY[:g2]::bigint[]);
SELECT state FROM jq_jobs WHERE id = :g2;

-- dependencies that have finished at enqueue: succeeded, no wait; failed:
-- refused with cancel, no wait with run
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1]) AS s1 \gset
SELECT state IN ('ready', 'running', 'succeeded') AS not_waiting FROM jq_jobs WHERE id = :s1;
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:f]);
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:f1]);
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:f], on_dependency_failure => 'run') AS s2 \gset
SELECT state IN ('ready', 'running', 'succeeded') AS not_waiting FROM jq_jobs WHERE id = :s2;
SELECT jq_enqueue('SELECT 1', depends_on => '{}') AS s3 \gset
SELECT depends_on, on_dependency_failure FROM jq_jobs WHERE id = :s3;

-- bad dependencies: a clear error, and nothing enqueued
SELECT count(*) AS jobs_before FROM jq_jobs \gset
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[-1]);
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1, NULL]);
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[[:c1], [:c2]]);
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1], on_dependency_failure => 'ignore');
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1], on_dependency_failure => NULL);
SELECT jq_enqueue_shell('true', depends_on => ARRAY[-2]);
-- a role may depend only on its own jobs, unless it is a member of jq_admin
SET ROLE jq_dep_user;
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1]);
RESET ROLE;
SELECT count(*) = :jobs_before AS nothing_enqueued FROM jq_jobs;
GRANT jq_admin TO jq_dep_user;
SET ROLE jq_dep_user;
SELECT jq_enqueue('SELECT 1', depends_on => ARRAY[:c1]) AS admin_dep \gset
RESET ROLE;
REVOKE jq_admin FROM jq_dep_user;
SELECT wait_for_jobs(ARRAY[:admin_dep]::bigint[]);

-- a unique key with dependencies: the job that holds the key is returned
SELECT jq_enqueue('SELECT 1', unique_key => 'after later', depends_on => ARRAY[:later]) AS k1 \gset
SELECT jq_enqueue('SELECT 1', unique_key => 'after later', depends_on => ARRAY[:c1]) = :k1 AS same_job;
SELECT jq_cancel(:later);
SELECT state, last_error FROM jq_jobs WHERE id = :k1;

-------------------------------------------------------------------------
-- groups
-------------------------------------------------------------------------

-- a workflow: names in depends_on, listed in any order; enqueued in
-- topological order; jobs of any kind; an id of an earlier job too
SELECT name, id - min(id) OVER () AS n FROM jq_enqueue_group(format($$[
	{"name": "report", "command": "INSERT INTO ran (job) VALUES ('group report')",
	 "depends_on": ["load", "check"], "priority": 5},
	{"name": "load", "command": "INSERT INTO ran (job) VALUES ('group load')",
	 "depends_on": ["extract"], "queue": "etl", "payload": {"table": "orders"}},
	{"name": "extract", "kind": "shell", "argv": ["sh", "-c", "echo extracted $JQ_QUEUE"],
	 "queue": "etl", "timeout": "1 minute", "max_attempts": 2},
	{"name": "check", "command": "INSERT INTO ran (job) VALUES ('group check')",
	 "depends_on": ["extract", %s]}
]$$, :c1)::jsonb, name => 'nightly') ORDER BY n;
SELECT id AS grp FROM jq_groups WHERE name = 'nightly' \gset
SELECT wait_for_jobs(ARRAY(SELECT id FROM jq_jobs WHERE group_id = :grp));
SELECT command, kind, queue, priority, payload, max_attempts, timeout, state,
	   result->>'stdout' AS stdout, cardinality(depends_on) AS dependencies
FROM jq_jobs WHERE group_id = :grp ORDER BY id;
SELECT dependencies_respected(ARRAY(SELECT id FROM jq_jobs WHERE group_id = :grp));
SELECT name, owner, total, waiting, ready, running, succeeded, failed, cancelled, state,
	   finished_at IS NOT NULL AS finished
FROM jq_groups WHERE id = :grp;

-- progress while it runs, and a failure in a group
SELECT count(*) AS jobs FROM jq_enqueue_group($$[
	{"name": "first", "command": "SELECT 1", "run_at": "2100-01-01 00:00:00+00"},
	{"name": "second", "command": "SELECT 2", "depends_on": ["first"]},
	{"name": "third", "command": "SELECT 3", "depends_on": ["second"],
	 "on_dependency_failure": "run"}
]$$, 'to be cancelled');
SELECT id AS grp2 FROM jq_groups WHERE name = 'to be cancelled' \gset
SELECT total, waiting, ready, running, succeeded, failed, cancelled, state, finished_at
FROM jq_groups WHERE id = :grp2;
SELECT jq_cancel(id) FROM jq_jobs WHERE group_id = :grp2 AND command = 'SELECT 1';
SELECT wait_for_jobs(ARRAY(SELECT id FROM jq_jobs WHERE group_id = :grp2));
SELECT command, state, last_error FROM jq_jobs WHERE group_id = :grp2 ORDER BY id;
SELECT total, waiting, ready, running, succeeded, failed, cancelled, state FROM jq_groups
WHERE id = :grp2;
SELECT count(*) AS jobs FROM jq_enqueue_group('[
	{"name": "boom", "command": "SELECT 1 / 0", "max_attempts": 1},
	{"name": "after", "command": "SELECT 1", "depends_on": ["boom"]}
]');
SELECT max(id) AS grp3 FROM jq_groups \gset
SELECT wait_for_jobs(ARRAY(SELECT id FROM jq_jobs WHERE group_id = :grp3));
SELECT name, total, succeeded, failed, cancelled, state FROM jq_groups WHERE id = :grp3;

-- groups follow the rules of jq_jobs: a role sees its own only
SET ROLE jq_dep_user;
SELECT count(*) AS visible_groups FROM jq_groups;
SELECT name FROM jq_enqueue_group('[{"name": "mine", "command": "SELECT 1"}]', 'theirs');
SELECT name, owner FROM jq_groups;
-- shell jobs need the right to run programs, as with jq_enqueue_shell
SELECT * FROM jq_enqueue_group('[{"name": "sh", "kind": "shell", "command": "true"}]');
-- and dependencies on the jobs of others are refused
SELECT * FROM jq_enqueue_group(format('[{"name": "x", "command": "SELECT 1", "depends_on": [%s]}]', :c1)::jsonb);
RESET ROLE;
SELECT wait_for_jobs();

-- bad groups: a clear error naming the job, and nothing enqueued
SELECT count(*) AS jobs_before, (SELECT count(*) FROM jq_groups) AS groups_before FROM jq_jobs \gset
SELECT * FROM jq_enqueue_group(NULL);
SELECT * FROM jq_enqueue_group('{"name": "a"}');
SELECT * FROM jq_enqueue_group('[]');
SELECT * FROM jq_enqueue_group('[{"name": "a", "command": "SELECT 1"}, "b"]');
SELECT * FROM jq_enqueue_group('[{"command": "SELECT 1"}]');
SELECT * FROM jq_enqueue_group('[{"name": " ", "command": "SELECT 1"}]');
SELECT * FROM jq_enqueue_group('[{"name": "a", "command": "SELECT 1"}, {"name": "a", "command": "SELECT 2"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "comand": "SELECT 1"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": ["SELECT 1"]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "priority": "high"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "priority": 1.5}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "run_at": "soon"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "timeout": "-1 s"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "queue": "bad queue"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "max_attempts": 0}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": " "}]');
SELECT * FROM jq_enqueue_group('[{"name": "load"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "kind": "perl", "command": "1"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "argv": ["ls"]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "kind": "shell", "command": "ls", "argv": ["ls"]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "kind": "shell", "argv": ["ls"], "env": {"A": 1}}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "on_dependency_failure": "skip"}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "depends_on": ["extract"]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "depends_on": [true]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "depends_on": [-1]}]');
SELECT * FROM jq_enqueue_group('[{"name": "load", "command": "SELECT 1", "depends_on": [1000000]}]');
SELECT * FROM jq_enqueue_group(format('[{"name": "load", "command": "SELECT 1", "depends_on": [%s]}]', :f)::jsonb);
SELECT * FROM jq_enqueue_group('[{"name": "a", "command": "SELECT 1", "depends_on": ["a"]}]');
SELECT * FROM jq_enqueue_group('[
	{"name": "start", "command": "SELECT 1"},
	{"name": "a", "command": "SELECT 1", "depends_on": ["start", "c"]},
	{"name": "b", "command": "SELECT 1", "depends_on": ["a"]},
	{"name": "c", "command": "SELECT 1", "depends_on": ["b"]},
	{"name": "d", "command": "SELECT 1", "depends_on": ["c"]}
]');
-- a later job's error undoes the jobs enqueued before it
SELECT * FROM jq_enqueue_group('[{"name": "ok", "command": "SELECT 1"},
								 {"name": "bad", "command": "SELECT 1", "depends_on": ["ok"], "max_attempts": 5000}]');
SELECT count(*) = :jobs_before AS nothing_enqueued,
	   (SELECT count(*) FROM jq_groups) = :groups_before AS no_group
FROM jq_jobs;

-- the internal functions are not for users
SET ROLE jq_dep_user;
SELECT jq._enqueue_group('jq_dep_user'::regrole, '[{"name": "a", "command": "SELECT 1"}]', NULL);
RESET ROLE;

SELECT jq_configure_queue('deps_outside', external_only => false);
DELETE FROM jq.queue WHERE name = 'deps_outside';
DROP OWNED BY jq_dep_user;
DROP ROLE jq_dep_user;
SELECT setval('jq.job_id_seq', :seq_before) IS NOT NULL AS restored;
