/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *	  Commit-time wakeups of job_queue workers, and NOTIFY for external ones.
 *
 * Background workers cannot LISTEN, so a backend that makes a job runnable
 * only notes it here; a transaction callback then wakes an executor (job
 * ready now) or the scheduler (job due later) when the transaction commits.
 * Nothing is woken on abort, so no worker ever looks for a job that may
 * still roll back.  The callback only sets latches: it cannot fail.
 *
 * External workers LISTEN on channel jq_jobs.  NOTIFY serialises committing
 * transactions on a cluster-wide lock, so with jq.notify = auto it is sent
 * only while some session of the database has called jq_listen().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "api.h"
#include "guc.h"
#include "job_queue.h"
#include "protocol.h"
#include "shmem.h"
#include "wakeup.h"

/* what to do when the current transaction commits */
static int	wake_executor_kinds = 0;	/* JQ_KIND_BIT of each kind made ready */
static TimestampTz wake_scheduler_at = DT_NOEND;
static bool recheck_pending = false;
static bool wake_launcher_pending = false;
static bool wake_all_pending = false;

/*
 * Whether this session counts as a listener for jq.notify = auto, and the
 * change its transaction makes to that: jq_listen() starts counting, and
 * UNLISTEN, DISCARD ALL and the end of the session stop, as they end the
 * LISTEN itself, when the transaction commits.
 */
typedef enum ListenChange
{
	LISTEN_UNCHANGED,
	LISTEN_START,
	LISTEN_STOP
} ListenChange;

static bool listening = false;
static bool listener_exit_registered = false;
static ListenChange listen_change = LISTEN_UNCHANGED;

/* the subtransaction that made listen_change, and what it was before */
static SubTransactionId listen_change_subid = InvalidSubTransactionId;
static ListenChange listen_change_before = LISTEN_UNCHANGED;

static void listener_apply(ListenChange change);

static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (jq_shared == NULL)
				break;
			if (recheck_pending)
				jq_recheck_database(MyDatabaseId);
			if (wake_launcher_pending)
				jq_wake_launcher();
			if (wake_all_pending)
			{
				jq_wake_database_executors(MyDatabaseId);
				jq_wake_scheduler(MyDatabaseId, DT_NOBEGIN);
			}
			if (wake_executor_kinds)
				jq_wake_executor(MyDatabaseId, wake_executor_kinds, -1);
			if (wake_scheduler_at != DT_NOEND)
				jq_wake_scheduler(MyDatabaseId, wake_scheduler_at);
			listener_apply(listen_change);
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_executor_kinds = 0;
			wake_scheduler_at = DT_NOEND;
			recheck_pending = false;
			wake_launcher_pending = false;
			wake_all_pending = false;
			listen_change = LISTEN_UNCHANGED;
			listen_change_subid = InvalidSubTransactionId;
			break;
		default:
			break;
	}
}

/* A LISTEN or UNLISTEN rolled back with its subtransaction is undone here too. */
static void
wakeup_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (mySubid != listen_change_subid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		listen_change = listen_change_before;
	if (event == SUBXACT_EVENT_ABORT_SUB || event == SUBXACT_EVENT_COMMIT_SUB)
		listen_change_subid = parentSubid;
}

/* What this transaction does to the session's LISTEN, as of now. */
static void
listener_change(ListenChange change)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (subid != listen_change_subid)
	{
		listen_change_before = listen_change;
		listen_change_subid = subid;
	}
	listen_change = change;
}

void
jq_wakeup_init(void)
{
	RegisterXactCallback(wakeup_xact_callback, NULL);
	RegisterSubXactCallback(wakeup_subxact_callback, NULL);
}

/* Jobs of the given kinds become runnable at run_at once this transaction commits. */
void
jq_wake_at_commit_for(TimestampTz run_at, int kinds)
{
	if (run_at <= GetCurrentTimestamp())
		wake_executor_kinds |= kinds;
	else if (run_at < wake_scheduler_at)
		wake_scheduler_at = run_at;
}

