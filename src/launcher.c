/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one static background worker per cluster that starts a
 *	  scheduler in every database that has the extension and needs one.
 *
 * The launcher connects to no database; it reads pg_database, keeps an
 * entry per database in shared memory, and starts a scheduler for every
 * entry that is not known yet to have the extension or to lack it
 * (JqDbState in shmem.h).  A scheduler started in a database without
 * the extension marks it ABSENT and exits, so each database is probed once;
 * CREATE EXTENSION, CREATE DATABASE and the end of a DROP/RENAME of a
 * database ask for a new look.  Afterwards a database gets a scheduler when
 * it asks for executors (first the database first in line, pool.c), when it
 * has jobs of unknown kinds to look for, or when its timer, which the
 * launcher keeps while no scheduler runs there, comes due.
 *
 * It registers with BgWorkerStart_RecoveryFinished, so on a hot standby it
 * does not run at all, and the postmaster starts it when the standby is
 * promoted.  It sleeps on its latch: schedulers starting and stopping
 * (bgw_notify_pid) and backends (jq_wake_launcher) wake it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "bgworker.h"
#include "job_queue.h"
#include "launcher.h"
#include "pool.h"
#include "shmem.h"
#include "wakeup.h"

/* a scheduler that stopped is not restarted sooner than this */
#define LAUNCHER_RESTART_DELAY_MS 1000

bool		jq_preloaded = false;

/* what this launcher started, by index in jq_shared->databases */
typedef struct LauncherScheduler
{
	BackgroundWorkerHandle *handle;
	Oid			dboid;
	uint32		recheck;		/* the database's recheck count at start */
	TimestampTz started;
} LauncherScheduler;

static LauncherScheduler launcher_schedulers[JQ_MAX_DATABASES];

void
jq_launcher_register(void)
{
	jq_bgworker_register("jq_launcher_main", "job_queue launcher", 5);
}

static void
launcher_detach(int code, Datum arg)
{
	jq_launcher_detach();
}

