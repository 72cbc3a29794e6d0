/*-------------------------------------------------------------------------
 *
 * options.c
 *	  jq_worker's command line.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

#include <limits.h>
#include <unistd.h>

#include "getopt_long.h"

static const char *progname = "jq_worker";

static void
options_usage(void)
{
	printf("jq_worker takes jobs from a job_queue database and runs them.\n\n"
		   "Usage:\n"
		   "  %s [OPTION]...\n\n"
		   "Options:\n"
		   "  -d, --dsn=CONNINFO         database to connect to: a connection string or URI\n"
		   "                             (default: libpq's environment variables, PGHOST...)\n"
		   "  -q, --queue=NAME           take jobs from this queue; repeat for more\n"
		   "                             (default: every queue)\n"
		   "  -c, --concurrency=N        jobs run at once (default: 1); SQL jobs run in\n"
		   "                             up to N batches at once, each on a connection\n"
		   "      --batch-size=N         SQL jobs per batch, run and committed together\n"
		   "                             in one transaction (default: 64)\n"
		   "  -k, --kinds=LIST           kinds of jobs to take: shell, sql or shell,sql\n"
		   "                             (default: shell)\n"
		   "      --lease=SECONDS        lease of a claimed job, extended every third of it\n"
		   "                             while the job runs (default: 60)\n"
		   "      --output-limit=BYTES   output of a shell job kept per stream; a kB, MB\n"
		   "                             or GB suffix may follow (default: 64kB)\n"
		   "      --kill-grace=SECONDS   between SIGTERM and SIGKILL of a job that is\n"
		   "                             stopped (default: 5)\n"
		   "      --shutdown-grace=SECONDS  after SIGTERM, how long running jobs may\n"
		   "                             finish before they are stopped (default: 30)\n"
		   "      --recheck=SECONDS      longest wait for jobs without a notification;\n"
		   "                             the server's scheduler notifies when delayed\n"
		   "                             jobs and retries come due (default: 30)\n"
		   "      --name=NAME            lease owner shown in jq_jobs (default: host:pid)\n"
		   "      --listen-dsn=CONNINFO  LISTEN for new jobs on a connection of its own to\n"
		   "                             this database, for a --dsn through a pooler in\n"
		   "                             transaction mode (default: LISTEN over --dsn)\n"
		   "      --no-listen            do not LISTEN: look for jobs every --recheck\n"
		   "      --quiet                log only failures and connection events\n"
		   "  -v, --verbose              log every step (default: one line per job)\n"
		   "  -V, --version              print the version and exit\n"
		   "  -?, --help                 print this help and exit\n\n"
		   "A shell job gets JQ_JOB_ID, JQ_ATTEMPT, JQ_MAX_ATTEMPTS, JQ_QUEUE and, when it\n"
		   "has a payload, JQ_PAYLOAD in its environment.  A SQL job runs in the server\n"
		   "as the role that enqueued it (jq_run_sql_many), in one transaction with its\n"
		   "outcome and the other jobs of its batch.\n\n"
		   "SIGTERM or SIGINT: claim nothing more, let running jobs finish for the\n"
		   "shutdown grace, then stop them and give them back to the queue.  A second\n"
		   "signal kills the running jobs and exits at once.\n",
		   progname);
}

static void
options_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", progname);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", progname);
	exit(2);
}

/* A whole number from 1 to max. */
static int
options_int(const char *arg, const char *option, int max)
{
	char	   *end;
	long		n = strtol(arg, &end, 10);

	if (end == arg || *end != '\0' || n < 1 || n > max)
	{
		char	   *message = psprintf("invalid value for %s: \"%%s\" (1 to %d)", option, max);

		options_error(message, arg);
	}
	return (int) n;
}

/* A number of seconds, as milliseconds; a fraction is allowed. */
static int
options_seconds(const char *arg, const char *option, bool zero_ok)
{
	char	   *end;
	double		secs = strtod(arg, &end);

	if (end == arg || *end != '\0' || !(secs >= 0 && secs <= INT_MAX / 1000) ||
		(secs == 0 && !zero_ok))
		options_error("invalid value for %s: a positive number of seconds is expected", option);
	return (int) (secs * 1000);
}

/* A size in bytes, with an optional kB, MB or GB suffix. */
static size_t
options_bytes(const char *arg)
{
	static const struct
	{
		const char *suffix;
		double		factor;
	}			units[] = {{"", 1}, {"B", 1}, {"kB", 1024}, {"MB", 1024 * 1024},
	{"GB", 1024 * 1024 * 1024}};
	char	   *end;
	double		n = strtod(arg, &end);

	for (size_t i = 0; end != arg && i < lengthof(units); i++)
	{
		if (strcmp(end, units[i].suffix) == 0 && n >= 0 &&
			n * units[i].factor <= (double) (SIZE_MAX / 2))
			return (size_t) (n * units[i].factor);
	}
	options_error("invalid value for --output-limit: \"%s\"", arg);
	return 0;					/* keep compiler quiet */
}

/* Exit with message (a format with one %s) if dsn is not a connection string. */
static void
options_check_dsn(const char *dsn, const char *message)
{
	char	   *err = NULL;
	PQconninfoOption *parsed;

	if (dsn == NULL)
		return;
	parsed = PQconninfoParse(dsn, &err);
	if (parsed == NULL)
	{
		if (err != NULL)
			err[strcspn(err, "\n")] = '\0';
		options_error(message, err ? err : "out of memory");
	}
	PQconninfoFree(parsed);
}

