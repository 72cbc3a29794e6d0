/*-------------------------------------------------------------------------
 *
 * pool.h
 *	  The executor pool: executors on demand, handed out fairly among
 *	  databases (pool.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_POOL_H
#define JQ_POOL_H

#include "shmem.h"

extern int	jq_pool_size(JqJobKind kind);
extern int	jq_pool_count(Oid dboid, int kind);
extern long jq_pool_hand_out_locked(TimestampTz now);
extern JqDatabase *jq_pool_first_in_line(void);

#endif							/* JQ_POOL_H */
