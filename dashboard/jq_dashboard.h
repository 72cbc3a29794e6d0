/*-------------------------------------------------------------------------
 *
 * jq_dashboard.h
 *	  Declarations shared by the files of jq_dashboard, the web dashboard
 *	  of job_queue: a client program that serves a live page and
 *	  Prometheus metrics over HTTP, reading one database through libpq.
 *
 * Two threads.  The main thread (jq_dashboard.c) parses the command line,
 * connects, starts the HTTP server and waits for SIGINT or SIGTERM.  The
 * HTTP server (http.c, libmicrohttpd) answers every request in its single
 * polling thread, which is also the only user of the database connection
 * (db.c): no lock is needed, and a page that many browsers watch costs
 * one query per refresh period, shared by all of them (the snapshot is
 * cached for that long).
 *
 *-------------------------------------------------------------------------
 */
#ifndef JQ_DASHBOARD_H
#define JQ_DASHBOARD_H

#include "postgres_fe.h"

#include "libpq-fe.h"
#include "pqexpbuffer.h"

/* command line (options.c) */
typedef struct DashOptions
{
	char	   *dsn;			/* NULL: libpq's environment variables */
	char	   *listen;			/* numeric IPv4 or IPv6 address */
	int			port;			/* 0: any free port */
	char	   *user;			/* basic auth; NULL: none */
	char	   *password;
	int			refresh_ms;		/* the snapshot is queried at most this often */
} DashOptions;

extern void options_parse(int argc, char **argv, DashOptions *opts);

/* log lines on stderr (jq_dashboard.c) */
extern void dash_log(const char *fmt,...) pg_attribute_printf(1, 2);

/*
 * The database (db.c).  Each call returns an HTTP status and fills body
 * with JSON (or, for db_metrics, Prometheus text): the answer on success,
 * {"error": "..."} otherwise.
 */
extern bool db_connect(const char *dsn, int refresh_ms);
extern void db_disconnect(void);
extern int	db_snapshot(double since, PQExpBuffer body);
extern int	db_job(const char *id, PQExpBuffer body);
extern int	db_action(const char *action, const char *id, PQExpBuffer body);
extern int	db_metrics(PQExpBuffer body);

/* the HTTP server (http.c) */
extern bool http_start(const DashOptions *opts);
extern void http_stop(void);

/* the page's files, embedded at build time (assets.c, made by embed.sh) */
typedef struct DashAsset
{
	const char *path;			/* URL path */
	const char *content_type;
	const unsigned char *data;
	size_t		size;
} DashAsset;

extern const DashAsset dash_assets[];
extern const int dash_asset_count;

#endif							/* JQ_DASHBOARD_H */
