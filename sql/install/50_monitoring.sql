/* ---------------------------------------------------------------------
 * Monitoring: statistics of queues (jq_stats, jq_metrics), progress of
 * running jobs (jq_progress, jq_running) and waiting for jobs to finish
 * (jq_wait, jq_wait_any).  The figures live in shared memory (src/stats.c,
 * src/progress.c, src/wait.c); the triggers below feed them as jobs move.
 * --------------------------------------------------------------------- */

CREATE OR REPLACE FUNCTION jq._stats_job_trigger()
RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_stats_job_trigger';

CREATE OR REPLACE FUNCTION jq._stats_history_trigger()
RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_stats_history_trigger';

-- the file an in-server shell job writes its progress to (JQ_PROGRESS_FILE)
CREATE OR REPLACE FUNCTION jq._progress_file(id bigint)
RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_progress_file';

CREATE OR REPLACE FUNCTION jq_queue_stats()
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

CREATE OR REPLACE FUNCTION jq_running_jobs()
RETURNS TABLE (id bigint, queue text, kind text, command text, owner regrole,
			   executor_pid integer, lease_owner text, started_at timestamptz,
			   attempt integer, max_attempts integer, progress jsonb, progress_at timestamptz)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_running_jobs';
COMMENT ON FUNCTION jq_running_jobs IS 'the rows of jq_running: the running jobs the caller may see';

CREATE OR REPLACE FUNCTION jq_progress(fraction double precision DEFAULT NULL,
							message text DEFAULT NULL,
							data jsonb DEFAULT NULL,
							id bigint DEFAULT NULL,
							attempt integer DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_progress';
COMMENT ON FUNCTION jq_progress IS 'report the progress of the running SQL job (id NULL) or of a job an external worker holds; seen at once by other sessions, kept in jq_jobs when the job ends';

CREATE OR REPLACE FUNCTION jq_wait(id bigint, timeout interval DEFAULT NULL)
RETURNS jq_outcome
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wait';
COMMENT ON FUNCTION jq_wait IS 'wait until a job has finished and return its outcome, or NULL once the timeout has passed';

CREATE OR REPLACE FUNCTION jq_wait_any(ids bigint[], timeout interval DEFAULT NULL)
RETURNS jq_outcome
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wait_any';
COMMENT ON FUNCTION jq_wait_any IS 'wait until one of the jobs has finished and return the outcome of the first, or NULL once the timeout has passed';

CREATE OR REPLACE FUNCTION jq_metrics()
RETURNS text
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_metrics';
COMMENT ON FUNCTION jq_metrics IS 'statistics of the current database''s queues in the Prometheus text format';

/* ---------------------------------------------------------------------
 * The executor pool, as shared memory has it (src/pool.c): per database,
 * executors by kind and state, executors asked for and since when.
 * --------------------------------------------------------------------- */

CREATE OR REPLACE FUNCTION jq_executor_pool(OUT dboid oid, OUT sql_running integer,
								 OUT sql_idle integer, OUT shell_running integer,
								 OUT shell_idle integer, OUT wanted integer,
								 OUT waiting_since timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'jq_executor_pool';
COMMENT ON FUNCTION jq_executor_pool IS 'executors of each database, as jq_executors shows them';
