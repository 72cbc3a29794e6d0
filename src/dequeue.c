/*-------------------------------------------------------------------------
 *
 * dequeue.c
 *	  jq._jq_dequeue: which ready jobs an external worker claims.
 *
 * jq_dequeue reaches this through jq_api_call, as the extension owner with
 * the calling role and whether it may take every role's jobs (a member of
 * jq_worker or jq_admin) as the first arguments.  The jobs it picks are
 * claimed by jq._claim, the one statement that moves jobs from ready to
 * running for executors and workers alike, under the worker's lease.
 *
 * Limited queues (paused, or with a concurrency or rate limit) are claimed
 * first, each under its lock, by jq._claim_limited; the others by one
 * statement planned once per backend, whose shape depends on the request:
 *
 *	 - one queue: the jobs of that queue in claim order, read from the
 *	   per-queue index, the kinds asked for filtered as they come;
 *	 - otherwise: for each kind asked for, its jobs in claim order from the
 *	   claim index, then the first of them all.  An index gives claim order
 *	   for one kind at a time, so this reads at most max_jobs jobs of each
 *	   kind instead of sorting the backlog; the jobs of a kind that lose to
 *	   the others stay locked, unclaimed, until the claim's transaction
 *	   ends.
 *
 * A shell job whose owner lost the right to run programs is not handed
 * out: it fails at once.  The jobs come back in claim order (priority,
 * run_at, id).
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
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "api.h"
#include "compat.h"
#include "executor.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "shmem.h"
#include "wakeup.h"

/* the parameters of the claim statements, in order */
enum
{
	Param_caller = 1,			/* oid */
	Param_privileged,			/* bool: every role's jobs */
	Param_queue,				/* text */
	Param_queues,				/* text[] */
	Param_max_jobs,				/* int4 */
	Param_want_sql,				/* bool */
	Param_want_shell,			/* bool */
	Param_want_task,			/* bool */
	Param_tasks,				/* text[]: the task names taken, NULL for all */
	Param_holder,				/* text: the lease's owner */
	Param_expires,				/* timestamptz: the lease's end */
	Param_kinds,				/* text[]: for jq._claim_limited */
	DQ_NPARAMS = Param_kinds
};

/* the columns of the claimed jobs: jq_dequeue's, then what orders them */
enum
{
	Anum_dq_id = 1,
	Anum_dq_queue,
	Anum_dq_kind,
	Anum_dq_command,
	Anum_dq_argv,
	Anum_dq_env,
	Anum_dq_working_dir,
	Anum_dq_payload,
	Anum_dq_attempt,
	Anum_dq_max_attempts,
	Anum_dq_timeout,
	Anum_dq_lease_expires_at,
	Anum_dq_owner,
	Anum_dq_priority,
	Anum_dq_run_at,
	DQ_NCOLUMNS = Anum_dq_run_at
};

#define DQ_OUTPUT \
"SELECT c.id, c.queue, c.kind, c.command, c.argv, c.env, c.working_dir, c.payload, " \
"	c.attempts, c.max_attempts, c.timeout, c.lease_expires_at, " \
"	c.owner, c.priority, c.run_at "

/* what every job a worker may claim satisfies, beyond its kind and queue */
#define DQ_CLAIMABLE \
"j.state = 'ready' AND NOT j.limited AND j.run_at <= pg_catalog.now() " \
"AND ($2 OR j.owner = $1) " \
"AND NOT EXISTS (SELECT FROM jq.queue q WHERE q.name = j.queue AND q.limited) "

/* jobs of one kind in claim order, by the claim index: $6, $7, $8 say which */
#define DQ_KIND_CANDIDATES(kind, want, extra) \
"	SELECT j.id, j.priority, j.run_at FROM jq.job j " \
"	WHERE " DQ_CLAIMABLE " AND j.kind = '" kind "' AND " want extra \
"	  AND ($4 IS NULL OR j.queue = ANY ($4)) " \
"	ORDER BY j.kind, j.priority, j.run_at, j.id " \
"	LIMIT $5 FOR UPDATE SKIP LOCKED "

