/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *	  jq_enqueue, jq_enqueue_shell and jq_enqueue_bulk: their arguments
 *	  checked, and the jobs inserted.
 *
 * They are written in C because they are the hot path: the caller is
 * noted (GetUserId()), the arguments checked here, and then, as the
 * extension owner, one statement inserts the jobs with the defaults of
 * their queue's row in jq.queue, if it has one, and checks its max_ready;
 * a job with a unique key, dependencies or a group takes the slower
 * jq._insert_job once checked here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "api.h"
#include "guc.h"
#include "internal_sql.h"
#include "job_queue.h"
#include "queue_settings.h"
#include "wakeup.h"

#define JQ_QUEUE_NAME_MAX	63
#define JQ_MAX_ATTEMPTS_MAX 1000

/* ---------------------------------------------------------------------
 * jq_enqueue and jq_enqueue_bulk
 * --------------------------------------------------------------------- */

/*
 * The arguments that say how to run the job(s), checked.  Zeroed first:
 * what is not given stays NULL; priority, max_attempts and timeout not
 * given (has_... false) take the queue's default, else the setting's.
 */
typedef struct EnqueueArgs
{
	Oid			owner;			/* the role the jobs run as */
	text	   *queue;
	int32		priority;
	bool		has_priority;
	TimestampTz run_at;
	int32		max_attempts;
	bool		has_max_attempts;
	Datum		timeout;		/* Interval, when has_timeout */
	bool		has_timeout;
	text	   *kind;
	JqJobKind	kind_id;
	/* shell jobs only: NULL when not given */
	ArrayType  *argv;
	Jsonb	   *env;
	text	   *working_dir;
	/* never for jq_enqueue_bulk */
	text	   *unique_key;
	ArrayType  *depends_on;		/* NULL when empty */
	text	   *on_dependency_failure;
	int64		group_id;		/* 0: none */
} EnqueueArgs;

static void
enqueue_check_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

static bool
enqueue_is_blank(text *t)
{
	char	   *p = VARDATA_ANY(t);
	char	   *end = p + VARSIZE_ANY_EXHDR(t);

	while (p < end && isspace((unsigned char) *p))
		p++;
	return p == end;
}

static void
enqueue_check_command(text *command)
{
	if (enqueue_is_blank(command))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job command must not be empty"),
				 errhint("Pass the SQL or the shell command line the job should run.")));
}

static void
enqueue_check_queue(text *queue)
{
	char	   *name = text_to_cstring(queue);
	size_t		len = strlen(name);
	bool		ok = len > 0 && len <= JQ_QUEUE_NAME_MAX;

	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = name[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':';
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid queue name \"%s\"", name),
				 errdetail("A queue name has 1 to %d characters, each a letter, a digit, \"_\", \"-\", \".\" or \":\".",
						   JQ_QUEUE_NAME_MAX)));
	pfree(name);
}

PG_FUNCTION_INFO_V1(jq_check_queue_name);

/* jq._check_queue_name(queue): for the internal functions that name queues. */
Datum
jq_check_queue_name(PG_FUNCTION_ARGS)
{
	enqueue_check_queue(PG_GETARG_TEXT_PP(0));
	PG_RETURN_VOID();
}

/*
 * Shell jobs run programs as the server's operating-system user: only roles
 * that may run server programs (COPY ... FROM PROGRAM) may enqueue them.
 * The executor checks again before it runs one.  A task job names a
 * handler of an application's worker, which claims it with jq_dequeue.
 */
static JqJobKind
enqueue_check_kind(text *kind, Oid owner)
{
	char	   *name = text_to_cstring(kind);
	JqJobKind	kind_id = JQ_KIND_SQL;

	if (strcmp(name, "shell") == 0)
	{
		if (!jq_may_run_shell(owner))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to enqueue shell jobs"),
					 errdetail("Only superusers and roles with privileges of the \"pg_execute_server_program\" role may enqueue shell jobs.")));
		kind_id = JQ_KIND_SHELL;
	}
	else if (strcmp(name, "task") == 0)
		kind_id = JQ_KIND_TASK;
	else if (strcmp(name, "sql") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown job kind \"%s\"", name),
				 errhint("The kinds of jobs are sql, shell and task.")));
	pfree(name);
	return kind_id;
}

/*
 * Read the arguments from queue on: queue, priority, run_at, max_attempts,
 * timeout, in that order from argument first.
 */
