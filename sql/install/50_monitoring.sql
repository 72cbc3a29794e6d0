/* ---------------------------------------------------------------------
 * Monitoring: statistics of queues (jq_stats, jq_metrics), progress of
 * running jobs (jq_progress, jq_running) and waiting for jobs to finish
 * (jq_wait, jq_wait_any).  The figures live in shared memory (src/stats.c,
 * src/progress.c, src/wait.c); the triggers below feed them as jobs move.
 * --------------------------------------------------------------------- */

CREATE FUNCTION jq._stats_job_trigger()
RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_stats_job_trigger';

CREATE FUNCTION jq._stats_history_trigger()
RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_stats_history_trigger';

-- jobs entering, leaving or changing state in the active table
CREATE TRIGGER job_stats
	AFTER INSERT OR DELETE OR UPDATE OF state, run_at, attempts ON jq.job
	FOR EACH ROW EXECUTE FUNCTION jq._stats_job_trigger();

CREATE TRIGGER job_stats_truncate
	AFTER TRUNCATE ON jq.job
	FOR EACH STATEMENT EXECUTE FUNCTION jq._stats_job_trigger();

-- jobs finishing: their outcome, run time and last progress
CREATE TRIGGER job_history_stats
	BEFORE INSERT ON jq.job_history
	FOR EACH ROW EXECUTE FUNCTION jq._stats_history_trigger();

-- the file an in-server shell job writes its progress to (JQ_PROGRESS_FILE)
CREATE FUNCTION jq._progress_file(id bigint)
RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_progress_file';

CREATE FUNCTION jq_queue_stats()
RETURNS TABLE (queue text, waiting bigint, scheduled bigint, ready bigint, running bigint,
			   retrying bigint, oldest_ready_age interval,
			   succeeded_1m bigint, failed_1m bigint, retried_1m bigint, timed_out_1m bigint,
			   succeeded_5m bigint, failed_5m bigint, retried_5m bigint, timed_out_5m bigint,
			   succeeded_1h bigint, failed_1h bigint, retried_1h bigint, timed_out_1h bigint,
			   pickup_p50_1m interval, pickup_p95_1m interval, run_p50_1m interval, run_p95_1m interval,
			   pickup_p50_5m interval, pickup_p95_5m interval, run_p50_5m interval, run_p95_5m interval,
			   pickup_p50_1h interval, pickup_p95_1h interval, run_p50_1h interval, run_p95_1h interval)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_queue_stats';
COMMENT ON FUNCTION jq_queue_stats IS 'the rows of jq_stats: statistics of the queues of the current database, of the caller''s jobs (every role''s for members of jq_admin)';

CREATE VIEW jq_stats AS SELECT * FROM jq_queue_stats();
GRANT SELECT ON jq_stats TO PUBLIC;
COMMENT ON VIEW jq_stats IS 'per queue, and for all of them (queue NULL): jobs in each state, outcomes and latencies over the last minute, five minutes and hour';

CREATE FUNCTION jq_running_jobs()
RETURNS TABLE (id bigint, queue text, kind text, command text, owner regrole,
			   executor_pid integer, lease_owner text, started_at timestamptz,
			   attempt integer, max_attempts integer, progress jsonb, progress_at timestamptz)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_running_jobs';
COMMENT ON FUNCTION jq_running_jobs IS 'the rows of jq_running: the running jobs the caller may see';

CREATE VIEW jq_running AS SELECT * FROM jq_running_jobs();
GRANT SELECT ON jq_running TO PUBLIC;
COMMENT ON VIEW jq_running IS 'running jobs the current role may see: who runs them (executor_pid, NULL for external workers), since when, attempt and progress';

CREATE FUNCTION jq_progress(fraction double precision DEFAULT NULL,
							message text DEFAULT NULL,
							data jsonb DEFAULT NULL,
							id bigint DEFAULT NULL,
							attempt integer DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_progress';
COMMENT ON FUNCTION jq_progress IS 'report the progress of the running SQL job (id NULL) or of a job an external worker holds; seen at once by other sessions, kept in jq_jobs when the job ends';

-- what jq_wait returns: a finished job's outcome
CREATE TYPE jq_outcome AS (id bigint, state text, result jsonb, last_error text,
						   attempts integer, finished_at timestamptz, progress jsonb);

CREATE FUNCTION jq_wait(id bigint, timeout interval DEFAULT NULL)
RETURNS jq_outcome
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wait';
COMMENT ON FUNCTION jq_wait IS 'wait until a job has finished and return its outcome, or NULL once the timeout has passed';

CREATE FUNCTION jq_wait_any(ids bigint[], timeout interval DEFAULT NULL)
RETURNS jq_outcome
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wait_any';
COMMENT ON FUNCTION jq_wait_any IS 'wait until one of the jobs has finished and return the outcome of the first, or NULL once the timeout has passed';

CREATE FUNCTION jq_metrics()
RETURNS text
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_metrics';
COMMENT ON FUNCTION jq_metrics IS 'statistics of the current database''s queues in the Prometheus text format';