#define DQ_TASK_NAMES " AND ($9 IS NULL OR j.command = ANY ($9)) "

/* the claim itself, of the jobs in candidate */
#define DQ_CLAIM \
"claimed AS ( " \
"	SELECT * FROM jq._claim(ARRAY(SELECT c.id FROM candidate c " \
"								  ORDER BY c.priority, c.run_at, c.id LIMIT $5), " \
"							NULL, $10, $11) " \
") " \
DQ_OUTPUT "FROM claimed c"

static const char *const dq_any_queue_sql =
"WITH sql_jobs AS (" DQ_KIND_CANDIDATES("sql", "$6", "") "), "
"shell_jobs AS (" DQ_KIND_CANDIDATES("shell", "$7", "") "), "
"task_jobs AS (" DQ_KIND_CANDIDATES("task", "$8", DQ_TASK_NAMES) "), "
"candidate AS (SELECT * FROM sql_jobs UNION ALL SELECT * FROM shell_jobs "
"			  UNION ALL SELECT * FROM task_jobs), "
DQ_CLAIM;

static const char *const dq_one_queue_sql =
"WITH candidate AS ( "
"	SELECT j.id, j.priority, j.run_at FROM jq.job j "
"	WHERE " DQ_CLAIMABLE " AND j.queue = $3 "
"	  AND ((j.kind = 'sql' AND $6) OR (j.kind = 'shell' AND $7) "
"		   OR (j.kind = 'task' AND $8" DQ_TASK_NAMES ")) "
"	ORDER BY j.queue, j.limited, j.priority, j.run_at, j.id "
"	LIMIT $5 FOR UPDATE SKIP LOCKED "
"), "
DQ_CLAIM;

/* jobs of limited queues, claimed first; run only when a queue has settings */
static const char *const dq_limited_sql =
"WITH claimed AS ( "
"	SELECT l.* FROM jq._claim_limited($5, $12, "
"		CASE WHEN $3 IS NOT NULL THEN ARRAY[$3] ELSE $4 END, "
"		CASE WHEN NOT $2 THEN $1 END, NULL, 0, 1, $10, $11, $9) l "
"	WHERE EXISTS (SELECT FROM jq.queue) "
") "
DQ_OUTPUT "FROM claimed c";

/* Argument arg of the call as parameter param of the claim statements. */
static void
dq_param(FunctionCallInfo fcinfo, int arg, int param, Datum *values, char *nulls)
{
	values[param - 1] = PG_ARGISNULL(arg) ? (Datum) 0 : PG_GETARG_DATUM(arg);
	nulls[param - 1] = PG_ARGISNULL(arg) ? 'n' : ' ';
}

/* one claimed job, for the sort into claim order */
typedef struct DqJob
{
	int32		priority;
	TimestampTz run_at;
	int64		id;
	HeapTuple	tuple;
} DqJob;