/* The databases that accept connections. */
static List *
launcher_list_databases(void)
{
	List	   *oids = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn)
		{
			/* the list outlives the transaction */
			MemoryContext old = MemoryContextSwitchTo(cxt);

			oids = lappend_oid(oids, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return oids;
}

/* Bring the shared database entries in line with pg_database. */
static void
launcher_sync_databases(void)
{
	List	   *oids = launcher_list_databases();

	jq_sync_databases(oids);
	list_free(oids);
}

static bool
launcher_start_scheduler(int i, Oid dboid, uint32 recheck)
{
	LauncherScheduler *s = &launcher_schedulers[i];

	if (!jq_bgworker_start(&s->handle, "jq_scheduler_main", "job_queue scheduler",
						   ObjectIdGetDatum(dboid), NULL, 0,
						   "job_queue scheduler for database %u", dboid))
	{
		s->handle = NULL;
		return false;
	}
	s->dboid = dboid;
	s->recheck = recheck;
	s->started = GetCurrentTimestamp();
	return true;
}

/* The databases whose scheduler is to start, in order, and the next timer of the others */
typedef struct LauncherDue
{
	TimestampTz now;
	TimestampTz wake_at;
	int			order[JQ_MAX_DATABASES];
	TimestampTz keys[JQ_MAX_DATABASES];
	int			n;
} LauncherDue;

/*
 * Whether a database needs its scheduler now: to find out whether it has
 * the extension, for the executors it asks for, or for its timer; else,
 * when it will (*wake_at).  Caller holds the lock.
 */
static bool
launcher_needs_scheduler(JqDatabase *db, JqDatabase *first, TimestampTz now,
						 TimestampTz *wake_at)
{
	if (db->dboid == InvalidOid || db->blocked || db->state == JQ_DB_ABSENT ||
		db->scheduler_pid != 0)
		return false;
	if (db->state == JQ_DB_UNKNOWN || db->probe || db == first || db->next_wakeup <= now)
		return true;
	*wake_at = Min(*wake_at, db->next_wakeup);
	return false;
}

/*
 * A database whose scheduler is to start takes its place in due->order:
 * by waiting time, those that wait for nothing last (jq_visit_databases).
 */
static void
launcher_consider(int i, JqDatabase *db, JqDatabase *first, void *arg)
{
	LauncherDue *due = arg;
	int			j;

	if (launcher_schedulers[i].handle != NULL ||
		!launcher_needs_scheduler(db, first, due->now, &due->wake_at))
		return;
	due->keys[i] = db->waiting_since != 0 ? db->waiting_since : DT_NOEND;
	for (j = due->n; j > 0 && due->keys[due->order[j - 1]] > due->keys[i]; j--)
		due->order[j] = due->order[j - 1];
	due->order[j] = i;
	due->n++;
}

/*
 * Start the schedulers that should run: that of the database first in line
 * for an executor first, then those that probe or tick.  Returns how long
 * to sleep before trying again (-1: until woken).
 */
static long
launcher_start_schedulers(void)
{
	long		timeout_ms = -1;
	LauncherDue due;

	due.now = GetCurrentTimestamp();
	due.wake_at = DT_NOEND;
	due.n = 0;
	for (int i = 0; i < JQ_MAX_DATABASES; i++)
	{
		LauncherScheduler *s = &launcher_schedulers[i];
		pid_t		pid;

		if (s->handle != NULL &&
			GetBackgroundWorkerPid(s->handle, &pid) == BGWH_STOPPED)
		{
			pfree(s->handle);
			s->handle = NULL;
			/* a probe that died before deciding: nothing to run there */
			jq_scheduler_stopped(i, s->dboid, s->recheck);
			/* its worker slot is free */
			jq_pool_worker_exited();
		}
	}

	jq_visit_databases(launcher_consider, &due);
	if (due.wake_at != DT_NOEND)
		timeout_ms = jq_ms_until(due.wake_at);

	for (int k = 0; k < due.n; k++)
	{
		int			i = due.order[k];
		LauncherScheduler *s = &launcher_schedulers[i];
		JqDatabase	db = jq_database_copy(i);
		Oid			dboid = db.dboid;
		uint32		recheck = db.recheck;
		bool		failed = db.scheduler_failed;

		/* restarting after a failure waits; a request to look again does not */
		if (failed && s->dboid == dboid && s->recheck == recheck &&
			!TimestampDifferenceExceeds(s->started, GetCurrentTimestamp(),
										LAUNCHER_RESTART_DELAY_MS))
		{
			timeout_ms = timeout_ms < 0 ? LAUNCHER_RESTART_DELAY_MS :
				Min(timeout_ms, LAUNCHER_RESTART_DELAY_MS);
			continue;
		}
		if (!launcher_start_scheduler(i, dboid, recheck))
		{
			jq_pool_shortage();
			break;
		}
	}
	return timeout_ms;
}

/*
 * After a reload that let databases have more executors (or any, with
 * jq.execute_in_server on), every database looks again for jobs that no
 * executor could take until now.
 */
static void
launcher_pool_settings(void)
{
	static int	sizes[JQ_NUM_KINDS] = {0};
	bool		grew = false;

	for (int kind = 0; kind < JQ_NUM_KINDS; kind++)
	{
		int			size = jq_pool_size((JqJobKind) kind);

		grew |= size > sizes[kind];
		sizes[kind] = size;
	}
	if (!grew)
		return;
	jq_probe_active_databases();
}

void
jq_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("job_queue launcher");

	jq_launcher_attach();
	before_shmem_exit(launcher_detach, (Datum) 0);

	for (;;)
	{
		long		timeout_ms;
		long		hand_out_ms;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		launcher_pool_settings();

		launcher_sync_databases();
		hand_out_ms = jq_hand_out_executors();
		timeout_ms = launcher_start_schedulers();
		if (hand_out_ms >= 0)
			timeout_ms = timeout_ms < 0 ? hand_out_ms : Min(timeout_ms, hand_out_ms);
		pgstat_report_stat(true);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms >= 0 ? WL_TIMEOUT : 0),
						 timeout_ms, PG_WAIT_EXTENSION);
	}
}

PG_FUNCTION_INFO_V1(jq_extension_created);

/* jq._extension_created(): run by the extension script. */
Datum
jq_extension_created(PG_FUNCTION_ARGS)
{
	if (!jq_preloaded)
		ereport(WARNING,
				(errmsg("job_queue is not in shared_preload_libraries: no in-server worker will run jobs"),
				 errdetail("Jobs can be enqueued, and external workers can run them with jq_dequeue()."),
				 errhint("Add job_queue to shared_preload_libraries in postgresql.conf and restart the server.")));
	else
		jq_recheck_at_commit();
	PG_RETURN_VOID();
}
