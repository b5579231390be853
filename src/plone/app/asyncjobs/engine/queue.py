"""Queues of pending jobs.

The queues live in a :class:`Queues` mapping stored at the database root
under :data:`KEY` (or in the root of another database of a multi-database
set-up, referenced from the main root).  The default queue is named ``''``.

:meth:`Queue.put` adds a job to the queue in the *current transaction*:
workers see it after the commit, and it is gone if the transaction aborts.

Claim order: jobs handed back (retried after an interruption) come first;
then, among the jobs that are due, those of the highest ``priority`` (an
integer, 0 by default); among due jobs of one priority, about the order
they became due (``begin_after``).  Jobs that are not due yet are never
claimed.

Why "about": ZODB merges concurrent changes to different keys of a BTree,
but never two changes when one of them deletes the first key of a bucket.
A single FIFO tree makes every pair of concurrent claims collide at its
head.  So pending jobs are spread over :data:`LANES` trees, each starting
with a marker key that is never deleted; jobs go to the lanes in turn, and
a claim takes one of the first few due jobs of a random lane.  Concurrent
claims then rarely touch the same job or bucket; since lanes fill and drain
at the same average rate, the start order stays close to the due order.
The jobs one transaction queues go to one lane in runs of
:data:`LANE_RUN`: appending a run to a lane rewrites the lane's last
bucket or two, where spreading the run over all lanes would rewrite one
bucket per lane, most of the cost of a commit queuing many jobs.  Each
run of a process goes to the next lane, so that the concurrent
transactions of a process's producer threads append to different lanes:
an append that splits a bucket conflicts with any concurrent write to
the lane (8 producer threads over ZEO, one job per commit, went from
23-27 conflicting commits in 4,000, with a random lane per run, to none).
Longer runs could fill the lanes less evenly, but with the lanes taken in
turn, draining a backlog of 6,000 jobs queued 100 per commit, 2 worker
processes had 0.003-0.004 claim conflicts per job with runs of 128 (a
commit appends to one lane) against 0.014 with runs of 64 (two lanes),
and drained it faster.

Priorities: priority 0 has the lanes above; every other priority has its
own :data:`LANES` lanes, created by the first job put with it (a
transaction that creates them conflicts with another creating them at
the same time, once).  A claim looks in each priority's lanes in turn,
highest first, the same way; so claims of different workers spread over
the lanes of one priority as they do without priorities.  Lane number
``n`` of every priority rings doorbell ``n``, and belongs to the same
dispatcher.

Unique keys (see :mod:`.unique`) are kept in an index of the queue
(created with it, or in a queue stored before, by the first unique key).

Every transaction that makes a job pending also changes the *doorbell* of
its lane (see :attr:`Queue.doorbells`), a counter whose concurrent changes
ZODB merges: dispatchers watch them to start new jobs at once (see
:mod:`.wakeup`), each answering first for the lanes it claims from first.
A job that is not due yet rings the queue's :attr:`Queue.schedule_doorbell`
instead: dispatchers answer it by setting their due timers, so that no
thread wakes to find nothing it may claim.
"""
import heapq
import itertools
import random

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.POSException import ConflictError
from ZODB.utils import u64
from zope.interface import implementer

from plone.app.asyncjobs.engine import retry
from plone.app.asyncjobs.engine import unique
from plone.app.asyncjobs.engine import wakeup
from plone.app.asyncjobs.engine.clock import now_microseconds
from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.container import Container
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import DuplicateJobError
from plone.app.asyncjobs.engine.dispatchers import Dispatchers
from plone.app.asyncjobs.engine.history import CompletedJobs
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.instanceuuid import configured_uuid
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.interfaces import IQueue
from plone.app.asyncjobs.engine.interfaces import IQueues
from plone.app.asyncjobs.engine.internal import waited_for
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.pickups import committed_at
from plone.app.asyncjobs.engine.quota import Quotas
from plone.app.asyncjobs.engine.status import NEW
from plone.app.asyncjobs.engine.timeouts import check_timeout
from plone.app.asyncjobs.engine.timeouts import set_timeout
from plone.app.asyncjobs.engine.trees import descending
from plone.app.asyncjobs.engine.validation import check_log_level
from plone.app.asyncjobs.engine.validation import check_picklable


