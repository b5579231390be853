"""Worker threads: the threads of one agent of one dispatcher.

Each thread holds its own ZODB connection for its whole life (so its object
cache stays warm).  A thread claims a job and starts it in one commit, runs
it, and immediately claims the next; only when its agent has nothing to
give does it wait, until the dispatcher wakes it (every poll, or sooner
when a job is queued or becomes due: then one thread is woken, and each
thread that finds a job wakes one more, so that one job does not make
every idle thread race for it).  While all threads of a pool are busy
with short jobs, a thread claims a batch at once and starts each next job
in the commit that stores the outcome of the previous one; the outcomes of
short jobs that change nothing else share one commit
(:mod:`.groupcommit`): two commits per batch, not one per job.
"""
import collections
import contextlib
import threading
import time
from datetime import timedelta

import transaction
from persistent import Persistent
from ZODB.POSException import ConflictError
from ZODB.POSException import ReadConflictError

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import timeouts
from plone.app.asyncjobs.engine.cancel import cancel_request
from plone.app.asyncjobs.engine.connectivity import catch_up
from plone.app.asyncjobs.engine.exceptions import AttemptAbandoned
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import CancelledError
from plone.app.asyncjobs.engine.exceptions import ReassignedError
from plone.app.asyncjobs.engine.groupcommit import GroupCommit
from plone.app.asyncjobs.engine.ids import load
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.pickups import NEXT
from plone.app.asyncjobs.engine.pickups import POLL
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.transactions import EXPLOSIVE
from plone.app.asyncjobs.engine.transactions import DISCONNECTED
from plone.app.asyncjobs.engine.transactions import abort
from plone.app.asyncjobs.engine.transactions import backoff
from plone.app.asyncjobs.engine.transactions import conflict_pause
from plone.app.asyncjobs.engine.transactions import retry_conflicts
from plone.app.asyncjobs.engine.transactions import retry_forever


CLAIM_ATTEMPTS = 5

#: A thread whose last job took less than SHORT_JOB seconds (up to the
#: commit of its outcome: its callbacks do not count), while every
#: thread of its pool found a job at its last claim (there is more work
#: than threads), claims up to BATCH jobs at once (one commit for all);
#: otherwise one at a time, so that jobs do not wait in a batch while
#: another thread could run them (jobs of a parallel() composite may even
#: wait for each other).  Only jobs shorter than SHORT_JOB share a commit
#: (see :mod:`.groupcommit`).
SHORT_JOB = 0.05
BATCH = 16

#: Seconds between two checks in the database by :meth:`WorkerThread.superseded`
#: and :meth:`WorkerThread.cancel_error`.
VERIFY_EVERY = 1.0

#: Why an attempt was abandoned: its time limit (see :mod:`.timeouts`), its
#: dispatcher's lease (see :meth:`WorkerThread.lapsed`), its job taken over
#: elsewhere (see :meth:`AgentWorkers.stop_superseded`), or its dispatcher
#: stopping past the shutdown grace (see :meth:`AgentWorkers.abandon_running`).
TIMED_OUT = "its job's time limit and grace period passed"
LEASE_LAPSED = "its dispatcher's lease lapsed"
TAKEN_OVER = "its job was taken over elsewhere and its grace period passed"
STOPPED = "its dispatcher stopped and the shutdown grace period passed"


