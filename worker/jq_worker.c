/*-------------------------------------------------------------------------
 *
 * jq_worker.c
 *	  jq_worker's main loop, signals and shutdown.
 *
 * Each round acts on what is due (connect, send the control connection's
 * next query, time out or kill jobs), then sleeps in poll() on every
 * descriptor (a self-pipe the signal handlers write to, the connections'
 * sockets, the jobs' output pipes) until the next deadline, then lets each
 * part take what came.  Nothing blocks, so one thread does it all, and an
 * idle worker sleeps until a notification, a signal or --recheck.
 *
 * Shutdown: the first SIGTERM or SIGINT stops claiming; running jobs may
 * finish within --shutdown-grace, after which they are stopped like a job
 * that timed out (SIGTERM to the process group, SIGKILL --kill-grace
 * later; a SQL job is cancelled) and recorded as failed, to be retried
 * ("the worker shut down before the job ended").  The worker exits 0 once
 * every outcome is recorded, or 1 if the server stays out of reach for
 * GIVE_UP_MS more: the leases of the jobs not recorded then expire.  A
 * second SIGTERM or SIGINT kills the process groups of the running jobs
 * at once, from the signal handler, and exits 1.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

/* after the shutdown grace and the kill grace, time left to record outcomes */
#define GIVE_UP_MS	15000

static int	wake_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_requests = 0;

/* each slot's running process group, for the signal handler */
static volatile pid_t *job_groups = NULL;
static int	njob_groups = 0;

static void
worker_wake(void)
{
	int			save_errno = errno;

	if (write(wake_pipe[1], "", 1) < 0)
	{
		/* full: the loop wakes anyway */
	}
	errno = save_errno;
}

static void
worker_sigchld(int signo)
{
	worker_wake();
}

static void
worker_sigstop(int signo)
{
	if (++stop_requests >= 2)
	{
		for (int i = 0; i < njob_groups; i++)
			jq_shell_kill_group(job_groups[i]);
	}
	worker_wake();
}

void
worker_track_group(int slot_index, pid_t pgid)
{
	job_groups[slot_index] = pgid;
}

static void
worker_signals(int nslots)
{
	struct sigaction sa;

	job_groups = pg_malloc0(nslots * sizeof(pid_t));
	njob_groups = nslots;
	if (pipe(wake_pipe) < 0)
	{
		log_event(0, "could not create a pipe: %s", strerror(errno));
		exit(1);
	}
	for (int i = 0; i < 2; i++)
	{
		fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
		fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
	}

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, SIGINT);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = worker_sigstop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sa.sa_handler = worker_sigchld;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int
pollset_add(PollSet *ps, int fd, short events)
{
	if (ps->n == ps->size)
	{
		ps->size = Max(16, ps->size * 2);
		ps->fds = pg_realloc(ps->fds, ps->size * sizeof(struct pollfd));
	}
	ps->fds[ps->n].fd = fd;
	ps->fds[ps->n].events = events;
	ps->fds[ps->n].revents = 0;
	return ps->n++;
}

static int
worker_running(const Worker *w)
{
	int			n = 0;

	for (int i = 0; i < w->opts.concurrency; i++)
		n += (w->slots[i].state != SLOT_FREE);
	return n + w->npool;
}

static void
worker_begin_shutdown(Worker *w, int64 now)
{
	w->stopping = true;
	w->stop_at = now + w->opts.shutdown_grace_ms;
	w->give_up_at = w->stop_at + w->opts.kill_grace_ms + GIVE_UP_MS;
	log_event(0, "shutting down: claiming no more jobs; %d running may finish within %.1f s",
			  worker_running(w), w->opts.shutdown_grace_ms / 1000.0);
}

/* Exit now: kill every job's processes, close every connection. */
static void
worker_exit(Worker *w, int status)
{
	for (int i = 0; i < w->opts.concurrency; i++)
	{
		Slot	   *slot = &w->slots[i];

		if (slot->state != SLOT_FREE)
			log_event(slot->job.id_num, "not recorded; its lease will expire");
		job_kill(slot);
	}
	conn_close(&w->control);
	conn_close(&w->listener);
	log_event(0, "stopped");
	exit(status);
}

static void
worker_loop(Worker *w)
{
	PollSet		ps = {0};

	for (;;)
	{
		int64		now = now_ms();
		int64		next;
		char		drain[64];

		if (stop_requests >= 2)
		{
			log_event(0, "second stop signal: killing the running jobs and exiting");
			worker_exit(w, 1);
		}
		if (stop_requests == 1 && !w->stopping)
			worker_begin_shutdown(w, now);
		if (w->stopping && now >= w->stop_at)
		{
			for (int i = 0; i < w->opts.concurrency; i++)
				job_stop(w, &w->slots[i], STOP_SHUTDOWN, now);
		}
		if (w->stopping && worker_running(w) == 0)
			return;
		if (w->stopping && now >= w->give_up_at)
		{
			log_event(0, "giving up on recording the outcome of %d jobs", worker_running(w));
			worker_exit(w, 1);
		}

		control_step(w, now);
		listen_step(w, now);
		for (int i = 0; i < w->opts.concurrency; i++)
			job_step(w, &w->slots[i], now);

		ps.n = 0;
		pollset_add(&ps, wake_pipe[0], POLLIN);
		control_want(w, &ps);
		listen_want(w, &ps);
		for (int i = 0; i < w->opts.concurrency; i++)
			job_want(&w->slots[i], &ps);
		next = Min(control_next_event(w), listen_next_event(w));
		for (int i = 0; i < w->opts.concurrency; i++)
			next = Min(next, job_next_event(&w->slots[i]));
		if (w->stopping)
			next = Min(next, now < w->stop_at ? w->stop_at : w->give_up_at);

		if (poll(ps.fds, ps.n, next == NEVER ? -1 : (int) Min(Max(next - now, 0), INT_MAX)) < 0 &&
			errno != EINTR)
		{
			log_event(0, "poll() failed: %s", strerror(errno));
			worker_exit(w, 1);
		}
		while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
			;

		now = now_ms();
		control_advance(w, &ps, now);
		listen_advance(w, &ps, now);
		for (int i = 0; i < w->opts.concurrency; i++)
			job_advance(w, &w->slots[i], &ps);
	}
}

int
main(int argc, char **argv)
{
	Worker		w;

	memset(&w, 0, sizeof(w));
	options_parse(argc, argv, &w.opts);
	log_level = w.opts.log_level;
	worker_signals(w.opts.concurrency);

	w.slots = pg_malloc0(w.opts.concurrency * sizeof(Slot));
	for (int i = 0; i < w.opts.concurrency; i++)
	{
		w.slots[i].index = i;
		conn_init(&w.slots[i].sql);
	}
	control_init(&w);
	listen_init(&w);
	log_event(0, "starting as \"%s\": %d job%s at once, kinds %s, queues %s",
			  w.opts.name, w.opts.concurrency, w.opts.concurrency == 1 ? "" : "s",
			  w.kinds_array, w.queues_array ? w.queues_array : "all");

	worker_loop(&w);
	worker_exit(&w, 0);
}
