/*-------------------------------------------------------------------------
 *
 * http.c
 *	  jq_dashboard's HTTP server (libmicrohttpd): routes, basic auth, and
 *	  the checks that keep other web sites out.
 *
 *	 GET  /                   the page (index.html, with this run's CSRF token)
 *	 GET  /app.js, /app.css   its script and style
 *	 GET  /api/snapshot?since=T   the queue now, and chart samples after T
 *	 GET  /api/job?id=N       a job's detail
 *	 POST /api/retry?id=N, /api/cancel?id=N   jq_retry, jq_cancel
 *	 GET  /metrics            Prometheus text (jq_metrics())
 *
 * Every request needs the basic auth user and password when they are set.
 * A browser sends those to the dashboard whatever page makes the request,
 * so a POST must also carry the CSRF token of the page (a random value
 * made at start, which another site cannot read) in the X-CSRF-Token
 * header, and come from the dashboard's own origin when the browser says.
 * Listening on a loopback address, the Host header must name a loopback
 * host too: a site whose name is made to resolve to 127.0.0.1 (DNS
 * rebinding) is refused.  Responses forbid framing, inline scripts and
 * caching.
 *
 * All requests are answered in libmicrohttpd's one internal thread, which
 * is what lets db.c use its connection without a lock.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_dashboard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define HTTP_TOKEN_BYTES 24
#define HTTP_TOKEN_MARK "@CSRF_TOKEN@"

static struct MHD_Daemon *http_daemon;
static const DashOptions *http_opts;
static bool http_loopback;		/* listening on a loopback address */
static char http_token[HTTP_TOKEN_BYTES * 2 + 1];
static char *http_index;		/* index.html with the token in it */
static size_t http_index_size;

/* Queue a response with the headers every answer carries. */
static enum MHD_Result
http_send(struct MHD_Connection *conn, unsigned int status, const char *content_type,
		  const void *data, size_t size, bool copy)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(size, (void *) data,
										   copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Content-Security-Policy",
							"default-src 'self'; img-src 'self' data:; "
							"frame-ancestors 'none'; form-action 'none'; base-uri 'none'");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
