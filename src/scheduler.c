/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The per-database scheduler background worker.
 *
 * The launcher starts one scheduler in each database that may have the
 * extension.  The scheduler first checks that it does (else it tells the
 * launcher and leaves), takes back jobs that executors of an earlier run
 * left "running", and then keeps jq.executors_per_database executors for
 * SQL jobs and jq.shell_executors_per_database for shell jobs.
 *
 * It sleeps on its latch and runs SQL only when woken: by a commit that
 * made a job due later than its timer, by an executor that exited, by a
 * config reload, or by its timer, set to the earliest of the next delayed
 * job or retry, the next lease expiry, the next history pruning and the next
 * fire time of a recurring job (jq.schedule).  With nothing scheduled it
 * sleeps without a timeout and runs no SQL at all.
 *
 * The timer is published in shared memory (next_wakeup) so that backends
 * wake the scheduler only for something earlier.  While the scheduler
 * computes it, it reads DT_NOEND there, so nothing committed meanwhile can
 * be missed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

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
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "job_queue.h"
#include "monitor.h"

/* an executor is not started sooner than this after one failed or exited */
#define SCHED_RETRY_START_MS 1000

static JqDatabase *sched_db;
static uint32 sched_recheck;
static BackgroundWorkerHandle **sched_handles;	/* by executor slot */
static uint32 *sched_generations;	/* by executor slot */

static void
sched_detach(int code, Datum arg)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	sched_db->scheduler_pid = 0;
	sched_db->scheduler_latch = NULL;
	sched_db->next_wakeup = DT_NOEND;
	/* the executors follow; the next scheduler takes back their jobs */
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid == MyDatabaseId && e->pid != 0)
			kill(e->pid, SIGTERM);
	}
	LWLockRelease(jq_shared->lock);
}

static void
sched_attach(Oid dboid)
{
	bool		ok;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	sched_db = jq_find_database(dboid);
	ok = sched_db != NULL && !sched_db->blocked && sched_db->scheduler_pid == 0;
	if (ok)
	{
		sched_db->scheduler_pid = MyProcPid;
		sched_db->scheduler_latch = MyLatch;
		sched_db->next_wakeup = DT_NOEND;
		sched_recheck = sched_db->recheck;
	}
	LWLockRelease(jq_shared->lock);
	if (!ok)
		proc_exit(0);
	before_shmem_exit(sched_detach, (Datum) 0);
}

/* Wait until the process of an executor slot of ours is gone; false if not ours. */
static bool
sched_wait_slot_stopped(int slotno)
{
	JqExecutor *e = &jq_shared->executors[slotno];

	for (;;)
	{
		bool		ours;
		pid_t		pid;

		LWLockAcquire(jq_shared->lock, LW_SHARED);
		ours = e->dboid == MyDatabaseId;
		pid = e->pid;
		sched_generations[slotno] = e->generation;
		LWLockRelease(jq_shared->lock);
		if (!ours || pid == 0)
			return ours;
		kill(pid, SIGTERM);
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
}

/* The extension is gone: stop the executors and give their slots back. */
static void
sched_release_all(void)
{
	for (int i = 0; i < jq_max_executors; i++)
	{
		if (sched_wait_slot_stopped(i))
		{
			LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
			if (jq_shared->executors[i].generation == sched_generations[i])
				jq_shared->executors[i].dboid = InvalidOid;
			LWLockRelease(jq_shared->lock);
		}
	}
	jq_claim_trace_forget_database(MyDatabaseId);
}

/* Tell the launcher whether the extension is here; leave if it is not. */
static void
sched_check_extension(void)
{
	bool		present;

	StartTransactionCommand();
	present = OidIsValid(get_extension_oid(JQ_EXTENSION_NAME, true));
	CommitTransactionCommand();

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (present)
		sched_db->state = JQ_DB_ACTIVE;
	else if (sched_db->recheck == sched_recheck)
		sched_db->state = JQ_DB_ABSENT;
	LWLockRelease(jq_shared->lock);

	if (!present)
	{
		sched_release_all();
		proc_exit(0);
	}
}

/* Run one internal SQL statement in a transaction of its own. */
static void
sched_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
		  void (*read_result) (void *arg), void *arg)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);

	ret = jq_execute(sql, nargs, types, values, nulls);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(ret));
	if (read_result)
		read_result(arg);

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Take back the jobs of an executor that exited (token), charging the
 * attempt to the job it was running; token 0 takes back every job of the
 * in-server executors of an earlier server run.
 */
