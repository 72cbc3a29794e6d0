-- Task jobs: kind => 'task' names a handler of an application's worker, the
-- payload its arguments.  In-server executors never run them; jq_dequeue hands
-- them only to workers that name them (or ask for every task).
-- enqueued like any job; executors run the SQL job enqueued after it, never the task
SELECT jq_enqueue('send_receipt', payload => '{"order": 1}', kind => 'task',
				  queue => 'tasks') AS t1 \gset
SELECT jq_enqueue('SELECT 1', queue => 'tasks') AS s1 \gset
SELECT wait_for_jobs(ARRAY[:s1]);
SELECT pg_sleep(0.2);
SELECT kind, command, payload, state, attempts FROM jq_jobs WHERE id = :t1;

-- a task has a name and no program
SELECT jq_enqueue(' ', kind => 'task');
SELECT jq_enqueue_group('[{"name": "t", "kind": "task", "command": "a", "argv": ["b"]}]');
SELECT jq_enqueue('x', kind => 'Task');

-- without kinds, jq_dequeue takes no task: older workers never see them
SELECT count(*) AS claimed FROM jq_dequeue('tasks', 10);
-- a worker gets only the tasks it names
SELECT count(*) AS claimed FROM jq_dequeue('tasks', 10, kinds => ARRAY['task'],
										   tasks => ARRAY['resize_image']);
SELECT id = :t1 AS is_t1, kind, command, payload, attempt
FROM jq_dequeue('tasks', 10, kinds => ARRAY['task'], tasks => ARRAY['resize_image', 'send_receipt']);
SELECT jq_complete(:t1, '{"sent": true}');
SELECT state, result, finished_at IS NOT NULL AS finished FROM jq_jobs WHERE id = :t1;
SELECT jq_dequeue(kinds => ARRAY['task'], tasks => ARRAY['a', NULL]);
SELECT jq_dequeue(kinds => ARRAY['tasks']);

-- kinds => ARRAY['task'] without tasks takes any task; tasks without kinds adds the named ones
SELECT jq_enqueue_bulk(ARRAY['a', 'b', 'c'], queue => 'bulk',
					   payloads => ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
					   kind => 'task') AS bulk \gset
SELECT jq_enqueue('SELECT 2', queue => 'bulk', run_at => now() + interval '1 hour') AS later \gset
SELECT command, payload FROM jq_dequeue('bulk', 1, tasks => ARRAY['b']);
SELECT command, payload FROM jq_dequeue('bulk', 10, kinds => ARRAY['task']) ORDER BY command;
SELECT count(*) AS running FROM jq_jobs WHERE queue = 'bulk' AND state = 'running';

-- failures, retries, cancel and retry of a task, as for any job
SELECT jq_enqueue('flaky', kind => 'task', queue => 'fail', max_attempts => 2) AS f \gset
SELECT count(*) AS claimed FROM jq_dequeue('fail', 1, kinds => ARRAY['task'], tasks => ARRAY['flaky']);
SELECT jq_fail(:f, 'ValueError: bad input');
SELECT pg_sleep(0.3);	-- the backoff: at most jq.retry_backoff_cap
SELECT count(*) AS claimed FROM jq_dequeue('fail', 1, kinds => ARRAY['task'], tasks => ARRAY['flaky']);
SELECT jq_fail(:f, 'ValueError: bad input again');
SELECT state, attempts, last_error, jsonb_array_length(errors) AS errors FROM jq_jobs WHERE id = :f;
SELECT jq_retry(:f);
SELECT state, attempts FROM jq_jobs WHERE id = :f;
SELECT jq_cancel(:f);
SELECT state FROM jq_jobs WHERE id = :f;

-- a worker that stops gives back what it holds: ready at once, the attempt not counted
SELECT jq_enqueue('slow', kind => 'task', queue => 'release') AS r \gset
SELECT attempt FROM jq_dequeue('release', 1, kinds => ARRAY['task']);
SELECT jq_release(:r, attempt => 2);
SELECT jq_release(:r, attempt => 1);
SELECT jq_release(:r);
SELECT state, attempts, errors FROM jq_jobs WHERE id = :r;
SELECT attempt FROM jq_dequeue('release', 1, kinds => ARRAY['task']);
SELECT jq_complete(:r);

