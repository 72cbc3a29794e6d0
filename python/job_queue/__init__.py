"""job_queue for Python applications: enqueue task jobs from the application's
own transactions, and run them with its own functions in a Worker.

    from job_queue import Worker, enqueue

    worker = Worker("dbname=shop")

    @worker.task("send_receipt")
    def send_receipt(payload):
        ...
        return {"sent": True}

    with psycopg.connect("dbname=shop") as conn:
        enqueue(conn, "send_receipt", {"order": 42}, queue="mail")

Run it with `python3 -m job_queue worker app.jobs` (see --help).
"""

from .client import enqueue, enqueue_many
from .worker import Fatal, Job, Worker

__all__ = ["enqueue", "enqueue_many", "Fatal", "Job", "Worker"]
