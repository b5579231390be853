"""The Celery + Redis drain, for comparison with the engine's (issue 12).

Run by ``bench/engine_throughput.py --compare-celery`` with the Python of
the separate virtualenv that ``make bench-peers`` builds (Celery pins
versions that the project's own environment cannot share).  It can also be
run alone: ``.venv-peers/bin/python bench/celery_drain.py --jobs 6000``.

The measure mirrors the engine's drain: no-op tasks, results stored in
Redis (as the engine stores every result), a prefork worker of
``--concurrency`` processes, idle and ready.  The tasks are queued while
the worker does not consume; the clock runs from the moment it starts
consuming until every result is stored.  The worker's CPU time (its main
process and its pool processes) over the same span gives jobs per worker
CPU-second.  The last line of the output is ``RESULT <jobs/s> <jobs per
CPU-second>`` for the caller.

Redis must run on ``--redis`` (default 127.0.0.1:6379); the script uses
the database ``--db`` (default 15) and empties it first.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

#: The queue of the benchmark tasks, consumed only while measuring.
QUEUE = "bench"


def make_app(url):
    app = Celery("celery_drain", broker=url, backend=url)
    app.conf.update(task_default_queue=QUEUE, worker_prefetch_multiplier=4,
                    result_expires=3600, broker_connection_retry_on_startup=True)
    return app


options = argparse.Namespace(redis=os.environ.get("CELERY_DRAIN_REDIS", "127.0.0.1:6379"),
                             db=int(os.environ.get("CELERY_DRAIN_DB", "15")))
app = make_app(f"redis://{options.redis}/{options.db}")


@app.task(name="celery_drain.noop")  # the same name when run as __main__
def noop():
    return None


def cpu_seconds(pid):
    """User plus system CPU seconds of process ``pid`` and its children
    that are still alive (Linux)."""
    total = 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


def wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.parse_args(namespace=options)
    client = app.backend.client
    client.flushdb()
    environment = dict(os.environ, CELERY_DRAIN_REDIS=options.redis,
                       CELERY_DRAIN_DB=str(options.db))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_drain", "worker",
         "--pool", "prefork", "--concurrency", str(options.concurrency),
         "--queues", QUEUE, "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=Path(__file__).parent, env=environment)
    try:
        wait(lambda: app.control.ping(timeout=0.5), 60, "the Celery worker")
        app.control.cancel_consumer(QUEUE, reply=True)
        started = time.perf_counter()
        results = [noop.delay() for _ in range(options.jobs)]
        enqueued = options.jobs / (time.perf_counter() - started)
        keys = [app.backend.get_key_for_task(result.id) for result in results]
        cpu_before = cpu_seconds(worker.pid)
        started = time.perf_counter()
        app.control.add_consumer(QUEUE, reply=True)
        wait(lambda: client.exists(*keys) == len(keys), 600, "the results")
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker.pid) - cpu_before
    finally:
        worker.terminate()
        worker.wait(30)
    rate = options.jobs / elapsed
    print(f"Celery + Redis (prefork, concurrency {options.concurrency}, results stored):"
          f" enqueue {enqueued:.0f} jobs/s, drain {rate:.0f} jobs/s,"
          f" {options.jobs / cpu:.0f} jobs per worker CPU-second")
    print(f"RESULT {rate:.3f} {options.jobs / cpu:.3f}")


if __name__ == "__main__":
    main()
