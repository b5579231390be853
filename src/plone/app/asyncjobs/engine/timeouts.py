"""Running-time limits: a job that runs too long is asked to stop, then abandoned.

A job's time limit is its ``timeout`` (seconds, given to
:meth:`.queue.Queue.put`), else its queue's ``default_timeout``; ``None``
means no limit.  It counts from when a worker thread starts running the
job: reruns in the same thread after a conflict count toward the same
limit; a run rescheduled by its retry policy starts anew.  It ends when
the thread has the job's outcome committed, or waiting for a group commit:
the callbacks that run next in the same thread are not limited.  A job
completed meanwhile by another process (which found this one dead) is
still limited here: its attempt in this thread is stopped all the same.

The dispatcher whose thread runs the job enforces the limit, in its
reactor thread (:class:`TimeLimits`):

1. When the limit is reached, it asks the job to stop, in memory (nothing
   is written to the database): :func:`.local.cancel_requested` turns
   true, and :func:`.local.check_cancelled` raises
   :class:`~.exceptions.JobTimeoutError`.  A job that honours the request
   - raises, or returns after seeing it - ends with that failure, its
   changes aborted, and its retry policy decides like for any error.
2. If the job still runs ``timeout_grace`` seconds later (its queue's,
   default :data:`DEFAULT_GRACE`), the dispatcher abandons the attempt:
   the thread's transaction manager refuses every commit from then on
   (:class:`~.exceptions.AttemptAbandoned`, see :class:`FencedManager`),
   the job's agent releases it (its agent and quota slots are free), its
   retry policy decides on a ``JobTimeoutError`` outcome
   (:meth:`.job.Job.time_out`), the other jobs the thread held are handed
   to their policies like those of a dead worker, and a new worker thread
   takes the abandoned one's place.
3. The dispatcher then interrupts the abandoned thread: it raises
   :class:`~.exceptions.AttemptInterrupted` in that thread's Python code
   while the job's own code runs (:func:`interrupt_thread`,
   :func:`.local.interruptible`), again every ``timeout_grace`` seconds while
   the thread lives (a job may catch it, or be blocked in a call that does
   not return to Python).  The abandoned thread ends when the job returns,
   first tries to commit, or unwinds from the interruption, committing
   nothing; it then closes its connection.

An attempt whose job was taken over elsewhere (a sibling found this
dispatcher dead) is abandoned and interrupted the same way, with or
without a time limit, ``timeout_grace`` seconds after a poll found it
taken over and asked it to stop (:meth:`TimeLimits.taken_over`).
"""
import ctypes
import time

import transaction

from plone.app.asyncjobs.engine.exceptions import AttemptAbandoned
from plone.app.asyncjobs.engine.exceptions import AttemptInterrupted
from plone.app.asyncjobs.engine.exceptions import JobTimeoutError
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.engine.validation import is_finite_number
from plone.app.asyncjobs.engine.validation import is_number


#: Seconds a job may run on after it was asked to stop, when its queue
#: does not say (``timeout_grace``).
DEFAULT_GRACE = 10.0

#: Seconds the timer fires after a limit, so that the limit has passed.
TIMER_SLACK = 0.01


def check_timeout(value, name="timeout", zero=False):
    """Return ``value`` if it is a time limit (a positive, finite number of
    seconds; ``zero``: or 0) or ``None``; else raise ``TypeError`` or
    ``ValueError``."""
    if value is None:
        return None
    if not is_number(value):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if not is_finite_number(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be a {'' if zero else 'positive '}finite number of "
                         f"seconds{', or 0' if zero else ''}, not {value!r}")
    return value


def set_timeout(job, timeout=None):
    """Check ``timeout`` (``None``: the one ``job`` has) with
    :func:`check_timeout` and set it on ``job``."""
    limit = check_timeout(job.timeout if timeout is None else timeout)
    if limit is not None:
        job.timeout = limit


def time_limit(job):
    """The seconds ``job`` may run: its ``timeout``, else its queue's
    ``default_timeout``; ``None`` for no limit."""
    if job.timeout is not None:
        return job.timeout
    queue = job.queue
    return None if queue is None else queue.default_timeout


def grace(job):
    """The seconds ``job`` may run on after it was asked to stop."""
    queue = job.queue
    value = None if queue is None else queue.timeout_grace
    return DEFAULT_GRACE if value is None else value


