"""Service jobs of one transaction that share a quota of size one start in
the order they were queued.

A quota of size one lets one of its jobs run at a time, but the engine
claims due jobs only in *about* their due order (see
:mod:`plone.app.asyncjobs.engine.queue`).  plone.app.async's users relied
on the order too: queue a job that creates a document, then one that
submits it for review, and the second finds the document.

So when a transaction queues, through ``IAsyncService``, a job that shares
a quota of size one with a job the same transaction queued before in the
same queue, the new job is not put in the queue at once: a callback of the
earlier job puts it there once that job has completed, whether it
succeeded or failed.  Until then the new job's status is ``new`` and the
queue does not list it.  The job and its start options (``begin_after``,
``begin_by``, quotas, retry policy, priority, unique key, time limit,
``on_duplicate``) are checked and set on it at once, as ``Queue.put``
does, with the same errors.  Its unique key is looked up at once too: if
a job holds it, that job is returned, or with ``on_duplicate="raise"``
:class:`~plone.app.asyncjobs.engine.exceptions.DuplicateJobError` is
raised, and nothing is held back; if a job holds it when the new job is
put, the new job is not queued (that job does the work), and the jobs
held behind it are queued in its place, as they are if its put fails.

Jobs queued by different transactions run one at a time too, in about the
order they were queued.
"""
import logging

from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine import unique
from plone.app.asyncjobs.engine.interfaces import IJob
from plone.app.asyncjobs.engine.internal import waiting_step
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import NEW


logger = logging.getLogger("plone.app.asyncjobs.ordering")


#: The annotation of the callback that holds the job it queues.
SUCCESSOR = "plone.app.asyncjobs.successor"


class _LastJobs:
    """The jobs a transaction queued last, by queue and quota, in
    ``jobs``: ``{(id(queue), quota name): job}``.

    It joins the transaction as a data manager with nothing to commit, so
    that rolling back a savepoint also forgets the jobs queued after it:
    a job held behind one of those would never be queued.
    """

    def __init__(self, transaction_manager):
        self.transaction_manager = transaction_manager
        self.jobs = {}
        self.joined = False

    def savepoint(self):
        return _Rollback(self, dict(self.jobs))

    def sortKey(self):
        return "plone.app.asyncjobs.service.ordering"

    def abort(self, transaction):
        # Also how a savepoint made before this joined rolls it back, and
        # leaves the transaction: the next job joins it again.
        self.jobs.clear()
        self.joined = False

    def tpc_begin(self, transaction):
        pass

    commit = tpc_vote = tpc_finish = tpc_abort = tpc_begin


class _Rollback:
    """What a savepoint of :class:`_LastJobs` restores."""

    def __init__(self, last, jobs):
        self.last = last
        self.jobs = jobs

    def rollback(self):
        self.last.jobs = dict(self.jobs)


def put_in_order(queue, job, begin_after=None, begin_by=None, quota_names=(),
                 retry_policy_factory=None, priority=None, unique_key=None,
                 unique_while=None, on_duplicate="return", timeout=None):
    """``queue.put(job, ...)``, or put it after the job this transaction
    queued last with one of its quotas of size one (see the module doc).
    Returns what ``queue.put`` returned (the job, or the job holding its
    unique key), or the job put later (or the job holding its unique key
    now)."""
    quota_names = tuple(quota_names)
    queue.quotas.check_names(quota_names)
    keys = [(id(queue), name) for name in quota_names if queue.quotas[name].size == 1]
    last = _last_jobs(queue)
    previous = next((last[key] for key in reversed(keys) if key in last), None)
    options = {"begin_after": begin_after, "begin_by": begin_by, "quota_names": quota_names,
               "retry_policy_factory": retry_policy_factory, "priority": priority,
               "unique_key": unique_key, "unique_while": unique_while,
               "on_duplicate": on_duplicate, "timeout": timeout}
    if previous is None:
        job = queue.put(job, **options)
    else:
        job = _hold(queue, job, previous, **options)
    for key in keys:
        last[key] = job
    return job


def _hold(queue, job, previous, *, begin_after, begin_by, quota_names, retry_policy_factory,
          priority, unique_key, unique_while, on_duplicate, timeout):
    """Check ``job`` and its options as ``queue.put`` would, and have
    ``previous`` put it once completed; return it, or the job holding its
    unique key now (see the module doc)."""
    unique.check_on_duplicate(on_duplicate)
    own_due = job.begin_after
    queue._prepared(job, begin_after, begin_by, None, retry_policy_factory, quota_names,
                    priority, timeout, unique_key, unique_while)
    if begin_after is None:
        # _prepared made it due now; it is due once put (begin_by counts from then).
        job.set_due(own_due)
    holder = queue._duplicate_of(job, on_duplicate)
    if holder is not None:
        return holder
    callback = waiting_step(Job(put_successor, queue))
    callback.annotations[SUCCESSOR] = job
    previous.add_callback(callback)
    return job


def put_successor(queue, result):
    """The callback that queues the job of its annotation :data:`SUCCESSOR`
    once its predecessor has ``result``.

    The job is kept in an annotation, not as an argument, so that the
    predecessor can be retried (copied, callbacks included): the copy of
    this callback has no annotations and queues nothing.
    """
    _put_held(queue, local.get_job().get_annotation(SUCCESSOR))


def _put_held(queue, job):
    """Queue ``job``, held until now.  If it is not queued (a job that
    holds its unique key does the work, or the put fails), queue the jobs
    held behind it in its place: none of them must wait for a job that
    never runs."""
    if job is None or job.status != NEW:
        return
    try:
        if queue.put(job) is job:
            return
    except Exception:
        logger.critical("cannot queue %r, held until its predecessor completed; "
                        "queuing the jobs held behind it", job, exc_info=True)
    for callback in job.callbacks:
        if IJob.providedBy(callback) and callback.callable is put_successor:
            _put_held(queue, callback.get_annotation(SUCCESSOR))


def _last_jobs(queue):
    """The ``jobs`` of the current transaction's :class:`_LastJobs`."""
    manager = queue._p_jar.transaction_manager
    current = manager.get()
    try:
        last = current.data(_LastJobs)
    except KeyError:
        last = _LastJobs(manager)
        current.set_data(_LastJobs, last)
    if not last.joined:
        current.join(last)
        last.joined = True
    return last.jobs
