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
 * This file and slots.c (the executor slots) are the only code that takes
 * that lock or writes JqShared: each change is a named function here, and
 * what one of them reads and writes under one acquisition of the lock is
 * atomic.  pool.c decides the hand-out of slots under the lock this file
 * takes, and records its decisions through the functions marked "caller
 * holds the lock".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "guc.h"
#include "job_queue.h"
#include "monitor.h"
#include "pool.h"
#include "shmem.h"

JqShared   *jq_shared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
shm_size(void)
{
	return add_size(offsetof(JqShared, executors),
					mul_size(jq_max_executors, sizeof(JqExecutor)));
}

static void
shm_request(void)
{
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
	jq_on_shmem_request(shm_request);
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
 * causes.  A kind with no idle executor asks for one more (pool.c); jobs of
 * any kind ask the scheduler to look which kinds have none at all.
 */
void
jq_wake_executor(Oid dboid, int kinds, int skip_slot)
{
	bool		any = kinds == JQ_KINDS_ALL;
	JqDatabase *db;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < jq_max_executors && kinds != 0; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (i != skip_slot && e->dboid == dboid && e->idle && !e->leave && e->latch &&
			(kinds & JQ_KIND_BIT(e->kind)))
		{
			e->idle = false;
			SetLatch(e->latch);
			kinds &= ~JQ_KIND_BIT(e->kind);
		}
	}
	db = kinds != 0 ? jq_find_database(dboid) : NULL;
	for (int kind = 0; db != NULL && kind < JQ_NUM_KINDS; kind++)
	{
		if (!(kinds & JQ_KIND_BIT(kind)))
			continue;
		if (!any)
			jq_request_executor(db, (JqJobKind) kind);
		else if (jq_pool_count(dboid, kind) == 0)
			jq_request_probe(db);
	}
	LWLockRelease(jq_shared->lock);
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

/*
 * Wake the scheduler of a database if its timer would fire after "when".
 * While the database has no scheduler, the launcher keeps its timer.
 */
void
jq_wake_scheduler(Oid dboid, TimestampTz when)
{
	JqDatabase *db;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db = jq_find_database(dboid);
	if (db && when < db->next_wakeup)
	{
		db->next_wakeup = when;
		if (db->scheduler_latch)
			SetLatch(db->scheduler_latch);
		else if (jq_shared->launcher_latch)
			SetLatch(jq_shared->launcher_latch);
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

/* ------------------------------------------------------------------------
 * The launcher
 * ------------------------------------------------------------------------
 */

void
jq_launcher_attach(void)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	jq_shared->launcher_pid = MyProcPid;
	jq_shared->launcher_latch = MyLatch;
	LWLockRelease(jq_shared->lock);
}

void
jq_launcher_detach(void)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	jq_shared->launcher_pid = 0;
	jq_shared->launcher_latch = NULL;
	LWLockRelease(jq_shared->lock);
}

/*
 * Bring the database entries in line with the databases that exist (oids):
 * forget those dropped, and the executor slots their workers left.
 */
void
jq_sync_databases(List *oids)
{
	ListCell   *lc;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < JQ_MAX_DATABASES; i++)
	{
		JqDatabase *db = &jq_shared->databases[i];

		if (db->dboid == InvalidOid || list_member_oid(oids, db->dboid) ||
			db->scheduler_pid != 0)
			continue;
		/* dropped: forget it, and the executor slots its workers left */
		for (int j = 0; j < jq_max_executors; j++)
		{
			JqExecutor *e = &jq_shared->executors[j];

			if (e->dboid == db->dboid && e->pid == 0)
				e->dboid = InvalidOid;
		}
		memset(db, 0, sizeof(JqDatabase));
	}
	foreach(lc, oids)
	{
		if (jq_get_database(lfirst_oid(lc)) == NULL)
		{
			ereport(WARNING,
					(errmsg("job_queue can track at most %d databases", JQ_MAX_DATABASES)));
			break;
		}
	}
	LWLockRelease(jq_shared->lock);
}

