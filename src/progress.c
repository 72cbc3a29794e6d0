/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  Progress of running jobs: jq_progress(), the jq_running view, and the
 *	  progress file of in-server shell jobs.
 *
 * A job's progress (a fraction, a short message, a small jsonb) is kept in
 * a shared hash table by database and job id, so that other sessions see
 * it at once, before the job commits, and an update writes no WAL.  When
 * the job finishes, the trigger on jq.job_history takes it out of the table
 * and keeps it in the job's row (jq_jobs.progress).  When the table is
 * full, the entry updated longest ago gives way.
 *
 * An in-server shell job reports progress by writing lines to the file
 * named in its environment variable JQ_PROGRESS_FILE: the last complete
 * line counts, an optional fraction (0.25, or 25%) then a message.  The
 * file is read when someone looks (jq_running) and when the job finishes,
 * and removed when the job is claimed again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "api.h"
#include "compat.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "monitor.h"
#include "shmem.h"

#define PROGRESS_MESSAGE_MAX	256
#define PROGRESS_DATA_MAX		1024
#define PROGRESS_FILE_TAIL		4096

typedef struct ProgressKey
{
	Oid			dboid;
	int64		job_id;
} ProgressKey;

typedef struct ProgressEntry
{
	ProgressKey key;
	Oid			owner;
	int32		attempt;
	bool		has_fraction;
	double		fraction;
	char		message[PROGRESS_MESSAGE_MAX];	/* "" when none */
	char		data[PROGRESS_DATA_MAX];	/* jsonb as text, "" when none */
	TimestampTz at;
} ProgressEntry;

typedef struct ProgressShared
{
	LWLock	   *lock;
} ProgressShared;

static ProgressShared *progress_shared = NULL;
static HTAB *progress_hash = NULL;

Size
jq_progress_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(ProgressShared)),
					hash_estimate_size(jq_monitor_max_progress, sizeof(ProgressEntry)));
}

/* Called with AddinShmemInitLock held. */
void
jq_progress_shmem_init(void)
{
	HASHCTL		info;
	bool		found;

	progress_shared = ShmemInitStruct("job_queue progress", sizeof(ProgressShared), &found);
	if (!found)
		progress_shared->lock = &(GetNamedLWLockTranche("job_queue monitor"))[1].lock;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ProgressKey);
	info.entrysize = sizeof(ProgressEntry);
	progress_hash = ShmemInitHash("job_queue progress entries", jq_monitor_max_progress,
								  jq_monitor_max_progress, &info, HASH_ELEM | HASH_BLOBS);
}

/* ------------------------------------------------------------------------
 * A progress report as jsonb
 * ------------------------------------------------------------------------
 */

/* {"fraction": ..., "message": ..., "data": ...}, leaving out what is not there */
static Datum
progress_jsonb(bool has_fraction, double fraction, const char *message, const char *data)
{
	StringInfoData buf;
	const char *sep = "";

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	if (has_fraction)
	{
		appendStringInfo(&buf, "\"fraction\": %.6g", fraction);
		sep = ", ";
	}
	if (message[0] != '\0')
	{
		appendStringInfo(&buf, "%s\"message\": ", sep);
		escape_json(&buf, message);
		sep = ", ";
	}
	if (data[0] != '\0')
		appendStringInfo(&buf, "%s\"data\": %s", sep, data);
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* ------------------------------------------------------------------------
 * Shell jobs: the progress file
 * ------------------------------------------------------------------------
 */

static char *
progress_file_path(int64 job_id)
{
	return psprintf("%s/pg_stat_tmp/jq_progress.%u." INT64_FORMAT, DataDir, MyDatabaseId, job_id);
}

PG_FUNCTION_INFO_V1(jq_progress_file);

/* jq._progress_file(id): the file an in-server shell job writes its progress to */
Datum
jq_progress_file(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(progress_file_path(PG_GETARG_INT64(0))));
}

/* Remove a shell job's progress file, if it has one. */
void
jq_progress_forget_file(int64 job_id)
{
	char	   *path = progress_file_path(job_id);

	(void) unlink(path);
	pfree(path);
}

/*
 * Parse one line of a progress file: an optional fraction ("0.25" or
 * "25%"), then the message.
 */
