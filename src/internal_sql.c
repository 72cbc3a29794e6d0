/*-------------------------------------------------------------------------
 *
 * internal_sql.c
 *	  The one way job_queue runs SQL of its own.
 *
 * Internal SQL runs with rights users do not have (the extension owner's,
 * or a background worker's superuser), so nothing in it may be chosen by a
 * user: every statement is written with schema-qualified names, and it is
 * parsed, planned and executed with search_path pinned to
 * JQ_PINNED_SEARCH_PATH, where no role but a superuser can create an
 * operator, function or type.  pg_temp comes last so that a temporary
 * object never stands in for a catalog one.
 *
 * API functions called by users switch to the extension owner and pin the
 * path with jq_as_owner, at a GUC nest level of their own that jq_as_caller
 * (or the end of the (sub)transaction) pops.  Background workers pin it for
 * their whole session (jq_worker_settings).  Every statement goes through
 * jq_prepare and the jq_execute functions below, which refuse to run when
 * the path is not the pinned one: the rule cannot be forgotten by a caller.
 * Plans are prepared once per process; PostgreSQL replans a cached plan
 * when the search_path differs from the one it was made under, which the
 * check also rules out.  The regression test internal_sql scans the
 * sources so that no other file calls SPI to run SQL, but job_run.c, which
 * runs the jobs themselves as their owners.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compat.h"
#include "internal_sql.h"

/* The owner of schema jq, who owns every internal object. */
static Oid
isql_extension_owner(void)
{
	Oid			nsp = get_namespace_oid("jq", false);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Refuse to run internal SQL under any search_path but the pinned one. */
static void
isql_check_pinned(const char *sql)
{
	if (namespace_search_path == NULL ||
		strcmp(namespace_search_path, JQ_PINNED_SEARCH_PATH) != 0)
		elog(ERROR, "job_queue internal SQL run with search_path \"%s\": %s",
			 namespace_search_path ? namespace_search_path : "", sql);
}

/* Pin search_path at the current GUC nest level, as the source says. */
void
jq_pin_search_path(int source, int action)
{
	(void) set_config_option("search_path", JQ_PINNED_SEARCH_PATH, PGC_USERSET, (GucSource) source,
							 (GucAction) action, true, 0, false);
}

void
jq_as_owner(JqUserContext *ctx)
{
	Oid			owner = isql_extension_owner();

	GetUserIdAndSecContext(&ctx->saved_userid, &ctx->saved_sec_context);
	SetUserIdAndSecContext(owner,
						   ctx->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ctx->guc_nestlevel = NewGUCNestLevel();
	jq_pin_search_path(PGC_S_SESSION, GUC_ACTION_SAVE);
}

void
jq_as_caller(JqUserContext *ctx)
{
	AtEOXact_GUC(true, ctx->guc_nestlevel);
	SetUserIdAndSecContext(ctx->saved_userid, ctx->saved_sec_context);
}

/*
 * Prepare internal SQL once per process.  The plan is generic: the
 * statements are short and run often, so planning them for each call's
 * parameters would cost more than it could gain.
 */
SPIPlanPtr
jq_prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;

	isql_check_pinned(sql);
	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* SPI_execute_plan of a plan made by jq_prepare. */
int
jq_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, long count)
{
	isql_check_pinned("prepared statement");
	return SPI_execute_plan(plan, values, nulls, false, count);
}

/*
 * The same, read-only, with the latest snapshot rather than the
 * transaction's: for what must be read as committed now.
 */
int
jq_execute_plan_latest(SPIPlanPtr plan, Datum *values, const char *nulls, long count)
{
	isql_check_pinned("prepared statement");
	return SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(), InvalidSnapshot,
								true, false, count);
}

/* A statement run once, not kept. */
int
jq_execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	isql_check_pinned(sql);
	return SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
}

/*
 * The ids of the jobs a bulk insert returns: the first column of its rows,
 * gathered as they come, rather than copied into SPI's tuple table first
 * (PostgreSQL 14 and later).
 */
#define Anum_returned_id 1

typedef struct IdReceiver
{
	DestReceiver pub;
	JqIds	   *ids;
} IdReceiver;

static void
isql_add_id(JqIds *ids, Datum id)
{
	if (ids->n >= ids->max)
		elog(ERROR, "more jobs were inserted than enqueued");
	ids->ids[ids->n++] = DatumGetInt64(id);
}

#ifdef JQ_HAVE_SPI_EXECUTE_EXTENDED
static bool
isql_id_receive(TupleTableSlot *slot, DestReceiver *self)
{
	bool		isnull;

	isql_add_id(((IdReceiver *) self)->ids, slot_getattr(slot, Anum_returned_id, &isnull));
	return true;
}

static void
isql_id_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
isql_id_done(DestReceiver *self)
{
}
#endif

/* Run a plan, sending the first column of the rows it returns to ids. */
static int
isql_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, JqIds *ids)
{
#ifdef JQ_HAVE_SPI_EXECUTE_EXTENDED
	if (ids)
	{
		SPIExecuteOptions options = {0};
		IdReceiver	receiver = {{0}};
		int			nargs = SPI_getargcount(plan);
		ParamListInfo params = makeParamList(nargs);

		for (int i = 0; i < nargs; i++)
		{
			ParamExternData *p = &params->params[i];

			p->value = values[i];
			p->isnull = nulls && nulls[i] == 'n';
			p->pflags = PARAM_FLAG_CONST;
			p->ptype = SPI_getargtypeid(plan, i);
		}
		receiver.pub.receiveSlot = isql_id_receive;
		receiver.pub.rStartup = isql_id_startup;
		receiver.pub.rShutdown = isql_id_done;
		receiver.pub.rDestroy = isql_id_done;
		receiver.pub.mydest = DestNone;
		receiver.ids = ids;
		options.params = params;
		options.dest = &receiver.pub;
		return SPI_execute_plan_extended(plan, &options);
	}
#endif
	{
		int			ret = SPI_execute_plan(plan, values, nulls, false, 0);

		for (uint64 i = 0; ids && i < SPI_processed; i++)
		{
			bool		isnull;

			isql_add_id(ids, SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										   Anum_returned_id, &isnull));
		}
		return ret;
	}
}

/*
 * Execute an internal statement for a user's call; with ids, gather the ids
 * it returns there.  Its errors reach the caller without the context lines
 * of the internal functions, which say nothing to users.
 */
int
jq_execute_for_caller(SPIPlanPtr plan, Datum *values, const char *nulls, JqIds *ids)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			ret = 0;

	isql_check_pinned("prepared statement");
	PG_TRY();
	{
		ret = isql_execute_plan(plan, values, nulls, ids);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->context = NULL;
		edata->internalquery = NULL;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return ret;
}
