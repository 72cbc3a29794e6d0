/*-------------------------------------------------------------------------
 *
 * control.c
 *	  The control connection: it LISTENs for new jobs, claims them,
 *	  extends their leases and records how shell jobs ended.
 *
 * One query is in flight at a time.  When the connection is free the next
 * task is, in this order: jq_listen() after connecting (unless
 * --listen-dsn, see listen.c, or --no-listen); a lease due for
 * extension; then the outcomes of the jobs that ended (all in one
 * statement, so one commit) together with a claim, when jobs may be
 * waiting: the claim takes the slots of the jobs being recorded too.
 * After a statement that failed, outcomes are sent alone, one at a time,
 * taking turns with claims.  A claim takes jobs of one kind: one job per
 * free slot for shell jobs, up to --batch-size per free slot for SQL jobs,
 * which are shared out among the free slots, a batch each; a worker of
 * both kinds claims them in turn.  A worker of SQL jobs only claims ahead
 * while its batches end within a quarter of the lease: it keeps up to a
 * batch per slot waiting in a pool, so that a slot whose batch ended
 * starts the next at once, while the claims, each of half the pool or
 * more, run alongside the batches; a pooled job waits about a batch's
 * time, well within its lease.  Jobs may be waiting after
 * connecting, after a notification for one of our queues, after a claim
 * that got all it asked for, and every --recheck, a safety net: the
 * in-server scheduler notifies when delayed jobs and retries come due, but
 * without it (library not preloaded) nothing does.  A notification that arrives while a
 * claim is in flight is not lost: the claim's answer counts only if no
 * notification came meanwhile.
 *
 * A lost connection is tried again after a backoff that doubles from
 * 0.5 s up to 30 s, while the jobs keep running.  An outcome whose query
 * was cut off is sent again once connected: jq_complete and jq_fail take
 * the attempt, so an outcome already recorded, or one whose lease expired
 * meanwhile, is refused rather than recorded twice (at-least-once: such a
 * job may run again).  Jobs a cut-off claim may have taken go back to
 * the queue when their lease expires.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

/* the claim; its parameters are numbered from the first %d on */
static const char *const dequeue_sql =
"SELECT d.id, d.kind, d.queue, d.command, d.argv, d.working_dir, "
"       d.payload::text AS payload, d.attempt, d.max_attempts, "
"       (extract(epoch FROM d.timeout) * 1000)::bigint AS timeout_ms, "
"       ARRAY(SELECT e.key || '=' || e.value "
"             FROM jsonb_each_text(CASE WHEN jsonb_typeof(d.env) = 'object' "
"                                       THEN d.env END) e "
"             WHERE e.value IS NOT NULL) AS env "
"FROM jq_dequeue(queue => NULL, queues => $%d::text[], kinds => $%d::text[], "
"                max_jobs => $%d::integer, lease => $%d::interval, worker => $%d) d";
#define DEQUEUE_PARAMS 5

/*
 * A claim sent alone does not wait for its WAL flush, so that its jobs start
 * at once.  A crash of the server may lose it: its jobs then run again
 * when their leases run out, as jobs of a lost worker do.  A SQL job's
 * effects commit with its outcome, whose commit waits, and flushes the
 * claim with it.
 */
static const char *const claim_alone =
" WHERE pg_catalog.set_config('synchronous_commit', 'off', true) IS NOT NULL";