/*
 * A scheduler the launcher started for a database (dboid, at its recheck
 * count) has stopped: one that died probing, before deciding, leaves the
 * database ABSENT.
 */
void
jq_scheduler_stopped(int i, Oid dboid, uint32 recheck)
{
	JqDatabase *db = &jq_shared->databases[i];

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (db->dboid == dboid && db->state == JQ_DB_UNKNOWN && db->recheck == recheck)
		db->state = JQ_DB_ABSENT;
	LWLockRelease(jq_shared->lock);
}

/*
 * Call visit for every database entry, with the database first in line for
 * an executor (pool.c), all under the lock held exclusively; unless the
 * postmaster is short of worker slots.  visit only reads.
 */
void
jq_visit_databases(JqDatabaseVisitor visit, void *arg)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (jq_shared->shortage_since == 0)
	{
		JqDatabase *first = jq_pool_first_in_line();

		for (int i = 0; i < JQ_MAX_DATABASES; i++)
			visit(i, &jq_shared->databases[i], first, arg);
	}
	LWLockRelease(jq_shared->lock);
}

/* A copy of the entry of database i, read at once. */
JqDatabase
jq_database_copy(int i)
{
	JqDatabase	copy;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	copy = jq_shared->databases[i];
	LWLockRelease(jq_shared->lock);
	return copy;
}

/* Every database that has the extension looks for jobs again. */
void
jq_probe_active_databases(void)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < JQ_MAX_DATABASES; i++)
	{
		if (jq_shared->databases[i].state == JQ_DB_ACTIVE)
			jq_request_probe(&jq_shared->databases[i]);
	}
	LWLockRelease(jq_shared->lock);
}

/* ------------------------------------------------------------------------
 * A database's scheduler
 * ------------------------------------------------------------------------
 */

/*
 * The scheduler of a database takes its entry, unless the database is
 * blocked or has a scheduler; returns it, or NULL.  *recheck: the entry's
 * recheck count now.
 */
JqDatabase *
jq_scheduler_attach(Oid dboid, uint32 *recheck)
{
	JqDatabase *db;
	bool		ok;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db = jq_find_database(dboid);
	ok = db != NULL && !db->blocked && db->scheduler_pid == 0;
	if (ok)
	{
		db->scheduler_pid = MyProcPid;
		db->scheduler_latch = MyLatch;
		db->next_wakeup = DT_NOEND;
		*recheck = db->recheck;
		/* requests of the database wait for its scheduler (pool.c) */
		if (jq_shared->launcher_latch)
			SetLatch(jq_shared->launcher_latch);
	}
	LWLockRelease(jq_shared->lock);
	return ok ? db : NULL;
}

/*
 * The scheduler leaves its database: idle (its timer stays with the
 * launcher) or not (it is to come back).  Its executors follow.
 */
void
jq_scheduler_detach(JqDatabase *db, bool idle)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db->scheduler_pid = 0;
	db->scheduler_latch = NULL;
	/* leaving idle, it leaves its timer to the launcher; else it comes back */
	db->scheduler_failed = !idle;
	if (!idle)
		db->next_wakeup = DT_NOBEGIN;
	/* the executors follow; the next scheduler takes back their jobs */
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid != db->dboid)
			continue;
		if (e->pid != 0)
			kill(e->pid, SIGTERM);
		else if (!e->registered)
		{
			/* handed out, never started: the next scheduler asks again */
			e->dboid = InvalidOid;
			db->want[e->kind] = true;
		}
	}
	/* whatever was asked of it meanwhile, the launcher answers */
	if (jq_shared->launcher_latch)
		SetLatch(jq_shared->launcher_latch);
	LWLockRelease(jq_shared->lock);
}

/*
 * What the scheduler found: the extension is there (ACTIVE), or is not
 * (ABSENT, unless a request to look again came after recheck).
 */
void
jq_scheduler_found_extension(JqDatabase *db, bool present, uint32 recheck)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (present)
		db->state = JQ_DB_ACTIVE;
	else if (db->recheck == recheck)
		db->state = JQ_DB_ABSENT;
	LWLockRelease(jq_shared->lock);
}

