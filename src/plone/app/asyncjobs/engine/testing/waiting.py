"""Wait for jobs and dispatchers to reach a state, polling with a timeout.

Each helper re-synchronises the job's connection (``transaction.begin()``
of its transaction manager) and checks again every ``interval`` seconds
until ``seconds`` have passed; then it raises ``AssertionError`` saying
what it waited for and what it saw.
"""
import time

from ZODB.POSException import ReadConflictError

from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED


def wait_until(condition, seconds=10, interval=0.05, sync=None, describe=None):
    """Return the first true value of ``condition()``; raise AssertionError on timeout."""
    deadline = time.monotonic() + seconds
    while True:
        if sync is not None:
            sync()
        try:
            value = condition()
        except ReadConflictError:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = describe() if describe is not None else ""
            raise AssertionError(f"timed out after {seconds}s {detail}".rstrip())
        time.sleep(interval)


def _sync(job):
    def sync():
        jar = job._p_jar
        if jar is not None:
            jar.transaction_manager.begin()
    return sync


def wait_for_result(job, seconds=10):
    """Wait until ``job`` is completed; return its result."""
    wait_until(lambda: job.status == COMPLETED, seconds, sync=_sync(job),
               describe=lambda: f"waiting for {job!r} to complete (it is {job.status})")
    return job.result


def wait_for_start(job, seconds=10):
    """Wait until ``job`` has started (active or later)."""
    wait_until(lambda: job.status in (ACTIVE, CALLBACKS, COMPLETED), seconds,
               sync=_sync(job),
               describe=lambda: f"waiting for {job!r} to start (it is {job.status})")


def wait_for_annotation(job, name, seconds=10):
    """Wait until ``job.annotations`` has ``name``; return its value."""
    missing = object()
    wait_until(lambda: job.get_annotation(name, missing) is not missing, seconds,
               sync=_sync(job), describe=lambda: f"waiting for annotation {name!r} of {job!r}")
    return job.get_annotation(name)


def wait_for_poll(dispatcher, count=1, seconds=10):
    """Wait until ``dispatcher`` has made ``count`` more polls; return the last."""
    start = len(dispatcher.polls) and dispatcher.polls[-1].key
    wait_until(lambda: dispatcher.polls and dispatcher.polls[-1].key >= start + count,
               seconds, describe=lambda: f"waiting for {count} poll(s) of {dispatcher!r}")
    return dispatcher.polls[-1]


def wait_for_deactivation(record, seconds=10):
    """Wait until a dispatcher record (in a queue) is no longer activated."""
    wait_until(lambda: not record.activated, seconds, sync=_sync(record),
               describe=lambda: f"waiting for {record!r} to be deactivated")


def wait_for_death(record, seconds=10):
    """Wait until a dispatcher record counts as dead."""
    wait_until(lambda: record.dead, seconds, sync=_sync(record),
               describe=lambda: f"waiting for {record!r} to be dead")
