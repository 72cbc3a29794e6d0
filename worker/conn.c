/*-------------------------------------------------------------------------
 *
 * conn.c
 *	  A libpq connection driven by jq_worker's poll() loop: connecting,
 *	  sending one query at a time and collecting its result never block.
 *
 * Each round the loop asks conn_want which socket event the connection
 * waits for, polls, then lets conn_advance move it on.  A failure closes
 * the connection and keeps libpq's message in error; what to do then
 * (reconnect later, fail the job) is the caller's business.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

/* Notices (from SQL jobs, mostly) are only worth a line with --verbose. */
static void
conn_notice(void *arg, const char *message)
{
	log_detail(0, "server notice: %s", message);
}

void
conn_init(Conn *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CONN_DOWN;
	c->pollidx = -1;
}

static void
conn_set_error(Conn *c, const char *message)
{
	size_t		len;

	pg_free(c->error);
	c->error = pg_strdup(message && *message ? message : "connection lost");
	/* libpq's messages end with a newline */
	len = strlen(c->error);
	while (len > 0 && isspace((unsigned char) c->error[len - 1]))
		c->error[--len] = '\0';
}

/* Close, with the reason kept in error. */
ConnEvent
conn_fail(Conn *c, const char *message)
{
	conn_set_error(c, message);
	conn_close(c);
	return CONN_FAILED;
}

/* Start connecting; the loop carries on with conn_want and conn_advance. */
void
conn_connect(Conn *c, const char *dsn)
{
	/* the dsn is expanded in place of dbname; the settings after it win */
	const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *const values[] = {dsn, "jq_worker", "UTF8", NULL};

	conn_close(c);
	c->pg = PQconnectStartParams(keys, values, 1);
	if (c->pg == NULL)
	{
		conn_set_error(c, "out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD)
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	PQsetNoticeProcessor(c->pg, conn_notice, NULL);
	c->state = CONN_CONNECTING;
	c->polling = PGRES_POLLING_WRITING;
}

void
conn_want(Conn *c, PollSet *ps)
{
	c->pollidx = -1;
	if (c->state == CONN_CONNECTING)
		c->pollidx = pollset_add(ps, PQsocket(c->pg),
								 c->polling == PGRES_POLLING_READING ? POLLIN : POLLOUT);
	else if (c->state == CONN_READY)
		c->pollidx = pollset_add(ps, PQsocket(c->pg),
								 POLLIN | (c->flushing ? POLLOUT : 0));
}

static ConnEvent
conn_flush(Conn *c)
{
	int			r = PQflush(c->pg);

	if (r < 0)
		return conn_fail(c, PQerrorMessage(c->pg));
	c->flushing = (r == 1);
	return CONN_NOTHING;
}

/*
 * Take the results libpq has: a query's outcome is its first error, or its
 * last result (a SQL job may run several statements).
 */
static ConnEvent
conn_collect(Conn *c, PGresult **result)
{
	while (c->busy && !PQisBusy(c->pg))
	{
		PGresult   *r = PQgetResult(c->pg);
		ExecStatusType status;

		if (r == NULL)
		{
			*result = c->result;
			c->result = NULL;
			c->busy = false;
			return CONN_RESULT;
		}
		status = PQresultStatus(r);
		if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH)
		{
			PQclear(r);
			return conn_fail(c, "COPY from or to the client is not supported in jobs");
		}
		if (c->result != NULL && PQresultStatus(c->result) == PGRES_FATAL_ERROR)
			PQclear(r);
		else
		{
			PQclear(c->result);
			c->result = r;
		}
	}
	return CONN_NOTHING;
}

/*
 * Move on after poll.  CONN_RESULT hands the finished query's result to the
 * caller, who clears it.
 */
ConnEvent
conn_advance(Conn *c, const PollSet *ps, PGresult **result)
{
	short		revents = (c->pollidx >= 0) ? ps->fds[c->pollidx].revents : 0;

	*result = NULL;
	if (revents == 0)
		return CONN_NOTHING;
	if (c->state == CONN_CONNECTING)
	{
		c->polling = PQconnectPoll(c->pg);
		if (c->polling == PGRES_POLLING_FAILED)
			return conn_fail(c, PQerrorMessage(c->pg));
		if (c->polling != PGRES_POLLING_OK)
			return CONN_NOTHING;
		if (PQsetnonblocking(c->pg, 1) != 0)
			return conn_fail(c, PQerrorMessage(c->pg));
		c->state = CONN_READY;
		return CONN_CONNECTED;
	}
	if (c->state != CONN_READY)
		return CONN_NOTHING;
	if ((revents & POLLOUT) && c->flushing && conn_flush(c) == CONN_FAILED)
		return CONN_FAILED;
	if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return CONN_NOTHING;
	if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD)
		return conn_fail(c, PQerrorMessage(c->pg));
	return conn_collect(c, result);
}

/*
 * Send a query: with parameters over the extended protocol, without them as
 * a simple query (which may hold several statements).  False if the
 * connection failed.
 */
bool
conn_send(Conn *c, const char *sql, int nparams, const char *const *values)
{
	int			ok;

	Assert(c->state == CONN_READY && !c->busy);
	if (nparams > 0)
		ok = PQsendQueryParams(c->pg, sql, nparams, NULL, values, NULL, NULL, 0);
	else
		ok = PQsendQuery(c->pg, sql);
	if (!ok)
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return false;
	}
	c->busy = true;
	return conn_flush(c) != CONN_FAILED;
}

void
conn_close(Conn *c)
{
	PQclear(c->result);
	c->result = NULL;
	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_DOWN;
	c->busy = false;
	c->flushing = false;
	c->pollidx = -1;
}

/* Is text from the server's database in UTF-8, like what the client sends? */
bool
conn_server_utf8(const Conn *c)
{
	const char *enc = c->pg ? PQparameterStatus(c->pg, "server_encoding") : NULL;

	return enc == NULL || strcmp(enc, "UTF8") == 0 || strcmp(enc, "SQL_ASCII") == 0;
}