/* A text[] literal of items. */
static char *
control_array(char **items)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (char **item = items; *item != NULL; item++)
	{
		if (item != items)
			appendStringInfoChar(&buf, ',');
		appendStringInfoChar(&buf, '"');
		for (const char *p = *item; *p != '\0'; p++)
		{
			if (*p == '"' || *p == '\\')
				appendStringInfoChar(&buf, '\\');
			appendStringInfoChar(&buf, *p);
		}
		appendStringInfoChar(&buf, '"');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

void
control_init(Worker *w)
{
	char	   *kinds[3];
	int			n = 0;

	conn_init(&w->control);
	w->backoff_ms = BACKOFF_MIN_MS;
	w->reconnect_at = now_ms();
	w->server_utf8 = true;
	if (w->opts.run_shell)
		kinds[n++] = "shell";
	if (w->opts.run_sql)
		kinds[n++] = "sql";
	kinds[n] = NULL;
	w->kinds_array = control_array(kinds);
	kinds[1] = NULL;
	kinds[0] = "shell";
	w->shell_kinds_array = control_array(kinds);
	kinds[0] = "sql";
	w->sql_kinds_array = control_array(kinds);
	w->queues_array = w->opts.queues ? control_array(w->opts.queues) : NULL;
	w->lease_text = psprintf("%d milliseconds", w->opts.lease_ms);
	w->reporting = pg_malloc0(w->opts.concurrency * sizeof(Slot *));
}

static int
control_free_slots(const Worker *w)
{
	int			n = 0;

	for (int i = 0; i < w->opts.concurrency; i++)
		n += (w->slots[i].state == SLOT_FREE);
	return n;
}

/*
 * Does the slot's lease need extending?  Not for a batch of SQL jobs:
 * jq_run_sql_many holds their rows, which keeps them ours, and the lease
 * covers the time until it starts (sql_job.c).
 */
static bool
control_needs_heartbeat(const Slot *slot)
{
	return slot->state == SLOT_RUNNING && !slot->heartbeat_sent &&
		slot->stop != STOP_LEASE_LOST && !slot->is_sql;
}

/* The connection is gone: forget the query in flight, connect again later. */
static void
control_lost(Worker *w, int64 now)
{
	log_event(0, "control connection failed: %s; connecting again in %.1f s",
			  w->control.error, w->backoff_ms / 1000.0);
	w->reconnect_at = now + w->backoff_ms;
	w->backoff_ms = Min(w->backoff_ms * 2, BACKOFF_MAX_MS);
	w->listening = false;
	if (w->task == TASK_HEARTBEAT)
		w->heartbeat_slot->heartbeat_sent = false;
	for (int i = 0; i < w->nreporting; i++)
		w->reporting[i]->state = SLOT_REPORT;
	w->nreporting = 0;
	w->task = TASK_NONE;
}

static void
control_send(Worker *w, ControlTask task, const char *sql,
			 int nparams, const char *const *values, int64 now)
{
	w->task = w->last_task = task;
	if (!conn_send(&w->control, sql, nparams, values))
		control_lost(w, now);
}

static void control_ready(Worker *w);

/*
 * Jobs the next claim of that kind may ask for, counting reporting slots
 * of jobs whose outcomes it records as free: 0 when there is no room.
 */
static int
control_claim_room(const Worker *w, bool sql, int reporting)
{
	int			slots = control_free_slots(w) + reporting;
	int			ahead;

	if (!sql)
		return slots;
	if (w->opts.run_shell || !w->fast_batches)
		return slots * w->opts.batch_size;
	/* claiming ahead: when the pool is half empty, fill it */
	ahead = w->opts.concurrency * w->opts.batch_size - w->npool;
	return ahead >= Max(w->opts.batch_size, w->opts.concurrency * w->opts.batch_size / 2) ?
		ahead : 0;
}

/* The kind of jobs the next claim takes. */
static bool
control_next_claim_sql(const Worker *w)
{
	return w->opts.run_sql && w->opts.run_shell ? !w->claim_sql : w->opts.run_sql;
}

/*
 * Start batches from the pool in the free slots, the pool shared out among
 * them; when the worker stops, give the pool back instead.
 */
static void
control_fill(Worker *w)
{
	int			free_slots = control_free_slots(w);
	int			per_slot;

	if (w->npool == 0 || free_slots == 0)
		return;
	per_slot = Min(w->opts.batch_size, (w->npool + free_slots - 1) / free_slots);
	for (int i = 0; i < w->opts.concurrency && w->npool > 0; i++)
	{
		Slot	   *slot = &w->slots[i];
		int			take = w->stopping ? w->npool : Min(per_slot, w->npool);

		if (slot->state != SLOT_FREE)
			continue;
		if (w->stopping)
			job_give_back(w, slot, w->pool, take);
		else
			job_start_sql(w, slot, w->pool, take);
		w->npool -= take;
		memmove(w->pool, w->pool + take, w->npool * sizeof(Job));
	}
}

static int
control_reports(const Worker *w)
{
	int			n = 0;

	for (int i = 0; i < w->opts.concurrency; i++)
		n += (w->slots[i].state == SLOT_REPORT);
	return n;
}

/*
 * Append the calls that record the outcomes of the jobs that ended, a
 * column each, with their parameters; their slots are being recorded.
 */
static void
control_report_columns(Worker *w, StringInfo sql, const char **values, int *nvalues)
{
	w->nreporting = 0;
	for (int i = 0; i < w->opts.concurrency; i++)
	{
		Slot	   *slot = &w->slots[i];

		if (slot->state != SLOT_REPORT || (w->report_singly && w->nreporting == 1))
			continue;
		if (w->nreporting > 0)
			appendStringInfoString(sql, ", ");
		job_outcome_call(slot, sql, values, nvalues);
		appendStringInfo(sql, " AS r%d", w->nreporting);
		slot->state = SLOT_REPORTING;
		w->reporting[w->nreporting++] = slot;
	}
}

/*
 * Claim jobs, with the outcomes that wait, if any, recorded in the same
 * statement: one row per job claimed (at least one, whose id is NULL when
 * none was), the outcomes' columns first.
 */
static void
control_claim(Worker *w, bool with_report, int64 now)
{
	StringInfoData sql;
	const char **values = pg_malloc((w->opts.concurrency * JOB_OUTCOME_PARAMS + DEQUEUE_PARAMS) *
									sizeof(char *));
	int			nvalues = 0;
	char		max_jobs[16];

	w->claim_sql = control_next_claim_sql(w);
	initStringInfo(&sql);
	if (with_report)
	{
		appendStringInfoString(&sql, "SELECT r.*, c.* FROM (SELECT ");
		control_report_columns(w, &sql, values, &nvalues);
		appendStringInfoString(&sql, " OFFSET 0) r LEFT JOIN (");
	}
	appendStringInfo(&sql, dequeue_sql, nvalues + 1, nvalues + 2, nvalues + 3, nvalues + 4,
					 nvalues + 5);
	if (with_report)
		appendStringInfoString(&sql, ") c ON true");
	else
		appendStringInfoString(&sql, claim_alone);

	w->claim_asked = control_claim_room(w, w->claim_sql, w->nreporting);
	snprintf(max_jobs, sizeof(max_jobs), "%d", w->claim_asked);
	values[nvalues++] = w->queues_array;
	values[nvalues++] = w->claim_sql ? w->sql_kinds_array : w->shell_kinds_array;
	values[nvalues++] = max_jobs;
	values[nvalues++] = w->lease_text;
	values[nvalues++] = w->opts.name;
	w->wakeups_at_claim = w->wakeups;
	log_detail(0, "claiming up to %s %s jobs%s", max_jobs, w->claim_sql ? "SQL" : "shell",
			   with_report ? ", recording outcomes" : "");
	control_send(w, TASK_DEQUEUE, sql.data, nvalues, values, now);
	pg_free(sql.data);
	pg_free(values);
}

static void
control_heartbeat(Worker *w, Slot *slot, int64 now)
{
	const char *const values[] = {slot->job.id, w->lease_text, slot->job.attempt};

	slot->heartbeat_sent = true;
	w->heartbeat_slot = slot;
	w->heartbeat_claim = slot->claim;
	control_send(w, TASK_HEARTBEAT,
				 "SELECT jq_heartbeat(id => $1::bigint, lease => $2::interval, "
				 "attempt => $3::integer)",
				 lengthof(values), values, now);
}

/*
 * Record the outcomes of the jobs that ended, all in one statement (one
 * transaction, one commit): a column per slot.
 */
static void
control_report(Worker *w, int64 now)
{
	StringInfoData sql;
	const char **values = pg_malloc(w->opts.concurrency * JOB_OUTCOME_PARAMS * sizeof(char *));
	int			nvalues = 0;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	control_report_columns(w, &sql, values, &nvalues);
	control_send(w, TASK_REPORT, sql.data, nvalues, values, now);
	pg_free(sql.data);
	pg_free(values);
}

/* Connect when it is time, and start the next task when the connection is free. */
void
control_step(Worker *w, int64 now)
{
	Conn	   *c = &w->control;
	bool		report;
	bool		claim;

	control_fill(w);
	if (c->state == CONN_DOWN && now >= w->reconnect_at)
	{
		log_detail(0, "connecting");
		conn_connect(c, w->opts.dsn);
		if (c->state == CONN_DOWN)
			control_lost(w, now);
	}
	if (c->state != CONN_READY || c->busy)
		return;

	if (!w->listening && w->opts.listen && w->opts.listen_dsn == NULL)
	{
		control_send(w, TASK_LISTEN, "SELECT jq_listen()", 0, NULL, now);
		return;
	}
	if (!w->listening)
		control_ready(w);
	for (int i = 0; i < w->opts.concurrency; i++)
	{
		if (control_needs_heartbeat(&w->slots[i]) && now >= w->slots[i].heartbeat_at)
		{
			control_heartbeat(w, &w->slots[i], now);
			return;
		}
	}
	if (now >= w->recheck_at && !w->claim_wanted)
	{
		w->claim_wanted = true;
		w->short_claims = 0;
	}
	report = control_reports(w) > 0;
	claim = w->claim_wanted && !w->stopping &&
		control_claim_room(w, control_next_claim_sql(w),
						   report && !w->report_singly ? control_reports(w) : 0) > 0;
	/* outcomes ride with the claim; after a failure, take turns */
	if (claim && report && !w->report_singly)
		control_claim(w, true, now);
	else if (report && !(claim && w->last_task == TASK_REPORT))
		control_report(w, now);
	else if (claim)
		control_claim(w, false, now);
}

/* When control_step has something to do next, if nothing else happens. */
int64
control_next_event(const Worker *w)
{
	int64		next = NEVER;

	if (w->control.state == CONN_DOWN)
		return w->reconnect_at;
	if (w->control.state != CONN_READY || w->control.busy || !w->listening)
		return NEVER;
	for (int i = 0; i < w->opts.concurrency; i++)
	{
		if (control_needs_heartbeat(&w->slots[i]))
			next = Min(next, w->slots[i].heartbeat_at);
	}
	if (!w->stopping && control_claim_room(w, control_next_claim_sql(w), 0) > 0)
		next = Min(next, w->recheck_at);
	return next;
}

void
control_want(Worker *w, PollSet *ps)
{
	conn_want(&w->control, ps);
}

static bool
control_ok(PGresult *res)
{
	return PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) >= 1;
}

