/*-------------------------------------------------------------------------
 *
 * claim_trace.c
 *	  What in-server executors claimed, kept where a crash of the server
 *	  cannot lose it.
 *
 * An executor commits its claim without waiting for the claim's WAL to
 * reach the disk, so that the jobs it claimed start at once.  A crash of
 * the server can lose such a commit, and with it the attempt each job
 * used; a job that crashes the server would then run again and again,
 * never using up its attempts.
 *
 * So once such a claim has committed, and before running anything, an
 * executor writes the ids of the jobs it has not finished and their attempt
 * numbers to a file of its own, pg_stat_tmp/job_queue.<database>.<slot>;
 * it writes the file again whenever it commits outcomes, with the jobs
 * left.  A claim that waited for its WAL needs no file.  A write() survives a crash of the server, which is what matters:
 * only a job can crash the server again and again.  An operating system
 * crash may lose the file, as it loses the claims, and the jobs run again
 * with their attempts back.  Base backups leave pg_stat_tmp out, so a new
 * standby starts without the files of its primary.
 *
 * When a database's scheduler starts, before any executor of the database
 * runs, it puts back the claims that the files hold and jq.job lacks (a
 * job ready again, or still held by an executor, with fewer attempts): each
 * such job is running again with the attempt it used, and the scheduler's
 * reclaim of jobs cut off by a restart charges it, as if its claim had
 * survived.  Then it removes the files.  A file names the jq.job it is
 * about, so that a file left from before the extension was dropped and
 * created again is ignored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "claim_trace.h"
#include "internal_sql.h"
#include "job_run.h"

#define CLAIM_TRACE_PREFIX "job_queue."

/* a file: whose jobs, how many, then each job */
typedef struct ClaimTraceHeader
{
	Oid			job_relid;		/* jq.job */
	int32		n;
} ClaimTraceHeader;

typedef struct ClaimTraceEntry
{
	int64		id;
	int32		attempts;		/* its attempt number once claimed */
	int32		unused;
} ClaimTraceEntry;

/* the executor's file */
static int	trace_fd = -1;
static Oid	trace_job_relid = InvalidOid;
static int	trace_slotno;
static bool trace_empty = true;	/* as far as this executor wrote it */

/* jq.job, in a transaction */
static Oid
claim_trace_job_relid(void)
{
	return get_relname_relid("job", get_namespace_oid("jq", false));
}

/* The paths of the files of a database. */
static List *
claim_trace_files(Oid dboid)
{
	DIR		   *dir;
	struct dirent *de;
	char	   *prefix = psprintf(CLAIM_TRACE_PREFIX "%u.", dboid);
	List	   *paths = NIL;

	dir = AllocateDir(PG_STAT_TMP_DIR);
	while ((de = ReadDir(dir, PG_STAT_TMP_DIR)) != NULL)
	{
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			paths = lappend(paths, psprintf(PG_STAT_TMP_DIR "/%s", de->d_name));
	}
	FreeDir(dir);
	pfree(prefix);
	return paths;
}

/*
 * Remove files.  One that cannot be removed is reported and left: at worst
 * its claims are put back again, which changes nothing once jq.job shows
 * them.
 */
static void
claim_trace_remove(List *paths)
{
	ListCell   *lc;

	foreach(lc, paths)
	{
		if (unlink(lfirst(lc)) != 0 && errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", (char *) lfirst(lc))));
	}
}

/*
 * In the claim's transaction: open the file of the executor of slot slotno,
 * once, and note which jq.job the claim is about (the extension may have
 * been created again since the last claim).
 */
void
jq_claim_trace_open(int slotno)
{
	trace_job_relid = claim_trace_job_relid();
	if (trace_fd < 0)
	{
		char	   *path = psprintf(PG_STAT_TMP_DIR "/" CLAIM_TRACE_PREFIX "%u.%d",
									MyDatabaseId, slotno);

		trace_fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
		if (trace_fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		pfree(path);
		trace_slotno = slotno;
	}
}

/*
 * After a claim committed without waiting for its WAL: write the jobs the
 * executor has claimed and not finished (n == 0 empties the file).  An
 * error here stops the executor before it runs them, and the scheduler
 * takes them back.
 */
void
jq_claim_trace_write(const JqJob *jobs, int n)
{
	size_t		size = sizeof(ClaimTraceHeader) + sizeof(ClaimTraceEntry) * n;
	char	   *buf = palloc0(size);
	ClaimTraceHeader *header = (ClaimTraceHeader *) buf;
	ClaimTraceEntry *entries = (ClaimTraceEntry *) (buf + sizeof(ClaimTraceHeader));

	Assert(trace_fd >= 0);
	header->job_relid = trace_job_relid;
	header->n = n;
	for (int i = 0; i < n; i++)
	{
		entries[i].id = jobs[i].id;
		entries[i].attempts = jobs[i].attempts;
	}
	if (pg_pwrite(trace_fd, buf, size, 0) != (ssize_t) size)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write the claims of job_queue executor %d: %m",
						trace_slotno)));
	trace_empty = n == 0;
	pfree(buf);
}

