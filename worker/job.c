/*-------------------------------------------------------------------------
 *
 * job.c
 *	  A claimed job in its slot: starting it, its timeout, stopping it, and
 *	  the outcome to record when it ends.
 *
 * A shell job runs as a child process group (src/shell_run.c) with its own
 * environment variables and then JQ_JOB_ID, JQ_ATTEMPT, JQ_MAX_ATTEMPTS,
 * JQ_QUEUE and JQ_PAYLOAD (unset when the job has no payload), as the
 * in-server executor sets them.  Its output pipes and SIGCHLD wake the
 * loop.  It succeeded when it exited with code 0; either way its result is
 * its exit status and output as JSON, recorded over the control connection
 * (control.c).  SQL jobs run in batches, and record themselves, on the
 * slot's own connection (sql_job.c).
 *
 * A job is stopped when its timeout passes, when a heartbeat finds it is no
 * longer ours (jq_cancel, lease expired), and when the shutdown grace is
 * over: SIGTERM to its process group, then SIGKILL --kill-grace later (a
 * SQL job: a cancel request, then its connection is closed).  A job whose
 * lease was lost records nothing; the others record an error, retried.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

#include <signal.h>
#include <sys/wait.h>

/* The value of column name of a dequeued row, or NULL. */
static char *
job_column(PGresult *res, int row, const char *name)
{
	int			col = PQfnumber(res, name);

	if (col < 0 || PQgetisnull(res, row, col))
		return NULL;
	return pg_strdup(PQgetvalue(res, row, col));
}

/*
 * The elements of a one-dimensional text[] in its output form, such as
 * {a,"b c"} or [0:1]={a,b}, as a NULL-terminated array.  NULL if it is not
 * one (a NULL element, more dimensions).
 */
static char **
job_parse_array(const char *s)
{
	size_t		len = strlen(s);
	char	  **elems = pg_malloc0((len / 2 + 2) * sizeof(char *));
	char	   *elem = pg_malloc(len + 1);
	const char *eq = strchr(s, '=');
	int			n = 0;

	if (*s == '[' && eq != NULL)
		s = eq + 1;
	if (*s++ != '{')
		goto bad;
	while (*s != '}')
	{
		bool		quoted = (*s == '"');
		char	   *o = elem;

		if (*s == '{')
			goto bad;
		if (quoted)
			s++;
		while (*s != '\0' && (quoted ? *s != '"' : (*s != ',' && *s != '}')))
		{
			if (*s == '\\' && s[1] != '\0')
				s++;
			*o++ = *s++;
		}
		*o = '\0';
		if (quoted && *s++ != '"')
			goto bad;
		if (!quoted && pg_strcasecmp(elem, "NULL") == 0)
			goto bad;
		elems[n++] = pg_strdup(elem);
		if (*s == ',')
			s++;
		else if (*s != '}')
			goto bad;
	}
	pg_free(elem);
	return elems;

bad:
	pg_free(elem);
	for (int i = 0; i < n; i++)
		pg_free(elems[i]);
	pg_free(elems);
	return NULL;
}

static void
job_free_array(char **array)
{
	for (char **e = array; e != NULL && *e != NULL; e++)
		pg_free(*e);
	pg_free(array);
}

/* The job's own variables (NAME=value, from env), then the JQ_* ones. */
static char **
job_environment(const Job *job, const char *env_literal)
{
	char	  **own = env_literal ? job_parse_array(env_literal) : NULL;
	int			n = 0;
	char	  **env;

	for (char **e = own; e != NULL && *e != NULL; e++)
		n++;
	env = pg_malloc0((n + 6) * sizeof(char *));
	if (own != NULL)
		memcpy(env, own, n * sizeof(char *));
	pg_free(own);
	env[n++] = psprintf(JQ_ENV_JOB_ID "=%s", job->id);
	env[n++] = psprintf(JQ_ENV_ATTEMPT "=%s", job->attempt);
	env[n++] = psprintf(JQ_ENV_MAX_ATTEMPTS "=%s", job->max_attempts);
	env[n++] = psprintf(JQ_ENV_QUEUE "=%s", job->queue);
	if (job->payload != NULL)
		env[n++] = psprintf(JQ_ENV_PAYLOAD "=%s", job->payload);
	return env;
}