/* Once this transaction commits, the launcher re-checks this database. */
void
jq_recheck_at_commit(void)
{
	recheck_pending = true;
}

/* Once this transaction commits, the launcher re-reads pg_database. */
void
jq_wake_launcher_at_commit(void)
{
	wake_launcher_pending = true;
}

/* Once this transaction commits, every worker of this database re-checks it. */
void
jq_wake_database_at_commit(void)
{
	wake_all_pending = true;
}

/* NOTIFY jq_jobs with the queue's name, as jq.notify says. */
void
jq_notify_enqueued(text *queue)
{
	bool		send;

	switch (jq_notify_mode)
	{
		case JQ_NOTIFY_ON:
			send = true;
			break;
		case JQ_NOTIFY_AUTO:
			if (jq_shared == NULL)
				send = true;	/* no in-server workers: external ones need it */
			else
				send = jq_database_listened(MyDatabaseId);
			break;
		default:
			send = false;
			break;
	}
	if (send)
		Async_Notify(JQ_NOTIFY_CHANNEL, text_to_cstring(queue));
}

/* Count this session as a listener of its database, or stop counting it. */
static void
listener_count(bool listen)
{
	bool		counted;

	if (listen == listening)
		return;
	counted = jq_count_listener(MyDatabaseId, listen);
	listening = listen && counted;
}

static void
listener_exit(int code, Datum arg)
{
	listener_count(false);
}

/* At commit: what the transaction did to this session's LISTEN. */
static void
listener_apply(ListenChange change)
{
	if (change == LISTEN_UNCHANGED)
		return;
	if (change == LISTEN_START && !listener_exit_registered)
	{
		before_shmem_exit(listener_exit, (Datum) 0);
		listener_exit_registered = true;
	}
	listener_count(change == LISTEN_START);
}

/* This transaction ends the session's LISTEN on jq_jobs (UNLISTEN, DISCARD ALL). */
void
jq_listen_stop_at_commit(void)
{
	listener_change(LISTEN_STOP);
}

PG_FUNCTION_INFO_V1(jq_listen);

/*
 * jq_listen(): LISTEN jq_jobs, and count this session as a listener while
 * it listens, so that jq.notify = auto sends notifications.  Notifications
 * slow every enqueuing commit of the cluster, so turning them on is a right
 * of workers: members of jq_worker or jq_admin.
 */
Datum
jq_listen(PG_FUNCTION_ARGS)
{
	if (!jq_is_worker(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to listen for job_queue jobs"),
				 errdetail("Listening makes every enqueue send a notification, which slows down all enqueuing transactions."),
				 errhint("Grant role %s to the role of the worker, or LISTEN %s without counting as a listener.",
						 JQ_WORKER_ROLE, JQ_NOTIFY_CHANNEL)));
	PreventCommandDuringRecovery("jq_listen()");
	Async_Listen(JQ_NOTIFY_CHANNEL);
	if (jq_shared != NULL)
		listener_change(LISTEN_START);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(jq_notify_due);

/*
 * jq._notify_due(): the scheduler found jobs due, delayed ones or retries
 * whose enqueue notified nobody at the time; the empty payload stands for
 * any queue.
 */
Datum
jq_notify_due(PG_FUNCTION_ARGS)
{
	jq_notify_enqueued(cstring_to_text(""));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(jq_wake_at_commit);

/* jq._wake_at_commit(run_at): jq_wake_at_commit_for jobs of any kind. */
Datum
jq_wake_at_commit(PG_FUNCTION_ARGS)
{
	jq_wake_at_commit_for(PG_GETARG_TIMESTAMPTZ(0), JQ_KINDS_ALL);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(jq_wake_scheduler_at_commit);

/*
 * jq._wake_scheduler_at_commit(at): once this transaction commits, wake the
 * scheduler at that instant (at once if it has passed) unless its timer is
 * set earlier.
 */
Datum
jq_wake_scheduler_at_commit(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(0);

	if (at < wake_scheduler_at)
		wake_scheduler_at = at;
	PG_RETURN_VOID();
}
