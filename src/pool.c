/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The executor pool: executors on demand, handed out fairly among the
 *	  databases, and jq_executor_pool(), which the jq_executors view shows.
 *
 * A database asks for an executor of a kind (want) when a job of that kind
 * becomes runnable and no idle executor of the kind can take it; when the
 * kind is not known, its scheduler looks first (probe).  Only the launcher
 * hands out executor slots, one request at a time: first to the database
 * with the fewest executors, among equals to the one that has waited
 * longest.  The database's scheduler then starts the worker; executors
 * leave after jq.executor_idle_timeout with nothing to do, and schedulers
 * once their database has no executor and nothing to wait for.
 *
 * When the request first in line cannot be met (jq.max_executors are all
 * handed out, or the postmaster had no background worker slot left), the
 * launcher makes room: it asks an idle executor to leave (of any database,
 * the one with the most executors first), else, when the waiting database
 * has no executor or two fewer than another, a busy executor that has had
 * its slot for POOL_QUANTUM_MS, of the database with the most.  A busy
 * executor leaves before its next claim and asks for an executor again, so
 * databases with endless work take turns.  One worker is asked at a time;
 * the next only once a worker has exited, or POOL_RETRY_MS later.
 *
 * A scheduler holds a worker slot too.  Only the database first in line
 * keeps one while it waits: the launcher starts no other scheduler for
 * requests, and the scheduler of a database that has no executor leaves
 * unless its database is first in line.
 *
 * Waiting for a slot is a latch wait of the launcher and of the database's
 * scheduler; nothing here runs SQL.  Nothing here takes the lock of shared
 * memory or writes it either: the hand-out runs under the lock shmem.c takes
 * (jq_hand_out_executors) and records its decisions through shmem.c and
 * slots.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "api.h"
#include "guc.h"
#include "job_queue.h"
#include "pool.h"
#include "shmem.h"

/* a busy executor keeps its slot at least this long before it makes room */
#define POOL_QUANTUM_MS 1000
/* a shortage, or a worker asked to leave, holds the hand-out this long at most */
#define POOL_RETRY_MS 1000
/* a database that waits this long for an executor is named in the log, once */
#define POOL_LOG_WAIT_MS 5000

/* Executors a database asks for at most, of one kind. */
int
jq_pool_size(JqJobKind kind)
{
	if (!jq_execute_in_server)
		return 0;
	return kind == JQ_KIND_SHELL ? jq_shell_executors_per_database : jq_executors_per_database;
}

/*
 * Executors of a kind (-1: of any kind) a database has or is about to
 * have, not counting those asked to leave.  Caller holds the lock.
 */
int
jq_pool_count(Oid dboid, int kind)
{
	int			n = 0;

	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid == dboid && !e->leave && (kind < 0 || e->kind == (JqJobKind) kind))
			n++;
	}
	return n;
}

/*
 * The request first in line: of the database with the fewest executors,
 * among equals the oldest.  Requests that can no longer be met are
 * dropped.  Caller holds the lock exclusively.
 */
static bool
pool_first_request(JqDatabase **first, JqJobKind *first_kind)
{
	int			best_count = INT_MAX;
	TimestampTz best_since = DT_NOEND;

	*first = NULL;
	for (int i = 0; i < JQ_MAX_DATABASES; i++)
	{
		JqDatabase *db = &jq_shared->databases[i];
		int			count;

		if (db->dboid == InvalidOid)
			continue;
		for (int kind = 0; kind < JQ_NUM_KINDS; kind++)
		{
			if (db->want[kind] &&
				(db->state == JQ_DB_ABSENT ||
				 jq_pool_count(db->dboid, kind) >= jq_pool_size((JqJobKind) kind)))
			{
				jq_pool_withdraw(db, (JqJobKind) kind);
			}
		}
		if (!db->want[JQ_KIND_SQL] && !db->want[JQ_KIND_SHELL])
			continue;
		if (db->blocked)
			continue;
		count = jq_pool_count(db->dboid, -1);
		if (count < best_count || (count == best_count && db->waiting_since < best_since))
		{
			best_count = count;
			best_since = db->waiting_since;
			*first = db;
			*first_kind = db->want[JQ_KIND_SQL] ? JQ_KIND_SQL : JQ_KIND_SHELL;
		}
	}
	return *first != NULL;
}

