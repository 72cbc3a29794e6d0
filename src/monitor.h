/*-------------------------------------------------------------------------
 *
 * monitor.h
 *	  Declarations shared by the monitoring files of job_queue: statistics
 *	  of queues (stats.c, stats_report.c), progress of running jobs
 *	  (progress.c) and waiting for jobs to finish (wait.c).
 *
 * All of it lives in shared memory that monitor.c requests, and none of it
 * writes WAL.  Figures that describe jobs moving (counts of jobs in each
 * state, outcomes, latencies) are gathered by triggers on jq.job and
 * jq.job_history while a transaction runs and applied to shared memory
 * when it commits (stats.c); those of an aborted transaction or
 * subtransaction are dropped.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_MONITOR_H
#define JQ_MONITOR_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"

#define JQ_MONITOR_QUEUE_LEN	64	/* queue names have at most 63 bytes */

/* settings (monitor.c) */
extern int	jq_monitor_max_queues;
extern int	jq_monitor_max_progress;

/* counts of active jobs kept per database, owner and queue */
typedef enum JqGauge
{
	JQ_GAUGE_WAITING,			/* state waiting */
	JQ_GAUGE_RUNNING,			/* state running */
	JQ_GAUGE_READY_NOW,			/* state ready, due when enqueued */
	JQ_GAUGE_DELAYED_FIRST,		/* state ready, delayed (run_at > created_at), no attempt yet */
	JQ_GAUGE_DELAYED_RETRY,		/* state ready, delayed, attempted before */
	JQ_NUM_GAUGES
} JqGauge;

/* what happens to an attempt */
typedef enum JqEvent
{
	JQ_EVENT_SUCCEEDED,
	JQ_EVENT_FAILED,
	JQ_EVENT_CANCELLED,
	JQ_EVENT_RETRIED,
	JQ_EVENT_TIMED_OUT,			/* also counted as retried or failed */
	JQ_NUM_EVENTS
} JqEvent;

/* latency histograms: upper bounds in microseconds, the last one +Inf */
#define JQ_HIST_BUCKETS 24
extern const int64 jq_hist_bounds_us[JQ_HIST_BUCKETS - 1];

typedef enum JqHist
{
	JQ_HIST_PICKUP,				/* claimed - due */
	JQ_HIST_RUN,				/* finished - started */
	JQ_NUM_HISTS
} JqHist;

/* what one window slot, or a sum of them, holds */
typedef struct JqCounts
{
	int64		events[JQ_NUM_EVENTS];
	int64		hist[JQ_NUM_HISTS][JQ_HIST_BUCKETS];
	double		hist_sum[JQ_NUM_HISTS];	/* seconds */
} JqCounts;

/* the windows jq_stats reports */
typedef enum JqWindow
{
	JQ_WINDOW_1M,
	JQ_WINDOW_5M,
	JQ_WINDOW_1H,
	JQ_NUM_WINDOWS
} JqWindow;

/* one row of statistics: a queue, or all of them (queue[0] == '\0') */
typedef struct JqQueueStats
{
	char		queue[JQ_MONITOR_QUEUE_LEN];
	int64		gauges[JQ_NUM_GAUGES];
	JqCounts	windows[JQ_NUM_WINDOWS];
	JqCounts	total;			/* since the server started */
} JqQueueStats;

/* monitor.c */
extern void jq_monitor_init(void);
extern void jq_monitor_shmem_request(void);
extern void jq_monitor_shmem_startup(void);

/* stats.c */
extern Size jq_stats_shmem_size(void);
extern void jq_stats_shmem_init(void);
extern void jq_stats_xact_init(void);
extern int	jq_stats_collect(Oid owner, JqQueueStats **rows);
extern void jq_stats_recount(void);

/* stats_report.c */
extern double jq_counts_quantile(const JqCounts *c, JqHist h, double q);

/* progress.c */
extern Size jq_progress_shmem_size(void);
extern void jq_progress_shmem_init(void);
extern bool jq_progress_take(int64 job_id, bool is_shell, Datum *progress, TimestampTz *at);
extern void jq_progress_forget_file(int64 job_id);

/* wait.c */
extern Size jq_wait_shmem_size(void);
extern void jq_wait_shmem_init(void);
extern void jq_wait_wake(uint64 cv_mask);
extern int	jq_wait_cv_index(int64 job_id);

#endif							/* JQ_MONITOR_H */
