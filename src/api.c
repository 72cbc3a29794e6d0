/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL-callable API of job_queue, dispatched: jq_api_call, and who
 *	  may call what (jq_is_admin, jq_is_worker, jq_may_run_shell).
 *
 * Users have no rights on the tables in schema jq.  Each function notes
 * who called it (GetUserId(), which is right even inside someone else's
 * SECURITY DEFINER function), switches to the extension owner, and does
 * the work through SPI with schema-qualified SQL.  Apart from the enqueue
 * functions (enqueue.c), the API functions go through jq_api_call, which
 * runs the jq._<name> SQL function of the same name with the caller and
 * its jq_admin membership prepended.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "api.h"
#include "compat.h"
#include "internal_sql.h"
#include "job_queue.h"

/* Whether a role may run programs as the server's operating-system user. */
bool
jq_may_run_shell(Oid role)
{
	return superuser_arg(role) || has_privs_of_role(role, ROLE_PG_EXECUTE_SERVER_PROGRAM);
}

PG_FUNCTION_INFO_V1(jq_may_run_shell_sql);

/* jq._may_run_shell(role): jq_may_run_shell for the internal functions. */
Datum
jq_may_run_shell_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(jq_may_run_shell(PG_GETARG_OID(0)));
}

/* ---------------------------------------------------------------------
 * jq_api_call: the other API functions
 * --------------------------------------------------------------------- */

/* the one column of a call that returns no set: its result */
#define Anum_call_result 1

typedef struct ApiCall
{
	Oid			fn_oid;			/* hash key */
	SPIPlanPtr	plan;
	int			nargs;			/* the caller's arguments */
	bool		retset;
	bool		for_workers;	/* jq_worker members pass as jq_admin ones */
	int16		typlen;
	bool		typbyval;
} ApiCall;

/*
 * The functions external workers call to take and finish jobs: members of
 * jq_worker may call them for every role's jobs, as jq_admin members may.
 */
static const char *const api_worker_functions[] = {
	"jq_dequeue", "jq_complete", "jq_complete_many", "jq_fail", "jq_heartbeat",
	"jq_release"
};

/*
 * The prepared "SELECT * FROM jq._<name>($1, ..., $n+2)" of the function
 * called, kept for the life of the backend in a table by function OID.
 */
static ApiCall *
api_call_get(Oid fn_oid)
{
	static HTAB *calls = NULL;
	ApiCall    *call;
	bool		found;
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid		   *types;
	StringInfoData sql;
	SPIPlanPtr	plan;
	int			nargs;
	bool		retset;
	bool		for_workers;
	Oid			rettype;

	if (calls == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ApiCall);
		calls = hash_create("job_queue API calls", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	call = hash_search(calls, &fn_oid, HASH_FIND, NULL);
	if (call != NULL)
		return call;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);

	nargs = proc->pronargs;
	retset = proc->proretset;
	for_workers = false;
	for (size_t i = 0; i < lengthof(api_worker_functions); i++)
		for_workers |= strcmp(NameStr(proc->proname), api_worker_functions[i]) == 0;
	rettype = proc->prorettype;
	types = palloc(sizeof(Oid) * (nargs + 2));
	types[0] = OIDOID;
	types[1] = BOOLOID;
	memcpy(types + 2, proc->proargtypes.values, sizeof(Oid) * nargs);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM jq.%s(",
					 quote_identifier(psprintf("_%s", NameStr(proc->proname))));
	for (int i = 0; i < nargs + 2; i++)
		appendStringInfo(&sql, "%s$%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&sql, ')');
	ReleaseSysCache(tup);

	plan = jq_prepare(sql.data, nargs + 2, types);

	/* entered only once everything that can fail has succeeded */
	call = hash_search(calls, &fn_oid, HASH_ENTER, &found);
	call->plan = plan;
	call->nargs = nargs;
	call->retset = retset;
	call->for_workers = for_workers;
	get_typlenbyval(rettype, &call->typlen, &call->typbyval);
	return call;
}

/* Whether a role has the privileges of the named role of the extension. */
static bool
api_has_role(Oid role, const char *name)
{
	Oid			granted = get_role_oid(name, true);

	return OidIsValid(granted) && has_privs_of_role(role, granted);
}

/* Whether a role is a member of jq_admin (superusers are). */
bool
jq_is_admin(Oid role)
{
	return superuser_arg(role) || api_has_role(role, JQ_ADMIN_ROLE);
}

/*
 * Whether a role may work on every role's jobs as an external worker:
 * members of jq_worker, and of jq_admin.
 */
bool
jq_is_worker(Oid role)
{
	return jq_is_admin(role) || api_has_role(role, JQ_WORKER_ROLE);
}

PG_FUNCTION_INFO_V1(jq_api_call);

Datum
jq_api_call(PG_FUNCTION_ARGS)
{
	ApiCall    *call;
	Oid			caller = GetUserId();
	Datum	   *values;
	char	   *nulls;
	JqUserContext ctx;
	Datum		result = (Datum) 0;
	bool		isnull = true;
	int			ret;

	SPI_connect();
	jq_as_owner(&ctx);
	call = api_call_get(fcinfo->flinfo->fn_oid);

	values = palloc(sizeof(Datum) * (call->nargs + 2));
	nulls = palloc(call->nargs + 2);
	values[0] = ObjectIdGetDatum(caller);
	values[1] = BoolGetDatum(call->for_workers ? jq_is_worker(caller) : jq_is_admin(caller));
	nulls[0] = nulls[1] = ' ';
	for (int i = 0; i < call->nargs; i++)
	{
		values[i + 2] = PG_GETARG_DATUM(i);
		nulls[i + 2] = PG_ARGISNULL(i) ? 'n' : ' ';
	}

	ret = jq_execute_for_caller(call->plan, values, nulls, NULL);
	jq_as_caller(&ctx);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));

	if (call->retset)
	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

		InitMaterializedSRF(fcinfo, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum	   *row = palloc(sizeof(Datum) * SPI_tuptable->tupdesc->natts);
			bool	   *rownulls = palloc(sizeof(bool) * SPI_tuptable->tupdesc->natts);

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, rownulls);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
		}
	}
	else if (SPI_processed == 1)
	{
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_call_result,
							   &isnull);
		if (!isnull)
			result = SPI_datumTransfer(result, call->typbyval, call->typlen);
	}
	SPI_finish();

	if (call->retset)
		return (Datum) 0;
	if (isnull)
		PG_RETURN_NULL();
	return result;
}
