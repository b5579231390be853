"""Engine throughput over ZEO and RelStorage, as ratios to the raw commit rate.

Everything is measured in the same run on the same machine:

1. the raw commit rate of tiny transactions of one ZEO client, at the
   start and at the end of the run; the higher of the two is the baseline
   of the ratios;
2. the enqueue rate (no-op jobs, 100 per commit), and the rate of storing
   the same jobs, 100 per commit, without queuing them: the floor of one
   record per job, which the enqueue rate is also given as a ratio to;
3. the drain rate with 1 and with 2 worker processes (default settings:
   poll interval :data:`~plone.app.asyncjobs.engine.dispatcher.POLL_INTERVAL`):
   the jobs are queued with a start time a little in the future, the
   workers are idle and ready; the clock runs from that start time until
   every job completed;
4. conflicts per job: claim conflicts (counted by the workers) and
   conflicts of result commits (recorded by the jobs' retry policies);
5. priorities: the 2-worker drain again, the jobs with priorities drawn
   from :data:`PRIORITIES`, as a ratio to the drain without;
6. unique keys: the enqueue rate with a different unique key per job,
   and the cost of the key per put;
7. callbacks: the enqueue rate and the 2-worker drain of jobs with a
   no-op callback each, as every job the Plone service queues has one
   (it notifies the job's outcome);
8. work per job: the CPU seconds the worker processes spent during each
   drain, printed as jobs per worker CPU-second (comparable across
   machines: it does not depend on the number of cores);
9. with ``--storages relstorage`` (the default measures both), items 1-3
   and 8 again on RelStorage over the local PostgreSQL server, as ratios
   to its own raw commit rate;
10. with ``--compare-celery PYTHON`` (``make bench-celery``), the drain of
    Celery + Redis with results stored (:mod:`celery_drain`, run by that
    Python), and the 2-worker drain over ZEO as a ratio to it.

The target of the engine issue: with 2 workers, the drain rate reaches 0.8
times the raw single-client commit rate (no lower than 0.5), with fewer
than 0.05 claim conflicts per job; with mixed priorities too, at a drain
rate within 10% of the one without.

Usage: python bench/engine_throughput.py [--jobs 6000] [--commits 3000]
       [--storages zeo relstorage] [--compare-celery PYTHON]
"""
import argparse
import collections
import contextlib
import os
import random
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import transaction
from persistent.mapping import PersistentMapping

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.dispatcher import POLL_INTERVAL
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import jobs
from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer


#: Time to queue the jobs before they are due (plus 1 s per 1000 jobs).
START_DELAY = timedelta(seconds=3)
#: The priorities of the mixed-priority drain, drawn at random per job.
PRIORITIES = (0, 1, 2, 3)


def raw_commit_rate(db, commits):
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    connection.root()["bench"] = counter = PersistentMapping(value=0)
    manager.commit()
    started = time.perf_counter()
    for _ in range(commits):
        counter["value"] += 1
        manager.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return commits / elapsed


def _rate(db, count, per_commit, store):
    """Call ``store(connection, numbers)`` for ``count`` numbered jobs,
    ``per_commit`` numbers at a time, committing after each; return jobs/s."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    started = time.perf_counter()
    for first in range(0, count, per_commit):
        store(connection, range(first, min(first + per_commit, count)))
        manager.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def enqueue(db, count, begin_after=None, priorities=(0,), unique_keys=None,
            callback=False):
    """Queue ``count`` no-op jobs with ``Queue.put``, 100 per commit;
    return jobs/s.  Each job gets a priority drawn from ``priorities``, and
    with ``unique_keys`` (a prefix) a unique key of its own; with
    ``callback``, a no-op callback (as each job the Plone service queues
    has one, which notifies its outcome)."""
    def put(connection, numbers):
        queue = configure.get_queue(connection)
        for number in numbers:
            key = None if unique_keys is None else f"{unique_keys}-{number}"
            job = Job(jobs.noop)
            if callback:
                job.add_callback(Job(jobs.noop_callback))
            queue.put(job, begin_after=begin_after,
                      priority=random.choice(priorities), unique_key=key)

    return _rate(db, count, 100, put)


def store_jobs(db, count):
    """Store ``count`` no-op jobs, 100 per commit, without queuing them:
    the records alone; return jobs/s."""
    def add(connection, numbers):
        for _ in numbers:
            connection.add(Job(jobs.noop))

    return _rate(db, count, 100, add)


def enqueue_many(db, count, begin_after, per_commit=1000):
    """Queue ``count`` no-op jobs with ``Queue.put_many``, ``per_commit``
    per commit; return jobs/s."""
    def put_many(connection, numbers):
        configure.get_queue(connection).put_many([Job(jobs.noop) for _ in numbers],
                                                 begin_after=begin_after)

    return _rate(db, count, per_commit, put_many)


def cpu_seconds(pid):
    """User plus system CPU seconds process ``pid`` has used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: count from its end.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histories(connection):
    queue = configure.get_queue(connection)
    return [agent.completed for record in queue.dispatchers.values() for agent in record.values()]


