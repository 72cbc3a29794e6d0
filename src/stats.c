/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Statistics of queues kept as jobs move: how many jobs of each
 *	  database, owner and queue are in each state, and what happened to
 *	  their attempts (outcomes, pickup latency, run time) over the last
 *	  minute, five minutes and hour, and since the server started.
 *
 * A trigger on jq.job (stats_job_trigger) sees every row that enters,
 * leaves or changes state in the active table, and one on jq.job_history
 * (stats_history_trigger) every job that finishes.  They add what they see
 * to deltas kept in the backend, per subtransaction level; a subtransaction
 * that aborts drops its own, one that commits hands them to its parent, and
 * the commit of the top transaction adds them to shared memory (one lock
 * for the whole transaction).  So the counts of jobs in each state follow
 * exactly the jobs that committed, without a scan of jq.job and without
 * a write of their own; they are counted anew when a database's scheduler
 * starts (jq_stats_recount), since shared memory is lost at a restart.
 *
 * Outcomes and latencies are added to time slots of ten seconds (kept for
 * five minutes) and of a minute (kept for an hour) at the commit that
 * records them, and to totals for jq_metrics.  Latencies are kept as
 * histograms with fixed bounds, from which percentiles are estimated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_enum.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "internal_sql.h"
#include "monitor.h"

/* time slots: ten seconds for the 1m and 5m windows, a minute for the 1h one */
#define STATS_FINE_SECS		10
#define STATS_FINE_SLOTS	30
#define STATS_COARSE_SECS	60
#define STATS_COARSE_SLOTS	60

const int64 jq_hist_bounds_us[JQ_HIST_BUCKETS - 1] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 120000000,
	300000000, 600000000, 1800000000, INT64CONST(3600000000),
	INT64CONST(7200000000), INT64CONST(21600000000), INT64CONST(86400000000)
};

typedef struct StatsKey
{
	Oid			dboid;
	Oid			owner;
	char		queue[JQ_MONITOR_QUEUE_LEN];
} StatsKey;

/* one time slot: what happened in period "period" (seconds / slot length) */
typedef struct StatsSlot
{
	int64		period;
	int32		events[JQ_NUM_EVENTS];
	int32		hist[JQ_NUM_HISTS][JQ_HIST_BUCKETS];
	float4		hist_sum[JQ_NUM_HISTS];
} StatsSlot;

typedef struct StatsEntry
{
	StatsKey	key;
	int64		gauges[JQ_NUM_GAUGES];
	JqCounts	total;
	StatsSlot	fine[STATS_FINE_SLOTS];
	StatsSlot	coarse[STATS_COARSE_SLOTS];
} StatsEntry;

typedef struct StatsShared
{
	LWLock	   *lock;
	int64		dropped;		/* commits whose figures found no free entry */
} StatsShared;

static StatsShared *stats_shared = NULL;
static HTAB *stats_hash = NULL;

/* what this backend's transaction did so far, per owner, queue and level */
typedef struct DeltaKey
{
	Oid			owner;
	int			level;
	char		queue[JQ_MONITOR_QUEUE_LEN];
} DeltaKey;

typedef struct Delta
{
	DeltaKey	key;
	int64		gauges[JQ_NUM_GAUGES];
	JqCounts	counts;
} Delta;

static MemoryContext stats_delta_cxt = NULL;
static HTAB *stats_deltas = NULL;
static uint64 stats_wake_mask = 0;	/* jq_wait's condition variables to wake */
static bool stats_truncated = false;	/* the transaction emptied jq.job */

/* ------------------------------------------------------------------------
 * Shared memory
 * ------------------------------------------------------------------------
 */

Size
jq_stats_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(StatsShared)),
					hash_estimate_size(jq_monitor_max_queues, sizeof(StatsEntry)));
}

