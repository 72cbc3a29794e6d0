/* ---------------------------------------------------------------------
 * History at scale: jq.job_history is partitioned by finish time.
 *
 * Each partition holds the jobs that finished in one stretch of time, an
 * eighth of jq.history_retention long (whole seconds, at least one), and is
 * named job_history_p<from>_<to> after its bounds in seconds since 1970.
 * The scheduler's tick (jq._tick) keeps partitions made up to two widths
 * (at least a minute) ahead, and detaches and drops a partition whole
 * once all of it is older than the retention, so that pruning costs the
 * same at any rate of jobs and leaves no dead rows behind.  A job that
 * finishes when no partition covers it (no scheduler ran for a while) goes
 * to the default partition, which is pruned by DELETE, and so are
 * partitions made for a longer retention than the current one, until they
 * are empty or past the retention and dropped.
 * --------------------------------------------------------------------- */

-- how long a stretch of history one partition holds, in whole seconds
CREATE OR REPLACE FUNCTION jq._history_width(p_retention interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT make_interval(secs => greatest(ceil(extract(epoch FROM p_retention) / 8), 1))
$$;

-- how far ahead of now partitions are made: two widths, at least a minute
CREATE OR REPLACE FUNCTION jq._history_ahead(p_retention interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT greatest(2 * jq._history_width(p_retention), interval '1 minute')
$$;

-- the partitions of jq.job_history and their bounds, oldest first
CREATE OR REPLACE FUNCTION jq._history_partitions()
RETURNS TABLE (part regclass, lower timestamptz, upper timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid::regclass,
		   to_timestamp(split_part(substr(c.relname, 14), '_', 1)::bigint),
		   to_timestamp(split_part(substr(c.relname, 14), '_', 2)::bigint)
	FROM pg_inherits i
	JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'jq.job_history'::regclass
	  AND c.relname ~ '^job_history_p[0-9]+_[0-9]+$'
	ORDER BY 2
$$;

-- the default partition, and partitions wider than the retention makes them now
CREATE OR REPLACE FUNCTION jq._history_pruned_by_delete(p_retention interval)
RETURNS TABLE (part regclass)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'jq.job_history_default'::regclass
	UNION ALL
	SELECT p.part FROM jq._history_partitions() p
	WHERE p.upper - p.lower > jq._history_width(p_retention)
$$;

/*
 * Create the partitions that the next stretch of history needs, and drop
 * those older than the retention.  Both lock jq.job_history or its default
 * partition for a moment, so they wait at most 100 ms for their locks: if
 * other sessions hold them, the next tick tries again (and meanwhile jobs
 * that finish go to the default partition).  Returns how many rows it
 * deleted from the default partition (at most 10000 at a time).
 */
CREATE OR REPLACE FUNCTION jq._prune_history(p_retention interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '100ms'
AS $$
DECLARE
	width_s bigint := extract(epoch FROM jq._history_width(p_retention))::bigint;
	ahead_s bigint := extract(epoch FROM jq._history_ahead(p_retention))::bigint;
	now_s bigint := floor(extract(epoch FROM clock_timestamp()))::bigint;
	lo bigint;
	hi bigint;
	name text;
	old record;
	pruned bigint;
	deleted bigint;
	drop_it boolean;
BEGIN
	/*
	 * Partitions up to jq._history_ahead from now.  When none covers now
	 * (the first ones, or after the scheduler stopped), the first starts 10
	 * seconds from now: a job finishing meanwhile may already be on its way
	 * to the default partition, whose range the attach must not take that
	 * job's finish time from.
	 */
	SELECT extract(epoch FROM max(p.upper))::bigint INTO lo FROM jq._history_partitions() p;
	IF lo IS NULL OR lo <= now_s THEN
		lo := now_s + 10;
	END IF;
	BEGIN
		WHILE lo < now_s + ahead_s LOOP
			-- rows the default partition got for this stretch stay there
			lo := greatest(lo, (SELECT floor(extract(epoch FROM max(d.finished_at)))::bigint + 1
								FROM jq.job_history_default d
								WHERE d.finished_at >= to_timestamp(lo)));
			hi := (lo / width_s + 1) * width_s;
			name := format('job_history_p%s_%s', lo, hi);
			EXECUTE format('CREATE TABLE jq.%I (LIKE jq.job_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
						   'WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0)',
						   name);
			EXECUTE format('ALTER TABLE jq.%I OWNER TO %I', name,
						   (SELECT c.relowner::regrole::text FROM pg_class c
							WHERE c.oid = 'jq.job_history'::regclass));
			EXECUTE format('ALTER TABLE jq.job_history ATTACH PARTITION jq.%I FOR VALUES FROM (%L) TO (%L)',
						   name, to_timestamp(lo), to_timestamp(hi));
			lo := hi;
		END LOOP;
	EXCEPTION WHEN lock_not_available THEN
		NULL;					-- busy: the next tick tries again
	END;

	-- partitions past the retention, and empty ones of a longer retention
	FOR old IN SELECT p.part, p.upper <= clock_timestamp() - p_retention AS past
			   FROM jq._history_partitions() p
			   WHERE p.upper <= clock_timestamp() - p_retention
				  OR p.upper - p.lower > jq._history_width(p_retention)
	LOOP
		-- an empty one is looked at first without the lock, which the drop takes
		EXECUTE format('SELECT $1 OR NOT EXISTS (SELECT FROM %s)', old.part)
			INTO drop_it USING old.past;
		CONTINUE WHEN NOT drop_it;
		BEGIN
			LOCK TABLE jq.job_history IN ACCESS EXCLUSIVE MODE;
			EXECUTE format('SELECT $1 OR NOT EXISTS (SELECT FROM %s)', old.part)
				INTO drop_it USING old.past;
			IF drop_it THEN
				EXECUTE format('ALTER TABLE jq.job_history DETACH PARTITION %s', old.part);
				EXECUTE format('DROP TABLE %s', old.part);
			END IF;
		EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
			NULL;
		END;
	END LOOP;

	-- jobs past the retention in the default partition or in wider partitions
	pruned := 0;
	FOR old IN SELECT w.part FROM jq._history_pruned_by_delete(p_retention) w LOOP
		EXECUTE format('DELETE FROM %s h WHERE h.ctid IN (SELECT d.ctid FROM %s d '
					   'WHERE d.finished_at < $1 LIMIT $2)', old.part, old.part)
			USING clock_timestamp() - p_retention, 10000 - pruned;
		GET DIAGNOSTICS deleted = ROW_COUNT;
		pruned := pruned + deleted;
		EXIT WHEN pruned >= 10000;
	END LOOP;
	RETURN pruned;
END
$$;

/*
 * When history next needs the tick: the next partition to create or to
 * drop, or the oldest row to delete.  A drop that is overdue (its lock was
 * busy) is tried again a second later.
 */
CREATE OR REPLACE FUNCTION jq._history_next_event(p_retention interval)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next timestamptz;
	oldest timestamptz;
	w record;
BEGIN
	SELECT least(min(p.upper) + p_retention, max(p.upper) - jq._history_ahead(p_retention) / 2)
	INTO next FROM jq._history_partitions() p;
	FOR w IN SELECT d.part FROM jq._history_pruned_by_delete(p_retention) d LOOP
		EXECUTE format('SELECT min(h.finished_at) FROM %s h', w.part) INTO oldest;
		next := least(next, oldest + p_retention);
	END LOOP;
	RETURN greatest(next, clock_timestamp() + interval '1 second');
END
$$;
