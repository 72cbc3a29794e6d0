/*-------------------------------------------------------------------------
 *
 * shell_run.c
 *	  Start a shell job's process, collect its output and exit status, and
 *	  make sure nothing of it outlives the job.
 *
 * Everything the child needs (pipes, /dev/null, its argv and environment)
 * is prepared before fork, with every signal blocked so that none of the
 * parent's handlers can run in the child.  The child only makes system
 * calls: it starts a session of its own (so the job is one process group
 * that can be signalled and killed as a whole), resets signal handling,
 * wires stdin to /dev/null and stdout/stderr to pipes, closes every other
 * descriptor, changes directory and execs.  If chdir or exec fails it
 * writes the stage and errno to a close-on-exec pipe, which the parent
 * reads until EOF: EOF alone means the exec succeeded.
 *
 * On Linux the child is started with vfork: it borrows the parent's
 * memory until it execs or exits, and the parent waits meanwhile.  A
 * server process has a large address space, which fork copies the page
 * tables of, after which the parent pays a copy-on-write fault for each
 * page it writes: most of the cost of starting a short job.  So the child
 * writes none of the parent's memory but its own stack frames: what it
 * changes is kernel state of its own (session, signal handling,
 * descriptors, directory), and it hands the environment to the exec call
 * instead of setting environ.
 *
 * See shell_run.h for how callers wait.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "mb/pg_wchar.h"

#include "shell_run.h"

#ifndef NSIG
#define NSIG 64
#endif

/* bytes read at a time, and reads per stream per jq_shell_read call */
#define SHELL_READ_CHUNK		8192
#define SHELL_READS_PER_CALL	16
/* reads per stream of the last output once the group is dead */
#define SHELL_READS_AT_EXIT		256
/* first buffer size of a stream */
#define SHELL_INITIAL_BUFFER	8192
/* bytes of stderr's last line quoted in an error message */
#define SHELL_ERROR_TAIL		200

extern char **environ;

/* what the child writes to the report pipe when it cannot exec */
typedef enum ShellStage
{
	SHELL_STAGE_SETUP,
	SHELL_STAGE_CHDIR,
	SHELL_STAGE_EXEC
} ShellStage;

typedef struct ShellReport
{
	int			stage;			/* a ShellStage */
	int			err;			/* its errno */
} ShellReport;

/* everything the child uses, prepared before fork */
typedef struct ShellLaunch
{
	char	   *sh_argv[4];		/* /bin/sh -c command */
	char	  **argv;			/* what to exec */
	char	  **envp;			/* the job's whole environment */
	int			devnull;
	int			out_w;			/* write ends of the output pipes */
	int			err_w;
	int			report[2];		/* the child's failure report */
	long		max_fd;			/* close fds below this without close_range */
	pid_t		parent;
	struct sigaction dfl;		/* SIG_DFL, for every signal */
} ShellLaunch;

static void
shell_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * fd moved above stdin, stdout and stderr if it is one of them, and made
 * close-on-exec; -1 on failure.
 */
static int
shell_fd_prepare(int fd)
{
	if (fd >= 0 && fd < 3)
	{
		int			high = fcntl(fd, F_DUPFD, 3);

		close(fd);
		fd = high;
	}
	if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		shell_close(&fd);
	return fd;
}

static bool
shell_pipe(int fds[2])
{
	if (pipe(fds) < 0)
		return false;
	fds[0] = shell_fd_prepare(fds[0]);
	fds[1] = shell_fd_prepare(fds[1]);
	return fds[0] >= 0 && fds[1] >= 0;
}

/* Is entry's name set again by one of extra? */
static bool
shell_env_overridden(const char *entry, char **extra)
{
	size_t		namelen = strcspn(entry, "=");

	for (; *extra != NULL; extra++)
	{
		if (strncmp(*extra, entry, namelen) == 0 && (*extra)[namelen] == '=')
			return true;
	}
	return false;
}

