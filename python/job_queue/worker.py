"""A worker that runs task jobs with the application's own functions.

One thread (the one that calls Worker.run) owns the database connections: it
claims task jobs with jq_dequeue for the names it has handlers for, hands them
to a pool of handler threads, records their outcomes (jq_complete, jq_fail) in
batches, keeps the leases of running jobs with jq_heartbeat, and sleeps on the
LISTEN connection's socket between claims.  Handler threads only run handlers.

Timeouts and cancellation: a thread cannot be stopped from outside, so a job
that runs past its timeout is failed (and retried as the job's rules say), a
job whose lease was lost (it was cancelled, or a heartbeat came too late) is
dropped, and in both cases job.cancelled is set for a handler that looks at it
and the thread is replaced by a new one; the old one ends when its handler
returns, and whatever the handler returns then is ignored.
"""

import inspect
import json
import logging
import os
import queue as queue_mod
import selectors
import signal
import socket
import threading
import time
import traceback

import psycopg
from psycopg.types.json import Jsonb

log = logging.getLogger("job_queue")

_DEQUEUE = """
SELECT d.id, d.queue, d.command, d.payload, d.attempt, d.max_attempts,
       extract(epoch FROM d.timeout)::float8
FROM jq_dequeue(queue => NULL, queues => %s::text[], kinds => ARRAY['task'],
                tasks => %s::text[], max_jobs => %s::integer, lease => %s::interval,
                worker => %s::text) d"""
_COMPLETE = """
SELECT c.id, true FROM unnest(jq_complete_many(%s::bigint[], %s::jsonb[], %s::integer[])) c(id)"""
_FAIL = """
SELECT c.id, jq_fail(c.id, c.error, c.retry, c.attempt, c.result)
FROM unnest(%s::bigint[], %s::text[], %s::boolean[], %s::integer[], %s::jsonb[])
     AS c(id, error, retry, attempt, result)"""
_HEARTBEAT = """
SELECT c.id, jq_heartbeat(c.id, %s::interval, c.attempt)
FROM unnest(%s::bigint[], %s::integer[]) AS c(id, attempt)"""
_RELEASE = """
SELECT c.id, jq_release(c.id, c.attempt)
FROM unnest(%s::bigint[], %s::integer[]) AS c(id, attempt)"""


class Fatal(Exception):
    """Raised by a handler: the job fails at once, without retries."""


class Job:
    """A claimed task job, as its handler sees it."""

    def __init__(self, row):
        (self.id, self.queue, self.task, self.payload, self.attempt, self.max_attempts,
         self.timeout) = row
        self.cancelled = threading.Event()   # set when the worker gave the job up
        self.started = None                  # time.monotonic() when its handler began
        self.duration = None                 # seconds its handler ran
        self.finished = False                # its handler returned (under Worker._lock)
        self.abandoned = False               # its thread was replaced (under Worker._lock)

    def __repr__(self):
        return f"<Job {self.id} {self.task} attempt {self.attempt}/{self.max_attempts}>"


class _Task:
    def __init__(self, name, fn, retry):
        self.name = name
        self.fn = fn
        self.retry = retry
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        self.takes_job = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def __call__(self, job):
        return self.fn(job.payload, job) if self.takes_job else self.fn(job.payload)


