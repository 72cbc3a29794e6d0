/*-------------------------------------------------------------------------
 *
 * bgworker.c
 *	  Registering the background workers of job_queue: the launcher at
 *	  server start, schedulers and executors on demand.
 *
 * Every worker runs a function of this library, connects to a database
 * (or, the launcher, to none), and starts only once recovery has finished,
 * so that nothing runs on a hot standby.  Workers started on demand are
 * never restarted by the postmaster, and tell the process that started
 * them when they stop (bgw_notify_pid).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "bgworker.h"
#include "job_queue.h"

/* A worker running function, of the given type and name. */
static void
bgw_describe(BackgroundWorker *worker, const char *function, const char *type,
			 const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, JQ_LIBRARY_NAME);
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
}

/*
 * Register a worker that the postmaster starts with the server and
 * restarts restart_s seconds after it exits (from _PG_init).
 */
void
jq_bgworker_register(const char *function, const char *type, int restart_s)
{
	BackgroundWorker worker;

	bgw_describe(&worker, function, type, type);
	worker.bgw_restart_time = restart_s;
	RegisterBackgroundWorker(&worker);
}

/*
 * Start a worker now, passing it main_arg and extra_size bytes of extra
 * (at most BGW_EXTRALEN); its name is formatted from name_fmt.  False when
 * the postmaster has no background worker slot left.
 */
bool
jq_bgworker_start(BackgroundWorkerHandle **handle, const char *function, const char *type,
				  Datum main_arg, const void *extra, Size extra_size,
				  const char *name_fmt,...)
{
	BackgroundWorker worker;
	char		name[BGW_MAXLEN];
	va_list		args;

	va_start(args, name_fmt);
	vsnprintf(name, sizeof(name), name_fmt, args);
	va_end(args);

	Assert(extra_size <= BGW_EXTRALEN);
	bgw_describe(&worker, function, type, name);
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = main_arg;
	if (extra_size > 0)
		memcpy(worker.bgw_extra, extra, extra_size);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}
