/*-------------------------------------------------------------------------
 *
 * slots.c
 *	  The executor slots in shared memory: each change of a slot, as one
 *	  named function, and the cancellations jq_cancel asks of executors.
 *
 * A slot goes from free to handed out (the launcher, pool.c), registered
 * (its scheduler started the worker), attached (the executor runs), and
 * back to free (the executor gave it back, or its scheduler freed it once
 * the worker had gone).  Together with shmem.c, this file is the only
 * code that takes the lock of JqShared or writes a slot; the functions
 * documented "caller holds the lock" are for shmem.c and pool.c, which
 * call them under it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "job_queue.h"
#include "shmem.h"

/*
 * An executor takes over the slot its scheduler reserved, unless it was
 * handed on since.  Returns the slot, or NULL when it is not ours.
 */
volatile JqExecutor *
jq_slot_attach(int slotno, const JqExecutorStart *start, int64 token)
{
	volatile JqExecutor *slot = &jq_shared->executors[slotno];
	bool		mine;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	mine = slot->dboid == start->dboid &&
		slot->generation == start->generation && slot->pid == 0;
	if (mine)
	{
		JqDatabase *db = jq_find_database(start->dboid);

		if (db)
			jq_pool_wait_over(db);
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->token = token;
		slot->current_job = 0;
		memset((void *) slot->cancel_jobs, 0, sizeof(slot->cancel_jobs));
	}
	LWLockRelease(jq_shared->lock);
	return mine ? slot : NULL;
}

/* The executor of a slot is leaving it. */
void
jq_slot_detach(volatile JqExecutor *slot)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->pid = 0;
	slot->latch = NULL;
	slot->idle = false;
	LWLockRelease(jq_shared->lock);
}

void
jq_slot_set_idle(volatile JqExecutor *slot, bool idle)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->idle = idle;
	LWLockRelease(jq_shared->lock);
}

/*
 * Before looking for work: mark the executor idle, so that commits wake it,
 * and forget cancellations meant for the jobs of its previous claim (those
 * for the next one can only come once it has claimed them).
 */
void
jq_slot_before_claim(volatile JqExecutor *slot)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->idle = true;
	memset((void *) slot->cancel_jobs, 0, sizeof(slot->cancel_jobs));
	LWLockRelease(jq_shared->lock);
}

/*
 * A claim found nothing and no commit woke the executor since: whatever
 * asked for one more executor of its kind has been served.  Not so when
 * the launcher asked the executor to leave: it stopped counting then
 * (jq_pool_count), so a request made since was made because it is going,
 * perhaps for a retry that came due after its claim began, and it leaves
 * without asking again (jq_slot_leave_pool).
 */
void
jq_slot_found_nothing(volatile JqExecutor *slot)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (slot->idle && !slot->leave)
	{
		JqDatabase *db = jq_find_database(MyDatabaseId);

		if (db)
		{
			db->want[slot->kind] = false;
			jq_pool_wait_over(db);
		}
	}
	LWLockRelease(jq_shared->lock);
}

/* The job the executor runs now, or 0. */
void
jq_slot_set_current(volatile JqExecutor *slot, int64 job_id)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->current_job = job_id;
	LWLockRelease(jq_shared->lock);
}

/* The process group of the shell job the executor runs now, or 0. */
void
jq_slot_set_shell_pgid(volatile JqExecutor *slot, pid_t pgid)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->shell_pgid = pgid;
	LWLockRelease(jq_shared->lock);
}

/*
 * Whether the executor may leave the pool holding no job: asked to by the
 * launcher (leave), or idle, unless a commit woke it meanwhile.  One that
 * leaves busy, or woken, asks for an executor again: its kind may have
 * work left.
 */
bool
jq_slot_leave_pool(volatile JqExecutor *slot, bool busy)
{
	bool		go;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	go = slot->leave || slot->idle;
	if (go)
	{
		JqDatabase *db = jq_find_database(MyDatabaseId);

		if ((busy || !slot->idle) && db)
		{
			/* not counted any more, so that the request counts */
			slot->leave = true;
			jq_request_executor(db, slot->kind);
		}
		slot->leave = true;
		slot->clean_exit = true;
	}
	LWLockRelease(jq_shared->lock);
	return go;
}

/* The executor gives its slot back (the extension was dropped). */
void
jq_slot_give_back(volatile JqExecutor *slot)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	slot->dboid = InvalidOid;
	LWLockRelease(jq_shared->lock);
}

/*
 * Whether a slot belongs to a database, with the pid of its executor (0:
 * none runs) and its generation, read at once.
 */
bool
jq_slot_owned(int slotno, Oid dboid, pid_t *pid, uint32 *generation)
{
	JqExecutor *e = &jq_shared->executors[slotno];
	bool		ours;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	ours = e->dboid == dboid;
	*pid = e->pid;
	*generation = e->generation;
	LWLockRelease(jq_shared->lock);
	return ours;
}

/* Free a slot unless it was handed out again since generation. */
void
jq_slot_free(int slotno, uint32 generation)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (jq_shared->executors[slotno].generation == generation)
		jq_shared->executors[slotno].dboid = InvalidOid;
	LWLockRelease(jq_shared->lock);
}

