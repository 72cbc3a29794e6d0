/*-------------------------------------------------------------------------
 *
 * job_run.c
 *	  Run one SQL job inside the executor's transaction.
 *
 * A job runs in a subtransaction of its own, as the role that enqueued it
 * (SECURITY_LOCAL_USERID_CHANGE: the job cannot SET ROLE or SET SESSION
 * AUTHORIZATION back to the executor's superuser), under a GUC nest level
 * so that no setting it makes outlives it, and under its own timeout.  If
 * the job succeeds its subtransaction is kept, so its effects commit
 * together with its "succeeded" mark; if it fails they are rolled back and
 * the error is kept for the job's row.
 *
 * Cancel interrupts (timeouts, jq_cancel, pg_cancel_backend) are held off
 * everywhere in the executor except while a job's own SQL runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/be-fsstubs.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "guc.h"
#include "job_run.h"
#include "shmem.h"
#include "wakeup.h"

/* rows of a job's last statement kept as its result */
#define JQ_RESULT_MAX_ROWS 100

/*
 * A job's timer cancels its statement when its timeout is reached; a job
 * that traps the cancellation (EXCEPTION WHEN query_canceled) and goes on
 * is stopped for good jq.shell_kill_grace later: the process exits, its
 * transaction rolls back, and the job is charged the attempt, as when a
 * job terminates its executor.
 */
static TimeoutId job_timeout_id;
static TimeoutId job_kill_id;
static bool job_timers_registered = false;
static volatile sig_atomic_t job_timed_out = false;

/*
 * Likewise, a job that traps the cancellation jq_cancel asked for is
 * stopped for good about jq.shell_kill_grace later: while a job runs in an
 * executor, a watchdog looks at the executor's cancel requests every second
 * (PostgreSQL 15 and later).
 */
#define JOB_WATCHDOG_MS 1000
#ifdef JQ_HAVE_PERIODIC_TIMEOUT
static TimeoutId job_watchdog_id;
#endif
static volatile JqExecutor *job_watched_slot = NULL;
static int64 job_watched_id = 0;
static volatile sig_atomic_t job_cancel_ticks = 0;

/*
 * Whether a job is running now, and whether it changed what the rest of
 * its transaction does in a way that no subtransaction undoes (SET
 * CONSTRAINTS): the next job, which may be another role's, must not run
 * in that transaction.
 */
static bool job_in_progress = false;
static bool job_xact_changed = false;
static bool job_xact_callback_registered = false;

/*
 * The search_path jobs get: in an executor, the database's, captured before
 * the executor pinned its own; NULL in a backend running a job for an
 * external worker (jq_run_sql), which gives jobs its session's default.
 */
static char *job_search_path = NULL;

static void
job_timeout_handler(void)
{
	job_timed_out = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

static void
job_kill_handler(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

#ifdef JQ_HAVE_PERIODIC_TIMEOUT
static void
job_watchdog_handler(void)
{
	if (job_watched_slot == NULL || !jq_cancel_requested(job_watched_slot, job_watched_id))
		return;
	job_cancel_ticks++;
	if (job_cancel_ticks * JOB_WATCHDOG_MS > jq_shell_kill_grace_ms)
		job_kill_handler();
}
#endif

/*
 * Start the timers of a job: its timeout, if it has one, and in an
 * executor (slot) the watchdog of cancel requests; job_stop_timers stops
 * them.
 */
static void
job_start_timers(const JqJob *job, volatile JqExecutor *slot)
{
	if (!job_timers_registered)
	{
		job_timeout_id = RegisterTimeout(USER_TIMEOUT, job_timeout_handler);
		job_kill_id = RegisterTimeout(USER_TIMEOUT, job_kill_handler);
#ifdef JQ_HAVE_PERIODIC_TIMEOUT
		job_watchdog_id = RegisterTimeout(USER_TIMEOUT, job_watchdog_handler);
#endif
		job_timers_registered = true;
	}
	if (job->timeout_ms > 0)
	{
		enable_timeout_after(job_timeout_id, (int) Min(job->timeout_ms, INT_MAX));
		enable_timeout_after(job_kill_id,
							 (int) Min(job->timeout_ms + jq_shell_kill_grace_ms, INT_MAX));
	}
#ifdef JQ_HAVE_PERIODIC_TIMEOUT
	if (slot != NULL)
	{
		job_watched_slot = slot;
		job_watched_id = job->id;
		job_cancel_ticks = 0;
		enable_timeout_every(job_watchdog_id,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), JOB_WATCHDOG_MS),
							 JOB_WATCHDOG_MS);
	}
#endif
}

