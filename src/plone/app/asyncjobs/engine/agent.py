"""Agents: claim jobs for one dispatcher in one queue, and hold them while they run.

An agent belongs to a dispatcher's record in a queue, so it is identified
by (queue name, dispatcher UUID, agent name).  Its ``size`` is how many
jobs it runs at once - the dispatcher keeps that many worker threads for it
- and can be changed in the database while workers run.  A ``filter``
(a pure predicate on jobs) or, for legacy code, a ``chooser`` (a callable
that claims a job from ``agent.queue`` itself) decides which jobs it takes.
Keep at least one agent without a filter in every queue: system jobs (such
as resuming the callbacks of an interrupted job) need one.
"""
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.interface import implementer

from plone.app.asyncjobs.engine.history import CompletedJobs
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.interfaces import IAgent
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.trees import read_as_current


#: The largest agent size: each unit is a worker thread with a database
#: connection of its own.
MAX_SIZE = 100


class HeldJobs(LOBTree):
    """The jobs an agent holds, by integer oid, plus a permanent marker.

    ZODB merges concurrent changes to different keys of a BTree, except
    changes that leave it empty or remove its first key.  The marker under
    oid 0 (the database root's oid, never a job's) is always the first key,
    so the claims and completions of an agent's threads do not conflict.

    Annotations first written while the agent holds a job that has none
    (see :attr:`.job.Job.annotations`) are kept here: the job's entry moves
    from its oid to its oid plus :data:`ANNOTATED`, as ``(job,
    annotations)``.  Both that move and letting the job go remove the key
    it was under, and ZODB never merges two removals of one key: they
    cannot both commit, so annotations written while a job was held cannot
    be lost by its release.  (A change of an entry's value would not do:
    ZEO servers cannot compare two different persistent references, so
    they would refuse to merge it with any other change.)
    """

    MARKER_KEY = 0
    #: Above any oid a storage hands out (they count up from 0).
    ANNOTATED = 1 << 62

    def __init__(self):
        super().__init__()
        self[self.MARKER_KEY] = None

    def jobs(self):
        return (_job_of(entry) for entry in self.values(min=self.MARKER_KEY, excludemin=True))

    def job(self, oid):
        """The job held under ``oid``, or ``None``."""
        job = self.get(oid)
        return job if job is not None else _job_of(self.get(oid + self.ANNOTATED))

    def annotations(self, oid, create=False):
        """The annotations kept for the job held under ``oid``; ``None`` if
        there are none (or it is not held), unless ``create``: then they
        are made now, in a BTree of their own."""
        entry = self.get(oid + self.ANNOTATED)
        if entry is not None:
            return entry[1]
        if not create or oid not in self:
            return None
        tree = OOBTree()
        self[oid + self.ANNOTATED] = (self.pop(oid), tree)
        return tree

    def release(self, oid):
        """Forget the job held under ``oid``, giving it the annotations kept
        for it; return the job, or ``None`` if it was not held."""
        job = self.pop(oid, None)
        if job is not None:
            return job
        entry = self.pop(oid + self.ANNOTATED, None)
        if entry is None:
            return None
        job, tree = entry
        job.adopt_annotations(tree)
        return job

    def count(self):
        return len(self) - 1

    def seal(self):
        """Remove the marker, for good: ZODB never merges a change that
        removes the first key, so a claim into this tree committed since
        it was read (one its reader does not see) conflicts with the
        transaction that sealed it, instead of both committing."""
        del self[self.MARKER_KEY]


def _job_of(entry):
    return entry[0] if isinstance(entry, tuple) else entry