/* Called with AddinShmemInitLock held. */
void
jq_stats_shmem_init(void)
{
	HASHCTL		info;
	bool		found;

	stats_shared = ShmemInitStruct("job_queue stats", sizeof(StatsShared), &found);
	if (!found)
	{
		stats_shared->lock = &(GetNamedLWLockTranche("job_queue monitor"))[0].lock;
		stats_shared->dropped = 0;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(StatsKey);
	info.entrysize = sizeof(StatsEntry);
	stats_hash = ShmemInitHash("job_queue stats entries", jq_monitor_max_queues,
							   jq_monitor_max_queues, &info, HASH_ELEM | HASH_BLOBS);
}

/* ------------------------------------------------------------------------
 * Reading job rows
 * ------------------------------------------------------------------------
 */

/* the columns the triggers read, by relation */
typedef struct StatsColumns
{
	Oid			relid;
	int			id,
				owner,
				queue,
				kind,
				state,
				run_at,
				created_at,
				attempts,
				started_at,
				finished_at,
				errors,
				progress,
				progress_at;
	Oid			state_type;
	Oid			st_ready,
				st_running,
				st_waiting,
				st_succeeded,
				st_failed,
				st_cancelled;
} StatsColumns;

static Oid
stats_enum_label(Oid type, const char *label)
{
	HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(type),
									  CStringGetDatum(label));
	Oid			oid;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum %u has no label \"%s\"", type, label);
	oid = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return oid;
}

static int
stats_column(TupleDesc desc, const char *name, bool required)
{
	int			att = SPI_fnumber(desc, name);

	if (att <= 0 && required)
		elog(ERROR, "job_queue statistics: column \"%s\" not found", name);
	return att;
}

/* The column numbers of rel, looked up again when the relation differs. */
static void
stats_columns(StatsColumns *c, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (RelationGetRelid(rel) == c->relid)
		return;
	c->id = stats_column(desc, "id", true);
	c->owner = stats_column(desc, "owner", true);
	c->queue = stats_column(desc, "queue", true);
	c->kind = stats_column(desc, "kind", true);
	c->state = stats_column(desc, "state", true);
	c->run_at = stats_column(desc, "run_at", true);
	c->created_at = stats_column(desc, "created_at", true);
	c->attempts = stats_column(desc, "attempts", true);
	c->started_at = stats_column(desc, "started_at", true);
	c->finished_at = stats_column(desc, "finished_at", false);
	c->errors = stats_column(desc, "errors", true);
	c->progress = stats_column(desc, "progress", false);
	c->progress_at = stats_column(desc, "progress_at", false);
	c->state_type = TupleDescAttr(desc, c->state - 1)->atttypid;
	c->st_ready = stats_enum_label(c->state_type, "ready");
	c->st_running = stats_enum_label(c->state_type, "running");
	c->st_waiting = stats_enum_label(c->state_type, "waiting");
	c->st_succeeded = stats_enum_label(c->state_type, "succeeded");
	c->st_failed = stats_enum_label(c->state_type, "failed");
	c->st_cancelled = stats_enum_label(c->state_type, "cancelled");
	c->relid = RelationGetRelid(rel);
}

/* what the triggers read of a job row */
typedef struct StatsRow
{
	int64		id;
	Oid			owner;
	char		queue[JQ_MONITOR_QUEUE_LEN];
	bool		is_shell;
	Oid			state;
	TimestampTz run_at;
	TimestampTz created_at;
	int32		attempts;
	TimestampTz started_at;		/* 0 when null */
	TimestampTz finished_at;	/* 0 when null or absent */
	bool		timed_out;		/* its last error was a timeout */
} StatsRow;