/* Text for a database that may not take UTF-8: non-ASCII bytes become '?'. */
static void
job_server_text(const Worker *w, char *s)
{
	if (w->server_utf8 || s == NULL)
		return;
	for (; *s != '\0'; s++)
	{
		if (IS_HIGHBIT_SET(*s))
			*s = '?';
	}
}

/* Keep the job's outcome (taking result, JSON text or NULL) and log it. */
void
job_outcome(Worker *w, Slot *slot, bool succeeded, const char *error, char *result)
{
	double		secs = (now_ms() - slot->started_at) / 1000.0;

	slot->succeeded = succeeded;
	pg_free(slot->error);
	slot->error = error ? pg_strdup(error) : NULL;
	pg_free(slot->result);
	slot->result = result;
	job_server_text(w, slot->error);
	job_server_text(w, slot->result);
	if (slot->is_sql)
		log_event(0, "%d SQL jobs of a batch failed (%.3f s): %s",
				  slot->nbatch - slot->batch_done, secs, error);
	else if (succeeded)
		log_job(slot->job.id_num, "succeeded (%.3f s)", secs);
	else
		log_event(slot->job.id_num, "failed (%.3f s): %s", secs, error);
}

/* The job ended: its outcome waits for the control connection. */
void
job_end(Worker *w, Slot *slot, bool succeeded, const char *error, char *result)
{
	job_outcome(w, slot, succeeded, error, result);
	slot->state = SLOT_REPORT;
}

/*
 * Append to sql the call that records the slot's outcome, jq_complete or
 * jq_fail, with its parameters added to values (JOB_OUTCOME_PARAMS at most).
 */
void
job_outcome_call(Slot *slot, StringInfo sql, const char **values, int *nvalues)
{
	const Job  *job = &slot->job;
	int			n = *nvalues;

	if (slot->is_sql)
	{
		sql_job_outcome_call(slot, sql, values, nvalues);
		return;
	}
	values[(*nvalues)++] = job->id;
	values[(*nvalues)++] = job->attempt;
	values[(*nvalues)++] = slot->result;
	if (slot->succeeded)
	{
		appendStringInfo(sql, "jq_complete(id => $%d::bigint, attempt => $%d::integer, "
						 "result => $%d::jsonb)", n + 1, n + 2, n + 3);
		return;
	}
	values[(*nvalues)++] = slot->error;
	values[(*nvalues)++] = slot->retry ? "true" : "false";
	appendStringInfo(sql, "jq_fail(id => $%d::bigint, attempt => $%d::integer, "
					 "result => $%d::jsonb, error => $%d, retry => $%d::boolean)",
					 n + 1, n + 2, n + 3, n + 4, n + 5);
}

/* The outcome was recorded, or refused: the job is no longer ours. */
void
job_recorded(Slot *slot, bool recorded)
{
	if (recorded)
		log_detail(slot->job.id_num, "outcome recorded");
	else
		log_event(slot->job.id_num,
				  "lease lost: outcome not recorded (the job was cancelled, its lease expired, or it was recorded already)");
	job_release(slot);
}

static void
job_free(Job *job)
{
	pg_free(job->id);
	pg_free(job->attempt);
	pg_free(job->max_attempts);
	pg_free(job->queue);
	pg_free(job->kind);
	pg_free(job->command);
	job_free_array(job->argv);
	job_free_array(job->env);
	pg_free(job->working_dir);
	pg_free(job->payload);
	memset(job, 0, sizeof(*job));
}

/* Forget the job or the batch; the slot is free again (a SQL connection stays open). */
void
job_release(Slot *slot)
{
	job_free(&slot->job);
	for (int i = 0; i < slot->nbatch; i++)
		job_free(&slot->batch[i]);
	pg_free(slot->batch);
	slot->batch = NULL;
	slot->nbatch = slot->batch_done = 0;
	pg_free(slot->rest_ids);
	pg_free(slot->rest_attempts);
	slot->rest_ids = slot->rest_attempts = NULL;
	slot->is_sql = false;
	pg_free(slot->error);
	pg_free(slot->result);
	slot->error = slot->result = NULL;
	slot->state = SLOT_FREE;
}

