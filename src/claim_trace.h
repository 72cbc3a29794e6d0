/*-------------------------------------------------------------------------
 *
 * claim_trace.h
 *	  Claims written where a crash of the server cannot lose them
 *	  (claim_trace.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_CLAIM_TRACE_H
#define JQ_CLAIM_TRACE_H

#include "job_run.h"

extern void jq_claim_trace_open(int slotno);
extern void jq_claim_trace_write(const JqJob *jobs, int n);
extern void jq_claim_trace_update(const JqJob *jobs, int n);
extern void jq_claim_trace_clear(int slotno);
extern void jq_claim_trace_forget_database(Oid dboid);
extern void jq_claim_trace_restore(void);

#endif							/* JQ_CLAIM_TRACE_H */
