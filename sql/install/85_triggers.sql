/*
 * Triggers, created once; their functions are in the parts above.
 */

CREATE TRIGGER queue_settings_changed
AFTER INSERT OR DELETE OR TRUNCATE
	OR UPDATE OF external_only, paused, concurrency, max_ready, rate_limit, rate_period,
				 default_priority, default_max_attempts, default_timeout
ON jq.queue FOR EACH STATEMENT EXECUTE FUNCTION jq._queue_changed();
-- in logical replication's apply too
ALTER TABLE jq.queue ENABLE ALWAYS TRIGGER queue_settings_changed;

-- the state machine: refuse a change of state src/transition.c does not list
CREATE TRIGGER job_transition BEFORE UPDATE OF state ON jq.job
	FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
	EXECUTE FUNCTION jq._job_transition();

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

-- the publication guard of 75_replication.sql, and the check of publications that exist
CREATE EVENT TRIGGER jq_publication_guard ON ddl_command_end
	WHEN TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION')
	EXECUTE FUNCTION jq._publication_changed();

DO $$
DECLARE
	pub name;
BEGIN
	SELECT p.pubname INTO pub FROM pg_catalog.pg_publication p WHERE p.puballtables LIMIT 1;
	IF pub IS NOT NULL THEN
		RAISE EXCEPTION 'publication "%" would replicate the tables of job_queue', pub
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'It publishes FOR ALL TABLES; a subscriber with job_queue would run the replicated jobs a second time.',
				  HINT = 'Publish the application''s tables by name or by schema, then create the extension.';
	END IF;
END
$$;
