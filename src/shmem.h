/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Shared memory of job_queue: the databases, the executor slots, and
 *	  the functions of shmem.c and slots.c, the only code that takes its
 *	  lock or writes it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_SHMEM_H
#define JQ_SHMEM_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "job_queue.h"

/* databases the launcher can track at once */
#define JQ_MAX_DATABASES	256

/* cancellations an executor can hold for the jobs of one claim */
#define JQ_MAX_CANCELS		16

/*
 * What the launcher knows of a database.
 *
 *	 UNKNOWN --(scheduler finds the extension)--> ACTIVE
 *	 UNKNOWN --(scheduler finds no extension)---> ABSENT
 *	 ACTIVE  --(DROP EXTENSION)-----------------> ABSENT
 *	 ABSENT  --(CREATE EXTENSION, CREATE/ALTER DATABASE)--> UNKNOWN
 */
typedef enum JqDbState
{
	JQ_DB_UNKNOWN,
	JQ_DB_ACTIVE,
	JQ_DB_ABSENT
} JqDbState;

typedef struct JqDatabase
{
	Oid			dboid;			/* InvalidOid: free entry */
	JqDbState	state;
	bool		blocked;		/* a DROP/RENAME/COPY of it is under way */
	pid_t		scheduler_pid;	/* 0 while none runs */
	Latch	   *scheduler_latch;
	TimestampTz next_wakeup;	/* when the scheduler's timer fires */
	int			nlisteners;		/* sessions that called jq_listen() */
	uint32		recheck;		/* bumped by each request to look again */
	/* the executor pool (pool.c) */
	bool		want[2];		/* by JqJobKind: one more executor is asked for */
	bool		probe;			/* jobs of some kind became runnable: the scheduler looks */
	bool		scheduler_failed;	/* its last scheduler did not leave cleanly */
	TimestampTz waiting_since;	/* oldest request not answered yet, or 0 */
	bool		waiting_logged; /* the wait is in the server log */
} JqDatabase;

/*
 * One executor slot.  The launcher hands it to a database (pool.c); that
 * database's scheduler starts its worker and frees it once it has exited.
 */
typedef struct JqExecutor
{
	Oid			dboid;			/* InvalidOid: free slot */
	JqJobKind	kind;
	uint32		generation;		/* bumped each time the slot is handed out */
	TimestampTz handed_out;		/* when */
	bool		registered;		/* the scheduler has started its worker */
	bool		leave;			/* asked to leave before its next claim */
	bool		clean_exit;		/* it left holding no job: nothing to take back */
	pid_t		pid;			/* 0 until the executor has started */
	Latch	   *latch;
	bool		idle;			/* waiting for work; wake it to claim */
	int64		token;			/* marks the jobs it claimed (executor_token) */
	int64		current_job;	/* job it is running now, or 0 */
	pid_t		shell_pgid;		/* process group of its running shell job, or 0 */
	/* jobs of its current claim that jq_cancel asked it to stop; 0: free */
	int64		cancel_jobs[JQ_MAX_CANCELS];
} JqExecutor;

typedef struct JqShared
{
	LWLock	   *lock;			/* protects everything below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	/* a background worker could not be started: hand out nothing until one exits */
	TimestampTz shortage_since;
	/* a worker was asked to leave for a waiting database; 0: none */
	TimestampTz preempted_at;
	JqDatabase	databases[JQ_MAX_DATABASES];
	JqExecutor	executors[FLEXIBLE_ARRAY_MEMBER];
} JqShared;

/* what a scheduler passes to the executor it starts, in bgw_extra */
typedef struct JqExecutorStart
{
	Oid			dboid;
	uint32		generation;
} JqExecutorStart;

/*
 * shmem.c and slots.c: the only code that takes the lock of JqShared or
 * writes its fields.  Functions marked "caller holds the lock" are called
 * under it by these two files and pool.c.
 */
