/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The per-database scheduler background worker.
 *
 * The launcher starts a database's scheduler when the database may have
 * the extension, asks for executors, or has its timer due (pool.c).  The
 * scheduler first checks that the extension is there (else it tells the
 * launcher and leaves), takes back jobs that executors of an earlier run
 * left "running", looks which kinds of jobs are ready, and then starts the
 * executors of the slots the launcher hands the database and takes back the
 * jobs of those that exit.  It leaves once the database has no executor and
 * waits for none, or waits behind another database; the launcher then
 * keeps its timer.
 *
 * It sleeps on its latch and runs SQL only when woken: by a commit that
 * made a job due later than its timer, by an executor that exited holding
 * jobs, by a config reload, by a request to look for ready jobs, or by its
 * timer, set to the earliest of the next delayed
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

#include "bgworker.h"
#include "claim_trace.h"
#include "executor.h"
#include "guc.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "monitor.h"
#include "pool.h"
#include "scheduler.h"
#include "shell_job.h"
#include "shmem.h"

static JqDatabase *sched_db;
static uint32 sched_recheck;
static BackgroundWorkerHandle **sched_handles;	/* by executor slot */
static uint32 *sched_generations;	/* by executor slot */
static bool sched_leaving_idle = false;
static bool sched_tick_needed = true;	/* at start, after a reload or a reclaim */

static void
sched_detach(int code, Datum arg)
{
	jq_scheduler_detach(sched_db, sched_leaving_idle);
}

static void
sched_attach(Oid dboid)
{
	sched_db = jq_scheduler_attach(dboid, &sched_recheck);
	if (sched_db == NULL)
		proc_exit(0);
	before_shmem_exit(sched_detach, (Datum) 0);
}

/* Wait until the process of an executor slot of ours is gone; false if not ours. */
static bool
sched_wait_slot_stopped(int slotno)
{
	for (;;)
	{
		pid_t		pid;
		bool		ours = jq_slot_owned(slotno, MyDatabaseId, &pid,
										 &sched_generations[slotno]);

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
			jq_slot_free(i, sched_generations[i]);
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

	jq_scheduler_found_extension(sched_db, present, sched_recheck);

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

/*
 * Free an executor slot of ours whose process is gone, and take back its
 * jobs; unless it left holding none, ask for another executor of its kind,
 * for the jobs taken back.
 */
static void
sched_release_slot(int slotno, const char *reason)
{
	int64		token = 0;
	int64		current_job = 0;
	bool		clean = false;

	(void) jq_slot_release(slotno, sched_db, sched_generations[slotno], &token,
						   &current_job, &clean);
	if (token != 0)
	{
		/* its claims committed, and the reclaim may give attempts back */
		jq_claim_trace_clear(slotno);
		if (!clean)
		{
			sched_reclaim(token, current_job, reason);
			sched_tick_needed = true;	/* for the retry it may have set */
		}
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
		/* a slot handed out since this scheduler started is not a leftover */
		if (!jq_shared->executors[i].registered)
			continue;
		if (sched_wait_slot_stopped(i))
			sched_release_slot(i, "executor stopped while running the job");
	}
	/* whatever is still running in-server was cut off by a restart */
	jq_kill_orphaned_shell_jobs();
	jq_claim_trace_restore();
	sched_reclaim(0, 0, "server restarted while the job was running");
}

/*
 * Start the worker of a slot the launcher handed to this database.  When
 * the postmaster has no worker slot left, give the slot back and ask again.
 */
static void
sched_start_executor(int slotno)
{
	JqExecutorStart start;
	JqJobKind	kind = jq_slot_register(slotno, &sched_generations[slotno]);

	start.dboid = MyDatabaseId;
	start.generation = sched_generations[slotno];
	if (!jq_bgworker_start(&sched_handles[slotno], "jq_executor_main", jq_executor_type[kind],
						   Int32GetDatum(slotno), &start, sizeof(start),
						   "%s %d for database %u", jq_executor_type[kind], slotno,
						   MyDatabaseId))
	{
		sched_handles[slotno] = NULL;
		jq_slot_register_failed(slotno, sched_db, kind);
		jq_pool_shortage();
	}
}

/*
 * Reap exited executors, stop those beyond each kind's pool size, and start
 * the workers of the slots the launcher handed out.
 */
static void
sched_manage_pool(void)
{
	int			running[JQ_NUM_KINDS] = {0};
	bool		exited = false;

	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];
		JqJobKind	kind = e->kind;
		pid_t		pid;

		if (sched_handles[i] != NULL &&
			GetBackgroundWorkerPid(sched_handles[i], &pid) == BGWH_STOPPED)
		{
			pfree(sched_handles[i]);
			sched_handles[i] = NULL;
			sched_release_slot(i, "executor exited while running the job");
			exited = true;
		}
		else if (sched_handles[i] != NULL)
		{
			/* one asked to leave goes before its next claim: it does not count */
			if (e->leave)
				continue;
			if (running[kind] >= jq_pool_size(kind))
				TerminateBackgroundWorker(sched_handles[i]);
			else
				running[kind]++;
		}
		else if (e->dboid == MyDatabaseId && !e->registered)
			sched_start_executor(i);
	}
	if (exited)
		jq_pool_worker_exited();
}

