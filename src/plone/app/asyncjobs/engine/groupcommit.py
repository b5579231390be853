"""Group commit: short, self-contained jobs of a batch share their result commit.

A worker thread running a batch of short jobs would commit once per job.
Instead, the outcome of a job is left in the open transaction, to be
committed with the outcome of the next job of the batch, when all of this
holds:

* the job completed (not waiting for another job), or waits only for
  callbacks, the first of which its outcome started, to run next in this
  thread, in the same transaction; and its result is not a persistent
  object.  Or the job is a callback of the job the thread runs, and its
  outcome completed that job;
* its attempt was short (``short``, a :class:`~datetime.timedelta`);
* the next job was started and does the same work as the job the thread
  runs (:meth:`.job.Job.same_work`; so it is expected to be short as well);
* the retry policies of both, and of the callback the outcome started,
  run a job again when its worker dies (not :class:`~.retry.NeverRetry`):
  a job whose start or outcome was lost with the worker may have run;
* neither the job nor its queue turned grouping off (``group_commit =
  False`` on the job, or on the queue for all its jobs), and the next job
  was never interrupted;
* the group stays within its bounds: at most :data:`MAX_OUTCOMES`
  outcomes, of at most :data:`MAX_RUN_TIME` of run time in all;
* the attempt changed nothing in the database but the job itself and the
  starts of the next one and of its callback, joined no other transaction
  participant (mail, SQL) and registered no commit or abort hooks:
  committing it later, or storing it again, does exactly what committing
  it now would have done.

The last job of a batch always commits, so a group never outlives its
batch; a batch holds at most ``BATCH`` jobs (:mod:`.workers`).

What it costs: a result becomes visible a little later; if the
worker process dies before the group commits, the jobs of the group were
interrupted, like the job running at the time, and their retry policies
decide (the default runs them again; a callback whose outcome was lost
counts as interrupted, and its job, still waiting for it, completes once
it ran again; a job found interrupted counts an attempt of the callback
its outcome would have started, which may have run in the lost group).
So a crash makes at most
:data:`MAX_OUTCOMES` jobs per worker thread run again besides the one
running, which had run for at most :data:`MAX_RUN_TIME` in all; each
such run counts as an attempt.

Which jobs may join a group is decided by reading private attributes of
``transaction.Transaction`` (``_resources``) and ``ZODB.Connection``
(``_added``, ``_registered_objects``): neither package has a public way
to list a transaction's participants or a connection's changed objects.
Anything unexpected there (a changed name or type) means "do not group",
never a job failure; the engine's tests pin these internals.  Since a job's start may be lost
too, a dead worker's jobs that were claimed but not known to have started
count as interrupted when their policy reruns interrupted jobs
(:meth:`.dispatchers.DispatcherAgents._clean`), so that a job that kills
its worker every time is still stopped by its policy.

If the transaction holding a group is aborted (the next job or a
callback failed, or its commit conflicted), the outcomes and the starts
of the next job and of callbacks are stored again, from memory, and
committed at once, as if they had been committed before; a job that
another worker took over meanwhile is left to it.  A callback whose
failure aborted the group then gets the decision of its retry policy, as
after a failure in a transaction of its own.
"""
from datetime import timedelta

from persistent import Persistent

from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.transactions import EXPLOSIVE
from plone.app.asyncjobs.engine.transactions import OUTCOME
from plone.app.asyncjobs.engine.transactions import abort
from plone.app.asyncjobs.engine.transactions import count_conflict
from plone.app.asyncjobs.engine.transactions import retry_forever


#: The most outcomes that wait for a commit in one worker thread.
MAX_OUTCOMES = 16
#: The most run time, in all, of the jobs whose outcomes wait.
MAX_RUN_TIME = timedelta(seconds=0.5)