#: The database root key of the :class:`Queues` mapping.
KEY = "plone.app.asyncjobs"

#: How many trees pending jobs are spread over.
LANES = 16

#: A claim picks at random among this many of a lane's first due jobs.
CLAIM_WINDOW = 4

#: How many jobs in a row a transaction puts in one lane: about a bucket
#: (:attr:`PendingJobs.max_leaf_size`).
LANE_RUN = 128

# The lanes of successive runs of one process: in turn, from a random one,
# so that the concurrent transactions of one process's threads append to
# different lanes (an append that splits a bucket conflicts with every
# concurrent write to its lane) and lanes fill evenly.
_run_lanes = itertools.count(random.randrange(LANES))


class PendingJobs(OOBTree):
    """One lane: pending jobs keyed by ``(due time in µs, oid)``, after a marker.

    The marker key sorts first and is never deleted (see the module doc).
    Buckets are larger than OOBTree's default so that producers appending
    at the tail split them (which ZODB cannot merge either) less often.
    """

    max_leaf_size = 120
    MARKER_KEY = (-1, -1)
    #: The smallest key after the marker's (oids are not negative).
    AFTER_MARKER = (-1, 0)

    @classmethod
    def key_of(cls, job):
        """The key of ``job`` (stored, with a due time) in a lane: its due
        time in µs, or 0 for a due time before 1970, so that every job sorts
        after the marker; then its oid."""
        return (max(job.due_microseconds(), 0), u64(job._p_oid))

    @classmethod
    def new_lane(cls):
        """An empty lane: the marker alone.

        Not ``__init__``: BTrees make the inner nodes of a growing tree by
        calling its class, and then replace their contents, so a marker
        set there would be a bucket lost with every split of a node.
        """
        lane = cls()
        lane[cls.MARKER_KEY] = None
        return lane

    def jobs(self):
        """``(key, job)`` pairs in due order."""
        return self.items(min=self.MARKER_KEY, excludemin=True)

    def first_key(self):
        """The key of the first job, or ``None`` if the lane has none."""
        try:
            return self.minKey(self.AFTER_MARKER)
        except ValueError:
            return None


@implementer(IQueues)
class Queues(Container):
    """Queues by name."""

    #: A ``BTrees.Length.Length`` changed whenever a queue is added or
    #: deleted, so that dispatchers set up in a new queue at once (see
    #: :mod:`.wakeup`); ``None`` in containers stored before it existed,
    #: until a dispatcher adds it (:meth:`install_doorbell`).
    doorbell = None

    def __init__(self):
        super().__init__()
        self.install_doorbell()

    def install_doorbell(self):
        """Give a container stored before the doorbell existed its doorbell."""
        if self.doorbell is None:
            self.doorbell = Length()

    def _ring(self):
        if self.doorbell is not None and self._p_jar is not None:
            self.doorbell.change(1)
            wakeup.announce(self._p_jar, self.doorbell)

    def __setitem__(self, name, queue):
        if not isinstance(name, str):
            raise TypeError(f"a queue name must be a string, not {name!r}")
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
        self._ring()

    def __delitem__(self, name):
        queue = self._items[name]
        if len(queue) or any(record.activated for record in queue.dispatchers.values()):
            raise ValueError(f"queue {name!r} has pending jobs or active dispatchers")
        del self._items[name]
        # A put committed since this transaction saw the queue empty, or
        # one committed after this deletion, would leave its job in a queue
        # that nothing looks at: either conflicts with the deletion instead
        # (every put changes the length and reads the queue as current).
        if queue._p_jar is not None:
            queue._p_jar.readCurrent(queue._length)
        queue.deleted = True
        self._ring()


