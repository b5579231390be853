"""What code running inside a job can ask about its surroundings.

A worker thread knows its dispatcher and agent; while a job (or one of its
callbacks) runs, the thread also knows the job.  Outside a job these helpers
raise :class:`~plone.app.asyncjobs.engine.exceptions.NotInJobError`.

Live annotations let a running job publish progress (or read a stop flag)
without conflicting with its own transaction: they are written to
``job.annotations`` through a separate connection and committed at once.
"""
import contextlib
import threading
import time
import uuid

import transaction

from plone.app.asyncjobs.engine.exceptions import NotInJobError
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.timeouts import check_not_abandoned
from plone.app.asyncjobs.engine.transactions import retry_forever


_state = threading.local()
_MISSING = object()


def _require(name):
    value = getattr(_state, name, None)
    if value is None:
        raise NotInJobError(
            f"no {name} here: this helper only works in code run by a job"
        )
    return value


def get_job():
    """Return the job (or callback) this thread is running."""
    return _require("job")


def get_queue():
    """Return the queue of the running job."""
    return get_job().queue


def get_dispatcher():
    """Return the dispatcher whose worker thread runs the job."""
    return _require("dispatcher")


def get_reactor():
    """Return the running dispatcher's reactor."""
    return get_dispatcher().reactor


def get_agent_name():
    """Return the name of the agent whose worker thread runs the job."""
    return _require("agent_name")


@contextlib.contextmanager
def running(job):
    """Make ``job`` the current job for the duration of the block."""
    previous = getattr(_state, "job", None), getattr(_state, "honoured", None)
    _state.job, _state.honoured = job, None
    try:
        yield job
    finally:
        _state.job, _state.honoured = previous


def bind_worker(dispatcher, agent_name, group=None, superseded=None, cancel_error=None,
                interruptible=None):
    """Declare this thread a worker of ``dispatcher`` for ``agent_name``,
    grouping the commits of short jobs' outcomes with ``group`` (a
    :class:`~plone.app.asyncjobs.engine.groupcommit.GroupCommit`);
    ``superseded()`` tells whether the job it runs was taken over
    elsewhere (see :func:`stop_requested`), ``cancel_error(job)`` the
    error that ends ``job`` if it was asked to stop and is the one this
    thread runs - a :class:`~.exceptions.CancelledError` (someone asked)
    or a :class:`~.exceptions.JobTimeoutError` (its time limit passed) -
    else ``None`` (see :func:`cancel_requested`); ``interruptible()``
    returns the context manager in which the job's own code runs (see
    :func:`interruptible`).

    The thread gets a token of its own, unique across processes, stored
    on each job it starts (:attr:`.job.Job.holder`).  A thread runs one
    attempt at a time, so the token tells this thread's attempt from any
    other: one started by a sibling that took the job over, or by another
    thread of this same process after it was wrongly found dead.
    """
    _state.dispatcher = dispatcher
    _state.agent_name = agent_name
    _state.group = group
    _state.superseded = superseded
    _state.cancel_error = cancel_error
    _state.interruptible = interruptible
    _state.holder = uuid.uuid4().hex


def interruptible():
    """The context manager a job's own code runs in: in a worker thread,
    the only place where its dispatcher may interrupt it once its attempt
    is abandoned (see :mod:`.timeouts`); elsewhere it does nothing."""
    make = getattr(_state, "interruptible", None)
    return contextlib.nullcontext() if make is None else make()


def holder():
    """The token of this worker thread, or ``None`` outside worker threads."""
    return getattr(_state, "holder", None)


def stop_requested():
    """Tell whether the job this worker thread runs should stop now.

    ``True`` once the dispatcher found that the job's attempt here was
    superseded: the worker was found dead (paused, partitioned, too slow)
    and the job was handed to its retry policy, which may run it
    elsewhere; or as soon as the dispatcher's lease lapsed, when a sibling
    may have done so (see :meth:`.workers.WorkerThread.lapsed`).  This
    attempt's outcome will not be committed anyway: a long job should
    check this now and then and return early.  Always ``False`` outside
    worker threads.
    """
    superseded = getattr(_state, "superseded", None)
    return superseded is not None and superseded()


def cancel_requested():
    """Tell whether someone asked the job this worker thread runs to stop
    (see :mod:`.cancel`), or its time limit passed (see :mod:`.timeouts`).

    Asks the database at most about once a second (the dispatcher's polls
    may learn it sooner).  Once this returned ``True``, the job ends as
    cancelled even if it then returns normally: its result is a
    :class:`~.exceptions.CancelledError` failure, which no retry policy
    reruns, and its callbacks run.  A job that returns normally commits
    its changes as usual (only the result is replaced); to drop them,
    raise with :func:`check_cancelled` instead.  A job that never asks
    runs on.  A job past its time limit ends like that too, but with a
    :class:`~.exceptions.JobTimeoutError` failure that its retry policy
    handles like any error, its changes aborted even if it returns.
    Always ``False`` outside worker threads, and in a callback (the
    request is for the job it belongs to).
    """
    return _cancel_error() is not None


