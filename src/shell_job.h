/*-------------------------------------------------------------------------
 *
 * shell_job.h
 *	  One shell job in a child process (shell_job.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_SHELL_JOB_H
#define JQ_SHELL_JOB_H

#include "job_run.h"

extern void jq_shell_job_init(void);
extern void jq_run_shell_job(JqJob *job, volatile JqExecutor *slot);
extern void jq_kill_orphaned_shell_jobs(void);

#endif							/* JQ_SHELL_JOB_H */