/*
 * The inherited environment with extra's entries added, each replacing the
 * entries of the same name (the last of extra wins).  Only the pointer array
 * is allocated.
 */
static char **
shell_environment(char **extra, char *errbuf, size_t errlen)
{
	size_t		n = 1;
	size_t		k = 0;
	char	  **envp;

	for (char **e = environ; *e != NULL; e++)
		n++;
	for (char **e = extra; *e != NULL; e++)
	{
		if (strchr(*e, '=') == NULL || **e == '=')
		{
			snprintf(errbuf, errlen,
					 "invalid environment entry \"%s\": expected NAME=value", *e);
			return NULL;
		}
		n++;
	}
	envp = malloc(n * sizeof(char *));
	if (envp == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	for (char **e = environ; *e != NULL; e++)
	{
		if (!shell_env_overridden(*e, extra))
			envp[k++] = *e;
	}
	for (char **e = extra; *e != NULL; e++)
	{
		if (!shell_env_overridden(*e, e + 1))
			envp[k++] = *e;
	}
	envp[k] = NULL;
	return envp;
}

static bool
shell_stream_init(JqShellStream *s, size_t limit)
{
	s->fd = -1;
	s->len = 0;
	s->total = 0;
	s->limit = limit;
	s->cap = Min(limit, SHELL_INITIAL_BUFFER);
	s->data = malloc(s->cap + 1);
	if (s->data == NULL)
		return false;
	s->data[0] = '\0';
	return true;
}

static void
shell_stream_release(JqShellStream *s)
{
	shell_close(&s->fd);
	free(s->data);
	s->data = NULL;
	s->len = s->cap = 0;
}

/* Keep what still fits of n bytes the program wrote, count them all. */
static void
shell_keep(JqShellStream *s, const char *buf, size_t n)
{
	size_t		keep = Min(n, s->limit - s->len);

	if (s->len + keep > s->cap)
	{
		size_t		cap = Min(Max(s->cap * 2, s->len + keep), s->limit);
		char	   *data = realloc(s->data, cap + 1);

		if (data != NULL)
		{
			s->data = data;
			s->cap = cap;
		}
		else
		{
			/* no memory for more: keep what the buffer holds */
			s->limit = s->cap;
			keep = s->cap - s->len;
		}
	}
	memcpy(s->data + s->len, buf, keep);
	s->len += keep;
	s->data[s->len] = '\0';
	s->total += n;
}

/* Read up to max_reads chunks, until the pipe is empty or closed. */
static void
shell_drain(JqShellStream *s, int max_reads)
{
	char		buf[SHELL_READ_CHUNK];

	for (int i = 0; s->fd >= 0 && i < max_reads; i++)
	{
		ssize_t		n = read(s->fd, buf, sizeof(buf));

		if (n > 0)
			shell_keep(s, buf, n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			shell_close(&s->fd);	/* EOF, or the pipe is unusable */
	}
}

/* Block until pid exits; its wait status, or -1 if it cannot be had. */
static int
shell_reap(pid_t pid)
{
	int			status;

	while (waitpid(pid, &status, 0) < 0)
	{
		if (errno != EINTR)
			return -1;
	}
	return status;
}

static void
shell_child_fail(int report, ShellStage stage)
{
	ShellReport r = {stage, errno};

	if (write(report, &r, sizeof(r)) != sizeof(r))
	{
		/* then the parent sees the job exit with code 127 */
	}
	_exit(127);
}

/* Close every descriptor from lowfd up. */
static void
shell_close_from(int lowfd, long max_fd)
{
#if defined(__linux__) && defined(SYS_close_range)
	if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0)
		return;
#endif
	for (long fd = lowfd; fd < max_fd; fd++)
		close((int) fd);
}

/* The child: async-signal-safe calls only, then exec. */
static void
shell_child(const JqShellSpec *spec, const ShellLaunch *l)
{
	int			report = l->report[1];
	sigset_t	none;

	if (setsid() < 0)
		shell_child_fail(report, SHELL_STAGE_SETUP);
#ifdef __linux__
	/* die with the parent; if it is already gone, do not start */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		shell_child_fail(report, SHELL_STAGE_SETUP);
	if (getppid() != l->parent)
		_exit(127);
#endif

	/* signals arrive blocked (see jq_shell_start); reset them, then unblock */
	for (int sig = 1; sig < NSIG; sig++)
		(void) sigaction(sig, &l->dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		shell_child_fail(report, SHELL_STAGE_SETUP);

	/* every fd used here is above 2, so no dup2 overwrites another */
	if (dup2(l->devnull, STDIN_FILENO) < 0 ||
		dup2(l->out_w, STDOUT_FILENO) < 0 ||
		dup2(l->err_w, STDERR_FILENO) < 0)
		shell_child_fail(report, SHELL_STAGE_SETUP);
	if (report != 3)
	{
		if (dup2(report, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
			shell_child_fail(report, SHELL_STAGE_SETUP);
		report = 3;
	}
	shell_close_from(4, l->max_fd);

	if (spec->working_dir != NULL && chdir(spec->working_dir) < 0)
		shell_child_fail(report, SHELL_STAGE_CHDIR);

	if (spec->command != NULL)
		execve(l->argv[0], l->argv, l->envp);
	else
	{
#ifdef __linux__
		execvpe(l->argv[0], l->argv, l->envp);
#else
		environ = l->envp;		/* a child of fork: its own copy */
		execvp(l->argv[0], l->argv);
#endif
	}
	shell_child_fail(report, SHELL_STAGE_EXEC);
}

/* Start the child (vfork on Linux: see the top of the file); its pid, or -1. */
static pid_t
shell_spawn(const JqShellSpec *spec, const ShellLaunch *l)
{
	pid_t		pid;

#ifdef __linux__
	pid = vfork();
#else
	pid = fork();
#endif
	if (pid == 0)
		shell_child(spec, l);
	return pid;
}

/* The child's failure report: true and *r filled, or false once it exec'd. */
static bool
shell_read_report(int fd, ShellReport *r)
{
	size_t		got = 0;

	while (got < sizeof(*r))
	{
		ssize_t		n = read(fd, (char *) r + got, sizeof(*r) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got == sizeof(*r);
}

static void
shell_report_message(const JqShellSpec *spec, const ShellLaunch *l,
					 const ShellReport *r, char *errbuf, size_t errlen)
{
	switch ((ShellStage) r->stage)
	{
		case SHELL_STAGE_CHDIR:
			snprintf(errbuf, errlen, "could not change directory to \"%s\": %s",
					 spec->working_dir, strerror(r->err));
			break;
		case SHELL_STAGE_EXEC:
			snprintf(errbuf, errlen, "could not execute \"%s\": %s",
					 l->argv[0], strerror(r->err));
			break;
		default:
			snprintf(errbuf, errlen, "could not set up the job's process: %s",
					 strerror(r->err));
			break;
	}
}

bool
jq_shell_start(JqShellProcess *proc, const JqShellSpec *spec,
			   char *errbuf, size_t errlen)
{
	static char *no_env[] = {NULL};
	ShellLaunch l;
	int			out[2] = {-1, -1};
	int			err[2] = {-1, -1};
	sigset_t	all;
	sigset_t	saved;
	int			fork_errno;
	ShellReport report;
	pid_t		pid;
	bool		ok = false;

	memset(proc, 0, sizeof(*proc));
	memset(&l, 0, sizeof(l));
	l.devnull = l.report[0] = l.report[1] = -1;
	proc->out.fd = proc->err.fd = -1;

	if (spec->command != NULL)
	{
		l.sh_argv[0] = "/bin/sh";
		l.sh_argv[1] = "-c";
		l.sh_argv[2] = unconstify(char *, spec->command);
		l.argv = l.sh_argv;
	}
	else if (spec->argv != NULL && spec->argv[0] != NULL)
		l.argv = spec->argv;
	else
	{
		snprintf(errbuf, errlen, "a shell job needs a command or an argv");
		return false;
	}

	l.envp = shell_environment(spec->env ? spec->env : no_env, errbuf, errlen);
	if (l.envp == NULL)
		return false;
	if (!shell_stream_init(&proc->out, spec->output_limit) ||
		!shell_stream_init(&proc->err, spec->output_limit))
	{
		snprintf(errbuf, errlen, "out of memory");
		goto done;
	}

	l.devnull = shell_fd_prepare(open("/dev/null", O_RDONLY));
	if (l.devnull < 0 || !shell_pipe(out) || !shell_pipe(err) || !shell_pipe(l.report) ||
		fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0)
	{
		snprintf(errbuf, errlen, "could not create pipes for the job: %s", strerror(errno));
		goto done;
	}
	l.out_w = out[1];
	l.err_w = err[1];
	l.max_fd = sysconf(_SC_OPEN_MAX);
	if (l.max_fd < 0)
		l.max_fd = 1024;
	l.parent = getpid();
	l.dfl.sa_handler = SIG_DFL;
	sigemptyset(&l.dfl.sa_mask);

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid = shell_spawn(spec, &l);
	fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	proc->pid = pid;
	if (proc->pid < 0)
	{
		proc->pid = 0;
		snprintf(errbuf, errlen, "could not fork: %s", strerror(fork_errno));
		goto done;
	}

	shell_close(&l.report[1]);
	shell_close(&out[1]);
	shell_close(&err[1]);
	if (shell_read_report(l.report[0], &report))
	{
		shell_reap(proc->pid);
		proc->pid = 0;
		shell_report_message(spec, &l, &report, errbuf, errlen);
		goto done;
	}
	proc->out.fd = out[0];
	proc->err.fd = err[0];
	out[0] = err[0] = -1;
	ok = true;

done:
	free(l.envp);
	shell_close(&l.devnull);
	shell_close(&l.report[0]);
	shell_close(&l.report[1]);
	shell_close(&out[0]);
	shell_close(&out[1]);
	shell_close(&err[0]);
	shell_close(&err[1]);
	if (!ok)
	{
		shell_stream_release(&proc->out);
		shell_stream_release(&proc->err);
	}
	return ok;
}

void
jq_shell_read(JqShellProcess *proc)
{
	shell_drain(&proc->out, SHELL_READS_PER_CALL);
	shell_drain(&proc->err, SHELL_READS_PER_CALL);
}

bool
jq_shell_poll_exit(JqShellProcess *proc)
{
	siginfo_t	info;
	int			rc;

	if (proc->pid <= 0 || proc->exited)
		return proc->exited;

	/*
	 * Look without reaping: while the leader is a zombie its pid cannot be
	 * reused, so killing the group below cannot hit anyone else.  A failure
	 * means someone else reaped it: it exited, its status is lost.
	 */
	memset(&info, 0, sizeof(info));
	do
		rc = waitid(P_PID, proc->pid, &info, WEXITED | WNOHANG | WNOWAIT);
	while (rc < 0 && errno == EINTR);
	if (rc == 0 && info.si_pid == 0)
		return false;

	jq_shell_kill_group(proc->pid);
	proc->wait_status = shell_reap(proc->pid);
	proc->exited = true;
	shell_drain(&proc->out, SHELL_READS_AT_EXIT);
	shell_drain(&proc->err, SHELL_READS_AT_EXIT);
	shell_close(&proc->out.fd);
	shell_close(&proc->err.fd);
	return true;
}

void
jq_shell_signal(JqShellProcess *proc, int signo)
{
	if (proc->pid > 0 && !proc->exited)
		kill(-proc->pid, signo);
}

void
jq_shell_kill_group(pid_t pgid)
{
	int			save_errno = errno;

	if (pgid > 0)
		kill(-pgid, SIGKILL);
	errno = save_errno;
}

void
jq_shell_finish(JqShellProcess *proc)
{
	if (proc->pid > 0 && !proc->exited)
	{
		jq_shell_kill_group(proc->pid);
		proc->wait_status = shell_reap(proc->pid);
		proc->exited = true;
	}
	shell_stream_release(&proc->out);
	shell_stream_release(&proc->err);
}

/* the wait status to report, -1 when there is none */
static int
shell_status(const JqShellProcess *proc)
{
	return proc->exited ? proc->wait_status : -1;
}

void
jq_shell_describe(const JqShellProcess *proc, char *buf, size_t len)
{
	int			status = shell_status(proc);

	if (status != -1 && WIFEXITED(status))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	else if (status != -1 && WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d: %s",
				 WTERMSIG(status), pg_strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exit status unknown");
}

/*
 * Append output bytes, made valid UTF-8: invalid bytes and NULs become
 * U+FFFD.  As a JSON string's contents when json, else as they are.
 */
static void
shell_append_text(StringInfo buf, const char *data, size_t len, bool json)
{
	const unsigned char *p = (const unsigned char *) data;
	const unsigned char *end = p + len;

	while (p < end)
	{
		int			charlen = pg_utf_mblen(p);

		if (*p == '\0' || charlen > end - p || !pg_utf8_islegal(p, charlen))
		{
			appendStringInfoString(buf, "\xEF\xBF\xBD");	/* U+FFFD */
			p++;
			continue;
		}
		if (charlen > 1 || !json)
			appendBinaryStringInfo(buf, (const char *) p, charlen);
		else if (*p == '"' || *p == '\\')
			appendStringInfo(buf, "\\%c", *p);
		else if (*p == '\n')
			appendStringInfoString(buf, "\\n");
		else if (*p == '\t')
			appendStringInfoString(buf, "\\t");
		else if (*p == '\r')
			appendStringInfoString(buf, "\\r");
		else if (*p < 0x20)
			appendStringInfo(buf, "\\u%04x", *p);
		else
			appendStringInfoChar(buf, (char) *p);
		p += charlen;
	}
}

static void
shell_json_string(StringInfo buf, const JqShellStream *s)
{
	appendStringInfoChar(buf, '"');
	shell_append_text(buf, s->data, s->len, true);
	appendStringInfoChar(buf, '"');
}

void
jq_shell_error_message(const JqShellProcess *proc, StringInfo buf)
{
	const JqShellStream *err = &proc->err;
	size_t		end = err->len;
	size_t		start;
	char		how[128];

	jq_shell_describe(proc, how, sizeof(how));
	appendStringInfoString(buf, how);
	while (end > 0 && (err->data[end - 1] == '\n' || err->data[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && err->data[start - 1] != '\n' && end - start < SHELL_ERROR_TAIL)
		start--;
	if (start < end)
	{
		appendStringInfoString(buf, ": ");
		shell_append_text(buf, err->data + start, end - start, false);
	}
}

void
jq_shell_result_json(const JqShellProcess *proc, StringInfo buf)
{
	int			status = shell_status(proc);

	appendStringInfoString(buf, "{\"exit_code\": ");
	if (status != -1 && WIFEXITED(status))
		appendStringInfo(buf, "%d", WEXITSTATUS(status));
	else
		appendStringInfoString(buf, "null");
	appendStringInfoString(buf, ", \"signal\": ");
	if (status != -1 && WIFSIGNALED(status))
		appendStringInfo(buf, "%d", WTERMSIG(status));
	else
		appendStringInfoString(buf, "null");
	appendStringInfoString(buf, ", \"stdout\": ");
	shell_json_string(buf, &proc->out);
	appendStringInfoString(buf, ", \"stderr\": ");
	shell_json_string(buf, &proc->err);
	appendStringInfo(buf, ", \"stdout_truncated\": %s, \"stderr_truncated\": %s}",
					 proc->out.total > proc->out.len ? "true" : "false",
					 proc->err.total > proc->err.len ? "true" : "false");
}
