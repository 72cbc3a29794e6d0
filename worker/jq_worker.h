/*-------------------------------------------------------------------------
 *
 * jq_worker.h
 *	  Declarations shared by the files of jq_worker, the external worker of
 *	  job_queue: a client program that takes jobs over libpq and runs them.
 *
 * One process, one thread, one poll() loop (jq_worker.c).  The control
 * connection (control.c) LISTENs for new jobs (or a connection of its own
 * does, listen.c), claims them with
 * jq_dequeue, extends their leases and records how they ended.  Each job
 * runs in a slot (job.c): a shell job as a child process group
 * (src/shell_run.c); SQL jobs in batches, in the server, each as its
 * owner, by jq_run_sql_many over the slot's own connection (sql_job.c).  Every connection is
 * non-blocking (conn.c), so that timeouts, signals and output are handled
 * while the server is slow or gone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_WORKER_H
#define JQ_WORKER_H

#include "postgres_fe.h"

#include <poll.h>

#include "libpq-fe.h"
#include "protocol.h"
#include "shell_run.h"

/* no deadline */
#define NEVER				PG_INT64_MAX

/* command line (options.c) */
typedef struct WorkerOptions
{
	char	   *dsn;			/* NULL: libpq's environment variables */
	char	  **queues;			/* NULL-terminated, or NULL: every queue */
	bool		run_shell;
	bool		run_sql;
	int			concurrency;
	int			batch_size;		/* SQL jobs per jq_run_sql_many call */
	int			lease_ms;
	size_t		output_limit;
	int			kill_grace_ms;
	int			shutdown_grace_ms;
	int			recheck_ms;
	char	   *name;			/* lease owner */
	int			log_level;		/* LOG_LEVEL_* */
	char	   *listen_dsn;		/* --listen-dsn, or NULL */
	bool		listen;			/* false: --no-listen */
} WorkerOptions;

extern void options_parse(int argc, char **argv, WorkerOptions *opts);

/* log lines and the clock (log.c) */
#define LOG_LEVEL_QUIET		0	/* failures and connections */
#define LOG_LEVEL_JOBS		1	/* and a line per job */
#define LOG_LEVEL_VERBOSE	2	/* and every step */
extern int	log_level;
extern int64 now_ms(void);
extern void log_event(int64 job_id, const char *fmt,...) pg_attribute_printf(2, 3);
extern void log_job(int64 job_id, const char *fmt,...) pg_attribute_printf(2, 3);
extern void log_detail(int64 job_id, const char *fmt,...) pg_attribute_printf(2, 3);

/* wait before connecting again after a failure: doubles from min to max */
#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	30000

/* the descriptors one round of the loop waits on (jq_worker.c) */
typedef struct PollSet
{
	struct pollfd *fds;
	int			n;
	int			size;
} PollSet;

extern int	pollset_add(PollSet *ps, int fd, short events);
extern void worker_track_group(int slot_index, pid_t pgid);

/*
 * A non-blocking connection (conn.c).
 *
 *	 DOWN --conn_connect--> CONNECTING --(connected)--> READY
 *	 CONNECTING, READY --(failure, conn_close)--> DOWN
 */
typedef enum ConnState
{
	CONN_DOWN,
	CONN_CONNECTING,
	CONN_READY
} ConnState;

typedef enum ConnEvent
{
	CONN_NOTHING,
	CONN_CONNECTED,
	CONN_RESULT,				/* the query in flight ended */
	CONN_FAILED					/* the connection is gone; see error */
} ConnEvent;

typedef struct Conn
{
	PGconn	   *pg;
	ConnState	state;
	PostgresPollingStatusType polling;	/* what PQconnectPoll waits for */
	bool		busy;			/* a query is in flight */
	bool		flushing;		/* some of it is still to be sent */
	PGresult   *result;			/* its result so far: the first error, or
								 * the last result */
	char	   *error;			/* why it failed last */
	int			pollidx;		/* in this round's PollSet, or -1 */
} Conn;

