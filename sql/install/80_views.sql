/*
 * Views, created after the functions some of them read.
 */

/*
 * The jobs a role may see: its own, or all of them for members of jq_admin
 * (each test is a sub-select, so it is evaluated once per query, not per
 * row).  Each half of jq_jobs is a security_barrier view of its own: the
 * planner turns a UNION ALL into an append of its arms, dropping the
 * barrier of a view around it, but it keeps the barrier of each arm, so a
 * caller's function in a WHERE clause on jq_jobs never sees a row the
 * filter drops.  Leakproof tests (id = 42, state = 'failed') still reach
 * the indexes.
 */
CREATE VIEW jq.visible_active_job WITH (security_barrier) AS
SELECT j.id, j.queue, j.kind, j.command, j.argv, j.env, j.working_dir, j.payload, j.priority,
	   CASE
		   WHEN j.state = 'running' THEN 'running'
		   WHEN j.state = 'waiting' THEN 'waiting'
		   WHEN j.run_at <= pg_catalog.now() THEN 'ready'
		   WHEN j.attempts > 0 THEN 'retrying'
		   ELSE 'scheduled'
	   END AS state,
	   j.run_at, j.attempts, j.max_attempts, j.timeout, j.owner::regrole AS owner,
	   j.created_at, j.started_at, NULL::timestamptz AS finished_at,
	   j.lease_owner, j.lease_expires_at, NULL::jsonb AS result,
	   j.errors -> -1 ->> 'message' AS last_error,
	   j.errors -> -1 ->> 'code' AS last_error_code,
	   (j.errors -> -1 ->> 'timeout')::boolean AS last_error_timeout,
	   j.errors, j.schedule_name, j.unique_key, j.depends_on, j.on_dependency_failure, j.group_id,
	   NULL::jsonb AS progress, NULL::timestamptz AS progress_at
FROM jq.job j
WHERE j.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
   OR (SELECT pg_catalog.pg_has_role('jq_admin', 'USAGE'));

CREATE VIEW jq.visible_finished_job WITH (security_barrier) AS
SELECT h.id, h.queue, h.kind, h.command, h.argv, h.env, h.working_dir, h.payload, h.priority,
	   h.state::text AS state,
	   h.run_at, h.attempts, h.max_attempts, h.timeout, h.owner::regrole AS owner,
	   h.created_at, h.started_at, h.finished_at,
	   h.lease_owner, NULL::timestamptz AS lease_expires_at, h.result,
	   h.errors -> -1 ->> 'message' AS last_error,
	   h.errors -> -1 ->> 'code' AS last_error_code,
	   (h.errors -> -1 ->> 'timeout')::boolean AS last_error_timeout,
	   h.errors, h.schedule_name, h.unique_key, h.depends_on, h.on_dependency_failure, h.group_id,
	   h.progress, h.progress_at
FROM jq.job_history h
WHERE h.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
   OR (SELECT pg_catalog.pg_has_role('jq_admin', 'USAGE'));

CREATE VIEW jq_jobs WITH (security_barrier) AS
SELECT * FROM jq.visible_active_job
UNION ALL
SELECT * FROM jq.visible_finished_job;

GRANT SELECT ON jq_jobs TO PUBLIC;
COMMENT ON VIEW jq_jobs IS 'every job the current role may see, active and finished';

/*
 * Queues with settings, which every role may see, and queues where the
 * role has unfinished jobs: their settings, and how many of the jobs the
 * role may see (as in jq_jobs) are ready (due now), scheduled (due later,
 * or waiting to be retried) and running.
 */
CREATE VIEW jq_queues WITH (security_barrier) AS
SELECT coalesce(q.name, c.queue) AS queue,
	   coalesce(q.external_only, false) AS external_only,
	   coalesce(q.paused, false) AS paused,
	   q.concurrency, q.max_ready, q.rate_limit,
	   CASE WHEN q.rate_limit IS NOT NULL THEN q.rate_period END AS rate_period,
	   q.default_priority, q.default_max_attempts, q.default_timeout,
	   coalesce(c.ready, 0) AS ready, coalesce(c.scheduled, 0) AS scheduled,
	   coalesce(c.running, 0) AS running