class GroupCommit:
    """The outcomes one worker thread has stored but not yet committed.

    ``owns(job)`` tells whether the job is still held by the thread's agent;
    ``short`` is the longest attempt whose outcome may wait.  The worker
    sets :attr:`running` to the job of its batch it runs: only that job's
    outcome, or that of the callback that completes it, may join the group.
    """

    running = None
    #: When (``time.monotonic()``) the outcome of the job it runs was last
    #: noted settled (see :func:`.local.note_outcome_settled`); read from
    #: other threads too (see :mod:`.timeouts`).
    settled = None

    def __init__(self, manager, owns, statistics, short):
        self._manager = manager
        self._owns = owns
        self._statistics = statistics
        self._short = short
        #: (job, its batch job, result, active_end) of each uncommitted
        #: outcome, in order (the batch job: see :func:`_batch_job`).
        self._outcomes = []
        #: (job, its batch job, active_start, attempts) of each job started
        #: with them: the next job of the batch, or the callback that the
        #: commit of its job's outcome starts.
        self._starts = []
        #: The transaction holding them (or that lost them when it aborted).
        self._transaction = None
        #: The run time of the jobs whose outcomes wait.
        self._run_time = timedelta(0)

    def pending(self):
        """The jobs whose outcomes (or starts) wait for a commit, and the
        jobs that callbacks among them complete (a copy, safe to take from
        any thread)."""
        return [held for job, batch_job, _, _ in list(self._outcomes)
                for held in {job, batch_job}] + [job for job, _, _, _ in list(self._starts)]

    def in_current_transaction(self):
        """Whether outcomes wait in the transaction that is open now."""
        return bool(self._outcomes) and self._transaction is self._manager.get()

    def defer(self, job, successor):
        """Leave ``job``'s stored outcome for the next commit, if allowed.

        Returns ``True`` if the job joined the group: its caller must not
        commit.  ``successor`` is the next job of the thread's batch.
        """
        current = self._manager.get()
        batch_job = _batch_job(job)
        if not self._deferrable(job, batch_job, successor, current):
            return False
        if self._transaction is not current:
            if self._outcomes:
                return False  # outcomes lost with an aborted transaction come first
            self._follow(current)
        self._outcomes.append((job, batch_job, job.result, job.active_end))
        self._run_time += job.active_end - job.active_start
        started = job.started_callback()
        if started is not None:
            self._starts.append((started, batch_job, started.active_start, started.attempts))
        if successor._p_changed:
            self._starts.append((successor, successor, successor.active_start,
                                 successor.attempts))
        self._statistics.add("outcomes grouped")
        return True

    def _deferrable(self, job, batch_job, successor, current):
        if batch_job is not self.running or successor is None:
            return False
        started = job.started_callback()
        if job.status == CALLBACKS:
            if started is None or job is not batch_job:
                return False  # waiting for callbacks this thread does not run next
        elif job.status != COMPLETED or batch_job.status != COMPLETED:
            return False
        if successor.status != ACTIVE:
            return False
        if isinstance(job.result, Persistent):
            return False  # a new object for the database: store it with its job, now
        run_time = job.active_end - job.active_start
        if not successor.same_work(batch_job) or run_time >= self._short:
            return False
        if len(self._outcomes) >= MAX_OUTCOMES or self._run_time + run_time > MAX_RUN_TIME:
            return False
        involved = [job, batch_job, successor] + ([] if started is None else [started])
        if not all(each.reruns_when_interrupted() for each in involved):
            return False
        if successor.interruptions or not all(_grouping_allowed(each) for each in involved):
            return False
        try:
            return self._changes_only_jobs(involved, current)
        except Exception:
            # The private attributes read there changed: see the module doc.
            trace.warning("group commit disabled for %r: unexpected transaction or "
                          "connection internals", job, exc_info=True)
            return False

    def _changes_only_jobs(self, involved, current):
        """Whether ``current`` changed nothing but the jobs of the group and
        those ``involved`` in the outcome on offer, and joined no other
        participant or hook (reads private attributes)."""
        if any(hook != self._committed for hook, _, _ in current.getAfterCommitHooks()):
            return False
        if (_any(current.getBeforeCommitHooks()) or _any(current.getBeforeAbortHooks())
                or _any(current.getAfterAbortHooks())):
            return False
        # The connection of the queue's database (not always the thread's
        # own: the queues may live in another database).  The transaction
        # package and ZODB keep no public list of a transaction's
        # participants or of a connection's changed objects.
        connection = involved[0]._p_jar
        resources = current._resources
        added = connection._added
        registered = connection._registered_objects
        if not (isinstance(resources, list) and isinstance(added, dict)
                and isinstance(registered, list)):
            raise TypeError("unexpected types of transaction or connection internals")
        if any(resource is not connection for resource in resources):
            return False
        if added:
            return False
        allowed = {id(each) for each in involved}
        allowed.update(id(pending) for pending in self.pending())
        return all(id(changed) in allowed for changed in registered)

    def _follow(self, current):
        self._transaction = current
        current.addAfterCommitHook(self._committed, (current,))

    def _committed(self, succeeded, committed):
        if succeeded and committed is self._transaction:
            self._outcomes = []
            self._starts = []
            self._transaction = None
            self._run_time = timedelta(0)

    def flush(self):
        """Commit the pending outcomes now: those of the open transaction
        with it, or those an aborted transaction lost in a new one."""
        if not self._outcomes:
            return
        if self.in_current_transaction():
            try:
                self._manager.commit()
                return
            except EXPLOSIVE:
                self._manager.abort()
                raise
            except Exception as error:
                abort(self._manager)
                count_conflict(error, OUTCOME)
                trace.info("the commit of %d grouped outcomes failed; storing them again",
                           len(self._outcomes), exc_info=True)
        restored = retry_forever(self._restore, self._manager,
                                 f"storing the outcomes of {len(self._outcomes)} jobs again")
        self._statistics.add("grouped outcomes stored again", len(restored))
        for job in restored:
            # A callback added meanwhile; not one started in the group,
            # which runs in this thread now (its failure lost the group).
            if job.status == CALLBACKS and not any(
                    callback.status == ACTIVE for callback in job.callbacks):
                job.resume_callbacks()

    def _restore(self):
        """Store the lost starts and outcomes again in the transaction just
        begun; return the jobs whose outcomes were stored."""
        for job, batch_job, start, attempts in self._starts:
            # A next job of the batch is ASSIGNED until started, a callback NEW.
            if job.status in (ASSIGNED, NEW) and self._owns(batch_job):
                job.mark_active()
                job.active_start, job.attempts = start, attempts
        kept = []
        for job, batch_job, result, end in self._outcomes:
            if job.status == ACTIVE and self._owns(batch_job):
                job._record_result(result, end)
                kept.append((job, batch_job, result, end))
            else:
                events.error("%r is %s and no longer held here; its outcome from this "
                             "worker is dropped", job, job.status)
        self._outcomes = kept
        self._follow(self._manager.get())
        return [job for job, _, _, _ in kept]


def _batch_job(job):
    """The job of a worker's batch that ``job`` belongs to: ``job``, or the
    job it is a callback of."""
    parent = job.parent
    return parent if IJob.providedBy(parent) and job in parent.callbacks else job


def _grouping_allowed(job):
    queue = job.queue
    return job.group_commit and (queue is None or queue.group_commit)


def _any(iterable):
    return any(True for _ in iterable)
