/*-------------------------------------------------------------------------
 *
 * log.c
 *	  jq_worker's log lines and its clock.
 *
 * One line per event on stderr, written at once so that the lines of
 * several workers sharing a file do not mix:
 *
 *	 2025-01-31 12:00:00.123 UTC jq_worker[4242]: job 17: claimed ...
 *
 * How much is said (--quiet, the default, --verbose): failures,
 * connections and shutdown always; a line per job that went well unless
 * --quiet; claims, starts and recorded outcomes only with --verbose.  So a
 * busy worker writes at most one line per job, and none with --quiet.
 *
 * Deadlines are kept in milliseconds of a monotonic clock, which jumps of
 * the wall clock do not move.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int			log_level = LOG_LEVEL_JOBS;

int64
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
log_line(int64 job_id, const char *fmt, va_list args)
{
	char		line[4096];
	struct timeval tv;
	struct tm	tm;
	size_t		len;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	len = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	len += snprintf(line + len, sizeof(line) - len, ".%03d ", (int) (tv.tv_usec / 1000));
	len += strftime(line + len, sizeof(line) - len, "%Z", &tm);
	len += snprintf(line + len, sizeof(line) - len, " jq_worker[%d]: ", (int) getpid());
	if (job_id != 0)
		len += snprintf(line + len, sizeof(line) - len, "job %lld: ", (long long) job_id);
	vsnprintf(line + len, sizeof(line) - len - 1, fmt, args);

	/* libpq's messages end with a newline, some have more: one line */
	for (size_t i = len, j = len;; i++)
	{
		if (line[i] == '\n' || line[i] == '\t')
		{
			if (j > 0 && line[j - 1] != ' ')
				line[j++] = ' ';
			continue;
		}
		line[j] = line[i];
		if (line[i] == '\0')
		{
			len = j;
			break;
		}
		j++;
	}
	while (len > 0 && line[len - 1] == ' ')
		len--;
	line[len++] = '\n';
	line[len] = '\0';
	fputs(line, stderr);
}

/* An event, for job job_id (0: none). */
void
log_event(int64 job_id, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	log_line(job_id, fmt, args);
	va_end(args);
}

/* The one line a job that went well gets, unless --quiet. */
void
log_job(int64 job_id, const char *fmt,...)
{
	va_list		args;

	if (log_level < LOG_LEVEL_JOBS)
		return;
	va_start(args, fmt);
	log_line(job_id, fmt, args);
	va_end(args);
}

/* More, with --verbose. */
void
log_detail(int64 job_id, const char *fmt,...)
{
	va_list		args;

	if (log_level < LOG_LEVEL_VERBOSE)
		return;
	va_start(args, fmt);
	log_line(job_id, fmt, args);
	va_end(args);
}