static void
options_kinds(const char *arg, WorkerOptions *opts)
{
	char	   *list = pg_strdup(arg);
	char	   *save = NULL;

	opts->run_shell = opts->run_sql = false;
	for (char *kind = strtok_r(list, ",", &save); kind; kind = strtok_r(NULL, ",", &save))
	{
		if (strcmp(kind, "shell") == 0)
			opts->run_shell = true;
		else if (strcmp(kind, "sql") == 0)
			opts->run_sql = true;
		else
			options_error("unknown kind of job \"%s\": the kinds are shell and sql", kind);
	}
	if (!opts->run_shell && !opts->run_sql)
		options_error("no kind of job in --kinds=\"%s\"", arg);
	pg_free(list);
}

void
options_parse(int argc, char **argv, WorkerOptions *opts)
{
	enum
	{
		OPT_LEASE = 256,
		OPT_BATCH_SIZE,
		OPT_OUTPUT_LIMIT,
		OPT_KILL_GRACE,
		OPT_SHUTDOWN_GRACE,
		OPT_RECHECK,
		OPT_NAME,
		OPT_LISTEN_DSN,
		OPT_NO_LISTEN,
		OPT_QUIET,
		OPT_HELP
	};
	static const struct option long_options[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"queue", required_argument, NULL, 'q'},
		{"concurrency", required_argument, NULL, 'c'},
		{"kinds", required_argument, NULL, 'k'},
		{"lease", required_argument, NULL, OPT_LEASE},
		{"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
		{"output-limit", required_argument, NULL, OPT_OUTPUT_LIMIT},
		{"kill-grace", required_argument, NULL, OPT_KILL_GRACE},
		{"shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE},
		{"recheck", required_argument, NULL, OPT_RECHECK},
		{"name", required_argument, NULL, OPT_NAME},
		{"listen-dsn", required_argument, NULL, OPT_LISTEN_DSN},
		{"no-listen", no_argument, NULL, OPT_NO_LISTEN},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}
	};
	int			nqueues = 0;
	int			c;
	char		host[256];

	memset(opts, 0, sizeof(*opts));
	opts->run_shell = true;
	opts->concurrency = 1;
	opts->batch_size = 64;
	opts->lease_ms = 60 * 1000;
	opts->output_limit = 64 * 1024;
	opts->kill_grace_ms = 5 * 1000;
	opts->shutdown_grace_ms = 30 * 1000;
	opts->recheck_ms = 30 * 1000;
	opts->log_level = LOG_LEVEL_JOBS;
	opts->listen = true;

	/* -? cannot be told from an unknown option once getopt has seen it */
	if (argc > 1 && strcmp(argv[1], "-?") == 0)
	{
		options_usage();
		exit(0);
	}
	while ((c = getopt_long(argc, argv, "d:q:c:k:vV", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts->dsn = pg_strdup(optarg);
				break;
			case 'q':
				opts->queues = pg_realloc(opts->queues, (nqueues + 2) * sizeof(char *));
				opts->queues[nqueues++] = pg_strdup(optarg);
				opts->queues[nqueues] = NULL;
				break;
			case 'c':
				opts->concurrency = options_int(optarg, "--concurrency", 1024);
				break;
			case 'k':
				options_kinds(optarg, opts);
				break;
			case OPT_BATCH_SIZE:
				opts->batch_size = options_int(optarg, "--batch-size", 1000);
				break;
			case OPT_LEASE:
				opts->lease_ms = options_seconds(optarg, "--lease", false);
				break;
			case OPT_OUTPUT_LIMIT:
				opts->output_limit = options_bytes(optarg);
				break;
			case OPT_KILL_GRACE:
				opts->kill_grace_ms = options_seconds(optarg, "--kill-grace", true);
				break;
			case OPT_SHUTDOWN_GRACE:
				opts->shutdown_grace_ms = options_seconds(optarg, "--shutdown-grace", true);
				break;
			case OPT_RECHECK:
				opts->recheck_ms = options_seconds(optarg, "--recheck", false);
				break;
			case OPT_NAME:
				opts->name = pg_strdup(optarg);
				break;
			case OPT_LISTEN_DSN:
				opts->listen_dsn = pg_strdup(optarg);
				break;
			case OPT_NO_LISTEN:
				opts->listen = false;
				break;
			case OPT_QUIET:
				opts->log_level = LOG_LEVEL_QUIET;
				break;
			case 'v':
				opts->log_level = LOG_LEVEL_VERBOSE;
				break;
			case 'V':
				printf("jq_worker (job_queue) %s\n", JQ_WORKER_VERSION);
				exit(0);
			case OPT_HELP:
				options_usage();
				exit(0);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
				exit(2);
		}
	}
	if (optind < argc)
		options_error("unexpected argument \"%s\"", argv[optind]);
	options_check_dsn(opts->dsn, "invalid --dsn: %s");
	options_check_dsn(opts->listen_dsn, "invalid --listen-dsn: %s");
	if (opts->listen_dsn != NULL && !opts->listen)
		options_error("%s", "--listen-dsn and --no-listen cannot be used together");

	if (opts->name == NULL)
	{
		if (gethostname(host, sizeof(host)) != 0)
			strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		opts->name = psprintf("%s:%d", host, (int) getpid());
	}
}
