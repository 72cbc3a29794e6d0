-- The job state machine.  jq.job holds ready, running and waiting jobs;
-- src/transition.c lists the changes of state it allows (ready -> running,
-- running -> ready, waiting -> ready), and the trigger job_transition
-- refuses every other one, even to a superuser writing the table directly.
-- Each pair of states is tried on a job put in the first state by the
-- API, in a subtransaction rolled back after the try.
SELECT jq_configure_queue('transitions', external_only => true);

CREATE TEMP TABLE tried (from_state jq.state, to_state jq.state, outcome text);

DO $$
DECLARE
	f jq.state;
	t jq.state;
	job_id bigint;
	outcome text;
BEGIN
	FOREACH f IN ARRAY ARRAY['ready', 'running', 'waiting']::jq.state[] LOOP
		FOREACH t IN ARRAY enum_range(NULL::jq.state) LOOP
			CONTINUE WHEN t = f;
			BEGIN
				job_id := jq_enqueue('SELECT 1', queue => 'transitions');
				IF f = 'running' THEN
					PERFORM jq_dequeue(queue => 'transitions');
				ELSIF f = 'waiting' THEN
					job_id := jq_enqueue('SELECT 2', queue => 'transitions',
									  depends_on => ARRAY[job_id]);
				END IF;
				ASSERT (SELECT j.state FROM jq.job j WHERE j.id = job_id) = f;
				BEGIN
					UPDATE jq.job SET state = t WHERE id = job_id;
					outcome := 'allowed';
				EXCEPTION WHEN object_not_in_prerequisite_state THEN
					outcome := regexp_replace(SQLERRM, 'job [0-9]+', 'job N');
				END;
				RAISE EXCEPTION 'roll back';
			EXCEPTION WHEN raise_exception THEN
				NULL;
			END;
			INSERT INTO tried VALUES (f, t, outcome);
		END LOOP;
	END LOOP;
END
$$;

SELECT from_state, to_state, outcome FROM tried ORDER BY from_state, to_state;

-- the changes the table allows are the ones the functions make
SELECT jq_enqueue('SELECT 3', queue => 'transitions') AS job \gset
SELECT attempt FROM jq_dequeue(queue => 'transitions');
SELECT jq_fail(:job, 'try again');
SELECT state, attempts FROM jq_jobs WHERE id = :job;

-- nothing of the test is left
SELECT count(*) FROM jq.job WHERE queue = 'transitions' AND id <> :job;
SELECT jq_cancel(:job);
