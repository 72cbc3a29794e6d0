/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  What job_queue needs that differs between PostgreSQL 13 and 18.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_COMPAT_H
#define JQ_COMPAT_H

/* periodic timeouts (enable_timeout_every) exist since PostgreSQL 15 */
#if PG_VERSION_NUM >= 150000
#define JQ_HAVE_PERIODIC_TIMEOUT 1
#endif

/* InitMaterializedSRF came with PostgreSQL 15.1; compat.c has it before */
#if PG_VERSION_NUM < 150001
#include "fmgr.h"
extern void InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags);
#endif

#endif							/* JQ_COMPAT_H */