/* The scheduler looks for ready jobs at its next turn. */
void
jq_scheduler_look_for_jobs(JqDatabase *db)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db->probe = true;
	LWLockRelease(jq_shared->lock);
}

/* Whether the scheduler is to look for ready jobs; the request is taken. */
bool
jq_scheduler_take_probe(JqDatabase *db)
{
	bool		probe;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	probe = db->probe;
	db->probe = false;
	LWLockRelease(jq_shared->lock);
	return probe;
}

/* Ask for an executor of each kind that has ready jobs (found) and none. */
void
jq_scheduler_request_missing(JqDatabase *db, const bool *found)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int kind = 0; kind < JQ_NUM_KINDS; kind++)
	{
		if (found[kind] && jq_pool_count(db->dboid, kind) == 0)
			jq_request_executor(db, (JqJobKind) kind);
	}
	LWLockRelease(jq_shared->lock);
}

/*
 * Whether the scheduler may leave: the database has no executor and waits
 * for none, or waits while another database is first in line (pool.c).
 */
bool
jq_scheduler_may_leave(JqDatabase *db)
{
	bool		leave;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	leave = !db->probe && jq_pool_first_in_line() != db;
	for (int i = 0; leave && i < jq_max_executors; i++)
	{
		if (jq_shared->executors[i].dboid == db->dboid)
			leave = false;
	}
	LWLockRelease(jq_shared->lock);
	return leave;
}

/*
 * Whether the scheduler's timer is due (or a tick is needed anyway); if
 * so the timer is cleared (DT_NOEND) until the tick sets it again, so that
 * no wakeup asked for meanwhile is lost.
 */
bool
jq_scheduler_timer_due(JqDatabase *db, bool needed)
{
	bool		due;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	due = needed || db->next_wakeup <= GetCurrentTimestamp();
	if (due)
		db->next_wakeup = DT_NOEND;
	LWLockRelease(jq_shared->lock);
	return due;
}

/* Set the scheduler's timer to "when", unless a backend asked for earlier meanwhile. */
void
jq_scheduler_set_timer(JqDatabase *db, TimestampTz when)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (when < db->next_wakeup)
		db->next_wakeup = when;
	LWLockRelease(jq_shared->lock);
}

/* ------------------------------------------------------------------------
 * Backends: listeners, and waking every worker of a database
 * ------------------------------------------------------------------------
 */

/* Set the latch of every executor of a database. */
void
jq_wake_database_executors(Oid dboid)
{
	LWLockAcquire(jq_shared->lock, LW_SHARED);
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid == dboid && e->latch)
			SetLatch(e->latch);
	}
	LWLockRelease(jq_shared->lock);
}

/* Whether some session of a database called jq_listen(). */
bool
jq_database_listened(Oid dboid)
{
	JqDatabase *db;
	bool		listened;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	db = jq_find_database(dboid);
	listened = db != NULL && db->nlisteners > 0;
	LWLockRelease(jq_shared->lock);
	return listened;
}

/*
 * Count one more listener of a database, or one fewer; false when the
 * database has no entry (and none could be made).
 */
bool
jq_count_listener(Oid dboid, bool listen)
{
	JqDatabase *db;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	db = listen ? jq_get_database(dboid) : jq_find_database(dboid);
	if (db && listen)
		db->nlisteners++;
	else if (db && db->nlisteners > 0)
		db->nlisteners--;
	LWLockRelease(jq_shared->lock);
	return db != NULL;
}

/* ------------------------------------------------------------------------
 * The executor pool's requests (pool.c decides; these record)
 * ------------------------------------------------------------------------
 */

static void
shm_wake_launcher_locked(void)
{
	if (jq_shared->launcher_latch)
		SetLatch(jq_shared->launcher_latch);
}

/*
 * Ask for one more executor of a kind for a database, unless it has as
 * many as it may.  Caller holds the lock exclusively; it cannot fail.
 */