/*
 * Outcomes committed: a file that holds claims now holds only the jobs
 * left, n of them from jobs (none: it is emptied).  A file that holds none
 * (the claim waited for its WAL) is left alone.
 */
void
jq_claim_trace_update(const JqJob *jobs, int n)
{
	if (!trace_empty)
		jq_claim_trace_write(jobs, n);
}

/*
 * The scheduler took back the jobs of an executor slot of this database
 * that exited while the server kept running: its claims committed, so its
 * file has nothing more to say.
 */
void
jq_claim_trace_clear(int slotno)
{
	List	   *paths = list_make1(psprintf(PG_STAT_TMP_DIR "/" CLAIM_TRACE_PREFIX "%u.%d",
											 MyDatabaseId, slotno));

	claim_trace_remove(paths);
	list_free_deep(paths);
}

/* The extension or the database is gone: so are the claims of its executors. */
void
jq_claim_trace_forget_database(Oid dboid)
{
	List	   *paths = claim_trace_files(dboid);

	claim_trace_remove(paths);
	list_free_deep(paths);
}

/*
 * Read the claims on jq.job (job_relid) in the files paths into ids and
 * attempts; returns how many.
 */
static int
claim_trace_read(List *paths, Oid job_relid, Datum **ids, Datum **attempts)
{
	ListCell   *lc;
	int			n = 0;
	int			size = 64;

	*ids = palloc(sizeof(Datum) * size);
	*attempts = palloc(sizeof(Datum) * size);
	foreach(lc, paths)
	{
		char	   *path = lfirst(lc);
		int			fd;
		ClaimTraceHeader header;
		ClaimTraceEntry entry;

		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		if (read(fd, &header, sizeof(header)) != sizeof(header) ||
			header.job_relid != job_relid)
			header.n = 0;
		for (int i = 0; i < header.n && read(fd, &entry, sizeof(entry)) == sizeof(entry); i++)
		{
			if (n == size)
			{
				size *= 2;
				*ids = repalloc(*ids, sizeof(Datum) * size);
				*attempts = repalloc(*attempts, sizeof(Datum) * size);
			}
			(*ids)[n] = Int64GetDatum(entry.id);
			(*attempts)[n] = Int32GetDatum(entry.attempts);
			n++;
		}
		CloseTransientFile(fd);
	}
	return n;
}

/*
 * At the start of a scheduler, no executor of the database running: put
 * back the claims that a crash lost, then remove the files.
 */
void
jq_claim_trace_restore(void)
{
	static const char *const sql = "SELECT jq._restore_claims($1, $2)";
	List	   *paths = claim_trace_files(MyDatabaseId);
	Datum	   *ids;
	Datum	   *attempts;
	int			n;

	if (paths == NIL)
		return;

	StartTransactionCommand();
	n = claim_trace_read(paths, claim_trace_job_relid(), &ids, &attempts);
	if (n > 0)
	{
		Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Datum		values[2];
		int			ret;
		int64		restored;
		bool		isnull;

		values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(attempts, n, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		ret = jq_execute(sql, 2, types, values, NULL);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not put back lost claims: %s", SPI_result_code_string(ret));
		restored = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull));
		if (restored > 0)
			ereport(LOG,
					(errmsg_plural("job_queue put back the claim of %lld job that a crash lost",
								   "job_queue put back the claims of %lld jobs that a crash lost",
								   restored,
								   (long long) restored)));
		SPI_finish();
		PopActiveSnapshot();
		/* the files go once this is on disk, whatever synchronous_commit says */
		(void) set_config_option("synchronous_commit", "on", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	}
	CommitTransactionCommand();

	claim_trace_remove(paths);
	list_free_deep(paths);
}
