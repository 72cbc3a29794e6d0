"""Enqueue with the Python helpers (test/perl/LangWorkerTest.pm): python3 enqueue.py DSN"""

import sys

import psycopg

from job_queue import enqueue, enqueue_many

with psycopg.connect(sys.argv[1]) as conn:
    with conn.transaction():
        enqueue(conn, "add", {"a": 1, "b": 1}, queue="helpers", priority=3)
    with conn.transaction():
        enqueue(conn, "add", {"a": 5, "b": 5}, queue="helpers")
        raise psycopg.Rollback()
    with conn.transaction():
        enqueue_many(conn, "add", [{"a": 1, "b": 2}, {"a": 2, "b": 2}], queue="bulk")
