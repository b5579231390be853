"""Jobs: persistent calls with a status, a result and callbacks.

A :class:`Job` stores a callable and its arguments in the database.  Put it
in a queue and commit; a worker process claims it, calls it, and stores
what it returned (or a :mod:`failure <plone.app.asyncjobs.engine.failure>`
if it raised) as :attr:`Job.result`.  See :mod:`.status` for the statuses.

Transactions while a job runs in a worker:

* the claim transaction makes it ACTIVE (``active_start``, ``attempts``);
* the callable runs in a transaction of its own, which is committed
  together with the result; if the callable raises, its changes are
  aborted and only the failure is stored;
* callbacks each run in their own transactions afterwards.  In a worker
  thread, the result commit also starts the first callback, and the
  commit of the outcome of a job's last callback also completes the job.

So a job without callbacks costs at most two commits: claim and result;
one with a callback, three.
The result commit writes nothing but the job (and what the callable
changed), so it cannot conflict with other workers' claims.  Worker
threads share both commits among the short jobs of a batch
(:mod:`.workers`, :mod:`.groupcommit`).
"""
import logging
from datetime import datetime
from datetime import timedelta

import transaction
import zope.event
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from twisted.internet.defer import Deferred
from zope.interface import implementer
from zope.interface.interface import adapter_hooks

from plone.app.asyncjobs.engine import arguments
from plone.app.asyncjobs.engine import compact
from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine.callback import SuccessFailureCallback
from plone.app.asyncjobs.engine.clock import as_utc
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.compat import ZcAsyncJobSpellings
from plone.app.asyncjobs.engine.events import JobCompleted
from plone.app.asyncjobs.engine.exceptions import AbortedError
from plone.app.asyncjobs.engine.exceptions import AttemptAbandoned
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.exceptions import OutcomeUnknownError
from plone.app.asyncjobs.engine.exceptions import ReassignedError
from plone.app.asyncjobs.engine.exceptions import TimeoutError
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.ids import short_repr
from plone.app.asyncjobs.engine.internal import internal
from plone.app.asyncjobs.engine.internal import is_internal
from plone.app.asyncjobs.engine.internal import waiting_step
from plone.app.asyncjobs.engine.interfaces import IAgent
from plone.app.asyncjobs.engine.interfaces import ICallbackChooser
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.interfaces import IQueue
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.naming import abbreviated
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.status import PENDING
from plone.app.asyncjobs.engine.transactions import EXPLOSIVE
from plone.app.asyncjobs.engine.transactions import DISCONNECTED
from plone.app.asyncjobs.engine.transactions import OUTCOME
from plone.app.asyncjobs.engine.transactions import abort
from plone.app.asyncjobs.engine.transactions import count_conflict
from plone.app.asyncjobs.engine.transactions import retry_forever
from plone.app.asyncjobs.engine.validation import check_callable
from plone.app.asyncjobs.engine.validation import check_loadable
from plone.app.asyncjobs.engine.validation import check_new_callback


#: What ends an attempt at once, its changes aborted and its set-up torn
#: down, without a result: the worker thread is stopping, or its attempt
#: was abandoned (see :mod:`.timeouts`).
UNWIND = (*EXPLOSIVE, AttemptAbandoned)

# Stored status ids; NEW means "derive from the parent".
_NEW, _ACTIVE, _CALLBACKS, _COMPLETED = range(4)
_STORED_STATUS = {_ACTIVE: ACTIVE, _CALLBACKS: CALLBACKS, _COMPLETED: COMPLETED}

# What a job records about its runs, as opposed to the work it describes.
_TORN_DOWN = object()


