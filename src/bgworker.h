/*-------------------------------------------------------------------------
 *
 * bgworker.h
 *	  Registering the background workers of job_queue (bgworker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_BGWORKER_H
#define JQ_BGWORKER_H

#include "postmaster/bgworker.h"

extern void jq_bgworker_register(const char *function, const char *type, int restart_s);
extern bool jq_bgworker_start(BackgroundWorkerHandle **handle, const char *function,
							  const char *type, Datum main_arg, const void *extra,
							  Size extra_size, const char *name_fmt,...) pg_attribute_printf(7, 8);

#endif							/* JQ_BGWORKER_H */
