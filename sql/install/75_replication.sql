/*
 * Logical replication.  Jobs are rows of jq.job: a subscriber that has the
 * extension would run every job it receives a second time (its executors,
 * or its workers, take them as their own), and its outcomes would not reach
 * the publisher.  So no publication may hold the extension's tables: an
 * event trigger refuses the CREATE or ALTER PUBLICATION that would add them
 * (FOR ALL TABLES included), and creating the extension is refused in a
 * database with a publication FOR ALL TABLES, which would take them at
 * once.  Physical (streaming) replication is what keeps a standby of the
 * queue.
 *
 * The trigger's function runs as whoever changes a publication, who may
 * use nothing in schema jq: it only reads the catalog.
 */
CREATE OR REPLACE FUNCTION jq._publication_changed()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pub name;
BEGIN
	SELECT t.pubname INTO pub
	FROM pg_catalog.pg_publication_tables t
	WHERE t.schemaname OPERATOR(pg_catalog.=) 'jq'
	LIMIT 1;
	IF pub IS NOT NULL THEN
		RAISE EXCEPTION 'publication "%" would replicate the tables of job_queue', pub
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'A subscriber with job_queue would run the replicated jobs a second time.',
				  HINT = 'Publish the application''s tables by name or by schema instead of FOR ALL TABLES, and leave out schema jq.';
	END IF;
END
$$;