/* A boolean or timestamp answer in column col of the first row: true unless NULL or false. */
static bool
control_yes(PGresult *res, int col)
{
	return PQntuples(res) >= 1 && PQnfields(res) > col && !PQgetisnull(res, 0, col) &&
		strcmp(PQgetvalue(res, 0, col), "f") != 0;
}

/*
 * Start the jobs claimed: a shell job per free slot; SQL jobs go to the
 * pool, whence the free slots take their batches.
 */
static void
control_claimed(Worker *w, PGresult *res, int64 now)
{
	int			id_col = PQfnumber(res, "id");
	int			n = PQntuples(res);
	int			row = 0;
	bool		more;

	/* with outcomes recorded, a row without a job when none was claimed */
	if (n == 1 && (id_col < 0 || PQgetisnull(res, 0, id_col)))
		n = 0;
	if (w->claim_sql)
	{
		if (w->npool + n > w->pool_size)
		{
			w->pool_size = w->npool + n;
			w->pool = pg_realloc(w->pool, w->pool_size * sizeof(Job));
		}
		for (; row < n; row++)
			job_read_sql(&w->pool[w->npool++], res, row);
		control_fill(w);
	}
	for (int i = 0; i < w->opts.concurrency && row < n; i++)
	{
		if (w->slots[i].state == SLOT_FREE)
			job_start(w, &w->slots[i], res, row++);
	}
	log_detail(0, "claimed %d of %d jobs asked for", n, w->claim_asked);

	/*
	 * More may be waiting if we got all we asked for, or if a notification
	 * came meanwhile; a worker of both kinds looks for the other kind too.
	 */
	more = (n == w->claim_asked || w->wakeups != w->wakeups_at_claim);
	w->short_claims = more ? 0 : w->short_claims + 1;
	w->claim_wanted = more || (w->opts.run_sql && w->opts.run_shell && w->short_claims < 2);
	if (!w->claim_wanted)
		w->short_claims = 0;
	w->recheck_at = now + w->opts.recheck_ms;
}

