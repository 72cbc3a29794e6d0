/*-------------------------------------------------------------------------
 *
 * sql_job.c
 *	  A SQL job, run over its slot's own connection in one transaction with
 *	  its completion:
 *
 *		BEGIN;  <the job's command>;  SELECT jq_complete(...);  COMMIT
 *
 *	  so that the job's effects and its "succeeded" mark commit together or
 *	  not at all.
 *
 * Each step is its own query, and the command is sent alone as a simple
 * query, so that nothing in it can swallow or reorder the steps around it.
 * When the command fails: ROLLBACK, then jq_fail on the same connection.
 * When jq_complete returns false the lease was lost (the job was cancelled
 * or went to another worker): ROLLBACK, and the job's effects are gone.
 * A command that ends the transaction itself (COMMIT, ROLLBACK) fails
 * without retry, as in the server.
 *
 *	 CONNECTING -> BEGIN (after a reset) -> COMMAND -> COMPLETE -> COMMIT -> (done)
 *	 BEGIN, COMMAND, COMPLETE --(error, lease lost)--> ROLLBACK -> FAIL -> (done)
 *	 COMMIT --(error)--> FAIL -> (done)
 *
 * A job runs as the role the worker connects as.  The connection stays
 * open for the slot's next SQL job.  Every job's BEGIN comes after a reset,
 * in the same query (one round trip, and the same server connection behind
 * a pooler in transaction mode, which may hand a new client a server
 * connection another client used): what DISCARD ALL resets but the plan cache,
 * which no job can observe and which DISCARD ALL would make every job
 * rebuild.  So no setting, role, temporary table, prepared statement,
 * cursor, listener, advisory lock or sequence state of a job reaches the
 * next one.  If the
 * connection fails while a job runs, the
 * job's transaction is gone with it, and the failure is recorded over the
 * control connection instead (if COMMIT was in flight the job may have
 * succeeded: jq_fail is then refused, since the attempt is no longer held).
 * A timeout or a stop sends a cancel request; if the job has not ended
 * --kill-grace later, its connection is closed.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

/* DISCARD ALL but DISCARD PLANS: DISCARD ALL cannot share a query with BEGIN */
static const char *const sql_job_reset_begin =
"SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; "
"UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; "
"DISCARD SEQUENCES; BEGIN";

static void sql_job_lost(Worker *w, Slot *slot);

static void
sql_job_send(Worker *w, Slot *slot, SqlPhase phase, const char *sql)
{
	slot->phase = phase;
	if (!conn_send(&slot->sql, sql, 0, NULL))
		sql_job_lost(w, slot);
}

/* jq_complete or jq_fail, on the job's own connection */
static void
sql_job_send_outcome(Worker *w, Slot *slot, SqlPhase phase)
{
	StringInfoData sql;
	const char *values[JOB_OUTCOME_PARAMS];
	int			nvalues = 0;
	bool		sent;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	job_outcome_call(slot, &sql, values, &nvalues);
	slot->phase = phase;
	sent = conn_send(&slot->sql, sql.data, nvalues, values);
	pg_free(sql.data);
	if (!sent)
		sql_job_lost(w, slot);
}

void
sql_job_start(Worker *w, Slot *slot)
{
	slot->is_sql = true;
	if (slot->job.command == NULL)
	{
		slot->retry = false;
		job_end(w, slot, false, "a SQL job without a command", NULL);
		return;
	}
	log_detail(slot->job.id_num, "started");
	log_detail(slot->job.id_num, "running %s", slot->job.command);
	slot->sql_fresh = (slot->sql.state != CONN_READY);
	if (!slot->sql_fresh)
	{
		sql_job_send(w, slot, SQL_BEGIN, sql_job_reset_begin);
		return;
	}
	slot->phase = SQL_CONNECTING;
	conn_connect(&slot->sql, w->opts.dsn);
	if (slot->sql.state == CONN_DOWN)
		sql_job_abandon(w, slot, slot->sql.error);
}

/* Ask the server to cancel what the job runs, if it runs the job's SQL. */
void
sql_job_cancel(Slot *slot)
{
	PGcancel   *cancel;
	char		errbuf[256];

	if (slot->sql.state != CONN_READY ||
		(slot->phase != SQL_BEGIN && slot->phase != SQL_COMMAND))
		return;
	cancel = PQgetCancel(slot->sql.pg);
	if (cancel == NULL || !PQcancel(cancel, errbuf, sizeof(errbuf)))
		log_event(slot->job.id_num, "could not send a cancel request: %s",
				  cancel ? errbuf : "out of memory");
	PQfreeCancel(cancel);
}

/* The job's error as recorded: why it was stopped, then what the server said. */
static char *
sql_job_error(const Slot *slot, const char *message)
{
	if (slot->stop == STOP_TIMEOUT)
		return psprintf("job exceeded its timeout of %lld ms: %s",
						(long long) slot->job.timeout_ms, message);
	if (slot->stop == STOP_SHUTDOWN)
		return psprintf("the worker shut down before the job ended: %s", message);
	return pg_strdup(message);
}

