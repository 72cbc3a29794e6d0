/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  What job_queue needs that differs between PostgreSQL 13 and 18.
 *
 * Every difference between the versions job_queue builds for is dealt
 * with here and in compat.c, as a macro or a small function, so that no
 * other file tests PG_VERSION_NUM.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_COMPAT_H
#define JQ_COMPAT_H

#include "fmgr.h"
#include "storage/latch.h"
#include "utils/hsearch.h"

/* periodic timeouts (enable_timeout_every) exist since PostgreSQL 15 */
#if PG_VERSION_NUM >= 150000
#define JQ_HAVE_PERIODIC_TIMEOUT 1
#endif

/* InitMaterializedSRF came with PostgreSQL 15.1; compat.c has it before */
#if PG_VERSION_NUM < 150001
extern void InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags);
#endif

/* string keys are the default of hash_create before PostgreSQL 14, which names them */
#if PG_VERSION_NUM >= 140000
#define JQ_HASH_STRINGS HASH_STRINGS
#else
#define JQ_HASH_STRINGS 0
#endif

/* a prefix of settings no other module may use; only warned about before 15 */
#if PG_VERSION_NUM >= 150000
#define jq_reserve_guc_prefix(prefix) MarkGUCPrefixReserved(prefix)
#else
#define jq_reserve_guc_prefix(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* whether a role owns a database */
#if PG_VERSION_NUM >= 160000
#define jq_database_ownercheck(dboid, roleid) \
	object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#else
#define jq_database_ownercheck(dboid, roleid) pg_database_ownercheck((dboid), (roleid))
#endif

/* a wait event set in the current memory context (resource owner, from 17) */
#if PG_VERSION_NUM >= 170000
#define jq_create_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define jq_create_wait_event_set(nevents) CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/*
 * The readOnlyTree parameter of ProcessUtility hooks (PostgreSQL 14 and
 * later), to put in their parameter and argument lists.
 */
#if PG_VERSION_NUM >= 140000
#define JQ_READ_ONLY_TREE_PARAM bool readOnlyTree,
#define JQ_READ_ONLY_TREE_ARG readOnlyTree,
#else
#define JQ_READ_ONLY_TREE_PARAM
#define JQ_READ_ONLY_TREE_ARG
#endif

/* SPI_execute_plan_extended, which can send rows to a receiver, since PostgreSQL 14 */
#if PG_VERSION_NUM >= 140000
#define JQ_HAVE_SPI_EXECUTE_EXTENDED 1
#endif

extern void jq_on_shmem_request(void (*request) (void));

#endif							/* JQ_COMPAT_H */