static void
progress_parse_line(char *line, bool *has_fraction, double *fraction, char *message)
{
	char	   *end;
	double		f;

	while (*line == ' ' || *line == '\t')
		line++;
	f = strtod(line, &end);
	*has_fraction = false;
	if (end != line && (*end == '%' || *end == ' ' || *end == '\t' || *end == '\0'))
	{
		if (*end == '%')
		{
			f /= 100.0;
			end++;
		}
		if (f >= 0.0 && f <= 1.0)
		{
			*has_fraction = true;
			*fraction = f;
			line = end;
			while (*line == ' ' || *line == '\t')
				line++;
		}
	}
	strlcpy(message, line, PROGRESS_MESSAGE_MAX);
}

/* The last newline in buf[0..len), or NULL. */
static char *
progress_last_newline(char *buf, size_t len)
{
	while (len > 0)
	{
		if (buf[--len] == '\n')
			return buf + len;
	}
	return NULL;
}

/*
 * The last complete line of a shell job's progress file, parsed; false
 * when there is none.  A line still being written (no newline yet) is
 * left for the next look.
 */
static bool
progress_read_file(int64 job_id, bool *has_fraction, double *fraction, char *message,
				   TimestampTz *at)
{
	char	   *path = progress_file_path(job_id);
	char		buf[PROGRESS_FILE_TAIL + 1];
	struct stat st;
	off_t		start;
	ssize_t		n;
	char	   *end;
	char	   *line;
	int			fd = open(path, O_RDONLY | PG_BINARY, 0);

	pfree(path);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0)
	{
		close(fd);
		return false;
	}
	start = st.st_size > PROGRESS_FILE_TAIL ? st.st_size - PROGRESS_FILE_TAIL : 0;
	n = pread(fd, buf, PROGRESS_FILE_TAIL, start);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';

	end = progress_last_newline(buf, n);
	if (end == NULL)
		return false;
	*end = '\0';
	line = progress_last_newline(buf, end - buf);
	line = line ? line + 1 : buf;
	if (line == buf && start > 0)
		return false;			/* a line longer than the tail: ignored */
	progress_parse_line(line, has_fraction, fraction, message);
	*at = time_t_to_timestamptz(st.st_mtime);
	return true;
}

/* Replace *p (if any: *found) with the progress file's report if that is newer. */
static void
progress_newer_from_file(int64 job_id, ProgressEntry *p, bool *found)
{
	ProgressEntry file;

	memset(&file, 0, sizeof(file));
	if (progress_read_file(job_id, &file.has_fraction, &file.fraction, file.message,
						   &file.at) &&
		(!*found || file.at > p->at))
	{
		*p = file;
		*found = true;
	}
}

/* ------------------------------------------------------------------------
 * The shared table
 * ------------------------------------------------------------------------
 */

/* Make room for one more entry by dropping the one updated longest ago. */
static void
progress_evict_oldest(void)
{
	HASH_SEQ_STATUS seq;
	ProgressEntry *e;
	ProgressEntry *oldest = NULL;

	hash_seq_init(&seq, progress_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (oldest == NULL || e->at < oldest->at)
			oldest = e;
	}
	if (oldest)
		hash_search(progress_hash, &oldest->key, HASH_REMOVE, NULL);
}

static void
progress_store(int64 job_id, Oid owner, int32 attempt, bool has_fraction, double fraction,
			   const char *message, const char *data)
{
	ProgressKey key;
	ProgressEntry *e;

	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.job_id = job_id;

	LWLockAcquire(progress_shared->lock, LW_EXCLUSIVE);
	e = hash_search(progress_hash, &key, HASH_FIND, NULL);
	/* a shared hash table would take more than the memory it was sized for */
	if (e == NULL && hash_get_num_entries(progress_hash) >= jq_monitor_max_progress)
		progress_evict_oldest();
	if (e == NULL)
		e = hash_search(progress_hash, &key, HASH_ENTER_NULL, NULL);
	if (e != NULL)
	{
		e->owner = owner;
		e->attempt = attempt;
		e->has_fraction = has_fraction;
		e->fraction = fraction;
		strlcpy(e->message, message, sizeof(e->message));
		strlcpy(e->data, data, sizeof(e->data));
		e->at = GetCurrentTimestamp();
	}
	LWLockRelease(progress_shared->lock);
}

/*
 * For the trigger on jq.job_history: the last progress the job reported,
 * taken out of shared memory, or read from its progress file (shell jobs;
 * then removed), whichever is newer.  False if it reported none.
 */
