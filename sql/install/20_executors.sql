/* ---------------------------------------------------------------------
 * The executor pool, as shared memory has it (src/pool.c): per database,
 * executors by kind and state, executors asked for and since when.
 * --------------------------------------------------------------------- */

CREATE FUNCTION jq_executor_pool(OUT dboid oid, OUT sql_running integer,
								 OUT sql_idle integer, OUT shell_running integer,
								 OUT shell_idle integer, OUT wanted integer,
								 OUT waiting_since timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'jq_executor_pool';
COMMENT ON FUNCTION jq_executor_pool IS 'executors of each database, as jq_executors shows them';

-- members of jq_admin see every database, other roles the current one
CREATE VIEW jq_executors WITH (security_barrier) AS
SELECT d.datname, p.sql_running, p.sql_idle, p.shell_running, p.shell_idle,
	   p.wanted, p.waiting_since
FROM jq_executor_pool() p
JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) p.dboid;
GRANT SELECT ON jq_executors TO PUBLIC;
COMMENT ON VIEW jq_executors IS 'executors per database: running, idle, asked for, waiting since';
