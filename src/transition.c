/*-------------------------------------------------------------------------
 *
 * transition.c
 *	  The job state machine: which changes of state jq.job allows, and who
 *	  makes each.
 *
 * jq.job holds the active jobs, ready, running or waiting; a job leaves it
 * when it finishes.  Each change of state has one owner:
 *
 *	 (enqueued)	 -> ready, waiting	 jq_enqueue and its siblings (api.c,
 *									 jq._insert_job); jq_retry puts a failed
 *									 or cancelled job back the same way
 *	 ready		 -> running			 jq._claim, for executors and workers
 *	 running	 -> ready			 jq._finish: a failed attempt with
 *									 attempts left, or one given back
 *	 waiting	 -> ready			 jq._release_dependants: its last
 *									 dependency succeeded
 *	 running	 -> succeeded, failed, cancelled
 *	 ready, waiting -> cancelled	 jq._finish, which moves the job to
 *									 jq.job_history
 *
 * After a crash of the server, claim_trace.c also puts back, ready ->
 * running, the claims of executors that the crash lost, with the attempts
 * their files recorded.
 *
 * The changes within jq.job are listed below, once; the trigger
 * job_transition refuses every other change of a job's state, so that no
 * code path can move a job where the state machine does not go.  The
 * regression test transitions tries every pair of states.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_enum.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/syscache.h"

typedef struct JqTransition
{
	const char *from;
	const char *to;
} JqTransition;

static const JqTransition transitions[] = {
	{"ready", "running"},		/* jq._claim */
	{"running", "ready"},		/* jq._finish */
	{"waiting", "ready"},		/* jq._release_dependants */
};

/*
 * The table as the OIDs of the enum's labels, and the columns of jq.job
 * the trigger reads, looked up once per backend for the table it fires on
 * (the extension may be created again, with new OIDs).
 */
static Oid	transition_relid = InvalidOid;
static int	transition_id_attnum;
static int	transition_state_attnum;
static Oid	transition_oids[lengthof(transitions)][2];

static Oid
transition_label_oid(Oid enumtype, const char *label)
{
	Oid			oid = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
									  ObjectIdGetDatum(enumtype), CStringGetDatum(label));

	if (!OidIsValid(oid))
		elog(ERROR, "job state \"%s\" does not exist", label);
	return oid;
}

static void
transition_lookup(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			state = SPI_fnumber(desc, "state");
	int			id = SPI_fnumber(desc, "id");
	Oid			enumtype;

	if (state <= 0 || id <= 0)
		elog(ERROR, "table \"%s\" is not a table of jobs", RelationGetRelationName(rel));
	enumtype = TupleDescAttr(desc, state - 1)->atttypid;
	for (size_t i = 0; i < lengthof(transitions); i++)
	{
		transition_oids[i][0] = transition_label_oid(enumtype, transitions[i].from);
		transition_oids[i][1] = transition_label_oid(enumtype, transitions[i].to);
	}
	transition_state_attnum = state;
	transition_id_attnum = id;
	transition_relid = RelationGetRelid(rel);
}

/* The label of the state in column attnum of tuple. */
static const char *
transition_state(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		state = heap_getattr(tuple, attnum, desc, &isnull);

	if (isnull)
		return "null";
	return DatumGetCString(DirectFunctionCall1(enum_out, state));
}

PG_FUNCTION_INFO_V1(jq_job_transition);

/*
 * Trigger BEFORE UPDATE OF state ON jq.job, for rows whose state changes:
 * refuse a change the state machine does not have.
 */
Datum
jq_job_transition(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	Oid			from;
	Oid			to;
	bool		isnull;
	Datum		id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "jq_job_transition must be a row trigger on update");

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	if (RelationGetRelid(rel) != transition_relid)
		transition_lookup(rel);
	from = DatumGetObjectId(heap_getattr(trigdata->tg_trigtuple, transition_state_attnum,
										 desc, &isnull));
	to = DatumGetObjectId(heap_getattr(trigdata->tg_newtuple, transition_state_attnum,
									   desc, &isnull));
	for (size_t i = 0; i < lengthof(transitions); i++)
		if (transition_oids[i][0] == from && transition_oids[i][1] == to)
			return PointerGetDatum(trigdata->tg_newtuple);

	id = heap_getattr(trigdata->tg_trigtuple, transition_id_attnum, desc, &isnull);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job %lld cannot go from %s to %s",
					isnull ? 0 : (long long) DatumGetInt64(id),
					transition_state(trigdata->tg_trigtuple, desc, transition_state_attnum),
					transition_state(trigdata->tg_newtuple, desc, transition_state_attnum)),
			 errhint("A job changes state only through job_queue's functions.")));
	return (Datum) 0;			/* not reached */
}