-- completing many at once: only the jobs held, in the attempt given
SELECT jq_enqueue_bulk(ARRAY['m', 'm', 'm'], kind => 'task', queue => 'many') AS m \gset
SELECT count(*) AS claimed FROM jq_dequeue('many', 3, kinds => ARRAY['task']);
SELECT cardinality(jq_complete_many((:'m'::bigint[]), ARRAY['1', '2', '3']::jsonb[], ARRAY[1, 2, 1]))
	AS completed;
SELECT result, state FROM jq_jobs WHERE id = ANY (:'m'::bigint[]) ORDER BY id;
SELECT jq_complete_many(:'m'::bigint[], ARRAY['1']::jsonb[]);
SELECT cardinality(jq_complete_many(:'m'::bigint[])) AS completed;
-- a job given twice is completed, and answered, once
SELECT jq_enqueue('m', kind => 'task', queue => 'many') AS m1 \gset
SELECT count(*) AS claimed FROM jq_dequeue('many', 1, kinds => ARRAY['task']);
SELECT jq_complete_many(ARRAY[:m1, :m1]::bigint[]) = ARRAY[:m1]::bigint[] AS once;
SELECT state FROM jq_jobs WHERE id = :m1;

-- unique keys and dependencies
SET client_min_messages = warning;
SELECT jq_enqueue('report', kind => 'task', queue => 'links', unique_key => 'report:7') AS u1,
	   jq_enqueue('report', kind => 'task', queue => 'links', unique_key => 'report:7') AS u2 \gset
RESET client_min_messages;
SELECT :u1 = :u2 AS same_job;
SELECT jq_enqueue('notify', kind => 'task', queue => 'links', depends_on => ARRAY[:u1]) AS d \gset
SELECT state FROM jq_jobs WHERE id = :d;
SELECT command FROM jq_dequeue('links', 10, kinds => ARRAY['task']);
SELECT jq_complete(:u1);
SELECT state FROM jq_jobs WHERE id = :d;
SELECT command FROM jq_dequeue('links', 10, kinds => ARRAY['task']);
SELECT jq_complete(:d);

-- groups and schedules
SELECT name FROM jq_enqueue_group('[{"name": "fetch", "kind": "task", "command": "fetch", "queue": "grp"},
						  {"name": "store", "kind": "task", "command": "store", "queue": "grp",
						   "depends_on": ["fetch"], "payload": {"to": "s3"}}]', 'task pipeline')
ORDER BY id;
SELECT j.command, j.state, j.payload FROM jq_jobs j JOIN jq_groups g ON g.id = j.group_id
WHERE g.name = 'task pipeline' ORDER BY j.id;
SELECT jq_schedule('task tick', 'every 1 second', 'tick', kind => 'task', queue => 'sched',
				   payload => '{"n": 0}') > now() AS created;
SELECT jq._fire_schedules(clock_timestamp() + interval '3 seconds');
SELECT jq_unschedule('task tick');
SELECT DISTINCT kind, command, payload FROM jq_jobs WHERE schedule_name = 'task tick';

-- a queue with a concurrency limit hands out tasks by name too
SELECT jq_configure_queue('capped', concurrency => 5);
SELECT jq_enqueue('other', kind => 'task', queue => 'capped', priority => 1) IS NOT NULL AS other,
	   jq_enqueue('mine', kind => 'task', queue => 'capped', priority => 2) IS NOT NULL AS mine;
SELECT command FROM jq_dequeue('capped', 5, kinds => ARRAY['task'], tasks => ARRAY['mine']);
SELECT command, state FROM jq_jobs WHERE queue = 'capped' ORDER BY command;

-- a role claims only its own tasks, as any job
CREATE ROLE jq_task_alice;
SET ROLE jq_task_alice;
SELECT jq_enqueue('alice_task', kind => 'task', queue => 'roles') AS a \gset
SELECT command FROM jq_dequeue(NULL, 100, kinds => ARRAY['task']);
SELECT jq_complete(:a);
RESET ROLE;

-- what no worker handles stays ready and visible
SELECT queue, command, state FROM jq_jobs
WHERE kind = 'task' AND state = 'ready' AND queue <> 'sched' ORDER BY queue, command;

DELETE FROM jq.job WHERE kind = 'task';
DELETE FROM jq.job_history WHERE owner = 'jq_task_alice'::regrole;
DROP ROLE jq_task_alice;
SELECT jq_configure_queue('capped', concurrency => 0);
