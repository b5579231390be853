"""Queues of pending jobs.

The queues live in a :class:`Queues` mapping stored at the database root
under :data:`KEY` (or in the root of another database of a multi-database
set-up, referenced from the main root).  The default queue is named ``''``.

:meth:`Queue.put` adds a job to the queue in the *current transaction*:
workers see it after the commit, and it is gone if the transaction aborts.

Claim order: jobs handed back (retried after an interruption) come first;
then jobs in about the order they became due (``begin_after``).  Jobs that
are not due yet are never claimed.

Why "about": ZODB merges concurrent changes to different keys of a BTree,
but never two changes when one of them deletes the first key of a bucket.
A single FIFO tree makes every pair of concurrent claims collide at its
head.  So pending jobs are spread over :data:`LANES` trees, each starting
with a marker key that is never deleted; a job goes to a random lane, and
a claim takes one of the first few due jobs of a random lane.  Concurrent
claims then rarely touch the same job or bucket; since lanes fill and drain
at the same average rate, the start order stays close to the due order.

Every transaction that makes a job pending also changes the *doorbell* of
its lane (see :attr:`Queue.doorbells`), a counter whose concurrent changes
ZODB merges: dispatchers watch them to start new jobs at once (see
:mod:`.wakeup`), each answering first for the lanes it claims from first.
"""
import heapq
import itertools
import random

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.POSException import ConflictError
from zope.interface import implementer

from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine import wakeup
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.container import Container
from plone.app.asyncjobs.engine.dispatchers import Dispatchers
from plone.app.asyncjobs.engine.history import CompletedJobs
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.instanceuuid import configured_uuid
from plone.app.asyncjobs.engine.interfaces import IQueue
from plone.app.asyncjobs.engine.interfaces import IQueues
from plone.app.asyncjobs.engine.job import as_job
from plone.app.asyncjobs.engine.job import check_picklable
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.pickups import committed_at
from plone.app.asyncjobs.engine.quota import Quotas
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.trees import descending


#: The database root key of the :class:`Queues` mapping.
KEY = "plone.app.asyncjobs"

#: How many trees pending jobs are spread over.
LANES = 16

#: A claim picks at random among this many of a lane's first eligible jobs.
CLAIM_WINDOW = 4


class PendingJobs(OOBTree):
    """One lane: pending jobs keyed by ``(due time in µs, oid)``, after a marker.

    The marker key sorts first and is never deleted (see the module doc).
    Buckets are larger than OOBTree's default so that producers appending
    at the tail split them (which ZODB cannot merge either) less often.
    """

    max_leaf_size = 120
    MARKER_KEY = (-1, -1)

    def __init__(self):
        super().__init__()
        self[self.MARKER_KEY] = None

    def jobs(self):
        """``(key, job)`` pairs in due order."""
        return self.items(min=self.MARKER_KEY, excludemin=True)

    def first_key(self):
        for key in self.keys(min=self.MARKER_KEY, excludemin=True):
            return key
        return None


@implementer(IQueues)
class Queues(Container):
    """Queues by name."""

    def __setitem__(self, name, queue):
        if not IQueue.providedBy(queue):
            raise ValueError(f"{queue!r} is not a queue")
        if name in self._items:
            raise ValueError(f"queue {name!r} exists already")
        queue.name = name
        queue.parent = self
        self._items[name] = queue
        if self._p_jar is not None and queue._p_jar is None:
            # So that jobs can be put in it before the transaction commits.
            self._p_jar.add(queue)

    def __delitem__(self, name):
        queue = self._items[name]
        if len(queue) or any(record.activated for record in queue.dispatchers.values()):
            raise ValueError(f"queue {name!r} has pending jobs or active dispatchers")
        del self._items[name]


