/*-------------------------------------------------------------------------
 *
 * shell_run.h
 *	  Run one shell job as a child process and collect what it did.
 *
 * Compiled into the server module and, with FRONTEND defined, into
 * jq_worker.  The runner only does POSIX process work: it never allocates
 * with palloc or raises errors (callers report failures their own way), and
 * it never waits on its own.
 *
 * The caller owns waiting: it sleeps until a stream's fd is readable (then
 * calls jq_shell_read) or a child exits (then jq_shell_poll_exit).  For the
 * latter it installs a SIGCHLD handler that only wakes it up (sets a latch,
 * writes to a self-pipe).  That handler must not reap children, and SIGCHLD
 * must not be ignored (SIG_IGN reaps them too): jq_shell_poll_exit has to
 * see the leader's exit status.
 *
 * Each job runs in a session and process group of its own, led by the
 * process started; jq_shell_poll_exit kills whatever the job left behind in
 * that group once the leader exits, and jq_shell_finish kills the whole
 * group if it is still there.  Processes that leave the group (setsid,
 * daemons) are beyond reach.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHELL_RUN_H
#define SHELL_RUN_H

#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <sys/types.h>

#include "lib/stringinfo.h"

typedef struct JqShellSpec
{
	const char *command;		/* run as /bin/sh -c command, or NULL */
	char	  **argv;			/* else: argv[0] looked up in PATH, run with
								 * argv; NULL-terminated */
	char	  **env;			/* "NAME=value" entries added to (overriding)
								 * the inherited environment; NULL-terminated,
								 * or NULL */
	const char *working_dir;	/* or NULL: inherit */
	size_t		output_limit;	/* bytes kept per stream (stdout, stderr) */
} JqShellSpec;

typedef struct JqShellStream
{
	int			fd;				/* read end, -1 once closed */
	char	   *data;			/* kept bytes, NUL-terminated */
	size_t		len;			/* bytes kept */
	size_t		cap;			/* bytes data can hold before it grows */
	size_t		limit;			/* the most it keeps */
	uint64		total;			/* bytes written by the program */
} JqShellStream;

typedef struct JqShellProcess
{
	pid_t		pid;			/* leader = process group id, 0 if none */
	JqShellStream out;
	JqShellStream err;
	bool		exited;			/* the leader exited and was reaped */
	int			wait_status;	/* its status from waitpid, -1 if lost */
} JqShellProcess;

/*
 * Start the program.  On failure (bad spec, fork, chdir or exec failed)
 * returns false with a message in errbuf, and proc holds nothing to finish.
 */
extern bool jq_shell_start(JqShellProcess *proc, const JqShellSpec *spec,
						   char *errbuf, size_t errlen);

/* Read what the streams have now, without blocking. */
extern void jq_shell_read(JqShellProcess *proc);

/*
 * Has the leader exited?  Once it has: kill what is left of its group, read
 * the rest of the output, close the streams.  Returns proc->exited.
 */
extern bool jq_shell_poll_exit(JqShellProcess *proc);

/* Send signo to the job's whole process group. */
extern void jq_shell_signal(JqShellProcess *proc, int signo);

/* SIGKILL a process group; async-signal-safe, for signal handlers. */
extern void jq_shell_kill_group(pid_t pgid);

/*
 * Called once at the end, whatever happened: kill the group if it is still
 * there, reap the leader (blocking), close the streams, free the buffers.
 */
extern void jq_shell_finish(JqShellProcess *proc);

/* "exited with code 3", "killed by signal 9: Killed" */
extern void jq_shell_describe(const JqShellProcess *proc, char *buf, size_t len);

/*
 * An error message for a run that failed: jq_shell_describe, then the last
 * line the program wrote to stderr, which usually says why ("exited with
 * code 2: ls: cannot access 'x': No such file or directory"), made valid
 * UTF-8 like the output in jq_shell_result_json.
 */
extern void jq_shell_error_message(const JqShellProcess *proc, StringInfo buf);

/*
 * The outcome as a JSON object: exit_code (or null), signal (or null),
 * stdout, stderr, stdout_truncated, stderr_truncated.  The output is made
 * valid UTF-8 (invalid bytes and NULs become U+FFFD), so the text is always
 * valid json and jsonb input in a UTF-8 database.
 */
extern void jq_shell_result_json(const JqShellProcess *proc, StringInfo buf);

#endif							/* SHELL_RUN_H */
