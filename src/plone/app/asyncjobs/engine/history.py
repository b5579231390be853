"""The bounded history of completed jobs.

Completed jobs are kept for about ``period`` (a week by default), newest
first, and then forgotten, so the database does not grow as jobs complete
(a pack removes forgotten jobs).  The history is split into ``generations``;
when the newest generation is older than ``period / generations``, a new
one starts and the oldest is dropped, so entries live between
``period * (generations - 1) / generations`` and ``period``.

Each generation keeps succeeded and failed jobs in two trees and counts
both, so that listing either kind and counting never read every job.
Jobs the engine made for itself are not kept (see :mod:`.internal`).

Concurrent additions from several worker threads touch different keys of
one tree, which ZODB's BTree conflict resolution merges; the counters are
:class:`~BTrees.Length.Length` objects, which resolve concurrent changes.
"""
import heapq
from datetime import timedelta

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.internal import is_internal
from plone.app.asyncjobs.engine.trees import descending


class HistoryTree(OOBTree):
    """Completed jobs keyed by ``(-completion µs, oid)``, newest first.

    Every completion inserts at the front; larger buckets split (which ZODB
    cannot merge with concurrent inserts) less often.
    """

    max_leaf_size = 250


class Generation(Persistent):
    """The jobs completed during one span, succeeded and failed apart."""

    def __init__(self):
        self.succeeded = HistoryTree()
        self.failed = HistoryTree()
        self.succeeded_count = Length()
        self.failed_count = Length()

    def _part(self, job):
        if is_failure(job.result):
            return self.failed, self.failed_count
        return self.succeeded, self.succeeded_count

    def add(self, key, job):
        tree, count = self._part(job)
        tree[key] = job
        count.change(1)

    def get(self, key):
        job = self.succeeded.get(key)
        return self.failed.get(key) if job is None else job

    def remove(self, key):
        """Forget the job under ``key``; return it, or ``None`` if not here."""
        for tree, count in ((self.succeeded, self.succeeded_count),
                            (self.failed, self.failed_count)):
            job = tree.pop(key, None)
            if job is not None:
                count.change(-1)
                return job
        return None

    def items(self, outcome, after, reverse):
        """``(key, job)`` of ``outcome`` (``"succeeded"``, ``"failed"`` or
        ``None`` for both) in key order, after the key ``after``."""
        trees = [self.succeeded, self.failed] if outcome is None else [getattr(self, outcome)]
        ranges = [_range(tree, after, reverse) for tree in trees]
        return ranges[0] if len(ranges) == 1 else heapq.merge(
            *ranges, key=_key, reverse=reverse)


def _key(item):
    return item[0]


def _range(tree, after, reverse):
    if reverse:
        return descending(tree, below=after)
    return tree.items() if after is None else tree.items(min=after, excludemin=True)


def history_key(completed, job):
    """The key of ``job`` completed at the aware datetime ``completed``."""
    return (-to_microseconds(completed), object_id(job)[0] or id(job))


def _key_of(job):
    """The key ``job`` is kept under if it is in a history: the one its end
    (``active_end``) gives, unless it was added with another completion
    time, which it then keeps (``_history_key``)."""
    key = getattr(job, "_history_key", None)
    if key is None:
        end = getattr(job, "active_end", None)
        key = None if end is None else history_key(end, job)
    return key


def _forget_key(job):
    """Clear the key ``job`` kept (see :func:`_key_of`).  A job whose record
    cannot be loaded (a class of its state is gone) is forgotten all the
    same: purging and removing are how an operator gets rid of it."""
    try:
        if getattr(job, "_history_key", None) is not None:
            job._history_key = None
    except Exception:  # loading its record failed: its key is never read again
        pass


class CompletedJobs(Persistent):
    """Completed jobs, iterable newest first."""

    def __init__(self, period=timedelta(days=7), generations=7):
        if generations < 2:
            raise ValueError("keep at least two generations")
        self.period = period
        self.generations = generations
        self._started = utcnow()
        self._generations = (Generation(),)

    def add(self, job, completed=None):
        """Add ``job``, completed at ``completed`` (default: now).

        A job the engine made for itself (:func:`.internal.is_internal`)
        is not kept: it was nobody's work, and an administrator has
        nothing to look up or retry in it (its failure is logged).
        """
        if is_internal(job):
            return
        now = utcnow()
        self._rotate(now)
        key = history_key(completed or now, job)
        if key != _key_of(job):
            job._history_key = key
        # Otherwise the job is not written again just to keep its key.
        self._generations[0].add(key, job)

    def _rotate(self, now):
        span = self.period / self.generations
        if now - self._started >= span:
            # One generation per span passed, so that after a quiet time
            # everything older than the period goes at once.
            passed = min(int((now - self._started) / span), self.generations)
            kept = self._generations[: self.generations - passed]
            self._generations = (Generation(),) + kept
            self._started = now

    def remove(self, job):
        """Forget ``job``; raise ``LookupError`` if it is not in this history."""
        key = _key_of(job)
        for generation in self._generations:
            if key is not None and generation.get(key) is job:
                generation.remove(key)
                _forget_key(job)
                return
        raise LookupError(f"{job!r} is not in this history")

    def purge(self, before):
        """Forget the jobs completed before the aware datetime ``before``;
        return how many."""
        limit = (-to_microseconds(before), float("inf"))
        removed = 0
        for generation in self._generations:
            for tree in (generation.succeeded, generation.failed):
                keys = list(tree.keys(min=limit, excludemin=True))
                for key in keys:
                    _forget_key(generation.remove(key))
                removed += len(keys)
        return removed

    def items(self, outcome=None, after=None, reverse=False):
        """``(key, job)`` pairs newest first (oldest first if ``reverse``),
        after the key ``after`` if given; ``outcome`` ``"succeeded"`` or
        ``"failed"`` restricts them to one kind."""
        if outcome not in (None, "succeeded", "failed"):
            raise ValueError(f"outcome must be None, 'succeeded' or 'failed', not {outcome!r}")
        # Generations do not overlap in time unless a job was added with an
        # old completion time, so merging costs little.
        return heapq.merge(
            *(generation.items(outcome, after, reverse) for generation in self._generations),
            key=_key, reverse=reverse)

    def __iter__(self):
        for _, job in self.items():
            yield job

    def __len__(self):
        return self.succeeded_count() + self.failed_count()

    def succeeded_count(self):
        """How many of the jobs kept succeeded."""
        return sum(generation.succeeded_count() for generation in self._generations)

    def failed_count(self):
        """How many of the jobs kept failed."""
        return sum(generation.failed_count() for generation in self._generations)

    def __bool__(self):
        return len(self) > 0

    def __contains__(self, job):
        key = _key_of(job)
        return key is not None and any(
            generation.get(key) is job for generation in self._generations)

    def first(self):
        """The most recently completed job, or ``None``."""
        return next(iter(self), None)

    def since(self, start, outcome=None):
        """Jobs completed at or after the aware datetime ``start``, newest
        first (only those of ``outcome``, as for :meth:`items`).  Counting
        them reads keys only, not the jobs."""
        limit = (-to_microseconds(start), float("inf"))
        for key, job in self.items(outcome):
            if key > limit:
                return
            yield job