class Watch:
    """The time limit of the attempt one worker thread runs (in memory),
    and the end of its grace once its job was taken over elsewhere."""

    def __init__(self, key, limit, grace):
        #: ``(oid, database)`` of the job.
        self.key = key
        #: Seconds it may run; ``None``: no limit (watched since taken over).
        self.limit = limit
        self.grace = grace
        self.started = time.monotonic()
        #: Whether the job was asked to stop at its limit.
        self.asked = False
        #: When (monotonic) the attempt is abandoned because its job was
        #: taken over elsewhere (see :meth:`TimeLimits.taken_over`).
        self.taken_over_until = None
        #: Whether its thread noted the job's outcome settled (its callbacks
        #: may still run in the thread: they are not limited).
        self.ended = False

    @classmethod
    def of(cls, job, key):
        """The watch of ``job`` (whose key is ``key``), or ``None`` without a limit."""
        limit = time_limit(job)
        return None if limit is None else cls(key, limit, grace(job))

    def next_step(self):
        """When (monotonic) the job is asked to stop, or abandoned: once
        asked at its limit, or once taken over."""
        steps = [] if self.taken_over_until is None else [self.taken_over_until]
        if self.limit is not None:
            steps.append(self.started + self.limit + (self.grace if self.asked else 0))
        return min(steps)

    def taken_over_by(self, now):
        """Whether the grace of the job taken over elsewhere ended by ``now``."""
        return self.taken_over_until is not None and self.taken_over_until <= now

    def error(self):
        return JobTimeoutError(f"timed out after {self.limit:g} s")


def interrupt_thread(thread_id):
    """Raise :class:`~.exceptions.AttemptInterrupted` in the thread
    ``thread_id`` (``threading.get_ident()`` there) when it next runs Python
    code; return whether it was asked to."""
    changed = _set_async_exception(thread_id, AttemptInterrupted)
    if changed > 1:  # several thread states of that id: CPython says undo
        withdraw_interrupt(thread_id)
    return changed == 1


def withdraw_interrupt(thread_id):
    """Drop an interruption :func:`interrupt_thread` asked for that has not
    been raised yet."""
    _set_async_exception(thread_id, None)


def _set_async_exception(thread_id, exception_class):
    # CPython's documented way to raise in another thread; NULL withdraws.
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id),
        None if exception_class is None else ctypes.py_object(exception_class))


class FencedManager(transaction.TransactionManager):
    """A worker thread's transaction manager: once :attr:`abandoned`, every
    transaction it hands out (:meth:`get`, so ``transaction.commit()``
    too) refuses to commit, raising :class:`~.exceptions.AttemptAbandoned`.

    Installed as the thread's ``transaction.manager`` (see :func:`install`),
    so that the job's own commits are refused as well as the engine's:
    ``transaction.commit()``, ``transaction.get().commit()`` and the
    manager's ``commit()`` all get the transaction from :meth:`get`.  (A
    transaction object taken before the abandonment and committed directly
    would escape; neither the engine nor usual job code does that.)
    """

    #: Why the attempt was abandoned (false: it was not).
    abandoned = False
    _refused = None

    def get(self):
        txn = super().get()
        if self.abandoned and txn is not self._refused:
            txn.join(_Refusal(self))
            self._refused = txn
        return txn

    def check(self):
        """Raise :class:`~.exceptions.AttemptAbandoned` if abandoned (for
        writes that do not go through this manager)."""
        if self.abandoned:
            raise AttemptAbandoned(f"this worker thread's attempt was abandoned because "
                                   f"{self.abandoned}: nothing it does is committed")


def install():
    """Give the calling thread a :class:`FencedManager` as its
    ``transaction.manager``; return it."""
    fenced = transaction.manager.manager = FencedManager()
    return fenced


def check_not_abandoned():
    """Raise :class:`~.exceptions.AttemptAbandoned` in a worker thread
    whose attempt was abandoned; do nothing elsewhere."""
    manager = getattr(transaction.manager, "manager", None)
    if isinstance(manager, FencedManager):
        manager.check()


class _Refusal:
    """A data manager that fails the commit of the transaction it joined."""

    def __init__(self, manager):
        self.transaction_manager = manager

    def sortKey(self):
        return "\0 asyncjobs abandoned attempt"  # before every other participant

    def commit(self, txn):
        # Not in tpc_begin: the participants that began (all of them, by
        # now) are then aborted cleanly, before any of them stored anything.
        self.transaction_manager.check()

    def abort(self, txn):
        pass

    tpc_begin = tpc_vote = tpc_finish = tpc_abort = abort


