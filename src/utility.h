/*-------------------------------------------------------------------------
 *
 * utility.h
 *	  The ProcessUtility hook of job_queue (utility.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_UTILITY_H
#define JQ_UTILITY_H

extern void jq_utility_init(void);

#endif							/* JQ_UTILITY_H */
