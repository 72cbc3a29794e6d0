/*-------------------------------------------------------------------------
 *
 * executor.h
 *	  The executor background worker (executor.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_EXECUTOR_H
#define JQ_EXECUTOR_H

#include "datatype/timestamp.h"

#include "job_queue.h"

extern const char *const jq_executor_type[JQ_NUM_KINDS];
extern int64 jq_interval_ms(const Interval *iv);
extern PGDLLEXPORT void jq_executor_main(Datum main_arg);

#endif							/* JQ_EXECUTOR_H */
