/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  Recording how jobs run in a server process ended.
 *
 * The executors, and jq_run_sql for external workers, fill in a JqJob per
 * job they ran (job_run.c, shell_job.c) and record the outcomes here, in
 * one call of jq._finish per batch, in the transaction that holds the jobs'
 * effects.  jq._finish owns the transitions that follow a run: running to
 * succeeded, failed, cancelled, back to ready (released), or to a retry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "internal_sql.h"
#include "job_run.h"
#include "outcome.h"
#include "wakeup.h"

static Datum
outcome_text_array(char **strs, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = strs[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strs[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID,
											  -1, false, TYPALIGN_INT));
}

static Datum
outcome_datum_array(Datum *elems, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(elems, n, type, typlen, typbyval, typalign));
}

/*
 * Record the outcome of jobs in the current transaction; at its commit,
 * wake the scheduler, and the executors of wake_kinds, for the earliest
 * retry.
 */
void
jq_finish_jobs(const JqJob *jobs, int n, int wake_kinds)
{
	static SPIPlanPtr plan = NULL;
	static const char *const outcome_names[] = {"succeeded", "error", "cancelled",
	"rejected", "released"};
	Datum		values[8];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	char	  **outcomes = palloc(sizeof(char *) * n);
	char	  **results = palloc(sizeof(char *) * n);
	char	  **messages = palloc(sizeof(char *) * n);
	char	  **codes = palloc(sizeof(char *) * n);
	Datum	   *timeouts = palloc(sizeof(Datum) * n);
	Datum	   *started = palloc(sizeof(Datum) * n);
	Datum	   *finished = palloc(sizeof(Datum) * n);
	bool		isnull;
	Datum		next_retry;
	JqUserContext ctx;
	int			ret;

	if (n == 0)
		return;

	for (int i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(jobs[i].id);
		outcomes[i] = (char *) outcome_names[jobs[i].outcome];
		results[i] = jobs[i].result;
		messages[i] = jobs[i].error;
		codes[i] = jobs[i].error_code;
		timeouts[i] = BoolGetDatum(jobs[i].timed_out);
		started[i] = TimestampTzGetDatum(jobs[i].started);
		finished[i] = TimestampTzGetDatum(jobs[i].finished);
	}

	SPI_connect();
	jq_as_owner(&ctx);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (IsBackgroundWorker)
		pgstat_report_activity(STATE_RUNNING, "recording job outcomes");
	if (plan == NULL)
	{
		Oid			types[8] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, BOOLARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};

		plan = jq_prepare("SELECT jq._finish($1, $2, $3::pg_catalog.jsonb[], $4, $5, $6, $7, $8)",
						  8, types);
	}
	values[0] = outcome_datum_array(ids, n, INT8OID);
	values[1] = outcome_text_array(outcomes, n);
	values[2] = outcome_text_array(results, n);
	values[3] = outcome_text_array(messages, n);
	values[4] = outcome_text_array(codes, n);
	values[5] = outcome_datum_array(timeouts, n, BOOLOID);
	values[6] = outcome_datum_array(started, n, TIMESTAMPTZOID);
	values[7] = outcome_datum_array(finished, n, TIMESTAMPTZOID);

	ret = jq_execute_plan(plan, values, NULL, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not record job outcomes: %s", SPI_result_code_string(ret));
	next_retry = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		jq_wake_at_commit_for(DatumGetTimestampTz(next_retry), wake_kinds);

	PopActiveSnapshot();
	jq_as_caller(&ctx);
	SPI_finish();
}
