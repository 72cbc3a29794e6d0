/*-------------------------------------------------------------------------
 *
 * shell_job.c
 *	  Run one shell job from an in-server executor.
 *
 * A shell job runs programs as the server's operating-system user, so its
 * owner must still be a superuser or have the privileges of
 * pg_execute_server_program when it starts (they were checked at enqueue
 * too); if not, the job fails at once without running.
 *
 * The program runs in a process group of its own (shell_run.c).  The
 * executor waits on its latch, the program's output pipes and a timer, and
 * stops the whole group, SIGTERM first and SIGKILL jq.shell_kill_grace
 * later, when the job times out, when jq_cancel asks, or when the executor
 * is told to exit (server shutdown, pg_terminate_backend): the job is then
 * released, ready to run again with its attempt given back.  The process
 * group is published in the executor's slot so that the scheduler can kill
 * it if the executor dies, and a crash exit (SIGQUIT) kills it too.  An
 * executor killed outright (SIGKILL) can do neither, and a crash restart
 * forgets the slots: every process of a job carries a marker in its
 * environment, and the scheduler kills the marked processes of its database
 * when it starts (Linux, where /proc shows environments).
 *
 * No transaction is open while the program runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "api.h"
#include "compat.h"
#include "guc.h"
#include "job_run.h"
#include "protocol.h"
#include "shell_job.h"
#include "shell_run.h"
#include "shmem.h"

/* the group of the running job, for the crash-exit handler */
static volatile pid_t shell_running_pgid = 0;

/* Crash exit (SIGQUIT from the postmaster): take the job's processes along. */
static void
shell_quickdie(SIGNAL_ARGS)
{
	if (shell_running_pgid != 0)
		jq_shell_kill_group(shell_running_pgid);
	_exit(2);
}

static void
shell_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/* An executor that exits (FATAL, postmaster death) takes the job's processes along. */
static void
shell_kill_at_exit(int code, Datum arg)
{
	if (shell_running_pgid != 0)
		jq_shell_kill_group(shell_running_pgid);
}

void
jq_shell_job_init(void)
{
	pqsignal(SIGCHLD, shell_sigchld);
	pqsignal(SIGQUIT, shell_quickdie);
	on_proc_exit(shell_kill_at_exit, (Datum) 0);
}

static void
shell_publish_pgid(volatile JqExecutor *slot, pid_t pgid)
{
	shell_running_pgid = pgid;
	jq_slot_set_shell_pgid(slot, pgid);
}

/* "JQ_SERVER=<data directory>:<database>": marks the processes of this database's jobs. */
static char *
shell_marker(Oid dboid)
{
	return psprintf(JQ_ENV_SERVER "=%s:%u", DataDir, dboid);
}

/* Whether a process's environment holds the entry marker. */
static bool
shell_process_marked(const char *pid, const char *marker)
{
	char		path[MAXPGPATH];
	StringInfoData env;
	char		chunk[8192];
	ssize_t		n;
	int			fd;
	bool		marked = false;

	snprintf(path, sizeof(path), "/proc/%s/environ", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;			/* gone, or not ours */
	initStringInfo(&env);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		appendBinaryStringInfo(&env, chunk, (int) n);
	close(fd);

	for (int i = 0; i < env.len && !marked; i += strlen(env.data + i) + 1)
		marked = strcmp(env.data + i, marker) == 0;
	pfree(env.data);
	return marked;
}

/*
 * Kill whatever is left of the shell jobs this database's executors ran
 * before: called by the scheduler when it starts, once no executor of the
 * database runs.
 */
void
jq_kill_orphaned_shell_jobs(void)
{
#ifdef __linux__
	char	   *marker = shell_marker(MyDatabaseId);
	DIR		   *dir = AllocateDir("/proc");
	struct dirent *de;

	while ((de = ReadDir(dir, "/proc")) != NULL)
	{
		if (strspn(de->d_name, "0123456789") != strlen(de->d_name) ||
			atoi(de->d_name) == MyProcPid)
			continue;
		if (shell_process_marked(de->d_name, marker))
		{
			ereport(LOG,
					(errmsg("job_queue killed process %s, left over from a shell job",
							de->d_name)));
			kill(atoi(de->d_name), SIGKILL);
		}
	}
	FreeDir(dir);
	pfree(marker);
#endif
}

/* Whether the owner may still run shell jobs; needs a transaction. */
static bool
shell_owner_allowed(Oid owner)
{
	bool		allowed;

	StartTransactionCommand();
	allowed = jq_may_run_shell(owner);
	CommitTransactionCommand();
	return allowed;
}

/*
 * Text from shell_run.c, which is valid UTF-8, as the database accepts it:
 * outside a UTF-8 (or SQL_ASCII) database, non-ASCII bytes become '?'.
 */
static char *
shell_server_text(StringInfo buf)
{
	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		for (int i = 0; i < buf->len; i++)
		{
			if (IS_HIGHBIT_SET(buf->data[i]))
				buf->data[i] = '?';
		}
	}
	return buf->data;
}

/* The message of a failed run: how it ended, and the last line of its stderr. */
static char *
shell_error_message(const JqShellProcess *proc)
{
	StringInfoData buf;

	initStringInfo(&buf);
	jq_shell_error_message(proc, &buf);
	return shell_server_text(&buf);
}

/* The result: exit status and output, as JSON text. */
static char *
shell_result(const JqShellProcess *proc)
{
	StringInfoData buf;

	initStringInfo(&buf);
	jq_shell_result_json(proc, &buf);
	return shell_server_text(&buf);
}

