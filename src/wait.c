/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  jq_wait() and jq_wait_any(): wait until jobs finish.
 *
 * A job finishes when the row that records its outcome in jq.job_history
 * commits.  The trigger on jq.job_history notes the job, and the commit
 * callback of stats.c broadcasts a condition variable in shared memory:
 * one of JQ_WAIT_CVS, chosen by job id, and the one of jq_wait_any, which
 * every finishing commit wakes.  A waiter prepares to sleep on its
 * condition variable, looks for the outcome in a new snapshot, and sleeps
 * only if it is not there, so no commit is missed and nothing polls.  An
 * outcome whose transaction rolls back wakes no one, or is not found.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "api.h"
#include "internal_sql.h"
#include "monitor.h"
#include "shmem.h"

#define JQ_WAIT_CVS 64

typedef struct WaitShared
{
	ConditionVariable by_job[JQ_WAIT_CVS];
	ConditionVariable any;
} WaitShared;

static WaitShared *wait_shared = NULL;

Size
jq_wait_shmem_size(void)
{
	return MAXALIGN(sizeof(WaitShared));
}

/* Called with AddinShmemInitLock held. */
void
jq_wait_shmem_init(void)
{
	bool		found;

	wait_shared = ShmemInitStruct("job_queue waits", sizeof(WaitShared), &found);
	if (!found)
	{
		for (int i = 0; i < JQ_WAIT_CVS; i++)
			ConditionVariableInit(&wait_shared->by_job[i]);
		ConditionVariableInit(&wait_shared->any);
	}
}

int
jq_wait_cv_index(int64 job_id)
{
	return (int) ((uint64) job_id % JQ_WAIT_CVS);
}

/* Wake the sessions waiting for jobs: cv_mask has a bit per condition variable. */
void
jq_wait_wake(uint64 cv_mask)
{
	if (wait_shared == NULL || cv_mask == 0)
		return;
	for (int i = 0; i < JQ_WAIT_CVS; i++)
	{
		if (cv_mask & (UINT64CONST(1) << i))
			ConditionVariableBroadcast(&wait_shared->by_job[i]);
	}
	ConditionVariableBroadcast(&wait_shared->any);
}

/* the first of the jobs $1 that does not exist or that the caller ($2, $3: sees all) may not see */
static const char *const wait_check_sql =
"SELECT i.id "
"FROM pg_catalog.unnest($1) AS i(id) "
"LEFT JOIN jq.job j ON j.id OPERATOR(pg_catalog.=) i.id "
"LEFT JOIN jq.job_history h ON h.id OPERATOR(pg_catalog.=) i.id "
"WHERE i.id IS NULL OR coalesce(j.owner, h.owner) IS NULL "
"   OR (coalesce(j.owner, h.owner) OPERATOR(pg_catalog.<>) $2 AND NOT $3) "
"LIMIT 1";

/* its column */
#define Anum_check_id 1

/* the first of the jobs $1 to have finished */
static const char *const wait_outcome_sql =
"SELECT h.id, h.state::pg_catalog.text, h.result, h.errors -> -1 ->> 'message', "
"	h.attempts, h.finished_at, h.progress "
"FROM jq.job_history h "
"WHERE h.id OPERATOR(pg_catalog.=) ANY ($1) "
"ORDER BY h.finished_at, h.id LIMIT 1";

/* its columns, those of a jq_outcome in order */
#define Natts_outcome 7

static SPIPlanPtr
wait_plan(SPIPlanPtr *plan, const char *sql, int nargs)
{
	Oid			types[3] = {INT8ARRAYOID, OIDOID, BOOLOID};

	if (*plan == NULL)
		*plan = jq_prepare(sql, nargs, types);
	return *plan;
}