/* The database whose request comes first, or NULL.  Caller holds the lock exclusively. */
JqDatabase *
jq_pool_first_in_line(void)
{
	JqDatabase *db;
	JqJobKind	kind;

	return pool_first_request(&db, &kind) ? db : NULL;
}

/* Hand a free slot to a database, for its scheduler to start. */
static bool
pool_hand_slot(JqDatabase *db, JqJobKind kind)
{
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];

		if (e->dboid != InvalidOid)
			continue;
		jq_slot_hand_out(e, db, kind);
		return true;
	}
	return false;
}

/*
 * Ask one worker to leave so that "target" can have an executor.  Returns
 * whether one was asked; otherwise *retry_ms says when a busy executor
 * will have had its quantum (-1: none will do).
 */
static bool
pool_make_room(JqDatabase *target, JqJobKind kind, long *retry_ms)
{
	int			target_count = jq_pool_count(target->dboid, -1);
	JqExecutor *idle = NULL;
	JqExecutor *busy = NULL;
	int			idle_count = -1;
	int			busy_count = -1;

	*retry_ms = -1;
	for (int i = 0; i < jq_max_executors; i++)
	{
		JqExecutor *e = &jq_shared->executors[i];
		int			count;

		if (e->dboid == InvalidOid || e->leave || e->pid == 0 ||
			(e->dboid == target->dboid && (!e->idle || e->kind == kind)))
			continue;
		count = jq_pool_count(e->dboid, -1);
		if (e->idle)
		{
			/* idle, of any database: its database has no work for it */
			if (count > idle_count)
			{
				idle = e;
				idle_count = count;
			}
		}
		else if (count > busy_count && count >= target_count + 2 - (target_count == 0))
		{
			long		ms = jq_ms_until(TimestampTzPlusMilliseconds(e->handed_out, POOL_QUANTUM_MS));

			if (ms > 0)
				*retry_ms = *retry_ms < 0 ? ms : Min(*retry_ms, ms);
			else
			{
				busy = e;
				busy_count = count;
			}
		}
	}
	if (idle)
	{
		jq_slot_ask_to_leave(idle);
		return true;
	}
	if (busy)
	{
		/* it leaves before its next claim: no job of it is cut short */
		jq_slot_ask_to_leave(busy);
		return true;
	}
	return false;
}

/*
 * The launcher's hand-out: answer requests while slots are free, and make
 * room for the first that cannot be answered.  Returns how long to sleep
 * before looking again (-1: until woken).  Caller holds the lock
 * exclusively (jq_hand_out_executors).
 */
long
jq_pool_hand_out_locked(TimestampTz now)
{
	long		timeout_ms = -1;
	JqDatabase *db;
	JqJobKind	kind;

	jq_pool_expire_holds(now, POOL_RETRY_MS);

	while (pool_first_request(&db, &kind))
	{
		bool		short_of_workers = jq_shared->shortage_since != 0;

		/* a database without a scheduler gets one first (launcher.c) */
		if (db->scheduler_latch == NULL && !short_of_workers)
		{
			timeout_ms = POOL_RETRY_MS;
			break;
		}
		if (!short_of_workers && db->scheduler_latch != NULL && pool_hand_slot(db, kind))
			continue;

		if (!db->waiting_logged &&
			TimestampDifferenceExceeds(db->waiting_since, now, POOL_LOG_WAIT_MS))
		{
			ereport(LOG,
					(errmsg("job_queue database %u has waited %d seconds for an executor",
							db->dboid, POOL_LOG_WAIT_MS / 1000),
					 errdetail("%s", short_of_workers ?
							   "The server has no background worker slot free." :
							   "Every executor slot (jq.max_executors) is in use."),
					 errhint("Databases take turns; see the sizing rule in the job_queue README.")));
			jq_pool_wait_logged(db);
		}
		if (jq_shared->preempted_at == 0)
		{
			long		retry_ms;

			if (pool_make_room(db, kind, &retry_ms))
				jq_pool_preempted(now);
			else if (retry_ms >= 0 && retry_ms < POOL_RETRY_MS)
				timeout_ms = retry_ms;
		}
		/* executors that go idle meanwhile can make room: look again */
		if (timeout_ms < 0)
			timeout_ms = POOL_RETRY_MS;
		break;
	}
	/*
	 * A scheduler that must start for its timer, or to look for jobs, needs
	 * a worker slot too: during a shortage, the database takes its turn.
	 */
	for (int i = 0; jq_shared->shortage_since != 0 && jq_shared->preempted_at == 0 &&
		 i < JQ_MAX_DATABASES; i++)
	{
		JqDatabase *due = &jq_shared->databases[i];
		long		retry_ms;

		if (due->dboid != InvalidOid && due->state == JQ_DB_ACTIVE && !due->blocked &&
			due->scheduler_latch == NULL && (due->probe || due->next_wakeup <= now) &&
			pool_make_room(due, JQ_KIND_SQL, &retry_ms))
			jq_pool_preempted(now);
	}
	/* no scheduler starts during a shortage, not even for its timer */
	if (jq_shared->shortage_since != 0 && (timeout_ms < 0 || timeout_ms > POOL_RETRY_MS))
		timeout_ms = POOL_RETRY_MS;
	return timeout_ms;
}