def check_cancelled():
    """Raise :class:`~.exceptions.CancelledError` (the request's reason as
    message), or :class:`~.exceptions.JobTimeoutError` past the job's time
    limit, if :func:`cancel_requested`; the job's changes are aborted."""
    error = _cancel_error()
    if error is not None:
        raise type(error)(*error.args)


def _cancel_error():
    ask = getattr(_state, "cancel_error", None)
    job = getattr(_state, "job", None)
    error = None if ask is None or job is None else ask(job)
    if error is not None:
        _state.honoured = error
    return error


def honoured_cancel():
    """The error (see :func:`check_cancelled`) of the request to stop that
    the current job saw (through :func:`cancel_requested` or
    :func:`check_cancelled`), or ``None``."""
    return getattr(_state, "honoured", None)


def set_successor(job):
    """Name the job this worker thread runs next (``None``: none known)."""
    _state.successor = job


def start_successor():
    """Mark the next job of this worker thread started, in the current transaction.

    Jobs call this right before the commit that stores their outcome, so
    that a worker running a batch of short jobs starts the next one without
    a commit of its own.  Does nothing outside worker threads.
    """
    successor = getattr(_state, "successor", None)
    if successor is not None and successor.status == ASSIGNED and successor.may_start_early():
        successor.mark_active()


def defer_outcome(job):
    """Offer ``job``'s stored outcome to the worker thread's group commit.

    ``True``: the outcome waits in the open transaction, and the caller must
    not commit it; ``False`` (always outside worker threads): commit now.
    """
    group = getattr(_state, "group", None)
    return group is not None and group.defer(job, getattr(_state, "successor", None))


def note_outcome_settled(job):
    """Note that ``job``'s outcome is committed or waits for a group commit.

    Only for the job a worker thread runs, not for its callbacks: its own
    time ends there (see :data:`.workers.SHORT_JOB`, read with
    :func:`outcome_settled`).  Does nothing outside worker threads.
    """
    group = getattr(_state, "group", None)
    if group is not None and group.running is job:
        group.settled = time.monotonic()


def outcome_settled():
    """When (``time.monotonic()``) this worker thread last noted the outcome
    of the job it runs settled; ``None`` if never."""
    group = getattr(_state, "group", None)
    return None if group is None else group.settled


def restore_grouped_outcomes():
    """Right after an abort in a worker thread: commit again the outcomes
    (and the start of the next job) the aborted transaction held for a
    group commit.  Does nothing if there were none, or outside workers."""
    group = getattr(_state, "group", None)
    if group is not None:
        group.flush()


def _target(job):
    job = job if job is not None else get_job()
    if job._p_jar is None:
        raise ValueError(f"{job!r} is not stored in a database yet")
    return job


@contextlib.contextmanager
def _side_connection(job):
    manager = transaction.TransactionManager()
    connection = job._p_jar.db().open(transaction_manager=manager)
    try:
        yield manager, load(connection, *object_id(job))
    finally:
        manager.abort()
        connection.close()


def set_live_annotation(name, value, job=None):
    """Store ``value`` as ``job.annotations[name]`` and commit it now.

    The default job is the current one.  The value should be immutable,
    non-persistent data (numbers, strings, tuples).  Readers see it as soon
    as this returns.  Raises :class:`~.exceptions.AttemptAbandoned` in a
    worker thread whose attempt was abandoned (see :mod:`.timeouts`).
    """
    job = _target(job)
    check_not_abandoned()
    with _side_connection(job) as (manager, stored):
        def write():
            stored.annotations[name] = value

        retry_forever(write, manager, f"setting live annotation {name!r}")


def get_live_annotation(name, default=None, timeout=0, poll=1, job=None):
    """Return ``job.annotations[name]`` as last committed by anyone.

    With a ``timeout`` (seconds), wait for the annotation to appear,
    checking every ``poll`` seconds; return ``default`` if it does not.
    """
    job = _target(job)
    deadline = time.monotonic() + timeout
    with _side_connection(job) as (manager, stored):
        while True:
            manager.begin()
            value = stored.get_annotation(name, _MISSING)
            if value is not _MISSING:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return default
            time.sleep(min(poll, remaining))


# zc.async.local's spellings, for code ported from it (docs/porting.rst).
getJob = get_job
getQueue = get_queue
getDispatcher = get_dispatcher
getReactor = get_reactor
getAgentName = get_agent_name
setLiveAnnotation = set_live_annotation
getLiveAnnotation = get_live_annotation
