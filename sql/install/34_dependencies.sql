/* ---------------------------------------------------------------------
 * Unique keys, dependencies and groups.
 *
 * A job enqueued with depends_on waits (state waiting, waiting_for > 0)
 * while any of the jobs it names has not finished; jq.dependency has a row
 * per unfinished one.  The enqueue marks each unfinished dependency
 * (has_dependants) with an UPDATE that lasts until its transaction ends: a
 * dependency cannot finish unseen in between, since finishing deletes that
 * row, and a finisher under REPEATABLE READ gets a serialization failure
 * rather than missing rows it cannot see.  When jobs finish, _finish hands
 * the ones with dependants to _release_dependants.
 * --------------------------------------------------------------------- */

/*
 * Mark the unfinished jobs among p_ids as having dependants, locking them
 * until this transaction ends, in id order; returns their ids and owners.
 */
CREATE OR REPLACE FUNCTION jq._hold_dependencies(p_ids bigint[])
RETURNS TABLE (id bigint, owner oid)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE jq.job j SET has_dependants = true
	FROM (SELECT l.id FROM jq.job l WHERE l.id = ANY (p_ids) ORDER BY l.id
		  FOR NO KEY UPDATE) l
	WHERE j.id = l.id
	RETURNING j.id, j.owner
$$;

/*
 * The dependencies of a job p_owner enqueues that have not finished, held
 * by _hold_dependencies.  Raises when one does not exist, when p_owner may
 * not manage it, and, with p_on_failure cancel, when one has already failed
 * or been cancelled.
 */
CREATE OR REPLACE FUNCTION jq._check_dependencies(p_owner oid, p_is_admin boolean, p_depends_on bigint[],
									   p_on_failure text)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	held bigint[];
	held_owners oid[];
	hidden bigint;
	dep record;
BEGIN
	-- another role's job is as absent as a missing one, and is not locked
	SELECT u.id INTO hidden
	FROM unnest(p_depends_on) AS u(id)
	WHERE NOT p_is_admin
	  AND NOT EXISTS (SELECT FROM jq.job j WHERE j.id = u.id AND j.owner = p_owner)
	  AND NOT EXISTS (SELECT FROM jq.job_history h WHERE h.id = u.id AND h.owner = p_owner)
	ORDER BY u.id
	LIMIT 1;
	IF hidden IS NOT NULL THEN
		RAISE EXCEPTION 'job % in depends_on does not exist', hidden
			USING ERRCODE = 'no_data_found',
				  HINT = 'A job can depend only on jobs of the role that enqueues it, enqueued before it; finished jobs are kept for jq.history_retention.';
	END IF;

	SELECT coalesce(array_agg(h.id), '{}'), array_agg(h.owner) INTO held, held_owners
	FROM jq._hold_dependencies(p_depends_on) h;

	-- the others have finished: their outcome, read after the wait for the locks
	FOR dep IN
		SELECT d.id,
			   coalesce(held_owners[array_position(held, d.id)], h.owner) AS owner,
			   CASE WHEN d.id <> ALL (held) THEN h.state END AS state
		FROM (SELECT DISTINCT u.id FROM unnest(p_depends_on) AS u(id)) d
		LEFT JOIN jq.job_history h ON h.id = d.id AND d.id <> ALL (held)
		ORDER BY d.id
	LOOP
		IF dep.owner IS NULL THEN
			RAISE EXCEPTION 'job % in depends_on does not exist', dep.id
				USING ERRCODE = 'no_data_found',
					  HINT = 'A job can depend only on jobs enqueued before it; finished jobs are kept for jq.history_retention.';
		END IF;
		IF dep.state IN ('failed', 'cancelled') AND p_on_failure = 'cancel' THEN
			RAISE EXCEPTION 'dependency % has %', dep.id,
				CASE dep.state WHEN 'failed' THEN 'failed' ELSE 'been cancelled' END
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'With on_dependency_failure = cancel, the job would be cancelled at once.',
					  HINT = format('Retry job %s first, or pass on_dependency_failure => ''run'' to run the job anyway.', dep.id);
		END IF;
	END LOOP;
	RETURN held;
END
$$;

/*
 * Insert a job checked by the C code (jq_enqueue and friends), in the order
 * of their plain insert, for a job with a unique key, dependencies or a
 * group.  When the owner already has an active job with the unique key,
 * returns that job's id with existing = true instead.
 */
