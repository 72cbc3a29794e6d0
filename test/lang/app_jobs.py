"""Handlers of the worker tests (test/perl/LangWorkerTest.pm), in Python.

Each run of a handler appends "event id attempt worker" lines to
$JQ_TEST_EVENTS, so the tests can count how often each job ran.
"""

import os
import time

from job_queue import Fatal, Worker

worker = Worker()
_events = os.environ["JQ_TEST_EVENTS"]


def _event(what, job):
    with open(_events, "a") as f:
        f.write(f"{what} {job.id} {job.attempt} {worker.name}\n")


@worker.task("add")
def add(payload):
    return payload["a"] + payload["b"]


@worker.task("boom")
def boom(payload, job):
    _event("run", job)
    raise ValueError(f"boom {payload}")


@worker.task("fatal")
def fatal(payload, job):
    _event("run", job)
    raise Fatal("no retry")


@worker.task("record")
def record(payload, job):
    _event("run", job)


@worker.task("sleep")
def sleep(payload, job):
    _event("start", job)
    end = time.monotonic() + payload["seconds"]
    while time.monotonic() < end:
        if job.cancelled.is_set():
            _event("cancelled", job)
            return None
        time.sleep(0.02)
    _event("end", job)
    return "slept"
