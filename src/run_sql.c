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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "api.h"
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
	Anum_held_timeout
};

/*
 * The SQL job the caller holds in that attempt, locked, as a JqJob; false
 * when it holds no such job (the lease expired, the job was cancelled or
 * finished).  Raises when the caller may not work on the job at all, or
 * when it is not a SQL job.
 */
static bool
run_sql_held(int64 id, int32 attempt, JqJob *job)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			caller = GetUserId();
	Datum		values[4];
	JqUserContext ctx;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	char	   *kind;
	int			ret;

	values[0] = ObjectIdGetDatum(caller);
	values[1] = BoolGetDatum(jq_is_worker(caller));
	values[2] = Int64GetDatum(id);
	values[3] = Int32GetDatum(attempt);

	SPI_connect();
	jq_as_owner(&ctx);
	if (plan == NULL)
	{
		Oid			types[4] = {OIDOID, BOOLOID, INT8OID, INT4OID};

		plan = jq_prepare("SELECT j.kind, j.command, j.owner, j.timeout"
						  " FROM jq._leased_job($1, $2, $3, $4) j", 4, types);
	}
	ret = jq_execute_for_caller(plan, values, NULL, NULL);
	jq_as_caller(&ctx);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read job %lld: %s", (long long) id,
			 SPI_result_code_string(ret));

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, Anum_held_kind, &isnull);
	if (isnull)
	{
		SPI_finish();
		return false;
	}
	kind = TextDatumGetCString(d);
	if (strcmp(kind, "sql") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("job %lld is a %s job, not a SQL job", (long long) id, kind),
				 errhint("jq_run_sql runs SQL jobs only; run other jobs in the worker.")));

	memset(job, 0, sizeof(*job));
	job->id = id;
	job->attempts = attempt;
	job->command = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, Anum_held_command));
	job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, Anum_held_owner, &isnull));
	d = SPI_getbinval(tup, desc, Anum_held_timeout, &isnull);
	job->timeout_ms = isnull ? 0 : jq_interval_ms(DatumGetIntervalP(d));
	SPI_finish();
	return true;
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
	JqJob		job;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id and attempt must not be null"),
				 errhint("Pass the id and the attempt that jq_dequeue returned.")));
	PreventCommandDuringRecovery("jq_run_sql()");

	if (!run_sql_held(PG_GETARG_INT64(0), PG_GETARG_INT32(1), &job))
		PG_RETURN_NULL();

	/* as in an executor, only the job's own SQL may be cancelled */
	HOLD_CANCEL_INTERRUPTS();
	jq_run_job(&job, NULL);
	RESUME_CANCEL_INTERRUPTS();

	jq_finish_jobs(&job, 1, JQ_KINDS_ALL);
	PG_RETURN_BOOL(job.outcome == JQ_OUTCOME_SUCCEEDED);
}