extern void conn_init(Conn *c);
extern void conn_connect(Conn *c, const char *dsn);
extern void conn_want(Conn *c, PollSet *ps);
extern ConnEvent conn_advance(Conn *c, const PollSet *ps, PGresult **result);
extern bool conn_send(Conn *c, const char *sql, int nparams, const char *const *values);
extern ConnEvent conn_fail(Conn *c, const char *message);
extern void conn_close(Conn *c);
extern bool conn_server_utf8(const Conn *c);

/* A job as jq_dequeue handed it out (job.c). */
typedef struct Job
{
	char	   *id;				/* numbers as text, for queries */
	int64		id_num;			/* for log lines */
	char	   *attempt;
	char	   *max_attempts;
	char	   *queue;
	char	   *kind;
	char	   *command;
	char	  **argv;
	char	  **env;			/* the job's env, then the JQ_* variables */
	char	   *working_dir;
	char	   *payload;		/* JSON text, or NULL */
	int64		timeout_ms;		/* 0: none */
} Job;

/*
 * A place for one running shell job, or one batch of SQL jobs.
 *
 *	 FREE --claimed--> RUNNING --ended--> REPORT --sent--> REPORTING --> FREE
 *	 RUNNING --(SQL jobs recorded on their own connection, lease lost)--> FREE
 *	 REPORTING --(control connection lost)--> REPORT
 */
typedef enum SlotState
{
	SLOT_FREE,
	SLOT_RUNNING,
	SLOT_REPORT,				/* ended: its outcome waits for the control
								 * connection */
	SLOT_REPORTING				/* its outcome is being recorded */
} SlotState;

/* why a job is being stopped */
typedef enum StopReason
{
	STOP_NONE,
	STOP_TIMEOUT,
	STOP_LEASE_LOST,			/* cancelled, or its lease expired */
	STOP_SHUTDOWN
} StopReason;

/* where a SQL job is, on its own connection (sql_job.c) */
typedef enum SqlPhase
{
	SQL_CONNECTING,
	SQL_RUN						/* jq_run_sql_many in flight */
} SqlPhase;

typedef struct Slot
{
	int			index;
	SlotState	state;
	uint64		claim;			/* counts the jobs the slot took */
	Job			job;
	int64		started_at;
	int64		timeout_at;		/* NEVER without a timeout */
	int64		kill_at;		/* when a stopping job gets SIGKILL */
	int64		heartbeat_at;	/* when its lease is extended next */
	bool		heartbeat_sent;
	StopReason	stop;
	/* a shell job */
	JqShellProcess proc;
	bool		proc_started;
	/* a batch of SQL jobs */
	bool		is_sql;
	Job		   *batch;			/* its jobs, in the order they run */
	int			nbatch;
	int			batch_done;		/* the jobs before this one were dealt with */
	bool		release_rest;	/* REPORT: give the rest back, not fail them */
	char	   *rest_ids;		/* int8[] and int4[] literals of the rest, */
	char	   *rest_attempts;	/* for the control connection */
	Conn		sql;			/* kept open for the slot's next batch */
	bool		sql_fresh;		/* connected for this batch */
	SqlPhase	phase;
	/* the outcome to record */
	bool		succeeded;
	char	   *error;
	char	   *result;			/* JSON text, or NULL */
	bool		retry;			/* jq_fail's retry */
} Slot;

/* what the control connection is doing */
typedef enum ControlTask
{
	TASK_NONE,
	TASK_LISTEN,
	TASK_DEQUEUE,
	TASK_HEARTBEAT,
	TASK_REPORT
} ControlTask;