/* Whether the last element of a job's errors says it was a timeout. */
static bool
stats_last_error_timed_out(Datum errors)
{
	Jsonb	   *jb = DatumGetJsonbP(errors);
	JsonbValue *last;
	JsonbValue *timeout;
	uint32		n;

	if (!JB_ROOT_IS_ARRAY(jb) || (n = JB_ROOT_COUNT(jb)) == 0)
		return false;
	last = getIthJsonbValueFromContainer(&jb->root, n - 1);
	if (last == NULL || last->type != jbvBinary)
		return false;
	timeout = getKeyJsonValueFromContainer(last->val.binary.data, "timeout", 7, NULL);
	return timeout != NULL && timeout->type == jbvBool && timeout->val.boolean;
}

static TimestampTz
stats_get_ts(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d;

	if (att <= 0)
		return 0;
	d = heap_getattr(tup, att, desc, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

static void
stats_read_row(StatsRow *r, const StatsColumns *c, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;
	text	   *t;
	int			len;

	r->id = DatumGetInt64(heap_getattr(tup, c->id, desc, &isnull));
	r->owner = DatumGetObjectId(heap_getattr(tup, c->owner, desc, &isnull));
	t = DatumGetTextPP(heap_getattr(tup, c->queue, desc, &isnull));
	len = Min(VARSIZE_ANY_EXHDR(t), JQ_MONITOR_QUEUE_LEN - 1);
	memset(r->queue, 0, sizeof(r->queue));
	memcpy(r->queue, VARDATA_ANY(t), len);
	t = DatumGetTextPP(heap_getattr(tup, c->kind, desc, &isnull));
	r->is_shell = VARSIZE_ANY_EXHDR(t) == 5 && memcmp(VARDATA_ANY(t), "shell", 5) == 0;
	r->state = DatumGetObjectId(heap_getattr(tup, c->state, desc, &isnull));
	r->run_at = stats_get_ts(tup, desc, c->run_at);
	r->created_at = stats_get_ts(tup, desc, c->created_at);
	r->attempts = DatumGetInt32(heap_getattr(tup, c->attempts, desc, &isnull));
	r->started_at = stats_get_ts(tup, desc, c->started_at);
	r->finished_at = stats_get_ts(tup, desc, c->finished_at);
	d = heap_getattr(tup, c->errors, desc, &isnull);
	r->timed_out = !isnull && stats_last_error_timed_out(d);
}

/* The gauge an active job counts in, or -1. */
static int
stats_gauge_of(const StatsColumns *c, const StatsRow *r)
{
	if (r->state == c->st_waiting)
		return JQ_GAUGE_WAITING;
	if (r->state == c->st_running)
		return JQ_GAUGE_RUNNING;
	if (r->state != c->st_ready)
		return -1;
	if (r->run_at <= r->created_at)
		return JQ_GAUGE_READY_NOW;
	return r->attempts > 0 ? JQ_GAUGE_DELAYED_RETRY : JQ_GAUGE_DELAYED_FIRST;
}

/* ------------------------------------------------------------------------
 * The transaction's deltas
 * ------------------------------------------------------------------------
 */

static Delta *
stats_delta(const StatsRow *r)
{
	DeltaKey	key;
	Delta	   *d;
	bool		found;

	if (stats_deltas == NULL)
	{
		HASHCTL		info;

		if (stats_delta_cxt == NULL)
			stats_delta_cxt = AllocSetContextCreate(TopMemoryContext,
													"job_queue statistics",
													ALLOCSET_SMALL_SIZES);
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(DeltaKey);
		info.entrysize = sizeof(Delta);
		info.hcxt = stats_delta_cxt;
		stats_deltas = hash_create("job_queue statistics deltas", 16, &info,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.owner = r->owner;
	key.level = GetCurrentTransactionNestLevel();
	memcpy(key.queue, r->queue, sizeof(key.queue));
	d = hash_search(stats_deltas, &key, HASH_ENTER, &found);
	if (!found)
		memset(((char *) d) + sizeof(DeltaKey), 0, sizeof(Delta) - sizeof(DeltaKey));
	return d;
}

static int
stats_bucket(int64 us)
{
	int			b = 0;

	while (b < JQ_HIST_BUCKETS - 1 && us > jq_hist_bounds_us[b])
		b++;
	return b;
}

static void
stats_sample(JqCounts *c, JqHist h, TimestampTz from, TimestampTz to)
{
	int64		us;

	if (from == 0 || to == 0)
		return;
	us = Max(to - from, 0);
	c->hist[h][stats_bucket(us)]++;
	c->hist_sum[h] += us / 1000000.0;
}

static void
stats_add_counts(JqCounts *to, const JqCounts *from)
{
	for (int i = 0; i < JQ_NUM_EVENTS; i++)
		to->events[i] += from->events[i];
	for (int h = 0; h < JQ_NUM_HISTS; h++)
	{
		for (int b = 0; b < JQ_HIST_BUCKETS; b++)
			to->hist[h][b] += from->hist[h][b];
		to->hist_sum[h] += from->hist_sum[h];
	}
}

static void
stats_add_to_slot(StatsSlot *slots, int nslots, int64 period, const JqCounts *c)
{
	StatsSlot  *s = &slots[period % nslots];

	if (s->period != period)
	{
		memset(s, 0, sizeof(StatsSlot));
		s->period = period;
	}
	for (int i = 0; i < JQ_NUM_EVENTS; i++)
		s->events[i] += (int32) c->events[i];
	for (int h = 0; h < JQ_NUM_HISTS; h++)
	{
		for (int b = 0; b < JQ_HIST_BUCKETS; b++)
			s->hist[h][b] += (int32) c->hist[h][b];
		s->hist_sum[h] += (float4) c->hist_sum[h];
	}
}

static void
stats_add_slot(JqCounts *to, const StatsSlot *s)
{
	for (int i = 0; i < JQ_NUM_EVENTS; i++)
		to->events[i] += s->events[i];
	for (int h = 0; h < JQ_NUM_HISTS; h++)
	{
		for (int b = 0; b < JQ_HIST_BUCKETS; b++)
			to->hist[h][b] += s->hist[h][b];
		to->hist_sum[h] += s->hist_sum[h];
	}
}

/* Seconds since the Unix epoch, for the time slots. */
static int64
stats_epoch_secs(TimestampTz t)
{
	return t / USECS_PER_SEC +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

static bool
stats_counts_empty(const JqCounts *c)
{
	for (int i = 0; i < JQ_NUM_EVENTS; i++)
		if (c->events[i] != 0)
			return false;
	for (int h = 0; h < JQ_NUM_HISTS; h++)
		for (int b = 0; b < JQ_HIST_BUCKETS; b++)
			if (c->hist[h][b] != 0)
				return false;
	return true;
}

/*
 * The shared entry of a key, made (zeroed) if there is room: a shared hash
 * table would take more than the memory it was sized for.  NULL when
 * jq.monitor_max_queues entries are taken.  Caller holds the lock
 * exclusively.
 */
static StatsEntry *
stats_entry(const StatsKey *key)
{
	StatsEntry *e = hash_search(stats_hash, key, HASH_FIND, NULL);

	if (e == NULL && hash_get_num_entries(stats_hash) < jq_monitor_max_queues &&
		(e = hash_search(stats_hash, key, HASH_ENTER_NULL, NULL)) != NULL)
		memset(((char *) e) + sizeof(StatsKey), 0, sizeof(StatsEntry) - sizeof(StatsKey));
	if (e == NULL)
		stats_shared->dropped++;
	return e;
}

/* Zero the counts of jobs of the current database.  Caller holds the lock. */
static void
stats_zero_gauges(void)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *e;

	hash_seq_init(&seq, stats_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dboid == MyDatabaseId)
			memset(e->gauges, 0, sizeof(e->gauges));
	}
}

/*
 * Add the transaction's deltas to shared memory.  Runs in a commit
 * callback: it must not fail, so an entry that cannot be had is counted
 * as dropped rather than raised.
 */
static void
stats_apply(void)
{
	HASH_SEQ_STATUS seq;
	Delta	   *d;
	int64		secs = stats_epoch_secs(GetCurrentTimestamp());

	LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
	if (stats_truncated)
		stats_zero_gauges();
	if (stats_deltas != NULL)
		hash_seq_init(&seq, stats_deltas);
	while (stats_deltas != NULL && (d = hash_seq_search(&seq)) != NULL)
	{
		StatsKey	key;
		StatsEntry *e;

		memset(&key, 0, sizeof(key));
		key.dboid = MyDatabaseId;
		key.owner = d->key.owner;
		memcpy(key.queue, d->key.queue, sizeof(key.queue));
		if ((e = stats_entry(&key)) == NULL)
			continue;
		for (int g = 0; g < JQ_NUM_GAUGES; g++)
			e->gauges[g] += d->gauges[g];
		if (stats_counts_empty(&d->counts))
			continue;
		stats_add_counts(&e->total, &d->counts);
		stats_add_to_slot(e->fine, STATS_FINE_SLOTS, secs / STATS_FINE_SECS, &d->counts);
		stats_add_to_slot(e->coarse, STATS_COARSE_SLOTS, secs / STATS_COARSE_SECS, &d->counts);
	}
	LWLockRelease(stats_shared->lock);
}

static void
stats_forget(void)
{
	stats_deltas = NULL;
	stats_wake_mask = 0;
	stats_truncated = false;
	if (stats_delta_cxt)
		MemoryContextReset(stats_delta_cxt);
}

static void
stats_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			if ((stats_deltas != NULL || stats_truncated) && stats_shared != NULL)
				stats_apply();
			if (stats_wake_mask != 0)
				jq_wait_wake(stats_wake_mask);
			stats_forget();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			stats_forget();
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborts drops its deltas and those of its
 * children; one that commits hands them to its parent.
 */
static void
stats_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level;
	HASH_SEQ_STATUS seq;
	Delta	   *d;
	Delta	  **moved;
	int			nmoved = 0;

	if (stats_deltas == NULL ||
		(event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB))
		return;

	level = GetCurrentTransactionNestLevel();
	moved = MemoryContextAlloc(stats_delta_cxt,
							   sizeof(Delta *) * (hash_get_num_entries(stats_deltas) + 1));
	hash_seq_init(&seq, stats_deltas);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		if (d->key.level >= level)
			moved[nmoved++] = d;
	}

	for (int i = 0; i < nmoved; i++)
	{
		d = moved[i];
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			DeltaKey	key = d->key;
			Delta	   *parent;
			bool		found;

			key.level = level - 1;
			parent = hash_search(stats_deltas, &key, HASH_ENTER, &found);
			if (!found)
				memset(((char *) parent) + sizeof(DeltaKey), 0,
					   sizeof(Delta) - sizeof(DeltaKey));
			for (int g = 0; g < JQ_NUM_GAUGES; g++)
				parent->gauges[g] += d->gauges[g];
			stats_add_counts(&parent->counts, &d->counts);
		}
		hash_search(stats_deltas, &d->key, HASH_REMOVE, NULL);
	}
	pfree(moved);
}