static void
job_start_shell(Worker *w, Slot *slot)
{
	Job		   *job = &slot->job;
	JqShellSpec spec;
	char		err[512];

	memset(&spec, 0, sizeof(spec));
	spec.command = job->command;
	spec.argv = job->argv;
	spec.env = job->env;
	spec.working_dir = job->working_dir;
	spec.output_limit = w->opts.output_limit;
	if (!jq_shell_start(&slot->proc, &spec, err, sizeof(err)))
	{
		job_end(w, slot, false, err, NULL);
		return;
	}
	slot->proc_started = true;
	worker_track_group(slot->index, slot->proc.pid);
	log_detail(job->id_num, "started (pid %d)", (int) slot->proc.pid);
	log_detail(job->id_num, "running %s", job->command ? job->command : job->argv[0]);
}

/*
 * Read a job from row of jq_dequeue's result; its argv literal, which the
 * caller frees, is kept in *argv when it is not a list.
 */
static void
job_read(Job *job, PGresult *res, int row, char **argv)
{
	char	   *timeout = job_column(res, row, "timeout_ms");

	memset(job, 0, sizeof(*job));
	*argv = job_column(res, row, "argv");
	job->id = job_column(res, row, "id");
	job->id_num = strtoll(job->id, NULL, 10);
	job->attempt = job_column(res, row, "attempt");
	job->max_attempts = job_column(res, row, "max_attempts");
	job->queue = job_column(res, row, "queue");
	job->kind = job_column(res, row, "kind");
	job->command = job_column(res, row, "command");
	job->working_dir = job_column(res, row, "working_dir");
	job->payload = job_column(res, row, "payload");
	job->timeout_ms = timeout ? strtoll(timeout, NULL, 10) : 0;
	job->argv = *argv ? job_parse_array(*argv) : NULL;
	if (strcmp(job->kind, "shell") == 0)
	{
		char	   *env = job_column(res, row, "env");

		job->env = job_environment(job, env);
		pg_free(env);
	}
	pg_free(timeout);
	log_detail(job->id_num, "claimed from queue %s (%s job, attempt %s of %s)",
			   job->queue, job->kind, job->attempt, job->max_attempts);
}

/* The slot takes what it was given. */
static void
job_begin(Worker *w, Slot *slot)
{
	int64		now = now_ms();

	slot->claim++;
	slot->state = SLOT_RUNNING;
	slot->started_at = now;
	slot->timeout_at = NEVER;
	slot->kill_at = NEVER;
	slot->heartbeat_at = now + w->opts.lease_ms / 3;
	slot->heartbeat_sent = false;
	slot->stop = STOP_NONE;
	slot->retry = true;
	slot->is_sql = false;
}

/* Take a job from row of jq_dequeue's result and start it. */
void
job_start(Worker *w, Slot *slot, PGresult *res, int row)
{
	Job		   *job = &slot->job;
	char	   *argv;

	job_begin(w, slot);
	job_read(job, res, row, &argv);
	if (job->timeout_ms > 0)
		slot->timeout_at = slot->started_at + job->timeout_ms;

	if (argv != NULL && job->argv == NULL)
	{
		slot->retry = false;
		job_end(w, slot, false, "argv is not a list of program and arguments", NULL);
	}
	else if (strcmp(job->kind, "shell") == 0)
		job_start_shell(w, slot);
	else
	{
		char	   *error = psprintf("jq_worker cannot run jobs of kind \"%s\" one at a time",
									 job->kind);

		slot->retry = false;
		job_end(w, slot, false, error, NULL);
		pg_free(error);
	}
	pg_free(argv);
}

/* Read a SQL job from row of jq_dequeue's result. */
void
job_read_sql(Job *job, PGresult *res, int row)
{
	char	   *argv;

	job_read(job, res, row, &argv);
	pg_free(argv);
}

/* The slot takes n SQL jobs (which it owns from now on) as a batch. */
static void
job_begin_batch(Worker *w, Slot *slot, Job *jobs, int n)
{
	job_begin(w, slot);
	slot->batch = pg_malloc(n * sizeof(Job));
	memcpy(slot->batch, jobs, n * sizeof(Job));
	slot->nbatch = n;
	slot->batch_done = 0;
	slot->release_rest = false;
	slot->is_sql = true;
}

/* Start n SQL jobs as a batch (sql_job.c). */
void
job_start_sql(Worker *w, Slot *slot, Job *jobs, int n)
{
	job_begin_batch(w, slot, jobs, n);
	sql_job_start(w, slot);
}

/* Give back n SQL jobs that were claimed ahead and will not run: the worker stops. */
void
job_give_back(Worker *w, Slot *slot, Job *jobs, int n)
{
	job_begin_batch(w, slot, jobs, n);
	slot->release_rest = true;
	slot->state = SLOT_REPORT;
	log_event(0, "giving back %d SQL jobs claimed ahead", n);
}

