/*-------------------------------------------------------------------------
 *
 * job_run.h
 *	  A job an executor claimed, and running one SQL job in a
 *	  subtransaction (job_run.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_JOB_RUN_H
#define JQ_JOB_RUN_H

#include "datatype/timestamp.h"

#include "shmem.h"

typedef enum JqOutcome
{
	JQ_OUTCOME_SUCCEEDED,
	JQ_OUTCOME_ERROR,			/* retried while attempts remain */
	JQ_OUTCOME_CANCELLED,
	JQ_OUTCOME_REJECTED,		/* failed, not retried */
	JQ_OUTCOME_RELEASED			/* cut short by a shutdown: ready again */
} JqOutcome;

typedef struct JqJob
{
	int64		id;
	int32		attempts;		/* its attempt number, this one counted */
	char	   *command;		/* NULL for a shell job given as argv */
	Oid			owner;
	int64		timeout_ms;		/* 0: none */
	/* shell jobs */
	char	  **argv;			/* NULL-terminated, or NULL */
	char	  **env;			/* "NAME=value", NULL-terminated */
	char	   *working_dir;
	/* filled by jq_run_job or jq_run_shell_job */
	JqOutcome	outcome;
	char	   *result;			/* JSON text: the last statement's rows, or a shell job's output */
	char	   *error;			/* error message, or NULL */
	char	   *error_code;		/* its SQLSTATE */
	bool		timed_out;
	bool		changed_transaction;	/* ran SET CONSTRAINTS: commit before the next job */
	bool		interrupted;	/* a query cancel came while it ran (not its timeout) */
	TimestampTz started;
	TimestampTz finished;
} JqJob;

extern void jq_job_run_init(void);
extern void jq_run_job(JqJob *job, volatile JqExecutor *slot);
extern void jq_job_changed_transaction(void);

#endif							/* JQ_JOB_RUN_H */
