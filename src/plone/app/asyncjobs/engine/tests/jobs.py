"""Callables and classes that the engine tests queue as jobs.

Workers load callables by reference, so they must be importable by name.
pytest imports the test modules of this package under a name without the
``plone.app`` prefix (the namespace packages have no ``__init__.py``), so
the tests import this module by its absolute name and queue only what is
defined here.

Jobs run in worker threads of the test process, so module-level state is
how they report back: counters, call logs and events the tests wait on.
:func:`reset` clears it between tests; :func:`release_all` unblocks every
job waiting on an event (fixtures call it before stopping dispatchers).
"""
import pickle
import collections
import threading
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import transaction
from persistent import Persistent
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine.exceptions import AttemptInterrupted
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.retry import RetryCommonFourTimes


#: How long a job waits for an event before giving up (never hang a test).
WAIT = 10

_lock = threading.Lock()
calls = collections.Counter()
log = []
events = {}
threads = []
concurrency = {"current": 0, "max": 0}
#: A testing Clock that some jobs advance while they run.
clock = None


def reset():
    global clock
    with _lock:
        calls.clear()
        del log[:]
        concurrency.update(current=0, max=0)
    events.clear()
    del threads[:]
    clock = None
    Unstorable.refuse = False


def event(name):
    """The event ``name``, created on first use (from any thread)."""
    with _lock:
        if name not in events:
            events[name] = threading.Event()
        return events[name]


def release_all():
    for event in list(events.values()):
        event.set()


def join_threads(timeout=WAIT):
    for thread in list(threads):
        thread.join(timeout)


def count(key):
    with _lock:
        calls[key] += 1
        return calls[key]


def record(*entry):
    with _lock:
        log.append(entry)


# -- plain results -------------------------------------------------------------

def add(a, b):
    return a + b


def echo(value):
    return value


def double(value):
    return value * 2


def describe(result):
    """A callback: say what the parent's result was."""
    if is_failure(result):
        return f"failure: {result.type.__name__}: {result.getErrorMessage()}"
    return f"success: {result!r}"


def counted(key, value=None):
    count(key)
    return value


def boom(message="boom"):
    raise ValueError(message)


def group_member(key, touch=None, write_root=False, hook=False):
    """Count a call under ``key`` and return it; keys starting with "fail"
    raise.  The first call may also commit a change to job ``touch`` from
    another connection; every call may change the database root or add a
    commit hook."""
    if touch is not None and count(f"touched by {key}") == 1:
        manager = transaction.TransactionManager()
        connection = touch._p_jar.db().open(transaction_manager=manager)
        connection.get(touch._p_oid)._p_changed = True
        manager.commit()
        connection.close()
    if write_root:
        local.get_job()._p_jar.root()["written by"] = key
    if hook:
        transaction.get().addBeforeCommitHook(record, ("hook of", key))
    count(key)
    if key.startswith("fail"):
        raise ValueError(f"{key} fails")
    return key


def group_callback(result):
    """A callback counting a call under "callback of <result>" (of the
    error message, for a failure); it raises for results starting with
    "break"."""
    key = f"callback of {result.getErrorMessage() if is_failure(result) else result}"
    count(key)
    if str(result).startswith("break"):
        raise ValueError(f"{key} breaks")


# -- conflicts and retries ----------------------------------------------------

def conflict_times(key, times, value="done"):
    """Raise ConflictError on the first ``times`` calls, then return ``value``."""
    if count(key) <= times:
        raise ConflictError(f"conflict {calls[key]} of {key}")
    return value


def fail_times(key, times, value="done"):
    """Raise ValueError on the first ``times`` calls, then return ``value``."""
    if count(key) <= times:
        raise ValueError(f"failure {calls[key]} of {key}")
    return value


def advance_clock_and_conflict(key, minutes):
    """Let the testing clock pass the job's deadline, then conflict."""
    count(key)
    clock.advance(minutes=minutes)
    raise ConflictError("conflict after the deadline")


# -- exceptions that are hard to store -----------------------------------------

