/*-------------------------------------------------------------------------
 *
 * db.c
 *	  jq_dashboard's database side: one libpq connection, the snapshot of
 *	  the queue that every open page polls, a job's detail, retry and
 *	  cancel, and the Prometheus metrics.
 *
 * Only the HTTP server's thread calls these functions, one at a time.
 *
 * The snapshot is one query that returns the whole page as JSON.  It is
 * kept for the refresh period (a second by default): however many pages
 * poll, the database sees at most one snapshot query per period, and none
 * while nobody looks.  Each snapshot also yields a small sample (depth,
 * throughput and latency per queue), kept in a ring in memory, from which
 * the page draws its charts; a page that opens late gets the samples
 * gathered before it came.
 *
 * The connection acts with the rights of the role it logs in as: the page
 * shows the jobs that role sees in jq_jobs and retries and cancels only
 * what jq_retry and jq_cancel let it; of the queues of other roles' jobs
 * it lists only those with settings (jq_queues shows them to everyone).
 * Names are resolved in the extension's schema, found once per
 * connection, after pg_catalog: the role's search_path plays no part.  The
 * per-queue figures and the running jobs come from jq_stats and
 * jq_running, which read counters and progress in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_dashboard.h"

#include <time.h>

/* samples kept for the charts: ten minutes at one snapshot a second */
#define DB_SAMPLES 600

typedef struct DbSample
{
	double		time;			/* epoch seconds of the snapshot */
	char	   *json;
} DbSample;

static PGconn *db_conn;
static char *db_dsn;
static int	db_refresh_ms;

/* the last snapshot, its HTTP status and when it was taken */
static PQExpBufferData db_cache;
static int	db_cache_status;
static int64 db_cache_at = -1;

static DbSample db_samples[DB_SAMPLES];
static int	db_sample_next;
static int	db_sample_count;

/*
 * Once per connection: names resolve in the extension's schema (after
 * pg_catalog, so that nothing there can be shadowed), and a statement that
 * hangs is stopped.
 */
static const char db_setup_sql[] =
"SELECT pg_catalog.set_config('search_path', "
"         'pg_catalog, ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname) "
"         OPERATOR(pg_catalog.||) ', pg_temp', false), "
"       pg_catalog.set_config('statement_timeout', '10s', false) "
"FROM pg_catalog.pg_extension e "
"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
"WHERE e.extname OPERATOR(pg_catalog.=) 'job_queue'";

/*
 * The snapshot: the page as one JSON document, and the sample for the
 * charts.
 */
static const char db_snapshot_sql[] =
"/* jq_dashboard snapshot */ "
"WITH s AS MATERIALIZED ("
"  SELECT queue, waiting, scheduled, ready, running, retrying, oldest_ready_age, "
"         succeeded_1m, failed_1m, retried_1m, timed_out_1m, succeeded_1h, failed_1h, "
"         pickup_p95_1m, run_p95_1m "
"  FROM jq_stats), "
"q AS (SELECT coalesce(s.queue, c.queue) AS queue, "
"             coalesce(c.paused, false) AS paused, coalesce(c.external_only, false) AS external_only, "
"             c.concurrency, c.max_ready, c.rate_limit, extract(epoch FROM c.rate_period) AS rate_period, "
"             coalesce(s.waiting, 0) AS waiting, coalesce(s.scheduled, 0) AS scheduled, "
"             coalesce(s.ready, 0) AS ready, coalesce(s.running, 0) AS running, "
"             coalesce(s.retrying, 0) AS retrying, "
"             extract(epoch FROM s.oldest_ready_age) AS oldest_ready_age, "
"             s.succeeded_1m, s.failed_1m, s.retried_1m, s.timed_out_1m, s.succeeded_1h, s.failed_1h, "
"             extract(epoch FROM s.pickup_p95_1m) AS pickup_p95_1m, "
"             extract(epoch FROM s.run_p95_1m) AS run_p95_1m "
"      FROM (SELECT * FROM s WHERE s.queue IS NOT NULL) s "
"      FULL JOIN jq_queues c ON c.queue = s.queue "
"      WHERE s.queue IS NOT NULL OR c.paused OR c.external_only "
"         OR num_nonnulls(c.concurrency, c.max_ready, c.rate_limit, c.default_priority, "
"                         c.default_max_attempts, c.default_timeout) > 0) "
"SELECT extract(epoch FROM now()), "
"  json_build_object("
"    'time', extract(epoch FROM now()), "
"    'role', current_user, "
"    'admin', pg_has_role('jq_admin', 'USAGE'), "
"    'queues', (SELECT coalesce(json_agg(q ORDER BY q.queue), '[]') FROM q), "
"    'running', (SELECT coalesce(json_agg(r ORDER BY r.started_at, r.id), '[]') "
"                FROM (SELECT id, queue, kind, left(command, 300) AS command, owner, executor_pid, "
"                             lease_owner, started_at, attempt, max_attempts, progress, progress_at "
"                      FROM jq_running ORDER BY started_at, id LIMIT 200) r), "
"    'failed', (SELECT coalesce(json_agg(f ORDER BY f.finished_at DESC), '[]') "
"               FROM (SELECT id, queue, kind, left(command, 300) AS command, owner, attempts, "
"                            max_attempts, created_at, finished_at, errors "
"                     FROM jq_jobs WHERE state = 'failed' AND finished_at IS NOT NULL "
"                     ORDER BY finished_at DESC LIMIT 50) f), "
"    'recent', (SELECT coalesce(json_agg(d ORDER BY d.finished_at DESC), '[]') "
"               FROM (SELECT id, queue, kind, left(command, 300) AS command, owner, state, "
"                            attempts, max_attempts, started_at, finished_at, last_error "
"                     FROM jq_jobs WHERE finished_at IS NOT NULL "
"                     ORDER BY finished_at DESC LIMIT 20) d), "
"    'schedules', (SELECT coalesce(json_agg(x ORDER BY x.next_run NULLS LAST, x.name), '[]') "
"                  FROM (SELECT c.name, c.schedule, c.time_zone, c.queue, c.kind, c.owner, "
"                               c.next_run, c.last_run, c.last_job, c.skipped_runs, c.last_error, "
"                               (SELECT j.state FROM jq_jobs j WHERE j.id = c.last_job) AS last_state "
"                        FROM jq_schedules c ORDER BY c.next_run NULLS LAST, c.name LIMIT 200) x) "
"  )::text, "
"  json_build_object('t', extract(epoch FROM now()), "
"    'q', (SELECT json_object_agg(coalesce(s.queue, ''), json_build_array(s.ready, s.running, "
"            s.succeeded_1m, s.failed_1m, extract(epoch FROM s.pickup_p95_1m), "
"            extract(epoch FROM s.run_p95_1m))) FROM s))::text";