class AgentWorkers:
    """The pool of worker threads for one agent; sized by the dispatcher."""

    def __init__(self, dispatcher, queue_name, agent_name):
        self.dispatcher = dispatcher
        self.queue_name = queue_name
        self.agent_name = agent_name
        self._condition = threading.Condition()
        self._wanted = 0
        self._threads = []
        #: Threads beyond the wanted size, which left :attr:`_threads` and
        #: are handing back what they hold, then closing their connection.
        self._leaving = []
        self._wakes = 0
        self._woken_by = POLL
        self._woken_for = None
        self.waiting = 0
        #: Held while a thread claims: the claims of one pool write the same
        #: objects (the agent's held jobs, the front of its history), and
        #: its process commits one transaction at a time anyway.
        self.claiming = threading.Lock()

    @property
    def size(self):
        return self._wanted

    def alive(self):
        return [thread for thread in self._threads if thread.is_alive()]

    def set_size(self, size):
        """Run ``size`` threads: start missing ones; extra ones exit when idle."""
        with self._condition:
            self.dispatcher.reserve_connections(size - self._wanted)
            self._wanted = size
            self._threads = self.alive()
            if len(self._threads) > size:
                # Only then: every poll sets the size, and waking every idle
                # thread at each poll made each of them claim nothing.
                self._condition.notify_all()
            while len(self._threads) < size:
                thread = WorkerThread(self)
                self._threads.append(thread)
                thread.start()

    def wake(self, how=POLL, threads=None, lane=None):
        """Make waiting threads try to claim a job now: all of them, or up
        to ``threads``; ``how`` says why (see :mod:`.pickups`); ``lane``,
        if known, is the number of a lane with a job due: the claim of the
        first thread to wake starts there."""
        with self._condition:
            self._wakes += 1
            self._woken_by = how
            self._woken_for = lane
            if threads is None:
                self._condition.notify_all()
            else:
                self._condition.notify(threads)

    def relay(self):
        """Wake one more waiting thread: the caller found a job, there may be more."""
        with self._condition:
            if self.waiting:
                self._condition.notify(1)

    def abandon(self, thread, watch, taken_over=False):
        """Abandon the attempt ``thread`` runs, if it still runs the one
        ``watch`` watches (see :mod:`.timeouts`), past its time limit or,
        with ``taken_over``, its job taken over elsewhere: its commits are
        refused from now on, and a new thread takes its place.  Returns
        whether it was abandoned."""
        reason = TAKEN_OVER if taken_over else TIMED_OUT
        with self._condition:
            if thread.watch is not watch or not self._drop(thread, watch.key, reason):
                return False
            while len(self._threads) < self._wanted:
                replacement = WorkerThread(self)
                self._threads.append(replacement)
                replacement.start()
            return True

    def abandon_lapsed(self, thread, key):
        """Abandon the attempt ``thread`` (the calling thread) runs at job
        ``key`` because the dispatcher's lease lapsed (see
        :meth:`WorkerThread.lapsed`); return whether it was abandoned now.
        The next poll starts the thread that takes its place: the job is
        to stop first, without waiting for a thread to start."""
        with self._condition:
            return self._drop(thread, key, LEASE_LAPSED)

    def abandon_running(self):
        """Abandon the attempts of the threads still running a job, as their
        dispatcher stops past its shutdown grace, and interrupt them (see
        :mod:`.timeouts`): nothing they do commits from now on, and a
        dispatcher started again in this process does not run their jobs
        beside them.  Returns how many were interrupted."""
        with self._condition:
            running = [(thread, thread.current_job) for thread in list(self._threads)
                       if thread.is_alive() and thread.current_job is not None]
            for thread, key in running:
                self._drop(thread, key, STOPPED)
        return sum(1 for thread, _ in running if thread.interrupt())

    def _drop(self, thread, key, reason):
        if thread not in self._threads:
            return False
        thread.abandon(key, reason)
        self._threads.remove(thread)
        return True

    def _must_exit(self, thread):
        # Abandoned, or beyond the wanted size.  The caller holds the condition.
        return thread not in self._threads or self._threads.index(thread) >= self._wanted

    def _should_exit(self, thread):
        with self._condition:
            if self._must_exit(thread):
                if thread in self._threads:
                    self._threads.remove(thread)
                    self._leaving = [t for t in self._leaving if t.is_alive()] + [thread]
                return True
            return False

    def _wakes_seen(self):
        with self._condition:
            return self._wakes

    def _wait(self, thread, wakes_seen, timeout):
        """Make ``thread`` wait for a wake, unless one came since it saw
        ``wakes_seen`` or it must exit; return how it was woken (see
        :mod:`.pickups`) and the lane its claim should start with, if known."""
        with self._condition:
            if self._must_exit(thread):
                # Checked under the condition: a resize since the thread's
                # last check notified no waiting thread.
                return POLL, None
            if self._wakes == wakes_seen:
                self.waiting += 1
                try:
                    if not self._condition.wait(timeout):
                        return POLL, None
                finally:
                    self.waiting -= 1
            lane, self._woken_for = self._woken_for, None
            return self._woken_by, lane

    def running(self):
        """How many of the pool's living threads run a job now."""
        return sum(1 for thread in self.alive() if thread.current_job is not None)

    def in_hand(self):
        """``(oid, database)`` of the jobs the pool's living threads hold:
        claimed, and neither finished (their outcomes committed) nor
        handed back."""
        return set().union(*(thread.holding() for thread in self.alive()))

    def recover_strays(self, agent, seen):
        """Hand to their retry policies the jobs ``agent`` holds that no
        thread of this pool works on; return how many.

        A job is a stray when it is ASSIGNED, ACTIVE (not waiting for
        another job) or in CALLBACKS (none running), no living thread of
        the pool has it in hand, and it did not change since the previous
        call saw it so: ``seen`` (a dict the caller keeps between calls)
        maps such jobs to their state then.  So a job a thread lost (its
        thread failed, or abandoned it by mistake) is recovered by the
        second poll that finds it - within two poll intervals.
        """
        in_hand = self.in_hand()
        strays = {}
        for job in agent:
            key = object_id(job)
            if key not in in_hand and _possibly_stranded(job):
                strays[key] = _progress(job)
        recovered = 0
        for job in list(agent):
            key = object_id(job)
            if key in strays and seen.get(key) == strays[key]:
                events.critical("%r is %s, held by %r, and no worker thread works on it; "
                                "handing it to its retry policy", job, job.status, agent)
                agent.give_up(job)
                del strays[key]
                recovered += 1
        seen.clear()
        seen.update(strays)
        return recovered

    def stop_superseded(self, agent):
        """Ask the threads running a job that was taken over elsewhere to
        stop (see :func:`.local.stop_requested`); return how many.  Also
        pass on the cancel requests made for the jobs they run (see
        :func:`.local.cancel_requested`).

        A job was taken over when ``agent`` no longer holds it (a sibling
        found this dispatcher dead and released its jobs), or when another
        attempt started (another thread's token is on it).
        """
        asked = 0
        for thread in self.alive():
            key = thread.current_job
            if key is None or thread.taken_over == key:
                continue
            claimed_in = thread.claim_serial
            try:
                job = load(agent._p_jar, *key)
                job._p_activate()
            except ReadConflictError:
                continue  # queued after this view of the database began
            if claimed_in is not None and job._p_serial < claimed_in:
                # This view of the database predates the claim (the poll
                # began before it committed): it cannot tell.
                continue
            thread.note_cancel_request(key, cancel_request(job))
            current = agent.holds(job) and (job.holder == thread.holder
                                            or job.status == ASSIGNED)
            if not current and thread.current_job == key:
                thread.taken_over = key
                asked += 1
                events.error("%r was taken over while %s ran it (this worker was found dead?); "
                             "its outcome will not be committed: asking it to stop",
                             job, thread.name)
                self.dispatcher.time_limits.taken_over(thread, key, timeouts.grace(job))
        return asked

    def any_found_nothing(self):
        """Whether a thread of the pool found no job at its last claim: then
        there is not more work than threads, and nobody should batch."""
        return any(thread.found_nothing for thread in self.alive())

    def join(self, timeout):
        """Wait up to ``timeout`` seconds for every thread to end, those
        leaving since the size went down included; return the living."""
        deadline = time.monotonic() + timeout
        with self._condition:
            threads = self._threads + self._leaving
        for thread in threads:
            thread.join(max(0, deadline - time.monotonic()))
        return [thread for thread in threads if thread.is_alive()]


