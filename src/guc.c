/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The jq.* settings.
 *
 * Every setting the extension reads is defined here, with its default and
 * the context in which it may change.  Defaults are repeated in README.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "compat.h"
#include "guc.h"
#include "internal_sql.h"

bool		jq_execute_in_server = true;
int			jq_max_executors = 16;
int			jq_executors_per_database = 2;
int			jq_batch_size = 64;
int			jq_batch_time_ms = 10;
int			jq_default_max_attempts = 5;
int			jq_default_timeout_ms = 15 * 60 * 1000;
int			jq_backoff_base_ms = 1000;
int			jq_backoff_cap_ms = 60 * 60 * 1000;
int			jq_history_retention_s = 7 * 24 * 60 * 60;
int			jq_notify_mode = JQ_NOTIFY_AUTO;
int			jq_shell_executors_per_database = 2;
int			jq_shell_output_limit_kb = 64;
int			jq_shell_kill_grace_ms = 5000;
int			jq_executor_idle_timeout_ms = 60 * 1000;

static const struct config_enum_entry jq_notify_options[] = {
	{"off", JQ_NOTIFY_OFF, false},
	{"on", JQ_NOTIFY_ON, false},
	{"auto", JQ_NOTIFY_AUTO, false},
	{"false", JQ_NOTIFY_OFF, true},
	{"true", JQ_NOTIFY_ON, true},
	{NULL, 0, false}
};

/*
 * Settings of the workers' own sessions, whatever the configuration or a
 * database owner's ALTER DATABASE ... SET says: internal SQL resolves names
 * in pg_catalog only, runs as the role the worker started as, in read-write READ
 * COMMITTED transactions, which its row locking is written for, and is not
 * cut short by timeouts meant for users' sessions (jobs have their own).
 */
void
jq_worker_settings(void)
{
	static const char *const pinned[][2] = {
		{"role", "none"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_read_only", "off"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
	};

	/* the role settings are checked against the catalogs */
	StartTransactionCommand();
	SetConfigOption("session_authorization",
					GetUserNameFromId(GetAuthenticatedUserId(), false),
					PGC_SUSET, PGC_S_SESSION);
	jq_pin_search_path(PGC_S_SESSION, GUC_ACTION_SET);
	for (size_t i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_USERSET, PGC_S_SESSION);
	CommitTransactionCommand();
}

void
jq_guc_init(bool preloading)
{
	DefineCustomBoolVariable("jq.execute_in_server",
							 gettext_noop("Runs jobs in background workers inside the server."),
							 gettext_noop("When off, only external workers (jq_dequeue) run jobs."),
							 &jq_execute_in_server,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	/* it sizes shared memory: it exists only when the library is preloaded */
	if (preloading)
		DefineCustomIntVariable("jq.max_executors",
								gettext_noop("Maximum number of executors in the whole cluster."),
								gettext_noop("Each executor is a background worker and counts against max_worker_processes."),
								&jq_max_executors,
								16, 1, 1024,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);

	DefineCustomIntVariable("jq.executors_per_database",
							gettext_noop("Number of executors each database's scheduler keeps."),
							NULL,
							&jq_executors_per_database,
							2, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.shell_executors_per_database",
							gettext_noop("Number of executors for shell jobs each database's scheduler keeps."),
							gettext_noop("It bounds how many shell jobs run at once in a database; 0 leaves shell jobs to external workers."),
							&jq_shell_executors_per_database,
							2, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.executor_idle_timeout",
							gettext_noop("Time an executor with nothing to do waits for work before it leaves."),
							gettext_noop("An idle executor leaves at once when another database waits for an executor; 0 keeps idle executors."),
							&jq_executor_idle_timeout_ms,
							60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.shell_output_limit",
							gettext_noop("Output of a shell job kept per stream (stdout, stderr)."),
							gettext_noop("Output beyond it is counted and dropped, and the result says it was truncated."),
							&jq_shell_output_limit_kb,
							64, 1, 64 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.shell_kill_grace",
							gettext_noop("Time a stopped shell job gets between SIGTERM and SIGKILL."),
							gettext_noop("A SQL job that goes on after its timeout cancelled it is stopped for good, with its executor, after this time."),
							&jq_shell_kill_grace_ms,
							5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.batch_size",
							gettext_noop("Maximum number of jobs an executor claims at once."),
							gettext_noop("Jobs of one claim run one after the other, each in its own subtransaction."),
							&jq_batch_size,
							64, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.batch_time",
							gettext_noop("Time after which an executor commits the jobs it has run."),
							gettext_noop("Before starting the next job of a claim, the executor commits once its transaction is this old."),
							&jq_batch_time_ms,
							10, 0, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.default_max_attempts",
							gettext_noop("Attempts a job gets when jq_enqueue is not told."),
							NULL,
							&jq_default_max_attempts,
							5, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.default_timeout",
							gettext_noop("Time limit of a job when jq_enqueue is not told; 0 means none."),
							NULL,
							&jq_default_timeout_ms,
							15 * 60 * 1000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.retry_backoff_base",
							gettext_noop("Delay before the first retry of a failed job."),
							gettext_noop("Each further retry waits twice as long, up to jq.retry_backoff_cap; the delay is jittered down by up to half."),
							&jq_backoff_base_ms,
							1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.retry_backoff_cap",
							gettext_noop("Longest delay between two attempts of a job."),
							NULL,
							&jq_backoff_cap_ms,
							60 * 60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("jq.history_retention",
							gettext_noop("How long finished jobs stay visible in jq_jobs."),
							NULL,
							&jq_history_retention_s,
							7 * 24 * 60 * 60, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("jq.notify",
							 gettext_noop("When jq_enqueue sends NOTIFY jq_jobs."),
							 gettext_noop("auto: only while a session of the database has called jq_listen()."),
							 &jq_notify_mode,
							 JQ_NOTIFY_AUTO, jq_notify_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	jq_reserve_guc_prefix("jq");
}
