/*-------------------------------------------------------------------------
 *
 * queue_settings.h
 *	  A queue's row in jq.queue, as enqueueing applies it
 *	  (queue_settings.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_QUEUE_SETTINGS_H
#define JQ_QUEUE_SETTINGS_H

#include "datatype/timestamp.h"

typedef struct JqQueueSettings
{
	bool		has_priority;
	int32		default_priority;
	bool		has_max_attempts;
	int32		default_max_attempts;
	bool		has_timeout;
	Interval	default_timeout;
	bool		limited;
	int32		max_ready;		/* 0: no limit */
} JqQueueSettings;

extern const JqQueueSettings *jq_queue_settings(const char *name);

#endif							/* JQ_QUEUE_SETTINGS_H */
