/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of job_queue: databases, executor slots, and waking
 *	  the processes that wait on them.
 *
 * The launcher, the schedulers, the executors and ordinary backends all
 * meet here.  Everything in JqShared is protected by its single LWLock;
 * waking a process means setting its latch while holding it, so that a
 * process that is exiting cannot leave a dangling latch behind.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "job_queue.h"
#include "monitor.h"

JqShared   *jq_shared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static Size
shm_size(void)
{
	return add_size(offsetof(JqShared, executors),
					mul_size(jq_max_executors, sizeof(JqExecutor)));
}

static void
shm_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(shm_size());
	RequestNamedLWLockTranche(JQ_LIBRARY_NAME, 1);
	jq_monitor_shmem_request();
}

static void
shm_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	jq_shared = ShmemInitStruct(JQ_LIBRARY_NAME, shm_size(), &found);
	if (!found)
	{
		memset(jq_shared, 0, shm_size());
		jq_shared->lock = &(GetNamedLWLockTranche(JQ_LIBRARY_NAME))->lock;
	}
	jq_monitor_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while shared_preload_libraries is processed. */
void
jq_shmem_init(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shm_request;
#else
	shm_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shm_startup;
}

/* The entry of a database, or NULL.  Caller holds the lock. */
JqDatabase *
jq_find_database(Oid dboid)
{
	for (int i = 0; i < JQ_MAX_DATABASES; i++)
	{
		if (jq_shared->databases[i].dboid == dboid)
			return &jq_shared->databases[i];
	}
	return NULL;
}

/*
 * The entry of a database, created in state UNKNOWN if it has none; NULL
 * when the table is full.  Caller holds the lock exclusively.
 */
JqDatabase *
jq_get_database(Oid dboid)
{
	JqDatabase *db = jq_find_database(dboid);

	if (db == NULL && (db = jq_find_database(InvalidOid)) != NULL)
	{
		memset(db, 0, sizeof(JqDatabase));
		db->dboid = dboid;
		db->state = JQ_DB_UNKNOWN;
		db->next_wakeup = DT_NOEND;
	}
	return db;
}

void
jq_wake_launcher(void)
{
	LWLockAcquire(jq_shared->lock, LW_SHARED);
	if (jq_shared->launcher_latch)
		SetLatch(jq_shared->launcher_latch);
	LWLockRelease(jq_shared->lock);
}

/*
 * Wake one idle executor of a database, other than skip_slot.  An executor
 * marks itself idle before its last look for work, so a job committed
 * before this call is seen either by that look or by the claim this wakeup
 * causes.
 */
void
jq_wake_executor(Oid dboid, int kinds, int skip_slot)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < jq_max_executors && kinds != 0; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (i != skip_slot && e->dboid == dboid && e->idle && e->latch &&
			(kinds & JQ_KIND_BIT(e->kind)))
		{
			e->idle = false;
			SetLatch(e->latch);
			kinds &= ~JQ_KIND_BIT(e->kind);
		}
	}
	LWLockRelease(jq_shared->lock);
}

/*
 * Whether jq_cancel asked an executor to stop a job; read without the lock.
 * No slot: a job run for an external worker, which jq_cancel waits for.
 */
bool
jq_cancel_requested(volatile JqExecutor *slot, int64 job_id)
{
	for (int i = 0; slot != NULL && i < JQ_MAX_CANCELS; i++)
	{
		if (slot->cancel_jobs[i] == job_id)
			return true;
	}
	return false;
}

/* When the scheduler of a database will wake: DT_NOEND if nothing is due. */
TimestampTz
jq_next_wakeup(Oid dboid)
{
	JqDatabase *db;
	TimestampTz when = DT_NOEND;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	db = jq_find_database(dboid);
	if (db)
		when = db->next_wakeup;
	LWLockRelease(jq_shared->lock);
	return when;
}

/*
 * A timeout for WaitLatch: the milliseconds from now until "when", rounded
 * up so as not to wake early, at most a day; -1 (none) for DT_NOEND.
 */
long
jq_ms_until(TimestampTz when)
{
	long		secs;
	int			usecs;

	if (when == DT_NOEND)
		return -1;
	TimestampDifference(GetCurrentTimestamp(), when, &secs, &usecs);
	return Min(secs, 24L * 60 * 60) * 1000 + (usecs + 999) / 1000;
}

/* Wake the scheduler of a database if its timer would fire after "when". */
void
jq_wake_scheduler(Oid dboid, TimestampTz when)
{
	JqDatabase *db;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db = jq_find_database(dboid);
	if (db && db->scheduler_latch && when < db->next_wakeup)
	{
		db->next_wakeup = when;
		SetLatch(db->scheduler_latch);
	}
	LWLockRelease(jq_shared->lock);
}

/*
 * Stop the scheduler and executors of a database and wait until they have
 * left it, so that DROP DATABASE, ALTER DATABASE ... RENAME and CREATE
 * DATABASE ... TEMPLATE find no other sessions.  With block, the launcher
 * starts nothing there until jq_unblock_database.
 */
void
jq_stop_database_workers(Oid dboid, bool block)
{
	for (int waited_ms = 0;; waited_ms += 10)
	{
		JqDatabase *db;
		int			running = 0;

		LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
		db = block ? jq_get_database(dboid) : jq_find_database(dboid);
		if (db)
		{
			/* a probe this cuts short must not count as an answer */
			if (block && !db->blocked)
			{
				db->blocked = true;
				db->recheck++;
			}
			if (db->scheduler_pid != 0)
			{
				kill(db->scheduler_pid, SIGTERM);
				running++;
			}
		}
		for (int i = 0; i < jq_max_executors; i++)
		{
			JqExecutor *e = &jq_shared->executors[i];

			if (e->dboid == dboid && e->pid != 0)
			{
				kill(e->pid, SIGTERM);
				running++;
			}
		}
		LWLockRelease(jq_shared->lock);

		if (running == 0)
			return;
		if (waited_ms >= 10000)
		{
			ereport(WARNING,
					(errmsg("job_queue workers of database %u did not stop within 10 seconds", dboid)));
			return;
		}
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
}

/* Ask the launcher to find out again whether a database has the extension. */
static void
shm_recheck(Oid dboid, bool unblock)
{
	JqDatabase *db;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db = jq_get_database(dboid);
	if (db)
	{
		/* a database command does not change whether the extension is there */
		if (unblock)
			db->blocked = false;
		else if (db->state != JQ_DB_ACTIVE)
			db->state = JQ_DB_UNKNOWN;
		db->recheck++;
	}
	if (jq_shared->launcher_latch)
		SetLatch(jq_shared->launcher_latch);
	LWLockRelease(jq_shared->lock);
}

void
jq_recheck_database(Oid dboid)
{
	shm_recheck(dboid, false);
}

/* Let the launcher start the database's scheduler again. */
void
jq_unblock_database(Oid dboid)
{
	shm_recheck(dboid, true);
}