def _possibly_stranded(job):
    status = job.status
    if status == CALLBACKS:
        return not any(callback.status == ACTIVE for callback in job.callbacks)
    return status == ASSIGNED or status == ACTIVE and not job.waiting


def _progress(job):
    """What changes while anybody works on ``job``: its state and its callbacks'."""
    return (job._p_serial, tuple(callback._p_serial for callback in job.callbacks))


class WorkerThread(threading.Thread):
    """Claims and runs jobs for its pool until told to exit."""

    def __init__(self, pool):
        super().__init__(
            name=f"asyncjobs worker {pool.queue_name!r}/{pool.agent_name}", daemon=True
        )
        self.pool = pool
        self.dispatcher = pool.dispatcher
        self.current_job = None
        #: Whether this thread's last claim found no job (see _batch_size).
        self.found_nothing = True
        #: How this thread came to its next claim (see :mod:`.pickups`).
        self.pickup = POLL
        #: The lane its next claim starts with, if the wake said.
        self._start_lane = None
        #: ``(oid, database)`` of the jobs this thread holds (see
        #: :meth:`AgentWorkers.recover_strays`): added before the claim
        #: commits, removed once finished or handed back.
        self.in_hand = set()
        #: The jobs this thread finished since its last claim, which its
        #: next claim moves to its agent's history.
        self._finished = []
        #: ``(oid, database)`` of a job the dispatcher found taken over
        #: elsewhere while this thread ran it (see :meth:`superseded`).
        self.taken_over = None
        #: The transaction id of the commit that claimed this thread's
        #: current batch (see :meth:`AgentWorkers.stop_superseded`).
        self.claim_serial = None
        #: This thread's token (see :func:`.local.bind_worker`).
        self.holder = None
        #: ``(key, error)`` of the request to stop the job this thread
        #: runs, once seen (see :meth:`cancel_error`).
        self.cancel = None
        #: The time limit of the job this thread runs (see :mod:`.timeouts`).
        self.watch = None
        #: This thread's transaction manager (see :class:`.timeouts.FencedManager`).
        self.fence = None
        #: When :meth:`_verify` last asked the database (monotonic).
        self._verified = time.monotonic()
        #: How many jobs' own code this thread runs now (a job may run
        #: another in its code): :meth:`interrupt` raises only then, never
        #: in the engine's code.
        self._interruptible = 0
        #: Whether :meth:`interrupt` raised (or is about to raise) in it.
        self._interrupt_asked = False
        self._interruptible_lock = threading.Lock()
        #: Guards :attr:`current_job` and :attr:`watch` as they change
        #: together (see :meth:`watch_taken_over`).
        self._attempt_lock = threading.Lock()

    def run(self):
        # The thread's own default manager: code run by jobs (Plone's catalog
        # queue, savepoints, mail) joins transaction.get(), which is this one;
        # it refuses every commit once the thread is abandoned.
        self.fence = manager = timeouts.install()
        # This thread's own manager, not the thread-local ``transaction.manager``
        # wrapper, so that the connection can be closed from another thread
        # (``DB.close`` closes those still open).
        connection = self.dispatcher.db.open(transaction_manager=manager)
        self.group = GroupCommit(manager, self._owns, self.dispatcher.statistics,
                                 timedelta(seconds=SHORT_JOB))
        local.bind_worker(self.dispatcher, self.pool.agent_name, self.group, self.superseded,
                          self.cancel_error, self._interruptible_run)
        self.holder = local.holder()
        batch = collections.deque()
        self._last_duration = None
        try:
            while not self.abandoned and not self.pool._should_exit(self):
                job = None
                try:
                    job = self._next_job(connection, manager, batch)
                    if job is not None:
                        self._run_job(job, manager, batch)
                except EXPLOSIVE:
                    if job is not None:
                        batch.appendleft(job)
                    raise
                except AttemptAbandoned:
                    break
                except Exception:
                    # Whatever failed (the storage, a job's repr, the engine),
                    # this thread hands back what it holds and goes on.
                    abort(manager)
                    self.dispatcher.statistics.add("worker thread errors")
                    events.critical("%s: unexpected error; handing back its %d job(s)",
                                    self.name, len(batch) + (job is not None),
                                    exc_info=True)
                    self._recover_after_error(job, batch, manager)
        finally:
            try:
                if not self.abandoned:
                    self._hand_back(batch, manager)
            finally:
                local.set_successor(None)
                abort(manager)
                connection.close()
                if self.abandoned:
                    events.warning("%s, abandoned because %s, ends; nothing it did since "
                                   "was committed", self.name, self.abandoned)

    @property
    def abandoned(self):
        """Why this thread's attempt was abandoned (see :meth:`abandon`), or ``False``."""
        return self.fence.abandoned if self.fence is not None else False

    def abandon(self, key, reason):
        """Refuse this thread's commits from now on: its attempt at job
        ``key`` was given up because of ``reason`` (see
        :meth:`AgentWorkers.abandon` and :meth:`lapsed`)."""
        self.fence.abandoned = reason
        self.taken_over = key  # so stop_requested() tells the job

    def watch_taken_over(self, key, grace):
        """Note that job ``key`` was taken over elsewhere: if this thread
        still runs it, its attempt is to be abandoned ``grace`` seconds
        from now unless it ends first; return whether it still runs it
        (any thread; see :meth:`.timeouts.TimeLimits.taken_over`)."""
        with self._attempt_lock:
            if self.current_job != key:
                return False
            if self.watch is None:
                self.watch = timeouts.Watch(key, None, grace)
            if self.watch.taken_over_until is None:
                self.watch.taken_over_until = time.monotonic() + grace
            return True

    def interrupt(self):
        """Raise :class:`~.exceptions.AttemptInterrupted` in this thread,
        whose attempt was abandoned, if it runs a job's own code (any
        thread; see :mod:`.timeouts`); return whether it was raised."""
        with self._interruptible_lock:
            asked = (bool(self.abandoned) and self._interruptible > 0
                     and timeouts.interrupt_thread(self.ident))
            self._interrupt_asked = self._interrupt_asked or asked
            return asked

    @contextlib.contextmanager
    def _interruptible_run(self):
        """Let :meth:`interrupt` raise in this thread during the block, in
        which a job's own code runs (see :func:`.local.interruptible`).  An
        interruption raised as it ends unwinds from here like one raised in
        the job's code (see :meth:`.job.Job._run`); one asked for but not raised
        yet is withdrawn, so that it never lands in the engine's code (a
        claim, a lock held, the thread's close-down)."""
        counted = False  # set before the count grows: an interruption may come at once
        try:
            with self._interruptible_lock:
                counted = True
                self._interruptible += 1
            yield
        finally:
            with self._interruptible_lock:
                if counted:
                    self._interruptible -= 1
                if not self._interruptible and self._interrupt_asked:
                    timeouts.withdraw_interrupt(self.ident)
                    self._interrupt_asked = False

    def holding(self):
        """``(oid, database)`` of the jobs this thread holds (any thread):
        those in hand, those whose outcomes wait for a group commit, and
        those finished that its next claim moves to the history."""
        group = getattr(self, "group", None)
        waiting = group.pending() if group is not None else []
        return set(self.in_hand) | {object_id(job) for job in [*waiting, *self._finished]}

    def superseded(self):
        """Whether the job this thread runs was taken over elsewhere (called
        by the job, through :func:`.local.stop_requested`).

        Besides what the polls found, asks the database itself when it did
        not for :data:`VERIFY_EVERY` seconds: so a worker that was paused
        (and found dead meanwhile) learns it at the job's first question
        after waking, not at its next poll.
        """
        key = self.current_job
        if key is None:
            return False
        if self.taken_over != key and not self.lapsed(key):
            self._verify(key)
        return self.taken_over == key

    def lapsed(self, key):
        """Whether this thread's attempt at job ``key`` must stop because its
        dispatcher's lease lapsed (see :meth:`.dispatcher.Dispatcher.lease_lapsed`):
        a sibling may have found the dispatcher dead and run the job
        elsewhere already.  Then the attempt is abandoned at once, without
        asking the database (a paused worker wakes up and stops before it
        does anything more): the thread commits nothing from now on, a new
        thread takes its place, and the job, still held here unless a
        sibling took it over, is handed to its retry policy by the next
        polls, as any job no thread works on (see
        :meth:`AgentWorkers.recover_strays`).
        """
        if self.abandoned or not self.dispatcher.lease_lapsed(self.pool.queue_name):
            return bool(self.abandoned)
        if self.pool.abandon_lapsed(self, key):
            self.note_cancel(key, AttemptAbandoned(
                "the worker's lease lapsed while it ran this job (paused, or cut off "
                "from the database for longer than its death interval)"))
            self.dispatcher.statistics.add("jobs stopped as their lease lapsed")
            self.dispatcher.wake()  # renews the lease if it can, replaces this thread
        return True

    def cancel_error(self, job):
        """The error that ends ``job`` if this thread runs it and it was
        asked to stop, else ``None`` (called through
        :func:`.local.cancel_requested`): a :class:`.exceptions.CancelledError`
        with the reason of a cancel request, learnt from the polls or from
        the database like :meth:`superseded`; or the
        :class:`.exceptions.JobTimeoutError` the dispatcher noted at the
        job's time limit (see :mod:`.timeouts`).  The first one noted stays.
        """
        key = self.current_job
        if key is None or object_id(job) != key:
            return None
        if (self.cancel is None or self.cancel[0] != key) and not self.lapsed(key):
            self._verify(key)
        cancel = self.cancel
        return cancel[1] if cancel is not None and cancel[0] == key else None

    def note_cancel_request(self, key, request):
        """Remember ``request`` (``(when, reason)`` or ``None``), the cancel
        request of job ``key``, if this thread still runs it."""
        if request is not None:
            self.note_cancel(key, CancelledError(request[1]))

    def note_cancel(self, key, error):
        """Ask job ``key`` to stop with ``error``, if this thread still runs
        it and it was not asked before; return whether it still runs it."""
        if self.current_job != key:
            return False
        if self.cancel is None or self.cancel[0] != key:
            self.cancel = (key, error)
        return True

    def _verify(self, key):
        """Ask the database, unless it was asked less than
        :data:`VERIFY_EVERY` seconds ago, whether job ``key`` is still this
        thread's and whether it was asked to stop."""
        now = time.monotonic()
        if now - self._verified < VERIFY_EVERY:
            return
        self._verified = now
        still_runs, request = self._read(key)
        if not still_runs:
            self.taken_over = key
        self.note_cancel_request(key, request)

    def _read(self, key):
        """Whether job ``key`` is still this thread's, as committed now
        (``True`` when the database cannot tell), and its cancel request."""
        try:
            # After a pause, what the client knows may predate the takeover.
            catch_up(self.dispatcher.db)
        except Exception:
            return True, None
        connection = self.dispatcher.db.open(transaction_manager=transaction.TransactionManager())
        try:
            job = load(connection, *key)
            agent = job.agent
            return (agent is not None and agent.holds(job) and job.holder == self.holder
                    and agent.parent.UUID == self.dispatcher.uuid), cancel_request(job)
        except Exception:
            return True, None
        finally:
            abort(connection.transaction_manager)
            connection.close()

    def _next_job(self, connection, manager, batch):
        """The next job of this thread's batch, claiming a batch if it is
        empty; ``None`` if there was none (after waiting for a wake)."""
        if not batch:
            wakes = self.pool._wakes_seen()
            committed, claimed, more = self._claim(
                connection, manager, self._finished, self._batch_size(self._last_duration))
            if committed:
                self._finished = []
            self.found_nothing = not (claimed or more)
            if not claimed:
                if more:
                    # It gave way to other claimers: jobs may be left, and
                    # nothing will ring for them.  Look again soon.
                    self.pool._wait(self, wakes, conflict_pause(CLAIM_ATTEMPTS))
                    self.pickup = NEXT
                else:
                    self.pickup, self._start_lane = self.pool._wait(
                        self, wakes, self.dispatcher.idle_wait())
                return None
            if more:
                # A job queued later rings again: waking another thread
                # now would only make it claim nothing.
                self.pool.relay()
            batch.extend(claimed)
        return batch.popleft()

    def _run_job(self, job, manager, batch):
        if job.interruptions:
            # Its worker died holding it before: it may kill this one too.
            # Run it alone, so that no other job's outcome or start is lost
            # with this worker (see Job.interruptions).
            rest = list(batch)
            batch.clear()
            self._hand_back(rest, manager)
            local.set_successor(None)
        else:
            local.set_successor(batch[0] if batch else None)
        if not self._ensure_started(job, manager):
            self.in_hand.discard(object_id(job))
            return
        started = time.monotonic()
        self.group.running = job
        try:
            self._perform(job, manager)
        finally:
            self.group.running = None
            self.in_hand.discard(object_id(job))
        # Up to the commit of its outcome, without its callbacks: their
        # commits made jobs queued by the Plone service (each with an event
        # callback) look long, and their batches handed back over and over.
        settled = local.outcome_settled()
        self._last_duration = (settled if settled is not None and settled >= started
                               else time.monotonic()) - started
        self._finished.append(job)
        if len(batch) > 1 and self._last_duration >= SHORT_JOB:
            # Jobs are not all short after all: let other threads take
            # the rest of the batch rather than wait here.  The next
            # job stays: the commit of this one may have started it.
            rest = [batch.pop() for _ in range(len(batch) - 1)]
            self._hand_back(rest, manager)

    def _recover_after_error(self, job, batch, manager):
        """After an unexpected error: record what is known of ``job`` and
        hand the rest of the batch back, without letting a second error
        end the thread (the polls recover what is left: see
        :meth:`AgentWorkers.recover_strays`)."""
        try:
            if job is not None:
                self._fail_abandoned(job, manager, failures.capture(), ran=False)
            self._hand_back(batch, manager)
        except EXPLOSIVE:
            raise
        except Exception:
            abort(manager)
            events.critical("%s could not hand back its jobs; the next polls recover them",
                            self.name, exc_info=True)
            time.sleep(backoff(1))
        finally:
            batch.clear()
            self.in_hand.clear()

    def _batch_size(self, last_duration):
        if (last_duration is not None and last_duration < SHORT_JOB
                and not self.pool.any_found_nothing()):
            return BATCH
        return 1

    def _ensure_started(self, job, manager):
        """Make sure ``job`` is marked started; ``False`` if it is no longer ours.

        The first job of a batch is started by the claim, the others with
        their predecessor's outcome (committed, or waiting in the open
        transaction for a group commit); this commit is only needed when
        that did not happen (say, the predecessor was rescheduled).  Expired
        jobs are not started: they are failed.

        A job that a commit of this thread started needs no look at the
        database either: the run begins its transaction by checking that
        the attempt is still this thread's, and a sibling could take the job
        over after any earlier look too.  On RelStorage that look cost two
        queries (its begin and its abort) between the claim and the start.
        """
        if self.group.in_current_transaction() and job.status == ACTIVE:
            return True
        self.group.flush()
        if job.status == ACTIVE and not job._p_changed and job.holder == self.holder:
            return True
        manager.begin()
        if not self._owns(job):
            manager.abort()
            return False
        if job.status != ASSIGNED or job.deadline_passed():
            manager.abort()
            return True

        def start():
            if job.status == ASSIGNED:
                job.mark_active()

        try:
            retry_conflicts(start, manager, f"starting {job!r}")
        except Exception:
            events.critical("%s could not start %r; a sibling will recover it",
                            self.name, job, exc_info=True)
            return False
        return job.status == ACTIVE

    def _owns(self, job):
        """Tell whether ``job`` is still held by this thread's own agent.

        A job of this thread's batch is started only by this thread (by its
        claim or by its previous job's result commit); if a sibling found
        this worker dead and handed the job to another worker, it is
        held elsewhere, and must not run here too.
        """
        agent = job.agent
        return (agent is not None and agent.holds(job) and agent.name == self.pool.agent_name
                and agent.parent.UUID == self.dispatcher.uuid
                and (job.status != ACTIVE or job.holder == self.holder))

    def _hand_back(self, jobs, manager):
        """Return claimed jobs this thread will not run to their queue
        (after committing the outcomes of those it ran)."""
        self.group.flush()
        if not jobs:
            return
        jobs = list(jobs)

        def hand_back():
            for job in jobs:
                # ACTIVE: started with its predecessor's outcome, never run.
                if job.status in (ASSIGNED, ACTIVE) and self._owns(job):
                    # Back where it was, not ahead of everything: the
                    # handed-back tree, which every claim reads first, would
                    # become a spot where the claims of all processes meet.
                    job.return_to_queue(first=False)

        try:
            # Under the claims' lock: a hand back writes the agent's held
            # jobs too, and conflicted with the claims of the other threads.
            with self.pool.claiming:
                retry_conflicts(hand_back, manager, f"{self.name} handing back {len(jobs)} jobs")
        except Exception:
            events.critical("%s could not hand back its unstarted jobs; the next polls "
                            "recover them", self.name, exc_info=True)
        finally:
            # Only now: a poll meanwhile would take the jobs, still held by
            # the agent, for strays and count them as interrupted.
            self.in_hand.difference_update(object_id(job) for job in jobs)

    def _agent(self, connection):
        try:
            queue = connection.root()[KEY][self.pool.queue_name]
            return queue.dispatchers[self.dispatcher.uuid][self.pool.agent_name]
        except KeyError:
            return None

    def _claim(self, connection, manager, finished, count):
        """Claim up to ``count`` jobs and start the first, in one commit.

        The same commit moves ``finished`` (the jobs this thread completed
        since its last claim) to its agent's history; grouped outcomes still
        waiting are committed before.  Returns ``(committed, claimed jobs,
        more)``: ``more`` is false if the claim took every job its queue
        had, so that no other thread need look; with no job claimed, it is
        true if the claim gave way to others claiming the same jobs.

        After :data:`CLAIM_ATTEMPTS` - 1 conflicts, the last attempt only
        moves ``finished``: that must not wait for the queue to calm down.
        """
        statistics = self.dispatcher.statistics
        self.group.flush()
        hinted, self._start_lane = self._start_lane, None
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            # A retry after a conflict starts in another lane.
            lane = (hinted if attempt == 1 and hinted is not None
                    else self.dispatcher.next_lane(self.pool.queue_name))
            wanted = count if attempt < CLAIM_ATTEMPTS else 0
            claimed = []
            try:
                with self.pool.claiming:
                    manager.begin()
                    agent = self._agent(connection)
                    if agent is None:
                        manager.abort()
                        return False, [], False
                    claimed = agent.claim_jobs(
                        wanted, lane=lane,
                        finished=finished, exclude=self.dispatcher.unclaimable,
                        running=self.pool.running())
                    if claimed and claimed[0].may_start_early():
                        claimed[0].mark_active()
                    keys = {object_id(job) for job in claimed}
                    more = bool(claimed) and len(agent.queue) > 0
                    self.in_hand.update(keys)
                    try:
                        manager.commit()
                    except BaseException:
                        self.in_hand.difference_update(keys)
                        raise
                if not wanted:
                    statistics.add("claims given way")
                    return True, [], True
                if not claimed:
                    statistics.add("empty claims")
                    return True, [], False
            except ConflictError as conflict:
                manager.abort()
                statistics.add("claim conflicts")
                statistics.add(f"claim conflicts on {conflict.class_name}")
                continue
            except EXPLOSIVE:
                manager.abort()
                raise
            except DISCONNECTED:
                abort(manager)
                self.dispatcher.connectivity.broken()
                events.info("%s could not claim a job: disconnected", self.name)
                time.sleep(backoff(attempt))
                return False, [], False
            except Exception:
                abort(manager)
                if not claimed:
                    events.critical("%s could not claim a job", self.name, exc_info=True)
                    time.sleep(backoff(attempt))
                    return False, [], False
                # A job this process cannot store (say, its callable cannot be
                # imported here) must not block the others: leave it pending
                # and skip it for a while (see .exclusions).  Which of the
                # claimed jobs it was is unknown: skip them all.
                pauses = [self.dispatcher.unclaimable.add(object_id(job)) for job in claimed]
                events.critical("%s cannot claim jobs %s; leaving them pending, tried "
                                "again here in %s", self.name,
                                [object_id(job) for job in claimed], max(pauses),
                                exc_info=True)
                continue  # its claim was aborted: try the next job
            self.dispatcher.unclaimable.claimed(keys)
            statistics.add("claims", len(claimed))
            self.claim_serial = claimed[0]._p_serial
            # Load the arguments stored apart (see .arguments) in one round
            # trip while the first job starts.
            connection.prefetch(*(part for job in claimed for part in (job.args, job.kwargs)
                                  if isinstance(part, Persistent)))
            return True, claimed, more
        return False, [], True  # every attempt conflicted: see the docstring

    def _perform(self, job, manager):
        job.load_arguments()  # before any log message shows them
        info = self.dispatcher.job_started(job, self.pool, self.name, self.pickup)
        self.pickup = NEXT
        watch = timeouts.Watch.of(job, info["id"])
        with self._attempt_lock:
            self.current_job, self.watch = info["id"], watch
        if watch is not None:
            self.dispatcher.time_limits.started()
        trace.info("%r starting in %s", job, self.name)
        try:
            job.run_claimed()
        except ReassignedError:
            abort(manager)
            info["reassigned"] = True
            events.error("%r was taken over by another worker; abandoning it", job)
        except BadStatusError:
            abort(manager)
            events.error("%r could not run", job, exc_info=True)
        except EXPLOSIVE:
            manager.abort()
            raise
        except Exception:
            abort(manager)
            events.critical("unexpected error running %r", job, exc_info=True)
            self._fail_abandoned(job, manager, failures.capture())
        finally:
            with self._attempt_lock:
                self.watch = None
                self.current_job = None
            if not self.abandoned:
                self.dispatcher.job_finished(info, job)
            elif self.abandoned in (TAKEN_OVER, STOPPED):
                self.dispatcher.job_abandoned(info, self.abandoned)
            elif self.abandoned == LEASE_LAPSED:
                self.dispatcher.job_abandoned(info, LEASE_LAPSED)
                events.error("%r stopped in %s: its dispatcher's lease lapsed (its last ping "
                             "is older than its death interval), so a sibling may run it "
                             "already; nothing of this attempt is committed", job, self.name)
            # else the dispatcher records the outcome of its time limit
            trace.info("%r completed in %s", job, self.name)

    def _fail_abandoned(self, job, manager, failure, ran=True):
        """Record what is known of a job this thread cannot go on with: the
        engine error as the result of an attempt it ran (not left ACTIVE),
        callbacks resumed by a job of their own (not left in CALLBACKS); a
        job it did not run (``ran`` false) goes back to its queue."""
        self.group.flush()

        def store():
            if not self._owns(job):
                return
            status = job.status
            if status == ACTIVE and ran:
                job._set_result(failure)
            elif status in (ACTIVE, ASSIGNED):
                job.return_to_queue(first=False)
            elif status == CALLBACKS:
                job.queue.put_back(job._resume_callbacks_job())

        retry_forever(store, manager, f"recording the engine error of {job!r}")