@implementer(IQueue)
class Queue(Persistent):
    """Pending jobs, with the quotas and dispatcher records that work on them."""

    name = None
    parent = None
    _completed = None
    #: ``False``: no job of this queue leaves its outcome for a group
    #: commit (see :mod:`.groupcommit`).
    group_commit = True
    #: Seconds a job of this queue may run when it has no ``timeout`` of
    #: its own; ``None``: no limit (see :mod:`.timeouts`).
    default_timeout = None
    #: Seconds a job past its time limit may run on before it is
    #: abandoned; ``None``: :data:`.timeouts.DEFAULT_GRACE`.
    timeout_grace = None
    #: Per lane, then for the handed-back jobs (last), a
    #: ``BTrees.Length.Length`` counting the jobs that became pending there;
    #: ``None`` in queues stored before they existed, until a dispatcher
    #: adds them (:meth:`install_doorbells`).
    doorbells = None
    #: A ``BTrees.Length.Length`` counting the jobs queued for later (not
    #: due when queued); ``None`` in queues stored before it existed, until
    #: a dispatcher adds it (:meth:`install_doorbells`).
    schedule_doorbell = None
    #: ``priority -> LANES lanes`` for the priorities other than 0 that
    #: were used; created on first use.
    _priority_lanes = None
    #: The unique index (see :func:`.unique.new_index`); ``None`` in
    #: queues stored before it existed, until a unique key is put.
    _unique = None
    #: Set when the queue is taken out of its container; it takes no jobs
    #: any more.
    deleted = False
    #: The :class:`_Puts` of the transaction of the last put.
    _v_puts = None

    def __setattr__(self, name, value):
        # The time-limit settings are read by every worker's timers: a bad
        # one is refused where it is set.
        if name == "default_timeout":
            value = check_timeout(value, name)
        elif name == "timeout_grace":
            value = check_timeout(value, name, zero=True)
        super().__setattr__(name, value)

    def __init__(self):
        self.install_doorbells()
        self.install_unique_index()
        self._handed_back = PendingJobs.new_lane()
        self._lanes = tuple(PendingJobs.new_lane() for _ in range(LANES))
        self._length = Length()
        self.quotas = Quotas()
        self.quotas.parent = self
        self.dispatchers = Dispatchers()
        self.dispatchers.parent = self

    # -- adding -------------------------------------------------------------

    def put(self, item, begin_after=None, begin_by=None, failure_log_level=None,
            retry_policy_factory=None, quota_names=None, priority=None,
            unique_key=None, unique_while=None, on_duplicate="return", timeout=None):
        """Queue ``item`` (a job, or a callable to wrap in one); return the job.

        ``begin_after`` (an aware datetime) delays the start; ``begin_by`` (a
        timedelta) is how late after that the job may still start.
        ``priority`` (an integer, default the job's, 0) orders the claims
        of due jobs: higher first.  ``timeout`` (seconds, default the
        job's, else the queue's ``default_timeout``) limits how long the
        job may run (see :mod:`.timeouts`).

        ``unique_key`` (a non-empty string, default the job's): if a job of
        this queue holds that key - it is pending, or with ``unique_while``
        :data:`.unique.WHILE_ACTIVE` pending or not yet completed - nothing
        is queued: that job is returned, or with ``on_duplicate="raise"``
        a :class:`~.exceptions.DuplicateJobError` carrying it is raised.
        See :mod:`.unique`.

        Errors in any argument, a job that is not new, a quota that does
        not exist or an argument that cannot be stored raise here, before
        anything is queued.
        """
        unique.check_on_duplicate(on_duplicate)
        job = self._prepared(item, begin_after, begin_by, failure_log_level,
                             retry_policy_factory, quota_names, priority, timeout,
                             unique_key, unique_while)
        return self._enqueue(job, on_duplicate)

    def put_many(self, items, begin_after=None, begin_by=None, failure_log_level=None,
                 retry_policy_factory=None, quota_names=None, priority=None, timeout=None):
        """Queue every job (or callable) of ``items`` with the same options,
        as :meth:`put` would; return the list of the jobs, in order.

        Everything is checked before anything is queued: an error leaves
        the queue as it was.  A job keeps its own ``unique_key`` and
        ``unique_while``; a job whose key is held (by a job queued before,
        or earlier in ``items``) is not queued, and the holder takes its
        place in the list.  A job given twice is refused.
        """
        jobs = [self._prepared(item, begin_after, begin_by, failure_log_level,
                               retry_policy_factory, quota_names, priority, timeout)
                for item in items]
        if len({id(job) for job in jobs}) < len(jobs):
            raise ValueError("put_many was given the same job twice")
        return [self._enqueue(job, "return") for job in jobs]

    def _prepared(self, item, begin_after, begin_by, failure_log_level,
                  retry_policy_factory, quota_names, priority, timeout,
                  unique_key=None, unique_while=None):
        """The job for ``item``, checked and given the options of :meth:`put`."""
        # IJob(item) returns a job as it is too, but looks for a __conform__
        # first, which is slow on a persistent object.
        job = item if IJob.providedBy(item) else IJob(item)
        if job.status != NEW:
            raise ValueError(f"only a new job can be queued; {job!r} is {job.status}")
        owner = job.owning_job()
        if owner is not None:
            raise ValueError(f"{job!r} is part of {owner!r} (its callable or one of its "
                             "callbacks), which runs it: queue that job instead")
        if self._p_jar is None:
            raise ValueError("this queue is not stored in a database yet")
        if self.deleted:
            raise ValueError(f"queue {self.name!r} was deleted")
        set_claim_options(job, priority, unique_key, unique_while)
        set_timeout(job, timeout)
        if retry_policy_factory is not None:
            job.retry_policy_factory = retry_policy_factory
        retry.check_factory(job.retry_policy_factory, job._policy_kind)
        if failure_log_level is not None:
            job.failure_log_level = failure_log_level
        check_log_level(job.failure_log_level)
        if quota_names is not None:
            job.quota_names = quota_names
        self.quotas.check_names(job.quota_names)
        if begin_after is not None:
            job.begin_after = begin_after
        elif job.begin_after is None:
            job.set_due(utcnow())
        if begin_by is not None:
            job.begin_by = begin_by
        check_picklable(job)
        return job

    def _enqueue(self, job, on_duplicate):
        """Queue a prepared job, unless a job holds its unique key."""
        holder = self._duplicate_of(job, on_duplicate)
        if holder is not None:
            return holder
        if job._p_jar is None:
            self._p_jar.add(job)
        puts = self._puts()
        if puts.assigner_uuid is not None:  # None is the default: not stored
            job.assigner_uuid = puts.assigner_uuid
        self._insert(job, puts.next_lane())
        return job

    def _duplicate_of(self, job, on_duplicate):
        """The job holding ``job``'s unique key now, or ``None``; with
        ``on_duplicate="raise"``, raise ``DuplicateJobError`` instead of
        returning it."""
        if job.unique_key is None:
            return None
        holder = self._unique_holder(job.unique_key)
        if holder is None:
            return None
        # Written back, so that a concurrent claim releasing the key
        # conflicts with this transaction (see .unique).
        self._unique_tree(job.unique_key)[job.unique_key] = holder
        if on_duplicate == "raise":
            raise DuplicateJobError(f"{holder!r} holds the unique key {job.unique_key!r} "
                                    f"in queue {self.name!r}", holder)
        return holder

    def _puts(self):
        """The :class:`_Puts` of the current transaction."""
        current = self._p_jar.transaction_manager.get()
        puts = self._v_puts
        if puts is None or puts.transaction is not current:
            puts = self._v_puts = _Puts(current, self._p_jar)
            # So that the transaction conflicts with one deleting the queue
            # (its state is loaded by now: a ghost's serial is not known).
            self._p_jar.readCurrent(self)
        return puts

    def put_back(self, job):
        """Queue a new job ahead of every job that was not handed back."""
        if job.status != NEW:
            raise ValueError(f"only a new job can be put back; {job!r} is {job.status}")
        if job._p_jar is None:
            self._p_jar.add(job)
        if job.begin_after is None:
            job.set_due(utcnow())
        self._insert(job, None)

    def requeue(self, job, when, first=True):
        """Queue a job again: first in line if ``first`` and ``when`` is
        ``None`` or past; otherwise in a lane, due at ``when`` (default: the
        time it was due before)."""
        if first and (when is None or when <= utcnow()):
            self.put_back(job)
        else:
            if when is not None:
                job.set_due(when)
            self._insert(job, random.randrange(LANES))

    def _tree(self, where):
        """The tree ``where`` names: ``None`` the handed-back jobs, a lane
        number a lane of priority 0, ``(priority, lane number)`` another."""
        if where is None:
            return self._handed_back
        if isinstance(where, tuple):
            priority, lane = where
            return self._priority_lanes[priority][lane]
        return self._lanes[where]

    def _lane_sets(self):
        """``(priority, lanes)`` pairs, highest priority first."""
        if self._priority_lanes is None:
            return [(0, self._lanes)]
        return sorted([(0, self._lanes), *self._priority_lanes.items()],
                      key=lambda item: item[0], reverse=True)

    def _where(self, job, lane):
        if lane is None or job.priority == 0:
            return lane
        if self._priority_lanes is None:
            self._priority_lanes = OOBTree()
        if job.priority not in self._priority_lanes:
            self._priority_lanes[job.priority] = tuple(
                PendingJobs.new_lane() for _ in range(LANES))
        return (job.priority, lane)

    def _insert(self, job, lane):
        puts = self._puts()  # also reads the queue as current: see there
        key = PendingJobs.key_of(job)
        where = self._where(job, lane)
        self._tree(where)[key] = job
        job._queue_key = (where,)  # the key is found again: see _place
        job.parent = self
        self._length.change(1)
        self._take_unique_key(job)
        doorbell = self._doorbell(lane, key[0])
        if doorbell is not None:
            doorbell.change(1)
            puts.announce(doorbell)

    def _doorbell(self, lane, due_us):
        """The doorbell that a job due at ``due_us`` (µs) put in lane number
        ``lane`` (``None``: handed back) rings, if the queue has doorbells."""
        if self.doorbells is None:
            return None
        if (lane is not None and self.schedule_doorbell is not None
                and due_us > now_microseconds()):
            return self.schedule_doorbell
        return self.doorbells[LANES if lane is None else lane]

    def install_doorbells(self):
        """Give a queue stored before doorbells existed its doorbells."""
        if self.doorbells is None:
            self.doorbells = tuple(Length() for _ in range(LANES + 1))
        if self.schedule_doorbell is None:
            self.schedule_doorbell = Length()

    @property
    def completed(self):
        """Jobs completed without an agent (cancelled ones), created on first use."""
        if self._completed is None:
            self._completed = CompletedJobs()
        return self._completed

    # -- removing -----------------------------------------------------------

    def _place(self, job):
        """The tree and the key of a pending job.

        The job keeps ``(where,)`` (see :meth:`_tree`): its key is
        :meth:`PendingJobs.key_of`, since neither its due time nor its oid
        change while it is pending (stored too, the key took a tenth of the
        time to pickle the job's record at every put).  A job queued by an
        earlier version keeps ``(where, key)``.
        """
        stored = job._queue_key
        if len(stored) == 2:
            return self._tree(stored[0]), stored[1]
        return self._tree(stored[0]), PendingJobs.key_of(job)

    def _take(self, job, claimed=True):
        """Take ``job`` out of its lane; ``claimed``: to run it."""
        tree, key = self._place(job)
        del tree[key]
        job._queue_key = None
        job.parent = None
        self._length.change(-1)
        if not (claimed and unique.kept_while_active(job)):
            self.release_unique_key(job)

    def remove(self, job, completing=False):
        """Take a pending job out of the queue; it is a new job again, as in
        zc.async (to cancel it, completing it, see :meth:`.job.Job.cancel`).

        A job that other jobs wait for - through a callback the engine
        added: a composite's part, a job another returned, the predecessor
        of jobs queued after it - is refused, since they would wait for
        ever, unless ``completing`` (the job's own cancel or fail, which
        completes it and runs those callbacks).
        """
        if job.parent is not self or job._queue_key is None:
            raise LookupError(f"{job!r} is not pending in queue {self.name!r}")
        if not completing and waited_for(job):
            raise BadStatusError(f"other jobs wait for {job!r}: cancel it instead, "
                                 "which completes it")
        self._take(job, claimed=False)

    def pull(self, index=0):
        """Remove and return the pending job at ``index`` (in claim order),
        as :meth:`remove` does (it refuses a job other jobs wait for)."""
        job = self[index]
        self.remove(job)
        return job

    # -- unique keys --------------------------------------------------------

    def install_unique_index(self):
        """Give a queue stored before unique keys existed its unique index."""
        if self._unique is None:
            self._unique = unique.new_index()

    def _unique_tree(self, key):
        """The tree of the unique index that ``key`` belongs in, or ``None``."""
        return None if self._unique is None else unique.shard(self._unique, key)

    def _unique_holder(self, key):
        """The job of this queue that holds ``key`` now, or ``None``."""
        tree = self._unique_tree(key)
        job = None if tree is None else tree.get(key)
        return job if job is not None and unique.holds(job) else None

    def _take_unique_key(self, job):
        """Enter a job that became pending in the index, unless another
        job holds its key (see :mod:`.unique`)."""
        key = job.unique_key
        if key is None:
            return
        self.install_unique_index()
        tree = self._unique_tree(key)
        entry = tree.get(key)
        if entry is not job and (entry is None or not unique.holds(entry)):
            tree[key] = job

    def release_unique_key(self, job):
        """Remove ``job``'s entry from the unique index, if it has one."""
        key = job.unique_key
        tree = None if key is None else self._unique_tree(key)
        if tree is not None and tree.get(key) is job:
            del tree[key]

    def claim(self, filter=None, default=None, now=None, lane=None, exclude=frozenset()):
        """Remove and return a job an agent may run now, or ``default``.

        A job whose ``begin_by`` deadline has passed is returned whatever
        the filter says, so that the claiming worker fails it; quotas and
        the filter decide for the others.  Handed-back jobs come first;
        then, priority by priority from the highest, an eligible job among
        the first :data:`CLAIM_WINDOW` due jobs (or the next ones, if none
        is) of lane number ``lane`` (default: a random one), or else of the
        first lane, in random order, that has one.  Concurrent claimers of
        one process pass different lanes.  Jobs whose ``(oid, database)``
        is in ``exclude`` are skipped, as are pending jobs that cannot be
        read (logged).
        """
        eligible = _Eligibility(self, filter, to_microseconds(now or utcnow()), exclude)
        start = random.randrange(LANES) if lane is None else lane % LANES
        self._prefetch_changed(start)
        for lane in self._claim_order(start):
            job = eligible.choose(lane, CLAIM_WINDOW)
            if job is not None:
                # For the pickup latency (see .pickups): the job's last
                # commit, which made it pending, is known until this one.
                job._v_pending_since = committed_at(job._p_serial)
                self._take(job)
                if not job.deadline_passed():
                    self.quotas.enter(job)
                return job
        return default

    def _prefetch_changed(self, start):
        """Start loading, together, what a claim starting with lane number
        ``start`` reads first and other transactions changed: those of its
        trees and the queue's length that are ghosts.  Loaded when the claim
        comes to them, each would cost a round trip to the storage server."""
        if self._p_jar is None:
            return
        changed = [item for item in (self._length, *self._first_trees(start))
                   if item._p_changed is None]
        if len(changed) > 1:
            self._p_jar.prefetch(*changed)

    def prefetch_claimable(self, count, lane, now=None):
        """Start loading, in one request, the jobs that claiming ``count``
        jobs, starting with lane number ``lane``, looks at: the first
        ``count + CLAIM_WINDOW - 1`` due jobs of the handed-back jobs and of
        that lane of each priority, those not loaded yet.  Loaded as the
        claims come to them, each would cost a round trip to the storage
        server while the claim holds its pool's turn."""
        if self._p_jar is None:
            return
        now_us = to_microseconds(now or utcnow())
        start = lane % LANES
        self._prefetch_changed(start)
        wanted = count + CLAIM_WINDOW - 1
        ghosts = []
        for tree in self._first_trees(start):
            for job in itertools.islice(self._due_jobs(tree, now_us), wanted):
                wanted -= 1
                if job._p_changed is None:
                    ghosts.append(job)
        if ghosts:
            self._p_jar.prefetch(*ghosts)

    def _due_jobs(self, tree, now_us):
        """The jobs of ``tree`` due at ``now_us`` (µs), in due order; a
        handed-back job is always due."""
        for (due, _), job in tree.jobs():
            if due > now_us and tree is not self._handed_back:
                return
            yield job

    def _first_trees(self, start):
        """The trees a claim starting with lane number ``start`` reads
        first: the handed-back jobs, then that lane of each priority."""
        return (self._handed_back, *(lanes[start] for _, lanes in self._lane_sets()))

    def _claim_order(self, start):
        """The trees a claim looks in, in turn: the handed-back jobs, then
        per priority lane number ``start`` and the other lanes."""
        yield self._handed_back
        others = None
        for _, lanes in self._lane_sets():
            yield lanes[start]
            if others is None:  # drawn only when the first lane has nothing
                # In random order: claimers whose own lanes are empty should
                # not all move on to the same next lane.
                others = random.sample([n for n in range(LANES) if n != start], LANES - 1)
            for number in others:
                yield lanes[number]

    def has_due_jobs(self, now=None):
        """Tell cheaply whether some pending job is due."""
        now_us = to_microseconds(now or utcnow())
        return any(due <= now_us for _, due in self.lane_heads())

    def lane_heads(self):
        """``(lane number, due µs)`` of the first job of every lane number
        that has one, whatever its priority; lane ``None`` is the
        handed-back jobs, claimable at once (due 0)."""
        if len(self._handed_back) > 1:
            yield None, 0
        heads = {}
        for _, lanes in self._lane_sets():
            for number, lane in enumerate(lanes):
                key = lane.first_key()
                if key is not None and (number not in heads or key[0] < heads[number]):
                    heads[number] = key[0]
        yield from sorted(heads.items())

    def prefetch_head(self, lane):
        """Start loading, without waiting, what a claim of the first job of
        lane number ``lane`` (``None``: the handed-back jobs) reads and
        changes: the job and the queue's length.  A dispatcher that sets a
        timer for that job calls it, so that the claim finds them cached."""
        trees = ([self._handed_back] if lane is None
                 else [lanes[lane] for _, lanes in self._lane_sets()])
        heads = [head for head in (next(iter(tree.jobs()), None) for tree in trees)
                 if head is not None]
        if heads:
            job = min(heads, key=lambda head: head[0])[1]
            job._p_jar.prefetch(job)
        self._p_jar.prefetch(self._length)

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

        lanes = [self._handed_back] + [lane for _, lanes in self._lane_sets() for lane in lanes]
        return heapq.merge(*(lane_items(lane) for lane in lanes),
                           key=lambda item: item[0], reverse=reverse)

    def __iter__(self):
        """Pending jobs: handed-back ones, then by priority (highest
        first), and by due time within one priority."""
        for _, job in self._handed_back.jobs():
            yield job
        for _, lanes in self._lane_sets():
            for _, job in heapq.merge(*(lane.jobs() for lane in lanes), key=lambda item: item[0]):
                yield job

    def __getitem__(self, index):
        length = len(self)
        position = index + length if index < 0 else index
        if not 0 <= position < length:
            raise IndexError(index)
        return next(itertools.islice(iter(self), position, None))

    def __repr__(self):
        return f"<Queue {self.name!r} with {len(self)} pending>"