void
jq_stats_xact_init(void)
{
	RegisterXactCallback(stats_xact_callback, NULL);
	RegisterSubXactCallback(stats_subxact_callback, NULL);
}

/* ------------------------------------------------------------------------
 * Triggers
 * ------------------------------------------------------------------------
 */

static void
stats_check_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerEvent event;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "%s must be called as a trigger", name);
	event = ((TriggerData *) fcinfo->context)->tg_event;
	if (!TRIGGER_FIRED_FOR_ROW(event) && !TRIGGER_FIRED_BY_TRUNCATE(event))
		elog(ERROR, "%s must be called as a row or truncate trigger", name);
}

/* TRUNCATE jq.job: the counts of jobs start again from zero at commit. */
static void
stats_truncate(void)
{
	HASH_SEQ_STATUS seq;
	Delta	   *d;

	stats_truncated = true;
	if (stats_deltas == NULL)
		return;
	hash_seq_init(&seq, stats_deltas);
	while ((d = hash_seq_search(&seq)) != NULL)
		memset(d->gauges, 0, sizeof(d->gauges));
}

PG_FUNCTION_INFO_V1(jq_stats_job_trigger);

/*
 * AFTER INSERT, UPDATE OF state, run_at, attempts, and DELETE on jq.job:
 * moves the job between gauges; a claim adds a pickup latency, a failed
 * attempt that will be retried a retry and its run time.  AFTER TRUNCATE
 * (for each statement): every count starts again from zero.
 */