class TimeLimits:
    """Enforces the time limits of the jobs one dispatcher's threads run.

    :meth:`check` runs in the reactor thread: when a worker thread starts a
    job with a limit (:meth:`started`), and then on a timer set for the next
    step of the nearest limit.
    """

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._timer = None
        #: The abandoned threads still alive: ``{thread: (when to interrupt
        #: it again (monotonic), grace)}``.
        self._interrupting = {}

    def started(self):
        """A worker thread started a job with a limit, or one was taken
        over (any thread): check, and set the timer, soon."""
        if self.dispatcher.activated:
            self.dispatcher.reactor.callFromThread(self.check)

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def check(self):
        """Ask the jobs past their limits to stop, abandon those past their
        grace too, and set the timer for the next step."""
        dispatcher = self.dispatcher
        if not dispatcher.activated:
            return
        now = time.monotonic()
        upcoming = None
        for pool in list(dispatcher._pools.values()):
            for thread in pool.alive():
                watch = thread.watch
                if watch is None or watch.ended:
                    continue
                if watch.next_step() <= now:
                    if self._ended(thread, watch):
                        continue
                    taken_over = watch.taken_over_by(now)
                    if watch.asked or taken_over:
                        self._abandon(pool, thread, watch, taken_over)
                        continue
                    self._ask(thread, watch)
                step = watch.next_step()
                upcoming = step if upcoming is None else min(upcoming, step)
        for thread, (step, grace) in list(self._interrupting.items()):
            if step <= now:
                step = self._interrupt(thread, grace, now)
            if step is not None:
                upcoming = step if upcoming is None else min(upcoming, step)
        self.stop()
        if upcoming is not None:
            self._timer = dispatcher.reactor.callLater(
                max(0, upcoming - now) + TIMER_SLACK, self.check)

    def _ended(self, thread, watch):
        """Whether the thread noted the outcome of the watched job settled:
        committed, or waiting for a group commit (then its callbacks run,
        which the limit does not cover).  Only the thread knows: a job
        found completed in the database may have been completed by another
        process that found this one dead, while it still runs here."""
        settled = thread.group.settled
        watch.ended = settled is not None and settled >= watch.started
        return watch.ended

    def _ask(self, thread, watch):
        watch.asked = True
        if thread.note_cancel(watch.key, watch.error()):
            self.dispatcher.statistics.add("jobs asked to stop at their time limit")
            events.warning("job %s ran past its time limit (%g s) in %s: asking it to stop",
                           watch.key, watch.limit, thread.name)

    def taken_over(self, thread, key, grace):
        """The job ``key`` that ``thread`` runs was taken over elsewhere (a
        sibling found this dispatcher dead): it was asked to stop; abandon
        and interrupt its attempt ``grace`` seconds from now if it still
        runs then (any thread; the timer is set after the caller's work, as
        a poll learns it within its transaction)."""
        if thread.watch_taken_over(key, grace):
            self.started()

    def _abandon(self, pool, thread, watch, taken_over=False):
        if not pool.abandon(thread, watch, taken_over):
            return
        dispatcher = self.dispatcher
        if taken_over:
            dispatcher.statistics.add("jobs abandoned after a takeover")
            events.error("job %s, taken over elsewhere, still runs %g s after it was asked "
                         "to stop; abandoning it in %s: the job is interrupted, and a new "
                         "thread replaces it", watch.key, watch.grace, thread.name)
        else:
            dispatcher.statistics.add("jobs abandoned at their time limit")
            events.error("job %s still runs %g s after it was asked to stop (time limit %g s); "
                         "abandoning it in %s: nothing that thread does from now on is "
                         "committed, the job is interrupted, and a new thread replaces it",
                         watch.key, watch.grace, watch.limit, thread.name)
        held = thread.holding() - {watch.key}
        # First, as it needs no database: a thread computing in Python
        # holds the interpreter from this thread's requests to the storage.
        self._interrupt(thread, watch.grace, time.monotonic())
        self._settle(pool, thread, watch, held, taken_over)

    def _interrupt(self, thread, grace, now):
        """Interrupt the abandoned ``thread`` if it still runs a job; return
        when to do it again, or ``None`` once it no longer needs to be."""
        if not thread.interrupt():
            self._interrupting.pop(thread, None)
            return None
        self.dispatcher.statistics.add("abandoned threads interrupted")
        step = now + grace
        self._interrupting[thread] = step, grace
        return step

    def _settle(self, pool, thread, watch, held, taken_over):
        """Store the timeout of the abandoned attempt (not of one taken over:
        its job is another's now) and give up the other jobs its thread
        held (``held``, their keys)."""
        dispatcher = self.dispatcher
        connection = dispatcher._connection

        def ours(job):
            agent = job.agent
            return (agent is not None and agent.holds(job) and agent.name == pool.agent_name
                    and agent.parent.UUID == dispatcher.uuid)

        def settle():
            job = load(connection, *watch.key)
            if (not taken_over and ours(job) and job.status == ACTIVE
                    and job.holder == thread.holder):
                job.time_out(watch.error())
            elif ours(job):
                job.agent.give_up(job)  # it ended meanwhile; what is left goes on elsewhere
            for key in held:
                other = load(connection, *key)
                if ours(other):
                    other.agent.give_up(other)
            return job

        try:
            job = retry_conflicts(settle, connection.transaction_manager,
                                  f"storing the timeout of job {watch.key}")
        except Exception:
            events.critical("could not store the timeout of job %s; the next polls hand it "
                            "to its retry policy", watch.key, exc_info=True)
            return
        info = dispatcher.jobs.get(watch.key)
        if not taken_over and info is not None and info["completed"] is None:
            dispatcher.job_finished(info, job)
