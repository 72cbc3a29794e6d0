/*-------------------------------------------------------------------------
 *
 * outcome.h
 *	  The outcomes of jobs run in the server, recorded (outcome.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_OUTCOME_H
#define JQ_OUTCOME_H

#include "job_run.h"

extern void jq_finish_jobs(const JqJob *jobs, int n, int wake_kinds);

#endif							/* JQ_OUTCOME_H */
