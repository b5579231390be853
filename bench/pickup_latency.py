"""Pickup latency: how soon an idle worker starts a queued job.

Everything is measured in one run on this machine.  Worker processes are
idle and ready; the benchmark queues one job at a time, after a random
gap, and waits until it completed.  The job is ``time.time``: its result
is the moment it started, so

* latency = the job's start minus the end of the queuing commit;
* lateness (jobs queued with ``begin_after`` 0.1-0.6 s ahead) = the
  job's start minus its due time.

Cases: ZEO with push (the default settings, including the default poll
interval), ZEO with push disabled (poll only, same settings), RelStorage
on PostgreSQL with push (skipped when no server listens on
127.0.0.1:5432); 1 and 2 worker processes (4 too, for the claim conflicts
per job); the lateness of scheduled jobs.  Then what an idle worker costs
per hour, in commits and CPU seconds, with push and the default poll
interval, and poll-only at the earlier defaults (1 s in base.cfg, 2 s in
the Plone worker settings, 5 s in the engine).

Targets of the pickup issue on this machine: ZEO p50 <= 5 ms and p99 <=
20 ms; RelStorage p50 <= 10 ms; scheduled jobs p99 <= 20 ms late; claim
conflicts < 0.05 per job with 2 and 4 workers.

Usage: python bench/pickup_latency.py [--samples 100] [--poll-samples 100]
       [--idle-seconds 60]
"""
import argparse
import collections
import os
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import transaction

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.dispatcher import POLL_INTERVAL
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.pickups import percentiles
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer


#: Seconds between a job's completion and the next one's queuing.
GAP = (0.02, 0.25)
#: How far ahead scheduled jobs are due (seconds).
AHEAD = (0.1, 0.6)
#: Seconds between two looks of the benchmark at the job it waits for.
WATCH_INTERVAL = 0.002


def measure(db, samples, scheduled=False):
    """Queue ``samples`` jobs one at a time; return their latencies (or
    lateness) in milliseconds."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    queue = configure.get_queue(connection)
    found = []
    for _ in range(samples):
        time.sleep(random.uniform(*GAP))
        due = utcnow() + timedelta(seconds=random.uniform(*AHEAD)) if scheduled else None
        job = queue.put(Job(time.time), begin_after=due)
        manager.commit()
        committed = time.time()
        wait_until(lambda: job.status == COMPLETED, seconds=120, interval=WATCH_INTERVAL,
                   sync=manager.begin, describe=lambda: f"for {job!r} to complete")
        found.append(1000 * (job.result - (due.timestamp() if scheduled else committed)))
    connection.close()
    return found


def run_case(directory, storage_config, db, label, workers, samples, scheduled=False,
             **worker_options):
    name = "".join(c if c.isalnum() else "-" for c in label)
    processes = [WorkerProcess(directory, storage_config, f"{name}-{n}-of-{workers}",
                               poll_interval=POLL_INTERVAL, **worker_options).start()
                 for n in range(workers)]
    try:
        time.sleep(1)  # let every worker reach its wait
        values = measure(db, samples, scheduled)
    finally:
        for process in processes:
            process.stop()
    statistics = collections.Counter()
    for process in processes:
        statistics.update(process.statistics())
    report(label, workers, values, statistics, samples)


def report(label, workers, values, statistics, samples):
    summary = percentiles(values)
    print(f"{label:<34} {workers} worker(s) {len(values):4d} samples  "
          + "  ".join(f"{key} {summary[key]:8.1f}" for key in ("p50", "p90", "p99", "max"))
          + f"  ms   claim conflicts/job {statistics['claim conflicts'] / samples:.3f}"
          f"  empty claims/job {statistics['empty claims'] / samples:.2f}", flush=True)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def transactions_since(storage, tid):
    return sum(1 for _ in storage.iterator(start=tid)) - 1


def idle_cost(directory, storage_config, db, label, seconds, **worker_options):
    name = "".join(c if c.isalnum() else "-" for c in label)
    worker = WorkerProcess(directory, storage_config, f"idle-{name}", **worker_options).start()
    try:
        time.sleep(2)
        cpu_before = cpu_seconds(worker.pid)
        tid = db.lastTransaction()
        time.sleep(seconds)
        cpu = cpu_seconds(worker.pid) - cpu_before
        commits = transactions_since(db.storage, tid)
    finally:
        worker.stop()
    statistics = worker.statistics()
    per_hour = 3600 / seconds
    print(f"idle worker, {label:<32} {commits * per_hour:7.0f} commits/h"
          f"  {cpu * per_hour:7.1f} CPU s/h  (empty claims in {seconds} s: "
          f"{statistics.get('empty claims', 0)})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--poll-samples", type=int, default=100,
                        help="samples of the poll-only case (each waits for a poll)")
    parser.add_argument("--idle-seconds", type=float, default=60)
    options = parser.parse_args()
    samples = options.samples
    print(f"load average at start: {os.getloadavg()}; default poll interval {POLL_INTERVAL} s",
          flush=True)
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        server = ZEOServer(directory / "zeo")
        server.start()
        db = server.db()
        config = server.client_storage_config()
        workers = directory / "workers"
        try:
            configure.install_queues(db)
            for count in (1, 2, 4):
                run_case(workers, config, db, "ZEO, push", count, samples)
            for count in (1, 2):
                run_case(workers, config, db, "ZEO, scheduled, lateness", count, samples,
                         scheduled=True)
            run_case(workers, config, db, "ZEO, poll only", 1, options.poll_samples,
                     push=False)
            idle_cost(workers, config, db, f"push, poll {POLL_INTERVAL} s",
                      options.idle_seconds, poll_interval=POLL_INTERVAL)
            for interval in (5, 2, 1):
                idle_cost(workers, config, db, f"poll only, poll {interval} s",
                          options.idle_seconds, poll_interval=interval, push=False)
        finally:
            db.close()
            server.stop()
        if PostgreSQLDatabase.available():
            database = PostgreSQLDatabase().create()
            db = database.db()
            try:
                configure.install_queues(db)
                for count in (1, 2):
                    run_case(workers, database.zconfig(), db, "RelStorage/PostgreSQL, push",
                             count, samples)
            finally:
                db.close()
                database.drop()
        else:
            print("RelStorage/PostgreSQL: skipped, no server on 127.0.0.1:5432")
    print(f"load average at end: {os.getloadavg()}")
    print("targets: ZEO p50 <= 5 ms, p99 <= 20 ms; RelStorage p50 <= 10 ms; "
          "scheduled p99 <= 20 ms late; claim conflicts/job < 0.05 (2 and 4 workers)")


if __name__ == "__main__":
    main()
