/*-------------------------------------------------------------------------
 *
 * executor.c
 *	  The executor background worker: claims ready jobs and runs them.
 *
 * A database's scheduler starts its executors and hands each one a slot
 * in shared memory, which says the kind of jobs it runs.  An executor
 * loops:
 *
 *	 1. mark itself idle, then claim ready jobs of its kind in a transaction
 *		of their own: the claim, and the attempt it counts, are committed
 *		before any job runs.  When the executor was idle, and always for
 *		a shell executor, the commit does not wait for the WAL flush: the
 *		claim is written to a file instead (claim_trace.c), which a crash
 *		of the server does not lose, and written again whenever outcomes
 *		commit;
 *	 2. with nothing to claim, sleep on its latch until a commit that made
 *		a job runnable, the scheduler, or a signal wakes it, or until the
 *		scheduler's timer fires (a delayed job or a retry may come due then:
 *		the executor looks for it without waiting for the scheduler);
 *	 3. otherwise run them.  An SQL executor claims up to jq.batch_size
 *		jobs and runs them one by one (job_run.c) in one transaction,
 *		committing them with their outcome whenever the transaction is
 *		jq.batch_time old, and at the end.  A shell executor claims one job,
 *		runs it outside any transaction (shell_job.c), then records its
 *		outcome.
 *
 * Jobs of queues marked external_only are left to external workers.  Jobs
 * of limited queues (paused, or with a concurrency or rate limit) are
 * claimed by jq._claim_limited, queue by queue under each queue's lock; the
 * others by one statement that never looks at them.  An executor claims
 * from both in one transaction, taking turns at which goes first so that
 * neither can keep the other's retries (claimed alone) waiting.
 *
 * The slot tells the scheduler which job was running should the executor
 * die; its token marks, in jq.job, every job it claimed.
 *
 * An executor leaves, holding no job, after jq.executor_idle_timeout with
 * nothing to claim, or before its next claim when the launcher needs its
 * slot for another database (pool.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "claim_trace.h"
#include "executor.h"
#include "guc.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "job_run.h"
#include "outcome.h"
#include "protocol.h"
#include "shell_job.h"
#include "shmem.h"
#include "wakeup.h"

/* what pg_stat_activity shows as backend_type, by kind of job */
const char *const jq_executor_type[JQ_NUM_KINDS] = {"job_queue executor",
"job_queue shell executor"};

static int	exe_slotno;
static volatile JqExecutor *exe_slot;
static MemoryContext exe_batch_cxt;

static void
exe_detach(int code, Datum arg)
{
	jq_slot_detach(exe_slot);
}

/* Take over the slot the scheduler reserved, unless it was handed on since. */
static void
exe_attach(const JqExecutorStart *start)
{
	int64		token;

	if (!pg_strong_random(&token, sizeof(token)))
		elog(ERROR, "could not generate an executor token");
	token &= PG_INT64_MAX;		/* positive and, below, not zero */
	token |= 1;

	exe_slot = jq_slot_attach(exe_slotno, start, token);
	if (exe_slot == NULL)
		proc_exit(0);
	before_shmem_exit(exe_detach, (Datum) 0);
}

/*
 * Leave the pool holding no job: asked to by the launcher (leave), or idle
 * for jq.executor_idle_timeout, unless a commit woke it meanwhile.
 */
static void
exe_leave_pool(bool busy)
{
	if (jq_slot_leave_pool(exe_slot, busy))
		proc_exit(0);
}

/* The extension was dropped: give the slot back and leave. */
static void
exe_leave(void)
{
	jq_slot_give_back(exe_slot);
	proc_exit(0);
}

/*
 * What the executor reads of the jobs it claimed (claimed): a shell job gets
 * its environment, its own variables and then those that tell it which job
 * it is; the last columns say whether a job is on its second or later
 * attempt, and which.
 */