static void
enqueue_read_args(FunctionCallInfo fcinfo, int first, EnqueueArgs *args)
{
	enqueue_check_not_null(fcinfo, first, "queue");
	args->queue = PG_GETARG_TEXT_PP(first);
	enqueue_check_queue(args->queue);
	args->has_priority = !PG_ARGISNULL(first + 1);
	args->priority = args->has_priority ? PG_GETARG_INT32(first + 1) : 0;

	args->run_at = PG_ARGISNULL(first + 2) ? GetCurrentTransactionStartTimestamp()
		: PG_GETARG_TIMESTAMPTZ(first + 2);
	if (TIMESTAMP_NOT_FINITE(args->run_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run_at must be a finite timestamp")));

	args->has_max_attempts = !PG_ARGISNULL(first + 3);
	args->max_attempts = args->has_max_attempts ? PG_GETARG_INT32(first + 3) : 0;
	if (args->has_max_attempts &&
		(args->max_attempts < 1 || args->max_attempts > JQ_MAX_ATTEMPTS_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be between 1 and %d", JQ_MAX_ATTEMPTS_MAX),
				 errhint("Pass NULL to use the queue's default_max_attempts, else jq.default_max_attempts (%d).",
						 jq_default_max_attempts)));

	if (!PG_ARGISNULL(first + 4))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(first + 4);

		if (iv->month < 0 || iv->day < 0 || iv->time < 0 ||
			(iv->month == 0 && iv->day == 0 && iv->time == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be a positive interval"),
					 errhint("Pass NULL to use the queue's default_timeout, else jq.default_timeout.")));
		args->timeout = IntervalPGetDatum(iv);
		args->has_timeout = true;
	}
	else
		args->has_timeout = false;
}

/* The kind, from argument argno of jq_enqueue and jq_enqueue_bulk. */
static void
enqueue_read_kind(FunctionCallInfo fcinfo, int argno, EnqueueArgs *args)
{
	enqueue_check_not_null(fcinfo, argno, "kind");
	args->kind = PG_GETARG_TEXT_PP(argno);
	args->kind_id = enqueue_check_kind(args->kind, args->owner);
}

/* Job ids: a one-dimensional array without nulls. */
static void
enqueue_check_depends_on(ArrayType *ids)
{
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("depends_on must be a one-dimensional array")));
	if (array_contains_nulls(ids))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("depends_on must not contain nulls")));
}

/* unique_key, depends_on and on_dependency_failure, from argument argno on. */
static void
enqueue_read_links(FunctionCallInfo fcinfo, int argno, EnqueueArgs *args)
{
	char	   *policy;

	if (!PG_ARGISNULL(argno))
	{
		args->unique_key = PG_GETARG_TEXT_PP(argno);
		if (enqueue_is_blank(args->unique_key))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unique_key must not be empty"),
					 errhint("Pass NULL for a job without a unique key.")));
	}
	if (!PG_ARGISNULL(argno + 1))
	{
		ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(argno + 1);

		enqueue_check_depends_on(ids);
		if (ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) > 0)
			args->depends_on = ids;
	}
	enqueue_check_not_null(fcinfo, argno + 2, "on_dependency_failure");
	args->on_dependency_failure = PG_GETARG_TEXT_PP(argno + 2);
	policy = text_to_cstring(args->on_dependency_failure);
	if (strcmp(policy, "cancel") != 0 && strcmp(policy, "run") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown on_dependency_failure \"%s\"", policy),
				 errhint("With cancel, a job whose dependency fails or is cancelled is cancelled too; with run, it runs once all its dependencies have finished.")));
}

/* Whether the job(s) can take the plain insert: no unique key, dependency or group. */
static bool
enqueue_is_plain(EnqueueArgs *args)
{
	return args->unique_key == NULL && args->depends_on == NULL && args->group_id == 0;
}

/*
 * The arguments of jq._insert_job: the job's columns, the settings'
 * defaults, its links and whether its owner is an admin.  The plain insert
 * takes the first 12, then limited.
 */
#define INSERT_JOB_NARGS 19

static const Oid enqueue_types[INSERT_JOB_NARGS] = {TEXTOID, TEXTOID, JSONBOID, INT4OID,
	TIMESTAMPTZOID, INT4OID, INTERVALOID, OIDOID, TEXTOID, TEXTARRAYOID, JSONBOID, TEXTOID,
	INT4OID, INTERVALOID,
TEXTOID, INT8ARRAYOID, TEXTOID, INT8OID, BOOLOID};