@implementer(IJob)
class Job(Persistent, ZcAsyncJobSpellings):
    """A persistent call of ``callable(*args, **kwargs)``.

    ``args`` and ``kwargs`` stay mutable until the job runs; arguments given
    when calling the job are appended (keyword arguments override).  See
    :mod:`.arguments` for where they are stored.
    Subclasses may override :meth:`set_up` and :meth:`tear_down`.
    """

    _status_id = _NEW
    _result = None
    _callbacks = None  # created by the first add_callback: most jobs have none
    _annotations = None  # created on first use: see annotations
    _deferred = False  # waiting for a Deferred the callable returned
    #: The callback the commit of this job's outcome started, until it runs
    #: (see :meth:`_start_first_callback`); any other callback found active
    #: was interrupted.
    _v_started_callback = None
    _begin_after = None
    #: ``begin_after`` as stored; set by the queue whatever the status.
    _due = compact.instant("_begin_after")
    _begin_by = None
    _quota_names = ()
    _retry_policy = None
    #: While the job is pending, where in its queue (see
    #: :meth:`.queue.Queue._place`).
    _queue_key = None
    _policy_kind = "job"
    parent = None
    #: Logging level for a failed outcome; ``None`` means ERROR.
    failure_log_level = None
    #: See :mod:`plone.app.asyncjobs.engine.retry`.
    retry_policy_factory = None
    #: UUID of the process that queued the job, if it has one.
    assigner_uuid = compact.uuid_value("_assigner_uuid")
    _assigner_uuid = None
    #: When the job last became ACTIVE, and when its result was stored
    #: (aware UTC datetimes).
    active_start = compact.instant("_active_start")
    active_end = compact.instant("_active_end")
    _active_start = _active_end = None
    #: How many times the job was started: every run of its callable
    #: counts, reruns after a conflict or a lost connection too, and a run
    #: whose start was lost with its worker (see :meth:`interrupted`).  At
    #: least the number of runs, never fewer.
    attempts = 0
    #: How many times a worker died (or was found dead) holding the job.
    #: A job interrupted before runs alone: its worker commits everything
    #: else first, so that a job that kills its worker does not take the
    #: outcomes of its neighbours with it.
    interruptions = 0
    #: The token of the worker thread that started the current attempt
    #: (see :func:`.local.bind_worker`); ``None`` outside worker threads.
    holder = None
    #: Claim order among due jobs: higher first (see :mod:`.queue`).  Set
    #: by :meth:`.queue.Queue.put`; kept by :meth:`copy`.
    priority = 0
    #: The key this job holds in its queue's unique index while in a status
    #: of ``unique_while`` (see :mod:`.unique`).  Set by
    #: :meth:`.queue.Queue.put`; kept by :meth:`copy`.
    unique_key = None
    unique_while = (PENDING,)
    #: ``False``: this job's outcome is always committed alone, never left
    #: for a group commit (see :mod:`.groupcommit`), say for a job that
    #: sends mail; its queue's ``group_commit`` can say so for all its jobs.
    group_commit = True
    #: Seconds the job may run before it is asked to stop, then abandoned;
    #: ``None``: its queue's ``default_timeout`` (see :mod:`.timeouts`).
    #: Set by :meth:`.queue.Queue.put`; kept by :meth:`copy`.
    timeout = None
    #: What :meth:`copy` (a retry) inherits: the options the job was made
    #: and queued with.  Anything else - status, result, schedule, holder,
    #: counters - is the state of a run and starts afresh; the callable,
    #: arguments and callbacks are copied apart.  A subclass with options
    #: of its own extends this set.
    copied_options = frozenset({
        "_quota_names", "_policy_kind", "retry_policy_factory", "failure_log_level",
        "priority", "unique_key", "unique_while", "group_commit", "timeout",
    })

    def __init__(self, callable, *args, **kwargs):
        self._callable = check_callable(callable)
        # Jobs are persistent: the cheap test first, since most callables
        # are functions, for which providedBy is slow.
        if (isinstance(callable, Persistent) and IJob.providedBy(callable)
                and callable.parent is None):
            callable.parent = self
        self.args, self.kwargs = arguments.containers(self, args, kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        for name in ("args", "kwargs"):
            if name in state:
                stored = arguments.stored_form(state[name])
                if stored is None:
                    del state[name]  # most jobs have no keyword arguments
                else:
                    state[name] = stored
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["args"] = arguments.owned(self, state.get("args", []))
        state["kwargs"] = arguments.owned(self, state.get("kwargs", {}))
        if "annotations" in state:  # stored by an earlier version
            state["_annotations"] = state.pop("annotations")
        compact.rename_legacy(type(self), state)
        super().__setstate__(state)

    @property
    def annotations(self):
        """A BTree of data about the job, for applications and the engine.

        It is created on first use; code that only reads uses
        :meth:`get_annotation`, which creates nothing.  Annotations written
        while the job runs, say from another connection
        (:func:`.local.set_live_annotation`, a cancel request), must never
        change the job's own record, which its worker writes with the
        outcome.  So while an agent holds a job that has no annotations,
        they are created next to the job's entry in the agent
        (:class:`.agent.HeldJobs`), and become the job's when the agent
        lets it go; a job started without an agent gets them when it
        starts (:meth:`mark_active`).
        """
        return self._annotation_tree(create=True)

    def get_annotation(self, name, default=None):
        """``annotations[name]``, or ``default``; changes nothing."""
        tree = self._annotation_tree(create=False)
        return default if tree is None else tree.get(name, default)

    def _annotation_tree(self, create):
        """The job's annotations, wherever they are kept (see
        :attr:`annotations`); ``None`` if there are none yet, unless
        ``create``."""
        if self._annotations is None:
            agent = self._holding_agent()
            if agent is not None:
                return agent.annotations_of(self, create)
            if create:
                self._annotations = OOBTree()
        return self._annotations

    def adopt_annotations(self, tree):
        """Make ``tree`` the job's annotations (for its agent, when it lets
        go of a job it kept annotations for)."""
        self._annotations = tree

    def owning_job(self):
        """The job this one is part of - its callable, or one of its
        callbacks - which runs it; ``None`` if there is none."""
        parent = self.parent
        if parent is not None and IJob.providedBy(parent) and (
                parent._callable is self or any(job is self for job in parent.callbacks)):
            return parent
        return None

    def job_lineage(self):
        """This job, then the jobs it is part of, outwards."""
        job = self
        while IJob.providedBy(job):
            yield job
            job = job.parent

    def _holding_agent(self):
        """The agent holding this job, if any."""
        parent = self.parent
        if IAgent.providedBy(parent) and parent.holds(self):
            return parent
        return None

    @classmethod
    def bind(cls, callable, *args, **kwargs):
        """Return a job that passes itself as the first argument."""
        job = cls(callable, *args, **kwargs)
        job.args.insert(0, job)
        return job

    # -- description --------------------------------------------------------

    @property
    def callable(self):
        return self._callable

    @callable.setter
    def callable(self, value):
        if self.status != NEW:
            raise BadStatusError(f"cannot change the callable of a {self.status} job")
        self._callable = check_callable(value)

    def same_work(self, other):
        """Whether ``other`` runs the same code as this job, so that it
        likely takes about as long (see :mod:`.groupcommit`): the same
        callable, or, for a callable that is a method of the job itself,
        the same method of the same class."""
        mine, theirs = self._callable, other._callable
        if getattr(mine, "__self__", None) is self and getattr(theirs, "__self__", None) is other:
            return type(self) is type(other) and mine.__func__ is theirs.__func__
        return mine == theirs

    @property
    def status(self):
        """The job's status; see :mod:`plone.app.asyncjobs.engine.status`."""
        stored = self._status_id
        if stored != _NEW:
            return _STORED_STATUS[stored]
        if self.parent is None:
            return NEW
        if IQueue.providedBy(self.parent):
            return PENDING
        if IAgent.providedBy(self.parent):
            return ASSIGNED
        return NEW

    @property
    def result(self):
        """The callable's return value or a Failure; ``None`` until then.

        While the job waits for a job it returned, this is that job.
        """
        return self._result

    @property
    def waiting(self):
        """True while the job waits for a job or Deferred its callable returned.

        No worker thread is busy with it then, so it does not count against
        its agent's size (a composite job waits like this).
        """
        return self.waiting_for_job or (self._status_id == _ACTIVE and self._deferred)

    @property
    def waiting_for_job(self):
        """True while the job waits for a job its callable returned: that
        job's completion completes it, wherever it runs, so no worker needs
        to hold it, and one that stops or dies interrupts nothing."""
        return self._status_id == _ACTIVE and IJob.providedBy(self._result)

    @property
    def queue(self):
        """The queue the job was put in (also while an agent holds it)."""
        obj = self.parent
        while obj is not None:
            if IQueue.providedBy(obj):
                return obj
            if IAgent.providedBy(obj):
                return obj.queue
            obj = getattr(obj, "parent", None)
        return None

    @property
    def agent(self):
        """The agent holding the job (or its parent job), if any."""
        obj = self.parent
        while obj is not None:
            if IAgent.providedBy(obj):
                return obj
            if IQueue.providedBy(obj):
                return None
            obj = getattr(obj, "parent", None)
        return None

    @property
    def begin_after(self):
        """Earliest start, an aware UTC datetime; set by ``put`` if not before."""
        return self._due

    @begin_after.setter
    def begin_after(self, value):
        if self.status != NEW:
            raise BadStatusError(f"cannot change begin_after of a {self.status} job")
        self.set_due(None if value is None else as_utc(value, "begin_after"))

    def set_due(self, when):
        """Set ``begin_after`` to the aware ``when`` (or ``None``), whatever
        the status but pending (its key in its queue is its due time, see
        :meth:`.queue.Queue._place`): for the queue, which makes the job
        pending.  Stored as integer microseconds (see :mod:`.compact`)."""
        if self._queue_key is not None:
            raise BadStatusError(f"cannot change the due time of pending {self!r}")
        self._due = when

    def due_microseconds(self):
        """``begin_after`` as microseconds since the epoch (``None`` if unset)."""
        stored = self._begin_after
        return to_microseconds(stored) if isinstance(stored, datetime) else stored

    @property
    def begin_by(self):
        """How long after ``begin_after`` the job may still start (a timedelta).

        A job claimed later than that fails with
        :class:`~plone.app.asyncjobs.engine.exceptions.TimeoutError` instead
        of running late.  ``None`` means no deadline.
        """
        return self._begin_by

    @begin_by.setter
    def begin_by(self, value):
        if self.status not in (NEW, PENDING):
            raise BadStatusError(f"cannot change begin_by of a {self.status} job")
        if value is not None:
            if not isinstance(value, timedelta):
                raise TypeError(f"begin_by must be a timedelta, not {value!r}")
            if value < timedelta(0):
                raise ValueError(f"begin_by must not be negative, got {value!r}")
        self._begin_by = value

    @property
    def quota_names(self):
        """Names of the queue quotas this job counts against (a tuple)."""
        return self._quota_names

    @quota_names.setter
    def quota_names(self, value):
        status = self.status
        if status not in (NEW, PENDING):
            raise BadStatusError(f"cannot change quota_names of a {status} job")
        if isinstance(value, str):
            raise TypeError(
                f"quota_names must be a sequence of names, not the string {value!r}"
            )
        names = tuple(value)
        for name in names:
            if not isinstance(name, str) or not name:
                raise TypeError(f"quota names must be non-empty strings, not {name!r}")
        if status == PENDING:
            self.queue.quotas.check_names(names)
        self._quota_names = names

    @property
    def deadline(self):
        """``begin_after + begin_by``, or ``None`` without a deadline (or
        with one after the last datetime, in year 9999: it never passes)."""
        if self._begin_by is None or self._begin_after is None:
            return None
        try:
            return self.begin_after + self._begin_by
        except OverflowError:
            return None

    def deadline_passed(self, now=None):
        deadline = self.deadline
        return deadline is not None and deadline < (now or utcnow())

    @property
    def retry_policy(self):
        """The job's retry policy, or ``None`` while none was needed."""
        return self._retry_policy

    def get_retry_policy(self):
        """Return the job's retry policy, creating it on first use."""
        if self._retry_policy is None:
            factory = retry.resolve(self.retry_policy_factory, self._policy_kind)
            self._retry_policy = factory(self)
        return self._retry_policy

    def may_start_early(self):
        """Whether a worker may mark this job started before it runs it: in
        the commit of its claim, or with its predecessor's outcome.

        Not a job that is never run again once started (say NeverRetry):
        a crash between that commit and its run would fail it although it
        never ran; nor a job interrupted before (it runs alone); nor an
        expired one (it fails instead of running).  Their starts are
        committed on their own, right before they run.
        """
        return (not self.interruptions and not self.deadline_passed()
                and self.reruns_when_interrupted())

    def reruns_when_interrupted(self):
        """Whether the job's retry policy runs it again if its worker dies
        (told by the policy's ``max_interruptions``, without creating it)."""
        policy = self._retry_policy or retry.resolve(self.retry_policy_factory, self._policy_kind)
        return getattr(policy, "max_interruptions", 0) != 0

    def __repr__(self):
        described = ", ".join(self.described_arguments())
        return f"<{short_repr(self)} ``{job_name(self)}({described})``>"

    def described_arguments(self):
        """The arguments as :meth:`__repr__` shows them, each abbreviated."""
        if getattr(self, "_v_arguments_unloadable", False):
            # Not again: log messages format this, and a failed load logs
            # too, which inside a logging handler can deadlock with
            # another thread doing the same.
            return ["<arguments cannot be loaded>"]
        try:
            return ([abbreviated(a) for a in self.args]
                    + [f"{k}={abbreviated(v)}" for k, v in self.kwargs.items()])
        except Exception as error:  # say, an argument whose class is gone
            return [f"<arguments cannot be loaded: {type(error).__name__}>"]

    # -- hooks for subclasses ----------------------------------------------

    def set_up(self):
        """Prepare each attempt; the return value is passed to :meth:`tear_down`."""

    def tear_down(self, setup_info):
        """Undo :meth:`set_up`, after the attempt was committed or aborted."""

    # -- callbacks ------------------------------------------------------------

    @property
    def callbacks(self):
        """The callbacks in the order they were added (read-only)."""
        return tuple(self._callbacks or ())

    def add_callback(self, callback, failure_log_level=None, retry_policy_factory=None):
        """Call ``callback(result)`` once this job has a result; return its job.

        Every callback gets this job's result (callbacks are not chained).
        A callback added to a completed job runs at once, in this thread.
        Callbacks log failures at CRITICAL and retry with the callback
        policy unless told otherwise.
        """
        if not ICallbackChooser.providedBy(callback):
            callback = IJob(callback)
        check_new_callback(callback, self.job_lineage(), failure_log_level)
        callback.parent = self
        callback._policy_kind = "callback"
        if failure_log_level is not None:
            callback.failure_log_level = failure_log_level
        elif callback.failure_log_level is None:
            callback.failure_log_level = logging.CRITICAL
        if retry_policy_factory is not None:
            callback.retry_policy_factory = retry_policy_factory
        # In the job's own record (one record less per job with callbacks):
        # a concurrent completion, which writes that record too, conflicts,
        # so a callback is never added to a job that completes unseen.
        self._callbacks = (*self.callbacks, callback)
        if self._status_id == _COMPLETED:
            self._run_callback(callback)
        return callback

    def add_callbacks(self, success=None, failure=None, failure_log_level=None,
                      retry_policy_factory=None):
        """Call ``success(result)`` or ``failure(failure)`` once there is a result.

        Returns a proxy whose ``job`` is the chosen callback once chosen.
        A missing side passes the result through unchanged.
        """
        return self.add_callback(
            SuccessFailureCallback(success, failure),
            failure_log_level=failure_log_level,
            retry_policy_factory=retry_policy_factory,
        )

    def _run_callback(self, callback):
        if ICallbackChooser.providedBy(callback):
            callback = callback.choose(self._result)
        if callback._p_jar is None and self._p_jar is not None:
            # Run (and commit) it in this job's connection, not the thread's default.
            self._p_jar.add(callback)
        status = callback.status
        if status == NEW:
            if callback.deadline_passed():
                events.error("failing expired callback %r", callback)
                callback.fail()
            else:
                callback(self._result)
        elif status == ACTIVE and callback is self._v_started_callback:
            self._v_started_callback = None
            callback._run((self._result,), {})
        elif status == ACTIVE:
            callback._callback_interrupted(self._result)
        elif status == CALLBACKS:
            callback.resume_callbacks()

    def _callbacks_pending(self):
        return any(cb.status != COMPLETED for cb in self.callbacks)

    def _first_pending_callback(self):
        """The first callback that has not completed, if it is a job."""
        for callback in self.callbacks:
            if callback.status != COMPLETED:
                return callback if IJob.providedBy(callback) else None
        return None

    def started_callback(self):
        """The callback that this job's stored outcome started, for the
        worker thread to run next, while the job waits for its callbacks
        (see :meth:`_start_first_callback`); ``None`` if there is none, or
        only one left from an attempt that was aborted (new again)."""
        started = self._v_started_callback
        if self._status_id != _CALLBACKS or started is None or started.status != ACTIVE:
            return None
        return started

    def _start_first_callback(self):
        """In a worker thread, start the callback that runs first in the
        transaction that stores this job's outcome: the thread runs it
        right after that commit, or within the same transaction if the
        outcome waits for a group commit (:meth:`_run_callback`), so that
        it needs no commit of its own to start."""
        if self._status_id != _CALLBACKS or local.holder() is None:
            return
        callback = self._first_pending_callback()
        if (callback is not None and callback.status == NEW
                and callback._p_jar is not None and not callback.deadline_passed()):
            callback.mark_active()
            self._v_started_callback = callback

    def _complete_parent(self):
        """Complete the job this callback is a callback of, if this was the
        last of its callbacks to complete: in the transaction that stores
        this callback's outcome, not in one of its own."""
        parent = self.parent
        if (self._policy_kind == "callback" and IJob.providedBy(parent)
                and parent._status_id == _CALLBACKS and not parent._callbacks_pending()):
            parent._complete()

    def resume_callbacks(self):
        """Run the callbacks that have not completed, then complete the job."""
        if self._status_id != _CALLBACKS:
            raise BadStatusError(f"no callbacks to resume: {self!r} is {self.status}")
        manager = self._transaction_manager()

        def complete_unless_more():
            if self._status_id != _CALLBACKS:
                return True
            if self._callbacks_pending():
                return False
            self._complete()
            return True

        while True:
            for callback in list(self.callbacks):
                self._run_callback(callback)
            if self._status_id == _COMPLETED:
                # By its last callback's outcome (see _complete_parent),
                # committed or waiting for a group commit.
                return
            if retry_forever(complete_unless_more, manager, f"completing {self!r}"):
                return

    # -- running --------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        """Run the job in this thread now; return its result.

        Only a new or assigned job can be called.  Its start is committed
        first (when it is stored in a database), then the call and its
        result, then each callback.  A retry policy that reschedules makes
        this return the job itself.
        """
        status = self.status
        if status not in (NEW, ASSIGNED):
            raise BadStatusError(f"only a new or assigned job can be called; {self!r} is {status}")
        self.mark_active()
        if self._p_jar is not None:
            self._transaction_manager().commit()
        return self._run(args, kwargs)

    def mark_active(self):
        """Record a start (the claim transaction calls this for workers)."""
        self._status_id = _ACTIVE
        self.active_start = utcnow()
        self.attempts += 1
        self.holder = local.holder()
        if self._annotations is None and self._holding_agent() is None:
            self._annotations = OOBTree()

    def load_arguments(self):
        """Load the arguments now; ``False`` if they cannot be loaded (then
        :meth:`__repr__` no longer tries: see there)."""
        try:
            for part in (self.args, self.kwargs):
                if isinstance(part, Persistent):
                    part._p_activate()
        except Exception:
            self._v_arguments_unloadable = True
            return False
        return True

    def run_claimed(self):
        """Run a job a worker claimed: fail it if expired, else call it."""
        if self._status_id == _NEW:
            return self.fail(TimeoutError(f"not started before {self.deadline}"))
        return self._run((), {})

    def _run(self, extra_args, extra_kwargs):
        # The retry policy is created only when a decision is needed: most
        # jobs succeed and never store one.
        manager = self._transaction_manager()
        data_cache = {}
        while True:
            setup_info = None
            with local.running(self):
                try:
                    setup_info = self.set_up()
                    with local.interruptible():
                        result = self._callable(
                            *self.args, *extra_args, **dict(self.kwargs, **extra_kwargs)
                        )
                    honoured = local.honoured_cancel()
                    if isinstance(honoured, JobTimeoutError):
                        raise honoured  # like check_cancelled(): aborted, the policy decides
                    if honoured is not None:  # it saw the cancel request, then returned
                        result = failures.capture(honoured)
                except UNWIND:
                    manager.abort()
                    self._tear_down_quietly(setup_info)
                    raise
                except Exception:
                    result = failures.capture()
                    abort(manager)
                    local.restore_grouped_outcomes()
                    self._tear_down_quietly(setup_info)
                    setup_info = _TORN_DOWN
                    # Cancelled (see .local.cancel_requested): final, whatever the policy.
                    decision = not result.check(CancelledError) and self._allowed(
                        self.get_retry_policy().job_error(result, data_cache))
                    if decision is True and result.check(JobTimeoutError):
                        decision = utcnow()  # queued again: a new run, a new time limit
                    if decision is True:
                        self._start_rerun(manager)
                        continue
                    if decision:
                        return self._reschedule(decision, manager)
                try:
                    self._store_outcome(result, data_cache)
                    self._start_first_callback()
                    # As this attempt left it: once committed, the job may
                    # be completed elsewhere (the job or Deferred it waits
                    # for finished), whose thread runs its callbacks then.
                    settled = self._status_id
                    if not local.defer_outcome(self):
                        manager.commit()
                except UNWIND:
                    manager.abort()
                    self._tear_down_quietly(setup_info)
                    raise
                except Exception as error:
                    count_conflict(error, OUTCOME)
                    commit_failure = failures.capture()
                    abort(manager)
                    local.restore_grouped_outcomes()
                    self._tear_down_quietly(setup_info)
                    self._check_not_reassigned(manager)
                    decision = self._allowed(
                        self.get_retry_policy().commit_error(commit_failure, data_cache))
                    if decision is True:
                        self._start_rerun(manager)
                        continue
                    if decision:
                        return self._reschedule(decision, manager)
                    self._log_lost_outcome(result, commit_failure)

                    def store_commit_failure():
                        self._store_commit_failure(commit_failure, data_cache)
                        return self._status_id

                    settled = retry_forever(
                        store_commit_failure, manager,
                        f"storing the commit failure of {self!r}", giving_up=ReassignedError)
                else:
                    self._tear_down_quietly(setup_info)
            break
        local.note_outcome_settled(self)
        self._log_outcome()
        if settled == _CALLBACKS:
            self.resume_callbacks()
        return self._result

    def _allowed(self, decision):
        """The retry policy's ``decision`` as ``False``, ``True`` or an aware
        datetime: refuse retries past the deadline, reschedules without a
        queue, and decisions of another kind (logged: a policy's mistake,
        say seconds as a number, must not rerun the job without end)."""
        if decision is False or decision is None:
            return False
        sound = (decision is True or isinstance(decision, timedelta)
                 or isinstance(decision, datetime) and decision.utcoffset() is not None)
        if not sound:
            events.critical("%r: its retry policy decided %r, which is neither a bool, a "
                            "timedelta nor an aware datetime; not retrying", self, decision)
            return False
        if self.deadline_passed():
            trace.warning("%r: not retrying, its begin_by deadline has passed", self)
            return False
        if decision is not True:
            if self.queue is None:
                events.critical("%r: cannot reschedule a job that is not in a queue", self)
                return False
            if isinstance(decision, timedelta):
                decision = utcnow() + decision
        return decision

    def _reschedule(self, when, manager):
        # The policy decided after the attempt was aborted (it may even have
        # been created then), and retry_forever begins a new transaction:
        # keep the policy and what it recorded in its data.
        policy = self.get_retry_policy()
        recorded = dict(policy.data)

        def requeue():
            self.return_to_queue(when)
            if self._retry_policy is None:
                self._retry_policy = policy
            self._retry_policy.data.update(recorded)

        retry_forever(requeue, manager, f"rescheduling {self!r}")
        trace.info("%r rescheduled for %s", self, when)
        return self

    def return_to_queue(self, when=None, first=True):
        """Leave the agent holding this job, if any, and queue it again: first
        in line, or to start at ``when``, or (``first=False``) back among the
        jobs due when it was.  Commits nothing."""
        queue = self.queue
        agent = self.agent
        if agent is not None:
            agent.release(self)
        self._reset()
        queue.requeue(self, when, first)

    def _reset(self):
        self._status_id = _NEW
        self._result = None
        self._deferred = False
        self.active_start = None
        self.active_end = None
        self.parent = None

    def _check_not_reassigned(self, manager):
        """Begin a transaction; raise :class:`ReassignedError` unless the
        attempt this thread runs is still the job's current one.

        Each attempt in a worker thread carries the thread's token
        (:attr:`holder`): a sibling that took the job over, or another
        thread of this process that claimed it again after this worker was
        wrongly found dead, started a new attempt with another token.  A
        callback is checked like any job (it is not held by an agent, its
        job is).
        """
        manager.begin()
        self._check_current_attempt()

    def _check_current_attempt(self):
        if self._status_id != _ACTIVE:
            raise ReassignedError(f"{self!r} is {self.status} now; another worker took it")
        token = local.holder()
        if token is not None and self.holder != token:
            raise ReassignedError(f"{self!r} was started again by another worker")

    def _start_rerun(self, manager):
        """Before running again in this thread (the retry policy may have
        slept): commit one more attempt, if the attempt is still this
        thread's; else raise :class:`ReassignedError`."""
        def count_attempt():
            self._check_current_attempt()
            self.attempts += 1

        retry_forever(count_attempt, manager, f"starting {self!r} again",
                      giving_up=ReassignedError)

    def _store_commit_failure(self, commit_failure, data_cache):
        """Make the failure of the commit of this attempt's outcome the result.

        A lost connection may have struck after the server stored the
        outcome: then it is left as it is.  Otherwise the outcome is
        unknown for a job that will not run again: its callable ran, but
        its changes may or may not have been committed.
        """
        token = local.holder()
        if self._status_id in (_CALLBACKS, _COMPLETED) and token is not None and self.holder == token:
            return  # stored after all: the connection broke after the server's vote
        self._check_current_attempt()
        if DISCONNECTED and commit_failure.check(*DISCONNECTED):
            commit_failure = failures.capture(OutcomeUnknownError(
                f"{self!r} ran, but the commit of its outcome failed "
                f"({failures.summary(commit_failure)}); it may or may not have been stored"))
        self._store_outcome(commit_failure, data_cache)

    def _store_outcome(self, result, data_cache):
        if IJob.providedBy(result):
            self._wait_for_job(result, data_cache)
        elif isinstance(result, Deferred):
            self._wait_for_deferred(result, data_cache)
        else:
            if data_cache or self._retry_policy is not None:
                self.get_retry_policy().update_data(data_cache)
            self._set_result(result)

    def _wait_for_job(self, inner, data_cache):
        if inner.status == COMPLETED:
            return self._store_outcome(inner.result, data_cache)
        if inner.status == NEW and inner.parent is None:
            queue = self.queue
            if queue is None:
                return self._store_outcome(inner(), data_cache)
            queue.put(inner)
        self._result = inner
        inner.add_callback(waiting_step(Job(self._take_result_of_waited_job)))

    def _take_result_of_waited_job(self, result):
        if self._status_id == _ACTIVE:
            if self._retry_policy is not None:
                self._retry_policy.update_data({})
            self._set_result(result)
            self._log_outcome()
        if self._status_id == _CALLBACKS:
            self.resume_callbacks()
        return result

    def _wait_for_deferred(self, deferred, data_cache):
        if deferred.called and not isinstance(deferred.result, Deferred):
            outcome = []
            deferred.addBoth(outcome.append)
            return self._store_outcome(outcome[0], data_cache)
        self._deferred = True
        # Listened to once the commit recording that this attempt waits has
        # landed: fired before, the Deferred would find the attempt not
        # even started (its start may share that commit).
        self._transaction_manager().get().addAfterCommitHook(
            _listen_once_waiting, (deferred, self._p_jar.db(), *object_id(self), self.attempts))

    def _set_result(self, result):
        # The commit storing this outcome also starts the worker thread's
        # next job, if it has one: one commit per job instead of two.
        local.start_successor()
        self._record_result(result, utcnow())

    def _record_result(self, result, end):
        self._deferred = False
        if failures.is_failure(result):
            result = failures.storable(result)
        else:
            try:
                check_loadable(result)
            except Exception as error:
                result = failures.capture(failures.UnpicklableError(
                    f"the result {abbreviated(result)} cannot be stored and loaded "
                    f"back: {type(error).__name__}: {error}"))
        self._result = result
        self.active_end = end
        if self._callbacks_pending():
            self._status_id = _CALLBACKS
        else:
            self._complete()
            self._complete_parent()

    def _complete(self):
        # Only the job is written: its agent moves it to the history at its
        # next claim or poll, so that the commit storing a result never
        # conflicts with other workers' bookkeeping (and never re-runs a job).
        self._status_id = _COMPLETED
        agent = self.parent
        if IAgent.providedBy(agent) and not agent.holds(self):
            # Released before it completed (its worker died): no sweep sees it.
            agent.completed.add(self, self.active_end)
        zope.event.notify(JobCompleted(self))

    def fail(self, error=None):
        """Give the job a failure as result without running it; run callbacks.

        For new, pending or assigned jobs (a pending job leaves its queue).
        The default error is a :class:`TimeoutError`.  A stored job's failure
        is committed with the current transaction.
        """
        status = self.status
        if status == CALLBACKS:
            return self.resume_callbacks()
        if status in (ACTIVE, COMPLETED):
            raise BadStatusError(f"cannot fail a {status} job: {self!r}")
        outcome = failures.capture(error if error is not None else TimeoutError())

        def store():
            if self.status == PENDING:
                self.queue.remove(self, completing=True)
            self._set_result(outcome)

        if self._p_jar is None:
            store()
        else:
            # Like __call__, commit the caller's transaction (retry_forever
            # would begin anew, dropping what the caller did, the put too).
            manager = self._transaction_manager()
            try:
                store()
                manager.commit()
            except EXPLOSIVE:
                manager.abort()
                raise
            except Exception:
                manager.abort()
                retry_forever(store, manager, f"failing {self!r}")
        self._log_outcome()
        if self._status_id == _CALLBACKS:
            self.resume_callbacks()
        return self._result

    def cancel(self, reason="cancelled"):
        """Take a pending job out of its queue and complete it with a
        :class:`~.exceptions.CancelledError` failure.

        Commits nothing.  The job goes to its queue's own history; its
        callbacks run in a worker, like those of an interrupted job.
        """
        if self.status != PENDING:
            raise BadStatusError(f"only a pending job can be cancelled; {self!r} is {self.status}")
        queue = self.queue
        queue.remove(self, completing=True)
        self._set_result(failures.capture(CancelledError(reason)))
        self.parent = queue
        queue.completed.add(self, self.active_end)
        self._log_outcome()
        if self._status_id == _CALLBACKS:
            queue.put_back(self._resume_callbacks_job())

    def copy(self):
        """Return a new job that does the same work: same class, callable,
        arguments (a shallow copy), quota names and policies, with copies of
        the callbacks; no status, result, schedule or annotations.

        This is how a finished job is retried.  Jobs whose work involves
        other jobs (composite jobs, a job calling a job, add_callbacks
        proxies) cannot be copied: their parts would be shared.
        """
        parts = [self._callable, *self.args, *self.kwargs.values()]
        if any(IJob.providedBy(part) for part in parts):
            raise ValueError(f"{self!r} calls or is given other jobs and cannot be copied")
        if any(not IJob.providedBy(callback) for callback in self.callbacks):
            raise ValueError(f"{self!r} has add_callbacks() callbacks and cannot be copied")
        cls = type(self)
        new = cls.__new__(cls)
        state = self.__getstate__()
        new.__setstate__({key: value for key, value in state.items()
                          if key in self.copied_options})
        callable = self._callable
        if getattr(callable, "__self__", None) is self:
            callable = getattr(new, callable.__name__)
        new._callable = callable
        new.args, new.kwargs = arguments.containers(new, self.args, self.kwargs)
        for callback in self.callbacks:
            new.add_callback(callback.copy())
        return new

    def interrupted(self):
        """Handle the death of the worker that ran this ACTIVE job (or held
        this ASSIGNED job, which may have run in a group commit that was
        lost: see :mod:`.groupcommit`).

        Called in the transaction that cleans up the dead worker's agent;
        commits nothing itself.  The retry policy decides: run again (first
        in the queue), later, or fail with
        :class:`~plone.app.asyncjobs.engine.exceptions.AbortedError` - for a
        job that is never run again (``max_interruptions`` 0), its subclass
        :class:`~plone.app.asyncjobs.engine.exceptions.OutcomeUnknownError`:
        a worker found dead may have been paused or cut off, and have run
        the job to the end.  A job whose callbacks were interrupted gets
        them resumed by a new job.
        """
        self.interruptions += 1
        if self._status_id == _CALLBACKS:
            self.queue.put_back(self._resume_callbacks_job())
            return
        if self._status_id == _NEW:
            # ASSIGNED: its start, and its run, may have been lost with a
            # group commit; count that possible run, so attempts >= runs.
            self.attempts += 1
        callback = self._first_pending_callback()
        if (callback is not None and callback.status == NEW
                and callback.reruns_when_interrupted() and self.reruns_when_interrupted()):
            # Its start and its run may have been lost with this job's
            # outcome, in a group commit: count that possible run too.
            callback.attempts += 1
        policy = self.get_retry_policy()
        decision = self._allowed(policy.interrupted())
        if decision:
            self.return_to_queue(None if decision is True else decision)
            return
        if self.reruns_when_interrupted():
            error = AbortedError(f"the worker running {self!r} died or was found dead, "
                                 f"and its retry policy gives up ({self.attempts} attempts)")
        else:
            # Found dead is not dead: a paused or cut-off worker may still
            # have run it to the end (its outcome is then refused).
            error = OutcomeUnknownError(
                f"the worker running {self!r} was found dead (it died, or was paused "
                "or cut off); whether the job ran to the end is unknown")
        self._set_result(failures.capture(error))
        self._log_outcome()
        if self._status_id == _CALLBACKS:
            self.queue.put_back(self._resume_callbacks_job())

    def time_out(self, error):
        """Handle this ACTIVE job, whose attempt its dispatcher abandoned
        because it ran past its time limit (see :mod:`.timeouts`):
        ``error`` (a :class:`~.exceptions.JobTimeoutError`) is the
        attempt's failure, and the retry policy decides, as for an error
        the job raised: queue it again (at once, or later), or store the
        failure (its callbacks then run in a job of their own).  Either way
        its agent releases it, freeing its quota slots.  Commits nothing.
        """
        failure = failures.capture(error)
        decision = self._allowed(self.get_retry_policy().job_error(failure, {}))
        if decision:
            self.return_to_queue(None if decision is True else decision)
            trace.info("%r timed out; queued again", self)
            return
        agent = self.agent
        if agent is not None:
            agent.release(self)
        self._set_result(failure)
        self._log_outcome()
        if self._status_id == _CALLBACKS:
            self.queue.put_back(self._resume_callbacks_job())

    def _resume_callbacks_job(self):
        job = internal(Job(self.resume_callbacks))
        job.retry_policy_factory = "forever"
        job.failure_log_level = logging.CRITICAL
        return job

    def _callback_interrupted(self, result):
        self.interruptions += 1
        if self.get_retry_policy().interrupted():
            self._reset_callback()
            self(result)
        else:
            self._reset_callback()
            self.fail(AbortedError(f"the worker running callback {self!r} died"))

    def _reset_callback(self):
        self._status_id = _NEW
        self.active_start = None

    # -- helpers --------------------------------------------------------------

    def _transaction_manager(self):
        jar = self._p_jar
        return jar.transaction_manager if jar is not None else transaction.manager

    def _tear_down_quietly(self, setup_info):
        if setup_info is _TORN_DOWN:
            return
        try:
            self.tear_down(setup_info)
        except Exception:
            events.critical("tear_down of %r failed", self, exc_info=True)

    def _log_outcome(self):
        self.load_arguments()  # here, not inside the logging call (see __repr__)
        result = self._result
        if failures.is_failure(result):
            level = self.failure_log_level or logging.ERROR
            events.log(level, "%r failed:\n%s", self, failures.traceback_text(result))
        elif self._status_id in (_CALLBACKS, _COMPLETED):
            # The engine's own jobs (a Plone job's event callback, say) at
            # DEBUG: one INFO line per job of a user, not two.
            level = logging.DEBUG if is_internal(self) else logging.INFO
            trace.log(level, "%r succeeded with %s", self, abbreviated(result))

    def _log_lost_outcome(self, result, commit_failure):
        if failures.is_failure(result):
            what = "failed with\n" + failures.traceback_text(result)
        else:
            what = f"succeeded with {abbreviated(result)}"
        events.error(
            "%r could not commit its outcome (%s); the job %s",
            self, commit_failure.getErrorMessage(), what,
        )


def _job_for(interface, candidate):
    """Adapter hook: ``IJob(candidate)`` is a new :class:`Job` calling
    ``candidate`` (a job adapts to itself), as in zc.async.  So modules that
    make jobs of callables (callbacks, composites, queues) need not import
    this one."""
    if interface is IJob:
        return Job(candidate)
    return None


adapter_hooks.append(_job_for)


def _listen_once_waiting(committed, deferred, database, oid, database_name, attempt):
    """After-commit hook of the transaction in which attempt number
    ``attempt`` of a job returned ``deferred``: store its result when it
    fires, if that transaction committed; else the attempt is over (it
    runs again, or fails) and the result is ignored."""
    if committed:
        deferred.addBoth(_complete_later, database, oid, database_name, attempt)
    else:
        deferred.addBoth(lambda result: None)


def _complete_later(result, database, oid, database_name, attempt):
    """Store the result of a Deferred that attempt number ``attempt`` of a
    job returned, in a connection of its own, if the job still waits for
    it: a job taken over meanwhile (its worker found dead, or its time
    limit passed) runs another attempt, whose outcome is the one to keep."""
    manager = transaction.TransactionManager()
    connection = database.open(transaction_manager=manager)
    try:
        job = load(connection, oid, database_name)

        def store():
            if job._status_id == _ACTIVE and job._deferred and job.attempts == attempt:
                job._set_result(result)
                return True
            return False

        if not retry_forever(store, manager, f"storing the deferred result of {job!r}"):
            trace.warning("%r: the Deferred of its attempt %d fired after the job moved "
                          "on (attempt %d, %s); its result is dropped",
                          job, attempt, job.attempts, job.status)
            return None
        job._log_outcome()
        if job._status_id == _CALLBACKS:
            job.resume_callbacks()
    finally:
        manager.abort()
        connection.close()
    return None