typedef struct Worker
{
	WorkerOptions opts;
	Conn		control;
	int64		reconnect_at;	/* when the control connection is tried again */
	int			backoff_ms;		/* wait before the next attempt */
	bool		listening;		/* control is ready (and listens, if it
								 * listens) */
	Conn		listener;		/* --listen-dsn (listen.c) */
	int64		listener_reconnect_at;
	int			listener_backoff_ms;
	bool		listener_asked;	/* jq_listen() sent */
	ControlTask task;			/* query in flight on control */
	ControlTask last_task;		/* the one sent last */
	Slot	   *heartbeat_slot; /* TASK_HEARTBEAT: the job's slot */
	uint64		heartbeat_claim;	/* and that slot's claim then */
	Slot	  **reporting;		/* TASK_REPORT: the slots whose outcomes are
								 * being recorded, one column each */
	int			nreporting;
	bool		report_singly;	/* after a failed batch, one at a time */
	bool		server_utf8;	/* the database takes any UTF-8 text */
	uint64		wakeups;		/* notifications and rechecks seen */
	uint64		wakeups_at_claim;	/* wakeups when the last claim was sent */
	bool		claim_wanted;	/* jobs may be waiting for us */
	int			claim_asked;	/* jobs the claim in flight asked for */
	bool		claim_sql;		/* it claims SQL jobs, not shell jobs */
	int			short_claims;	/* claims in a row that got less than asked */
	int64		recheck_at;		/* look for jobs even with no notification */
	char	   *queues_array;	/* text[] literals of the claim's filters */
	char	   *kinds_array;
	char	   *shell_kinds_array;	/* the kinds of one claim */
	char	   *sql_kinds_array;
	char	   *lease_text;		/* interval literal */
	Slot	   *slots;
	Job		   *pool;			/* SQL jobs claimed ahead, waiting for a slot */
	int			npool;
	int			pool_size;		/* room in pool */
	bool		fast_batches;	/* the last batch ended within a quarter of
								 * the lease: claim ahead */
	bool		stopping;		/* SIGTERM: claim nothing more */
	int64		stop_at;		/* then stop the jobs still running */
	int64		give_up_at;		/* then exit, recorded or not */
} Worker;

/* control.c */
extern void control_init(Worker *w);
extern void control_step(Worker *w, int64 now);
extern void control_want(Worker *w, PollSet *ps);
extern void control_advance(Worker *w, const PollSet *ps, int64 now);
extern int64 control_next_event(const Worker *w);
extern void control_take_notifications(Worker *w, PGconn *pg);

/* listen.c */
extern void listen_init(Worker *w);
extern void listen_step(Worker *w, int64 now);
extern void listen_want(Worker *w, PollSet *ps);
extern void listen_advance(Worker *w, const PollSet *ps, int64 now);
extern int64 listen_next_event(const Worker *w);

/* job.c */
extern void job_start(Worker *w, Slot *slot, PGresult *res, int row);
extern void job_read_sql(Job *job, PGresult *res, int row);
extern void job_start_sql(Worker *w, Slot *slot, Job *jobs, int n);
extern void job_give_back(Worker *w, Slot *slot, Job *jobs, int n);
extern void job_step(Worker *w, Slot *slot, int64 now);
extern int64 job_next_event(const Slot *slot);
extern void job_want(Slot *slot, PollSet *ps);
extern void job_advance(Worker *w, Slot *slot, const PollSet *ps);
extern void job_stop(Worker *w, Slot *slot, StopReason reason, int64 now);
extern void job_outcome(Worker *w, Slot *slot, bool succeeded, const char *error, char *result);
extern void job_end(Worker *w, Slot *slot, bool succeeded, const char *error, char *result);
#define JOB_OUTCOME_PARAMS 5
extern void job_outcome_call(Slot *slot, StringInfo sql, const char **values,
							 int *nvalues);
extern void job_recorded(Slot *slot, bool recorded);
extern void job_release(Slot *slot);
extern void job_kill(Slot *slot);

/* sql_job.c */
extern void sql_job_start(Worker *w, Slot *slot);
extern void sql_job_advance(Worker *w, Slot *slot, const PollSet *ps);
extern void sql_job_cancel(Slot *slot);
extern void sql_job_abandon(Worker *w, Slot *slot, const char *why);
extern void sql_job_outcome_call(Slot *slot, StringInfo sql, const char **values,
								 int *nvalues);
extern void sql_job_recorded(const Slot *slot, const char *answer);

#endif							/* JQ_WORKER_H */