/*
 * Insert plain jobs: $2 and $3 are a command and a payload, or arrays of
 * them for the bulk form (with payloads NULL, $3 is left out); the other
 * arguments are the jobs' columns, the queue's defaults already applied.
 */
#define PLAIN_NARGS 13

typedef enum PlainInsert
{
	PLAIN_ONE,
	PLAIN_BULK,
	PLAIN_BULK_NO_PAYLOADS
} PlainInsert;

static SPIPlanPtr
enqueue_plain_plan(PlainInsert form)
{
	static SPIPlanPtr plans[3];
	static const char *const rows[3] = {
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
		"SELECT $1, c.command, c.payload, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"
		" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
		"  WITH ORDINALITY AS c(command, payload, n)"
		" ORDER BY c.n",
		"SELECT $1, c.command, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"
		" FROM pg_catalog.unnest($2) WITH ORDINALITY AS c(command, n)"
		" ORDER BY c.n"
	};
	Oid			types[PLAIN_NARGS];

	if (plans[form])
		return plans[form];

	memcpy(types, enqueue_types, sizeof(types));
	if (form != PLAIN_ONE)
	{
		types[1] = TEXTARRAYOID;
		types[2] = get_array_type(JSONBOID);
	}
	types[12] = BOOLOID;
	plans[form] = jq_prepare(psprintf("INSERT INTO jq.job (queue, command, payload, priority,"
									  " run_at, max_attempts, timeout, owner, kind, argv, env,"
									  " working_dir, limited) %s RETURNING id",
									  rows[form]),
							 PLAIN_NARGS, types);
	return plans[form];
}

/*
 * Raise an error if adding n jobs to a queue would put more than max_ready
 * of its jobs in wait (jq._check_max_ready).
 */
