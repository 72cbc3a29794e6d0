"""python3 -m job_queue worker MODULE: run the Worker a module defines."""

import argparse
import importlib
import logging
import os
import sys

from .worker import Worker


def _parser():
    p = argparse.ArgumentParser(
        prog="python3 -m job_queue",
        description="Run the task jobs of a job_queue database with the handlers of an "
                    "application module.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser(
        "worker", help="run a worker",
        description="Import MODULE (for example app.jobs), take the job_queue.Worker it "
                    "defines (the attribute named by --attr) and run it until SIGTERM or "
                    "SIGINT. Options given here override the Worker's own.")
    w.add_argument("module", metavar="MODULE", help="module that defines the worker, "
                   "MODULE or MODULE:ATTRIBUTE")
    w.add_argument("--attr", default="worker",
                   help="name of the Worker in the module (default: worker)")
    w.add_argument("--dsn", default=os.environ.get("JQ_DSN"),
                   help="connection for claims and outcomes; may be a transaction-pooling "
                        "PgBouncer (default: $JQ_DSN, else the Worker's, else libpq's PG* "
                        "environment)")
    w.add_argument("--listen-dsn", default=os.environ.get("JQ_LISTEN_DSN"),
                   help="direct connection for LISTEN (default: $JQ_LISTEN_DSN, else --dsn)")
    w.add_argument("--no-listen", action="store_true",
                   help="no LISTEN: look for jobs every --poll-interval seconds")
    w.add_argument("-c", "--concurrency", type=int, help="jobs run at once (default 8)")
    w.add_argument("--prefetch", type=int,
                   help="jobs claimed ahead of the free handlers (default: 3 x concurrency)")
    w.add_argument("-q", "--queue", action="append", dest="queues", metavar="QUEUE",
                   help="take jobs of this queue (repeat for more; default: every queue)")
    w.add_argument("--lease", type=float, help="lease of a claimed job, seconds (default 60)")
    w.add_argument("--heartbeat", type=float,
                   help="seconds between heartbeats of running jobs (default: lease / 3)")
    w.add_argument("--grace", type=float,
                   help="seconds to finish running jobs after SIGTERM before they are given "
                        "back (default 30)")
    w.add_argument("--poll-interval", type=float,
                   help="seconds between looks for jobs without a notification "
                        "(default 60 with LISTEN, 1 without)")
    w.add_argument("--name", help="worker name kept as the jobs' lease_owner "
                                  "(default: host:pid)")
    w.add_argument("--log-level", default=os.environ.get("JQ_LOG_LEVEL", "warning"),
                   choices=["debug", "info", "warning", "error"],
                   help="info logs one line per job; warning (the default) only failures "
                        "and problems")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(message)s")
    module, _, attr = args.module.partition(":")
    sys.path.insert(0, os.getcwd())
    worker = getattr(importlib.import_module(module), attr or args.attr, None)
    if not isinstance(worker, Worker):
        sys.exit(f"{module} has no job_queue.Worker named {attr or args.attr}")
    for option in ("dsn", "listen_dsn", "concurrency", "prefetch", "queues", "lease", "heartbeat", "grace",
                   "poll_interval", "name"):
        value = getattr(args, option)
        if value is not None:
            setattr(worker, option, value)
    if args.no_listen:
        worker.listen = False
    worker.run()
    # handler threads that were abandoned (timeouts, lost leases) must not keep us alive
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
