/* job_queue 1.0: tables, the jq_jobs view and the SQL API */

\echo Use "CREATE EXTENSION job_queue" to load this file. \quit

/*
 * Internal objects live in schema jq, which only the extension owner can use.
 * Users reach them through the functions and the view created in the
 * extension's own schema (public unless CREATE EXTENSION ... SCHEMA says
 * otherwise).
 */
CREATE SCHEMA jq;
REVOKE ALL ON SCHEMA jq FROM PUBLIC;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'jq_admin') THEN
		CREATE ROLE jq_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'jq_worker') THEN
		CREATE ROLE jq_worker NOLOGIN;
	END IF;
END
$$;
COMMENT ON ROLE jq_admin IS 'members see and manage every job_queue job';
COMMENT ON ROLE jq_worker IS 'members take, run and finish every role''s job_queue jobs as external workers, and may turn notifications on';