static void
enqueue_check_max_ready(text *queue, int32 max_ready, int32 n)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];

	if (plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT4OID, INT4OID};

		plan = jq_prepare("SELECT jq._check_max_ready($1, $2, $3)", 3, types);
	}
	values[0] = PointerGetDatum(queue);
	values[1] = Int32GetDatum(max_ready);
	values[2] = Int32GetDatum(n);
	if (jq_execute_for_caller(plan, values, NULL, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not check the jobs waiting in a queue");
}

/*
 * Columns of what enqueue_insert inserted: the id (of each job), and for
 * jq._insert_job whether the job existed already.
 */
enum
{
	Anum_inserted_id = 1,
	Anum_inserted_existing
};

/* jq._insert_job: one job that is not plain; returns its id and whether it existed. */
static SPIPlanPtr
enqueue_job_plan(void)
{
	static SPIPlanPtr plan = NULL;

	if (plan == NULL)
		plan = jq_prepare("SELECT id, existing FROM jq._insert_job($1, $2, $3, $4, $5, $6,"
						  " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
						  INSERT_JOB_NARGS, (Oid *) enqueue_types);
	return plan;
}

/* Argument i of a plan: a pointer to a value, or NULL. */
static void
enqueue_set_arg(Datum *values, char *nulls, int i, void *value)
{
	values[i] = PointerGetDatum(value);
	nulls[i] = value ? ' ' : 'n';
}

/*
 * Run the insert as the extension owner, for the owner in args: one job, or
 * with ids (bulk), n jobs whose commands and payloads are arrays, their ids
 * gathered in ids.  A NULL command is an argv job's.
 */
static void
enqueue_insert(JqIds *ids, int32 n, Datum commands, bool commands_null, Datum payloads,
			   bool payloads_null, EnqueueArgs *args)
{
	Datum		values[INSERT_JOB_NARGS];
	char		nulls[INSERT_JOB_NARGS];
	Interval	default_timeout = {.time = (int64) jq_default_timeout_ms * 1000};
	Interval	queue_timeout;	/* a copy: the settings may be dropped meanwhile */
	bool		plain = enqueue_is_plain(args);
	JqUserContext ctx;
	int			ret;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = PointerGetDatum(args->queue);
	values[1] = commands;
	nulls[1] = commands_null ? 'n' : ' ';
	values[2] = payloads;
	nulls[2] = payloads_null ? 'n' : ' ';
	values[3] = Int32GetDatum(args->priority);
	nulls[3] = args->has_priority ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(args->run_at);
	values[5] = Int32GetDatum(args->max_attempts);
	nulls[5] = args->has_max_attempts ? ' ' : 'n';
	values[6] = args->timeout;
	nulls[6] = args->has_timeout ? ' ' : 'n';
	values[7] = ObjectIdGetDatum(args->owner);
	values[8] = PointerGetDatum(args->kind);
	enqueue_set_arg(values, nulls, 9, args->argv);
	enqueue_set_arg(values, nulls, 10, args->env);
	enqueue_set_arg(values, nulls, 11, args->working_dir);
	values[12] = Int32GetDatum(jq_default_max_attempts);
	values[13] = IntervalPGetDatum(&default_timeout);
	nulls[13] = jq_default_timeout_ms > 0 ? ' ' : 'n';

	jq_as_owner(&ctx);
	if (plain)
	{
		char	   *queue = text_to_cstring(args->queue);
		const JqQueueSettings *qs = jq_queue_settings(queue);

		/* what was not given: the queue's default, else the setting's */
		if (!args->has_priority)
		{
			values[3] = Int32GetDatum(qs->has_priority ? qs->default_priority : 0);
			nulls[3] = ' ';
		}
		if (!args->has_max_attempts)
		{
			values[5] = Int32GetDatum(qs->has_max_attempts ? qs->default_max_attempts
									  : jq_default_max_attempts);
			nulls[5] = ' ';
		}
		if (!args->has_timeout)
		{
			queue_timeout = qs->default_timeout;
			values[6] = qs->has_timeout ? IntervalPGetDatum(&queue_timeout) : values[13];
			nulls[6] = qs->has_timeout ? ' ' : nulls[13];
		}
		values[12] = BoolGetDatum(qs->limited);
		if (qs->max_ready > 0)
			enqueue_check_max_ready(args->queue, qs->max_ready, n);
		pfree(queue);
		ret = jq_execute_for_caller(enqueue_plain_plan(ids == NULL ? PLAIN_ONE :
											 payloads_null ? PLAIN_BULK_NO_PAYLOADS :
											 PLAIN_BULK),
						  values, nulls, ids);
	}
	else
	{
		enqueue_set_arg(values, nulls, 14, args->unique_key);
		enqueue_set_arg(values, nulls, 15, args->depends_on);
		enqueue_set_arg(values, nulls, 16, args->on_dependency_failure);
		values[17] = Int64GetDatum(args->group_id);
		nulls[17] = args->group_id ? ' ' : 'n';
		values[18] = BoolGetDatum(jq_is_admin(args->owner));
		ret = jq_execute_for_caller(enqueue_job_plan(), values, nulls, NULL);
	}
	jq_as_caller(&ctx);
	if (ret != (plain ? SPI_OK_INSERT_RETURNING : SPI_OK_SELECT))
		elog(ERROR, "could not insert job: %s", SPI_result_code_string(ret));

	jq_wake_at_commit_for(args->run_at, JQ_KIND_BIT(args->kind_id));
	jq_notify_enqueued(args->queue);
}

/*
 * Insert one job and return its id; or, when the owner has an active job
 * with its unique key, say so and return that job's id.
 */
static int64
enqueue_one(Datum command, bool command_null, Datum payload, bool payload_null,
			EnqueueArgs *args)
{
	bool		isnull;
	int64		id;

	SPI_connect();
	enqueue_insert(NULL, 1, command, command_null, payload, payload_null, args);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									 Anum_inserted_id, &isnull));
	if (!enqueue_is_plain(args) &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_inserted_existing, &isnull)))
		ereport(NOTICE,
				(errmsg("job %lld with unique key \"%s\" is already queued",
						(long long) id, text_to_cstring(args->unique_key)),
				 errdetail("No job was enqueued; the id of the queued job is returned.")));
	SPI_finish();
	return id;
}

PG_FUNCTION_INFO_V1(jq_enqueue);

/*
 * jq_enqueue(command, queue, priority, run_at, max_attempts, timeout,
 *			  payload, kind, unique_key, depends_on, on_dependency_failure)
 *			  returns bigint
 */
