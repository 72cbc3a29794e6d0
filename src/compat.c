/*-------------------------------------------------------------------------
 *
 * compat.c
 *	  What differs between PostgreSQL versions, for job_queue (see
 *	  compat.h), and what older versions lack.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/tuplestore.h"

#include "compat.h"

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type compat_prev_shmem_request_hook = NULL;
static void (*compat_shmem_request) (void) = NULL;

static void
compat_shmem_request_hook(void)
{
	if (compat_prev_shmem_request_hook)
		compat_prev_shmem_request_hook();
	compat_shmem_request();
}
#endif

/*
 * Have request() ask for shared memory and locks: from shmem_request_hook
 * since PostgreSQL 15, which wants it there, at once before (_PG_init).
 */
void
jq_on_shmem_request(void (*request) (void))
{
#if PG_VERSION_NUM >= 150000
	compat_shmem_request = request;
	compat_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = compat_shmem_request_hook;
#else
	request();
#endif
}

#if PG_VERSION_NUM < 150001
/* A set-returning function's tuplestore, built by hand. */
void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	MemoryContextSwitchTo(old);
}
#endif
