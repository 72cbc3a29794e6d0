/*
 * Giving a job back: an external worker that stops before it could finish a
 * job it holds (a shutdown whose grace period ran out) hands it back at
 * once, with the attempt it was charged, instead of letting its lease run
 * out.  Like jq_complete and jq_fail, only the role that holds the job (or a
 * member of jq_admin) may, and only for the attempt it holds.
 */
CREATE FUNCTION jq_release(id bigint, attempt integer DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'jq_api_call';
COMMENT ON FUNCTION jq_release IS 'give back a job held by an external worker: ready again at once, its attempt not counted';

CREATE FUNCTION jq._jq_release(p_caller oid, p_is_admin boolean, p_id bigint, p_attempt integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held boolean := (jq._leased_job(p_caller, p_is_admin, p_id, p_attempt)).id IS NOT NULL;
BEGIN
	IF held THEN
		PERFORM jq._finish_all(ARRAY[p_id], 'released', NULL, false);
		-- executors for the kinds they run, external workers through NOTIFY
		PERFORM jq._wake_at_commit(clock_timestamp());
		PERFORM jq._notify_due();
	END IF;
	RETURN held;
END
$$;
