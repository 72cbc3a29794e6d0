/*-------------------------------------------------------------------------
 *
 * run_sql.c
 *	  jq_run_sql: a SQL job held by an external worker, run in the server
 *	  as the role that enqueued it.
 *
 * A worker that took a SQL job with jq_dequeue must not run its command
 * over its own connection: the job would run with the worker's rights,
 * which are often a superuser's or jq_admin's.  It calls jq_run_sql(id,
 * attempt) instead, in a transaction of its own.  The job runs with the
 * executors' own code (job_run.c): in a subtransaction, as its owner with
 * SECURITY_LOCAL_USERID_CHANGE, under its timeout, its settings undone and
 * the session reset after it; its outcome is recorded (outcome.c) in the
 * caller's transaction, so that its effects and its "succeeded" mark commit
 * together, as in an executor.  The job's row stays locked until then, so
 * a jq_cancel waits for the outcome.
 *
 * jq_run_sql_many(ids, attempts) does the same for a batch of held jobs,
 * as an executor runs its batch: it locks them all, runs them in order,
 * each in its own subtransaction, and records every outcome with one call
 * of jq._finish, so that one commit covers the batch.  It stops early
 * where an executor would commit before going on (a job ran SET
 * CONSTRAINTS), and where the caller asked to stop (a query cancel came
 * while a job ran: that job fails, the others stay held, for the caller
 * to release or run again).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "api.h"
#include "compat.h"
#include "executor.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "job_run.h"
#include "outcome.h"

/* columns of run_sql_held's statement */
enum
{
	Anum_held_kind = 1,
	Anum_held_command,
	Anum_held_owner,
	Anum_held_timeout,
	Anum_held_id,
	Anum_held_attempt
};

/*
 * The SQL jobs the caller holds in those attempts (jq._leased_jobs: locked
 * in id order), in the order given: jobs[i] is filled in and held[i] set
 * when the caller holds job ids[i] in attempt attempts[i] (the lease did
 * not expire, the job was not cancelled or finished).  Raises, before any
 * job runs, when the caller may not work on one of the jobs at all, or when
 * one is not a SQL job.
 */
static void
run_sql_held(Datum ids, Datum attempts, int n, JqJob *jobs, bool *held)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			caller = GetUserId();
	Datum		values[4];
	JqUserContext ctx;
	int			ret;

	values[0] = ObjectIdGetDatum(caller);
	values[1] = BoolGetDatum(jq_is_worker(caller));
	values[2] = ids;
	values[3] = attempts;

	SPI_connect();
	jq_as_owner(&ctx);
	if (plan == NULL)
	{
		Oid			types[4] = {OIDOID, BOOLOID, INT8ARRAYOID, INT4ARRAYOID};

		plan = jq_prepare("SELECT j.kind, j.command, j.owner, j.timeout, h.id, h.attempt"
						  " FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4))"
						  "   WITH ORDINALITY AS h(id, attempt, ord)"
						  " LEFT JOIN jq._leased_jobs($1, $2, $3, $4) j ON j.id = h.id"
						  " ORDER BY h.ord", 4, types);
	}
	ret = jq_execute_for_caller(plan, values, NULL, NULL);
	jq_as_caller(&ctx);
	if (ret != SPI_OK_SELECT || SPI_processed != (uint64) n)
		elog(ERROR, "could not read the jobs to run: %s", SPI_result_code_string(ret));

	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JqJob	   *job = &jobs[i];
		bool		isnull;
		Datum		d;
		char	   *kind;

		memset(job, 0, sizeof(*job));
		job->id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_held_id, &isnull));
		d = SPI_getbinval(tup, desc, Anum_held_kind, &isnull);
		held[i] = !isnull;
		if (isnull)
			continue;
		kind = TextDatumGetCString(d);
		if (strcmp(kind, "sql") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("job %lld is a %s job, not a SQL job", (long long) job->id, kind),
					 errhint("jq_run_sql runs SQL jobs only; run other jobs in the worker.")));

		job->attempts = DatumGetInt32(SPI_getbinval(tup, desc, Anum_held_attempt, &isnull));
		job->command = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, Anum_held_command));
		job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, Anum_held_owner, &isnull));
		d = SPI_getbinval(tup, desc, Anum_held_timeout, &isnull);
		job->timeout_ms = isnull ? 0 : jq_interval_ms(DatumGetIntervalP(d));
	}
	SPI_finish();
}

/*
 * Run held jobs in order, each as by an executor (job_run.c), then record
 * the outcomes of those that ran in the caller's transaction.  Stops after
 * a job that changed the transaction, so that no other job runs in it, and
 * after a job during which a query cancel arrived: the jobs after it are
 * left as they are, still held.  Returns how many of the jobs it dealt
 * with, those not held included.
 */