/* columns of the probe: whether jobs of each kind are ready */
enum
{
	Anum_probe_sql = 1,
	Anum_probe_shell
};

/*
 * Jobs of some kind became runnable (or the scheduler just started): ask
 * for an executor of each kind that has ready jobs and none.
 */
static void
sched_read_probe(void *arg)
{
	static const int columns[JQ_NUM_KINDS] = {Anum_probe_sql, Anum_probe_shell};
	bool	   *found = arg;

	for (int kind = 0; kind < JQ_NUM_KINDS; kind++)
	{
		bool		isnull;

		found[kind] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, columns[kind], &isnull));
	}
}

#define SCHED_READY_OF_KIND(kind) \
"EXISTS (SELECT FROM jq.job j " \
"		WHERE j.state = 'ready' AND j.kind = '" kind "' AND j.run_at <= pg_catalog.now() " \
"		  AND NOT EXISTS (SELECT FROM jq.queue q " \
"						  WHERE q.name = j.queue AND (q.external_only OR q.paused)))"

/*
 * Look for ready jobs of each kind when asked to (or always); returns
 * whether there were any.
 */
static bool
sched_probe(bool always)
{
	bool		found[JQ_NUM_KINDS] = {false};

	if (!jq_scheduler_take_probe(sched_db) && !always)
		return false;

	sched_run("SELECT " SCHED_READY_OF_KIND("sql") ", " SCHED_READY_OF_KIND("shell"),
			  0, NULL, NULL, NULL, sched_read_probe, found);
	jq_scheduler_request_missing(sched_db, found);
	return found[JQ_KIND_SQL] || found[JQ_KIND_SHELL];
}

/*
 * Whether to leave: the database has no executor and waits for none, or
 * waits while another database is first in line (pool.c).  Its timer stays
 * with the launcher.
 */
static bool
sched_should_leave(void)
{
	bool		leave = jq_scheduler_may_leave(sched_db);

	/*
	 * A last look before going: a due job with no executor and no request
	 * for one would otherwise wait for the next commit in the database.
	 */
	if (leave && sched_probe(true))
		leave = jq_scheduler_may_leave(sched_db);

	if (leave)
		sched_leaving_idle = true;
	return leave;
}

/* columns of jq._tick() as the scheduler reads it */
enum
{
	Anum_tick_due_now = 1,
	Anum_tick_next_event
};

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

	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_tick_due_now, &isnull);
	r->due_now = !isnull && DatumGetBool(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_tick_next_event, &isnull);
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

	/* look for work only now: the jobs taken back above are ready again */
	jq_scheduler_look_for_jobs(sched_db);

	for (;;)
	{
		TickResult tick = {0};
		long		timeout_ms;
		bool		due;
		int			rc;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			sched_tick_needed = true;
		}

		sched_check_extension();
		sched_manage_pool();
		(void) sched_probe(false);

		/* a wake for the pool alone runs no tick */
		due = jq_scheduler_timer_due(sched_db, sched_tick_needed);
		if (due)
		{
			sched_tick_needed = false;
			sched_run("SELECT due_now, next_event FROM jq._tick()", 0, NULL, NULL, NULL,
					  sched_read_tick, &tick);

			if (tick.due_now)
				jq_wake_executor(MyDatabaseId, JQ_KINDS_ALL, -1);

			/* a backend may have asked for an earlier wake meanwhile */
			if (tick.has_next)
				jq_scheduler_set_timer(sched_db, tick.next_event);
		}
		timeout_ms = jq_ms_until(jq_next_wakeup(MyDatabaseId));

		pgstat_report_stat(true);
		if (sched_should_leave())
			proc_exit(0);
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