static void
sched_reclaim(int64 token, int64 current_job, const char *reason)
{
	Oid			types[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(token);
	values[1] = Int64GetDatum(current_job);
	values[2] = CStringGetTextDatum(reason);
	if (token == 0)
		nulls[0] = 'n';
	if (current_job == 0)
		nulls[1] = 'n';
	sched_run("SELECT jq._reclaim($1, $2, $3)", 3, types, values, nulls, NULL, NULL);
}

/* Free an executor slot of ours whose process is gone, and take back its jobs. */
static void
sched_release_slot(int slotno, const char *reason)
{
	JqExecutor *e = &jq_shared->executors[slotno];
	int64		token = 0;
	int64		current_job = 0;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (e->dboid == MyDatabaseId && e->generation == sched_generations[slotno])
	{
		token = e->token;
		current_job = e->current_job;
		/* a shell job's processes do not outlive the executor that ran them */
		if (e->shell_pgid != 0)
			kill(-e->shell_pgid, SIGKILL);
		e->dboid = InvalidOid;
	}
	LWLockRelease(jq_shared->lock);

	if (token != 0)
	{
		/* its claims committed, and the reclaim may give attempts back */
		jq_claim_trace_clear(slotno);
		sched_reclaim(token, current_job, reason);
	}
}

/*
 * Executors left by an earlier scheduler of this database: stop them, wait
 * for them to go, and take back their jobs.
 */
static void
sched_adopt_leftovers(void)
{
	for (int i = 0; i < jq_max_executors; i++)
	{
		if (sched_wait_slot_stopped(i))
			sched_release_slot(i, "executor stopped while running the job");
	}
	/* whatever is still running in-server was cut off by a restart */
	jq_kill_orphaned_shell_jobs();
	jq_claim_trace_restore();
	sched_reclaim(0, 0, "server restarted while the job was running");
}

static bool
sched_start_executor(JqJobKind kind)
{
	BackgroundWorker worker;
	JqExecutorStart start;
	int			slotno = -1;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid == InvalidOid)
		{
			e->dboid = MyDatabaseId;
			e->kind = kind;
			e->generation++;
			e->pid = 0;
			e->latch = NULL;
			e->idle = false;
			e->token = 0;
			e->current_job = 0;
			e->shell_pgid = 0;
			memset(e->cancel_jobs, 0, sizeof(e->cancel_jobs));
			sched_generations[i] = e->generation;
			slotno = i;
			break;
		}
	}
	LWLockRelease(jq_shared->lock);
	if (slotno < 0)
		return false;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, JQ_LIBRARY_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "jq_executor_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s %d for database %u",
			 jq_executor_type[kind], slotno, MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", jq_executor_type[kind]);
	worker.bgw_main_arg = Int32GetDatum(slotno);
	start.dboid = MyDatabaseId;
	start.generation = sched_generations[slotno];
	memcpy(worker.bgw_extra, &start, sizeof(start));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &sched_handles[slotno]))
	{
		LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
		jq_shared->executors[slotno].dboid = InvalidOid;
		LWLockRelease(jq_shared->lock);
		sched_handles[slotno] = NULL;
		return false;
	}
	return true;
}

/*
 * Reap exited executors and keep each kind's pool at its configured size.
 * Returns false when an executor that should run could not be started yet.
 */
