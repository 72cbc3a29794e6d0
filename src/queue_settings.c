/*-------------------------------------------------------------------------
 *
 * queue_settings.c
 *	  Each backend's copy of the queue settings that enqueueing applies.
 *
 * jq_enqueue reads a job's queue's row in jq.queue (its defaults, whether
 * it is limited, its max_ready) from here rather than from the table, so
 * that enqueueing a job costs a one-row INSERT.  Queues without a row are
 * remembered too: most queues have none.  Rows are read with the latest
 * snapshot, whatever the transaction's isolation level.
 *
 * The copy is dropped whenever the settings change: a statement trigger on
 * jq.queue (jq._queue_changed) invalidates the table's relcache entry,
 * which every backend hears of before its next enqueue.  A job enqueued
 * while its queue's settings change may still get the old ones, as it would
 * with a snapshot taken before the change; jobs flagged limited or not
 * against their queue's new state are set right by jq._claim_limited.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "internal_sql.h"
#include "queue_settings.h"

/* more queue names than this and the copy starts over */
#define QS_MAX_ENTRIES 1024

/* columns of qs_read's statement */
enum
{
	Anum_qs_default_priority = 1,
	Anum_qs_default_max_attempts,
	Anum_qs_default_timeout,
	Anum_qs_limited,
	Anum_qs_max_ready
};

typedef struct QueueSettingsEntry
{
	char		name[NAMEDATALEN];	/* hash key; queue names are shorter */
	JqQueueSettings settings;
} QueueSettingsEntry;

static HTAB *qs_hash = NULL;
static bool qs_valid = false;
static Oid	qs_relid = InvalidOid;	/* jq.queue, when qs_valid */

static void
qs_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == qs_relid)
		qs_valid = false;
}

/* Forget every queue, and look up jq.queue again. */
static void
qs_reset(void)
{
	static bool callback_registered = false;
	HASHCTL		ctl;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(qs_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (qs_hash)
		hash_destroy(qs_hash);
	qs_hash = NULL;
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(QueueSettingsEntry);
	ctl.hcxt = CacheMemoryContext;
	qs_hash = hash_create("job_queue queue settings", 64, &ctl,
						  HASH_ELEM | JQ_HASH_STRINGS | HASH_CONTEXT);
	qs_relid = get_relname_relid("queue", get_namespace_oid("jq", false));
	qs_valid = true;
}

/* Read a queue's row into settings: all zero when it has none. */
static void
qs_read(const char *name, JqQueueSettings *settings)
{
	static SPIPlanPtr plan = NULL;
	Datum		value = CStringGetTextDatum(name);
	TupleDesc	desc;
	HeapTuple	tup;
	Datum		d;
	bool		isnull;

	if (plan == NULL)
	{
		Oid			type = TEXTOID;

		plan = jq_prepare("SELECT q.default_priority, q.default_max_attempts,"
						  " q.default_timeout, q.limited, q.max_ready"
						  " FROM jq.queue q WHERE q.name = $1", 1, &type);
	}
	/*
	 * The latest snapshot, not the transaction's: the copy outlives the
	 * transaction, and must hold what the last invalidation announced.
	 */
	if (jq_execute_plan_latest(plan, &value, NULL, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the settings of queue \"%s\"", name);

	memset(settings, 0, sizeof(*settings));
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, Anum_qs_default_priority, &isnull);
	settings->has_priority = !isnull;
	settings->default_priority = isnull ? 0 : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, Anum_qs_default_max_attempts, &isnull);
	settings->has_max_attempts = !isnull;
	settings->default_max_attempts = isnull ? 0 : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, Anum_qs_default_timeout, &isnull);
	settings->has_timeout = !isnull;
	if (!isnull)
		settings->default_timeout = *DatumGetIntervalP(d);
	settings->limited = DatumGetBool(SPI_getbinval(tup, desc, Anum_qs_limited, &isnull));
	d = SPI_getbinval(tup, desc, Anum_qs_max_ready, &isnull);
	settings->max_ready = isnull ? 0 : DatumGetInt32(d);
}

/*
 * The settings of the named queue.  Runs SQL on a miss: the caller is
 * connected to SPI, as the extension owner.
 */
const JqQueueSettings *
jq_queue_settings(const char *name)
{
	QueueSettingsEntry *entry;
	bool		found;

	AcceptInvalidationMessages();
	if (!qs_valid || hash_get_num_entries(qs_hash) >= QS_MAX_ENTRIES)
		qs_reset();

	entry = hash_search(qs_hash, name, HASH_FIND, NULL);
	if (entry == NULL)
	{
		JqQueueSettings settings;

		qs_read(name, &settings);
		/* an invalidation during the read is acted on at the next lookup */
		entry = hash_search(qs_hash, name, HASH_ENTER, &found);
		entry->settings = settings;
	}
	return &entry->settings;
}

PG_FUNCTION_INFO_V1(jq_queue_changed);

/*
 * jq._queue_changed(): the statement trigger on jq.queue that tells every
 * backend to drop its copy of the settings, once the change commits.
 */
Datum
jq_queue_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("jq._queue_changed must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