static void
control_heartbeat_result(Worker *w, PGresult *res, bool ok, int64 now)
{
	Slot	   *slot = w->heartbeat_slot;

	/* a slot that moved on to another job is not the one the answer is about */
	if (slot->state == SLOT_FREE || slot->claim != w->heartbeat_claim)
		return;
	slot->heartbeat_sent = false;
	slot->heartbeat_at = now + w->opts.lease_ms / 3;
	if (!ok)
		log_event(slot->job.id_num, "could not extend the lease: %s",
				  PQresultErrorMessage(res));
	else if (control_yes(res, 0))
		log_detail(slot->job.id_num, "lease extended to %s", PQgetvalue(res, 0, 0));
	else if (slot->state == SLOT_RUNNING)
		job_stop(w, slot, STOP_LEASE_LOST, now);
}

static void
control_report_result(Worker *w, PGresult *res, bool ok)
{
	int			n = w->nreporting;

	w->nreporting = 0;
	if (!ok && n > 1)
	{
		/* which outcome the error is about is not known: one at a time */
		log_event(0, "could not record %d outcomes at once, trying one at a time: %s",
				  n, PQresultErrorMessage(res));
		for (int i = 0; i < n; i++)
			w->reporting[i]->state = SLOT_REPORT;
		w->report_singly = true;
		return;
	}
	w->report_singly = w->report_singly && !ok;
	for (int i = 0; i < n; i++)
	{
		Slot	   *slot = w->reporting[i];

		if (ok && slot->is_sql)
		{
			sql_job_recorded(slot, PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i));
			job_release(slot);
		}
		else if (ok)
			job_recorded(slot, control_yes(res, i));
		else
		{
			log_event(slot->job.id_num, "could not record the outcome: %s",
					  PQresultErrorMessage(res));
			job_release(slot);
		}
	}
}