static int
run_sql_jobs(JqJob *jobs, const bool *held, int n)
{
	JqJob	   *ran = palloc(sizeof(JqJob) * Max(n, 1));
	int			nran = 0;
	int			done = 0;

	/* as in an executor, only the jobs' own SQL may be cancelled (job_run.c) */
	HOLD_CANCEL_INTERRUPTS();
	for (; done < n; done++)
	{
		JqJob	   *job = &jobs[done];

		/* a cancel that came between two jobs stops the batch too */
		if (QueryCancelPending)
		{
			QueryCancelPending = false;
			break;
		}
		if (!held[done])
			continue;
		jq_run_job(job, NULL);
		ran[nran++] = *job;
		if (job->changed_transaction || job->interrupted)
		{
			done++;
			break;
		}
	}

	/*
	 * A cancel that comes now, too late to stop a job, must not undo the
	 * outcomes of those that ran: the call ends as it would have.
	 */
	jq_finish_jobs(ran, nran, JQ_KINDS_ALL);
	QueryCancelPending = false;
	RESUME_CANCEL_INTERRUPTS();
	pfree(ran);
	return done;
}

PG_FUNCTION_INFO_V1(jq_run_sql);

/*
 * jq_run_sql(id, attempt): run the held SQL job as its owner and record its
 * outcome; true if it succeeded, false if the attempt failed (retried or
 * failed for good as jq_fail would), NULL if the caller does not hold the
 * job in that attempt.
 */
Datum
jq_run_sql(PG_FUNCTION_ARGS)
{
	Datum		id;
	Datum		attempt;
	JqJob		job;
	bool		held;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id and attempt must not be null"),
				 errhint("Pass the id and the attempt that jq_dequeue returned.")));
	PreventCommandDuringRecovery("jq_run_sql()");

	id = PG_GETARG_DATUM(0);
	attempt = PG_GETARG_DATUM(1);
	run_sql_held(PointerGetDatum(construct_array(&id, 1, INT8OID, sizeof(int64),
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
				 PointerGetDatum(construct_array(&attempt, 1, INT4OID, sizeof(int32),
												 true, TYPALIGN_INT)),
				 1, &job, &held);
	if (!held)
		PG_RETURN_NULL();
	(void) run_sql_jobs(&job, &held, 1);
	PG_RETURN_BOOL(job.outcome == JQ_OUTCOME_SUCCEEDED);
}

/* The elements of a one-dimensional array argument with no NULL; raises otherwise. */
static Datum *
run_sql_elements(ArrayType *array, Oid type, const char *name, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name),
				 errhint("Pass the ids and the attempts that jq_dequeue returned, each as a plain array.")));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(array, type, typlen, typbyval, typalign, &elems, &nulls, n);
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", name),
					 errhint("Pass the ids and the attempts that jq_dequeue returned.")));
	}
	return elems;
}

static int
run_sql_cmp_id(const void *a, const void *b)
{
	int64		x = DatumGetInt64(*(const Datum *) a);
	int64		y = DatumGetInt64(*(const Datum *) b);

	return (x > y) - (x < y);
}

PG_FUNCTION_INFO_V1(jq_run_sql_many);

/*
 * jq_run_sql_many(ids, attempts): jq_run_sql for many held jobs in one
 * call, their outcomes recorded together.  A row per job dealt with, in
 * the order given: succeeded true or false, NULL when the caller does not
 * hold it.  It stops early, leaving the jobs after that one out of its
 * answer and still held, after a job that changed the transaction (SET
 * CONSTRAINTS) and after a job during which a query cancel arrived.
 */
Datum
jq_run_sql_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *ids;
	Datum	   *sorted;
	int			n;
	int			nattempts;
	JqJob	   *jobs;
	bool	   *held;
	int			done;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids and attempts must not be null"),
				 errhint("Pass the ids and the attempts that jq_dequeue returned.")));
	ids = run_sql_elements(PG_GETARG_ARRAYTYPE_P(0), INT8OID, "ids", &n);
	(void) run_sql_elements(PG_GETARG_ARRAYTYPE_P(1), INT4OID, "attempts", &nattempts);
	if (n != nattempts)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids and attempts must have as many elements"),
				 errdetail("ids has %d, attempts %d.", n, nattempts),
				 errhint("Pass each job's attempt at the same position as its id.")));
	sorted = palloc(sizeof(Datum) * Max(n, 1));
	memcpy(sorted, ids, sizeof(Datum) * n);
	qsort(sorted, n, sizeof(Datum), run_sql_cmp_id);
	for (int i = 1; i < n; i++)
	{
		if (DatumGetInt64(sorted[i]) == DatumGetInt64(sorted[i - 1]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job %lld is given more than once",
							(long long) DatumGetInt64(sorted[i])),
					 errhint("Pass each job once.")));
	}
	PreventCommandDuringRecovery("jq_run_sql_many()");

	InitMaterializedSRF(fcinfo, 0);
	if (n == 0)
		return (Datum) 0;

	jobs = palloc(sizeof(JqJob) * n);
	held = palloc(sizeof(bool) * n);
	run_sql_held(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), n, jobs, held);
	done = run_sql_jobs(jobs, held, n);

	for (int i = 0; i < done; i++)
	{
		Datum		row[2];
		bool		rownulls[2] = {false, !held[i]};

		row[0] = ids[i];
		row[1] = BoolGetDatum(held[i] && jobs[i].outcome == JQ_OUTCOME_SUCCEEDED);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	return (Datum) 0;
}
