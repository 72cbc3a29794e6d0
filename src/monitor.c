/*-------------------------------------------------------------------------
 *
 * monitor.c
 *	  Setup of the monitoring of job_queue: its settings, its shared memory
 *	  (statistics, progress of running jobs, waits for jobs: requested and
 *	  set up from the shared memory hooks of shmem.c), the
 *	  transaction callbacks that feed the statistics, and who may see the
 *	  jobs of every role.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "monitor.h"

int			jq_monitor_max_queues = 256;
int			jq_monitor_max_progress = 1024;

static Size
mon_shmem_size(void)
{
	return add_size(add_size(jq_stats_shmem_size(), jq_progress_shmem_size()),
					jq_wait_shmem_size());
}

/* From the shared memory request hook of shmem.c. */
void
jq_monitor_shmem_request(void)
{
	RequestAddinShmemSpace(mon_shmem_size());
	/* 0: statistics, 1: progress */
	RequestNamedLWLockTranche("job_queue monitor", 2);
}

/* From the shared memory startup hook of shmem.c, with AddinShmemInitLock held. */
void
jq_monitor_shmem_startup(void)
{
	jq_stats_shmem_init();
	jq_progress_shmem_init();
	jq_wait_shmem_init();
}

/*
 * Called from _PG_init first: the settings must be defined before the jq
 * prefix is reserved (jq_guc_init), which would drop their values.  They
 * size shared memory, so they exist only when the library is preloaded.
 */
void
jq_monitor_guc_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("jq.monitor_max_queues",
							gettext_noop("Combinations of database, role and queue whose statistics are kept."),
							NULL,
							&jq_monitor_max_queues,
							256, 16, 100000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("jq.monitor_max_progress",
							gettext_noop("Jobs whose last progress report is kept in shared memory."),
							NULL,
							&jq_monitor_max_progress,
							1024, 16, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}

/*
 * Called from _PG_init while shared_preload_libraries is processed, before
 * shared memory is requested.
 */
void
jq_monitor_init(void)
{
	jq_stats_xact_init();
}