Datum
jq_stats_job_trigger(PG_FUNCTION_ARGS)
{
	static StatsColumns cols;
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	StatsRow	old_row,
				new_row;
	bool		has_old,
				has_new;
	Delta	   *d;
	int			g;

	stats_check_trigger(fcinfo, "jq_stats_job_trigger");
	if (stats_shared == NULL)
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		stats_truncate();
		return PointerGetDatum(NULL);
	}

	stats_columns(&cols, td->tg_relation);
	desc = RelationGetDescr(td->tg_relation);
	has_old = !TRIGGER_FIRED_BY_INSERT(td->tg_event);
	has_new = !TRIGGER_FIRED_BY_DELETE(td->tg_event);
	if (has_old)
		stats_read_row(&old_row, &cols, td->tg_trigtuple, desc);
	if (has_new)
		stats_read_row(&new_row, &cols,
					   has_old ? td->tg_newtuple : td->tg_trigtuple, desc);

	d = stats_delta(has_new ? &new_row : &old_row);
	if (has_old && (g = stats_gauge_of(&cols, &old_row)) >= 0)
		d->gauges[g]--;
	if (has_new && (g = stats_gauge_of(&cols, &new_row)) >= 0)
		d->gauges[g]++;

	if (has_old && has_new)
	{
		if (old_row.state == cols.st_ready && new_row.state == cols.st_running)
		{
			stats_sample(&d->counts, JQ_HIST_PICKUP, old_row.run_at,
						 new_row.started_at ? new_row.started_at : GetCurrentTimestamp());
			if (new_row.is_shell)
				jq_progress_forget_file(new_row.id);
		}
		else if (old_row.state == cols.st_running && new_row.state == cols.st_ready &&
				 new_row.attempts == old_row.attempts)
		{
			d->counts.events[JQ_EVENT_RETRIED]++;
			if (new_row.timed_out)
				d->counts.events[JQ_EVENT_TIMED_OUT]++;
			stats_sample(&d->counts, JQ_HIST_RUN, new_row.started_at, GetCurrentTimestamp());
		}
	}
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(jq_stats_history_trigger);