static bool
sched_manage_pool(void)
{
	int			wanted[JQ_NUM_KINDS];
	int			running[JQ_NUM_KINDS] = {0};
	static bool warned = false;
	static TimestampTz last_failure = 0;

	wanted[JQ_KIND_SQL] = jq_execute_in_server ? jq_executors_per_database : 0;
	wanted[JQ_KIND_SHELL] = jq_execute_in_server ? jq_shell_executors_per_database : 0;

	for (int i = 0; i < jq_max_executors; i++)
	{
		JqJobKind	kind = jq_shared->executors[i].kind;
		pid_t		pid;

		if (sched_handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(sched_handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(sched_handles[i]);
			sched_handles[i] = NULL;
			sched_release_slot(i, "executor exited while running the job");
			last_failure = GetCurrentTimestamp();
		}
		else if (running[kind] >= wanted[kind])
			TerminateBackgroundWorker(sched_handles[i]);
		else
			running[kind]++;
	}

	for (int kind = 0; kind < JQ_NUM_KINDS; kind++)
	{
		if (running[kind] < wanted[kind] &&
			!TimestampDifferenceExceeds(last_failure, GetCurrentTimestamp(), SCHED_RETRY_START_MS))
			return false;
		while (running[kind] < wanted[kind])
		{
			if (!sched_start_executor((JqJobKind) kind))
			{
				last_failure = GetCurrentTimestamp();
				if (!warned)
					ereport(LOG,
							(errmsg("job_queue could not start an executor for database %u", MyDatabaseId),
							 errhint("Raise max_worker_processes or jq.max_executors, or lower jq.executors_per_database or jq.shell_executors_per_database.")));
				warned = true;
				return false;
			}
			running[kind]++;
		}
	}
	warned = false;
	return true;
}

typedef struct TickResult
{
	bool		due_now;
	bool		has_next;
	TimestampTz next_event;
} TickResult;

static void
sched_read_tick(void *arg)
{
	TickResult *r = arg;
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	r->due_now = !isnull && DatumGetBool(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	r->has_next = !isnull;
	if (!isnull)
		r->next_event = DatumGetTimestampTz(d);
}

void
jq_scheduler_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("job_queue scheduler");
	jq_worker_settings();
	/*
	 * What it charges and takes back is on disk when it commits, whatever
	 * the database's synchronous_commit: a charge a crash lost would let a
	 * job that crashes the server run again with the same attempt.
	 */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	sched_handles = MemoryContextAllocZero(TopMemoryContext,
										   sizeof(BackgroundWorkerHandle *) * jq_max_executors);
	sched_generations = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(uint32) * jq_max_executors);
	sched_attach(dboid);
	sched_check_extension();
	sched_adopt_leftovers();
	jq_stats_recount();

	for (;;)
	{
		TickResult tick = {0};
		long		timeout_ms = -1;
		int			rc;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		sched_check_extension();
		if (!sched_manage_pool())
			timeout_ms = SCHED_RETRY_START_MS;

		LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
		sched_db->next_wakeup = DT_NOEND;
		LWLockRelease(jq_shared->lock);

		sched_run("SELECT due_now, next_event FROM jq._tick()", 0, NULL, NULL, NULL,
				  sched_read_tick, &tick);

		if (tick.due_now)
			jq_wake_executor(MyDatabaseId, JQ_KINDS_ALL, -1);

		LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
		sched_db->next_wakeup = tick.has_next ? tick.next_event : DT_NOEND;
		LWLockRelease(jq_shared->lock);

		if (tick.has_next)
		{
			long		ms = jq_ms_until(tick.next_event);

			timeout_ms = timeout_ms < 0 ? ms : Min(timeout_ms, ms);
		}

		pgstat_report_stat(true);
		rc = WaitLatch(MyLatch,
					   WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
					   timeout_ms, PG_WAIT_EXTENSION);

		/*
		 * The timer most often fires for a delayed job or a retry coming due:
		 * executors look for it at once, not after the tick.
		 */
		if (rc & WL_TIMEOUT)
			jq_wake_executor(MyDatabaseId, JQ_KINDS_ALL, -1);
	}
}