/* a job and what it is tied to, with its progress while it runs */
static const char db_job_sql[] =
"/* jq_dashboard job */ "
"SELECT json_build_object("
"  'job', to_json(j), "
"  'group', (SELECT to_json(g) FROM jq_groups g WHERE g.id = j.group_id), "
"  'dependencies', (SELECT coalesce(json_agg(json_build_object('id', d.id, 'queue', d.queue, "
"                     'state', d.state) ORDER BY d.id), '[]') "
"                   FROM jq_jobs d WHERE d.id = ANY (j.depends_on)), "
"  'group_jobs', (SELECT coalesce(json_agg(m ORDER BY m.id), '[]') "
"                 FROM (SELECT m.id, m.queue, m.state FROM jq_jobs m "
"                       WHERE m.group_id = j.group_id ORDER BY m.id LIMIT 100) m), "
"  'running', (SELECT to_json(r) FROM jq_running r WHERE r.id = j.id)"
")::text "
"FROM jq_jobs j WHERE j.id = $1::bigint";

static int64
db_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {"error": message}, with message as a JSON string */
static void
db_error_json(PQExpBuffer body, const char *message)
{
	size_t		len = strlen(message);

	/* libpq's messages end with a newline */
	while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
		len--;
	resetPQExpBuffer(body);
	appendPQExpBufferStr(body, "{\"error\": \"");
	for (size_t i = 0; i < len; i++)
	{
		unsigned char ch = (unsigned char) message[i];

		if (ch == '"' || ch == '\\')
			appendPQExpBuffer(body, "\\%c", ch);
		else if (ch < 0x20)
			appendPQExpBuffer(body, "\\u%04x", ch);
		else
			appendPQExpBufferChar(body, ch);
	}
	appendPQExpBufferStr(body, "\"}");
}

/* The HTTP status for a failed statement, from its SQLSTATE. */
static int
db_error_status(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL || PQstatus(db_conn) != CONNECTION_OK)
		return 503;
	if (strcmp(state, "42501") == 0)	/* insufficient_privilege */
		return 403;
	if (strcmp(state, "P0002") == 0)	/* no_data_found */
		return 404;
	if (strcmp(state, "55000") == 0 || strcmp(state, "23505") == 0)
		return 409;				/* not in a state that allows it */
	if (strncmp(state, "22", 2) == 0)	/* data exception */
		return 400;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0)
		return 503;				/* connection lost, server shutting down */
	return 500;
}

/* Connect and set the session up; on failure the reason is in body. */
static bool
db_open(PQExpBuffer body)
{
	/* the dsn is expanded in place of dbname: its settings win over the first */
	const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name",
	"client_encoding", NULL};
	const char *const values[] = {"10", db_dsn, "jq_dashboard", "UTF8", NULL};
	PGresult   *res;

	if (db_conn)
		PQfinish(db_conn);
	db_conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(db_conn) != CONNECTION_OK)
	{
		db_error_json(body, PQerrorMessage(db_conn));
		PQfinish(db_conn);
		db_conn = NULL;
		return false;
	}
	res = PQexec(db_conn, db_setup_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		db_error_json(body, PQresultStatus(res) == PGRES_TUPLES_OK ?
					  "extension \"job_queue\" is not installed in this database" :
					  PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(db_conn);
		db_conn = NULL;
		return false;
	}
	PQclear(res);
	dash_log("connected to database \"%s\" as \"%s\"", PQdb(db_conn), PQuser(db_conn));
	return true;
}