class Worker:
    """Runs the task jobs it has handlers for.

    dsn: the connection for claims and outcomes (it may go through a
    transaction-pooling PgBouncer); listen_dsn: a direct (session) connection
    for LISTEN, dsn when not given; listen=False: no LISTEN at all, the worker
    looks for jobs every poll_interval seconds.  concurrency handlers run at
    once; up to prefetch more jobs are claimed ahead (their lease runs, their
    timeout not yet), so that one claim and one commit serve many jobs.
    """

    def __init__(self, dsn="", *, listen_dsn=None, listen=True, concurrency=8, prefetch=None,
                 queues=None, lease=60.0, heartbeat=None, grace=30.0, poll_interval=None,
                 name=None):
        self.dsn = dsn
        self.listen_dsn = listen_dsn
        self.listen = listen
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.queues = list(queues) if queues else None
        self.lease = lease
        self.heartbeat = heartbeat
        self.grace = grace
        self.poll_interval = poll_interval
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.tasks = {}
        self._lock = threading.Lock()
        self._stop_at = None

    def task(self, name, *, retry=True):
        """Register the decorated function as the handler of task jobs called name.

        It is called with the job's payload, and with the Job as well when it
        takes two arguments; what it returns (anything JSON can hold) is the
        job's result.  An exception fails the attempt: the job is retried while
        attempts remain, unless retry is False or the exception is Fatal.
        """
        def register(fn):
            self.tasks[name] = _Task(name, fn, retry)
            return fn
        return register

    def stop(self, grace=None):
        """Stop claiming; finish running jobs within grace seconds, then give them back."""
        self._stop_at = time.monotonic() + (self.grace if grace is None else grace)
        self._wake()

    # --- the handler threads -------------------------------------------

    def _start_thread(self):
        threading.Thread(target=self._thread_main, daemon=True,
                         name="job_queue handler").start()

    def _thread_main(self):
        while True:
            job = self._todo.get()
            if job is None:
                return
            with self._lock:
                if job.cancelled.is_set():      # given back before it started
                    continue
                job.started = time.monotonic()
            outcome = self._run_handler(job)
            job.duration = time.monotonic() - job.started
            with self._lock:
                job.finished = True
                abandoned = job.abandoned
            if abandoned:
                return
            self._done.put((job, outcome))
            self._wake()

    def _run_handler(self, job):
        try:
            result = self.tasks[job.task](job)
            return ("complete", json.dumps(result))
        except BaseException as e:  # noqa: B902 - a handler must never end its thread
            retry = self.tasks[job.task].retry and not isinstance(e, Fatal)
            kind = type(e).__qualname__
            trace = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            return ("fail", f"{kind}: {e}\n{trace}", retry,
                    {"type": kind, "message": str(e), "traceback": trace})

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, AttributeError):
            pass

    # --- the main loop -------------------------------------------------

    def run(self):
        """Run until stop() or SIGTERM/SIGINT, then return."""
        if not self.tasks:
            raise ValueError("the worker has no task handlers")
        self._todo = queue_mod.SimpleQueue()
        self._done = queue_mod.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        for _ in range(self.concurrency):
            self._start_thread()
        heartbeat = self.heartbeat or self.lease / 3
        prefetch = 3 * self.concurrency if self.prefetch is None else self.prefetch
        poll = self.poll_interval or (60.0 if self.listen else 1.0)
        running = {}                # job id -> Job
        done = []                   # (job, outcome) not yet recorded
        conn = listen = None
        want_claim = True
        next_poll = next_heartbeat = 0.0
        failures = 0
        log.info("worker %s: %d at once, tasks %s, queues %s", self.name, self.concurrency,
                 ", ".join(sorted(self.tasks)), ", ".join(self.queues or ["all"]))
        try:
            while True:
                now = time.monotonic()
                stopping = self._stop_at is not None
                while True:
                    try:
                        job, outcome = self._done.get_nowait()
                    except queue_mod.Empty:
                        break
                    if running.pop(job.id, None) is not None:
                        done.append((job, outcome))
                if stopping and not running and not done:
                    break
                try:
                    if conn is None:
                        conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
                    if listen is None and self.listen:
                        listen = psycopg.connect(self.listen_dsn or self.dsn, autocommit=True)
                        listen.execute("SELECT jq_listen()")
                        want_claim = True
                    if stopping:
                        # what has not started goes back at once, the rest after the grace
                        self._release(conn, running, now >= self._stop_at)
                    # claim when no more than concurrency jobs are left in hand
                    free = 0 if stopping or len(running) > self.concurrency else \
                        self.concurrency + prefetch - len(running)
                    if want_claim and free > 0 or done:
                        claimed = self._record_and_claim(conn, done, free if want_claim else 0)
                        done = []
                        if claimed and not running:
                            next_heartbeat = now + heartbeat
                        for job in claimed:
                            running[job.id] = job
                            self._todo.put(job)
                        if want_claim:
                            want_claim = len(claimed) == free
                            next_poll = now + poll
                    if running and now >= next_heartbeat:
                        self._heartbeat(conn, running, heartbeat)
                        next_heartbeat = now + heartbeat
                    failures = 0
                except psycopg.OperationalError as e:
                    failures += 1
                    log.error("database connection lost: %s", str(e).strip())
                    for c in (conn, listen):
                        if c is not None:
                            c.close()
                    conn = listen = None
                    time.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                    continue
                self._check_timeouts(running, done)
                if stopping and not running and not done:
                    continue

                # sleep until a job ends, a notification, the next heartbeat or poll
                wait = next_poll - time.monotonic()
                if running:
                    wait = min(wait, next_heartbeat - time.monotonic(),
                               self._next_timeout(running) - time.monotonic())
                if stopping:
                    wait = min(wait, self._stop_at - time.monotonic())
                if done or (want_claim and not stopping and len(running) <= self.concurrency):
                    wait = 0
                if self._sleep(listen, max(wait, 0)):
                    want_claim = True
                if time.monotonic() >= next_poll:
                    want_claim = True
        finally:
            for _ in range(self.concurrency):
                self._todo.put(None)
            for c in (conn, listen):
                if c is not None:
                    c.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            log.info("worker %s stopped", self.name)

    def _on_signal(self, signum, frame):
        if self._stop_at is None:
            log.info("worker %s: %s, stopping (grace %g s)", self.name,
                     signal.Signals(signum).name, self.grace)
            self.stop()
        else:
            self.stop(0)

    def _sleep(self, listen, wait):
        """Wait up to wait seconds; returns whether a notification came."""
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            if listen is not None:
                sel.register(listen.pgconn.socket, selectors.EVENT_READ)
            sel.select(wait)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        if listen is None:
            return False
        listen.pgconn.consume_input()
        notified = False
        while listen.pgconn.notifies() is not None:
            notified = True
        if listen.pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the LISTEN connection was closed")
        return notified

    # --- statements ----------------------------------------------------

    def _record_and_claim(self, conn, done, free):
        """Record the outcomes of done and claim up to free jobs: one transaction, sent
        as one query (one round trip).  A transaction that only claims does not wait
        for its commit to be flushed: lost in a crash of the server, the claim is
        undone, and the job is run again, as with any lost lease."""
        completed = [(j, o) for j, o in done if o[0] == "complete"]
        failed = [(j, o) for j, o in done if o[0] == "fail"]
        statements = ["BEGIN"]
        params = []
        if not done:
            statements.append("SET LOCAL synchronous_commit = off")
        if completed:
            statements.append(_COMPLETE)
            params += [[j.id for j, _ in completed], [o[1] for _, o in completed],
                       [j.attempt for j, _ in completed]]
        if failed:
            statements.append(_FAIL)
            params += [[j.id for j, _ in failed], [o[1] for _, o in failed],
                       [o[2] for _, o in failed], [j.attempt for j, _ in failed],
                       [Jsonb(o[3]) for _, o in failed]]
        if free > 0:
            statements.append(_DEQUEUE)
            params += [self.queues, list(self.tasks), free, f"{self.lease} seconds", self.name]
        statements.append("COMMIT")
        cur = psycopg.ClientCursor(conn)
        try:
            cur.execute(";".join(statements), params)
        except psycopg.Error:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                conn.execute("ROLLBACK")
            raise
        results = []
        while True:
            if cur.description is not None:
                results.append(cur.fetchall())
            if not cur.nextset():
                break
        if completed:
            self._log_outcomes(results.pop(0), completed)
        if failed:
            self._log_outcomes(results.pop(0), failed)
        return [Job(row) for row in results.pop(0)] if free > 0 else []

    def _log_outcomes(self, rows, outcomes):
        held = dict(rows)
        for job, outcome in outcomes:
            ms = (job.duration or 0) * 1000
            if not held.get(job.id):
                log.warning("job %d %s: no longer held (cancelled or lease expired), "
                            "outcome dropped", job.id, job.task)
            elif outcome[0] == "complete":
                log.info("job %d %s succeeded in %.1f ms", job.id, job.task, ms)
            else:
                again = outcome[2] and job.attempt < job.max_attempts
                log.warning("job %d %s failed (attempt %d of %d%s): %s", job.id, job.task,
                            job.attempt, job.max_attempts, ", will retry" if again else "",
                            outcome[1].split("\n", 1)[0])

    def _heartbeat(self, conn, running, heartbeat):
        jobs = list(running.values())
        cur = conn.execute(_HEARTBEAT, (f"{self.lease} seconds", [j.id for j in jobs],
                                        [j.attempt for j in jobs]))
        for job_id, expires in cur.fetchall():
            if expires is None and job_id in running:
                job = running.pop(job_id)
                log.warning("job %d %s: cancelled or lease lost, handler abandoned",
                            job.id, job.task)
                self._abandon(job)

    def _release(self, conn, running, started_too):
        """Give back the jobs not started, and the running ones too if started_too."""
        jobs = []
        for job in list(running.values()):
            with self._lock:
                if job.started is None:
                    job.cancelled.set()
                elif not started_too:
                    continue
            del running[job.id]
            self._abandon(job)
            jobs.append(job)
        if jobs:
            conn.execute(_RELEASE, ([j.id for j in jobs], [j.attempt for j in jobs]))
            log.info("worker %s: %d job(s) given back", self.name, len(jobs))

    def _abandon(self, job):
        """Give up on job's handler: a new thread takes its thread's place."""
        with self._lock:
            job.cancelled.set()
            if job.finished or job.started is None:
                return
            job.abandoned = True
        self._start_thread()

    def _next_timeout(self, running):
        ends = [j.started + j.timeout for j in running.values()
                if j.timeout and j.started is not None]
        return min(ends, default=float("inf"))

    def _check_timeouts(self, running, done):
        now = time.monotonic()
        for job in [j for j in running.values()
                    if j.timeout and j.started is not None and now >= j.started + j.timeout]:
            del running[job.id]
            self._abandon(job)
            message = f"job exceeded its timeout of {int(job.timeout * 1000)} ms"
            done.append((job, ("fail", message, True,
                               {"type": "Timeout", "message": message, "traceback": None})))