/* Raise unless every job exists and the caller may see it. */
static void
wait_check_jobs(Datum ids, Oid caller)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[3] = {ids, ObjectIdGetDatum(caller),
	BoolGetDatum(jq_is_admin(caller))};
	char		nulls[3] = {' ', ' ', ' '};
	HeapTuple	tup;
	bool		isnull;
	Datum		id;

	if (jq_execute_plan(wait_plan(&plan, wait_check_sql, 3), args, nulls, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up jobs");
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	id = SPI_getbinval(tup, SPI_tuptable->tupdesc, Anum_check_id, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job id must not be null")));
	/* another role's job is as absent as a missing one */
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("job " INT64_FORMAT " does not exist", DatumGetInt64(id)),
			 errhint("A role waits only for its own jobs, unless it is a member of jq_admin; finished jobs are kept for jq.history_retention.")));
}

/* The outcome of the first of the jobs to have finished, as a jq_outcome, or NULL. */
static HeapTuple
wait_outcome(Datum ids, TupleDesc result_desc)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[Natts_outcome];
	bool		nulls[Natts_outcome];

	if (jq_execute_plan(wait_plan(&plan, wait_outcome_sql, 1), &ids, NULL, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the outcome of jobs");
	if (SPI_processed == 0)
		return NULL;
	for (int i = 0; i < Natts_outcome; i++)
		values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &nulls[i]);
	return heap_form_tuple(result_desc, values, nulls);
}

/*
 * Wait until one of the jobs (an int8[]) has finished, or until the timeout
 * (NULL: none) has passed; its outcome, or NULL.
 */
static Datum
wait_for(FunctionCallInfo fcinfo, Datum ids, ConditionVariable *cv)
{
	TupleDesc	result_desc;
	TimestampTz deadline = 0;
	HeapTuple	outcome = NULL;
	JqUserContext ctx;
	MemoryContext cxt = CurrentMemoryContext;

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	result_desc = BlessTupleDesc(result_desc);
	if (wait_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jq_wait needs job_queue in shared_preload_libraries"),
				 errhint("Add job_queue to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("jq_wait cannot see jobs finish in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errhint("Call it in a READ COMMITTED transaction, or on its own.")));
	if (!PG_ARGISNULL(1))
	{
		Interval   *timeout = PG_GETARG_INTERVAL_P(1);
		Datum		now = TimestampTzGetDatum(GetCurrentTimestamp());

		deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, now,
														   IntervalPGetDatum(timeout)));
	}

	SPI_connect();
	jq_as_owner(&ctx);
	wait_check_jobs(ids, ctx.saved_userid);
	for (;;)
	{
		long		timeout_ms = -1;

		ConditionVariablePrepareToSleep(cv);
		outcome = wait_outcome(ids, result_desc);
		if (outcome != NULL)
			break;
		if (deadline != 0)
		{
			timeout_ms = jq_ms_until(deadline);
			if (GetCurrentTimestamp() >= deadline)
				break;
		}
		jq_as_caller(&ctx);
		(void) ConditionVariableTimedSleep(cv, timeout_ms, PG_WAIT_EXTENSION);
		jq_as_owner(&ctx);
	}
	ConditionVariableCancelSleep();
	jq_as_caller(&ctx);
	if (outcome != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		outcome = heap_copytuple(outcome);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	if (outcome == NULL)
		PG_RETURN_NULL();
	return HeapTupleGetDatum(outcome);
}

PG_FUNCTION_INFO_V1(jq_wait);

/* jq_wait(id, timeout): the outcome of a job once it has finished, or NULL at the timeout. */
Datum
jq_wait(PG_FUNCTION_ARGS)
{
	Datum		id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job id must not be null")));
	id = PG_GETARG_DATUM(0);
	return wait_for(fcinfo,
					PointerGetDatum(construct_array(&id, 1, INT8OID, 8, FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE)),
					wait_shared ? &wait_shared->by_job[jq_wait_cv_index(DatumGetInt64(id))] : NULL);
}

PG_FUNCTION_INFO_V1(jq_wait_any);

/* jq_wait_any(ids, timeout): the outcome of the first of the jobs to finish, or NULL. */
Datum
jq_wait_any(PG_FUNCTION_ARGS)
{
	ArrayType  *ids = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);

	if (ids == NULL || ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jq_wait_any needs at least one job id")));
	return wait_for(fcinfo, PointerGetDatum(ids), wait_shared ? &wait_shared->any : NULL);
}