Datum
jq_enqueue(PG_FUNCTION_ARGS)
{
	EnqueueArgs args = {0};

	enqueue_check_not_null(fcinfo, 0, "command");
	enqueue_check_command(PG_GETARG_TEXT_PP(0));
	enqueue_read_args(fcinfo, 1, &args);
	args.owner = GetUserId();
	enqueue_read_kind(fcinfo, 7, &args);
	enqueue_read_links(fcinfo, 8, &args);

	PG_RETURN_INT64(enqueue_one(PG_GETARG_DATUM(0), false,
								PG_GETARG_DATUM(6), PG_ARGISNULL(6), &args));
}

/* A program and its arguments: a non-empty list of strings, the program not blank. */
static void
enqueue_check_argv(ArrayType *argv)
{
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;

	if (ARR_NDIM(argv) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argv must be a one-dimensional, non-empty array"),
				 errhint("Pass the program first, then its arguments: ARRAY['ls', '-l'].")));
	deconstruct_array(argv, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argv[%d] must not be null", i + 1)));
	}
	if (enqueue_is_blank(DatumGetTextPP(elems[0])))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argv[1], the program to run, must not be empty")));
}

/* Environment variables: a JSON object whose keys are names and whose values are strings. */
static void
enqueue_check_env(Jsonb *env)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(env))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("env must be a JSON object"),
				 errhint("Pass the variables as names and string values: '{\"LANG\": \"C\"}'.")));

	it = JsonbIteratorInit(&env->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *name = pnstrdup(v.val.string.val, v.val.string.len);
			bool		ok = v.val.string.len > 0 && !isdigit((unsigned char) name[0]);

			for (int i = 0; ok && i < v.val.string.len; i++)
				ok = isalnum((unsigned char) name[i]) || name[i] == '_';
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid environment variable name \"%s\"", name),
						 errdetail("A name has letters, digits and \"_\", and does not start with a digit.")));
		}
		else if (tok == WJB_VALUE && v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the values in env must be strings"),
					 errhint("Quote numbers and booleans: '{\"THREADS\": \"4\"}'.")));
	}
}

/*
 * Read and check a job given as jq_enqueue_shell takes it, from argument
 * first on: command, argv, env, working_dir, queue, priority, run_at,
 * max_attempts, timeout, payload, then, with links, unique_key, depends_on,
 * on_dependency_failure.  Only shell jobs may be given as argv, env and
 * working_dir.  args has its owner and its kind.
 */
static void
enqueue_read_job_args(FunctionCallInfo fcinfo, int first, bool links, EnqueueArgs *args)
{
	if (args->kind_id != JQ_KIND_SHELL)
	{
		enqueue_check_not_null(fcinfo, first, "command");
		if (!PG_ARGISNULL(first + 1) || !PG_ARGISNULL(first + 2) || !PG_ARGISNULL(first + 3))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argv, env and working_dir are only for shell jobs"),
					 errhint("Pass kind => 'shell' to run a program.")));
	}
	else if (PG_ARGISNULL(first) == PG_ARGISNULL(first + 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pass either command or argv"),
				 errhint("command is a command line run by /bin/sh -c; argv is a program and its arguments, run without a shell.")));
	if (!PG_ARGISNULL(first))
		enqueue_check_command(PG_GETARG_TEXT_PP(first));
	enqueue_read_args(fcinfo, first + 4, args);

	args->argv = PG_ARGISNULL(first + 1) ? NULL : PG_GETARG_ARRAYTYPE_P(first + 1);
	if (args->argv)
		enqueue_check_argv(args->argv);
	args->env = PG_ARGISNULL(first + 2) ? NULL : PG_GETARG_JSONB_P(first + 2);
	if (args->env)
		enqueue_check_env(args->env);
	args->working_dir = PG_ARGISNULL(first + 3) ? NULL : PG_GETARG_TEXT_PP(first + 3);
	if (args->working_dir && text_to_cstring(args->working_dir)[0] != '/')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("working_dir must be an absolute path")));
	if (links)
		enqueue_read_links(fcinfo, first + 10, args);
}

/* Enqueue the job read by enqueue_read_job_args from argument first on. */
static int64
enqueue_job_args(FunctionCallInfo fcinfo, int first, EnqueueArgs *args)
{
	return enqueue_one(PG_GETARG_DATUM(first), PG_ARGISNULL(first),
					   PG_GETARG_DATUM(first + 9), PG_ARGISNULL(first + 9), args);
}

PG_FUNCTION_INFO_V1(jq_enqueue_shell);