static int
dq_job_cmp(const void *a, const void *b)
{
	const DqJob *x = a;
	const DqJob *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	if (x->run_at != y->run_at)
		return x->run_at < y->run_at ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

static SPIPlanPtr
dq_plan(const char *sql)
{
	static const Oid types[] = {OIDOID, BOOLOID, TEXTOID, TEXTARRAYOID, INT4OID,
		BOOLOID, BOOLOID, BOOLOID, TEXTARRAYOID, TEXTOID, TIMESTAMPTZOID, TEXTARRAYOID};

	StaticAssertStmt(lengthof(types) == DQ_NPARAMS, "one type per parameter");
	return jq_prepare(sql, DQ_NPARAMS, (Oid *) types);
}

/*
 * Which kinds are asked for, checked: kinds NULL means SQL and shell jobs,
 * and task jobs when tasks names some.
 */
static void
dq_kinds(ArrayType *kinds, bool tasks_given, bool *want)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (kinds == NULL)
	{
		want[JQ_KIND_SQL] = want[JQ_KIND_SHELL] = true;
		want[JQ_KIND_TASK] = tasks_given;
		return;
	}
	want[JQ_KIND_SQL] = want[JQ_KIND_SHELL] = want[JQ_KIND_TASK] = false;
	deconstruct_array(kinds, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *kind = nulls[i] ? NULL : TextDatumGetCString(elems[i]);

		if (kind && strcmp(kind, "sql") == 0)
			want[JQ_KIND_SQL] = true;
		else if (kind && strcmp(kind, "shell") == 0)
			want[JQ_KIND_SHELL] = true;
		else if (kind && strcmp(kind, "task") == 0)
			want[JQ_KIND_TASK] = true;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown job kind in %s",
							OidOutputFunctionCall(F_ARRAY_OUT, PointerGetDatum(kinds))),
					 errhint("The kinds of jobs are sql, shell and task.")));
	}
}

/* Check jq_dequeue's arguments as jq_dequeue's documentation says. */
static void
dq_check(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(3) || PG_GETARG_INT32(3) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_jobs must be at least 1")));
	if (PG_ARGISNULL(4) || jq_interval_ms(PG_GETARG_INTERVAL_P(4)) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be a positive interval"),
				 errhint("Pick a lease longer than the time between two jq_heartbeat calls.")));
	if (!PG_ARGISNULL(7) && !PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue and queues cannot both be given"),
				 errhint("Pass queue => NULL to take jobs from the queues listed in queues.")));
	if (!PG_ARGISNULL(8) && array_contains_nulls(PG_GETARG_ARRAYTYPE_P(8)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tasks must not contain nulls")));
}

/*
 * Without job_queue preloaded no scheduler runs: take back here the jobs
 * in-server executors held when the server stopped, and those of workers
 * whose lease expired.
 */
static void
dq_reclaim_without_scheduler(void)
{
	static SPIPlanPtr plan = NULL;
	int			ret;

	if (plan == NULL)
		plan = jq_prepare("SELECT jq._reclaim(NULL, NULL, 'server restarted without job_queue"
						  " in shared_preload_libraries'), jq._expire_leases()", 0, NULL);
	ret = jq_execute_plan(plan, NULL, NULL, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not take back jobs: %s", SPI_result_code_string(ret));
}

/* Run a claim statement, adding the jobs it claimed to jobs[*n...]. */
static void
dq_claim(SPIPlanPtr plan, Datum *values, const char *nulls, DqJob *jobs, int *n)
{
	int			ret = jq_execute_plan(plan, values, nulls, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not claim jobs: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		DqJob	   *job = &jobs[(*n)++];
		bool		isnull;

		job->id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_dq_id, &isnull));
		job->priority = DatumGetInt32(SPI_getbinval(tup, desc, Anum_dq_priority, &isnull));
		job->run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_dq_run_at, &isnull));
		job->tuple = SPI_copytuple(tup);
	}
}

/*
 * Fail, unrun, the shell jobs among jobs whose owner may no longer run
 * programs; returns how many jobs are left, in place.
 */
