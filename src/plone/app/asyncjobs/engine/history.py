"""The bounded history of completed jobs.

Completed jobs are kept for about ``period`` (a week by default), newest
first, and then forgotten, so the database does not grow as jobs complete
(a pack removes forgotten jobs).  The history is split into ``generations``
trees; when the newest tree is older than ``period / generations``, a new
one starts and the oldest is dropped, so entries live between
``period * (generations - 1) / generations`` and ``period``.

Concurrent additions from several worker threads touch different keys of
one tree, which ZODB's BTree conflict resolution merges.
"""
from datetime import timedelta

from BTrees.OOBTree import OOBTree
from persistent import Persistent

from plone.app.asyncjobs.engine.clock import to_microseconds
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.ids import object_id


class HistoryTree(OOBTree):
    """Completed jobs keyed by ``(-completion µs, oid)``, newest first.

    Every completion inserts at the front; larger buckets split (which ZODB
    cannot merge with concurrent inserts) less often.
    """

    max_leaf_size = 250


class CompletedJobs(Persistent):
    """Completed jobs, iterable newest first."""

    def __init__(self, period=timedelta(days=7), generations=7):
        if generations < 2:
            raise ValueError("keep at least two generations")
        self.period = period
        self.generations = generations
        self._started = utcnow()
        self._trees = (HistoryTree(),)

    def add(self, job, completed=None):
        """Add ``job``, completed at ``completed`` (default: now)."""
        now = utcnow()
        self._rotate(now)
        key = (-to_microseconds(completed or now), object_id(job)[0] or id(job))
        job._history_key = key
        self._trees[0][key] = job

    def _rotate(self, now):
        span = self.period / self.generations
        if now - self._started >= span:
            # One generation per span passed, so that after a quiet time
            # everything older than the period goes at once.
            passed = min(int((now - self._started) / span), self.generations)
            self._trees = (HistoryTree(),) + self._trees[: self.generations - passed]
            self._started = now

    def __iter__(self):
        for tree in self._trees:
            yield from tree.values()

    def __len__(self):
        return sum(len(tree) for tree in self._trees)

    def __bool__(self):
        return any(self._trees)

    def __contains__(self, job):
        key = getattr(job, "_history_key", None)
        return key is not None and any(tree.get(key) is job for tree in self._trees)

    def first(self):
        """The most recently completed job, or ``None``."""
        return next(iter(self), None)

    def since(self, start):
        """Jobs completed at or after the aware datetime ``start``, newest first."""
        limit = (-to_microseconds(start), float("inf"))
        for tree in self._trees:
            yield from tree.values(max=limit)
