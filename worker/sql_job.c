/*-------------------------------------------------------------------------
 *
 * sql_job.c
 *	  A batch of SQL jobs, run in the server by jq_run_sql_many over its
 *	  slot's own connection:
 *
 *		SELECT id, succeeded FROM jq_run_sql_many(ids, attempts)
 *
 * jq_run_sql_many runs each job's command as the role that enqueued it,
 * not as the role the worker connects as, with the executors' own code (in
 * a subtransaction, under the job's timeout, its settings and session
 * state undone after it), and records the outcomes, succeeded or a failed
 * attempt retried by the usual rules, in the same transaction: here the
 * statement's own, so one round trip and one commit per batch, and the
 * jobs' effects and their outcomes commit together or not at all.  It
 * answers a row per job it dealt with: true (succeeded), false (failed;
 * the error is in jq_jobs) or NULL: the attempt is no longer ours
 * (cancelled, or its lease expired and it went elsewhere), and nothing ran.
 *
 *	 CONNECTING (a new connection) -> RUN -> (done)
 *
 * The jobs' rows are locked from the start of the statement to its end,
 * so their leases are not extended (a heartbeat would wait for the lock)
 * and need no extending: a locked job is neither taken back when its lease
 * expires nor cancelled before the batch ends.  The lease covers the time
 * from the claim to the statement's start.  The server enforces each job's
 * timeout.
 *
 * jq_run_sql_many may stop before the end of the batch: after a job that
 * changed the transaction (SET CONSTRAINTS), and after a job that a query
 * cancel reached.  The jobs it did not get to are still ours: they are
 * sent again at once, in a statement of their own, unless the worker is
 * shutting down, when they are given back with jq_release over the control
 * connection (their attempt not counted).
 *
 * A stop (the end of the shutdown grace) sends a cancel request, which
 * ends the running job's SQL with an error that jq_run_sql_many records;
 * if the statement has not ended --kill-grace later, its connection is
 * closed.  If the connection fails while a batch runs, whether its
 * statement committed is unknown: a failure of every job of the batch is
 * sent over the control connection, which jq_fail refuses for jobs whose
 * outcome was recorded.  An error of the statement itself (a job is not a
 * SQL job, the worker may not run it) is recorded the same way.  The
 * connection stays open for the slot's next batch.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

static void sql_job_lost(Worker *w, Slot *slot);

static void
sql_job_connect(Worker *w, Slot *slot)
{
	slot->sql_fresh = true;
	slot->phase = SQL_CONNECTING;
	conn_connect(&slot->sql, w->opts.dsn);
	if (slot->sql.state == CONN_DOWN)
		sql_job_lost(w, slot);
}

/* An int8[] or int4[] literal of the ids or the attempts of batch[from...]. */
static char *
sql_job_array(const Slot *slot, bool ids)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = slot->batch_done; i < slot->nbatch; i++)
	{
		if (i > slot->batch_done)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, ids ? slot->batch[i].id : slot->batch[i].attempt);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Send the jobs not dealt with yet.  A kept connection that died while
 * idle, found out here, before anything ran, is replaced.
 */
static void
sql_job_run(Worker *w, Slot *slot)
{
	char	   *ids = sql_job_array(slot, true);
	char	   *attempts = sql_job_array(slot, false);
	const char *const values[] = {ids, attempts};
	bool		sent;

	slot->phase = SQL_RUN;
	sent = conn_send(&slot->sql,
					 "SELECT id, succeeded FROM jq_run_sql_many($1::bigint[], $2::integer[])",
					 lengthof(values), values);
	pg_free(ids);
	pg_free(attempts);
	if (sent)
		return;
	if (slot->sql_fresh)
		sql_job_lost(w, slot);
	else
		sql_job_connect(w, slot);
}

/* Start the batch the slot was given (job_start_sql). */
void
sql_job_start(Worker *w, Slot *slot)
{
	/* the server stops each job at its timeout */
	slot->timeout_at = NEVER;
	for (int i = 0; i < slot->nbatch; i++)
		log_detail(slot->batch[i].id_num, "running %s",
				   slot->batch[i].command ? slot->batch[i].command : "");
	slot->sql_fresh = false;
	if (slot->sql.state == CONN_READY)
		sql_job_run(w, slot);
	else
		sql_job_connect(w, slot);
}

/* Ask the server to cancel the batch's running SQL. */
void
sql_job_cancel(Slot *slot)
{
	PGcancel   *cancel;
	char		errbuf[256];

	if (slot->sql.state != CONN_READY || slot->phase != SQL_RUN)
		return;
	cancel = PQgetCancel(slot->sql.pg);
	if (cancel == NULL || !PQcancel(cancel, errbuf, sizeof(errbuf)))
		log_event(0, "could not send a cancel request: %s",
				  cancel ? errbuf : "out of memory");
	PQfreeCancel(cancel);
}

/*
 * The connection failed, the statement failed, or a stopped batch did not
 * stop: close the connection and record the failure of the jobs not dealt
 * with over the control connection (refused for those whose outcome
 * committed).
 */