http_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
	return http_send(conn, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

/* Equal strings, compared in a time that does not tell where they differ. */
static bool
http_equal(const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);
	unsigned char diff = (la != lb);

	for (size_t i = 0; i < la && i < lb; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
	return diff == 0;
}

/*
 * The request carries the basic auth user and password.  libmicrohttpd
 * 0.9.77 replaced the functions of basic auth (the old ones are deprecated).
 */
static bool
http_authorized(struct MHD_Connection *conn)
{
	bool		ok;

	if (http_opts->user == NULL)
		return true;
#if MHD_VERSION >= 0x00097701
	{
		struct MHD_BasicAuthInfo *info = MHD_basic_auth_get_username_password3(conn);

		ok = info != NULL && info->username != NULL && info->password != NULL &&
			http_equal(info->username, http_opts->user) &
			http_equal(info->password, http_opts->password);
		if (info)
			MHD_free(info);
	}
#else
	{
		char	   *password = NULL;
		char	   *user = MHD_basic_auth_get_username_password(conn, &password);

		ok = user != NULL && password != NULL &&
			http_equal(user, http_opts->user) & http_equal(password, http_opts->password);
		if (user)
			MHD_free(user);
		if (password)
			MHD_free(password);
	}
#endif
	return ok;
}

/* The Host header names this machine's loopback interface. */
static bool
http_loopback_host(const char *host)
{
	char		name[256];
	size_t		len;
	struct in_addr addr;

	if (host == NULL)
		return false;
	/* [v6]:port, or name:port */
	if (host[0] == '[')
		len = strcspn(host, "]") + 1;
	else
		len = strcspn(host, ":");
	if (len >= sizeof(name))
		return false;
	memcpy(name, host, len);
	name[len] = '\0';
	if (strcmp(name, "localhost") == 0 || strcmp(name, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, name, &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

/* A POST made by the page: its token, and its origin if the browser names one. */
static bool
http_same_origin(struct MHD_Connection *conn)
{
	const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");

	if (token == NULL || !http_equal(token, http_token))
		return false;
	if (origin == NULL)
		return true;
	/* behind a TLS proxy that keeps the Host header, the origin is https */
	if (strncmp(origin, "http://", 7) == 0)
		origin += 7;
	else if (strncmp(origin, "https://", 8) == 0)
		origin += 8;
	else
		return false;
	return host != NULL && strcmp(origin, host) == 0;
}

/* The id argument when it is a job id (digits), else NULL. */
static const char *
http_job_id(struct MHD_Connection *conn)
{
	const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id");

	if (id == NULL || id[0] == '\0' || strlen(id) > 18 || strspn(id, "0123456789") != strlen(id))
		return NULL;
	return id;
}

static enum MHD_Result
http_json(struct MHD_Connection *conn, int status, PQExpBuffer body)
{
	return http_send(conn, status, "application/json; charset=utf-8", body->data, body->len, true);
}

static enum MHD_Result
http_get(struct MHD_Connection *conn, const char *url, PQExpBuffer body)
{
	if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
		return http_send(conn, 200, "text/html; charset=utf-8", http_index, http_index_size, false);
	if (strcmp(url, "/api/snapshot") == 0)
	{
		const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");

		return http_json(conn, db_snapshot(since ? strtod(since, NULL) : 0, body), body);
	}
	if (strcmp(url, "/api/job") == 0)
	{
		const char *id = http_job_id(conn);

		if (id == NULL)
			return http_text(conn, 400, "a job id (digits) is expected in ?id=\n");
		return http_json(conn, db_job(id, body), body);
	}
	if (strcmp(url, "/metrics") == 0)
	{
		int			status = db_metrics(body);

		return http_send(conn, status, "text/plain; version=0.0.4; charset=utf-8",
						 body->data, body->len, true);
	}
	for (int i = 0; i < dash_asset_count; i++)
	{
		if (strcmp(url, dash_assets[i].path) == 0)
			return http_send(conn, 200, dash_assets[i].content_type,
							 dash_assets[i].data, dash_assets[i].size, false);
	}
	return http_text(conn, 404, "not found\n");
}

static enum MHD_Result
http_post(struct MHD_Connection *conn, const char *url, PQExpBuffer body)
{
	const char *action;
	const char *id;
	int			status;

	if (strcmp(url, "/api/retry") == 0)
		action = "retry";
	else if (strcmp(url, "/api/cancel") == 0)
		action = "cancel";
	else
		return http_text(conn, 404, "not found\n");
	if (!http_same_origin(conn))
		return http_text(conn, 403, "this request does not come from the dashboard's page\n");
	id = http_job_id(conn);
	if (id == NULL)
		return http_text(conn, 400, "a job id (digits) is expected in ?id=\n");
	status = db_action(action, id, body);
	dash_log("job %s: %s: %d", id, action, status);
	return http_json(conn, status, body);
}

static enum MHD_Result
http_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			const char *version, const char *upload_data, size_t *upload_data_size,
			void **con_cls)
{
	static int	headers_seen;
	PQExpBufferData body;
	enum MHD_Result ret;

	/* the first call has the headers; a body, which no route takes, follows */
	if (*con_cls == NULL)
	{
		*con_cls = &headers_seen;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (http_loopback &&
		!http_loopback_host(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
		return http_text(conn, 403, "the Host header must name this machine's loopback address\n");
	if (!http_authorized(conn))
	{
		struct MHD_Response *resp;

		resp = MHD_create_response_from_buffer(strlen("authentication required\n"),
											   (void *) "authentication required\n",
											   MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
#if MHD_VERSION >= 0x00097701
		ret = MHD_queue_basic_auth_required_response3(conn, "job_queue dashboard", MHD_YES, resp);
#else
		ret = MHD_queue_basic_auth_fail_response(conn, "job_queue dashboard", resp);
#endif
		MHD_destroy_response(resp);
		return ret;
	}

	initPQExpBuffer(&body);
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
		ret = http_get(conn, url, &body);
	else if (strcmp(method, "POST") == 0)
		ret = http_post(conn, url, &body);
	else
		ret = http_text(conn, 405, "method not allowed\n");
	termPQExpBuffer(&body);
	return ret;
}

/* index.html with this run's token in place of its mark. */
static bool
http_make_index(void)
{
	const DashAsset *index = NULL;
	const char *mark;
	size_t		before;

	for (int i = 0; i < dash_asset_count; i++)
		if (strcmp(dash_assets[i].path, "/index.html") == 0)
			index = &dash_assets[i];
	if (index == NULL)
		return false;
	mark = strstr((const char *) index->data, HTTP_TOKEN_MARK);
	if (mark == NULL)
		return false;
	before = mark - (const char *) index->data;
	http_index_size = index->size - strlen(HTTP_TOKEN_MARK) + strlen(http_token);
	http_index = pg_malloc(http_index_size + 1);
	memcpy(http_index, index->data, before);
	memcpy(http_index + before, http_token, strlen(http_token));
	strcpy(http_index + before + strlen(http_token), mark + strlen(HTTP_TOKEN_MARK));
	return true;
}

static bool
http_make_token(void)
{
	uint8		bytes[HTTP_TOKEN_BYTES];

	if (getentropy(bytes, sizeof(bytes)) != 0)
		return false;
	for (int i = 0; i < HTTP_TOKEN_BYTES; i++)
		sprintf(http_token + 2 * i, "%02x", bytes[i]);
	return true;
}

bool
http_start(const DashOptions *opts)
{
	struct addrinfo hints = {0};
	struct addrinfo *ai;
	char		port[16];
	const union MHD_DaemonInfo *info;
	int			rc;

	http_opts = opts;
	if (!http_make_token() || !http_make_index())
	{
		dash_log("could not prepare the page");
		return false;
	}

	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", opts->port);
	rc = getaddrinfo(opts->listen, port, &hints, &ai);
	if (rc != 0)
	{
		dash_log("invalid listen address \"%s\": %s", opts->listen, gai_strerror(rc));
		return false;
	}
	if (ai->ai_family == AF_INET)
		http_loopback =
			(ntohl(((struct sockaddr_in *) ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
	else
		http_loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr);

	http_daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
								   (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
								   (uint16_t) opts->port, NULL, NULL, http_handle, NULL,
								   MHD_OPTION_SOCK_ADDR, ai->ai_addr,
								   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
								   MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
								   MHD_OPTION_END);
	freeaddrinfo(ai);
	if (http_daemon == NULL)
	{
		dash_log("could not listen on %s port %d", opts->listen, opts->port);
		return false;
	}
	info = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_BIND_PORT);
	dash_log("listening on http://%s%s%s:%d/%s",
			 strchr(opts->listen, ':') ? "[" : "", opts->listen,
			 strchr(opts->listen, ':') ? "]" : "",
			 info ? (int) info->port : opts->port,
			 opts->user ? " (basic auth)" : "");
	return true;
}

void
http_stop(void)
{
	if (http_daemon)
		MHD_stop_daemon(http_daemon);
	http_daemon = NULL;
}