static void
job_stop_timers(void)
{
	if (!job_timers_registered)
		return;
	disable_timeout(job_timeout_id, false);
	disable_timeout(job_kill_id, false);
#ifdef JQ_HAVE_PERIODIC_TIMEOUT
	disable_timeout(job_watchdog_id, false);
#endif
	job_watched_slot = NULL;
}

static void
job_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		job_xact_changed = false;
}

/*
 * The utility hook saw a statement that changes the rest of the
 * transaction (SET CONSTRAINTS); it matters only inside a job.
 */
void
jq_job_changed_transaction(void)
{
	if (job_in_progress)
		job_xact_changed = true;
}

/*
 * Called once an executor is connected, before it pins its own search_path
 * (jq_worker_settings): jobs get the database's back.
 */
void
jq_job_run_init(void)
{
	job_search_path = MemoryContextStrdup(TopMemoryContext,
										  GetConfigOption("search_path", false, false));
}

/*
 * Reset what a job may have left in the session, so that nothing reaches
 * the next job, run as another role, nor the internal SQL that follows:
 * what DISCARD ALL resets but settings (a GUC nest level undoes the job's),
 * plus large-object descriptors, which belong to the transaction the next
 * job shares, and the seed of random().
 */
static void
job_reset_session(void)
{
	double		seed;

	/* cursors (a WITH HOLD cursor would otherwise run its query at commit) */
	PortalHashTableDeleteAll();
	DropAllPreparedStatements();
	ResetTempTableNamespace();
	ResetSequenceCaches();
	/* session and transaction advisory locks */
	LockReleaseAll(USER_LOCKMETHOD, true);
	AtEOXact_LargeObject(true);
	Async_UnlistenAll();
	jq_listen_stop_at_commit();

	/* a seed the next job cannot know, whatever setseed() this one called */
	if (!pg_strong_random(&seed, sizeof(seed)) || isnan(seed))
		seed = (double) GetCurrentTimestamp();
	seed = fmod(fabs(seed), 1.0);
	(void) DirectFunctionCall1(setseed, Float8GetDatum(seed));
}

/*
 * The rows of the last statement as a JSON array of objects, or NULL when
 * it returned none.  Runs inside the job's subtransaction, so a result that
 * cannot be stored fails the job, not the executor.
 */