void
sql_job_abandon(Worker *w, Slot *slot, const char *why)
{
	char	   *error;

	conn_close(&slot->sql);
	w->fast_batches = false;
	if (slot->stop == STOP_SHUTDOWN)
		error = psprintf("the worker shut down before the job ended: %s", why);
	else
		error = pg_strdup(why);
	job_end(w, slot, false, error, NULL);
	pg_free(error);
}

/* jq_run_sql_many answered: a row per job it dealt with, in order. */
static void
sql_job_result(Worker *w, Slot *slot, PGresult *res)
{
	int			n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2 ||
		PQntuples(res) > slot->nbatch - slot->batch_done)
	{
		const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		sql_job_abandon(w, slot, message ? message : PQresultErrorMessage(res));
		return;
	}
	n = PQntuples(res);
	for (int row = 0; row < n; row++)
	{
		Job		   *job = &slot->batch[slot->batch_done + row];
		double		secs = (now_ms() - slot->started_at) / 1000.0;

		if (PQgetisnull(res, row, 1))
			log_event(job->id_num,
					  "lease lost: nothing ran (the job was cancelled, or its lease expired)");
		else if (strcmp(PQgetvalue(res, row, 1), "t") == 0)
			log_job(job->id_num, "succeeded (%.3f s, in a batch of %d)", secs, slot->nbatch);
		else
			log_event(job->id_num, "failed (%.3f s, in a batch of %d): the server recorded the error in jq_jobs",
					  secs, slot->nbatch);
	}
	slot->batch_done += n;
	if (slot->batch_done == slot->nbatch)
	{
		w->fast_batches = now_ms() - slot->started_at < w->opts.lease_ms / 4;
		job_release(slot);
	}
	else if (slot->stop != STOP_NONE || w->stopping)
	{
		/* the shutdown stopped the batch: give the rest back */
		log_event(0, "giving back %d SQL jobs not run", slot->nbatch - slot->batch_done);
		slot->release_rest = true;
		slot->state = SLOT_REPORT;
	}
	else
	{
		log_detail(0, "%d SQL jobs of the batch left to run", slot->nbatch - slot->batch_done);
		sql_job_run(w, slot);
	}
}

/* The connection failed: the batch is abandoned. */
static void
sql_job_lost(Worker *w, Slot *slot)
{
	char	   *why;

	if (slot->phase == SQL_CONNECTING)
		why = psprintf("could not connect: %s", slot->sql.error);
	else
		why = psprintf("connection lost while the job ran: %s", slot->sql.error);
	sql_job_abandon(w, slot, why);
	pg_free(why);
}

void
sql_job_advance(Worker *w, Slot *slot, const PollSet *ps)
{
	PGresult   *res;
	ConnEvent	ev = conn_advance(&slot->sql, ps, &res);
	bool		running = (slot->state == SLOT_RUNNING && slot->is_sql);

	if (ev == CONN_FAILED && !running)
		log_detail(0, "idle connection of slot %d closed: %s", slot->index, slot->sql.error);
	else if (ev == CONN_FAILED)
		sql_job_lost(w, slot);
	else if (ev == CONN_CONNECTED && running)
		sql_job_run(w, slot);
	else if (ev == CONN_RESULT && running)
		sql_job_result(w, slot, res);
	PQclear(res);
}

/*
 * Append to sql the call that records what is left of the batch over the
 * control connection: every job not dealt with fails (jq_fail) or, after a
 * shutdown stopped the batch, is given back (jq_release).  It answers how
 * many were recorded.
 */
void
sql_job_outcome_call(Slot *slot, StringInfo sql, const char **values, int *nvalues)
{
	int			n = *nvalues;

	if (slot->rest_ids == NULL)
	{
		slot->rest_ids = sql_job_array(slot, true);
		slot->rest_attempts = sql_job_array(slot, false);
	}
	values[(*nvalues)++] = slot->rest_ids;
	values[(*nvalues)++] = slot->rest_attempts;
	if (slot->release_rest)
	{
		appendStringInfo(sql, "(SELECT count(*) FILTER (WHERE jq_release(u.id, u.attempt)) "
						 "FROM unnest($%d::bigint[], $%d::integer[]) AS u(id, attempt))",
						 n + 1, n + 2);
		return;
	}
	values[(*nvalues)++] = slot->error;
	values[(*nvalues)++] = slot->retry ? "true" : "false";
	appendStringInfo(sql, "(SELECT count(*) FILTER (WHERE jq_fail(id => u.id, attempt => u.attempt, "
					 "error => $%d, retry => $%d::boolean)) "
					 "FROM unnest($%d::bigint[], $%d::integer[]) AS u(id, attempt))",
					 n + 3, n + 4, n + 1, n + 2);
}

/* The control connection answered sql_job_outcome_call's call. */
void
sql_job_recorded(const Slot *slot, const char *answer)
{
	int			left = slot->nbatch - slot->batch_done;
	int			recorded = answer ? atoi(answer) : 0;

	if (recorded == left)
		log_detail(0, "%s %d SQL jobs recorded", slot->release_rest ? "giving back of" : "failure of",
				   left);
	else
		log_event(0, "%d of %d SQL jobs not %s (cancelled, lease expired, or recorded already)",
				  left - recorded, left, slot->release_rest ? "given back" : "recorded failed");
}
