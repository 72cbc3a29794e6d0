/*-------------------------------------------------------------------------
 *
 * job_queue.h
 *	  Declarations shared by the files of the job_queue extension.
 *
 * Process model: one launcher per cluster starts a scheduler in each
 * database that has the extension and work to do, and hands out executor
 * slots among them (pool.c); each scheduler starts executors that run SQL
 * jobs, and executors that run shell jobs.  They meet in the shared memory
 * described below.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOB_QUEUE_H
#define JOB_QUEUE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define JQ_EXTENSION_NAME	"job_queue"
#define JQ_LIBRARY_NAME		"job_queue"
#define JQ_NOTIFY_CHANNEL	"jq_jobs"
#define JQ_ADMIN_ROLE		"jq_admin"
#define JQ_WORKER_ROLE		"jq_worker"

/* databases the launcher can track at once */
#define JQ_MAX_DATABASES	256

/* cancellations an executor can hold for the jobs of one claim */
#define JQ_MAX_CANCELS		16

/* settings (guc.c) */
typedef enum JqNotifyMode
{
	JQ_NOTIFY_OFF,
	JQ_NOTIFY_ON,
	JQ_NOTIFY_AUTO
} JqNotifyMode;

extern bool jq_execute_in_server;
extern int	jq_max_executors;
extern int	jq_executors_per_database;
extern int	jq_batch_size;
extern int	jq_batch_time_ms;
extern int	jq_default_max_attempts;
extern int	jq_default_timeout_ms;
extern int	jq_backoff_base_ms;
extern int	jq_backoff_cap_ms;
extern int	jq_history_retention_s;
extern int	jq_notify_mode;
extern int	jq_shell_executors_per_database;
extern int	jq_shell_output_limit_kb;
extern int	jq_shell_kill_grace_ms;
extern int	jq_executor_idle_timeout_ms;

extern void jq_guc_init(bool preloading);
extern void jq_worker_settings(void);

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
 * The kinds of jobs; an executor runs jobs of one kind.  Task jobs name a
 * handler of an application's worker: no executor runs them, only external
 * workers claim them.
 */
typedef enum JqJobKind
{
	JQ_KIND_SQL,
	JQ_KIND_SHELL,
	JQ_KIND_TASK
} JqJobKind;

#define JQ_NUM_KINDS 2			/* the kinds executors run */
/* the executors to wake for jobs of a kind: none for tasks */
#define JQ_KIND_BIT(kind)	((kind) < JQ_NUM_KINDS ? 1 << (kind) : 0)
#define JQ_KINDS_ALL		(JQ_KIND_BIT(JQ_KIND_SQL) | JQ_KIND_BIT(JQ_KIND_SHELL))

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

/* shmem.c */
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
extern bool jq_cancel_requested(volatile JqExecutor *slot, int64 job_id);
extern TimestampTz jq_next_wakeup(Oid dboid);
extern long jq_ms_until(TimestampTz when);

/* pool.c: executors on demand, handed out fairly among databases */
extern void jq_request_executor(JqDatabase *db, JqJobKind kind);
extern void jq_request_probe(JqDatabase *db);
extern void jq_pool_wait_over(JqDatabase *db);
extern int	jq_pool_size(JqJobKind kind);
extern int	jq_pool_count(Oid dboid, int kind);
extern void jq_pool_worker_exited(void);
extern void jq_pool_shortage(void);
extern long jq_pool_hand_out(void);
extern JqDatabase *jq_pool_first_in_line(void);

/* wakeup.c: commit-time wakeups and NOTIFY */
extern void jq_wakeup_init(void);
extern void jq_wake_at_commit_for(TimestampTz run_at, int kinds);
extern void jq_notify_enqueued(text *queue);
extern void jq_recheck_at_commit(void);
extern void jq_wake_launcher_at_commit(void);
extern void jq_wake_database_at_commit(void);
extern void jq_listen_stop_at_commit(void);

/* launcher.c */
extern bool jq_preloaded;
extern void jq_launcher_register(void);
extern PGDLLEXPORT void jq_launcher_main(Datum main_arg);

/* scheduler.c */
extern PGDLLEXPORT void jq_scheduler_main(Datum main_arg);

/* executor.c */
extern const char *const jq_executor_type[JQ_NUM_KINDS];
extern int64 jq_interval_ms(const Interval *iv);
extern PGDLLEXPORT void jq_executor_main(Datum main_arg);