/*
 * BEFORE INSERT on jq.job_history: a job finished.  Counts its outcome and
 * run time, keeps the last progress it reported in the row, and has the
 * commit wake the sessions that wait for it.
 */
Datum
jq_stats_history_trigger(PG_FUNCTION_ARGS)
{
	static StatsColumns cols;
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	StatsRow	r;
	Delta	   *d;
	Datum		progress;
	TimestampTz progress_at;

	stats_check_trigger(fcinfo, "jq_stats_history_trigger");
	tup = td->tg_trigtuple;
	if (stats_shared == NULL || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return PointerGetDatum(tup);

	stats_columns(&cols, td->tg_relation);
	desc = RelationGetDescr(td->tg_relation);
	stats_read_row(&r, &cols, tup, desc);

	d = stats_delta(&r);
	if (r.state == cols.st_succeeded)
		d->counts.events[JQ_EVENT_SUCCEEDED]++;
	else if (r.state == cols.st_failed)
	{
		d->counts.events[JQ_EVENT_FAILED]++;
		if (r.timed_out)
			d->counts.events[JQ_EVENT_TIMED_OUT]++;
	}
	else if (r.state == cols.st_cancelled)
		d->counts.events[JQ_EVENT_CANCELLED]++;
	stats_sample(&d->counts, JQ_HIST_RUN, r.started_at, r.finished_at);

	stats_wake_mask |= UINT64CONST(1) << jq_wait_cv_index(r.id);

	if (cols.progress > 0 && cols.progress_at > 0 &&
		jq_progress_take(r.id, r.is_shell, &progress, &progress_at))
	{
		int			atts[2] = {cols.progress, cols.progress_at};
		Datum		values[2] = {progress, TimestampTzGetDatum(progress_at)};
		bool		nulls[2] = {false, false};

		tup = heap_modify_tuple_by_cols(tup, desc, 2, atts, values, nulls);
	}
	return PointerGetDatum(tup);
}

/* ------------------------------------------------------------------------
 * Reading and recounting
 * ------------------------------------------------------------------------
 */

static JqQueueStats *
stats_row_for(JqQueueStats *rows, int *nrows, const char *queue)
{
	for (int i = 0; i < *nrows; i++)
	{
		if (strcmp(rows[i].queue, queue) == 0)
			return &rows[i];
	}
	memset(&rows[*nrows], 0, sizeof(JqQueueStats));
	strlcpy(rows[*nrows].queue, queue, JQ_MONITOR_QUEUE_LEN);
	return &rows[(*nrows)++];
}

/*
 * The statistics of the current database's queues, of the jobs of owner
 * (all of them for InvalidOid), one row per queue with anything to show,
 * then a row for all of them (queue "").  Returns the number of rows.
 */
int
jq_stats_collect(Oid owner, JqQueueStats **result)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *e;
	JqQueueStats *rows;
	JqQueueStats *all;
	int			nrows = 0;
	int64		secs = stats_epoch_secs(GetCurrentTimestamp());
	int64		fine_now = secs / STATS_FINE_SECS;
	int64		coarse_now = secs / STATS_COARSE_SECS;

	if (stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job_queue statistics need job_queue in shared_preload_libraries"),
				 errhint("Add job_queue to shared_preload_libraries in postgresql.conf and restart the server.")));

	rows = palloc(sizeof(JqQueueStats) * (jq_monitor_max_queues + 1));
	LWLockAcquire(stats_shared->lock, LW_SHARED);
	hash_seq_init(&seq, stats_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		JqQueueStats *row;

		if (e->key.dboid != MyDatabaseId ||
			(OidIsValid(owner) && e->key.owner != owner))
			continue;
		row = stats_row_for(rows, &nrows, e->key.queue);
		for (int g = 0; g < JQ_NUM_GAUGES; g++)
			row->gauges[g] += e->gauges[g];
		stats_add_counts(&row->total, &e->total);
		for (int i = 0; i < STATS_FINE_SLOTS; i++)
		{
			int64		age = fine_now - e->fine[i].period;

			if (age < 0 || age >= STATS_FINE_SLOTS)
				continue;
			if (age < 60 / STATS_FINE_SECS)
				stats_add_slot(&row->windows[JQ_WINDOW_1M], &e->fine[i]);
			stats_add_slot(&row->windows[JQ_WINDOW_5M], &e->fine[i]);
		}
		for (int i = 0; i < STATS_COARSE_SLOTS; i++)
		{
			int64		age = coarse_now - e->coarse[i].period;

			if (age >= 0 && age < STATS_COARSE_SLOTS)
				stats_add_slot(&row->windows[JQ_WINDOW_1H], &e->coarse[i]);
		}
	}
	LWLockRelease(stats_shared->lock);

	/* queues with nothing active and nothing since the server started are left out */
	for (int i = 0; i < nrows; i++)
	{
		bool		empty = stats_counts_empty(&rows[i].total);

		for (int g = 0; g < JQ_NUM_GAUGES; g++)
			empty = empty && rows[i].gauges[g] == 0;
		if (empty)
			rows[i--] = rows[--nrows];
	}

	all = &rows[nrows];
	memset(all, 0, sizeof(JqQueueStats));
	for (int i = 0; i < nrows; i++)
	{
		for (int g = 0; g < JQ_NUM_GAUGES; g++)
			all->gauges[g] += rows[i].gauges[g];
		for (int w = 0; w < JQ_NUM_WINDOWS; w++)
			stats_add_counts(&all->windows[w], &rows[i].windows[w]);
		stats_add_counts(&all->total, &rows[i].total);
	}
	*result = rows;
	return nrows + 1;
}