extern JqShared *jq_shared;
extern void jq_shmem_init(void);
extern JqDatabase *jq_find_database(Oid dboid);
extern JqDatabase *jq_get_database(Oid dboid);
extern void jq_wake_launcher(void);
extern void jq_wake_executor(Oid dboid, int kinds, int skip_slot);
extern void jq_wake_scheduler(Oid dboid, TimestampTz when);
extern void jq_stop_database_workers(Oid dboid, bool block);
extern void jq_unblock_database(Oid dboid);
extern void jq_recheck_database(Oid dboid);
extern TimestampTz jq_next_wakeup(Oid dboid);
extern long jq_ms_until(TimestampTz when);

typedef void (*JqDatabaseVisitor) (int i, JqDatabase *db, JqDatabase *first, void *arg);

extern void jq_launcher_attach(void);
extern void jq_launcher_detach(void);
extern void jq_sync_databases(List *oids);
extern void jq_scheduler_stopped(int i, Oid dboid, uint32 recheck);
extern void jq_visit_databases(JqDatabaseVisitor visit, void *arg);
extern JqDatabase jq_database_copy(int i);
extern void jq_probe_active_databases(void);

extern JqDatabase *jq_scheduler_attach(Oid dboid, uint32 *recheck);
extern void jq_scheduler_detach(JqDatabase *db, bool idle);
extern void jq_scheduler_found_extension(JqDatabase *db, bool present, uint32 recheck);
extern void jq_scheduler_look_for_jobs(JqDatabase *db);
extern bool jq_scheduler_take_probe(JqDatabase *db);
extern void jq_scheduler_request_missing(JqDatabase *db, const bool *found);
extern bool jq_scheduler_may_leave(JqDatabase *db);
extern bool jq_scheduler_timer_due(JqDatabase *db, bool needed);
extern void jq_scheduler_set_timer(JqDatabase *db, TimestampTz when);

extern void jq_wake_database_executors(Oid dboid);
extern bool jq_database_listened(Oid dboid);
extern bool jq_count_listener(Oid dboid, bool listen);

extern void jq_request_executor(JqDatabase *db, JqJobKind kind);
extern void jq_request_probe(JqDatabase *db);
extern void jq_pool_wait_over(JqDatabase *db);
extern void jq_pool_withdraw(JqDatabase *db, JqJobKind kind);
extern void jq_pool_wait_logged(JqDatabase *db);
extern void jq_pool_preempted(TimestampTz now);
extern void jq_pool_worker_exited(void);
extern void jq_pool_shortage(void);
extern void jq_pool_expire_holds(TimestampTz now, int hold_ms);
extern long jq_hand_out_executors(void);
extern void jq_shmem_copy(JqDatabase *databases, JqExecutor *executors);

/* slots.c */
extern volatile JqExecutor *jq_slot_attach(int slotno, const JqExecutorStart *start,
										   int64 token);
extern void jq_slot_detach(volatile JqExecutor *slot);
extern void jq_slot_set_idle(volatile JqExecutor *slot, bool idle);
extern void jq_slot_before_claim(volatile JqExecutor *slot);
extern void jq_slot_found_nothing(volatile JqExecutor *slot);
extern void jq_slot_set_current(volatile JqExecutor *slot, int64 job_id);
extern void jq_slot_set_shell_pgid(volatile JqExecutor *slot, pid_t pgid);
extern bool jq_slot_leave_pool(volatile JqExecutor *slot, bool busy);
extern void jq_slot_give_back(volatile JqExecutor *slot);
extern bool jq_slot_owned(int slotno, Oid dboid, pid_t *pid, uint32 *generation);
extern void jq_slot_free(int slotno, uint32 generation);
extern bool jq_slot_release(int slotno, JqDatabase *db, uint32 generation, int64 *token,
							int64 *current_job, bool *clean);
extern JqJobKind jq_slot_register(int slotno, uint32 *generation);
extern void jq_slot_register_failed(int slotno, JqDatabase *db, JqJobKind kind);
extern bool jq_slot_running(int64 job_id, pid_t *pid, JqJobKind *kind);
extern int64 jq_slot_own_job(void);
extern void jq_slot_hand_out(JqExecutor *e, JqDatabase *db, JqJobKind kind);
extern void jq_slot_ask_to_leave(JqExecutor *e);
extern bool jq_cancel_requested(volatile JqExecutor *slot, int64 job_id);

#endif							/* JQ_SHMEM_H */
