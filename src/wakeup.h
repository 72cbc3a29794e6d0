/*-------------------------------------------------------------------------
 *
 * wakeup.h
 *	  Commit-time wakeups of job_queue workers, and NOTIFY (wakeup.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_WAKEUP_H
#define JQ_WAKEUP_H

#include "datatype/timestamp.h"

extern void jq_wakeup_init(void);
extern void jq_wake_at_commit_for(TimestampTz run_at, int kinds);
extern void jq_notify_enqueued(text *queue);
extern void jq_recheck_at_commit(void);
extern void jq_wake_launcher_at_commit(void);
extern void jq_wake_database_at_commit(void);
extern void jq_listen_stop_at_commit(void);

#endif							/* JQ_WAKEUP_H */
