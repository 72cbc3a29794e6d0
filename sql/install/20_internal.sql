/*
 * C functions that the internal SQL calls: raising errors, waking the
 * workers, notifying external workers, what this server and a role may do.
 */

-- raise an error; an empty detail or hint is left out
CREATE OR REPLACE FUNCTION jq._raise(message text, sqlstate text, detail text, hint text)
RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_raise';

-- wake the executors or the scheduler of this database when the transaction commits
CREATE OR REPLACE FUNCTION jq._wake_at_commit(run_at timestamptz)
RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wake_at_commit';

-- NOTIFY jq_jobs, as jq.notify says, that jobs of any queue are due
CREATE OR REPLACE FUNCTION jq._notify_due()
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_notify_due';

-- wake this database's scheduler at a given instant, once the transaction commits
CREATE OR REPLACE FUNCTION jq._wake_scheduler_at_commit(at timestamptz)
RETURNS void
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_wake_scheduler_at_commit';

-- whether this server runs job_queue's workers (shared_preload_libraries)
CREATE OR REPLACE FUNCTION jq._preloaded()
RETURNS boolean
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_preloaded_now';

-- whether a role may run programs as the server's operating-system user
CREATE OR REPLACE FUNCTION jq._may_run_shell(role oid)
RETURNS boolean
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_may_run_shell_sql';

-- ask the in-server executor holding a job to stop it
CREATE OR REPLACE FUNCTION jq._request_cancel(token bigint, job_id bigint)
RETURNS boolean
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_request_cancel';

-- warn when the library is not preloaded, and start this database's scheduler
CREATE OR REPLACE FUNCTION jq._extension_created()
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_extension_created';
