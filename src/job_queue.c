/*-------------------------------------------------------------------------
 *
 * job_queue.c
 *	  Module entry point of the job_queue extension.
 *
 * Loaded from shared_preload_libraries, the library sets up its shared
 * memory, the launcher, the utility hook and the commit-time wakeups.
 * Loaded any other way, it only defines its settings: jobs can then be
 * enqueued and run by external workers, and CREATE EXTENSION warns that no
 * in-server worker will run them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "guc.h"
#include "launcher.h"
#include "monitor.h"
#include "shmem.h"
#include "utility.h"
#include "wakeup.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	jq_monitor_guc_init();
	jq_guc_init(process_shared_preload_libraries_in_progress);

	if (!process_shared_preload_libraries_in_progress)
		return;

	jq_preloaded = true;
	jq_monitor_init();
	jq_shmem_init();
	jq_wakeup_init();
	jq_utility_init();
	jq_launcher_register();
}
