/*-------------------------------------------------------------------------
 *
 * stats_report.c
 *	  What the statistics of stats.c look like to users: the rows of the
 *	  jq_stats view (jq_queue_stats()) and the Prometheus text of
 *	  jq_metrics().
 *
 * Both show the current database's queues, counting the jobs of the
 * caller, or of every role for members of jq_admin.  Counts of jobs in
 * each state come from shared memory, except that a delayed job (enqueued
 * with a run_at, or waiting for a retry) stops being scheduled or retrying
 * and becomes ready when its time comes, without any row changing: the
 * delayed jobs already due are counted from the index of delayed jobs,
 * which in a healthy queue holds few of them.  The age of the oldest ready
 * job is read from the queue's claim index, one probe per priority.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "api.h"
#include "compat.h"
#include "internal_sql.h"
#include "monitor.h"

/* one queue (or all of them) as users see it */
typedef struct ReportRow
{
	JqQueueStats *stats;
	int64		waiting;
	int64		scheduled;
	int64		ready;
	int64		running;
	int64		retrying;
	TimestampTz oldest_ready;	/* 0: no ready job */
} ReportRow;

/* delayed jobs already due, by queue ($1: owner, $2: every owner) */
static const char *const report_due_sql =
"SELECT j.queue, pg_catalog.count(*) FILTER (WHERE j.attempts OPERATOR(pg_catalog.=) 0), "
"	pg_catalog.count(*) FILTER (WHERE j.attempts OPERATOR(pg_catalog.>) 0) "
"FROM jq.job j "
"WHERE j.state = 'ready' AND j.run_at > j.created_at AND j.run_at <= pg_catalog.now() "
"  AND (j.owner OPERATOR(pg_catalog.=) $1 OR $2) "
"GROUP BY j.queue";

/* its columns */
enum
{
	Anum_due_queue = 1,
	Anum_due_first,
	Anum_due_retry
};

/*
 * When the oldest ready job of each queue ($1) became due: the first ready
 * job in claim order of each priority is the oldest of its priority, and
 * the claim index yields it, and then the next priority, in one probe each.
 * $2: owner, $3: every owner.
 */
static const char *const report_oldest_sql =
"WITH RECURSIVE head AS ( "
"	SELECT q.queue, l.limited, h.priority, h.run_at "
"	FROM pg_catalog.unnest($1) AS q(queue) "
"	CROSS JOIN (VALUES (false), (true)) AS l(limited) "
"	CROSS JOIN LATERAL (SELECT j.priority, j.run_at FROM jq.job j "
"		WHERE j.queue OPERATOR(pg_catalog.=) q.queue COLLATE pg_catalog.\"C\" "
"		  AND j.limited = l.limited AND j.state = 'ready' "
"		  AND (j.owner OPERATOR(pg_catalog.=) $2 OR $3) "
"		ORDER BY j.priority, j.run_at, j.id LIMIT 1) h "
"	UNION ALL "
"	SELECT hd.queue, hd.limited, h.priority, h.run_at "
"	FROM head hd "
"	CROSS JOIN LATERAL (SELECT j.priority, j.run_at FROM jq.job j "
"		WHERE j.queue OPERATOR(pg_catalog.=) hd.queue COLLATE pg_catalog.\"C\" "
"		  AND j.limited = hd.limited AND j.state = 'ready' "
"		  AND j.priority OPERATOR(pg_catalog.>) hd.priority "
"		  AND (j.owner OPERATOR(pg_catalog.=) $2 OR $3) "
"		ORDER BY j.priority, j.run_at, j.id LIMIT 1) h "
") "
"SELECT hd.queue, pg_catalog.min(hd.run_at) FILTER (WHERE hd.run_at <= pg_catalog.now()) "
"FROM head hd GROUP BY hd.queue";

/* its columns */
enum
{
	Anum_oldest_queue = 1,
	Anum_oldest_run_at
};