#define EXE_CLAIMED_OUTPUT \
"SELECT c.id, c.command, c.owner, c.timeout, c.argv, c.working_dir, " \
"	CASE WHEN c.kind = 'shell' THEN " \
"		ARRAY(SELECT e.key OPERATOR(pg_catalog.||) '=' OPERATOR(pg_catalog.||) e.value " \
"			  FROM pg_catalog.jsonb_each_text(c.env) e) " \
"		OPERATOR(pg_catalog.||) ARRAY['" JQ_ENV_JOB_ID "=' OPERATOR(pg_catalog.||) c.id, " \
"			'" JQ_ENV_ATTEMPT "=' OPERATOR(pg_catalog.||) c.attempts, " \
"			'" JQ_ENV_MAX_ATTEMPTS "=' OPERATOR(pg_catalog.||) c.max_attempts, " \
"			'" JQ_ENV_QUEUE "=' OPERATOR(pg_catalog.||) c.queue, " \
"			'" JQ_ENV_PROGRESS_FILE "=' OPERATOR(pg_catalog.||) jq._progress_file(c.id)] " \
"		OPERATOR(pg_catalog.||) ARRAY(SELECT '" JQ_ENV_PAYLOAD "=' OPERATOR(pg_catalog.||) c.payload::pg_catalog.text " \
"									  WHERE c.payload IS NOT NULL) " \
"	END, " \
"	c.attempts > 1, c.attempts " \
"FROM claimed c " \
"ORDER BY c.priority, c.run_at, c.id"

/*
 * Claim up to $2 ready jobs of kind $3 of queues that are not limited, for
 * token $1, in claim order.  A job on its second or later attempt is
 * claimed alone, so that a job that crashes its executor cannot charge
 * attempts to healthy jobs more than once: not at all when $4 jobs are
 * already claimed in this transaction.  This is the executors' hot path,
 * so it is a statement of its own, planned once; jq._claim claims the
 * jobs it picks.  A job whose queue became limited while it waited is
 * skipped until jq._claim_limited flags it.
 */
static const char *const exe_claim_sql =
"WITH candidate AS ( "
"	SELECT j.id, j.attempts > 0 AS retry, j.priority, j.run_at "
"	FROM jq.job j "
"	WHERE j.state = 'ready' AND NOT j.limited AND j.run_at <= pg_catalog.now() AND j.kind = $3 "
"	  AND NOT EXISTS (SELECT FROM jq.queue q "
"					  WHERE q.name = j.queue AND (q.external_only OR q.limited)) "
"	ORDER BY j.priority, j.run_at, j.id "
"	LIMIT $2 "
"	FOR UPDATE SKIP LOCKED "
"), pick AS ( "
"	SELECT c.id "
"	FROM (SELECT c.id, "
"				 pg_catalog.row_number() OVER w AS rn, "
"				 pg_catalog.bool_or(c.retry) OVER w AS retry_seen "
"		  FROM candidate c "
"		  WINDOW w AS (ORDER BY c.priority, c.run_at, c.id ROWS UNBOUNDED PRECEDING)) c "
"	WHERE (c.rn = 1 AND $4 = 0) OR NOT c.retry_seen "
"), claimed AS ( "
"	SELECT * FROM jq._claim(ARRAY(SELECT pick.id FROM pick), $1, 'in-server executor', NULL) "
") "
EXE_CLAIMED_OUTPUT;

/*
 * The same from limited queues: $5 executors share their free slots.  The
 * function runs only when some queue has settings.
 */
static const char *const exe_claim_limited_sql =
"WITH claimed AS ( "
"	SELECT l.* "
"	FROM jq._claim_limited($2, ARRAY[$3], NULL, NULL, $1, $4, $5, "
"						   'in-server executor', NULL) l "
"	WHERE EXISTS (SELECT FROM jq.queue) "
") "
EXE_CLAIMED_OUTPUT;

