/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  The settings of job_queue (guc.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_GUC_H
#define JQ_GUC_H

typedef enum JqNotifyMode
{
	JQ_NOTIFY_OFF,
	JQ_NOTIFY_ON,
	JQ_NOTIFY_AUTO
} JqNotifyMode;

extern bool jq_execute_in_server;
extern int	jq_max_executors;
extern int	jq_executors_per_database;
extern int	jq_batch_size;
extern int	jq_batch_time_ms;
extern int	jq_default_max_attempts;
extern int	jq_default_timeout_ms;
extern int	jq_backoff_base_ms;
extern int	jq_backoff_cap_ms;
extern int	jq_history_retention_s;
extern int	jq_notify_mode;
extern int	jq_shell_executors_per_database;
extern int	jq_shell_output_limit_kb;
extern int	jq_shell_kill_grace_ms;
extern int	jq_executor_idle_timeout_ms;

extern void jq_guc_init(bool preloading);
extern void jq_worker_settings(void);

#endif							/* JQ_GUC_H */