/* One row of jq_executor_pool(). */
typedef struct PoolRow
{
	Oid			dboid;
	int			counts[JQ_NUM_KINDS][2];	/* running, idle */
	int			wanted;
	TimestampTz waiting_since;
} PoolRow;

PG_FUNCTION_INFO_V1(jq_executor_pool);

/*
 * jq_executor_pool(): per database with the extension, its executors by
 * kind and state, the executors it asks for, and since when.  Members of
 * jq_admin see every database, other roles their own.  The rows are read
 * at the first call, under the lock at once.
 */
Datum
jq_executor_pool(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	PoolRow    *rows;

	if (SRF_IS_FIRSTCALL())
	{
		bool		all = jq_is_admin(GetUserId());
		MemoryContext old;
		TupleDesc	tupdesc;
		int			n = 0;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		rows = palloc0(sizeof(PoolRow) * JQ_MAX_DATABASES);
		funcctx->user_fctx = rows;

		if (jq_shared != NULL)
		{
			JqDatabase *dbs = palloc(sizeof(JqDatabase) * JQ_MAX_DATABASES);
			JqExecutor *executors = palloc(sizeof(JqExecutor) * jq_max_executors);

			jq_shmem_copy(dbs, executors);
			for (int i = 0; i < JQ_MAX_DATABASES; i++)
			{
				JqDatabase *db = &dbs[i];
				PoolRow    *row = &rows[n];

				if (db->dboid == InvalidOid || db->state != JQ_DB_ACTIVE ||
					(!all && db->dboid != MyDatabaseId))
					continue;
				row->dboid = db->dboid;
				for (int j = 0; j < jq_max_executors; j++)
				{
					JqExecutor *e = &executors[j];

					if (e->dboid == db->dboid)
						row->counts[e->kind][e->idle ? 1 : 0]++;
				}
				row->wanted = (int) db->want[JQ_KIND_SQL] + (int) db->want[JQ_KIND_SHELL];
				row->waiting_since = db->waiting_since;
				n++;
			}
			pfree(dbs);
			pfree(executors);
		}
		funcctx->max_calls = n;
		MemoryContextSwitchTo(old);
	}

	funcctx = SRF_PERCALL_SETUP();
	rows = funcctx->user_fctx;
	if (funcctx->call_cntr < funcctx->max_calls)
	{
		PoolRow    *row = &rows[funcctx->call_cntr];
		Datum		values[7];
		bool		nulls[7] = {0};

		values[0] = ObjectIdGetDatum(row->dboid);
		values[1] = Int32GetDatum(row->counts[JQ_KIND_SQL][0]);
		values[2] = Int32GetDatum(row->counts[JQ_KIND_SQL][1]);
		values[3] = Int32GetDatum(row->counts[JQ_KIND_SHELL][0]);
		values[4] = Int32GetDatum(row->counts[JQ_KIND_SHELL][1]);
		values[5] = Int32GetDatum(row->wanted);
		values[6] = TimestampTzGetDatum(row->waiting_since);
		nulls[6] = row->waiting_since == 0;
		SRF_RETURN_NEXT(funcctx,
						HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc, values, nulls)));
	}
	SRF_RETURN_DONE(funcctx);
}