FROM jq.queue q
FULL JOIN (SELECT j.queue,
				  count(*) FILTER (WHERE j.state = 'ready' AND j.run_at <= pg_catalog.now()) AS ready,
				  count(*) FILTER (WHERE j.state = 'ready' AND j.run_at > pg_catalog.now()) AS scheduled,
				  count(*) FILTER (WHERE j.state = 'running') AS running
		   FROM jq.job j
		   WHERE j.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
			  OR (SELECT pg_catalog.pg_has_role('jq_admin', 'USAGE'))
		   GROUP BY j.queue) c ON c.queue = q.name;
GRANT SELECT ON jq_queues TO PUBLIC;
COMMENT ON VIEW jq_queues IS 'the settings of queues and how many of their jobs wait and run';

-- the schedules a role may see: as jq_jobs, its own or all of them for jq_admin
CREATE VIEW jq_schedules WITH (security_barrier) AS
SELECT s.name, s.schedule, s.time_zone, s.kind, s.command, s.argv, s.queue, s.priority,
	   s.overlap, s.owner::regrole AS owner, s.next_run, s.last_run, s.last_job,
	   s.skipped_runs, s.last_skipped_at, s.last_error, s.created_at, s.jobs, s.last_group
FROM jq.schedule s
WHERE s.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
   OR (SELECT pg_catalog.pg_has_role('jq_admin', 'USAGE'));
GRANT SELECT ON jq_schedules TO PUBLIC;
COMMENT ON VIEW jq_schedules IS 'every recurring job the current role may see';

/*
 * Groups of jobs and how far they are, with the visibility rules of
 * jq_jobs.  ready counts the jobs not yet claimed that wait for nothing but
 * their run_at (ready, scheduled and retrying in jq_jobs).
 */
CREATE VIEW jq_groups WITH (security_barrier) AS
SELECT g.id, g.name, g.owner::regrole AS owner, g.created_at,
	   count(j.state) AS total,
	   count(*) FILTER (WHERE j.state = 'waiting') AS waiting,
	   count(*) FILTER (WHERE j.state = 'ready') AS ready,
	   count(*) FILTER (WHERE j.state = 'running') AS running,
	   count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded,
	   count(*) FILTER (WHERE j.state = 'failed') AS failed,
	   count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,
	   CASE
		   WHEN bool_or(j.state IN ('waiting', 'ready', 'running')) THEN 'running'
		   WHEN bool_or(j.state = 'failed') THEN 'failed'
		   WHEN bool_or(j.state = 'cancelled') THEN 'cancelled'
		   ELSE 'succeeded'
	   END AS state,
	   CASE WHEN NOT bool_or(j.state IN ('waiting', 'ready', 'running'))
			THEN max(j.finished_at) END AS finished_at
FROM jq.job_group g
LEFT JOIN (SELECT a.group_id, a.state, NULL::timestamptz AS finished_at
		   FROM jq.job a WHERE a.group_id IS NOT NULL
		   UNION ALL
		   SELECT h.group_id, h.state, h.finished_at
		   FROM jq.job_history h WHERE h.group_id IS NOT NULL) j ON j.group_id = g.id
WHERE g.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
   OR (SELECT pg_catalog.pg_has_role('jq_admin', 'USAGE'))
GROUP BY g.id;

GRANT SELECT ON jq_groups TO PUBLIC;
COMMENT ON VIEW jq_groups IS 'every group of jobs the current role may see, with its progress';

-- members of jq_admin see every database, other roles the current one
CREATE VIEW jq_executors WITH (security_barrier) AS
SELECT d.datname, p.sql_running, p.sql_idle, p.shell_running, p.shell_idle,
	   p.wanted, p.waiting_since
FROM jq_executor_pool() p
JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) p.dboid;
GRANT SELECT ON jq_executors TO PUBLIC;
COMMENT ON VIEW jq_executors IS 'executors per database: running, idle, asked for, waiting since';

CREATE VIEW jq_stats AS SELECT * FROM jq_queue_stats();
GRANT SELECT ON jq_stats TO PUBLIC;
COMMENT ON VIEW jq_stats IS 'per queue, and for all of them (queue NULL): jobs in each state, outcomes and latencies over the last minute, five minutes and hour';

CREATE VIEW jq_running AS SELECT * FROM jq_running_jobs();
GRANT SELECT ON jq_running TO PUBLIC;
COMMENT ON VIEW jq_running IS 'running jobs the current role may see: who runs them (executor_pid, NULL for external workers), since when, attempt and progress';