/* Fill in the oldest ready job of each queue row (all but the last). */
static void
report_oldest_ready(ReportRow *rows, int n, Datum owner, Datum all)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *queues = palloc(sizeof(Datum) * Max(n - 1, 1));
	Datum		args[3];

	if (plan == NULL)
	{
		Oid			types[3] = {TEXTARRAYOID, OIDOID, BOOLOID};

		plan = jq_prepare(report_oldest_sql, 3, types);
	}
	for (int i = 0; i < n - 1; i++)
		queues[i] = CStringGetTextDatum(rows[i].stats->queue);
	args[0] = PointerGetDatum(construct_array(queues, n - 1, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = owner;
	args[2] = all;
	if (jq_execute_plan(plan, args, NULL, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the claim index");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *queue = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
										 Anum_oldest_queue);
		bool		isnull;
		Datum		oldest = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
										   Anum_oldest_run_at, &isnull);

		for (int i = 0; i < n - 1 && !isnull; i++)
		{
			if (strcmp(rows[i].stats->queue, queue) == 0)
				rows[i].oldest_ready = DatumGetTimestampTz(oldest);
		}
	}
}

/*
 * The statistics the caller may see: one row per queue, then the row of
 * all of them (queue "").  Returns the number of rows.
 */
static int
report_collect(ReportRow **result)
{
	static SPIPlanPtr due_plan = NULL;
	Oid			caller = GetUserId();
	bool		sees_all = jq_is_admin(caller);
	JqQueueStats *stats;
	int			n = jq_stats_collect(sees_all ? InvalidOid : caller, &stats);
	ReportRow  *rows = palloc0(sizeof(ReportRow) * n);
	ReportRow  *all = &rows[n - 1];
	Datum		args[2] = {ObjectIdGetDatum(caller), BoolGetDatum(sees_all)};
	JqUserContext ctx;

	for (int i = 0; i < n; i++)
	{
		int64	   *g = stats[i].gauges;

		rows[i].stats = &stats[i];
		rows[i].waiting = g[JQ_GAUGE_WAITING];
		rows[i].running = g[JQ_GAUGE_RUNNING];
		rows[i].ready = g[JQ_GAUGE_READY_NOW];
		rows[i].scheduled = g[JQ_GAUGE_DELAYED_FIRST];
		rows[i].retrying = g[JQ_GAUGE_DELAYED_RETRY];
	}

	SPI_connect();
	jq_as_owner(&ctx);
	if (due_plan == NULL)
	{
		Oid			types[2] = {OIDOID, BOOLOID};

		due_plan = jq_prepare(report_due_sql, 2, types);
	}
	if (jq_execute_plan(due_plan, args, NULL, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count the delayed jobs that are due");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *queue = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
										 Anum_due_queue);
		bool		isnull;
		int64		first = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, Anum_due_first,
														&isnull));
		int64		retry = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, Anum_due_retry,
														&isnull));

		for (int i = 0; i < n - 1; i++)
		{
			if (strcmp(rows[i].stats->queue, queue) != 0)
				continue;
			rows[i].scheduled -= first;
			rows[i].retrying -= retry;
			rows[i].ready += first + retry;
			all->scheduled -= first;
			all->retrying -= retry;
			all->ready += first + retry;
		}
	}
	report_oldest_ready(rows, n, args[0], args[1]);
	for (int i = 0; i < n - 1; i++)
	{
		if (rows[i].oldest_ready != 0 &&
			(all->oldest_ready == 0 || rows[i].oldest_ready < all->oldest_ready))
			all->oldest_ready = rows[i].oldest_ready;
	}
	jq_as_caller(&ctx);
	SPI_finish();

	/* counts moved by jobs that commit meanwhile can be off by a few: never below 0 */
	for (int i = 0; i < n; i++)
	{
		rows[i].scheduled = Max(rows[i].scheduled, 0);
		rows[i].retrying = Max(rows[i].retrying, 0);
	}
	*result = rows;
	return n;
}

/*
 * A latency quantile estimated from a histogram: linear within the bucket
 * the quantile falls in, as Prometheus' histogram_quantile does; -1 when
 * the histogram is empty.
 */
double
jq_counts_quantile(const JqCounts *c, JqHist h, double q)
{
	int64		total = 0;
	double		rank;
	int64		seen = 0;

	for (int b = 0; b < JQ_HIST_BUCKETS; b++)
		total += c->hist[h][b];
	if (total == 0)
		return -1;
	rank = q * total;
	for (int b = 0; b < JQ_HIST_BUCKETS; b++)
	{
		int64		count = c->hist[h][b];
		double		lower = b == 0 ? 0 : jq_hist_bounds_us[b - 1];
		double		upper;

		if (count == 0 || seen + count < rank)
		{
			seen += count;
			continue;
		}
		if (b == JQ_HIST_BUCKETS - 1)
			return lower;		/* beyond the last bound: the bound is all we know */
		upper = jq_hist_bounds_us[b];
		return lower + (upper - lower) * ((rank - seen) / count);
	}
	return jq_hist_bounds_us[JQ_HIST_BUCKETS - 2];
}

