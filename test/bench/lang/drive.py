"""Benchmark driver for the Python systems: python3 drive.py SYSTEM

SYSTEM is jq-python, celery or rq.  Enqueues $BENCH_JOBS jobs (a stamp, the
no-ops, a stamp), starts the system's worker with $BENCH_CONCURRENCY, and
prints "drain <jobs/s>" from the first stamp to the last; then, the worker
idle, "latency <p50 ms> <p95 ms>" from the enqueue's return (the COMMIT's, for
job_queue) to the handler's start over $BENCH_LATENCY_JOBS jobs; then "idle
<statements or commands per minute>" over $BENCH_IDLE_SECONDS seconds.
"""

import os
import statistics
import subprocess
import sys
import time

SYSTEM = sys.argv[1]
JOBS = int(os.environ.get("BENCH_JOBS", "20000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
LATENCY_JOBS = int(os.environ.get("BENCH_LATENCY_JOBS", "50"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "20"))
STAMPS = os.environ["BENCH_STAMPS"]
DSN = os.environ.get("BENCH_DSN", "")
REDIS = os.environ.get("BENCH_REDIS", "")
HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["BENCH_SYSTEM"] = SYSTEM


def stamps():
    try:
        with open(STAMPS) as f:
            return dict(line.split() for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return {}


def wait_stamp(tag, timeout):
    end = time.time() + timeout
    while time.time() < end:
        s = stamps()
        if tag in s:
            return float(s[tag])
        time.sleep(0.0005)
    sys.exit(f"{SYSTEM}: no stamp {tag} after {timeout} s")


if SYSTEM == "jq-python":
    import psycopg

    conn = psycopg.connect(DSN, autocommit=True)

    def enqueue_drain():
        conn.execute("SELECT jq_enqueue('stamp', kind => 'task', payload => '\"first\"')")
        conn.execute("SELECT jq_enqueue_bulk(array_fill('noop'::text, ARRAY[%s]), kind => 'task')",
                     (JOBS - 2,))
        conn.execute("SELECT jq_enqueue('stamp', kind => 'task', payload => '\"last\"')")

    def enqueue_stamp(tag):
        conn.execute("SELECT jq_enqueue('stamp', kind => 'task', payload => %s::jsonb)",
                     (f'"{tag}"',))

    def idle_count():
        conn.execute("SELECT pg_stat_statements_reset()")
        time.sleep(IDLE_SECONDS)
        return int(conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                "WHERE query NOT LIKE '%pg_stat_statements%'").fetchone()[0])

    worker_cmd = [sys.executable, "-m", "job_queue", "worker", "py_jobs", "--dsn", DSN,
                  "-c", str(CONCURRENCY)]
else:
    import redis

    r = redis.Redis.from_url(REDIS)

    def idle_count():
        before = r.info("stats")["total_commands_processed"]
        time.sleep(IDLE_SECONDS)
        return r.info("stats")["total_commands_processed"] - before - 1

    if SYSTEM == "celery":
        sys.path.insert(0, HERE)
        import py_jobs

        def enqueue_drain():
            py_jobs.stamp.delay("first")
            with py_jobs.app.producer_or_acquire() as producer:
                for _ in range(JOBS - 2):
                    py_jobs.noop.apply_async(producer=producer)
            py_jobs.stamp.delay("last")

        def enqueue_stamp(tag):
            py_jobs.stamp.delay(tag)

        worker_cmd = [sys.executable, "-m", "celery", "-A", "py_jobs", "worker",
                      "--concurrency", str(CONCURRENCY), "--loglevel", "WARNING",
                      "--without-gossip", "--without-mingle", "--without-heartbeat"]
    elif SYSTEM == "rq":
        from rq import Queue

        q = Queue(connection=r)

        def enqueue_drain():
            q.enqueue("py_jobs.rq_stamp", "first")
            datas = [Queue.prepare_data("py_jobs.rq_noop") for _ in range(JOBS - 2)]
            for i in range(0, len(datas), 1000):
                q.enqueue_many(datas[i:i + 1000])
            q.enqueue("py_jobs.rq_stamp", "last")

        def enqueue_stamp(tag):
            q.enqueue("py_jobs.rq_stamp", tag)

        # RQ runs one job at a time per worker process
        worker_cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", REDIS, "--quiet"]
    else:
        sys.exit(f"unknown system {SYSTEM}")

enqueue_drain()
env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
copies = CONCURRENCY if SYSTEM == "rq" else 1
workers = [subprocess.Popen(worker_cmd, cwd=HERE, env=env, stdout=subprocess.DEVNULL)
           for _ in range(copies)]
try:
    first = wait_stamp("first", 120)
    last = wait_stamp("last", 1200)
    print(f"drain {(JOBS - 1) / (last - first):.0f}", flush=True)
    time.sleep(1)
    lat = []
    for i in range(LATENCY_JOBS):
        enqueue_stamp(f"l{i}")
        t0 = time.time()
        lat.append((wait_stamp(f"l{i}", 30) - t0) * 1000)
        time.sleep(0.05)
    lat.sort()
    print(f"latency {statistics.median(lat):.2f} {lat[int(len(lat) * 0.95) - 1]:.2f}", flush=True)
    time.sleep(1)
    print(f"idle {idle_count() * 60 / IDLE_SECONDS:.0f}", flush=True)
finally:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()
