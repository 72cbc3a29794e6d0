"""Enqueue task jobs from the application's own connection.

The helpers run one statement on the connection (or cursor) they are given, so
the jobs commit or roll back with the caller's transaction.
"""

from psycopg import sql
from psycopg.types.json import Jsonb

# options of jq_enqueue a caller may pass by name, with the SQL type of each
_OPTIONS = {
    "queue": "text",
    "priority": "integer",
    "run_at": "timestamptz",
    "max_attempts": "integer",
    "timeout": "interval",
    "unique_key": "text",
    "depends_on": "bigint[]",
    "on_dependency_failure": "text",
}
_BULK_OPTIONS = ("queue", "priority", "run_at", "max_attempts", "timeout")


def _named_args(options, allowed):
    """SQL 'name => %s::type' fragments and their values, for options given."""
    parts = []
    values = []
    for name, value in options.items():
        if name not in allowed:
            raise TypeError(f"unknown option {name!r}")
        if value is None:
            continue
        parts.append(sql.SQL(", {} => %s::{}").format(sql.Identifier(name),
                                                      sql.SQL(_OPTIONS[name])))
        values.append(value)
    return sql.Composed(parts), values


def enqueue(conn, task, payload=None, **options):
    """Enqueue one task job in conn's current transaction; returns its id.

    task is the handler's name, payload its arguments (anything JSON can hold);
    options are those of jq_enqueue: queue, priority, run_at, max_attempts,
    timeout (an interval: a timedelta or a string such as '30 seconds'),
    unique_key, depends_on (job ids), on_dependency_failure.
    """
    named, values = _named_args(options, _OPTIONS)
    query = sql.SQL("SELECT jq_enqueue(%s::text, kind => 'task', payload => %s{})").format(named)
    cur = conn.execute(query, [task, None if payload is None else Jsonb(payload)] + values)
    return cur.fetchone()[0]


def enqueue_many(conn, task, payloads, **options):
    """Enqueue one task job per payload in one statement; returns their ids.

    options: queue, priority, run_at, max_attempts, timeout.
    """
    payloads = list(payloads)
    named, values = _named_args(options, _BULK_OPTIONS)
    query = sql.SQL("SELECT jq_enqueue_bulk(array_fill(%s::text, ARRAY[%s::integer]), "
                    "kind => 'task', payloads => %s::jsonb[]{})").format(named)
    cur = conn.execute(query, [task, len(payloads), [Jsonb(p) for p in payloads]] + values)
    return cur.fetchone()[0]
