/*-------------------------------------------------------------------------
 *
 * job_queue.h
 *	  Names and the kinds of jobs, shared by every part of job_queue.
 *
 * Process model: one launcher per cluster starts a scheduler in each
 * database that has the extension and work to do, and hands out executor
 * slots among them (pool.c); each scheduler starts executors that run SQL
 * jobs, and executors that run shell jobs.  They meet in shared memory
 * (shmem.h).  Each file has its own header for what it exports.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOB_QUEUE_H
#define JOB_QUEUE_H

#include "postgres.h"

#define JQ_EXTENSION_NAME	"job_queue"
#define JQ_LIBRARY_NAME		"job_queue"
#define JQ_ADMIN_ROLE		"jq_admin"
#define JQ_WORKER_ROLE		"jq_worker"

/*
 * The kinds of jobs; an executor runs jobs of one kind.  Task jobs name a
 * handler of an application's worker: no executor runs them, only external
 * workers claim them.
 */
typedef enum JqJobKind
{
	JQ_KIND_SQL,
	JQ_KIND_SHELL,
	JQ_KIND_TASK
} JqJobKind;

#define JQ_NUM_KINDS 2			/* the kinds executors run */
/* the executors to wake for jobs of a kind: none for tasks */
#define JQ_KIND_BIT(kind)	((kind) < JQ_NUM_KINDS ? 1 << (kind) : 0)
#define JQ_KINDS_ALL		(JQ_KIND_BIT(JQ_KIND_SQL) | JQ_KIND_BIT(JQ_KIND_SHELL))

#endif							/* JOB_QUEUE_H */
