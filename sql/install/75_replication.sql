/*
 * Logical replication.  Jobs are rows of jq.job: a subscriber that has the
 * extension would run every job it receives a second time (its executors,
 * or its workers, take them as its own), and its outcomes would not reach
 * the publisher.  So no publication may hold the extension's tables: an
 * event trigger refuses the CREATE or ALTER PUBLICATION that would add them
 * (FOR ALL TABLES included), and creating the extension is refused in a
 * database with such a publication.  Physical (streaming) replication is
 * what keeps a standby of the queue.
 */
CREATE FUNCTION jq._refuse_published_queue()
RETURNS void
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

-- definer's rights: whoever creates a publication may not call jq's functions
CREATE FUNCTION jq._publication_changed()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM jq._refuse_published_queue();
END
$$;

CREATE EVENT TRIGGER jq_publication_guard ON ddl_command_end
	WHEN TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION')
	EXECUTE FUNCTION jq._publication_changed();

SELECT jq._refuse_published_queue();
