/*-------------------------------------------------------------------------
 *
 * scheduler.h
 *	  The per-database scheduler background worker (scheduler.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_SCHEDULER_H
#define JQ_SCHEDULER_H

extern PGDLLEXPORT void jq_scheduler_main(Datum main_arg);

#endif							/* JQ_SCHEDULER_H */
