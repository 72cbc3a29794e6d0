/*-------------------------------------------------------------------------
 *
 * listen.c
 *	  The connection that LISTENs for new jobs when the control connection
 *	  cannot: --listen-dsn, for a --dsn that goes through a pooler in
 *	  transaction mode, where a LISTEN stays on whichever server connection
 *	  ran it and its notifications go to whichever client uses it next.
 *
 * It connects, calls jq_listen() and then only waits: a notification for
 * one of our queues makes the control connection claim (control.c).  Once
 * it is (again) listening a claim is asked for too, as notifications sent
 * while it was away are lost.  While it is down the worker goes on, and
 * looks for jobs every --recheck; it connects again after a backoff that
 * doubles from 0.5 s up to 30 s.
 *
 *-------------------------------------------------------------------------
 */
#include "jq_worker.h"

void
listen_init(Worker *w)
{
	conn_init(&w->listener);
	w->listener_reconnect_at = now_ms();
	w->listener_backoff_ms = BACKOFF_MIN_MS;
}

static bool
listen_enabled(const Worker *w)
{
	return w->opts.listen_dsn != NULL;
}

static void
listen_lost(Worker *w, int64 now)
{
	log_event(0, "listening connection failed: %s; connecting again in %.1f s",
			  w->listener.error, w->listener_backoff_ms / 1000.0);
	conn_close(&w->listener);
	w->listener_reconnect_at = now + w->listener_backoff_ms;
	w->listener_backoff_ms = Min(w->listener_backoff_ms * 2, BACKOFF_MAX_MS);
	w->listener_asked = false;
}

void
listen_step(Worker *w, int64 now)
{
	Conn	   *c = &w->listener;

	if (!listen_enabled(w))
		return;
	if (c->state == CONN_DOWN && now >= w->listener_reconnect_at)
	{
		conn_connect(c, w->opts.listen_dsn);
		if (c->state == CONN_DOWN)
			listen_lost(w, now);
	}
	if (c->state == CONN_READY && !c->busy && !w->listener_asked)
	{
		w->listener_asked = true;
		if (!conn_send(c, "SELECT jq_listen()", 0, NULL))
			listen_lost(w, now);
	}
}

void
listen_want(Worker *w, PollSet *ps)
{
	if (listen_enabled(w))
		conn_want(&w->listener, ps);
}

int64
listen_next_event(const Worker *w)
{
	if (listen_enabled(w) && w->listener.state == CONN_DOWN)
		return w->listener_reconnect_at;
	return NEVER;
}

void
listen_advance(Worker *w, const PollSet *ps, int64 now)
{
	PGresult   *res;

	if (!listen_enabled(w))
		return;
	switch (conn_advance(&w->listener, ps, &res))
	{
		case CONN_NOTHING:
		case CONN_CONNECTED:
			break;
		case CONN_RESULT:
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				conn_fail(&w->listener, PQresultErrorMessage(res));
				listen_lost(w, now);
				break;
			}
			log_event(0, "listening for new jobs on database \"%s\"", PQdb(w->listener.pg));
			w->listener_backoff_ms = BACKOFF_MIN_MS;
			w->claim_wanted = true;
			break;
		case CONN_FAILED:
			listen_lost(w, now);
			break;
	}
	PQclear(res);
	control_take_notifications(w, w->listener.pg);
}