void
jq_request_executor(JqDatabase *db, JqJobKind kind)
{
	if (db->state == JQ_DB_ABSENT || db->want[kind] ||
		jq_pool_count(db->dboid, kind) >= jq_pool_size(kind))
		return;
	db->want[kind] = true;
	if (db->waiting_since == 0)
		db->waiting_since = GetCurrentTimestamp();
	shm_wake_launcher_locked();
}

/*
 * Jobs of a kind not known became runnable: the scheduler looks which
 * kinds it has executors missing for.  Caller holds the lock exclusively.
 */
void
jq_request_probe(JqDatabase *db)
{
	if (db->state == JQ_DB_ABSENT || !jq_execute_in_server || db->probe)
		return;
	db->probe = true;
	if (db->scheduler_latch)
		SetLatch(db->scheduler_latch);
	else
		shm_wake_launcher_locked();
}

/*
 * A database's wait is over once it asks for nothing more and an executor
 * it asked for has started (or the request was withdrawn).  Caller holds
 * the lock exclusively.
 */
void
jq_pool_wait_over(JqDatabase *db)
{
	if (!db->want[JQ_KIND_SQL] && !db->want[JQ_KIND_SHELL])
	{
		db->waiting_since = 0;
		db->waiting_logged = false;
	}
}

/* A request that can no longer be met is dropped.  Caller holds the lock exclusively. */
void
jq_pool_withdraw(JqDatabase *db, JqJobKind kind)
{
	db->want[kind] = false;
	jq_pool_wait_over(db);
}

/* The server log named the database's wait.  Caller holds the lock exclusively. */
void
jq_pool_wait_logged(JqDatabase *db)
{
	db->waiting_logged = true;
}

/* A worker was asked to leave at "now".  Caller holds the lock exclusively. */
void
jq_pool_preempted(TimestampTz now)
{
	jq_shared->preempted_at = now;
}

/* A worker of ours has exited and freed its slot: hand out again. */
void
jq_pool_worker_exited(void)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	jq_shared->shortage_since = 0;
	jq_shared->preempted_at = 0;
	shm_wake_launcher_locked();
	LWLockRelease(jq_shared->lock);
}

/* The postmaster had no background worker slot left. */
void
jq_pool_shortage(void)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (jq_shared->shortage_since == 0)
		jq_shared->shortage_since = GetCurrentTimestamp();
	shm_wake_launcher_locked();
	LWLockRelease(jq_shared->lock);
}

/*
 * A shortage, or a worker asked to leave, older than hold_ms holds the
 * hand-out no more.  Caller holds the lock exclusively.
 */
void
jq_pool_expire_holds(TimestampTz now, int hold_ms)
{
	if (jq_shared->shortage_since != 0 &&
		TimestampDifferenceExceeds(jq_shared->shortage_since, now, hold_ms))
		jq_shared->shortage_since = 0;
	if (jq_shared->preempted_at != 0 &&
		TimestampDifferenceExceeds(jq_shared->preempted_at, now, hold_ms))
		jq_shared->preempted_at = 0;
}

/*
 * The launcher's hand-out of executor slots (pool.c), under the lock.
 * Returns how long to sleep before looking again (-1: until woken).
 */
long
jq_hand_out_executors(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout_ms;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	timeout_ms = jq_pool_hand_out_locked(now);
	LWLockRelease(jq_shared->lock);
	return timeout_ms;
}

/* A copy of the databases and the executor slots, read at once. */
void
jq_shmem_copy(JqDatabase *databases, JqExecutor *executors)
{
	LWLockAcquire(jq_shared->lock, LW_SHARED);
	memcpy(databases, jq_shared->databases, sizeof(jq_shared->databases));
	memcpy(executors, jq_shared->executors, sizeof(JqExecutor) * jq_max_executors);
	LWLockRelease(jq_shared->lock);
}

PG_FUNCTION_INFO_V1(jq_preloaded_now);

/*
 * jq._preloaded(): whether this server runs job_queue's workers.  When it
 * does not, no job is running in-server, whatever jq.job says.
 */
Datum
jq_preloaded_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(jq_shared != NULL);
}