/*
 * The connection failed, or a stopped job did not stop: close it.  What
 * the job did is rolled back by the server, or committed if COMMIT got
 * there; the failure is recorded over the control connection.
 */
void
sql_job_abandon(Worker *w, Slot *slot, const char *why)
{
	char	   *error;

	conn_close(&slot->sql);
	if (slot->stop == STOP_LEASE_LOST)
	{
		log_event(slot->job.id_num, "stopped after its lease was lost (%s); nothing recorded", why);
		job_release(slot);
		return;
	}
	if (slot->error != NULL)
	{
		/* it had failed already: record that error */
		slot->state = SLOT_REPORT;
		return;
	}
	error = sql_job_error(slot, why);
	job_end(w, slot, false, error, NULL);
	pg_free(error);
}

/* What the server said went wrong. */
static const char *
sql_job_message(const PGresult *res)
{
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	return message ? message : PQresultErrorMessage(res);
}

/* The job's own SQL failed: roll back, then record the error. */
static void
sql_job_failed(Worker *w, Slot *slot, PGresult *res)
{
	char	   *error = sql_job_error(slot, sql_job_message(res));

	if (slot->stop != STOP_LEASE_LOST)
		job_outcome(w, slot, false, error, NULL);
	pg_free(error);
	sql_job_send(w, slot, SQL_ROLLBACK, "ROLLBACK");
}

static void
sql_job_result(Worker *w, Slot *slot, PGresult *res)
{
	ExecStatusType status = PQresultStatus(res);
	bool		ok = (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
					  status == PGRES_EMPTY_QUERY);
	bool		yes = ok && PQntuples(res) == 1 && PQnfields(res) == 1 &&
		strcmp(PQgetvalue(res, 0, 0), "t") == 0;

	/* the job's own steps: an error fails it, a lost lease rolls it back */
	if (slot->phase == SQL_BEGIN || slot->phase == SQL_COMMAND)
	{
		if (!ok)
		{
			sql_job_failed(w, slot, res);
			return;
		}
		if (slot->stop == STOP_LEASE_LOST)
		{
			sql_job_send(w, slot, SQL_ROLLBACK, "ROLLBACK");
			return;
		}
	}

	switch (slot->phase)
	{
		case SQL_CONNECTING:
			break;
		case SQL_BEGIN:
			sql_job_send(w, slot, SQL_COMMAND, slot->job.command);
			break;
		case SQL_COMMAND:
			if (PQtransactionStatus(slot->sql.pg) != PQTRANS_INTRANS)
			{
				slot->retry = false;
				job_outcome(w, slot, false,
							"a job cannot run transaction control statements (COMMIT, ROLLBACK)",
							NULL);
				sql_job_send(w, slot, SQL_ROLLBACK, "ROLLBACK");
			}
			else
			{
				slot->succeeded = true;
				sql_job_send_outcome(w, slot, SQL_COMPLETE);
			}
			break;
		case SQL_COMPLETE:
			slot->succeeded = false;
			if (!ok)
				sql_job_failed(w, slot, res);
			else if (yes)
				sql_job_send(w, slot, SQL_COMMIT, "COMMIT");
			else
			{
				slot->stop = STOP_LEASE_LOST;
				sql_job_send(w, slot, SQL_ROLLBACK, "ROLLBACK");
			}
			break;
		case SQL_COMMIT:
			if (ok)
			{
				job_outcome(w, slot, true, NULL, NULL);
				job_release(slot);
			}
			else
			{
				/* a failed COMMIT rolled back: record the error */
				job_outcome(w, slot, false, sql_job_message(res), NULL);
				sql_job_send_outcome(w, slot, SQL_FAIL);
			}
			break;
		case SQL_ROLLBACK:
			if (slot->stop == STOP_LEASE_LOST)
			{
				log_event(slot->job.id_num, "lease lost: rolled back, nothing recorded");
				job_release(slot);
			}
			else
				sql_job_send_outcome(w, slot, SQL_FAIL);
			break;
		case SQL_FAIL:
			if (ok)
				job_recorded(slot, yes);
			else
			{
				log_event(slot->job.id_num, "could not record the outcome: %s",
						  PQresultErrorMessage(res));
				job_release(slot);
			}
			break;
	}
}

/*
 * The connection failed.  A kept connection that died while idle is found
 * out by the first step of the next job, which has not begun: connect
 * again.  Otherwise the job is abandoned.
 */
static void
sql_job_lost(Worker *w, Slot *slot)
{
	char	   *why;

	if (slot->phase <= SQL_BEGIN && !slot->sql_fresh)
	{
		slot->sql_fresh = true;
		slot->phase = SQL_CONNECTING;
		conn_connect(&slot->sql, w->opts.dsn);
		if (slot->sql.state != CONN_DOWN)
			return;
	}
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
		sql_job_send(w, slot, SQL_BEGIN, sql_job_reset_begin);
	else if (ev == CONN_RESULT && running)
		sql_job_result(w, slot, res);
	PQclear(res);
}