class HoldsLock(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class NeedsTwoArguments(Exception):
    """An exception that pickles but cannot be unpickled."""

    def __init__(self, first, second):
        super().__init__(f"{first} and {second}")


def raise_unpicklable():
    raise HoldsLock("holding a lock")


def raise_unloadable():
    raise NeedsTwoArguments("one", "two")


# -- waiting on the test -------------------------------------------------------

def wait_for_event(name, value=None):
    """Block until the test sets event ``name``; return ``value``."""
    record("started", name)
    if not event(name).wait(WAIT):
        raise RuntimeError(f"event {name!r} was never set")
    record("finished", name)
    return value


def track_concurrency(hold_until=2, seconds=0.3, value=None):
    """Count how many of these run at once; linger until ``hold_until``
    run together or ``seconds`` pass, so that overlaps are seen."""
    with _lock:
        concurrency["current"] += 1
        concurrency["max"] = max(concurrency["max"], concurrency["current"])
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and concurrency["max"] < hold_until:
            time.sleep(0.01)
    finally:
        with _lock:
            concurrency["current"] -= 1
    return value


def timed(name, seconds):
    """Take about ``seconds`` (a workload, not synchronisation)."""
    time.sleep(seconds)
    return name


def slow_callback(seconds, result):
    """A callback taking about ``seconds`` (a workload, not synchronisation)."""
    time.sleep(seconds)
    return result


# -- job-local helpers ---------------------------------------------------------

def where_am_i():
    job = local.get_job()
    return {
        "oid": job._p_oid,
        "queue": local.get_queue().name,
        "dispatcher": str(local.get_dispatcher().uuid),
        "agent": local.get_agent_name(),
        "reactor": local.get_reactor() is local.get_dispatcher().reactor,
    }


def announce_and_wait(name, value):
    """Publish a live annotation, then wait until the test says go."""
    local.set_live_annotation(name, value)
    return wait_for_event(name, value)


def read_live_annotation(name, timeout, poll=0.05):
    return local.get_live_annotation(name, default="no annotation", timeout=timeout, poll=poll)


def not_in_a_job():
    """Run as a plain call: the helpers must refuse."""
    try:
        local.get_job()
    except LookupError as error:
        return type(error).__name__
    return "no error"


# -- jobs returning jobs and deferreds ----------------------------------------

def returns_job(value):
    return Job(add, value, 1)


def returns_deferred(name, value):
    """Return a Deferred that another thread fires once event ``name`` is set."""
    deferred = Deferred()

    def fire():
        if event(name).wait(WAIT):
            deferred.callback(value)
        else:
            deferred.errback(RuntimeError("never released"))

    thread = threading.Thread(target=fire, name=f"fires {name}", daemon=True)
    threads.append(thread)
    thread.start()
    return deferred


def returns_deferred_fired_while_committing(value):
    """Return a Deferred that fires while the worker commits that the job
    waits for it (in a before-commit hook), as one fired by another thread
    at that moment would."""
    deferred = Deferred()
    manager = local.get_job()._p_jar.transaction_manager
    manager.get().addBeforeCommitHook(deferred.callback, (value,))
    return deferred


def returns_failing_deferred(name):
    deferred = Deferred()

    def fire():
        event(name).wait(WAIT)
        try:
            raise KeyError("fired as failure")
        except KeyError:
            deferred.errback()

    thread = threading.Thread(target=fire, name=f"fires {name}", daemon=True)
    threads.append(thread)
    thread.start()
    return deferred


# -- composite helpers ----------------------------------------------------------

def step(name, value):
    """Log start and end, so that tests can see the order of inner jobs."""
    record("start", name)
    time.sleep(0.02)
    record("end", name)
    return value


def meet(name, partner, value):
    """Finish only if ``partner`` runs at the same time (parallel proof)."""
    event(name).set()
    if not event(partner).wait(WAIT):
        raise RuntimeError(f"{partner} did not run alongside {name}")
    return value


def summarize(*jobs):
    """A postprocess: the inner jobs' results, failures as text."""
    summary = []
    for job in jobs:
        result = job.result
        if is_failure(result):
            summary.append(f"failed: {result.type.__name__}: {result.getErrorMessage()}")
        else:
            summary.append(result)
    return summary


def summarize_with_label(label, *jobs):
    return [label] + summarize(*jobs)


# -- agents ---------------------------------------------------------------------

def only_echo(job):
    """An agent filter: only jobs calling :func:`echo`."""
    return getattr(job.callable, "__name__", None) == "echo"


def never(job):
    return False


def choose_first(agent):
    """An agent chooser: take the first pending job of the agent's queue."""
    queue = agent.queue
    if not len(queue):
        return None
    return queue.pull(0)


def choose_last(agent):
    """An agent chooser: take the last pending job of the agent's queue."""
    queue = agent.queue
    if not len(queue):
        return None
    return queue.pull(-1)


# -- persistent objects and job subclasses --------------------------------------

class Counter(Persistent):
    """A persistent object whose method is a job."""

    def __init__(self):
        self.value = 0

    def increment(self, by=1):
        self.value += by
        return self.value


class HookedJob(Job):
    """Records set_up and tear_down, and what the database held at tear_down."""

    def set_up(self):
        record("set_up", self._p_oid)
        return "setup info"

    def tear_down(self, setup_info):
        connection = self._p_jar.db().open(
            transaction_manager=transaction.TransactionManager()
        )
        try:
            stored = connection.get(self._p_oid)
            record("tear_down", setup_info, stored.status, is_failure(stored.result))
        finally:
            connection.close()


class BrokenTearDownJob(Job):
    def tear_down(self, setup_info):
        record("tear_down", setup_info)
        raise RuntimeError("tear_down is broken")


def make_lock():
    """Return a result that cannot be stored."""
    return threading.Lock()


def increment_then_fail(counter):
    counter.increment(10)
    raise ValueError("changed the counter, then failed")


def increment(counter, by=1):
    return counter.increment(by)


def conflicting_write(counter, key):
    """Change ``counter``; on the first call another transaction changes it
    too and commits first, so this attempt's commit conflicts."""
    attempt = count(key)
    counter.value += 1
    if attempt == 1:
        manager = transaction.TransactionManager()
        connection = counter._p_jar.db().open(transaction_manager=manager)
        try:
            connection.get(counter._p_oid).value += 100
            manager.commit()
        finally:
            connection.close()
    return counter.value


def answer():
    return 42


def current_job_oid(*ignored):
    """The oid of the job running this (a job or a callback)."""
    return local.get_job()._p_oid



def extend(composite, name, value):
    """An inner job that adds one more job to its composite while it runs."""
    composite.args.append(Job(step, name, value))
    return "extended"


def increment_and_return_failure(counter):
    """Return a failure instead of raising: a result like any other."""
    counter.increment(1)
    return Failure(KeyError("returned, not raised"))


class BrokenSetUpJob(Job):
    def set_up(self):
        raise RuntimeError("set_up is broken")

    def tear_down(self, setup_info):
        record("tear_down", setup_info)


def call_it(job):
    """A job that calls itself (bound with Job.bind)."""
    return job()


class Unstorable:
    """A callable that can be stored until ``refuse`` is set, then not.

    Stands in for a job a worker cannot store back (say, its callable
    cannot be imported in that process).
    """

    refuse = False

    def __call__(self):
        counted("poison")

    def __reduce__(self):
        if Unstorable.refuse:
            raise pickle.PicklingError("this job cannot be stored in this process")
        return (Unstorable, ())


def run_until_cancelled(key, how):
    """Count a run under ``key``, then wait for a cancel request: ``"poll"``
    returns "returned" once :func:`local.cancel_requested`, ``"check"``
    calls :func:`local.check_cancelled` (which raises), ``"ignore"`` never
    asks and returns "finished" once the event "<key> release" is set;
    "timeout" after WAIT seconds."""
    count(key)
    event(f"{key} running").set()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if how == "poll" and local.cancel_requested():
            return "returned"
        if how == "check":
            local.check_cancelled()
        if how == "ignore" and event(f"{key} release").is_set():
            return "finished"
        time.sleep(0.02)
    return "timeout"


def run_until_stopped(key):
    """Count a run under ``key``; return "stopped" once the worker asks
    (:func:`local.stop_requested`), "timeout" after WAIT seconds."""
    count(key)
    event(f"{key} running").set()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if local.stop_requested():
            count(f"{key} stopped")
            return "stopped"
        time.sleep(0.02)
    return "timeout"


def spin(key, swallow=0):
    """Count a run under ``key``, then compute in Python for up to WAIT
    seconds without ever asking whether to stop, counting each
    interruption under "<key> interrupted" and going on after the first
    ``swallow`` of them; if the spin ends, count "<key> spun out", store
    ``key`` in the database root and commit."""
    count(key)
    event(f"{key} running").set()
    end = time.monotonic() + WAIT
    while True:
        try:
            while time.monotonic() < end:
                pass
            break
        except AttemptInterrupted:
            count(f"{key} interrupted")
            if calls[f"{key} interrupted"] > swallow:
                raise
    count(f"{key} spun out")
    local.get_job()._p_jar.root()[key] = "written after the time limit"
    transaction.commit()
    return "finished"


def spin_after_a_job(key, swallow=0):
    """Call a job (not stored) in this one's code, then :func:`spin`."""
    Job(echo, key)()
    return spin(key, swallow)


def overrun_and_write(key):
    """Count a run under ``key``, ignore every request to stop until the
    event "<key> release" (at most WAIT seconds), then store ``key`` in the
    database root and commit; the event "<key> done" is set after that,
    whether the commit went through or not."""
    count(key)
    event(f"{key} running").set()
    try:
        event(f"{key} release").wait(WAIT)
        local.get_job()._p_jar.root()[key] = "written after the time limit"
        transaction.commit()
        return "finished"
    finally:
        event(f"{key} done").set()


class SecondsPolicy(RetryCommonFourTimes):
    """A policy's mistake: it decides a number of seconds to wait."""

    def job_error(self, failure, data_cache):
        return 30


def returns_job_due_later(value):
    """Return a job due in an hour: the caller waits for it meanwhile."""
    later = Job(add, value, 1)
    later.begin_after = datetime.now(timezone.utc) + timedelta(hours=1)
    return later


def returns_unloadable():
    """Return a value that pickles, but raises when loaded."""
    from plone.app.asyncjobs.engine.testing.chaos import Unloadable

    return Unloadable()


def returns_unpicklable():
    return threading.Lock()


class SlowTearDownJob(Job):
    """Tears down only once event "callback running" is set (or after WAIT),
    then begins a new transaction, as a group commit landing meanwhile
    would: the worker then sees what others committed since."""

    def tear_down(self, setup_info):
        event("callback running").wait(WAIT)
        self._p_jar.transaction_manager.begin()


def callback_holding(result):
    """A callback that counts its runs under "callback", says it runs, then
    holds until event "release" is set."""
    count("callback")
    event("callback running").set()
    event("release").wait(WAIT)
    return result
