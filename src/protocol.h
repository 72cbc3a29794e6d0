/*-------------------------------------------------------------------------
 *
 * protocol.h
 *	  What job_queue and the workers that run its jobs agree on: the
 *	  channel jq_enqueue notifies, and the environment variables that tell
 *	  a shell job which job it is.
 *
 * The server module and jq_worker (worker/, frontend code) both include
 * this file: it must not need postgres.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_PROTOCOL_H
#define JQ_PROTOCOL_H

/* external workers LISTEN here; the payload is the queue's name ("" any) */
#define JQ_NOTIFY_CHANNEL		"jq_jobs"

/* the environment of a shell job, after its own variables */
#define JQ_ENV_JOB_ID			"JQ_JOB_ID"
#define JQ_ENV_ATTEMPT			"JQ_ATTEMPT"	/* 1 for the first attempt */
#define JQ_ENV_MAX_ATTEMPTS		"JQ_MAX_ATTEMPTS"
#define JQ_ENV_QUEUE			"JQ_QUEUE"
#define JQ_ENV_PAYLOAD			"JQ_PAYLOAD"	/* only when the job has a payload */
#define JQ_ENV_PROGRESS_FILE	"JQ_PROGRESS_FILE"	/* in-server jobs: progress lines go there */
/* in-server jobs: "<data directory>:<database OID>", marks their processes */
#define JQ_ENV_SERVER			"JQ_SERVER"

#endif							/* JQ_PROTOCOL_H */