/* Commits whose figures found no free entry, since the server started. */
int64
jq_stats_dropped(void)
{
	int64		dropped;

	if (stats_shared == NULL)
		return 0;
	LWLockAcquire(stats_shared->lock, LW_SHARED);
	dropped = stats_shared->dropped;
	LWLockRelease(stats_shared->lock);
	return dropped;
}

/* the active jobs by owner, queue and gauge, as stats_gauge_of counts them */
static const char *const stats_recount_sql =
"SELECT j.owner, j.queue, "
"	CASE WHEN j.state = 'waiting' THEN 0 WHEN j.state = 'running' THEN 1 "
"		 WHEN j.run_at <= j.created_at THEN 2 WHEN j.attempts = 0 THEN 3 ELSE 4 END, "
"	pg_catalog.count(*) "
"FROM jq.job j GROUP BY 1, 2, 3";

/* its columns */
enum
{
	Anum_recount_owner = 1,
	Anum_recount_queue,
	Anum_recount_gauge,
	Anum_recount_count
};

/*
 * Count the active jobs of the current database anew, with jq.job locked
 * against writers: every transaction that changed it before has added its
 * deltas by then (a transaction's locks are released after its commit
 * callbacks), and none can change it until this count is in.  Called by
 * the scheduler when it starts, outside any transaction; a failure (a
 * lock not had within lock_timeout) is logged and leaves the counts as
 * they were.
 */
