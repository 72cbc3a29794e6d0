/*-------------------------------------------------------------------------
 *
 * sql_job.c
 *	  A SQL job, run in the server by jq_run_sql over its slot's own
 *	  connection:
 *
 *		SELECT jq_run_sql(id, attempt)
 *
 * jq_run_sql runs the job's command as the role that enqueued it, not as
 * the role the worker connects as, with the executors' own code (in a
 * subtransaction, under the job's timeout, its settings and session state
 * undone after it), and records its outcome, succeeded or a failed attempt
 * retried by the usual rules, in the same transaction: here the statement's
 * own, so one round trip and one commit per job, and the job's effects and
 * its outcome commit together or not at all.  It answers true (succeeded),
 * false (failed; the error is in jq_jobs) or NULL: the attempt is no
 * longer ours (cancelled, or its lease expired and it went elsewhere), and
 * nothing ran.
 *
 *	 CONNECTING (a new connection) -> RUN -> (done)
 *
 * The job's row stays locked while it runs, so its lease is not extended
 * (a heartbeat would wait for the lock) and needs no extending: a locked
 * job is neither taken back when its lease expires nor cancelled before it
 * ends.  The server enforces the job's timeout.  A stop (shutdown) sends a
 * cancel request, which ends the job's SQL with an error that jq_run_sql
 * records; if it has not ended --kill-grace later, its connection is
 * closed.  If the connection fails while a job runs, whether its statement
 * committed is unknown: a failure is sent over the control connection,
 * which jq_fail refuses if the outcome was recorded.  An error of the
 * statement itself (the job is not a SQL job, the worker may not run it)
 * is recorded the same way.  The connection stays open for the slot's next
 * SQL job.
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

/*
 * Send the job.  A kept connection that died while idle, found out here,
 * before anything ran, is replaced.
 */
static void
sql_job_run(Worker *w, Slot *slot)
{
	const char *const values[] = {slot->job.id, slot->job.attempt};

	slot->phase = SQL_RUN;
	if (conn_send(&slot->sql, "SELECT jq_run_sql($1::bigint, $2::integer)",
				  lengthof(values), values))
		return;
	if (slot->sql_fresh)
		sql_job_lost(w, slot);
	else
		sql_job_connect(w, slot);
}

void
sql_job_start(Worker *w, Slot *slot)
{
	slot->is_sql = true;
	/* the server stops it at its timeout */
	slot->timeout_at = NEVER;
	log_detail(slot->job.id_num, "running %s", slot->job.command ? slot->job.command : "");
	slot->sql_fresh = false;
	if (slot->sql.state == CONN_READY)
		sql_job_run(w, slot);
	else
		sql_job_connect(w, slot);
}

/* Ask the server to cancel the job's SQL. */
void
sql_job_cancel(Slot *slot)
{
	PGcancel   *cancel;
	char		errbuf[256];

	if (slot->sql.state != CONN_READY || slot->phase != SQL_RUN)
		return;
	cancel = PQgetCancel(slot->sql.pg);
	if (cancel == NULL || !PQcancel(cancel, errbuf, sizeof(errbuf)))
		log_event(slot->job.id_num, "could not send a cancel request: %s",
				  cancel ? errbuf : "out of memory");
	PQfreeCancel(cancel);
}

/*
 * The connection failed, the statement failed, or a stopped job did not
 * stop: close the connection and record the failure over the control
 * connection (refused if the job's outcome committed).
 */
void
sql_job_abandon(Worker *w, Slot *slot, const char *why)
{
	char	   *error;

	conn_close(&slot->sql);
	if (slot->stop == STOP_SHUTDOWN)
		error = psprintf("the worker shut down before the job ended: %s", why);
	else
		error = pg_strdup(why);
	job_end(w, slot, false, error, NULL);
	pg_free(error);
}

/* jq_run_sql answered. */
static void
sql_job_result(Worker *w, Slot *slot, PGresult *res)
{
	const char *answer;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		sql_job_abandon(w, slot, message ? message : PQresultErrorMessage(res));
		return;
	}
	answer = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
	if (answer == NULL)
		log_event(slot->job.id_num,
				  "lease lost: nothing ran (the job was cancelled, or its lease expired)");
	else if (strcmp(answer, "t") == 0)
		job_outcome(w, slot, true, NULL, NULL);
	else
		job_outcome(w, slot, false, "the server recorded the error in jq_jobs", NULL);
	job_release(slot);
}

/* The connection failed: the job is abandoned. */
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