@implementer(IQueue)
class Queue(Persistent):
    """Pending jobs, with the quotas and dispatcher records that work on them."""

    name = None
    parent = None
    _completed = None
    #: ``False``: no job of this queue leaves its outcome for a group
    #: commit (see :mod:`.groupcommit`).
    group_commit = True
    #: Per lane, then for the handed-back jobs (last), a
    #: ``BTrees.Length.Length`` counting the jobs that became pending there;
    #: ``None`` in queues stored before they existed, until a dispatcher
    #: adds them (:meth:`install_doorbells`).
    doorbells = None

    def __init__(self):
        self.install_doorbells()
        self._handed_back = PendingJobs()
        self._lanes = tuple(PendingJobs() for _ in range(LANES))
        self._length = Length()
        self.quotas = Quotas()
        self.quotas.parent = self
        self.dispatchers = Dispatchers()
        self.dispatchers.parent = self

    # -- adding -------------------------------------------------------------

    def put(self, item, begin_after=None, begin_by=None, failure_log_level=None,
            retry_policy_factory=None, quota_names=None):
        """Queue ``item`` (a job, or a callable to wrap in one); return the job.

        ``begin_after`` (an aware datetime) delays the start; ``begin_by`` (a
        timedelta) is how late after that the job may still start.  Errors
        in any argument, a job that is not new, a quota that does not exist
        or an argument that cannot be stored raise here, before anything
        is queued.
        """
        job = as_job(item)
        if job.status != NEW:
            raise ValueError(f"only a new job can be queued; {job!r} is {job.status}")
        if self._p_jar is None:
            raise ValueError("this queue is not stored in a database yet")
        if retry_policy_factory is not None:
            retry.resolve(retry_policy_factory)
            job.retry_policy_factory = retry_policy_factory
        if failure_log_level is not None:
            job.failure_log_level = failure_log_level
        if quota_names is not None:
            job.quota_names = quota_names
        self.quotas.check_names(job.quota_names)
        if begin_after is not None:
            job.begin_after = begin_after
        elif job.begin_after is None:
            job._begin_after = utcnow()
        if begin_by is not None:
            job.begin_by = begin_by
        check_picklable(job)
        if job._p_jar is None:
            self._p_jar.add(job)
        job.assigner_uuid = configured_uuid()
        self._insert(job, random.randrange(LANES))
        return job

    def put_back(self, job):
        """Queue a new job ahead of every job that was not handed back."""
        if job.status != NEW:
            raise ValueError(f"only a new job can be put back; {job!r} is {job.status}")
        if job._p_jar is None:
            self._p_jar.add(job)
        if job.begin_after is None:
            job._begin_after = utcnow()
        self._insert(job, None)

    def requeue(self, job, when, first=True):
        """Queue a job again: first in line if ``first`` and ``when`` is
        ``None`` or past; otherwise in a lane, due at ``when`` (default: the
        time it was due before)."""
        if first and (when is None or when <= utcnow()):
            self.put_back(job)
        else:
            if when is not None:
                job._begin_after = when
            self._insert(job, random.randrange(LANES))

    def _tree(self, lane):
        return self._handed_back if lane is None else self._lanes[lane]

    def _insert(self, job, lane):
        key = (to_microseconds(job.begin_after), object_id(job)[0])
        self._tree(lane)[key] = job
        job._queue_key = (lane, key)
        job.parent = self
        self._length.change(1)
        if self.doorbells is not None:
            doorbell = self.doorbells[LANES if lane is None else lane]
            doorbell.change(1)
            wakeup.announce(self._p_jar, doorbell)

    def install_doorbells(self):
        """Give a queue stored before doorbells existed its doorbells."""
        if self.doorbells is None:
            self.doorbells = tuple(Length() for _ in range(LANES + 1))

    @property
    def completed(self):
        """Jobs completed without an agent (cancelled ones), created on first use."""
        if self._completed is None:
            self._completed = CompletedJobs()
        return self._completed

    # -- removing -----------------------------------------------------------

    def _take(self, job):
        lane, key = job._queue_key
        del self._tree(lane)[key]
        job._queue_key = None
        job.parent = None
        self._length.change(-1)

    def remove(self, job):
        """Take a pending job out of the queue (cancel it)."""
        if job.parent is not self or job._queue_key is None:
            raise LookupError(f"{job!r} is not pending in queue {self.name!r}")
        self._take(job)

    def pull(self, index=0):
        """Remove and return the pending job at ``index`` (in claim order)."""
        job = self[index]
        self._take(job)
        return job

    def claim(self, filter=None, default=None, now=None, lane=None, exclude=frozenset()):
        """Remove and return a job an agent may run now, or ``default``.

        A job whose ``begin_by`` deadline has passed is returned whatever
        the filter says, so that the claiming worker fails it; quotas and
        the filter decide for the others.  Handed-back jobs come first;
        then one of the first :data:`CLAIM_WINDOW` eligible jobs of lane
        number ``lane`` (default: a random one), or else of the first lane,
        in random order, that has one.  Concurrent claimers of one process
        pass different lanes.  Jobs whose ``(oid, database)`` is in ``exclude``
        are skipped, as are pending jobs that cannot be read (logged).
        """
        eligible = _Eligibility(self, filter, to_microseconds(now or utcnow()), exclude)
        start = random.randrange(LANES) if lane is None else lane % LANES
        # Other lanes in random order: claimers whose own lanes are empty
        # should not all move on to the same next lane.
        others = random.sample([n for n in range(LANES) if n != start], LANES - 1)
        lanes = [self._handed_back, self._lanes[start]] + [self._lanes[n] for n in others]
        for lane in lanes:
            candidates = eligible.first(lane, CLAIM_WINDOW)
            if candidates:
                job = random.choice(candidates)
                # For the pickup latency (see .pickups): the job's last
                # commit, which made it pending, is known until this one.
                job._v_pending_since = committed_at(job._p_serial)
                self._take(job)
                if not job.deadline_passed():
                    self.quotas.enter(job)
                return job
        return default

    def has_due_jobs(self, now=None):
        """Tell cheaply whether some pending job is due."""
        if len(self._handed_back) > 1:
            return True
        now_us = to_microseconds(now or utcnow())
        for lane in self._lanes:
            key = lane.first_key()
            if key is not None and key[0] <= now_us:
                return True
        return False

    def lane_heads(self):
        """``(lane number, due µs)`` of the first job of every lane that has
        one; lane ``None`` is the handed-back jobs, claimable at once (due 0)."""
        if len(self._handed_back) > 1:
            yield None, 0
        for number, lane in enumerate(self._lanes):
            key = lane.first_key()
            if key is not None:
                yield number, key[0]

    # -- reading ------------------------------------------------------------

    def __len__(self):
        return self._length()

    def __bool__(self):
        return len(self) > 0

    def items(self, after=None, reverse=False):
        """``(key, job)`` of the pending jobs by due time (latest first if
        ``reverse``), after the key ``after``; a key is ``(due µs, oid)``.

        Unlike iteration, handed-back jobs are not put first.
        """
        def lane_items(lane):
            if reverse:
                return descending(lane, below=after, above=lane.MARKER_KEY)
            lower = lane.MARKER_KEY if after is None else max(after, lane.MARKER_KEY)
            return lane.items(min=lower, excludemin=True)

        lanes = (self._handed_back,) + self._lanes
        return heapq.merge(*(lane_items(lane) for lane in lanes),
                           key=lambda item: item[0], reverse=reverse)

    def __iter__(self):
        """Pending jobs: handed-back ones, then all by due time."""
        for _, job in self._handed_back.jobs():
            yield job
        lanes = heapq.merge(*(lane.jobs() for lane in self._lanes), key=lambda item: item[0])
        for _, job in lanes:
            yield job

    def __getitem__(self, index):
        length = len(self)
        position = index + length if index < 0 else index
        if not 0 <= position < length:
            raise IndexError(index)
        return next(itertools.islice(iter(self), position, None))

    def __repr__(self):
        return f"<Queue {self.name!r} with {len(self)} pending>"


class _Eligibility:
    """Finds, in one lane, the first jobs a claim may take."""

    def __init__(self, queue, filter, now_us, exclude):
        self.queue = queue
        self.filter = filter
        self.now_us = now_us
        self.exclude = exclude

    def first(self, lane, count):
        found = []
        for (due, _), job in lane.jobs():
            if due > self.now_us and lane is not self.queue._handed_back:
                break
            try:
                if self.exclude and object_id(job) in self.exclude:
                    continue
                if job.deadline_passed():
                    return [job]
                if not self.queue.quotas.admits(job):
                    continue
                if self.filter is not None and not self.filter(job):
                    continue
            except ConflictError:
                raise
            except Exception:
                events.critical("cannot read pending job %s in queue %r; skipping it",
                                object_id(job), self.queue.name, exc_info=True)
                continue
            found.append(job)
            if len(found) == count:
                break
        return found