/* An interval in milliseconds, a month counting as 30 days. */
int64
jq_interval_ms(const Interval *iv)
{
	return iv->time / 1000 + ((int64) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY * 1000;
}

/* A text[] as a NULL-terminated array of C strings, in the current context. */
static char **
exe_cstring_array(Datum array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **strs;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	strs = palloc(sizeof(char *) * (n + 1));
	for (int i = 0; i < n; i++)
		strs[i] = nulls[i] ? pstrdup("") : TextDatumGetCString(elems[i]);
	strs[n] = NULL;
	return strs;
}

/*
 * Run a claim statement for up to max jobs, n of them already claimed, and
 * read the jobs it claimed into jobs[n...].  Returns how many it claimed;
 * *alone says whether that was a retry, which no other job may join.
 */
static int
exe_claim_from(bool limited, JqJob *jobs, int n, int max, bool *alone)
{
	static SPIPlanPtr plans[2];
	static const char *const kind_names[] = {"sql", "shell"};
	Datum		values[5];
	int			ret;
	int			claimed;

	if (plans[limited] == NULL)
	{
		Oid			types[5] = {INT8OID, INT4OID, TEXTOID, INT4OID, INT4OID};

		plans[limited] = jq_prepare(limited ? exe_claim_limited_sql : exe_claim_sql,
									limited ? 5 : 4, types);
	}
	values[0] = Int64GetDatum(exe_slot->token);
	values[1] = Int32GetDatum(max - n);
	values[2] = CStringGetTextDatum(kind_names[exe_slot->kind]);
	values[3] = Int32GetDatum(n);
	values[4] = Int32GetDatum(exe_slot->kind == JQ_KIND_SHELL ?
							  jq_shell_executors_per_database : jq_executors_per_database);
	ret = jq_execute_plan(plans[limited], values, NULL, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not claim jobs: %s", SPI_result_code_string(ret));

	claimed = (int) SPI_processed;
	for (int i = 0; i < claimed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		JqJob	   *job = &jobs[n + i];
		Datum		d;
		bool		isnull;
		MemoryContext old;

		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		job->timeout_ms = isnull ? 0 : jq_interval_ms(DatumGetIntervalP(d));
		*alone = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		job->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));

		old = MemoryContextSwitchTo(exe_batch_cxt);
		job->command = SPI_getvalue(tup, desc, 2);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		job->argv = isnull ? NULL : exe_cstring_array(d);
		job->working_dir = SPI_getvalue(tup, desc, 6);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		job->env = isnull ? NULL : exe_cstring_array(d);
		MemoryContextSwitchTo(old);
	}
	return claimed;
}

/*
 * Claim jobs into exe_batch_cxt, from limited queues and from the others,
 * each first in turn; returns how many.  woken: the executor was idle.
 */
static int
exe_claim(JqJob **jobs, bool woken)
{
	static bool limited_first = false;
	int			max = exe_slot->kind == JQ_KIND_SHELL ? 1 : jq_batch_size;
	bool		alone = false;
	bool		traced;
	int			n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!OidIsValid(get_extension_oid(JQ_EXTENSION_NAME, true)))
	{
		CommitTransactionCommand();
		exe_leave();
	}

	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "claiming jobs");

	*jobs = MemoryContextAllocZero(exe_batch_cxt, sizeof(JqJob) * max);
	limited_first = !limited_first;
	for (int pass = 0; pass < 2 && n < max && !alone; pass++)
		n += exe_claim_from((pass == 0) == limited_first, *jobs, n, max, &alone);

	SPI_finish();
	PopActiveSnapshot();
	/*
	 * Woken from idle, the claim does not wait for its WAL, so that the jobs
	 * start at once: the claim's file keeps it (claim_trace.c).  Right after
	 * a batch of SQL jobs it does: while the WAL is flushed, the next jobs
	 * gather into one claim, which under load costs less than claiming them
	 * in small batches.  A shell executor claims one job at a time whatever
	 * it waits for, so it never waits.
	 */
	traced = n > 0 && (woken || exe_slot->kind == JQ_KIND_SHELL);
	if (traced)
	{
		jq_claim_trace_open(exe_slotno);
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	}
	CommitTransactionCommand();
	if (traced)
		jq_claim_trace_write(*jobs, n);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

/* Whether the job was cancelled before it could start; if so it ends cancelled. */
static bool
exe_cancelled_before_start(JqJob *job)
{
	if (!jq_cancel_requested(exe_slot, job->id))
		return false;
	job->outcome = JQ_OUTCOME_CANCELLED;
	job->started = job->finished = GetCurrentTimestamp();
	return true;
}

/* Run claimed SQL jobs, committing at least every jq.batch_time. */
static void
exe_run_batch(JqJob *jobs, int n)
{
	int			first_open = 0; /* first job whose outcome is not committed */
	TimestampTz xact_start;

	StartTransactionCommand();
	xact_start = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		JqJob	   *job = &jobs[i];

		/* commit at least every batch_time, and after a job that changed the transaction */
		if (i > first_open &&
			(jobs[i - 1].changed_transaction ||
			 TimestampDifferenceExceeds(xact_start, GetCurrentTimestamp(), jq_batch_time_ms)))
		{
			jq_finish_jobs(jobs + first_open, i - first_open, JQ_KIND_BIT(exe_slot->kind));
			CommitTransactionCommand();
			jq_claim_trace_update(jobs + i, n - i);
			StartTransactionCommand();
			xact_start = GetCurrentTimestamp();
			first_open = i;
		}

		jq_slot_set_current(exe_slot, job->id);
		if (!exe_cancelled_before_start(job))
		{
			MemoryContext old = MemoryContextSwitchTo(exe_batch_cxt);

			SetCurrentStatementStartTimestamp();
			pgstat_report_activity(STATE_RUNNING, job->command);
			jq_run_job(job, exe_slot);
			MemoryContextSwitchTo(old);
		}
		jq_slot_set_current(exe_slot, 0);
	}
	jq_finish_jobs(jobs + first_open, n - first_open, JQ_KIND_BIT(exe_slot->kind));
	CommitTransactionCommand();
	jq_claim_trace_update(NULL, 0);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Run a shell job, then record its outcome.  A shutdown that cuts the job
 * short is handled once the outcome (released) is recorded.
 */