@implementer(IAgent)
class Agent(Persistent):
    """Claims and holds up to ``size`` jobs; remembers completed ones."""

    name = None
    parent = None

    def __init__(self, chooser=None, filter=None, size=3):
        if chooser is not None and filter is not None:
            raise ValueError("an agent takes a chooser or a filter, not both")
        self.chooser = chooser
        self.filter = filter
        self.size = size
        self._held = HeldJobs()
        self.completed = CompletedJobs()

    @property
    def size(self):
        return self._size

    @size.setter
    def size(self, value):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
            raise ValueError(f"an agent's size must be an integer from 0 to {MAX_SIZE}, "
                             f"not {value!r}")
        self._size = value

    @property
    def queue(self):
        return self.parent.parent.parent

    def claim_job(self, now=None, lane=None, finished=(), exclude=frozenset()):
        """Take the next job this agent may run, or return ``None``.

        ``lane`` says where in the queue to look first (see :meth:`Queue.claim`);
        ``finished`` are jobs the claiming thread completed since its last
        claim, which move to the history in this transaction; jobs in
        ``exclude`` (by ``(oid, database)``) are not claimed.

        Nothing is claimed while the dispatcher is inactive, paused or
        considered dead, or while ``size`` of the held jobs are running.
        """
        jobs = self.claim_jobs(1, now=now, lane=lane, finished=finished, exclude=exclude)
        return jobs[0] if jobs else None

    def claim_jobs(self, count, now=None, lane=None, finished=(), exclude=frozenset(),
                   running=None):
        """Take up to ``count`` jobs for one worker thread, in claim order.

        A thread running short jobs claims several per commit and runs them
        one after another; the ones it has not started are ``ASSIGNED``
        and go back to the queue if the worker dies.  See :meth:`claim_job`.
        ``running``: how many jobs of this agent other threads run now, if
        the caller knows (a worker thread does); else it is counted from
        the statuses of the held jobs, which loads them all.
        """
        dispatcher_record = self.parent
        if finished:
            self.sweep(finished)
        if not dispatcher_record.activated or dispatcher_record.dead or dispatcher_record.paused:
            return []
        if (self._running() if running is None else running) >= self.size:
            return []
        if count > 1 and self.chooser is None and lane is not None:
            self.queue.prefetch_claimable(count, lane, now)
        claimed = []
        while len(claimed) < count:
            if self.chooser is not None:
                job = self.chooser(self)
            else:
                job = self.queue.claim(self.filter, now=now, lane=lane, exclude=exclude)
            if job is None:
                break
            job.parent = self
            self._held[object_id(job)[0]] = job
            claimed.append(job)
        return claimed

    def _running(self):
        """Held jobs a thread is busy with (not those waiting for another job)."""
        return sum(1 for job in self._held.jobs()
                   if job.status in (ACTIVE, CALLBACKS) and not job.waiting)

    def sweep(self, jobs=None, completed_before=None, skip=frozenset()):
        """Move completed held jobs to the history; return how many moved.

        Jobs commit their completion without touching the agent (see
        :mod:`.job`; only a job released before it completed, because its
        worker died, adds itself to the history).  Each worker thread sweeps
        the job it finished with its next claim (``jobs``); the dispatcher's
        poll sweeps what is left, only jobs completed before
        ``completed_before``, so that the two rarely sweep the same job at
        once, and not the jobs whose ``(oid, database)`` is in ``skip``
        (those worker threads have in hand), so as not to load them.
        """
        if jobs is None:
            jobs = [job for job in self._held.jobs() if object_id(job) not in skip]
        done = [job for job in jobs
                if job.status == COMPLETED and self.holds(job)
                and (completed_before is None or job.active_end < completed_before)]
        for job in done:
            self._held.release(object_id(job)[0])
            self._record_completed(job)
        return len(done)

    def _record_completed(self, job):
        self.completed.add(job, job.active_end)
        # Here, not in the commit of its outcome: that one writes nothing
        # but the job (see .job).
        self.queue.release_unique_key(job)

    def accepts(self, job):
        """Tell whether the filter accepts ``job`` (always true without one)."""
        return self.filter is None or bool(self.filter(job))

    def holds(self, job):
        return self._held.job(object_id(job)[0]) is job

    def annotations_of(self, job, create=False):
        """The annotations kept here for held ``job``, which has none of
        its own (see :attr:`.job.Job.annotations`); ``None`` if there are
        none yet, unless ``create``."""
        return self._held.annotations(object_id(job)[0], create)

    def release(self, job):
        """Stop holding ``job`` and free its quota slots."""
        self._held.release(object_id(job)[0])
        self.queue.quotas.leave(job)

    def take_all(self):
        """Release and return every held job (for cleaning up a dead worker)."""
        jobs = list(self._held.jobs())
        for job in jobs:
            self.release(job)
        return jobs

    def give_up(self, job):
        """Release ``job``, which no worker thread works on any more (its
        worker died or was found dead, or its thread failed), and hand it
        to its retry policy.  Commits nothing.

        An ASSIGNED job goes back to the queue - counted as interrupted if
        its policy reruns interrupted jobs, since it may have run in a group
        commit that was lost (see :mod:`.groupcommit`); an ACTIVE job, or
        one whose callbacks did not finish, is interrupted
        (:meth:`.job.Job.interrupted`), unless it waits for a job it
        returned (nothing of it runs: that job completes it, and it then
        joins this agent's history); a completed one goes to the history.
        """
        self.release(job)
        status = job.status
        if status == ASSIGNED and not job.reruns_when_interrupted():
            job.return_to_queue()
        elif job.waiting_for_job:
            pass
        elif status in (ACTIVE, ASSIGNED, CALLBACKS):
            job.interrupted()
        elif status == COMPLETED:
            self._record_completed(job)

    def retire(self):
        """Prepare this agent, holding no job, for its removal from its
        dispatcher's record: a claim into it committed meanwhile conflicts
        with the removal (see :meth:`HeldJobs.seal`); otherwise the job
        would be held by an agent no poll, sweep or recovery looks at."""
        if len(self):
            raise ValueError(f"agent {self.name!r} holds jobs and cannot be removed")
        self._held.seal()

    def __len__(self):
        """Jobs held, including completed ones not yet swept to the history."""
        return self._held.count()

    def __iter__(self):
        return iter(self._held.jobs())

    def read_as_current(self):
        """Make the current transaction conflict with any commit that
        changed which jobs this agent holds since the transaction read them."""
        read_as_current(self._held)

    def __bool__(self):
        return self._held.count() > 0

    def __repr__(self):
        return f"<Agent {self.name!r} size {self.size}, holding {len(self)}>"
