/*-------------------------------------------------------------------------
 *
 * api.h
 *	  Who may call what in the API of job_queue (api.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_API_H
#define JQ_API_H

extern bool jq_may_run_shell(Oid role);
extern bool jq_is_admin(Oid role);
extern bool jq_is_worker(Oid role);

#endif							/* JQ_API_H */