bool
jq_progress_take(int64 job_id, bool is_shell, Datum *progress, TimestampTz *at)
{
	ProgressKey key;
	ProgressEntry *e;
	ProgressEntry copy;
	bool		found = false;

	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.job_id = job_id;

	LWLockAcquire(progress_shared->lock, LW_EXCLUSIVE);
	e = hash_search(progress_hash, &key, HASH_FIND, NULL);
	if (e != NULL)
	{
		copy = *e;
		found = true;
		hash_search(progress_hash, &key, HASH_REMOVE, NULL);
	}
	LWLockRelease(progress_shared->lock);

	if (is_shell)
	{
		progress_newer_from_file(job_id, &copy, &found);
		jq_progress_forget_file(job_id);
	}
	if (!found)
		return false;
	*progress = progress_jsonb(copy.has_fraction, copy.fraction, copy.message, copy.data);
	*at = copy.at;
	return true;
}

/* ------------------------------------------------------------------------
 * jq_progress()
 * ------------------------------------------------------------------------
 */

/* The job this in-server executor is running, or 0. */
static int64
progress_own_job(void)
{
	if (jq_shared == NULL)
		return 0;
	return jq_slot_own_job();
}

/* columns of the running job jq_progress reports on */
enum
{
	Anum_reported_owner = 1,
	Anum_reported_attempts
};

PG_FUNCTION_INFO_V1(jq_progress);

/*
 * jq_progress(fraction, message, data, id, attempt): report the progress of
 * the job the caller runs (id NULL: the SQL job this executor runs) or of
 * a job it holds (an external worker: id, and the attempt it was given).
 */
Datum
jq_progress(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	bool		has_fraction = !PG_ARGISNULL(0);
	double		fraction = has_fraction ? PG_GETARG_FLOAT8(0) : 0.0;
	char	   *message = PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *data = PG_ARGISNULL(2) ? "" : JsonbToCString(NULL, &PG_GETARG_JSONB_P(2)->root, 0);
	int64		own_job = progress_own_job();
	int64		job_id = PG_ARGISNULL(3) ? own_job : PG_GETARG_INT64(3);
	bool		has_attempt = !PG_ARGISNULL(4);
	int32		attempt = has_attempt ? PG_GETARG_INT32(4) : 0;
	static SPIPlanPtr plan = NULL;
	JqUserContext ctx;
	Datum		arg;
	Oid			owner;
	int32		attempts;
	bool		isnull;

	if (progress_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("jq_progress needs job_queue in shared_preload_libraries"),
				 errhint("Add job_queue to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (has_fraction && !(fraction >= 0.0 && fraction <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("progress fraction must be between 0 and 1"),
				 errhint("Pass the share of the work done, 0.25 for a quarter.")));
	if (strlen(message) >= PROGRESS_MESSAGE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("progress message must be shorter than %d bytes", PROGRESS_MESSAGE_MAX),
				 errhint("Keep details in the data argument, or in the job's result.")));
	if (strlen(data) >= PROGRESS_DATA_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("progress data must be shorter than %d bytes as text", PROGRESS_DATA_MAX),
				 errhint("Report a summary; keep the details in the job's result.")));
	if (job_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jq_progress without a job id must be called by a running SQL job"),
				 errhint("An external worker passes the id and the attempt of a job it holds.")));

	SPI_connect();
	jq_as_owner(&ctx);
	if (plan == NULL)
	{
		Oid			types[1] = {INT8OID};

		plan = jq_prepare("SELECT j.owner, j.attempts FROM jq.job j "
						  "WHERE j.id OPERATOR(pg_catalog.=) $1 AND j.state = 'running'",
						  1, types);
	}
	arg = Int64GetDatum(job_id);
	if (jq_execute_plan(plan, &arg, NULL, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up job " INT64_FORMAT, job_id);
	jq_as_caller(&ctx);
	owner = SPI_processed == 0 ? InvalidOid :
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   Anum_reported_owner, &isnull));
	attempts = SPI_processed == 0 ? 0 :
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									Anum_reported_attempts, &isnull));
	SPI_finish();

	/* another role's job is as absent as one that does not run */
	if (!OidIsValid(owner) ||
		(job_id != own_job && owner != caller && !jq_is_worker(caller)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job " INT64_FORMAT " is not running", job_id),
				 errhint("Only a running job can report progress: its owner's, or one a member of jq_worker or jq_admin holds.")));
	if (has_attempt && attempt != attempts)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job " INT64_FORMAT " is not in attempt %d but in attempt %d",
						job_id, attempt, attempts),
				 errhint("A worker whose lease expired no longer holds the job.")));

	progress_store(job_id, owner, attempts, has_fraction, fraction, message, data);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * jq_running
 * ------------------------------------------------------------------------
 */

