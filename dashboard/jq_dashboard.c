/*-------------------------------------------------------------------------
 *
 * jq_dashboard.c
 *	  jq_dashboard's main: read the command line, connect, serve until
 *	  SIGINT or SIGTERM.
 *
 * The signals are blocked before the HTTP server's thread starts, so that
 * only the main thread takes them, in sigwait.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_dashboard.h"

#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* One line per event on stderr, with the time and the program's pid. */
void
dash_log(const char *fmt,...)
{
	char		line[2048];
	struct timeval tv;
	struct tm	tm;
	size_t		len;
	va_list		args;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	len = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S %Z", &tm);
	len += snprintf(line + len, sizeof(line) - len, " jq_dashboard[%d]: ", (int) getpid());
	va_start(args, fmt);
	vsnprintf(line + len, sizeof(line) - len - 1, fmt, args);
	va_end(args);
	/* libpq's messages end with a newline */
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';
	line[len] = '\0';
	fputs(line, stderr);
}

int
main(int argc, char **argv)
{
	DashOptions opts;
	sigset_t	stop;
	int			sig;

	options_parse(argc, argv, &opts);

	/* a closed connection is an error of the call, not the end of the program */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	/* a database that is down at start is tried again by each request */
	db_connect(opts.dsn, opts.refresh_ms);
	if (!http_start(&opts))
		exit(1);

	sigwait(&stop, &sig);
	dash_log("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	http_stop();
	db_disconnect();
	return 0;
}