/* Connected (and listening, if it listens): claim what is waiting. */
static void
control_ready(Worker *w)
{
	log_event(0, "connected to database \"%s\", waiting for jobs", PQdb(w->control.pg));
	w->listening = true;
	w->backoff_ms = BACKOFF_MIN_MS;
	w->server_utf8 = conn_server_utf8(&w->control);
	w->claim_wanted = true;
}

static void
control_result(Worker *w, PGresult *res, int64 now)
{
	ControlTask task = w->task;
	bool		ok = control_ok(res);

	w->task = TASK_NONE;
	switch (task)
	{
		case TASK_NONE:
			break;
		case TASK_LISTEN:
			if (!ok)
			{
				conn_fail(&w->control, PQresultErrorMessage(res));
				control_lost(w, now);
				break;
			}
			control_ready(w);
			break;
		case TASK_DEQUEUE:
			if (ok)
			{
				if (w->nreporting > 0)
					control_report_result(w, res, ok);
				control_claimed(w, res, now);
			}
			else if (w->nreporting > 0)
			{
				/* the outcomes or the claim failed: outcomes alone, one at a time */
				log_event(0, "could not record %d outcomes and claim jobs: %s",
						  w->nreporting, PQresultErrorMessage(res));
				for (int i = 0; i < w->nreporting; i++)
					w->reporting[i]->state = SLOT_REPORT;
				w->nreporting = 0;
				w->report_singly = true;
			}
			else
			{
				log_event(0, "could not claim jobs: %s", PQresultErrorMessage(res));
				w->claim_wanted = false;
				w->recheck_at = now + w->opts.recheck_ms;
			}
			break;
		case TASK_HEARTBEAT:
			control_heartbeat_result(w, res, ok, now);
			break;
		case TASK_REPORT:
			control_report_result(w, res, ok);
			break;
	}
}

/* Is a notification about jobs we may take? */
static bool
control_notified(const Worker *w, const PGnotify *n)
{
	if (strcmp(n->relname, JQ_NOTIFY_CHANNEL) != 0)
		return false;
	if (w->opts.queues == NULL || n->extra == NULL || n->extra[0] == '\0')
		return true;
	for (char **q = w->opts.queues; *q != NULL; q++)
	{
		if (strcmp(*q, n->extra) == 0)
			return true;
	}
	return false;
}

void
control_advance(Worker *w, const PollSet *ps, int64 now)
{
	PGresult   *res;

	switch (conn_advance(&w->control, ps, &res))
	{
		case CONN_NOTHING:
		case CONN_CONNECTED:
			break;
		case CONN_RESULT:
			control_result(w, res, now);
			break;
		case CONN_FAILED:
			control_lost(w, now);
			break;
	}
	PQclear(res);
	control_take_notifications(w, w->control.pg);
}

/* Take the notifications that came on pg (NULL: none): jobs may wait. */
void
control_take_notifications(Worker *w, PGconn *pg)
{
	PGnotify   *n;

	while (pg != NULL && (n = PQnotifies(pg)) != NULL)
	{
		if (control_notified(w, n))
		{
			log_detail(0, "notified of jobs in queue \"%s\"", n->extra);
			w->wakeups++;
			w->claim_wanted = true;
		}
		PQfreemem(n);
	}
}