void
jq_stats_recount(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (stats_shared == NULL)
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		StatsEntry *e;
		uint64		n;

		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (jq_execute("SET LOCAL lock_timeout = '10s'", 0, NULL, NULL, NULL) != SPI_OK_UTILITY ||
			jq_execute("LOCK TABLE jq.job IN SHARE MODE", 0, NULL, NULL, NULL) != SPI_OK_UTILITY)
			elog(ERROR, "could not lock jq.job");
		/* a snapshot taken with the lock held sees every change before it */
		PopActiveSnapshot();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (jq_execute(stats_recount_sql, 0, NULL, NULL, NULL) != SPI_OK_SELECT)
			elog(ERROR, "could not count the jobs of job_queue");
		n = SPI_processed;

		LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
		stats_zero_gauges();
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			StatsKey	key;
			bool		isnull;
			char	   *queue = SPI_getvalue(tup, desc, Anum_recount_queue);

			memset(&key, 0, sizeof(key));
			key.dboid = MyDatabaseId;
			key.owner = DatumGetObjectId(SPI_getbinval(tup, desc, Anum_recount_owner, &isnull));
			strlcpy(key.queue, queue, sizeof(key.queue));
			if ((e = stats_entry(&key)) == NULL)
				continue;
			e->gauges[DatumGetInt32(SPI_getbinval(tup, desc, Anum_recount_gauge, &isnull))] +=
				DatumGetInt64(SPI_getbinval(tup, desc, Anum_recount_count, &isnull));
		}
		LWLockRelease(stats_shared->lock);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("could not count the jobs of job_queue for its statistics: %s",
						edata->message),
				 errdetail("jq_stats counts jobs in each state from the counts of the last server start.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}
