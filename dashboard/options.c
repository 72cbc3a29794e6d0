/*-------------------------------------------------------------------------
 *
 * options.c
 *	  jq_dashboard's command line, and the basic auth password it reads
 *	  from a file or the environment (never from the command line, which
 *	  every local user can see in ps).
 *
 *-------------------------------------------------------------------------
 */
#include "jq_dashboard.h"

#include <limits.h>

#include "getopt_long.h"

static const char *progname = "jq_dashboard";

static void
options_usage(void)
{
	printf("jq_dashboard serves a live web page and Prometheus metrics of a job_queue\n"
		   "database.\n\n"
		   "Usage:\n"
		   "  %s [OPTION]...\n\n"
		   "Options:\n"
		   "  -d, --dsn=CONNINFO         database to connect to: a connection string or URI\n"
		   "                             (default: libpq's environment variables, PGHOST...);\n"
		   "                             the page shows and does what this role may\n"
		   "  -l, --listen=ADDRESS       numeric IPv4 or IPv6 address to listen on\n"
		   "                             (default: 127.0.0.1)\n"
		   "  -p, --port=PORT            TCP port (default: 9188; 0: any free port)\n"
		   "  -U, --user=NAME            require HTTP basic auth as NAME (default: the\n"
		   "                             environment variable JQ_DASHBOARD_USER, else none)\n"
		   "      --password-file=FILE   the password of --user: the first line of FILE\n"
		   "                             (default: the environment variable\n"
		   "                             JQ_DASHBOARD_PASSWORD)\n"
		   "      --refresh=SECONDS      query the database at most this often, for all\n"
		   "                             open pages together (default: 1)\n"
		   "  -V, --version              print the version and exit\n"
		   "  -?, --help                 print this help and exit\n\n"
		   "Pages are served at /, Prometheus metrics (SELECT jq_metrics()) at /metrics.\n"
		   "SIGTERM or SIGINT stops the program.\n",
		   progname);
}

/* A bad command line: say why, where help is, and exit with status 2. */
static void
pg_attribute_printf(1, 2)
options_error(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	fprintf(stderr, "%s: ", progname);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", progname);
	exit(2);
}

/* The first line of file path, without its newline. */
static char *
options_read_password(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[1024];

	if (f == NULL)
		options_error("could not open password file \"%s\"", path);
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return pg_strdup(line);
}

void
options_parse(int argc, char **argv, DashOptions *opts)
{
	static const struct option long_options[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"port", required_argument, NULL, 'p'},
		{"user", required_argument, NULL, 'U'},
		{"password-file", required_argument, NULL, 1},
		{"refresh", required_argument, NULL, 2},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, '?'},
		{NULL, 0, NULL, 0}
	};
	const char *password_file = NULL;
	const char *env;
	int			c;
	char	   *end;
	double		secs;
	long		port;

	memset(opts, 0, sizeof(*opts));
	opts->listen = "127.0.0.1";
	opts->port = 9188;
	opts->refresh_ms = 1000;
	env = getenv("JQ_DASHBOARD_USER");
	if (env && *env)
		opts->user = pg_strdup(env);

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0))
	{
		options_usage();
		exit(0);
	}

	while ((c = getopt_long(argc, argv, "d:l:p:U:V?", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts->dsn = pg_strdup(optarg);
				break;
			case 'l':
				opts->listen = pg_strdup(optarg);
				break;
			case 'p':
				port = strtol(optarg, &end, 10);
				if (end == optarg || *end != '\0' || port < 0 || port > 65535)
					options_error("invalid port \"%s\"", optarg);
				opts->port = (int) port;
				break;
			case 'U':
				opts->user = pg_strdup(optarg);
				break;
			case 1:
				password_file = optarg;
				break;
			case 2:
				secs = strtod(optarg, &end);
				if (end == optarg || *end != '\0' || !(secs >= 0.1 && secs <= 3600))
					options_error("invalid value for --refresh: \"%s\" (from 0.1 to 3600 seconds)", optarg);
				opts->refresh_ms = (int) (secs * 1000);
				break;
			case 'V':
				printf("jq_dashboard (job_queue) %s\n", JQ_DASHBOARD_VERSION);
				exit(0);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
				exit(2);
		}
	}
	if (optind < argc)
		options_error("too many command-line arguments (first is \"%s\")", argv[optind]);

	if (password_file)
		opts->password = options_read_password(password_file);
	else if ((env = getenv("JQ_DASHBOARD_PASSWORD")) != NULL)
		opts->password = pg_strdup(env);
	if (opts->user && (opts->password == NULL || opts->password[0] == '\0'))
		options_error("--user \"%s\" needs a password: give --password-file or set JQ_DASHBOARD_PASSWORD", opts->user);
	if (opts->user == NULL && opts->password)
		options_error("a password is given without --user");
}
