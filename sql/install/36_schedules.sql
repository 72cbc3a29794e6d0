/*
 * Recurring jobs: when a schedule fires next, and the scheduler's tick that
 * fires them (and expires leases and prunes history).
 */

-- the first fire time of a recurring job's schedule strictly after a given instant
CREATE OR REPLACE FUNCTION jq._schedule_next(schedule text, after timestamptz,
								  time_zone text DEFAULT 'UTC')
RETURNS timestamptz
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_schedule_next';

-- raise the error jq._schedule_next would raise for this schedule, if any
CREATE OR REPLACE FUNCTION jq._schedule_check(schedule text)
RETURNS void
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'jq_schedule_check';

/*
 * Fire the schedules due at p_now.  Each gets one job, for the fire time it
 * was due at (its run_at is next_run), or one group of jobs (jobs), and
 * moves on to its first fire time
 * after p_now: however many fire times passed while no scheduler ran, a
 * schedule fires once.  The job and the new next_run commit together, on a
 * row locked with SKIP LOCKED, so no fire time is ever enqueued twice, by
 * two schedulers or across a crash.  An interval schedule ("every N ...")
 * keeps its phase: its next fire time is N after the one just fired, unless
 * that one has passed too.
 *
 * With overlap 'skip', nothing is enqueued while the schedule's last job, or
 * a job of its last group, has not finished; the fire time is counted in skipped_runs.  A fire time whose
 * job cannot be enqueued (its owner was dropped, or lost the right to run
 * shell jobs) is passed over, the error kept in last_error; a schedule whose
 * next fire time cannot be computed gets next_run NULL and never fires again.
 */
CREATE OR REPLACE FUNCTION jq._fire_schedules(p_now timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s jq.schedule;
	next timestamptz;
	job_id bigint;
	run_group bigint;
	skipped boolean;
	error text;
BEGIN
	FOR s IN SELECT * FROM jq.schedule sc WHERE sc.next_run <= p_now
			 ORDER BY sc.next_run
			 FOR UPDATE SKIP LOCKED
	LOOP
		next := NULL;
		job_id := NULL;
		error := NULL;
		run_group := NULL;
		skipped := s.overlap = 'skip'
				   AND EXISTS (SELECT FROM jq.job j
							   WHERE j.id = s.last_job OR j.group_id = s.last_group);
		BEGIN
			next := jq._schedule_next(s.schedule, s.next_run, s.time_zone);
			IF next <= p_now THEN
				next := jq._schedule_next(s.schedule, p_now, s.time_zone);
			END IF;
			IF NOT skipped AND s.jobs IS NOT NULL THEN
				SELECT max(g.id) INTO job_id FROM jq._enqueue_group(s.owner, s.jobs, s.name) g;
				SELECT j.group_id INTO run_group FROM jq.job j WHERE j.id = job_id;
				UPDATE jq.job j SET schedule_name = s.name WHERE j.group_id = run_group;
			ELSIF NOT skipped THEN
				-- a queued run waits for the previous one, whatever its outcome
				job_id := jq._enqueue(s.owner, false, s.kind, NULL, s.command, s.argv, s.env,
									  s.working_dir, s.queue, s.priority, s.next_run,
									  s.max_attempts, s.timeout, s.payload, NULL,
									  (SELECT ARRAY[j.id] FROM jq.job j WHERE j.id = s.last_job),
									  'run');
				UPDATE jq.job SET schedule_name = s.name WHERE id = job_id;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			-- variables keep what was assigned before the error
			GET STACKED DIAGNOSTICS error = MESSAGE_TEXT;
			job_id := NULL;
		END;
		UPDATE jq.schedule sc
		SET next_run = next,
			last_run = CASE WHEN job_id IS NULL THEN sc.last_run ELSE s.next_run END,
			last_job = coalesce(job_id, sc.last_job),
			last_group = CASE WHEN job_id IS NULL THEN sc.last_group ELSE run_group END,
			skipped_runs = sc.skipped_runs + skipped::integer,
			last_skipped_at = CASE WHEN skipped THEN s.next_run ELSE sc.last_skipped_at END,
			last_error = error
		WHERE sc.name = s.name;
	END LOOP;
END
$$;

/*
 * The scheduler's work when it wakes: expire external leases, fire due
 * schedules and prune history.  Returns whether delayed jobs or retries are
 * due now (jobs due when enqueued woke the executors then) and when the
 * next thing is due.
 */
CREATE OR REPLACE FUNCTION jq._tick(OUT due_now boolean, OUT next_event timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	retention interval := current_setting('jq.history_retention')::interval;
	pruned bigint;
	fired_at timestamptz;
	due_at timestamptz;
BEGIN
	PERFORM jq._expire_leases();

	/*
	 * A due schedule another transaction holds locked is left to it (another
	 * tick fires it; jq_schedule wakes the scheduler when it commits), so
	 * the timer below counts only fire times after fired_at.
	 */
	fired_at := clock_timestamp();
	PERFORM jq._fire_schedules(fired_at);

	pruned := jq._prune_history(retention);

	-- groups none of whose jobs are left
	DELETE FROM jq.job_group g
	WHERE g.created_at < clock_timestamp() - retention
	  AND NOT EXISTS (SELECT FROM jq.job j WHERE j.group_id = g.id)
	  AND NOT EXISTS (SELECT FROM jq.job_history h WHERE h.group_id = g.id);

	-- one instant for both: a job due in between would be neither due nor next
	due_at := clock_timestamp();
	due_now := EXISTS (SELECT FROM jq.job j
					   WHERE j.state = 'ready' AND j.run_at > j.created_at
						 AND j.run_at <= due_at);
	-- delayed jobs and retries that came due: external workers hear of them too
	IF due_now THEN
		PERFORM jq._notify_due();
	END IF;

	IF pruned = 10000 THEN
		next_event := clock_timestamp();	-- more to prune: come back at once
		RETURN;
	END IF;

	SELECT min(e.t) INTO next_event
	FROM ((SELECT j.run_at FROM jq.job j
		   WHERE j.state = 'ready' AND j.run_at > j.created_at AND j.run_at > due_at
		   ORDER BY j.run_at LIMIT 1)
		  UNION ALL
		  (SELECT j.lease_expires_at FROM jq.job j
		   WHERE j.state = 'running' AND j.lease_expires_at IS NOT NULL
		   ORDER BY j.lease_expires_at LIMIT 1)
		  UNION ALL
		  SELECT jq._history_next_event(retention)
		  UNION ALL
		  (SELECT s.next_run FROM jq.schedule s
		   WHERE s.next_run > fired_at
		   ORDER BY s.next_run LIMIT 1)
		  UNION ALL
		  SELECT jq._next_rate_token()) AS e(t);
END
$$;
