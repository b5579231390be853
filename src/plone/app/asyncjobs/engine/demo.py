"""A demonstration of the engine: ``python -m plone.app.asyncjobs.engine.demo``.

It starts a ZEO server and two worker processes, queues a mix of jobs
(quick ones, one that fails, one scheduled a few seconds later, a serial
composite), shows their statuses until everything is done, then kills one
worker in the middle of a job to show that its sibling takes the job over.
Everything it starts is stopped at the end; its files are in ``var/demo``.
"""
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import transaction

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import serial
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import jobs
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer


def show(title, named_jobs):
    print(f"\n{title}")
    for name, job in named_jobs:
        result = job.result
        shown = (f"failed: {result.getErrorMessage()}" if is_failure(result)
                 else repr(result))
        print(f"  {name:<28} {job.status:<10} {shown if job.status == COMPLETED else ''}")


def main(directory=Path("var/demo")):
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    records = directory / "records.txt"
    server = ZEOServer(directory / "zeo")
    server.start()
    print(f"ZEO server on {server.address[0]}:{server.address[1]} (pid {server.pid})")
    db = server.db()
    configure.install_queues(db)
    options = dict(poll_interval=0.2, ping_interval=0.5, ping_death_interval=2)
    workers = [WorkerProcess(directory, server.client_storage_config(), name, **options).start()
               for name in ("worker-1", "worker-2")]
    for worker in workers:
        print(f"{worker.name} running as pid {worker.pid}, UUID {worker.uuid}")
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        queue = configure.get_queue(connection)
        named = [(f"record {n}", queue.put(Job(jobs.record, str(records), n))) for n in range(5)]
        named.append(("a failing job", queue.put(Job(jobs.fail, "this job fails on purpose"))))
        named.append(("scheduled in 3 s", queue.put(
            Job(jobs.record, str(records), 99), begin_after=utcnow() + timedelta(seconds=3))))
        named.append(("serial composite", queue.put(serial(
            Job(jobs.record, str(records), 100), Job(jobs.record, str(records), 101),
            postprocess=jobs.results))))
        manager.commit()
        show("Queued (nothing has run yet):", named)

        def all_completed():
            manager.begin()
            return all(job.status == COMPLETED for _, job in named)

        wait_until(all_completed, seconds=60, interval=0.2)
        show("All done:", named)
        ran_by = {pid for _, pid in jobs.read_records(records)}
        print(f"\nThe jobs ran in processes {sorted(ran_by)}.")

        print("\nNow a long job; its worker is killed with SIGKILL while it runs.")
        started, gate = directory / "started.txt", directory / "gate"
        long_job = queue.put(Job(jobs.hold_until, str(started), str(gate), 7))
        manager.commit()
        wait_until(lambda: jobs.read_records(started), seconds=30)
        [(_, pid)] = jobs.read_records(started)
        victim = next(w for w in workers if w.pid == pid)
        victim.kill()
        gate.touch()
        print(f"  killed {victim.name} (pid {pid}) while it ran the job")
        wait_until(lambda: long_job.status == COMPLETED, seconds=60,
                   sync=manager.begin, interval=0.2)
        survivor = next(w for w in workers if w is not victim)
        print(f"  {survivor.name} found it dead, ran the job again: result {long_job.result!r},"
              f" attempts {long_job.attempts}")
    finally:
        connection.close()
        for worker in workers:
            worker.stop()
        db.close()
        server.stop()
    print(f"\nEverything is stopped. Logs and data are in {directory}/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