static char *
job_result_json(void)
{
	SPITupleTable *tt = SPI_tuptable;
	TupleDesc	tupdesc;
	StringInfoData buf;
	uint64		nrows;

	if (tt == NULL)
		return NULL;

	tupdesc = BlessTupleDesc(tt->tupdesc);
	nrows = Min(SPI_processed, JQ_RESULT_MAX_ROWS);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (uint64 i = 0; i < nrows; i++)
	{
		Datum		row = heap_copy_tuple_as_datum(tt->vals[i], tupdesc);
		text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendBinaryStringInfo(&buf, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
	}
	appendStringInfoChar(&buf, ']');

	/* reject what jsonb cannot hold (a \u0000 escape) while the job can still fail */
	(void) DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	return buf.data;
}

/* The job's statements, as its owner, with its timeout. */
static char *
job_execute(JqJob *job, volatile JqExecutor *slot, MemoryContext resultcxt)
{
	int			ret;
	char	   *json;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u that enqueued the job no longer exists",
						job->owner)));

	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/* a cancel that arrived before this job is not meant for it */
	QueryCancelPending = false;
	RESUME_CANCEL_INTERRUPTS();
	if (jq_cancel_requested(slot, job->id))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling job %lld on request", (long long) job->id)));
	ret = SPI_execute(job->command, false, 0);

	/*
	 * Deferred triggers fire now, as the job's owner and inside its
	 * subtransaction, not at the executor's commit as the executor.
	 */
	if (ret >= 0)
		AfterTriggerFireDeferred();
	HOLD_CANCEL_INTERRUPTS();
	PopActiveSnapshot();

	if (ret == SPI_ERROR_TRANSACTION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("a job cannot run transaction control statements"),
				 errdetail("Each job runs in a transaction that the executor commits together with the job's result."),
				 errhint("Split the work into several jobs.")));
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("could not run job: %s", SPI_result_code_string(ret))));

	json = job_result_json();
	if (json)
		json = MemoryContextStrdup(resultcxt, json);
	SPI_finish();
	return json;
}

/*
 * Run one claimed job and fill in its outcome, result or error.  The caller
 * has a transaction open and cancel interrupts held; slot is this
 * executor's shared-memory slot, where jq_cancel leaves its requests.
 */
void
jq_run_job(JqJob *job, volatile JqExecutor *slot)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			saved_userid;
	int			saved_sec_context;
	int			saved_holdoff = QueryCancelHoldoffCount;

	if (job_xact_changed)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("a job run earlier in this transaction changed how the rest of it checks constraints"),
				 errdetail("That job ran SET CONSTRAINTS, which no subtransaction undoes."),
				 errhint("Commit the transaction before running the next job.")));
	if (!job_xact_callback_registered)
	{
		RegisterXactCallback(job_xact_callback, NULL);
		job_xact_callback_registered = true;
	}
	job->changed_transaction = false;
	job->interrupted = false;
	job->started = GetCurrentTimestamp();
	job->result = NULL;
	job->error = NULL;
	job->error_code = NULL;
	job->timed_out = false;
	job_timed_out = false;

	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		int			nestlevel;

		SetUserIdAndSecContext(job->owner,
							   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path",
								 job_search_path ? job_search_path :
								 GetConfigOptionResetString("search_path"),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		job_start_timers(job, slot);
		job_in_progress = true;

		job->result = job_execute(job, slot, cxt);

		job_in_progress = false;
		job_stop_timers();
		AtEOXact_GUC(false, nestlevel);
		SetUserIdAndSecContext(saved_userid, saved_sec_context);
		ReleaseCurrentSubTransaction();
		job->outcome = JQ_OUTCOME_SUCCEEDED;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		job_in_progress = false;
		job_stop_timers();
		QueryCancelHoldoffCount = saved_holdoff;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(saved_userid, saved_sec_context);

		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && job_timed_out)
		{
			job->outcome = JQ_OUTCOME_ERROR;
			job->timed_out = true;
			job->error = psprintf("job exceeded its timeout of " INT64_FORMAT " ms",
								  job->timeout_ms);
		}
		else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
				 jq_cancel_requested(slot, job->id))
			job->outcome = JQ_OUTCOME_CANCELLED;
		else
		{
			job->outcome = JQ_OUTCOME_ERROR;
			job->error = pstrdup(edata->message);
			job->interrupted = edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
		}
		if (job->outcome == JQ_OUTCOME_ERROR)
			job->error_code = pstrdup(unpack_sql_state(edata->sqlerrcode));
		FreeErrorData(edata);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	/* a cancel meant for this job must not hit the executor's own work */
	if (QueryCancelPending && !job_timed_out)
		job->interrupted = true;
	QueryCancelPending = false;
	job->finished = GetCurrentTimestamp();

	job_reset_session();
	job->changed_transaction = job_xact_changed;
}