/*
 * A scheduler frees a slot of its database whose process is gone, unless
 * it was handed out again since generation, and kills the processes of the
 * shell job it ran.  Unless it left holding no job, the database asks for
 * another executor of its kind.  Returns whether it freed the slot, with
 * its token, the job it was running and whether it left holding none.
 */
bool
jq_slot_release(int slotno, JqDatabase *db, uint32 generation, int64 *token,
				int64 *current_job, bool *clean)
{
	JqExecutor *e = &jq_shared->executors[slotno];
	bool		freed = false;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	if (e->dboid == db->dboid && e->generation == generation)
	{
		freed = true;
		*token = e->token;
		*current_job = e->current_job;
		*clean = e->clean_exit;
		/* a shell job's processes do not outlive the executor that ran them */
		if (e->shell_pgid != 0)
			kill(-e->shell_pgid, SIGKILL);
		e->dboid = InvalidOid;
		if (*token != 0 && !*clean)
			jq_request_executor(db, e->kind);
	}
	LWLockRelease(jq_shared->lock);
	return freed;
}

/* The scheduler starts the worker of a slot: its kind, and *generation. */
JqJobKind
jq_slot_register(int slotno, uint32 *generation)
{
	JqExecutor *e = &jq_shared->executors[slotno];
	JqJobKind	kind;

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	kind = e->kind;
	e->registered = true;
	*generation = e->generation;
	LWLockRelease(jq_shared->lock);
	return kind;
}

/* The postmaster could not start the worker: give the slot back and ask again. */
void
jq_slot_register_failed(int slotno, JqDatabase *db, JqJobKind kind)
{
	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	jq_shared->executors[slotno].dboid = InvalidOid;
	jq_request_executor(db, kind);
	LWLockRelease(jq_shared->lock);
}

/*
 * The job an executor of this database runs (current_job) and its process:
 * *pid and *kind, or false when no executor runs it.
 */
bool
jq_slot_running(int64 job_id, pid_t *pid, JqJobKind *kind)
{
	bool		found = false;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	for (int s = 0; s < jq_max_executors; s++)
	{
		JqExecutor *x = &jq_shared->executors[s];

		if (x->dboid == MyDatabaseId && x->current_job == job_id && x->pid != 0)
		{
			*pid = x->pid;
			*kind = x->kind;
			found = true;
		}
	}
	LWLockRelease(jq_shared->lock);
	return found;
}

/* The job the in-server executor of this process runs, or 0. */
int64
jq_slot_own_job(void)
{
	int64		job_id = 0;

	LWLockAcquire(jq_shared->lock, LW_SHARED);
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->pid == MyProcPid && e->dboid == MyDatabaseId)
			job_id = e->current_job;
	}
	LWLockRelease(jq_shared->lock);
	return job_id;
}

/*
 * Hand a free slot to a database, for its scheduler to start.  Caller
 * holds the lock exclusively.
 */
void
jq_slot_hand_out(JqExecutor *e, JqDatabase *db, JqJobKind kind)
{
	e->dboid = db->dboid;
	e->kind = kind;
	e->generation++;
	e->handed_out = GetCurrentTimestamp();
	e->registered = false;
	e->leave = false;
	e->clean_exit = false;
	e->pid = 0;
	e->latch = NULL;
	e->idle = false;
	e->token = 0;
	e->current_job = 0;
	e->shell_pgid = 0;
	memset(e->cancel_jobs, 0, sizeof(e->cancel_jobs));

	/* it waits on until the executor has started */
	db->want[kind] = false;
	SetLatch(db->scheduler_latch);
}

/*
 * Ask the executor of a slot to leave before its next claim; an idle one
 * is woken to go at once.  Caller holds the lock exclusively.
 */
void
jq_slot_ask_to_leave(JqExecutor *e)
{
	e->leave = true;
	if (e->idle)
		SetLatch(e->latch);
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

PG_FUNCTION_INFO_V1(jq_request_cancel);

/*
 * jq._request_cancel(token, job_id): ask the executor holding a job to stop
 * it.  The executor records the job cancelled: at once if it has not
 * started it yet, or when the interrupted statement returns.
 */
Datum
jq_request_cancel(PG_FUNCTION_ARGS)
{
	int64		token = PG_GETARG_INT64(0);
	int64		job_id = PG_GETARG_INT64(1);
	bool		found = false;
	bool		full = false;

	if (jq_shared == NULL)
		PG_RETURN_BOOL(false);

	LWLockAcquire(jq_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < jq_max_executors && !found; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];
		int			free_entry = -1;

		if (e->dboid != MyDatabaseId || e->token != token || e->pid == 0)
			continue;
		found = true;
		for (int c = 0; c < JQ_MAX_CANCELS && free_entry < 0; c++)
		{
			if (e->cancel_jobs[c] == job_id || e->cancel_jobs[c] == 0)
				free_entry = c;
		}
		if (free_entry < 0)
		{
			full = true;
			break;
		}
		e->cancel_jobs[free_entry] = job_id;
		if (e->current_job == job_id)
			kill(e->pid, SIGINT);
	}
	LWLockRelease(jq_shared->lock);

	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many cancellations are pending for the executor running job %lld",
						(long long) job_id),
				 errhint("Try again once the executor has finished its current jobs.")));
	PG_RETURN_BOOL(found);
}
