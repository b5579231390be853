"""Recurring jobs across real processes: two workers over a ZEO server.

A one-second schedule runs for 20 seconds: every slot gets exactly one job
and every job runs exactly once, whichever worker queued it.  Then both
workers are stopped (SIGSTOP) for 5 seconds: on waking, the default
misfire policy ("once") queues one job for all the missed slots.
"""
import collections
import os
import signal
from datetime import timedelta

import transaction

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.schedules import Schedule
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing import jobs
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.triggers import Interval


SECOND = timedelta(seconds=1)
#: Longer than a loaded machine stalls a worker, shorter than the pause:
#: the slots of the pause are missed, no other slot is.
GRACE = timedelta(seconds=3)
PAUSE = timedelta(seconds=5)


def test_one_second_schedule_two_workers_each_slot_once_and_misfire_once(zeo, tmp_path):
    runs_file = tmp_path / "runs.txt"
    db = zeo.db()
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    configure.install_queues(db)
    manager.begin()
    record = schedules.install(connection, Schedule(
        "tick", jobs.record_job, Interval(SECOND), args=(str(runs_file),),
        misfire_grace=GRACE))
    manager.commit()
    # Polls every 10 s: the slot timers, not the polls, keep the schedule on time.
    workers = [WorkerProcess(tmp_path / "workers", zeo.client_storage_config(), name,
                             poll_interval=10) for name in ("one", "two")]
    try:
        for worker in workers:
            worker.start()

        def last_slot():
            manager.begin()
            return record.last_slot

        first = wait_until(last_slot, 30, describe=lambda: "for the first slot")
        wait_until(lambda: last_slot() >= first + 20 * SECOND, 60,
                   describe=lambda: "for 20 seconds of slots")
        for worker in workers:
            os.kill(worker.pid, signal.SIGSTOP)
        stopped = utcnow()
        try:
            wait_until(lambda: utcnow() >= stopped + PAUSE, 30)
        finally:
            for worker in workers:
                os.kill(worker.pid, signal.SIGCONT)
        woke = utcnow()
        wait_until(lambda: last_slot() >= woke + 5 * SECOND, 60,
                   describe=lambda: "for 5 seconds of slots after the pause")
        manager.begin()
        runs = sorted(record.last_runs(), key=lambda run: run[0])
        wait_until(lambda: all(job.status == COMPLETED for _, job, _ in runs), 60,
                   sync=manager.begin, describe=lambda: "for every job to complete")
        for worker in workers:
            assert worker.stop() == 0, worker.log_tail()
    finally:
        for worker in workers:
            worker.kill()

    # Every job ran exactly once.
    records = jobs.read_records(runs_file)
    ran = [oid for oid, _ in records]
    assert sorted(ran) == sorted(object_id(job)[0] for _, job, _ in runs)
    assert len(set(ran)) == len(ran)
    print(f"{len(ran)} runs, by process: {collections.Counter(pid for _, pid in records)}")
    # Every slot had its own job, except the missed ones: one job for them all.
    slots = [slot for slot, _, _ in runs if slot >= first]
    missed = [(slot, note) for slot, _, note in runs if note.startswith("once for")]
    assert len(missed) == 1, runs
    collapsed = missed[0][0]
    gaps = [(before, after) for before, after in zip(slots, slots[1:]) if after - before != SECOND]
    assert len(gaps) == 1 and gaps[0][1] == collapsed, gaps
    assert collapsed - gaps[0][0] > GRACE  # the slots of the pause got no job of their own
    assert slots[-1] >= woke + 5 * SECOND
    db.close()