static Datum
report_interval(double us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (TimeOffset) us;
	return IntervalPGetDatum(iv);
}

#define REPORT_COLS 31

PG_FUNCTION_INFO_V1(jq_queue_stats);

/* jq_queue_stats(): the rows of the jq_stats view. */
Datum
jq_queue_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReportRow  *rows;
	int			n;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	n = report_collect(&rows);
	for (int i = 0; i < n; i++)
	{
		ReportRow  *r = &rows[i];
		Datum		values[REPORT_COLS];
		bool		nulls[REPORT_COLS] = {0};
		int			c = 0;

		nulls[c] = r->stats->queue[0] == '\0';
		values[c++] = CStringGetTextDatum(r->stats->queue);
		values[c++] = Int64GetDatum(r->waiting);
		values[c++] = Int64GetDatum(r->scheduled);
		values[c++] = Int64GetDatum(r->ready);
		values[c++] = Int64GetDatum(r->running);
		values[c++] = Int64GetDatum(r->retrying);
		nulls[c] = r->oldest_ready == 0;
		values[c++] = report_interval(Max(now - r->oldest_ready, 0));
		for (int w = 0; w < JQ_NUM_WINDOWS; w++)
		{
			const int64 *ev = r->stats->windows[w].events;

			values[c++] = Int64GetDatum(ev[JQ_EVENT_SUCCEEDED]);
			values[c++] = Int64GetDatum(ev[JQ_EVENT_FAILED]);
			values[c++] = Int64GetDatum(ev[JQ_EVENT_RETRIED]);
			values[c++] = Int64GetDatum(ev[JQ_EVENT_TIMED_OUT]);
		}
		for (int w = 0; w < JQ_NUM_WINDOWS; w++)
		{
			static const JqHist hists[4] = {JQ_HIST_PICKUP, JQ_HIST_PICKUP, JQ_HIST_RUN, JQ_HIST_RUN};
			static const double qs[4] = {0.5, 0.95, 0.5, 0.95};

			for (int k = 0; k < 4; k++)
			{
				double		us = jq_counts_quantile(&r->stats->windows[w], hists[k], qs[k]);

				nulls[c] = us < 0;
				values[c++] = report_interval(Max(us, 0));
			}
		}
		Assert(c == REPORT_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * jq_metrics(): Prometheus text exposition format 0.0.4
 * ------------------------------------------------------------------------
 */

/* a label value, escaped: backslash, double quote and newline */
static void
report_label(StringInfo buf, const char *name, const char *value)
{
	appendStringInfo(buf, "%s=\"", name);
	for (const char *p = value; *p; p++)
	{
		if (*p == '\\' || *p == '"')
			appendStringInfoChar(buf, '\\');
		if (*p == '\n')
			appendStringInfoString(buf, "\\n");
		else
			appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

static void
report_family(StringInfo buf, const char *name, const char *type, const char *help)
{
	appendStringInfo(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{database="...",queue="..."[,extra]} */
static void
report_sample_start(StringInfo buf, const char *name, const char *db, const char *queue)
{
	appendStringInfo(buf, "%s{", name);
	report_label(buf, "database", db);
	appendStringInfoChar(buf, ',');
	report_label(buf, "queue", queue);
}

static void
report_gauges(StringInfo buf, ReportRow *rows, int n, const char *db)
{
	static const char *const states[] = {"waiting", "scheduled", "ready", "running", "retrying"};
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	report_family(buf, "jq_jobs", "gauge", "Jobs not finished, by state.");
	for (int i = 0; i < n; i++)
	{
		int64		v[5] = {rows[i].waiting, rows[i].scheduled, rows[i].ready,
		rows[i].running, rows[i].retrying};

		for (int s = 0; s < 5; s++)
		{
			report_sample_start(buf, "jq_jobs", db, rows[i].stats->queue);
			appendStringInfo(buf, ",state=\"%s\"} " INT64_FORMAT "\n", states[s], v[s]);
		}
	}
	report_family(buf, "jq_oldest_ready_age_seconds", "gauge",
				  "How long the oldest ready job has been due.");
	for (int i = 0; i < n; i++)
	{
		report_sample_start(buf, "jq_oldest_ready_age_seconds", db, rows[i].stats->queue);
		appendStringInfo(buf, "} %.6f\n", rows[i].oldest_ready == 0 ? 0.0 :
						 Max(now - rows[i].oldest_ready, 0) / 1000000.0);
	}
}

/* a counter of one kind of event, per queue */
static void
report_event_counter(StringInfo buf, ReportRow *rows, int n, const char *db,
					 const char *name, const char *help, JqEvent event)
{
	report_family(buf, name, "counter", help);
	for (int i = 0; i < n; i++)
	{
		report_sample_start(buf, name, db, rows[i].stats->queue);
		appendStringInfo(buf, "} " INT64_FORMAT "\n", rows[i].stats->total.events[event]);
	}
}

static void
report_counters(StringInfo buf, ReportRow *rows, int n, const char *db)
{
	static const char *const finished[] = {"succeeded", "failed", "cancelled"};

	report_family(buf, "jq_jobs_finished_total", "counter",
				  "Jobs that finished since the server started, by final state.");
	for (int i = 0; i < n; i++)
	{
		for (int s = 0; s < 3; s++)
		{
			report_sample_start(buf, "jq_jobs_finished_total", db, rows[i].stats->queue);
			appendStringInfo(buf, ",state=\"%s\"} " INT64_FORMAT "\n", finished[s],
							 rows[i].stats->total.events[JQ_EVENT_SUCCEEDED + s]);
		}
	}
	report_event_counter(buf, rows, n, db, "jq_job_retries_total",
						 "Failed attempts that were retried, since the server started.",
						 JQ_EVENT_RETRIED);
	report_event_counter(buf, rows, n, db, "jq_job_timeouts_total",
						 "Attempts that exceeded their timeout, since the server started.",
						 JQ_EVENT_TIMED_OUT);
}

static void
report_histogram(StringInfo buf, ReportRow *rows, int n, const char *db, JqHist h,
				 const char *name, const char *help)
{
	char	   *bucket = psprintf("%s_bucket", name);

	report_family(buf, name, "histogram", help);
	for (int i = 0; i < n; i++)
	{
		const JqCounts *c = &rows[i].stats->total;
		int64		cumulative = 0;

		for (int b = 0; b < JQ_HIST_BUCKETS; b++)
		{
			cumulative += c->hist[h][b];
			report_sample_start(buf, bucket, db, rows[i].stats->queue);
			if (b < JQ_HIST_BUCKETS - 1)
				appendStringInfo(buf, ",le=\"%g\"} " INT64_FORMAT "\n",
								 jq_hist_bounds_us[b] / 1000000.0, cumulative);
			else
				appendStringInfo(buf, ",le=\"+Inf\"} " INT64_FORMAT "\n", cumulative);
		}
		report_sample_start(buf, psprintf("%s_sum", name), db, rows[i].stats->queue);
		appendStringInfo(buf, "} %.6f\n", c->hist_sum[h]);
		report_sample_start(buf, psprintf("%s_count", name), db, rows[i].stats->queue);
		appendStringInfo(buf, "} " INT64_FORMAT "\n", cumulative);
	}
}

PG_FUNCTION_INFO_V1(jq_metrics);

/*
 * jq_metrics(): the statistics of the current database's queues in the
 * Prometheus text format, labelled by database and queue.  Counters and
 * histograms count from the server's start.
 */
Datum
jq_metrics(PG_FUNCTION_ARGS)
{
	ReportRow  *rows;
	int			n = report_collect(&rows) - 1;	/* without the row of all queues */
	const char *db = get_database_name(MyDatabaseId);
	StringInfoData buf;

	initStringInfo(&buf);
	report_gauges(&buf, rows, n, db);
	report_counters(&buf, rows, n, db);
	report_histogram(&buf, rows, n, db, JQ_HIST_PICKUP, "jq_job_pickup_seconds",
					 "Time from when a job was due to when an attempt of it started.");
	report_histogram(&buf, rows, n, db, JQ_HIST_RUN, "jq_job_run_seconds",
					 "Time an attempt ran, from its start to its outcome.");
	report_family(&buf, "jq_monitor_dropped_total", "counter",
				  "Figures of commits not counted: jq.monitor_max_queues was reached.");
	appendStringInfo(&buf, "jq_monitor_dropped_total " INT64_FORMAT "\n", jq_stats_dropped());
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}
