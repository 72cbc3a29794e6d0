"""The benchmark's handlers in Python, for each system (test/bench/lang.sh):
noop does nothing; stamp(tag) appends "tag time" to $BENCH_STAMPS."""

import os
import time


def _stamp(tag):
    with open(os.environ["BENCH_STAMPS"], "a") as f:
        f.write(f"{tag} {time.time():.6f}\n")


SYSTEM = os.environ.get("BENCH_SYSTEM", "")

if SYSTEM == "jq-python":
    from job_queue import Worker

    worker = Worker()
    worker.task("noop")(lambda payload: None)
    worker.task("stamp")(lambda payload: _stamp(payload))

if SYSTEM == "celery":
    from celery import Celery

    app = Celery("py_jobs", broker=os.environ.get("BENCH_REDIS"))
    app.conf.task_ignore_result = True
    app.conf.worker_hijack_root_logger = False

    @app.task(name="noop")
    def noop():
        return None

    @app.task(name="stamp")
    def stamp(tag):
        _stamp(tag)


# RQ runs plain functions by their dotted name
def rq_noop():
    return None


def rq_stamp(tag):
    _stamp(tag)