CREATE OR REPLACE FUNCTION jq._insert_job(p_queue text, p_command text, p_payload jsonb, p_priority integer,
							   p_run_at timestamptz, p_max_attempts integer, p_timeout interval,
							   p_owner oid, p_kind text, p_argv text[], p_env jsonb,
							   p_working_dir text, p_default_max_attempts integer,
							   p_default_timeout interval, p_unique_key text,
							   p_depends_on bigint[], p_on_dependency_failure text,
							   p_group_id bigint, p_is_admin boolean,
							   OUT id bigint, OUT existing boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	pending bigint[] := jq._check_dependencies(p_owner, p_is_admin, p_depends_on,
											   p_on_dependency_failure);
	q jq.queue;
BEGIN
	-- the queue's defaults and limits, as for the plain insert (api.c)
	SELECT * INTO q FROM jq.queue WHERE name = p_queue;
	IF q.max_ready IS NOT NULL THEN
		PERFORM jq._check_max_ready(q.name, q.max_ready, 1);
	END IF;
	LOOP
		INSERT INTO jq.job AS j
			(queue, command, payload, priority, run_at, max_attempts, timeout, owner, kind,
			 argv, env, working_dir, unique_key, depends_on, on_dependency_failure, group_id,
			 state, waiting_for, limited)
		VALUES (p_queue, p_command, p_payload, coalesce(p_priority, q.default_priority, 0),
				p_run_at, coalesce(p_max_attempts, q.default_max_attempts, p_default_max_attempts),
				coalesce(p_timeout, q.default_timeout, p_default_timeout),
				p_owner, p_kind, p_argv, p_env, p_working_dir, p_unique_key, p_depends_on,
				CASE WHEN p_depends_on IS NOT NULL THEN p_on_dependency_failure END, p_group_id,
				CASE WHEN cardinality(pending) > 0 THEN 'waiting' ELSE 'ready' END::jq.state,
				cardinality(pending), coalesce(q.limited, false))
		ON CONFLICT (owner, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
		RETURNING j.id INTO id;
		IF id IS NOT NULL THEN
			INSERT INTO jq.dependency (job_id, depends_on) SELECT id, unnest(pending);
			existing := false;
			RETURN;
		END IF;

		SELECT j.id INTO id FROM jq.job j WHERE j.owner = p_owner AND j.unique_key = p_unique_key;
		IF id IS NOT NULL THEN
			existing := true;
			RETURN;
		END IF;
		-- the job that held the key finished in the meantime: try again
	END LOOP;
END
$$;

/*
 * Jobs finished (p_ids, in states p_states): drop what they waited for and
 * tell the jobs that wait for them.  A dependant whose dependency failed or
 * was cancelled ends cancelled when its on_dependency_failure is cancel,
 * and so do its own such dependants, down the chain; the others count one
 * unfinished dependency less, and become ready when none is left.
 */
CREATE OR REPLACE FUNCTION jq._release_dependants(p_ids bigint[], p_states jq.state[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	doomed bigint[];
	reasons text[];
	next_run timestamptz;
BEGIN
	-- a job cancelled while it waited
	DELETE FROM jq.dependency d WHERE d.job_id = ANY (p_ids);

	-- in id order, so that finishers of jobs with common dependants cannot deadlock
	PERFORM FROM jq.job j
	WHERE j.id IN (SELECT d.job_id FROM jq.dependency d WHERE d.depends_on = ANY (p_ids))
	ORDER BY j.id
	FOR NO KEY UPDATE;

	WITH RECURSIVE lost(id, reason) AS (
		SELECT d.job_id,
			   format('dependency %s %s', f.id,
					  CASE f.state WHEN 'failed' THEN 'failed' ELSE 'was cancelled' END)
		FROM unnest(p_ids, p_states) AS f(id, state)
		JOIN jq.dependency d ON d.depends_on = f.id
		JOIN jq.job j ON j.id = d.job_id AND j.on_dependency_failure = 'cancel'
		WHERE f.state <> 'succeeded'
		UNION
		SELECT d.job_id, format('dependency %s was cancelled', l.id)
		FROM lost l
		JOIN jq.dependency d ON d.depends_on = l.id
		JOIN jq.job j ON j.id = d.job_id AND j.on_dependency_failure = 'cancel'
	)
	SELECT array_agg(l.id), array_agg(l.reason) INTO doomed, reasons
	FROM (SELECT DISTINCT ON (l.id) l.id, l.reason FROM lost l ORDER BY l.id, l.reason) l;

	WITH gone AS (
		DELETE FROM jq.dependency d WHERE d.depends_on = ANY (p_ids)
		RETURNING d.job_id
	), released AS (
		UPDATE jq.job j
		SET waiting_for = j.waiting_for - g.n,
			state = CASE WHEN j.waiting_for = g.n THEN 'ready' ELSE j.state END,
			run_at = CASE WHEN j.waiting_for = g.n THEN greatest(j.run_at, clock_timestamp())
						  ELSE j.run_at END
		FROM (SELECT g.job_id, count(*) AS n FROM gone g GROUP BY g.job_id) g
		WHERE j.id = g.job_id AND j.id <> ALL (coalesce(doomed, '{}'))
		RETURNING j.state, j.run_at
	)
	SELECT min(r.run_at) INTO next_run FROM released r WHERE r.state = 'ready';

	IF next_run IS NOT NULL THEN
		PERFORM jq._wake_at_commit(next_run);
	END IF;
	IF doomed IS NOT NULL THEN
		PERFORM jq._finish_each(doomed, 'cancelled', reasons, false);
	END IF;
END
$$;

/*
 * Enqueue a group of jobs for p_owner, all or none: p_jobs is a JSON array
 * of an object per job, described at jq_enqueue_group.  Each job is
 * enqueued after the jobs of the group it depends on, through jq._enqueue
 * and its checks; errors name the job.  Returns each job's name and id, in
 * the order of p_jobs.
 */
CREATE OR REPLACE FUNCTION jq._enqueue_group(p_owner oid, p_jobs jsonb, p_name text)
RETURNS TABLE (name text, id bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	-- the keys of a job and the JSON type of their values (payload: any)
	job_types constant jsonb := '{"name": "string", "command": "string", "kind": "string",
		"argv": "array", "env": "object", "working_dir": "string", "queue": "string",
		"priority": "number", "run_at": "string", "max_attempts": "number",
		"timeout": "string", "payload": null, "depends_on": "array",
		"on_dependency_failure": "string"}';
	n integer := jsonb_array_length(CASE jsonb_typeof(p_jobs) WHEN 'array' THEN p_jobs END);
	names text[] := '{}';
	ids bigint[];
	-- the job at position edge_job[i] depends on the job at position edge_dep[i]
	edge_job integer[] := '{}';
	edge_dep integer[] := '{}';
	placed integer[] := '{}';	-- positions, in the order of enqueue
	round integer[];
	walk integer[];
	next_pos integer;
	job jsonb;
	dep jsonb;
	jname text;
	bad text;
	new_group bigint;
	msg text;
	code text;
	detail text;
	hint text;
BEGIN
	IF n IS NULL OR n = 0 THEN
		RAISE EXCEPTION 'jobs must be a non-empty JSON array'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass an object per job: ''[{"name": "extract", "command": "CALL extract()"}]''.';
	END IF;

	-- the names first: depends_on may name jobs that come later in the array
	FOR i IN 1 .. n LOOP
		job := p_jobs -> (i - 1);
		IF jsonb_typeof(job) <> 'object' OR jsonb_typeof(job -> 'name') IS DISTINCT FROM 'string'
		   OR btrim(job ->> 'name') = '' THEN
			RAISE EXCEPTION 'job % of the group has no name', i
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Each job is a JSON object with a "name", unique in the group, that depends_on can refer to.';
		END IF;
		IF job ->> 'name' = ANY (names) THEN
			RAISE EXCEPTION 'job name "%" appears more than once in the group', job ->> 'name'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		names := names || (job ->> 'name');
	END LOOP;

	BEGIN
		FOR i IN 1 .. n LOOP
			job := p_jobs -> (i - 1);
			jname := names[i];
			SELECT k INTO bad FROM jsonb_object_keys(job) k WHERE NOT job_types ? k ORDER BY k LIMIT 1;
			IF bad IS NOT NULL THEN
				RAISE EXCEPTION 'unknown key "%"', bad
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = format('The keys of a job are %s.',
										(SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(job_types) k));
			END IF;
			SELECT format('%s must be a JSON %s', e.key, job_types ->> e.key) INTO bad
			FROM jsonb_each(job) e
			WHERE jsonb_typeof(e.value) NOT IN (job_types ->> e.key, 'null')
			ORDER BY e.key LIMIT 1;
			IF bad IS NOT NULL THEN
				RAISE EXCEPTION '%', bad USING ERRCODE = 'invalid_parameter_value';
			END IF;

			FOR dep IN SELECT d FROM jsonb_array_elements(CASE jsonb_typeof(job -> 'depends_on')
														  WHEN 'array' THEN job -> 'depends_on'
														  ELSE '[]' END) d
			LOOP
				IF jsonb_typeof(dep) = 'string' AND dep #>> '{}' = ANY (names) THEN
					edge_job := edge_job || i;
					edge_dep := edge_dep || array_position(names, dep #>> '{}');
				ELSIF jsonb_typeof(dep) = 'string' THEN
					RAISE EXCEPTION 'depends on "%", which is not a job of the group', dep #>> '{}'
						USING ERRCODE = 'invalid_parameter_value';
				ELSIF jsonb_typeof(dep) <> 'number' OR dep::text !~ '^[0-9]+$' THEN
					RAISE EXCEPTION 'depends_on has % in it', dep
						USING ERRCODE = 'invalid_parameter_value',
							  HINT = 'depends_on lists names of jobs of the group, and ids of jobs enqueued before.';
				END IF;
			END LOOP;
		END LOOP;
		jname := NULL;

		-- each round places the jobs whose dependencies in the group are all placed
		LOOP
			SELECT array_agg(g ORDER BY g) INTO round
			FROM generate_series(1, n) g
			WHERE g <> ALL (placed)
			  AND NOT EXISTS (SELECT FROM unnest(edge_job, edge_dep) e(j, d)
							  WHERE e.j = g AND e.d <> ALL (placed));
			EXIT WHEN round IS NULL;
			placed := placed || round;
		END LOOP;

		IF cardinality(placed) < n THEN
			-- every job left depends on another one left: follow them until one comes back
			walk := ARRAY[(SELECT min(g) FROM generate_series(1, n) g WHERE g <> ALL (placed))];
			LOOP
				SELECT min(e.d) INTO next_pos FROM unnest(edge_job, edge_dep) e(j, d)
				WHERE e.j = walk[cardinality(walk)] AND e.d <> ALL (placed);
				EXIT WHEN next_pos = ANY (walk);
				walk := walk || next_pos;
			END LOOP;
			walk := walk[array_position(walk, next_pos):] || next_pos;
			RAISE EXCEPTION 'the jobs of the group depend on each other in a cycle: %',
				(SELECT string_agg(format('"%s"', names[w.pos]), ' -> ' ORDER BY w.o)
				 FROM unnest(walk) WITH ORDINALITY AS w(pos, o))
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Each job in this list depends on the next one.';
		END IF;

		INSERT INTO jq.job_group AS g (name, owner) VALUES (p_name, p_owner)
		RETURNING g.id INTO new_group;
		ids := array_fill(NULL::bigint, ARRAY[n]);
		FOREACH next_pos IN ARRAY placed LOOP
			job := p_jobs -> (next_pos - 1);
			jname := names[next_pos];
			ids[next_pos] := jq._enqueue(
				p_owner, false, coalesce(job ->> 'kind', 'sql'), new_group, job ->> 'command',
				CASE jsonb_typeof(job -> 'argv')
					WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(job -> 'argv')) END,
				nullif(job -> 'env', 'null'), job ->> 'working_dir',
				coalesce(job ->> 'queue', 'default'), (job ->> 'priority')::integer,
				(job ->> 'run_at')::timestamptz, (job ->> 'max_attempts')::integer,
				(job ->> 'timeout')::interval, nullif(job -> 'payload', 'null'), NULL,
				ARRAY(SELECT CASE jsonb_typeof(d)
								 WHEN 'string' THEN ids[array_position(names, d #>> '{}')]
								 ELSE (d #>> '{}')::bigint END
					  FROM jsonb_array_elements(CASE jsonb_typeof(job -> 'depends_on')
												WHEN 'array' THEN job -> 'depends_on'
												ELSE '[]' END) d),
				coalesce(job ->> 'on_dependency_failure', 'cancel'));
		END LOOP;
	EXCEPTION WHEN OTHERS THEN
		IF jname IS NULL THEN
			RAISE;
		END IF;
		GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, code = RETURNED_SQLSTATE,
								detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
		PERFORM jq._raise(format('job "%s" in the group: %s', jname, msg), code, detail, hint);
	END;

	RETURN QUERY SELECT names[p.i], ids[p.i] FROM generate_series(1, n) AS p(i) ORDER BY p.i;
END
$$;