static void
exe_run_shell(JqJob *job)
{
	jq_slot_set_current(exe_slot, job->id);
	if (!exe_cancelled_before_start(job))
	{
		MemoryContext old = MemoryContextSwitchTo(exe_batch_cxt);

		pgstat_report_activity(STATE_RUNNING, job->command ? job->command : job->argv[0]);
		jq_run_shell_job(job, exe_slot);
		MemoryContextSwitchTo(old);
	}

	/* the program has exited: a crash now is none of its doing */
	HOLD_INTERRUPTS();
	jq_claim_trace_update(NULL, 0);
	StartTransactionCommand();
	jq_finish_jobs(job, 1, JQ_KIND_BIT(exe_slot->kind));
	if (job->outcome == JQ_OUTCOME_RELEASED)
		jq_wake_at_commit_for(GetCurrentTimestamp(), JQ_KIND_BIT(JQ_KIND_SHELL));

	/*
	 * The outcome's commit does not wait for its WAL: the next claim's
	 * commit flushes it, or the WAL writer does.  A crash of the server
	 * before then runs the job again, as shell jobs allow (at-least-once).
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	CommitTransactionCommand();
	RESUME_INTERRUPTS();
	jq_slot_set_current(exe_slot, 0);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
jq_executor_main(Datum main_arg)
{
	JqExecutorStart start;
	TimestampTz idle_since;

	exe_slotno = DatumGetInt32(main_arg);
	memcpy(&start, MyBgworkerEntry->bgw_extra, sizeof(start));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(start.dboid, InvalidOid, 0);
	exe_attach(&start);
	pgstat_report_appname(jq_executor_type[exe_slot->kind]);
	if (exe_slot->kind == JQ_KIND_SHELL)
		jq_shell_job_init();
	else
		jq_job_run_init();
	jq_worker_settings();

	exe_batch_cxt = AllocSetContextCreate(TopMemoryContext, "job_queue batch",
										  ALLOCSET_DEFAULT_SIZES);

	/* only a job's own SQL may be cancelled (job_run.c) */
	HOLD_CANCEL_INTERRUPTS();

	/* idle since it started or last found work */
	idle_since = 0;

	for (bool woken = true;;)
	{
		JqJob	   *jobs;
		int			n;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (exe_slot->leave)
			exe_leave_pool(!woken);

		MemoryContextReset(exe_batch_cxt);
		jq_slot_before_claim(exe_slot);
		n = exe_claim(&jobs, woken);
		if (n == 0 && (!woken || idle_since == 0))
			idle_since = GetCurrentTimestamp();
		woken = n == 0;
		if (n == 0)
		{
			long		timeout_ms = jq_ms_until(jq_next_wakeup(MyDatabaseId));

			jq_slot_found_nothing(exe_slot);

			/* a timer already past is the scheduler's: it wakes us after its tick */
			if (timeout_ms == 0)
				timeout_ms = -1;
			if (jq_executor_idle_timeout_ms > 0)
			{
				long		idle_ms = jq_ms_until(TimestampTzPlusMilliseconds(idle_since,
																			  jq_executor_idle_timeout_ms));

				if (idle_ms == 0)
					exe_leave_pool(false);
				timeout_ms = timeout_ms < 0 ? idle_ms : Min(timeout_ms, idle_ms);
			}
			pgstat_report_stat(true);
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
							 timeout_ms, PG_WAIT_EXTENSION);
			continue;
		}
		jq_slot_set_idle(exe_slot, false);

		/* a full claim means more work is likely waiting: share it */
		if (exe_slot->kind == JQ_KIND_SHELL || n == jq_batch_size)
			jq_wake_executor(MyDatabaseId, JQ_KIND_BIT(exe_slot->kind), exe_slotno);

		if (exe_slot->kind == JQ_KIND_SHELL)
			exe_run_shell(jobs);
		else
			exe_run_batch(jobs, n);
		pgstat_report_stat(false);
	}
}