def completed_count(connection):
    """Jobs in the agents' histories: cheap (no job is loaded), so that
    watching does not slow the workers down."""
    return sum(len(history) for history in histories(connection))


def drain(config, db, directory, workers, count, agent_size, priorities=(0,),
          callback=False):
    """Drain ``count`` no-op jobs (with ``callback``, each with a no-op
    callback) with ``workers`` worker processes; return jobs/s, the
    workers' counters, result-commit conflicts per job and jobs per worker
    CPU-second."""
    processes = [WorkerProcess(directory, config, f"worker-{n}-of-{workers}",
                               poll_interval=POLL_INTERVAL, agent_size=agent_size).start()
                 for n in range(workers)]
    try:
        manager = transaction.TransactionManager()
        connection = db.open(transaction_manager=manager)
        already = completed_count(connection)
        start = utcnow() + START_DELAY + timedelta(seconds=count / 1000)
        enqueue(db, count, begin_after=start, priorities=priorities, callback=callback)
        wait_until(lambda: utcnow() >= start, seconds=60, interval=0.005)
        started = time.perf_counter()
        cpu_before = sum(cpu_seconds(process.pid) for process in processes)

        def done():
            manager.begin()
            return completed_count(connection) - already >= count

        wait_until(done, seconds=600, interval=0.05)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(process.pid) for process in processes) - cpu_before
        finished = [job for history in histories(connection) for job in history]
        assert all(job.status == COMPLETED for job in finished)
        result_conflicts = sum(job.retry_policy.data.get("transaction_error", 0)
                               for job in finished if job.retry_policy is not None)
        connection.close()
    finally:
        for process in processes:
            process.stop()
    statistics = collections.Counter()
    for process in processes:
        statistics.update(process.statistics())
    return count / elapsed, statistics, result_conflicts / count, count / cpu


@contextlib.contextmanager
def zeo(directory):
    """Yield a ZEO server's ``(name, worker storage config, db)``."""
    server = ZEOServer(directory / "zeo")
    server.start()
    db = server.db()
    try:
        yield "ZEO", server.client_storage_config(), db
    finally:
        db.close()
        server.stop()


@contextlib.contextmanager
def relstorage(directory):
    """Yield ``(name, worker storage config, db)`` of RelStorage on a new
    database of the local PostgreSQL server."""
    database = PostgreSQLDatabase().create()
    db = database.db()
    try:
        yield "RelStorage/PostgreSQL", database.zconfig(), db
    finally:
        db.close()
        database.drop()


STORAGES = {"zeo": zeo, "relstorage": relstorage}


