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

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "job_queue.h"

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
	TupleDesc	desc;
	int			attnum;
	const char *from;
	const char *to;
	bool		isnull;
	Datum		id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "jq_job_transition must be a row trigger on update");

	desc = RelationGetDescr(trigdata->tg_relation);
	attnum = SPI_fnumber(desc, "state");
	if (attnum <= 0)
		elog(ERROR, "table \"%s\" has no column state",
			 RelationGetRelationName(trigdata->tg_relation));
	from = transition_state(trigdata->tg_trigtuple, desc, attnum);
	to = transition_state(trigdata->tg_newtuple, desc, attnum);

	for (size_t i = 0; i < lengthof(transitions); i++)
		if (strcmp(transitions[i].from, from) == 0 && strcmp(transitions[i].to, to) == 0)
			return PointerGetDatum(trigdata->tg_newtuple);

	id = heap_getattr(trigdata->tg_trigtuple, SPI_fnumber(desc, "id"), desc, &isnull);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job %lld cannot go from %s to %s",
					isnull ? 0 : (long long) DatumGetInt64(id), from, to),
			 errhint("A job changes state only through job_queue's functions.")));
	return (Datum) 0;			/* not reached */
}
