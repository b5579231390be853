"""Module-level job functions for tests and benchmarks.

Worker processes import them by name, so they live in a real module.
Side effects go to files opened in append mode with one ``write`` per
record, which is atomic between processes for lines this short.
"""
import os
import time

import transaction

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine.ids import object_id


def noop():
    """Do nothing: measures the engine's own cost per job."""


def noop_callback(result):
    """A callback that does nothing with ``result``: measures the cost of a callback."""


def record(path, number):
    """Append ``"<number> <pid>"`` to ``path``; return ``number``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"{number} {os.getpid()}\n".encode())
    finally:
        os.close(descriptor)
    return number


def record_job(path):
    """Append ``"<oid of the running job> <pid>"`` to ``path`` (tells apart
    the runs of a recurring job's slots)."""
    return record(path, object_id(local.get_job())[0])


def hold_until(started_path, gate_path, number, check_every=0.05):
    """Record the start, then run until ``gate_path`` exists; return ``number``.

    A stand-in for a long job that tests can interrupt (by killing its
    worker) and then let finish.
    """
    record(started_path, number)
    while not os.path.exists(gate_path):
        time.sleep(check_every)
    return number


def hold_then_write(started_path, gate_path, done_path, key, check_every=0.05):
    """Record the start; ignore every request to stop until ``gate_path``
    exists; then store ``key`` in the database root and commit.  The end
    is recorded in ``done_path`` whether the commit went through or not,
    or the job was interrupted (a job abandoned after its time limit: see
    :mod:`..timeouts`)."""
    record(started_path, 1)
    try:
        while not os.path.exists(gate_path):
            time.sleep(check_every)
        local.get_job()._p_jar.root()[key] = "written after the time limit"
        transaction.commit()
        return key
    finally:
        record(done_path, 1)


def stop_when_asked(started_path, seconds=60, check_every=0.05):
    """Record the start, then call :func:`.local.check_cancelled` until it
    raises (at most ``seconds``); return ``"not asked"`` if it did not."""
    record(started_path, 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        local.check_cancelled()
        time.sleep(check_every)
    return "not asked"


def fail(message):
    """Raise ``RuntimeError(message)``: a job that always fails."""
    raise RuntimeError(message)


def results(*jobs):
    """Return the results of ``jobs`` (a postprocess for composite jobs)."""
    return [job.result for job in jobs]


def read_records(path):
    """Return the ``(number, pid)`` pairs :func:`record` wrote to ``path``."""
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [tuple(int(field) for field in line.split()) for line in lines]
