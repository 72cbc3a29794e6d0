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
 * So once its claim has committed, and before running anything, an
 * executor writes the ids of the jobs and their attempt numbers to a file
 * of its own, job_queue/<database oid>.<slot>, and empties it once their
 * outcome has committed.  A write() survives a crash of the server, which
 * is what matters: only a job can crash the server again and again.  An
 * operating system crash may lose the file, as it loses the claims, and the
 * jobs run again with their attempts back.
 *
 * When a database's scheduler starts, before any executor of the database
 * runs, it puts back the claims that the files hold and jq.job lacks: each
 * such job is running again with the attempt it used, and the scheduler's
 * reclaim of jobs cut off by a restart charges it, as if its claim had
 * survived.  Then it removes the files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "job_queue.h"

#define CLAIM_TRACE_DIR "job_queue"

/* a file: how many jobs, then each job */
typedef struct ClaimTraceHeader
{
	int32		n;
	int32		unused;
} ClaimTraceHeader;

typedef struct ClaimTraceEntry
{
	int64		id;
	int32		attempts;		/* its attempt number once claimed */
	int32		unused;
} ClaimTraceEntry;

static int	trace_fd = -1;

static char *
claim_trace_path(Oid dboid, int slotno)
{
	return psprintf(CLAIM_TRACE_DIR "/%u.%d", dboid, slotno);
}

/*
 * Write the jobs an executor of this database (slot slotno) has claimed;
 * n == 0 empties its file.  An error here stops the executor before it
 * runs the jobs, which the scheduler then takes back.
 */
void
jq_claim_trace_write(int slotno, const JqJob *jobs, int n)
{
	size_t		size = sizeof(ClaimTraceHeader) + sizeof(ClaimTraceEntry) * n;
	char	   *buf;
	ClaimTraceEntry *entries;

	if (trace_fd < 0)
	{
		char	   *path = claim_trace_path(MyDatabaseId, slotno);

		if (MakePGDirectory(CLAIM_TRACE_DIR) < 0 && errno != EEXIST)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", CLAIM_TRACE_DIR)));
		trace_fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
		if (trace_fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		pfree(path);
	}

	buf = palloc0(size);
	((ClaimTraceHeader *) buf)->n = n;
	entries = (ClaimTraceEntry *) (buf + sizeof(ClaimTraceHeader));
	for (int i = 0; i < n; i++)
	{
		entries[i].id = jobs[i].id;
		entries[i].attempts = jobs[i].attempts;
	}
	if (pg_pwrite(trace_fd, buf, size, 0) != (ssize_t) size)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write the claims of job_queue executor %d: %m", slotno)));
	pfree(buf);
}

/* The scheduler took back the jobs of an executor slot: its claims are no more. */
void
jq_claim_trace_clear(int slotno)
{
	char	   *path = claim_trace_path(MyDatabaseId, slotno);

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
	pfree(path);
}

/*
 * Read the claims in the files of this database into ids and attempts;
 * returns how many, and the files' names in *paths.
 */
static int
claim_trace_read(Datum **ids, Datum **attempts, List **paths)
{
	DIR		   *dir;
	struct dirent *de;
	char	   *prefix = psprintf("%u.", MyDatabaseId);
	int			n = 0;
	int			size = 64;

	*ids = palloc(sizeof(Datum) * size);
	*attempts = palloc(sizeof(Datum) * size);
	*paths = NIL;

	dir = AllocateDir(CLAIM_TRACE_DIR);
	if (dir == NULL && errno == ENOENT)
		return 0;				/* no executor ever claimed anything */
	while ((de = ReadDir(dir, CLAIM_TRACE_DIR)) != NULL)
	{
		char	   *path;
		int			fd;
		ClaimTraceHeader header;
		ClaimTraceEntry entry;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		path = psprintf(CLAIM_TRACE_DIR "/%s", de->d_name);
		*paths = lappend(*paths, path);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\": %m", path)));
		if (read(fd, &header, sizeof(header)) != sizeof(header))
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
	FreeDir(dir);
	pfree(prefix);
	return n;
}

/*
 * At the start of a scheduler, no executor of the database running: put
 * back the claims that a crash lost, then remove the files.
 */
void
jq_claim_trace_restore(void)
{
	static const char *const sql =
		"UPDATE jq.job j"
		" SET state = 'running', attempts = c.attempts, executor_token = 0,"
		"  lease_owner = 'in-server executor'"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS c(id, attempts)"
		" WHERE j.id = c.id AND j.state = 'ready' AND j.attempts < c.attempts";
	Datum	   *ids;
	Datum	   *attempts;
	List	   *paths;
	int			n;
	ListCell   *lc;

	n = claim_trace_read(&ids, &attempts, &paths);
	if (n > 0)
	{
		Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Datum		values[2];
		int			ret;

		StartTransactionCommand();
		values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(attempts, n, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		ret = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not put back lost claims: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
			ereport(LOG,
					(errmsg("job_queue put back the claims of " UINT64_FORMAT " jobs that a crash lost",
							SPI_processed)));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	foreach(lc, paths)
	{
		if (unlink(lfirst(lc)) != 0 && errno != ENOENT)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", (char *) lfirst(lc))));
	}
	list_free_deep(paths);
	pfree(ids);
	pfree(attempts);
}