/* job_run.c: one SQL job in a subtransaction */
typedef enum JqOutcome
{
	JQ_OUTCOME_SUCCEEDED,
	JQ_OUTCOME_ERROR,			/* retried while attempts remain */
	JQ_OUTCOME_CANCELLED,
	JQ_OUTCOME_REJECTED,		/* failed, not retried */
	JQ_OUTCOME_RELEASED			/* cut short by a shutdown: ready again */
} JqOutcome;

typedef struct JqJob
{
	int64		id;
	int32		attempts;		/* its attempt number, this one counted */
	char	   *command;		/* NULL for a shell job given as argv */
	Oid			owner;
	int64		timeout_ms;		/* 0: none */
	/* shell jobs */
	char	  **argv;			/* NULL-terminated, or NULL */
	char	  **env;			/* "NAME=value", NULL-terminated */
	char	   *working_dir;
	/* filled by jq_run_job or jq_run_shell_job */
	JqOutcome	outcome;
	char	   *result;			/* JSON text: the last statement's rows, or a shell job's output */
	char	   *error;			/* error message, or NULL */
	char	   *error_code;		/* its SQLSTATE */
	bool		timed_out;
	bool		changed_transaction;	/* ran SET CONSTRAINTS: commit before the next job */
	bool		interrupted;	/* a query cancel came while it ran (not its timeout) */
	TimestampTz started;
	TimestampTz finished;
} JqJob;

extern void jq_job_run_init(void);
extern void jq_run_job(JqJob *job, volatile JqExecutor *slot);
extern void jq_job_changed_transaction(void);

/* outcome.c: the outcomes of jobs run in the server, recorded */
extern void jq_finish_jobs(const JqJob *jobs, int n, int wake_kinds);

/* shell_job.c: one shell job in a child process */
extern void jq_shell_job_init(void);
extern void jq_run_shell_job(JqJob *job, volatile JqExecutor *slot);
extern void jq_kill_orphaned_shell_jobs(void);

/* claim_trace.c: claims written where a crash of the server cannot lose them */
extern void jq_claim_trace_open(int slotno);
extern void jq_claim_trace_write(const JqJob *jobs, int n);
extern void jq_claim_trace_update(const JqJob *jobs, int n);
extern void jq_claim_trace_clear(int slotno);
extern void jq_claim_trace_forget_database(Oid dboid);
extern void jq_claim_trace_restore(void);

/* utility.c */
extern void jq_utility_init(void);

/* api.c */
extern bool jq_may_run_shell(Oid role);
extern bool jq_is_admin(Oid role);
extern bool jq_is_worker(Oid role);

/*
 * internal_sql.c: the extension's own SQL, as the extension owner, under a
 * pinned search_path.  jq_as_owner switches to the owner and pins the path
 * until jq_as_caller.
 */
#define JQ_PINNED_SEARCH_PATH "pg_catalog, pg_temp"

typedef struct JqUserContext
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
} JqUserContext;

/* where jq_execute_for_caller gathers the ids a statement returns */
typedef struct JqIds
{
	int64	   *ids;
	uint64		n;
	uint64		max;
} JqIds;

struct _SPI_plan;

extern void jq_pin_search_path(int source, int action);
extern void jq_as_owner(JqUserContext *ctx);
extern void jq_as_caller(JqUserContext *ctx);
extern struct _SPI_plan *jq_prepare(const char *sql, int nargs, Oid *types);
extern int	jq_execute_plan(struct _SPI_plan *plan, Datum *values, const char *nulls,
							long count);
extern int	jq_execute_plan_latest(struct _SPI_plan *plan, Datum *values, const char *nulls,
								   long count);
extern int	jq_execute(const char *sql, int nargs, Oid *types, Datum *values,
					   const char *nulls);
extern int	jq_execute_for_caller(struct _SPI_plan *plan, Datum *values, const char *nulls,
								  JqIds *ids);

/* queue_settings.c: a queue's row in jq.queue, as enqueueing applies it */
typedef struct JqQueueSettings
{
	bool		has_priority;
	int32		default_priority;
	bool		has_max_attempts;
	int32		default_max_attempts;
	bool		has_timeout;
	Interval	default_timeout;
	bool		limited;
	int32		max_ready;		/* 0: no limit */
} JqQueueSettings;

extern const JqQueueSettings *jq_queue_settings(const char *name);

#endif							/* JOB_QUEUE_H */