/*
 * jq_enqueue_shell(command, argv, env, working_dir, queue, priority, run_at,
 *					max_attempts, timeout, payload, unique_key, depends_on,
 *					on_dependency_failure) returns bigint
 */
Datum
jq_enqueue_shell(PG_FUNCTION_ARGS)
{
	EnqueueArgs args = {0};

	args.owner = GetUserId();
	args.kind = cstring_to_text("shell");
	args.kind_id = enqueue_check_kind(args.kind, args.owner);
	enqueue_read_job_args(fcinfo, 0, true, &args);
	PG_RETURN_INT64(enqueue_job_args(fcinfo, 0, &args));
}

PG_FUNCTION_INFO_V1(jq_enqueue_internal);

/*
 * jq._enqueue(owner, check_only, kind, group_id, command, argv, env,
 *			   working_dir, queue, priority, run_at, max_attempts, timeout,
 *			   payload, unique_key, depends_on, on_dependency_failure)
 *	  returns bigint
 *
 * For internal callers (jq._enqueue_group, schedules), which run as the
 * extension owner: the job is the given owner's, checked as if it had
 * called; with check_only it is only checked, and NULL returned.
 */
Datum
jq_enqueue_internal(PG_FUNCTION_ARGS)
{
	EnqueueArgs args = {0};

	enqueue_check_not_null(fcinfo, 0, "owner");
	args.owner = PG_GETARG_OID(0);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(args.owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", args.owner)));
	enqueue_read_kind(fcinfo, 2, &args);
	args.group_id = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	enqueue_read_job_args(fcinfo, 4, true, &args);

	if (PG_GETARG_BOOL(1))
		PG_RETURN_NULL();
	PG_RETURN_INT64(enqueue_job_args(fcinfo, 4, &args));
}

PG_FUNCTION_INFO_V1(jq_enqueue_bulk);

/*
 * jq_enqueue_bulk(commands[], queue, priority, run_at, max_attempts, timeout,
 *				   payloads[], kind) returns bigint[]
 */
Datum
jq_enqueue_bulk(PG_FUNCTION_ARGS)
{
	EnqueueArgs args = {0};
	ArrayType  *commands;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	JqIds		ids = {0};

	enqueue_check_not_null(fcinfo, 0, "commands");
	commands = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(commands) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("commands must be a one-dimensional array")));
	deconstruct_array(commands, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("commands[%d] must not be null", i + 1)));
		enqueue_check_command(DatumGetTextPP(elems[i]));
	}
	if (!PG_ARGISNULL(6))
	{
		ArrayType  *payloads = PG_GETARG_ARRAYTYPE_P(6);

		if (ARR_NDIM(payloads) > 1 ||
			ArrayGetNItems(ARR_NDIM(payloads), ARR_DIMS(payloads)) != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("payloads must have one element per command"),
					 errhint("Pass NULL for jobs without payload.")));
	}
	enqueue_read_args(fcinfo, 1, &args);
	args.owner = GetUserId();
	enqueue_read_kind(fcinfo, 7, &args);

	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));

	/* the ids outlive SPI_finish */
	ids.ids = palloc(sizeof(int64) * n);
	ids.max = n;
	SPI_connect();
	enqueue_insert(&ids, n, PG_GETARG_DATUM(0), false, PG_GETARG_DATUM(6), PG_ARGISNULL(6),
				   &args);
	SPI_finish();

	elems = palloc(sizeof(Datum) * ids.n);
	for (uint64 i = 0; i < ids.n; i++)
		elems[i] = Int64GetDatum(ids.ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, (int) ids.n, INT8OID, sizeof(int64),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(jq_raise);

/*
 * jq._raise(message, sqlstate, detail, hint): raise an error again with
 * another message (jq._enqueue_group names the job in it); an empty detail
 * or hint, as GET STACKED DIAGNOSTICS reports a missing one, is left out.
 */
Datum
jq_raise(PG_FUNCTION_ARGS)
{
	char	   *sqlstate = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *detail = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *hint = text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (strlen(sqlstate) != 5)
		elog(ERROR, "invalid SQLSTATE \"%s\"", sqlstate);
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
								   sqlstate[4])),
			 errmsg_internal("%s", text_to_cstring(PG_GETARG_TEXT_PP(0))),
			 detail[0] ? errdetail_internal("%s", detail) : 0,
			 hint[0] ? errhint("%s", hint) : 0));
	PG_RETURN_VOID();
}
