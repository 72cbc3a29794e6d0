/*
 * jq_run_sql for a batch: an external worker runs the SQL jobs it holds in
 * one call and one transaction, their outcomes recorded together (run_sql.c).
 */
CREATE FUNCTION jq_run_sql_many(ids bigint[], attempts integer[])
RETURNS TABLE (id bigint, succeeded boolean)
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_run_sql_many';
COMMENT ON FUNCTION jq_run_sql_many IS 'run SQL jobs held by an external worker, in order, each as the role that enqueued it, and record their outcomes; a row per job dealt with, succeeded NULL if not held';