class _Puts:
    """What the jobs one transaction queues share: the run of lanes they go
    to (see :data:`LANE_RUN`), and what is looked up once per transaction
    rather than per job (a tenth of the CPU time of a put): the producer's
    UUID and the database's wake-up channel."""

    def __init__(self, transaction, connection):
        self.transaction = transaction
        self.connection = connection
        self.assigner_uuid = configured_uuid()
        self.channel = wakeup.channel_for(connection.db())  # once, not per job
        self.lane = None
        self.left = 0  # jobs the current lane takes before the next one

    def next_lane(self):
        """The lane of the next job this transaction puts."""
        if self.left == 0:
            self.lane = next(_run_lanes) % LANES
            self.left = LANE_RUN
        self.left -= 1
        return self.lane

    def announce(self, doorbell):
        """Tell the wake-up channel that this transaction rang ``doorbell``."""
        if self.channel is not None:
            self.channel.announce(self.connection, doorbell)


class _Eligibility:
    """Chooses, in one lane, the job a claim takes."""

    def __init__(self, queue, filter, now_us, exclude):
        self.queue = queue
        self.filter = filter
        self.now_us = now_us
        self.exclude = exclude

    def choose(self, lane, window):
        """An eligible job among the first ``window`` due jobs of ``lane``,
        at random, else among the next ``window``, and so on; or ``None``.

        Only the jobs looked at are loaded, in random order, until one is
        eligible: usually one, where checking the whole window would load
        every job in it, and load each again after another thread claims
        it."""
        if lane.first_key() is None:
            return None  # most lanes, when few jobs are pending: cheaply
        candidates = []
        for job in self.queue._due_jobs(lane, self.now_us):
            candidates.append(job)
            if len(candidates) == window:
                chosen = self._any_eligible(candidates)
                if chosen is not None:
                    return chosen
                candidates = []
        return self._any_eligible(candidates)

    def _any_eligible(self, candidates):
        random.shuffle(candidates)
        for job in candidates:
            try:
                if self.exclude and object_id(job) in self.exclude:
                    continue
                if job.deadline_passed():
                    return job  # whatever the filter says: see claim()
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
            return job
        return None


def check_priority(priority):
    """Return ``priority`` if it is an integer, else raise ``TypeError``."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be an integer, not {priority!r}")
    return priority


def set_claim_options(job, priority=None, unique_key=None, unique_while=None):
    """Check and set the options of :meth:`Queue.put` that ``job`` keeps
    (``None`` leaves the job's own, which are checked too: code may have
    set them on the job); for code that puts the job later."""
    priority = check_priority(job.priority if priority is None else priority)
    if priority != job.priority:
        job.priority = priority  # the default stays out of the job's record
    if unique_key is not None:
        job.unique_key = unique.check_key(unique_key)
    elif job.unique_key is not None:
        unique.check_key(job.unique_key)
    statuses = job.unique_while if unique_while is None else unique_while
    if statuses is not type(job).unique_while:  # the class's default is sound
        statuses = unique.check_while(statuses)
        if statuses != job.unique_while:
            job.unique_while = statuses