/* The shell job's leader exited: decide the outcome. */
static void
job_shell_exited(Worker *w, Slot *slot)
{
	JqShellProcess *proc = &slot->proc;
	StringInfoData result;
	StringInfoData how;
	char	   *error;
	bool		succeeded = slot->stop == STOP_NONE && WIFEXITED(proc->wait_status) &&
		WEXITSTATUS(proc->wait_status) == 0;

	initStringInfo(&result);
	jq_shell_result_json(proc, &result);
	initStringInfo(&how);
	jq_shell_error_message(proc, &how);
	worker_track_group(slot->index, 0);
	jq_shell_finish(proc);
	slot->proc_started = false;

	if (slot->stop == STOP_TIMEOUT)
		error = psprintf("job exceeded its timeout of %lld ms and was stopped (%s)",
						 (long long) slot->job.timeout_ms, how.data);
	else if (slot->stop == STOP_SHUTDOWN)
		error = psprintf("the worker shut down before the job ended; it was stopped (%s)",
						 how.data);
	else
		error = pg_strdup(how.data);

	if (slot->stop == STOP_LEASE_LOST)
	{
		log_event(slot->job.id_num, "stopped after its lease was lost (%s); nothing recorded",
				  how.data);
		pg_free(result.data);
		job_release(slot);
	}
	else
		job_end(w, slot, succeeded, succeeded ? NULL : error, result.data);
	pg_free(how.data);
	pg_free(error);
}

void
job_stop(Worker *w, Slot *slot, StopReason reason, int64 now)
{
	static const char *const why[] = {
		[STOP_TIMEOUT] = "timed out",
		[STOP_LEASE_LOST] = "lease lost (the job was cancelled or its lease expired)",
		[STOP_SHUTDOWN] = "shutdown grace is over"
	};

	if (slot->state != SLOT_RUNNING || slot->stop != STOP_NONE)
		return;
	slot->stop = reason;
	slot->kill_at = now + w->opts.kill_grace_ms;
	log_event(slot->job.id_num, "%s: stopping it", why[reason]);
	if (slot->is_sql)
		sql_job_cancel(slot);
	else if (slot->proc_started)
		jq_shell_signal(&slot->proc, SIGTERM);
}

/* Deadlines: the timeout, then SIGKILL --kill-grace after SIGTERM. */
void
job_step(Worker *w, Slot *slot, int64 now)
{
	if (slot->state != SLOT_RUNNING)
		return;
	if (slot->stop == STOP_NONE && now >= slot->timeout_at)
		job_stop(w, slot, STOP_TIMEOUT, now);
	else if (slot->stop != STOP_NONE && now >= slot->kill_at)
	{
		slot->kill_at = NEVER;
		if (slot->is_sql)
			sql_job_abandon(w, slot, "it did not stop when cancelled; its connection was closed");
		else if (slot->proc_started)
		{
			log_event(slot->job.id_num, "still running %.3f s after SIGTERM: SIGKILL",
					  w->opts.kill_grace_ms / 1000.0);
			jq_shell_signal(&slot->proc, SIGKILL);
		}
	}
}

int64
job_next_event(const Slot *slot)
{
	if (slot->state != SLOT_RUNNING)
		return NEVER;
	return slot->stop == STOP_NONE ? slot->timeout_at : slot->kill_at;
}

void
job_want(Slot *slot, PollSet *ps)
{
	if (slot->proc_started)
	{
		if (slot->proc.out.fd >= 0)
			pollset_add(ps, slot->proc.out.fd, POLLIN);
		if (slot->proc.err.fd >= 0)
			pollset_add(ps, slot->proc.err.fd, POLLIN);
	}
	conn_want(&slot->sql, ps);
}

void
job_advance(Worker *w, Slot *slot, const PollSet *ps)
{
	if (slot->proc_started)
	{
		jq_shell_read(&slot->proc);
		if (jq_shell_poll_exit(&slot->proc))
			job_shell_exited(w, slot);
	}
	sql_job_advance(w, slot, ps);
}

/* Abort: kill every job's processes and wait for them. */
void
job_kill(Slot *slot)
{
	if (slot->proc_started)
	{
		worker_track_group(slot->index, 0);
		jq_shell_finish(&slot->proc);
		slot->proc_started = false;
	}
	conn_close(&slot->sql);
}