/* the running jobs the caller may see ($1: caller, $2: sees all) */
static const char *const progress_running_sql =
"SELECT j.id, j.queue, j.kind, "
"	coalesce(j.command, pg_catalog.array_to_string(j.argv, ' ')), "
"	j.owner::pg_catalog.regrole, j.lease_owner, j.started_at, j.attempts, j.max_attempts, "
"	j.executor_token IS NOT NULL "
"FROM jq.job j "
"WHERE j.state = 'running' AND (j.owner OPERATOR(pg_catalog.=) $1 OR $2) "
"ORDER BY j.started_at, j.id";

/* its columns */
enum
{
	Anum_running_id = 1,
	Anum_running_queue,
	Anum_running_kind,
	Anum_running_command,
	Anum_running_owner,
	Anum_running_lease_owner,
	Anum_running_started_at,
	Anum_running_attempts,
	Anum_running_max_attempts,
	Anum_running_in_server
};

/* the columns of jq_running: those of the statement, the pid after owner */
#define RUNNING_COLS 12
#define RUNNING_VALUE(anum) ((anum) - 1 + ((anum) > Anum_running_owner))

PG_FUNCTION_INFO_V1(jq_running_jobs);

/*
 * jq_running_jobs(): the rows of jq_running.  The running jobs of the
 * current database the caller may see (its own, or all for members of
 * jq_admin), with the executor running each and its progress.
 */
Datum
jq_running_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			caller = GetUserId();
	static SPIPlanPtr plan = NULL;
	JqUserContext ctx;
	Datum		args[2];

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	jq_as_owner(&ctx);
	if (plan == NULL)
	{
		Oid			types[2] = {OIDOID, BOOLOID};

		plan = jq_prepare(progress_running_sql, 2, types);
	}
	args[0] = ObjectIdGetDatum(caller);
	args[1] = BoolGetDatum(jq_is_admin(caller));
	if (jq_execute_plan(plan, args, NULL, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list running jobs");
	jq_as_caller(&ctx);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		values[RUNNING_COLS];
		bool		nulls[RUNNING_COLS];
		bool		in_server;
		bool		isnull;
		int64		job_id;
		int32		attempts;
		pid_t		pid = 0;
		JqJobKind	kind;
		bool		is_shell = false;
		ProgressEntry p;
		ProgressKey key;
		ProgressEntry *e;
		bool		has_progress = false;

		for (int a = Anum_running_id; a <= Anum_running_max_attempts; a++)
			values[RUNNING_VALUE(a)] = SPI_getbinval(tup, desc, a, &nulls[RUNNING_VALUE(a)]);
		in_server = DatumGetBool(SPI_getbinval(tup, desc, Anum_running_in_server, &isnull));
		job_id = DatumGetInt64(values[RUNNING_VALUE(Anum_running_id)]);
		attempts = DatumGetInt32(values[RUNNING_VALUE(Anum_running_attempts)]);

		/* the executor running it, if in-server */
		if (in_server && jq_shared != NULL && jq_slot_running(job_id, &pid, &kind))
			is_shell = kind == JQ_KIND_SHELL;
		values[5] = Int32GetDatum(pid);
		nulls[5] = pid == 0;

		/* its progress in this attempt */
		memset(&key, 0, sizeof(key));
		key.dboid = MyDatabaseId;
		key.job_id = job_id;
		LWLockAcquire(progress_shared->lock, LW_SHARED);
		e = hash_search(progress_hash, &key, HASH_FIND, NULL);
		if (e != NULL && e->attempt == attempts)
		{
			p = *e;
			has_progress = true;
		}
		LWLockRelease(progress_shared->lock);
		if (is_shell)
			progress_newer_from_file(job_id, &p, &has_progress);
		nulls[10] = nulls[11] = !has_progress;
		if (has_progress)
		{
			values[10] = progress_jsonb(p.has_fraction, p.fraction, p.message, p.data);
			values[11] = TimestampTzGetDatum(p.at);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