/*
 * Run sql with text parameters.  Returns its result, or NULL with the error
 * in body and its HTTP status in *status.  A lost connection is opened
 * again before the statement is sent.
 */
static PGresult *
db_exec(const char *sql, int nparams, const char *const *params, PQExpBuffer body,
		int *status)
{
	PGresult   *res;

	if ((db_conn == NULL || PQstatus(db_conn) != CONNECTION_OK) && !db_open(body))
	{
		*status = 503;
		return NULL;
	}
	res = PQexecParams(db_conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	*status = db_error_status(res);
	db_error_json(body, PQresultErrorMessage(res));
	PQclear(res);
	return NULL;
}

bool
db_connect(const char *dsn, int refresh_ms)
{
	PQExpBufferData error;
	bool		ok;

	db_dsn = pg_strdup(dsn ? dsn : "");
	db_refresh_ms = refresh_ms;
	initPQExpBuffer(&db_cache);
	initPQExpBuffer(&error);
	ok = db_open(&error);
	if (!ok)
		dash_log("could not connect: %s", error.data);
	termPQExpBuffer(&error);
	return ok;
}

void
db_disconnect(void)
{
	if (db_conn)
		PQfinish(db_conn);
	db_conn = NULL;
}

/* Keep a snapshot's sample for the charts. */
static void
db_add_sample(double time, const char *json)
{
	DbSample   *s = &db_samples[db_sample_next];

	pg_free(s->json);
	s->time = time;
	s->json = pg_strdup(json);
	db_sample_next = (db_sample_next + 1) % DB_SAMPLES;
	if (db_sample_count < DB_SAMPLES)
		db_sample_count++;
}

/* Take a new snapshot into the cache. */
static void
db_refresh(void)
{
	PGresult   *res;

	res = db_exec(db_snapshot_sql, 0, NULL, &db_cache, &db_cache_status);
	if (res == NULL)
		return;
	resetPQExpBuffer(&db_cache);
	appendPQExpBufferStr(&db_cache, PQgetvalue(res, 0, 1));
	db_cache_status = 200;
	db_add_sample(strtod(PQgetvalue(res, 0, 0), NULL), PQgetvalue(res, 0, 2));
	PQclear(res);
}

/*
 * The snapshot, taken anew if the cached one is older than the refresh
 * period, followed by the samples taken after time since:
 * {"snapshot": {...}, "samples": [...]}.
 */
int
db_snapshot(double since, PQExpBuffer body)
{
	int64		now = db_now_ms();
	bool		first = true;

	if (db_cache_at < 0 || now - db_cache_at >= db_refresh_ms)
	{
		db_refresh();
		db_cache_at = now;
	}
	resetPQExpBuffer(body);
	if (db_cache_status != 200)
	{
		appendPQExpBufferStr(body, db_cache.data);
		return db_cache_status;
	}
	appendPQExpBuffer(body, "{\"snapshot\": %s, \"samples\": [", db_cache.data);
	for (int i = 0; i < db_sample_count; i++)
	{
		DbSample   *s = &db_samples[(db_sample_next - db_sample_count + i + DB_SAMPLES) % DB_SAMPLES];

		if (s->time <= since)
			continue;
		appendPQExpBuffer(body, "%s%s", first ? "" : ", ", s->json);
		first = false;
	}
	appendPQExpBufferStr(body, "]}");
	return 200;
}

/* A job, with its group, dependencies and progress; id is digits. */
int
db_job(const char *id, PQExpBuffer body)
{
	PGresult   *res;
	int			status;

	res = db_exec(db_job_sql, 1, &id, body, &status);
	if (res == NULL)
		return status;
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		db_error_json(body, "no such job, or not one of yours");
		return 404;
	}
	resetPQExpBuffer(body);
	appendPQExpBufferStr(body, PQgetvalue(res, 0, 0));
	PQclear(res);
	return 200;
}

/* jq_retry or jq_cancel of job id (digits): {"done": true|false}. */
int
db_action(const char *action, const char *id, PQExpBuffer body)
{
	const char *sql;
	PGresult   *res;
	int			status;

	if (strcmp(action, "retry") == 0)
		sql = "/* jq_dashboard retry */ SELECT jq_retry($1::bigint)";
	else
		sql = "/* jq_dashboard cancel */ SELECT jq_cancel($1::bigint)";
	res = db_exec(sql, 1, &id, body, &status);
	if (res == NULL)
		return status;
	resetPQExpBuffer(body);
	appendPQExpBuffer(body, "{\"done\": %s}",
					  strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "true" : "false");
	PQclear(res);
	/* the next poll shows the change */
	db_cache_at = -1;
	return 200;
}

/* SELECT jq_metrics(): Prometheus text, or the error. */
int
db_metrics(PQExpBuffer body)
{
	PGresult   *res;
	int			status;

	res = db_exec("/* jq_dashboard metrics */ SELECT jq_metrics()", 0, NULL, body, &status);
	if (res == NULL)
		return status;
	resetPQExpBuffer(body);
	appendPQExpBufferStr(body, PQgetvalue(res, 0, 0));
	PQclear(res);
	return 200;
}
