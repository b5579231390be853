"""Plone jobs: how fast a real worker instance drains them, against plain jobs.

The deployment of ``make run`` (base.cfg: a ZEO server, an instance and a
worker, separate Zope processes), built in a temporary directory on free
ports.  In one run, alternating:

* Plone jobs: the instance queues ``--jobs`` jobs in one request of a
  non-Manager user (``api.queue_jobs``, each a ``ContextJob`` with the
  ``EventCallback`` that notifies its outcome), all due a little later;
  the worker runs each in the site, as that user, with a request, then
  its callback;
* plain jobs: the same number of engine no-op jobs without callbacks,
  queued straight into the same queue over ZEO, drained by the same
  worker.

For each: jobs/s from the due time to the last completion (counted in the
agents' histories over ZEO), and jobs per CPU-second of the worker
process; the ratio of the Plone jobs to the plain ones, and both to the
raw commit rate of one ZEO client against the same server.

Usage: python bench/plone_drain.py [--jobs 2000] [--rounds 2] [--commits 2000]
(the first run builds the buildout: a few minutes.)
"""
import argparse
import base64
import json
import statistics
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import ZEO

from engine_throughput import completed_count
from engine_throughput import cpu_seconds
from engine_throughput import enqueue
from engine_throughput import raw_commit_rate
from plone.app.asyncjobs import deployment as deploy
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.testing.waiting import wait_until


#: The views of the end-to-end test, which queue the benchmark's jobs.
E2E_ZCML = '<include package="plone.app.asyncjobs.tests" file="deployment.zcml" />'
#: Seconds between queuing and the due time (plus 1 s per 1000 jobs).
START_DELAY = 3


def queue_plone_jobs(dep, count, delay):
    """Have the instance queue ``count`` Plone jobs due in ``delay`` seconds."""
    url = dep.url("instance", f"{deploy.SITE_ID}/@@asyncjobs-e2e-queue-numbered"
                              f"?count={count}&delay={delay}")
    request = urllib.request.Request(url)
    token = base64.b64encode(":".join(deploy.TEST_USER).encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=300) as response:
        assert json.loads(response.read())["count"] == count


def drain(db, worker_pid, count, queue_jobs):
    """Queue ``count`` jobs with ``queue_jobs(delay)``, due ``delay``
    seconds after the call; return jobs/s from then to the last
    completion, and jobs per worker CPU-second."""
    connection = db.open()
    try:
        connection.transaction_manager.begin()
        already = completed_count(connection)
        delay = START_DELAY + count / 1000
        due = utcnow() + timedelta(seconds=delay)  # no later than the jobs' due time
        queue_jobs(delay)
        wait_until(lambda: utcnow() >= due, seconds=60, interval=0.005)
        started = time.perf_counter()
        cpu_before = cpu_seconds(worker_pid)

        def done():
            connection.transaction_manager.begin()
            return completed_count(connection) - already >= count

        wait_until(done, seconds=900, interval=0.05)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker_pid) - cpu_before
    finally:
        connection.close()
    return count / elapsed, count / cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--commits", type=int, default=2000)
    options = parser.parse_args(argv)
    names = ["http-instance", "monitor-instance", "http-worker", "monitor-worker",
             "zeo-port"]
    ports = dict(zip(names, deploy.free_ports(len(names))))
    with tempfile.TemporaryDirectory(prefix="plone-drain-") as directory:
        dep = deploy.Deployment(Path(directory), ports=ports, instance_zcml=E2E_ZCML,
                                worker_zcml=E2E_ZCML)
        dep.buildout()
        dep.start()
        db = ZEO.DB((dep.host, ports["zeo-port"]))
        try:
            measure(dep, db, options)
        finally:
            db.close()
            dep.stop()


def measure(dep, db, options):
    worker = dep.pid("worker")
    raw = raw_commit_rate(db, options.commits)
    figures = {"Plone": [], "plain": []}
    for _ in range(options.rounds):
        figures["Plone"].append(drain(
            db, worker, options.jobs,
            lambda delay: queue_plone_jobs(dep, options.jobs, delay)))
        figures["plain"].append(drain(
            db, worker, options.jobs,
            lambda delay: enqueue(db, options.jobs,
                                  begin_after=utcnow() + timedelta(seconds=delay))))
    raw = max(raw, raw_commit_rate(db, options.commits))
    print(f"raw commit rate, 1 ZEO client, tiny transactions: {raw:8.0f} commits/s")
    medians = {}
    for kind, runs in figures.items():
        rate = statistics.median(r for r, _ in runs)
        per_cpu = statistics.median(c for _, c in runs)
        medians[kind] = rate, per_cpu
        print(f"{kind:5} jobs, 1 worker instance (3 threads): {rate:8.0f} jobs/s"
              f"  ({rate / raw:.2f} x raw)  {per_cpu:6.0f} jobs per worker CPU-second"
              f"  (runs: {', '.join(f'{r:.0f}' for r, _ in runs)})")
    (plone, plone_cpu), (plain, plain_cpu) = medians["Plone"], medians["plain"]
    print(f"Plone jobs / plain jobs: {plone / plain:.2f} x the rate,"
          f" {plone_cpu / plain_cpu:.2f} x the jobs per worker CPU-second")


if __name__ == "__main__":
    main()