/* Wait for the program's output, its exit, the latch or the deadline. */
static void
shell_wait(JqShellProcess *proc, TimestampTz deadline)
{
	WaitEventSet *set;
	WaitEvent	events[4];
	long		timeout_ms;

	set = jq_create_wait_event_set(4);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	if (proc->out.fd >= 0)
		AddWaitEventToSet(set, WL_SOCKET_READABLE, proc->out.fd, NULL, NULL);
	if (proc->err.fd >= 0)
		AddWaitEventToSet(set, WL_SOCKET_READABLE, proc->err.fd, NULL, NULL);

	timeout_ms = jq_ms_until(deadline);
	(void) WaitEventSetWait(set, timeout_ms, events, lengthof(events), PG_WAIT_EXTENSION);
	FreeWaitEventSet(set);
	ResetLatch(MyLatch);
}

/*
 * Run the program until it exits, stopping it when it must stop.  Sets
 * job->outcome to what stopped it, or leaves it SUCCEEDED.
 */
static void
shell_supervise(JqJob *job, volatile JqExecutor *slot, JqShellProcess *proc)
{
	TimestampTz timeout_at = DT_NOEND;
	TimestampTz kill_at = DT_NOEND;
	bool		stopping = false;

	if (job->timeout_ms > 0)
		timeout_at = TimestampTzPlusMilliseconds(job->started, job->timeout_ms);

	for (;;)
	{
		TimestampTz now;

		jq_shell_read(proc);
		if (jq_shell_poll_exit(proc))
			break;

		now = GetCurrentTimestamp();
		if (!stopping)
		{
			if (ProcDiePending)
				job->outcome = JQ_OUTCOME_RELEASED;
			else if (jq_cancel_requested(slot, job->id))
				job->outcome = JQ_OUTCOME_CANCELLED;
			else if (now >= timeout_at)
			{
				job->outcome = JQ_OUTCOME_ERROR;
				job->timed_out = true;
			}
			stopping = job->outcome != JQ_OUTCOME_SUCCEEDED;
			if (stopping)
			{
				jq_shell_signal(proc, SIGTERM);
				kill_at = TimestampTzPlusMilliseconds(now, jq_shell_kill_grace_ms);
			}
		}
		else if (now >= kill_at)
		{
			jq_shell_signal(proc, SIGKILL);
			kill_at = DT_NOEND;
		}
		/* a cancel is handled here; it must not hit the executor's own SQL */
		QueryCancelPending = false;

		shell_wait(proc, stopping ? kill_at : timeout_at);
	}
}

/* The job's own variables, then the marker. */
static char **
shell_environment(char **job_env)
{
	int			n = 0;
	char	  **env;

	while (job_env && job_env[n])
		n++;
	env = palloc(sizeof(char *) * (n + 2));
	for (int i = 0; i < n; i++)
		env[i] = job_env[i];
	env[n] = shell_marker(MyDatabaseId);
	env[n + 1] = NULL;
	return env;
}

/*
 * Run a claimed shell job.  Fills in the outcome, the result (the exit
 * status and output, as JSON) and the error.
 */
void
jq_run_shell_job(JqJob *job, volatile JqExecutor *slot)
{
	JqShellSpec spec;
	JqShellProcess proc;
	char		msg[256];

	job->outcome = JQ_OUTCOME_SUCCEEDED;
	job->result = NULL;
	job->error = NULL;
	job->error_code = NULL;
	job->timed_out = false;
	job->started = GetCurrentTimestamp();

	if (!shell_owner_allowed(job->owner))
	{
		job->outcome = JQ_OUTCOME_REJECTED;
		job->error = pstrdup("the job's owner may no longer run shell jobs: it needs the privileges of pg_execute_server_program");
		job->error_code = pstrdup(unpack_sql_state(ERRCODE_INSUFFICIENT_PRIVILEGE));
		job->finished = GetCurrentTimestamp();
		return;
	}

	memset(&spec, 0, sizeof(spec));
	spec.command = job->command;
	spec.argv = job->argv;
	spec.env = shell_environment(job->env);
	spec.working_dir = job->working_dir;
	spec.output_limit = (size_t) jq_shell_output_limit_kb * 1024;

	if (!jq_shell_start(&proc, &spec, msg, sizeof(msg)))
	{
		job->outcome = JQ_OUTCOME_ERROR;
		job->error = pstrdup(msg);
		job->finished = GetCurrentTimestamp();
		return;
	}
	shell_publish_pgid(slot, proc.pid);

	shell_supervise(job, slot, &proc);
	job->finished = GetCurrentTimestamp();

	jq_shell_describe(&proc, msg, sizeof(msg));
	job->result = shell_result(&proc);
	if (job->timed_out)
		job->error = psprintf("job exceeded its timeout of " INT64_FORMAT " ms and was stopped (%s)",
							  job->timeout_ms, msg);
	else if (job->outcome == JQ_OUTCOME_SUCCEEDED &&
			 !(WIFEXITED(proc.wait_status) && WEXITSTATUS(proc.wait_status) == 0))
	{
		job->outcome = JQ_OUTCOME_ERROR;
		job->error = shell_error_message(&proc);
		if (WIFEXITED(proc.wait_status))
			job->error_code = psprintf("%d", WEXITSTATUS(proc.wait_status));
		else if (WIFSIGNALED(proc.wait_status))
			job->error_code = psprintf("SIG%d", WTERMSIG(proc.wait_status));
	}

	jq_shell_finish(&proc);
	shell_publish_pgid(slot, 0);
}