static int
dq_refuse_shell(DqJob *jobs, int n, TupleDesc desc)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *refused = palloc(sizeof(Datum) * n);
	int			nrefused = 0;
	int			kept = 0;

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *kind = TextDatumGetCString(heap_getattr(jobs[i].tuple, Anum_dq_kind,
															desc, &isnull));
		Oid			owner = DatumGetObjectId(heap_getattr(jobs[i].tuple, Anum_dq_owner,
														  desc, &isnull));

		if (strcmp(kind, "shell") == 0 && !jq_may_run_shell(owner))
			refused[nrefused++] = Int64GetDatum(jobs[i].id);
		else
			jobs[kept++] = jobs[i];
	}
	if (nrefused > 0)
	{
		Oid			types[1] = {INT8ARRAYOID};
		Datum		values[1];
		int			ret;

		if (plan == NULL)
			plan = jq_prepare("SELECT jq._finish_all($1, 'rejected', 'the job''s owner may no"
							  " longer run shell jobs: it needs the privileges of"
							  " pg_execute_server_program', false)", 1, types);
		values[0] = PointerGetDatum(construct_array(refused, nrefused, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		ret = jq_execute_plan(plan, values, NULL, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not fail refused jobs: %s", SPI_result_code_string(ret));
	}
	return kept;
}

PG_FUNCTION_INFO_V1(jq_dequeue_claim);

/*
 * jq._jq_dequeue(caller, privileged, queue, max_jobs, lease, worker, kinds,
 * queues, tasks): claim up to max_jobs jobs for an external worker.
 */
Datum
jq_dequeue_claim(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[3];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max_jobs;
	bool		want[3];
	Datum		values[DQ_NPARAMS];
	char		nulls[DQ_NPARAMS];
	DqJob	   *jobs;
	int			n = 0;
	TupleDesc	desc = NULL;
	TimestampTz expires;

	dq_check(fcinfo);
	max_jobs = PG_GETARG_INT32(3);
	dq_kinds(PG_ARGISNULL(6) ? NULL : PG_GETARG_ARRAYTYPE_P(6), !PG_ARGISNULL(8), want);
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	if (jq_shared == NULL)
		dq_reclaim_without_scheduler();

	expires = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(GetCurrentTimestamp()),
													  PG_GETARG_DATUM(4)));
	memset(nulls, ' ', sizeof(nulls));
	dq_param(fcinfo, 0, Param_caller, values, nulls);
	dq_param(fcinfo, 1, Param_privileged, values, nulls);
	dq_param(fcinfo, 2, Param_queue, values, nulls);
	dq_param(fcinfo, 7, Param_queues, values, nulls);
	dq_param(fcinfo, 8, Param_tasks, values, nulls);
	dq_param(fcinfo, 6, Param_kinds, values, nulls);
	values[Param_want_sql - 1] = BoolGetDatum(want[JQ_KIND_SQL]);
	values[Param_want_shell - 1] = BoolGetDatum(want[JQ_KIND_SHELL]);
	values[Param_want_task - 1] = BoolGetDatum(want[JQ_KIND_TASK]);
	values[Param_holder - 1] = PG_ARGISNULL(5) ?
		CStringGetTextDatum(psprintf("external worker %d", MyProcPid)) : PG_GETARG_DATUM(5);
	values[Param_expires - 1] = TimestampTzGetDatum(expires);

	jobs = palloc(sizeof(DqJob) * max_jobs);
	if (plans[0] == NULL)
		plans[0] = dq_plan(dq_limited_sql);
	values[Param_max_jobs - 1] = Int32GetDatum(max_jobs);
	dq_claim(plans[0], values, nulls, jobs, &n);
	desc = SPI_tuptable->tupdesc;
	if (n < max_jobs)
	{
		bool		one_queue = !PG_ARGISNULL(2);

		if (plans[1 + one_queue] == NULL)
			plans[1 + one_queue] = dq_plan(one_queue ? dq_one_queue_sql : dq_any_queue_sql);
		values[Param_max_jobs - 1] = Int32GetDatum(max_jobs - n);
		dq_claim(plans[1 + one_queue], values, nulls, jobs, &n);
	}

	n = dq_refuse_shell(jobs, n, desc);
	qsort(jobs, n, sizeof(DqJob), dq_job_cmp);
	for (int i = 0; i < n; i++)
	{
		Datum		row[DQ_NCOLUMNS];
		bool		rownulls[DQ_NCOLUMNS];

		heap_deform_tuple(jobs[i].tuple, desc, row, rownulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();

	if (n > 0)
		jq_wake_at_commit_for(expires, JQ_KINDS_ALL);
	return (Datum) 0;
}