def measure(name, config, db, directory, options, full):
    """Print the figures of one storage; ``full`` adds the unique-key
    enqueue, the mixed-priority drain and the jobs with a callback.
    Return ``{workers: (jobs/s, jobs per worker CPU-second)}`` of the
    drains."""
    configure.install_queues(db)
    raw_at_start = raw_commit_rate(db, options.commits)
    later = utcnow() + timedelta(days=1)
    records = store_jobs(db, options.jobs)
    enqueued = enqueue(db, options.jobs, begin_after=later)
    unique = full and enqueue(db, options.jobs, begin_after=later, unique_keys="bench")
    many = enqueue_many(db, options.jobs, begin_after=later)
    with_callback = full and enqueue(db, options.jobs, begin_after=later, callback=True)
    drains = [(workers, *drain(config, db, directory / "workers", workers,
                               options.jobs, options.agent_size))
              for workers in options.workers]
    mixed = full and drain(config, db, directory / "workers", 2, options.jobs,
                           options.agent_size, priorities=PRIORITIES)
    callbacks = full and drain(config, db, directory / "workers", 2, options.jobs,
                               options.agent_size, callback=True)
    raw_at_end = raw_commit_rate(db, options.commits)
    raw = max(raw_at_start, raw_at_end)
    print(f"== {name}")
    print(f"raw commit rate, 1 client, tiny transactions: {raw:8.0f} commits/s"
          f"  (start {raw_at_start:.0f}, end {raw_at_end:.0f}; the higher is the baseline)")
    print(f"job records alone, 100 per commit (no queue): {records:8.0f} jobs/s"
          f"  ({records / raw:.2f} x raw)")
    print(f"enqueue, 100 no-op jobs per commit:           {enqueued:8.0f} jobs/s"
          f"  ({enqueued / raw:.2f} x raw, {enqueued / records:.2f} x the records alone)")
    print(f"enqueue, put_many of 1000 jobs per commit:    {many:8.0f} jobs/s"
          f"  ({many / raw:.2f} x raw)")
    if unique:
        print(f"enqueue, each job with its own unique key:    {unique:8.0f} jobs/s"
              f"  (the key costs {1 / unique - 1 / enqueued:+.6f} s per put,"
              f" {unique / enqueued:.2f} x the rate without)")
    if with_callback:
        print(f"enqueue, each job with a callback:            {with_callback:8.0f} jobs/s"
              f"  ({with_callback / raw:.2f} x raw, {with_callback / enqueued:.2f} x the"
              " rate without)")
    for workers, *figures in drains:
        print_drain(f"drain, {workers} worker process(es)", options, *figures, raw)
    if mixed:
        print_drain(f"drain, 2 worker processes, priorities {PRIORITIES}", options,
                    *mixed, raw)
        single = dict((workers, rate) for workers, rate, *_ in drains).get(2)
        if single:
            print(f"    mixed-priority drain / single-priority drain (2 workers):"
                  f" {mixed[0] / single:.2f}")
    if callbacks:
        print_drain("drain, 2 worker processes, each job with a callback", options,
                    *callbacks, raw)
    return {workers: (rate, per_cpu_second)
            for workers, rate, _, _, per_cpu_second in drains}


def compare_celery(python, options, drains):
    """Run :mod:`celery_drain` with ``python``; print the engine's 2-worker
    drain (``drains``, from :func:`measure`) as ratios to Celery's."""
    output = subprocess.run(
        [python, str(Path(__file__).with_name("celery_drain.py")), "--jobs", str(options.jobs)],
        capture_output=True, text=True, check=True).stdout.splitlines()
    print(output[-2])
    rate, per_cpu_second = map(float, output[-1].split()[1:])
    if 2 in drains:
        ours, ours_per_cpu_second = drains[2]
        print(f"    2 worker processes over ZEO / Celery + Redis: drain {ours / rate:.2f},"
              f" jobs per worker CPU-second {ours_per_cpu_second / per_cpu_second:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--agent-size", type=int, default=3,
                        help="worker threads per worker process")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="numbers of worker processes to measure")
    parser.add_argument("--storages", nargs="+", choices=sorted(STORAGES),
                        default=["zeo", "relstorage"],
                        help="storages to measure (the first gets every figure)")
    parser.add_argument("--compare-celery", metavar="PYTHON",
                        help="a Python with celery[redis]: also measure Celery + Redis")
    options = parser.parse_args()
    for number, storage in enumerate(options.storages):
        with tempfile.TemporaryDirectory() as directory, \
                STORAGES[storage](Path(directory)) as (name, config, db):
            drains = measure(name, config, db, Path(directory), options, full=number == 0)
        if options.compare_celery and storage == "zeo":
            compare_celery(options.compare_celery, options, drains)
    print("target: 2-worker drain >= 0.8 x raw (floor 0.5), claim conflicts/job < 0.05;"
          " mixed priorities: the same, within 10% of the single-priority drain;"
          " enqueue >= 10 x raw")


def print_drain(label, options, rate, statistics, results, per_cpu_second, raw):
    claims = statistics["claim conflicts"] / options.jobs
    print(f"{label}, {options.agent_size} threads each:"
          f"  {rate:8.0f} jobs/s"
          f"  ({rate / raw:.2f} x raw)  claim conflicts/job {claims:.3f}"
          f"  result-commit conflicts/job {results:.3f}"
          f"  {per_cpu_second:.0f} jobs per worker CPU-second")
    print(f"    worker counters: {dict(sorted(statistics.items()))}")


if __name__ == "__main__":
    main()
